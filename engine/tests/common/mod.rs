//! Shared set-up of the engine tests: a real blockstore on a file, the metadata store, an
//! engine over an in-memory bucket.
#![allow(clippy::unwrap_used, dead_code)] // test setup: a failure is the test failing

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use blockstore::{DeviceSpec, FormatOptions, Store, StoreConfig};
use engine::object::memory::MemoryClient;
use engine::{BucketSpec, Engine, EngineConfig, ExportSpec, FileHandle};

pub const MIB: u64 = 1 << 20;

pub struct Dirs {
    pub root: PathBuf,
}

impl Dirs {
    pub fn new(name: &str) -> Dirs {
        let root = std::env::temp_dir().join(format!("bucketfs-read-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let cache = root.join("cache.img");
        let f = std::fs::File::create(&cache).unwrap();
        f.set_len(512 * MIB).unwrap();
        blockstore::format(&spec(&cache), &FormatOptions { segment_bytes: 16 * MIB, shard_count: 2 }).unwrap();
        Dirs { root }
    }
    pub fn cache(&self) -> PathBuf {
        self.root.join("cache.img")
    }
    pub fn meta(&self) -> PathBuf {
        self.root.join("meta")
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub fn spec(path: &Path) -> DeviceSpec {
    DeviceSpec::File { path: path.to_path_buf(), iopoll: false }
}

pub fn engine(dirs: &Dirs, client: &MemoryClient, ttl: Duration) -> Engine {
    let store = Store::open(&spec(&dirs.cache()), StoreConfig::default()).unwrap();
    let mut export = ExportSpec::new("/data", "b");
    export.listing_ttl = ttl;
    let buckets = vec![BucketSpec { name: "b".into(), client: Arc::new(client.clone()), gets_in_flight_max: 8 }];
    Engine::new(EngineConfig::default(), store, &dirs.meta(), buckets, vec![export]).unwrap()
}

pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 12) as u8)).collect()
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

pub async fn handle_of(e: &Engine, path: &str) -> FileHandle {
    let ns = e.export("/data").unwrap();
    let rec = ns.lookup_path(path).await.unwrap();
    ns.handle(&rec)
}
