//! The client side of `perf-run`'s workloads, shaped like ML training, against any system that
//! serves the dataset: an NFS server (reached with the pure-Rust `nfs-rs` client over NFSv3, one
//! connection per job) or a mounted filesystem (a FUSE mount, read with std::fs).
//!
//! - [`epoch`]: every shard read whole, in a shuffled order, by `jobs` readers, 1 MiB reads
//!   (`depth` in flight per NFS reader; a mount reads sequentially and leaves read-ahead to it);
//!   every shard's CRC32C is checked against the dataset's manifest.
//! - [`small_files`]: open + read whole + close per file (over NFSv3: LOOKUP, ACCESS, READ — what
//!   the kernel client sends for an open and a read), every file's CRC checked.
//! - [`listing`]: one directory listed with its entries' attributes (READDIRPLUS; `read_dir` +
//!   `symlink_metadata` on a mount, what `ls -l` does).
//! - [`checkpoint`]: `ckpt.tmp` written in 1 MiB writes, made durable (COMMIT / fsync), renamed
//!   over `ckpt`.
//!
//! Random reads within large files go through fio (see `perf-run`), not here. Latency is the
//! time of each call (a read, a file, a round) in microseconds, in an HDR histogram.
//!
//! Runs on: the caller's tokio runtime (NFS) or its own threads (mounts); blocks the caller.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use nfs_rs::Mount;
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};

pub const MIB: u64 = 1 << 20;
/// The read size of the epoch workload.
pub const READ_BYTES: u64 = MIB;
/// An NFS call taking longer than this fails the workload (a hung server, not a slow one).
pub const NFS_CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// NFSv3 ACCESS3_READ.
const ACCESS_READ: u32 = 0x1;

/// Where a system's copy of the dataset is reached.
#[derive(Clone, Debug)]
pub enum Access {
    /// An NFS export's URL for nfs-rs / libnfs (`nfs://127.0.0.1/export?nfsport=P&mountport=M`).
    Nfs { url_v3: String },
    /// The root of a mounted filesystem (or a plain directory).
    Path(PathBuf),
}

impl Access {
    pub fn describe(&self) -> String {
        match self {
            Access::Nfs { url_v3 } => format!("NFSv3 {url_v3}"),
            Access::Path(p) => format!("mount {}", p.display()),
        }
    }
}

/// One file of the dataset: its path below the root, size and CRC32C.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    pub name: String,
    pub size_bytes: u64,
    pub crc32c: u32,
}

/// Latency percentiles, microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            p50_us: h.value_at_quantile(0.50) as f64,
            p99_us: h.value_at_quantile(0.99) as f64,
            p999_us: h.value_at_quantile(0.999) as f64,
        }
    }
}

/// What one run of a workload did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub seconds: f64,
    pub bytes: u64,
    /// Reads, files or entries, by workload.
    pub ops: u64,
    pub latency: Percentiles,
}

impl Outcome {
    pub fn bytes_per_s(&self) -> f64 {
        self.bytes as f64 / self.seconds.max(1e-9)
    }
    pub fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.seconds.max(1e-9)
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn record(h: &mut Histogram<u64>, since: Instant) {
    let us = (since.elapsed().as_micros() as u64).clamp(1, 3_600_000_000);
    h.record(us).expect("value within the histogram's bounds");
}

/// An NFS call under [`NFS_CALL_TIMEOUT`], its error naming `what`.
pub async fn call<T>(what: &str, f: impl std::future::Future<Output = nfs_rs::Result<T>>) -> anyhow::Result<T> {
    match tokio::time::timeout(NFS_CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow!("{what}: {e}")),
        Err(_) => Err(anyhow!("{what}: no answer in {} s", NFS_CALL_TIMEOUT.as_secs())),
    }
}

pub async fn mount(url: &str) -> anyhow::Result<Box<dyn Mount>> {
    call(&format!("mounting {url}"), nfs_rs::parse_url_and_mount(url)).await
}

async fn mounts(url: &str, n: usize) -> anyhow::Result<Vec<Arc<dyn Mount>>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Arc::from(mount(url).await?));
    }
    Ok(out)
}

/// The files in a deterministic shuffled order (`seed`).
pub fn shuffled(files: &[FileSpec], seed: u64) -> Vec<FileSpec> {
    let mut order = files.to_vec();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    order
}

