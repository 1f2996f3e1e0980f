//! The engine: buckets, exports, the read path, stats. The one object protocols talk to.
//!
//! Read path. A read of `len` bytes at `offset` of a file maps to cache blocks (`block_bytes`,
//! 1 MiB by default). Every block is asked of the blockstore at once; hits are served from the
//! block buffers without a request to the bucket. Misses go to the backfill engine, which joins
//! a fetch already under way or starts ranged GETs (see `backfill`). The read-ahead sees the
//! read and, for a sequential stream, asks the backfill for the blocks ahead of it (after
//! checking which are cached). If the object changed in the bucket under the read (412), the
//! file is revalidated with a HEAD and the read is done once more on the new version.
//!
//! Threads. Callers await from any executor; the engine never blocks them on the bucket: object
//! requests run on the backfill runtime (its own tokio threads, `backfill_threads`), cache I/O
//! on the blockstore's shard threads, and answers come back through channels.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use blockstore::{ReadBuf, Store, StoreError};
use bytes::Bytes;

use crate::backfill::{Backfill, FetchTarget};
use crate::bucket::{Bucket, RetryPolicy};
use crate::error::{EngineError, Result};
use crate::latency::LatencyRecorder;
use crate::meta::{InodeRecord, Kind, MetaStore};
use crate::namespace::{ExportSpec, FileHandle, Namespace};
use crate::object::ObjectClient;
use crate::readahead::ReadAhead;
use crate::stats::{CacheStats, EngineStats};

/// The most one read returns (bounds the blocks one request holds).
pub const READ_BYTES_MAX: u64 = 64 << 20;

/// Engine-wide settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Cache block: the unit of the blockstore and of single-flight (≤ 2 MiB).
    pub block_bytes: u64,
    /// Largest ranged GET the backfill sends (misses are coalesced up to it).
    pub fetch_bytes: u64,
    /// Largest read-ahead window of a sequential stream (0: no read-ahead).
    pub read_ahead_bytes_max: u64,
    /// Threads of the backfill runtime.
    pub backfill_threads: usize,
    /// Fetched blocks also kept in memory, oldest dropped first (0: none).
    pub recent_bytes_max: u64,
    pub retry: RetryPolicy,
    /// The write path: buffering, publishing to the bucket.
    pub write: crate::write::WriteConfig,
    /// Bounds of the lock manager's tables.
    pub locks: crate::locks::LockLimits,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            block_bytes: 1 << 20,
            fetch_bytes: 16 << 20,
            read_ahead_bytes_max: 64 << 20,
            backfill_threads: 2,
            recent_bytes_max: 256 << 20,
            retry: RetryPolicy::default(),
            write: crate::write::WriteConfig::default(),
            locks: crate::locks::LockLimits::default(),
        }
    }
}

/// A bucket to serve: its name in the configuration, its client, its GET bound.
#[derive(Debug, Clone)]
pub struct BucketSpec {
    pub name: String,
    pub client: Arc<dyn ObjectClient>,
    pub gets_in_flight_max: usize,
}

/// Bytes of a read: views into a cache block buffer, or into the network buffers a block was
/// fetched in (several pieces), never copied.
#[derive(Debug)]
pub enum ReadChunk {
    Cache(ReadBuf),
    Fetched(Vec<Bytes>),
}

