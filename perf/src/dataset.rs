//! `perf-run`'s dataset: deterministic random files shaped like an ML job's, written to a local
//! directory (nfs-ganesha's export and the raw-disk ceiling read it there) and uploaded to the S3
//! bucket every other system reads (one object per file, same key as the relative path).
//!
//! ```text
//! shards/s00.bin ..   epoch read: sizes spread log-uniformly from 1 MiB to the largest shard
//! rand/r0.bin ..      random reads within large files
//! small/f00000.bin .. many small files
//! list/e000000 ..     a directory of many (empty) entries for the listing workload
//! ckpt/<name>/.keep   one directory per system that writes checkpoints
//! ```
//!
//! Every file's CRC32C is kept so each workload checks every byte it reads.
//!
//! Runs on: the caller's thread (files) and runtime (uploads, `uploads_in_flight` at a time).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use engine::object::{ObjectClient, PutOptions};
use futures::{StreamExt, TryStreamExt};
use rand::{RngCore, SeedableRng};

use crate::workloads::{FileSpec, MIB};

/// Sizes and counts of the dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetSpec {
    pub shards: usize,
    pub shard_bytes_min: u64,
    pub shard_bytes_max: u64,
    pub rand_files: usize,
    pub rand_file_bytes: u64,
    pub small_files: usize,
    pub small_file_bytes: u64,
    pub list_entries: usize,
}

impl DatasetSpec {
    /// The issue's full sizes: 20 shards of 1–256 MiB (≈ 1 GiB), 2 × 256 MiB for random
    /// reads, 10,000 × 100 KiB, a 100,000-entry directory.
    pub fn full() -> DatasetSpec {
        DatasetSpec {
            shards: 20,
            shard_bytes_min: MIB,
            shard_bytes_max: 256 * MIB,
            rand_files: 2,
            rand_file_bytes: 256 * MIB,
            small_files: 10_000,
            small_file_bytes: 100 * 1024,
            list_entries: 100_000,
        }
    }

    /// Small enough for the test command.
    pub fn smoke() -> DatasetSpec {
        DatasetSpec {
            shards: 6,
            shard_bytes_min: MIB,
            shard_bytes_max: 4 * MIB,
            rand_files: 1,
            rand_file_bytes: 16 * MIB,
            small_files: 300,
            small_file_bytes: 100 * 1024,
            list_entries: 1_000,
        }
    }

    /// Shard `i`'s size: log-uniform from min to max over the shards, whole KiB.
    pub fn shard_bytes(&self, i: usize) -> u64 {
        if self.shards <= 1 {
            return self.shard_bytes_max;
        }
        let (lo, hi) = (self.shard_bytes_min as f64, self.shard_bytes_max as f64);
        let at = lo * (hi / lo).powf(i as f64 / (self.shards - 1) as f64);
        ((at / 1024.0).round() as u64 * 1024).clamp(self.shard_bytes_min, self.shard_bytes_max)
    }

    pub fn total_bytes(&self) -> u64 {
        (0..self.shards).map(|i| self.shard_bytes(i)).sum::<u64>()
            + self.rand_files as u64 * self.rand_file_bytes
            + self.small_files as u64 * self.small_file_bytes
    }
}

/// The generated dataset: every file with its CRC.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub spec: DatasetSpec,
    pub shards: Vec<FileSpec>,
    pub rand: Vec<FileSpec>,
    pub small: Vec<FileSpec>,
    /// Names of the listing directory's entries (relative to the root).
    pub list: Vec<String>,
    /// Empty markers that make the checkpoint directories exist in the bucket.
    pub markers: Vec<String>,
}

pub const LIST_DIR: &str = "list";
pub const CKPT_DIR: &str = "ckpt";

/// The checkpoint directory of system `name`.
pub fn ckpt_dir(name: &str) -> String {
    format!("{CKPT_DIR}/{name}")
}

impl Dataset {
    /// Every file, with the listing entries and the checkpoint directory's marker (size 0).
    pub fn all_files(&self) -> Vec<FileSpec> {
        let empty_crc = crc(&[]);
        let mut all: Vec<FileSpec> = self.shards.iter().chain(&self.rand).chain(&self.small).cloned().collect();
        let empty = self.list.iter().chain(&self.markers);
        all.extend(empty.map(|n| FileSpec { name: n.clone(), size_bytes: 0, crc32c: empty_crc }));
        all
    }
}

pub fn crc(data: &[u8]) -> u32 {
    let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    d.update(data);
    d.finalize() as u32
}