/// Reads one file whole over NFS, `depth` 1 MiB reads in flight, each read's latency recorded;
/// checks size and CRC.
async fn nfs_read_whole(
    m: &dyn Mount,
    file: &FileSpec,
    depth: usize,
    chunk_bytes: u64,
    h: &mut Histogram<u64>,
) -> anyhow::Result<u64> {
    let obj = call(&format!("LOOKUP {}", file.name), m.lookup_path(&file.name)).await?;
    let fh = obj.fh;
    let offsets: Vec<u64> = (0..file.size_bytes).step_by(chunk_bytes as usize).collect();
    let mut reads = futures::stream::iter(offsets)
        .map(|at| {
            let fh = fh.clone();
            let want = chunk_bytes.min(file.size_bytes - at) as u32;
            async move {
                let started = Instant::now();
                let mut got: Vec<Bytes> = Vec::new();
                let mut done = 0u32;
                // A short read is completed by reads of the rest.
                while done < want {
                    let part = call(
                        &format!("READ {} at {}", file.name, at + u64::from(done)),
                        m.read(fh.clone(), at + u64::from(done), want - done),
                    )
                    .await?;
                    if part.is_empty() {
                        bail!("READ {} at {}: end of file before {} bytes", file.name, at, file.size_bytes);
                    }
                    done += part.len() as u32;
                    got.push(part);
                }
                anyhow::Ok((started, got))
            }
        })
        .buffered(depth.max(1));
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    let mut bytes = 0u64;
    while let Some(r) = reads.next().await {
        let (started, parts) = r?;
        record(h, started);
        for p in parts {
            bytes += p.len() as u64;
            crc.update(&p);
        }
    }
    check(file, bytes, crc.finalize() as u32)?;
    Ok(bytes)
}

fn check(file: &FileSpec, bytes: u64, crc: u32) -> anyhow::Result<()> {
    if bytes != file.size_bytes {
        bail!("{}: read {bytes} bytes, expected {}", file.name, file.size_bytes);
    }
    if crc != file.crc32c {
        bail!("{}: CRC32C {crc:08x}, expected {:08x} (wrong bytes)", file.name, file.crc32c);
    }
    Ok(())
}

/// Reads one file whole from a mount in `chunk_bytes` reads; checks size and CRC.
fn path_read_whole(
    root: &Path,
    file: &FileSpec,
    chunk_bytes: u64,
    h: Option<&mut Histogram<u64>>,
) -> anyhow::Result<u64> {
    let path = root.join(&file.name);
    let mut f = std::fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
    let mut buf = vec![0u8; chunk_bytes as usize];
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    let mut bytes = 0u64;
    let mut per_read = h;
    loop {
        let started = Instant::now();
        let n = f.read(&mut buf).with_context(|| format!("read {} at {bytes}", path.display()))?;
        if n == 0 {
            break;
        }
        if let Some(h) = per_read.as_deref_mut() {
            record(h, started);
        }
        bytes += n as u64;
        crc.update(&buf[..n]);
    }
    drop(f);
    check(file, bytes, crc.finalize() as u32)?;
    Ok(bytes)
}

/// Epoch read: every file whole, in a shuffled order (`seed`), `jobs` readers taking the next
/// file from a shared queue, 1 MiB reads (`depth` in flight per NFS reader).
pub fn epoch(
    rt: &tokio::runtime::Runtime,
    access: &Access,
    files: &[FileSpec],
    jobs: usize,
    depth: usize,
    seed: u64,
) -> anyhow::Result<Outcome> {
    let order = Arc::new(shuffled(files, seed));
    let next = Arc::new(AtomicUsize::new(0));
    match access {
        Access::Nfs { url_v3 } => rt.block_on(async {
            let ms = mounts(url_v3, jobs).await?;
            let started = Instant::now();
            let workers = ms.into_iter().map(|m| {
                let order = order.clone();
                let next = next.clone();
                async move {
                    let mut h = histogram();
                    let chunk = READ_BYTES.min(u64::from(m.get_max_read_size().max(4096)));
                    let mut bytes = 0u64;
                    let mut reads = 0u64;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = order.get(i) else { break };
                        bytes += nfs_read_whole(&*m, file, depth, chunk, &mut h).await?;
                        reads += file.size_bytes.div_ceil(chunk);
                    }
                    anyhow::Ok((h, bytes, reads))
                }
            });
            let results = futures::future::try_join_all(workers).await?;
            Ok(merge(results, started.elapsed()))
        }),
        Access::Path(root) => on_threads(jobs, &order, |file, h| {
            Ok((path_read_whole(root, file, READ_BYTES, Some(h))?, file.size_bytes.div_ceil(READ_BYTES)))
        }),
    }
}