impl ReadChunk {
    /// The pieces, in order.
    pub fn pieces(&self) -> Vec<&[u8]> {
        match self {
            ReadChunk::Cache(b) => vec![b.bytes()],
            ReadChunk::Fetched(parts) => parts.iter().map(|p| &p[..]).collect(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ReadChunk::Cache(b) => b.len(),
            ReadChunk::Fetched(parts) => parts.iter().map(|p| p.len()).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Default)]
pub struct ReadReply {
    pub chunks: Vec<ReadChunk>,
    /// The read reached the end of the file.
    pub eof: bool,
}

impl ReadReply {
    pub fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes in one buffer (a copy: for tests and tools, not the data path).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for c in &self.chunks {
            for p in c.pieces() {
                out.extend_from_slice(p);
            }
        }
        out
    }
}

/// Where one block of a read comes from.
enum Piece {
    /// Fetched lately, still in memory.
    Memory(Vec<Bytes>),
    /// Asked of the blockstore; the answer comes on this channel.
    Cache(futures::channel::oneshot::Receiver<std::result::Result<ReadBuf, StoreError>>),
    /// The blockstore could not be asked.
    Failed(StoreError),
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub reads: AtomicU64,
    pub read_bytes: AtomicU64,
    pub block_hits: AtomicU64,
    pub block_misses: AtomicU64,
    pub block_joins: AtomicU64,
    pub read_ahead_blocks: AtomicU64,
    pub cache_read_errors: AtomicU64,
}

/// The engine.
pub struct Engine {
    config: EngineConfig,
    rt: Option<tokio::runtime::Runtime>,
    store: Arc<Store>,
    meta: Arc<MetaStore>,
    pub(crate) backfill: Arc<Backfill>,
    buckets: BTreeMap<String, Arc<Bucket>>,
    exports: BTreeMap<u32, Arc<Namespace>>,
    readahead: ReadAhead,
    pub(crate) counters: Counters,
    read_latency: LatencyRecorder,
    started: Instant,
    pub(crate) writes: crate::write::WriteBack,
    locks: Arc<crate::locks::LockManager>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("buckets", &self.buckets.keys()).field("exports", &self.exports.len()).finish()
    }
}

impl Engine {
    /// Starts the engine over an open blockstore and the metadata store in `metadata_dir`.
    pub fn new(
        config: EngineConfig,
        store: Store,
        metadata_dir: &Path,
        buckets: Vec<BucketSpec>,
        exports: Vec<ExportSpec>,
    ) -> Result<Engine> {
        let op = "start engine";
        if config.block_bytes == 0 || config.block_bytes > blockstore::EXTENT_BYTES_MAX as u64 {
            return Err(EngineError::Invalid {
                op,
                path: String::new(),
                detail: format!("block size {} not in 1..={}", config.block_bytes, blockstore::EXTENT_BYTES_MAX),
            });
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.backfill_threads.max(1))
            .thread_name("backfill")
            .enable_all()
            .build()
            .map_err(|e| EngineError::Invalid { op, path: String::new(), detail: format!("backfill runtime: {e}") })?;
        let meta = Arc::new(MetaStore::open(metadata_dir)?);
        let store = Arc::new(store);
        let backfill =
            Arc::new(Backfill::new(store.clone(), config.block_bytes, config.fetch_bytes, config.recent_bytes_max));
        let mut by_name = BTreeMap::new();
        for b in buckets {
            let bucket = Bucket::new(&b.name, b.client, rt.handle().clone(), b.gets_in_flight_max, config.retry);
            if by_name.insert(b.name.clone(), Arc::new(bucket)).is_some() {
                return Err(EngineError::Invalid { op, path: b.name, detail: "bucket configured twice".into() });
            }
        }
        let mut namespaces = BTreeMap::new();
        for spec in exports {
            let bucket = by_name.get(&spec.bucket).cloned().ok_or_else(|| EngineError::Unknown {
                op,
                what: "bucket",
                name: spec.bucket.clone(),
            })?;
            let ns = Namespace::open(spec, bucket, meta.clone())?;
            namespaces.insert(ns.export_id(), Arc::new(ns));
        }
        let config_write = config.write.clone();
        Ok(Engine {
            readahead: ReadAhead::new(config.block_bytes, config.read_ahead_bytes_max, config.fetch_bytes),
            locks: Arc::new(crate::locks::LockManager::new(config.locks)),
            config,
            rt: Some(rt),
            store,
            meta,
            backfill,
            buckets: by_name,
            exports: namespaces,
            counters: Counters::default(),
            read_latency: LatencyRecorder::new(),
            started: Instant::now(),
            writes: crate::write::WriteBack::new(config_write),
        })
    }