/// File `name`'s bytes: a ChaCha stream seeded from the name.
pub fn content(name: &str, size_bytes: u64) -> Vec<u8> {
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut data = vec![0u8; size_bytes as usize];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

/// Writes the dataset under `dir` (emptied first), with a checkpoint directory per name in
/// `ckpt_names`.
pub fn generate(spec: &DatasetSpec, dir: &Path, ckpt_names: &[&str]) -> anyhow::Result<Dataset> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    for sub in ["shards", "rand", "small", LIST_DIR, CKPT_DIR] {
        std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("creating {}/{sub}", dir.display()))?;
    }
    let write = |name: String, size: u64| -> anyhow::Result<FileSpec> {
        let data = content(&name, size);
        let path = dir.join(&name);
        std::fs::write(&path, &data).with_context(|| format!("writing {}", path.display()))?;
        Ok(FileSpec { crc32c: crc(&data), name, size_bytes: size })
    };
    let shards = (0..spec.shards)
        .map(|i| write(format!("shards/s{i:02}.bin"), spec.shard_bytes(i)))
        .collect::<anyhow::Result<_>>()?;
    let rand = (0..spec.rand_files)
        .map(|i| write(format!("rand/r{i}.bin"), spec.rand_file_bytes))
        .collect::<anyhow::Result<_>>()?;
    let small = (0..spec.small_files)
        .map(|i| write(format!("small/f{i:05}.bin"), spec.small_file_bytes))
        .collect::<anyhow::Result<_>>()?;
    let mut list = Vec::with_capacity(spec.list_entries);
    for i in 0..spec.list_entries {
        let name = format!("{LIST_DIR}/e{i:06}");
        std::fs::write(dir.join(&name), b"").with_context(|| format!("writing {}/{name}", dir.display()))?;
        list.push(name);
    }
    let mut markers = Vec::new();
    for name in ckpt_names {
        let sub = dir.join(ckpt_dir(name));
        std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        std::fs::write(sub.join(".keep"), b"").with_context(|| format!("writing {}/.keep", sub.display()))?;
        markers.push(format!("{}/.keep", ckpt_dir(name)));
    }
    Ok(Dataset { spec: spec.clone(), shards, rand, small, list, markers })
}

/// Uploads every file of the dataset from `dir` to the bucket, `uploads_in_flight` at a time.
pub async fn upload(
    dataset: &Dataset,
    dir: &Path,
    client: Arc<dyn ObjectClient>,
    uploads_in_flight: usize,
) -> anyhow::Result<()> {
    futures::stream::iter(dataset.all_files())
        .map(|f| {
            let client = client.clone();
            let path = dir.join(&f.name);
            async move {
                let data = tokio::fs::read(&path).await.with_context(|| format!("reading {}", path.display()))?;
                client
                    .put(&f.name, Bytes::from(data), &PutOptions::default())
                    .await
                    .with_context(|| format!("uploading {} to {}", f.name, client.describe()))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(uploads_in_flight.max(1))
        .try_collect::<()>()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_sizes_span_min_to_max() {
        let s = DatasetSpec::full();
        assert_eq!(s.shard_bytes(0), MIB);
        assert_eq!(s.shard_bytes(s.shards - 1), 256 * MIB);
        assert!((1..s.shards).all(|i| s.shard_bytes(i) > s.shard_bytes(i - 1)));
        let total: u64 = (0..s.shards).map(|i| s.shard_bytes(i)).sum();
        assert!(total > GIB / 2 && total < 2 * GIB, "{total}");
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn generates_files_with_their_crcs() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let spec = DatasetSpec { small_files: 3, list_entries: 4, rand_file_bytes: MIB, ..DatasetSpec::smoke() };
        let d = generate(&spec, &dir.path().join("data"), &["a", "b"])?;
        assert_eq!(d.shards.len(), spec.shards);
        assert_eq!(d.all_files().len(), spec.shards + 1 + 3 + 4 + 2);
        assert!(dir.path().join("data/ckpt/b/.keep").exists());
        for f in d.shards.iter().chain(&d.small) {
            let bytes = std::fs::read(dir.path().join("data").join(&f.name))?;
            assert_eq!(bytes.len() as u64, f.size_bytes);
            assert_eq!(crc(&bytes), f.crc32c);
        }
        assert_ne!(content("a", 64), content("b", 64));
        assert!(dir.path().join("data/list/e000003").exists());
        Ok(())
    }
}