/// `jobs` threads, each taking the next file of `order` and calling `one` on it (which records
/// latencies in the thread's histogram and returns bytes and operations done).
fn on_threads(
    jobs: usize,
    order: &[FileSpec],
    one: impl Fn(&FileSpec, &mut Histogram<u64>) -> anyhow::Result<(u64, u64)> + Sync,
) -> anyhow::Result<Outcome> {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    let mut h = histogram();
                    let (mut bytes, mut ops) = (0u64, 0u64);
                    while let Some(file) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let (b, o) = one(file, &mut h)?;
                        bytes += b;
                        ops += o;
                    }
                    anyhow::Ok((h, bytes, ops))
                })
            })
            .collect();
        handles.into_iter().map(|j| j.join().map_err(|_| anyhow!("worker panicked"))?).collect::<Vec<_>>()
    });
    let results = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(merge(results, started.elapsed()))
}

fn merge(results: Vec<(Histogram<u64>, u64, u64)>, elapsed: Duration) -> Outcome {
    let mut h = histogram();
    let mut bytes = 0;
    let mut ops = 0;
    for (part, b, o) in results {
        h.add(&part).expect("same histogram bounds");
        bytes += b;
        ops += o;
    }
    Outcome { seconds: elapsed.as_secs_f64(), bytes, ops, latency: Percentiles::of(&h) }
}

/// Small files: each file opened, read whole and closed, by `jobs` workers over a shuffled
/// order; latency per file.
pub fn small_files(
    rt: &tokio::runtime::Runtime,
    access: &Access,
    files: &[FileSpec],
    jobs: usize,
    seed: u64,
) -> anyhow::Result<Outcome> {
    let order = Arc::new(shuffled(files, seed));
    let next = Arc::new(AtomicUsize::new(0));
    match access {
        Access::Nfs { url_v3 } => rt.block_on(async {
            let ms = mounts(url_v3, jobs).await?;
            let started = Instant::now();
            let workers = ms.into_iter().map(|m| {
                let order = order.clone();
                let next = next.clone();
                async move {
                    let mut h = histogram();
                    let mut bytes = 0u64;
                    let mut n = 0u64;
                    let chunk = u64::from(m.get_max_read_size().max(4096));
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = order.get(i) else { break };
                        let began = Instant::now();
                        let obj = call(&format!("LOOKUP {}", file.name), m.lookup_path(&file.name)).await?;
                        call(&format!("ACCESS {}", file.name), m.access(obj.fh.clone(), ACCESS_READ)).await?;
                        let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
                        let mut got = 0u64;
                        while got < file.size_bytes {
                            let want = chunk.min(file.size_bytes - got) as u32;
                            let part = call(&format!("READ {} at {got}", file.name), m.read(obj.fh.clone(), got, want))
                                .await?;
                            if part.is_empty() {
                                break;
                            }
                            got += part.len() as u64;
                            crc.update(&part);
                        }
                        check(file, got, crc.finalize() as u32)?;
                        record(&mut h, began);
                        bytes += got;
                        n += 1;
                    }
                    anyhow::Ok((h, bytes, n))
                }
            });
            let results = futures::future::try_join_all(workers).await?;
            Ok(merge(results, started.elapsed()))
        }),
        Access::Path(root) => on_threads(jobs, &order, |file, h| {
            let began = Instant::now();
            let bytes = path_read_whole(root, file, file.size_bytes.max(4096), None)?;
            record(h, began);
            Ok((bytes, 1))
        }),
    }
}