    /// The one lock manager every protocol shares (byte-range locks, share reservations).
    pub fn locks(&self) -> &Arc<crate::locks::LockManager> {
        &self.locks
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn meta(&self) -> &Arc<MetaStore> {
        &self.meta
    }

    pub fn bucket(&self, name: &str) -> Option<&Arc<Bucket>> {
        self.buckets.get(name)
    }

    pub fn exports(&self) -> impl Iterator<Item = &Arc<Namespace>> {
        self.exports.values()
    }

    /// The export at `name` in the pseudo-filesystem.
    pub fn export(&self, name: &str) -> Option<&Arc<Namespace>> {
        self.exports.values().find(|ns| ns.spec().name == name)
    }

    /// The export a handle belongs to.
    pub fn export_of(&self, op: &'static str, fh: &FileHandle) -> Result<&Arc<Namespace>> {
        self.exports
            .get(&fh.export)
            .ok_or_else(|| EngineError::Stale { op, detail: format!("no export with id {}", fh.export) })
    }

    /// Handle on the backfill runtime (for callers that must run bucket work there).
    pub fn runtime(&self) -> Option<&tokio::runtime::Handle> {
        self.rt.as_ref().map(|r| r.handle())
    }

    /// Reads up to `len` bytes at `offset` of the file `fh` names (at most [`READ_BYTES_MAX`]
    /// at once: a longer read returns short, without `eof`).
    pub async fn read(&self, fh: &FileHandle, offset: u64, len: u64) -> Result<ReadReply> {
        let op = "read";
        let len = len.min(READ_BYTES_MAX);
        let started = Instant::now();
        let ns = self.export_of(op, fh)?;
        let rec = ns.resolve(op, fh)?;
        let reply = match self.read_record(ns, &rec, offset, len).await {
            Err(EngineError::Changed { .. }) => {
                // The object changed under us: learn its new version and read that.
                let rec = ns.revalidate_file(op, &rec, true).await?;
                self.read_record(ns, &rec, offset, len).await
            }
            other => other,
        }?;
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        self.counters.read_bytes.fetch_add(reply.len() as u64, Ordering::Relaxed);
        self.read_latency.record(started.elapsed());
        Ok(reply)
    }

    fn target(&self, ns: &Namespace, rec: &InodeRecord) -> Arc<FetchTarget> {
        Arc::new(FetchTarget {
            ino: rec.ino,
            version: rec.content_version,
            key: ns.object_key(&rec.path),
            etag: rec.etag.clone(),
            size: rec.size,
            path: ns.display(&rec.path),
        })
    }

    /// Reads from one version of a file.
    pub async fn read_record(&self, ns: &Namespace, rec: &InodeRecord, offset: u64, len: u64) -> Result<ReadReply> {
        let op = "read";
        if rec.kind == Kind::Dir {
            return Err(EngineError::IsADirectory { op, path: ns.display(&rec.path) });
        }
        if rec.kind == Kind::Symlink {
            return Err(EngineError::Invalid { op, path: ns.display(&rec.path), detail: "a symbolic link".into() });
        }
        if rec.local.is_some() {
            return self.read_local(ns, rec, offset, len).await;
        }
        let target = self.target(ns, rec);
        self.read_target(ns, &target, offset, len).await
    }

    /// Reads from one version of an object as the cache addresses it.
    pub(crate) async fn read_target(
        &self,
        ns: &Namespace,
        target: &Arc<FetchTarget>,
        offset: u64,
        len: u64,
    ) -> Result<ReadReply> {
        let size = target.size;
        if offset >= size || len == 0 {
            return Ok(ReadReply { chunks: Vec::new(), eof: offset >= size });
        }
        let end = offset.saturating_add(len).min(size);
        let bb = self.config.block_bytes;
        let target = target.clone();
        // Ask the cache for every block at once.
        let mut pieces = Vec::new();
        for block in offset / bb..=(end - 1) / bb {
            let from = offset.max(block * bb) - block * bb;
            let to = end.min((block + 1) * bb) - block * bb;
            if let Some(bytes) = self.backfill.recent(&target, block) {
                // Fetched lately and still in memory: no device read.
                pieces.push((block, from, to, Piece::Memory(bytes.slice(from as usize, to as usize))));
                continue;
            }
            let (tx, rx) = futures::channel::oneshot::channel::<std::result::Result<ReadBuf, StoreError>>();
            let key = target.cache_key(block);
            // `to - from` is at most block_bytes, which fits the extent bound (a usize).
            let sent = self.store.get_then(key, from, (to - from) as usize, move |r| {
                let _ = tx.send(r);
            });
            pieces.push((block, from, to, sent.map_or_else(Piece::Failed, |()| Piece::Cache(rx))));
        }
        let mut chunks: Vec<Option<ReadChunk>> = Vec::with_capacity(pieces.len());
        let mut misses = Vec::new();
        for (i, (block, from, to, rx)) in pieces.iter_mut().enumerate() {
            let got = match std::mem::replace(rx, Piece::Failed(StoreError::Closed)) {
                Piece::Cache(rx) => rx.await.unwrap_or(Err(StoreError::Closed)).map(ReadChunk::Cache),
                Piece::Memory(parts) => Ok(ReadChunk::Fetched(parts)),
                Piece::Failed(e) => Err(e),
            };
            match got {
                Ok(chunk) => {
                    self.counters.block_hits.fetch_add(1, Ordering::Relaxed);
                    chunks.push(Some(chunk));
                }
                Err(e) => {
                    if !matches!(e, StoreError::NotFound { .. }) {
                        // A bad sector or a failed device: fetch it again from the bucket.
                        self.counters.cache_read_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(path = %target.path, block = *block, error = %e, "cache read failed; refetching");
                    }
                    self.counters.block_misses.fetch_add(1, Ordering::Relaxed);
                    chunks.push(None);
                    misses.push((i, *block, *from, *to));
                }
            }
        }
        // Read-ahead for a sequential stream (after the demand misses, so they go first).
        let ahead = self.readahead.on_read(target.ino, offset, end - offset, size);
        if !misses.is_empty() {
            // Demand misses and the read-ahead go to the backfill together, so contiguous blocks
            // share one GET (on a miss the network dominates; checking the cache first is cheap).
            let mut blocks: Vec<u64> = misses.iter().map(|m| m.1).collect();
            if !ahead.is_empty() {
                let extra = missing_blocks(&self.store, &target, ahead, false).await;
                self.counters.read_ahead_blocks.fetch_add(extra.len() as u64, Ordering::Relaxed);
                blocks.extend(extra);
                blocks.sort_unstable();
                blocks.dedup();
            }
            let mut asks = self.backfill.fetch(ns.bucket(), &target, &blocks, false);
            for (i, block, from, to) in misses {
                let Some(at) = asks.iter().position(|a| a.block == block) else { continue };
                let ask = asks.swap_remove(at);
                if ask.joined {
                    self.counters.block_joins.fetch_add(1, Ordering::Relaxed);
                }
                let block = ask.future.await?;
                if let Some(slot) = chunks.get_mut(i) {
                    *slot = Some(ReadChunk::Fetched(block.slice(from as usize, to as usize)));
                }
            }
        } else if !ahead.is_empty() {
            self.read_ahead(ns, &target, ahead);
        }
        Ok(ReadReply { chunks: chunks.into_iter().flatten().collect(), eof: end == size })
    }

    /// Fetches `blocks` of `target` ahead of a reader: those not cached and not in flight.
    fn read_ahead(&self, ns: &Namespace, target: &Arc<FetchTarget>, blocks: std::ops::Range<u64>) {
        let (store, backfill, bucket, target) =
            (self.store.clone(), self.backfill.clone(), ns.bucket().clone(), target.clone());
        let me_counters = self.backfill.clone();
        ns.bucket().runtime().spawn(async move {
            let missing = missing_blocks(&store, &target, blocks, false).await;
            me_counters.counters.read_ahead_blocks.fetch_add(missing.len() as u64, Ordering::Relaxed);
            if !missing.is_empty() {
                drop(backfill.fetch(&bucket, &target, &missing, false));
            }
        });
    }

    /// Blocks being fetched now (also those between the network and the cache).
    pub fn backfill_blocks_in_flight(&self) -> usize {
        self.backfill.blocks_in_flight()
    }

    /// A snapshot of every counter.
    pub fn stats(&self) -> EngineStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut cache = CacheStats::default();
        if let Ok(shards) = self.store.stats() {
            let sb = self.store.superblock();
            cache.capacity_bytes = u64::from(sb.segment_count) * sb.segment_bytes;
            for s in shards {
                cache.data_bytes += s.data_bytes;
                cache.dirty_bytes += s.dirty_bytes;
                cache.pinned_bytes += s.pinned_bytes;
                cache.extents += s.extents;
                cache.segments_total += s.segments_total;
                cache.segments_free += s.segments_free;
                cache.extents_evicted += s.extents_evicted;
                cache.checksum_errors += s.checksum_errors;
                if let Some(p) = s.poisoned {
                    cache.poisoned.push(format!("shard {}: {p}", s.shard));
                }
            }
        }
        EngineStats {
            uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            reads: load(&c.reads),
            read_bytes: load(&c.read_bytes),
            block_hits: load(&c.block_hits),
            block_misses: load(&c.block_misses),
            block_joins: load(&c.block_joins),
            read_ahead_blocks: load(&c.read_ahead_blocks) + load(&self.backfill.counters.read_ahead_blocks),
            stale_objects: load(&self.backfill.counters.changed),
            read_latency: self.read_latency.summary(),
            cache,
            buckets: self.buckets.values().map(|b| b.stats()).collect(),
            keys_skipped: self.exports.values().map(|ns| ns.keys_skipped.load(Ordering::Relaxed)).sum(),
            writes: self.write_stats(),
        }
    }