/// Lists directory `dir` with every entry's attributes; `ops` = entries. Fails unless exactly
/// `expect_entries` entries (besides `.` and `..`) come back.
pub fn listing(
    rt: &tokio::runtime::Runtime,
    access: &Access,
    dir: &str,
    expect_entries: u64,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let entries = match access {
        Access::Nfs { url_v3 } => rt.block_on(async {
            let m = mount(url_v3).await?;
            let mut stream = call(&format!("LOOKUP {dir}"), m.readdirplus_path(dir)).await?;
            let mut n = 0u64;
            loop {
                match tokio::time::timeout(NFS_CALL_TIMEOUT, stream.try_next()).await {
                    Ok(Ok(Some(e))) => {
                        if e.file_name != "." && e.file_name != ".." {
                            if e.attr.is_none() {
                                bail!("READDIRPLUS {dir}: no attributes for {}", e.file_name);
                            }
                            n += 1;
                        }
                    }
                    Ok(Ok(None)) => break,
                    Ok(Err(e)) => bail!("READDIRPLUS {dir} after {n} entries: {e}"),
                    Err(_) => bail!("READDIRPLUS {dir}: no answer in {} s", NFS_CALL_TIMEOUT.as_secs()),
                }
            }
            anyhow::Ok(n)
        })?,
        Access::Path(root) => {
            let path = root.join(dir);
            let mut n = 0u64;
            for e in std::fs::read_dir(&path).with_context(|| format!("read_dir {}", path.display()))? {
                let e = e.with_context(|| format!("read_dir {}", path.display()))?;
                std::fs::symlink_metadata(e.path()).with_context(|| format!("stat {}", e.path().display()))?;
                n += 1;
            }
            n
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    if entries != expect_entries {
        bail!("listing {dir}: {entries} entries, expected {expect_entries}");
    }
    Ok(Outcome { seconds, bytes: 0, ops: entries, latency: Percentiles::default() })
}

pub const CKPT: &str = "ckpt";
pub const CKPT_TMP: &str = "ckpt.tmp";

/// Round `round`'s checkpoint bytes (deterministic).
pub fn ckpt_data(round: u32, size_bytes: u64) -> Bytes {
    let mut data = vec![0u8; size_bytes as usize];
    rand_chacha::ChaCha8Rng::seed_from_u64(0x636b_7074 + u64::from(round)).fill_bytes(&mut data);
    Bytes::from(data)
}

/// One checkpoint round over NFS: CREATE `ckpt.tmp` in `dir_fh`, 1 MiB UNSTABLE writes (`depth`
/// in flight), COMMIT (checking the write verifiers), CLOSE (NFSv4), RENAME over `ckpt`.
/// Returns the COMMIT's time in ms.
pub async fn ckpt_round_nfs(m: &dyn Mount, dir_fh: &Bytes, data: &Bytes, depth: usize) -> anyhow::Result<f64> {
    let obj = call("CREATE ckpt.tmp", m.create(dir_fh.clone(), CKPT_TMP, Some(0o644))).await?;
    let fh = obj.fh;
    let chunk_bytes = (MIB as usize).min(m.get_max_write_size().max(4096) as usize);
    let offsets: Vec<usize> = (0..data.len()).step_by(chunk_bytes).collect();
    let outcomes: Vec<Vec<nfs_rs::WriteOutcome>> = futures::stream::iter(offsets)
        .map(|at| {
            let fh = fh.clone();
            let piece = data.slice(at..(at + chunk_bytes).min(data.len()));
            async move {
                // A short write is completed by further writes of the rest.
                let mut done = 0usize;
                let mut acks = Vec::new();
                while done < piece.len() {
                    let ack =
                        call("WRITE ckpt.tmp", m.write(fh.clone(), (at + done) as u64, piece.slice(done..))).await?;
                    if ack.count == 0 {
                        bail!("WRITE ckpt.tmp at {}: the server accepted 0 bytes", at + done);
                    }
                    done += ack.count as usize;
                    acks.push(ack);
                }
                anyhow::Ok(acks)
            }
        })
        .buffered(depth.max(1))
        .try_collect()
        .await?;
    let outcomes: Vec<nfs_rs::WriteOutcome> = outcomes.into_iter().flatten().collect();
    let started = Instant::now();
    call("COMMIT ckpt.tmp", m.commit_write_batch(fh.clone(), 0, 0, &outcomes)).await?;
    let commit_ms = started.elapsed().as_secs_f64() * 1e3;
    // CLOSE over NFSv4 (nothing over NFSv3), as an application closes before renaming.
    call("CLOSE ckpt.tmp", m.close(fh)).await?;
    call("RENAME ckpt.tmp ckpt", m.rename(dir_fh.clone(), CKPT_TMP, dir_fh.clone(), CKPT)).await?;
    Ok(commit_ms)
}

/// One checkpoint round on a mount: write `dir/ckpt.tmp` in 1 MiB writes, fsync, rename over
/// `dir/ckpt`.
pub fn ckpt_round_path(dir: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = dir.join(CKPT_TMP);
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    for (i, piece) in data.chunks(MIB as usize).enumerate() {
        f.write_all(piece).with_context(|| format!("write {} at {}", tmp.display(), i as u64 * MIB))?;
    }
    f.sync_all().with_context(|| format!("fsync {}", tmp.display()))?;
    drop(f);
    let to = dir.join(CKPT);
    std::fs::rename(&tmp, &to).with_context(|| format!("rename {} to {}", tmp.display(), to.display()))
}

/// `rounds` checkpoint rounds of `size_bytes` into directory `dir` of the system; latency per
/// round (write + durable + rename). The last round's bytes stay as `dir/ckpt`.
pub fn checkpoint(
    rt: &tokio::runtime::Runtime,
    access: &Access,
    dir: &str,
    size_bytes: u64,
    rounds: u32,
    depth: usize,
) -> anyhow::Result<Outcome> {
    let mut h = histogram();
    let mut seconds = 0.0;
    let m = match access {
        Access::Nfs { url_v3 } => Some(rt.block_on(mount(url_v3))?),
        Access::Path(_) => None,
    };
    let dir_fh = match &m {
        Some(m) => Some(rt.block_on(call(&format!("LOOKUP {dir}"), m.lookup_path(dir)))?.fh),
        None => None,
    };
    for round in 0..rounds {
        let data = ckpt_data(round, size_bytes);
        let started = Instant::now();
        match (access, &m, &dir_fh) {
            (Access::Nfs { .. }, Some(m), Some(fh)) => {
                rt.block_on(ckpt_round_nfs(&**m, fh, &data, depth))?;
            }
            (Access::Path(root), _, _) => ckpt_round_path(&root.join(dir), &data)?,
            _ => unreachable!("an NFS access always has its mount"),
        }
        seconds += started.elapsed().as_secs_f64();
        record(&mut h, started);
    }
    Ok(Outcome { seconds, bytes: size_bytes * u64::from(rounds), ops: u64::from(rounds), latency: Percentiles::of(&h) })
}

/// Reads `dir/ckpt` back through the system and checks it is round `round`'s bytes.
pub fn verify_checkpoint(
    rt: &tokio::runtime::Runtime,
    access: &Access,
    dir: &str,
    size_bytes: u64,
    round: u32,
) -> anyhow::Result<()> {
    let data = ckpt_data(round, size_bytes);
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    crc.update(&data);
    let spec = FileSpec { name: format!("{dir}/{CKPT}"), size_bytes, crc32c: crc.finalize() as u32 };
    match access {
        Access::Nfs { url_v3 } => rt.block_on(async {
            let m = mount(url_v3).await?;
            let mut h = histogram();
            let chunk = READ_BYTES.min(u64::from(m.get_max_read_size().max(4096)));
            nfs_read_whole(&*m, &spec, 4, chunk, &mut h).await.map(|_| ())
        }),
        Access::Path(root) => path_read_whole(root, &spec, READ_BYTES, None).map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, data: &[u8]) -> FileSpec {
        let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
        crc.update(data);
        FileSpec { name: name.into(), size_bytes: data.len() as u64, crc32c: crc.finalize() as u32 }
    }

    #[test]
    fn shuffle_is_deterministic_and_a_permutation() {
        let files: Vec<FileSpec> = (0..50).map(|i| spec(&format!("f{i}"), &[i as u8])).collect();
        let a = shuffled(&files, 7);
        assert_eq!(a, shuffled(&files, 7));
        assert_ne!(a, shuffled(&files, 8));
        let mut names: Vec<_> = a.iter().map(|f| f.name.clone()).collect();
        names.sort();
        let mut want: Vec<_> = files.iter().map(|f| f.name.clone()).collect();
        want.sort();
        assert_eq!(names, want);
    }

    #[test]
    fn mount_workloads_read_check_and_write() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::fs::create_dir_all(dir.path().join("d/list"))?;
        let mut files = Vec::new();
        for i in 0..5u8 {
            let data = vec![i; 300_000 + usize::from(i)];
            std::fs::write(dir.path().join(format!("d/f{i}")), &data)?;
            files.push(spec(&format!("d/f{i}"), &data));
            std::fs::write(dir.path().join(format!("d/list/e{i}")), b"")?;
        }
        let access = Access::Path(dir.path().to_path_buf());
        let e = epoch(&rt, &access, &files, 2, 4, 1)?;
        assert_eq!(e.bytes, files.iter().map(|f| f.size_bytes).sum::<u64>());
        let s = small_files(&rt, &access, &files, 3, 2)?;
        assert_eq!(s.ops, 5);
        assert_eq!(listing(&rt, &access, "d/list", 5)?.ops, 5);
        assert!(listing(&rt, &access, "d/list", 6).is_err());
        checkpoint(&rt, &access, "d", 3 * MIB + 5, 2, 4)?;
        verify_checkpoint(&rt, &access, "d", 3 * MIB + 5, 1)?;
        assert!(verify_checkpoint(&rt, &access, "d", 3 * MIB + 5, 0).is_err());
        // A file whose bytes differ from the manifest fails the epoch.
        std::fs::write(dir.path().join("d/f3"), vec![9u8; 300_003])?;
        let err = epoch(&rt, &access, &files, 2, 4, 1).unwrap_err();
        assert!(format!("{err:#}").contains("d/f3"), "{err:#}");
        Ok(())
    }
}