    /// Makes everything cached durable and stops the backfill runtime (GETs in flight are
    /// dropped; nothing they would have written is needed for correctness).
    pub fn shutdown(mut self) -> Result<()> {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
        self.store.flush().map_err(|e| EngineError::Cache { op: "shutdown", path: String::new(), source: Box::new(e) })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Whether each of `blocks` of `target` is cached: `None` not cached, `Some(pinned)` cached.
pub(crate) async fn block_states(
    store: &Arc<Store>,
    target: &FetchTarget,
    blocks: std::ops::Range<u64>,
) -> Vec<(u64, Option<bool>)> {
    let mut waits = Vec::new();
    for block in blocks {
        let key = target.cache_key(block);
        let (tx, rx) = futures::channel::oneshot::channel::<Option<bool>>();
        let sent = store.run_for_key(&key, move |s| {
            let _ = tx.send(s.is_pinned(&key));
        });
        waits.push((block, sent.map(|()| rx)));
    }
    let mut states = Vec::with_capacity(waits.len());
    for (block, rx) in waits {
        let state = match rx {
            Ok(rx) => rx.await.unwrap_or(None),
            Err(_) => None,
        };
        states.push((block, state));
    }
    states
}

/// Which of `blocks` of `target` are not in the cache (with `want_pinned`: not cached pinned).
pub(crate) async fn missing_blocks(
    store: &Arc<Store>,
    target: &FetchTarget,
    blocks: std::ops::Range<u64>,
    want_pinned: bool,
) -> Vec<u64> {
    block_states(store, target, blocks)
        .await
        .into_iter()
        .filter(|(_, state)| match state {
            Some(pinned) => want_pinned && !pinned,
            None => true,
        })
        .map(|(block, _)| block)
        .collect()
}

/// Pins a cached block in place: reads it from the cache and writes it back pinned (no request
/// to the bucket). False when it is no longer cached.
pub(crate) async fn repin_block(store: &Arc<Store>, target: &FetchTarget, block: u64, len: usize) -> Result<bool> {
    let key = target.cache_key(block);
    let (tx, rx) = futures::channel::oneshot::channel();
    store
        .get_then(key, 0, len, move |r| {
            let _ = tx.send(r);
        })
        .map_err(|e| EngineError::Cache { op: "pin", path: target.path.clone(), source: Box::new(e) })?;
    let buf = match rx.await.unwrap_or(Err(StoreError::Closed)) {
        Ok(buf) => buf,
        Err(StoreError::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(EngineError::Cache { op: "pin", path: target.path.clone(), source: Box::new(e) }),
    };
    let Some(extent) = blockstore::ExtentBuf::from_parts(&[buf.bytes()]) else { return Ok(false) };
    let (tx, rx) = futures::channel::oneshot::channel();
    let opts = blockstore::PutOptions { dirty: false, pinned: true };
    store
        .put_then(key, extent, opts, move |r| {
            let _ = tx.send(r);
        })
        .map_err(|e| EngineError::Cache { op: "pin", path: target.path.clone(), source: Box::new(e) })?;
    rx.await.unwrap_or(Err(StoreError::Closed)).map_err(|e| EngineError::Cache {
        op: "pin",
        path: target.path.clone(),
        source: Box::new(e),
    })?;
    Ok(true)
}
