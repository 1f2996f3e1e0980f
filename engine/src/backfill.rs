//! The backfill engine: fills cache misses from the bucket.
//!
//! Pipeline. A reader (or the read-ahead) asks for blocks of one object version. Blocks already
//! being fetched are joined (single flight: two readers of one block cause one GET). The rest are
//! grouped into runs of contiguous blocks, cut at `fetch_bytes` (8–16 MiB), and each run becomes
//! one ranged GET with `If-Match: <ETag>`, started on the backfill runtime once the bucket has a
//! GET slot free (bounded in flight per bucket). The body streams in; each block is handed to its
//! waiters the moment its last byte arrives, and written to the blockstore as a clean extent.
//! The in-flight entry stays until that write completes, so a reader never misses a block that
//! is between the network and the cache.
//!
//! Failures. A retryable failure (503 SlowDown, 5xx, a reset, a short body) retries the blocks
//! not yet delivered, after a backoff with full jitter, up to the bucket's attempt limit. A 412
//! (the object changed) fails the waiters with `Changed` so the reader revalidates and reads the
//! new version; nothing of the old version is stored under the new one, because the version is
//! part of every cache key.
//!
//! Recently fetched blocks stay in memory too (FIFO, `recent_bytes_max`): a sequential reader
//! usually reads a block shortly after the read-ahead fetched it, and serving it from memory
//! spares the device a read right behind the write (measured with shared cores: cold reads
//! went from 0.43–0.49 to 0.46–0.55 of the raw client; a small gain, kept because it also cuts
//! the device's read load).
//!
//! Back-pressure and memory. At most `gets_in_flight_max` GETs per bucket; each holds at most one
//! partly assembled block; delivered blocks are owned by their waiters. The blockstore's request
//! queue is bounded; a backfill thread waits there, never a data-path core.
//!
//! Runs on: the backfill runtime (tokio, threads of its own); blockstore callbacks run on shard
//! threads and only complete channels.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use blockstore::{ExtentBuf, Key, PutOptions, Store};
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;

use crate::bucket::Bucket;
use crate::error::{EngineError, Result};
use crate::object::ObjectError;

/// The bytes of one whole block (shorter for an object's last block), or why not.
pub type BlockResult = Result<Block>;

/// One block's bytes as they came off the network: slices of the body chunks, never copied
/// (the only copy of fetched data is the one into the aligned buffer the cache writes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Block {
    parts: Vec<Bytes>,
    len: usize,
}

impl Block {
    fn push(&mut self, b: Bytes) {
        self.len += b.len();
        self.parts.push(b);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces covering bytes `from..to` of the block (clamped to its length).
    pub fn slice(&self, from: usize, to: usize) -> Vec<Bytes> {
        let to = to.min(self.len);
        let mut out = Vec::new();
        let mut at = 0;
        for p in &self.parts {
            let (start, end) = (at, at + p.len());
            at = end;
            if end <= from || start >= to {
                continue;
            }
            out.push(p.slice(from.max(start) - start..to.min(end) - start));
        }
        out
    }
}

pub type BlockFuture = Shared<BoxFuture<'static, BlockResult>>;

/// One version of one object, as the cache addresses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchTarget {
    /// Inode number: the cache key's object id.
    pub ino: u64,
    /// Content version: the cache key's version.
    pub version: u64,
    /// The object's key in the bucket.
    pub key: String,
    /// The ETag the version stands for (sent as If-Match).
    pub etag: Option<String>,
    pub size: u64,
    /// The path in the export, for messages.
    pub path: String,
}

impl FetchTarget {
    pub fn cache_key(&self, block: u64) -> Key {
        Key::new(self.ino, block, self.version)
    }
}

type InFlightKey = (u64, u64, u64);

#[derive(Debug, Default)]
pub struct BackfillCounters {
    pub blocks_fetched: AtomicU64,
    pub bytes_fetched: AtomicU64,
    pub gets: AtomicU64,
    pub cache_put_errors: AtomicU64,
    pub changed: AtomicU64,
    /// Blocks asked for ahead of readers (counted by the read path's read-ahead task).
    pub read_ahead_blocks: AtomicU64,
}

/// The backfill engine: one per appliance, shared by every bucket.
pub struct Backfill {
    store: Arc<Store>,
    block_bytes: u64,
    fetch_bytes: u64,
    inflight: Mutex<HashMap<InFlightKey, BlockFuture>>,
    recent: Mutex<Recent>,
    pub counters: BackfillCounters,
}

/// Blocks fetched lately, oldest first, within a byte budget.
#[derive(Default)]
struct Recent {
    blocks: HashMap<InFlightKey, Block>,
    order: std::collections::VecDeque<InFlightKey>,
    bytes: u64,
    bytes_max: u64,
}

impl Recent {
    fn insert(&mut self, k: InFlightKey, b: Block) {
        if self.bytes_max == 0 || b.len() as u64 > self.bytes_max {
            return;
        }
        if let Some(old) = self.blocks.insert(k, b.clone()) {
            self.bytes -= old.len() as u64;
        } else {
            self.order.push_back(k);
        }
        self.bytes += b.len() as u64;
        while self.bytes > self.bytes_max {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some(gone) = self.blocks.remove(&oldest) {
                self.bytes -= gone.len() as u64;
            }
        }
    }
}

impl std::fmt::Debug for Backfill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backfill")
            .field("block_bytes", &self.block_bytes)
            .field("fetch_bytes", &self.fetch_bytes)
            .finish()
    }
}

/// A block asked for: its future, and whether it joined a fetch already under way.
pub struct Ask {
    pub block: u64,
    pub future: BlockFuture,
    pub joined: bool,
}

type Waiter = futures::channel::oneshot::Sender<BlockResult>;

impl Backfill {
    pub fn new(store: Arc<Store>, block_bytes: u64, fetch_bytes: u64, recent_bytes_max: u64) -> Backfill {
        assert!(block_bytes > 0 && block_bytes <= blockstore::EXTENT_BYTES_MAX as u64);
        Backfill {
            store,
            block_bytes,
            fetch_bytes: fetch_bytes.max(block_bytes),
            inflight: Mutex::new(HashMap::new()),
            recent: Mutex::new(Recent { bytes_max: recent_bytes_max, ..Recent::default() }),
            counters: BackfillCounters::default(),
        }
    }

    pub fn block_bytes(&self) -> u64 {
        self.block_bytes
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn inflight(&self) -> MutexGuard<'_, HashMap<InFlightKey, BlockFuture>> {
        // Every change under the lock is one insert or remove: a poisoned map is consistent.
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A block of `target` fetched lately, if still held in memory.
    pub fn recent(&self, target: &FetchTarget, block: u64) -> Option<Block> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.blocks.get(&(target.ino, target.version, block)).cloned()
    }

    /// Number of blocks being fetched now.
    pub fn blocks_in_flight(&self) -> usize {
        self.inflight().len()
    }

    /// Asks for `blocks` (ascending, each below the object's block count) of `target`: joins
    /// fetches under way, starts GETs for the rest. `pin` stores the fetched blocks pinned.
    pub fn fetch(
        self: &Arc<Self>,
        bucket: &Arc<Bucket>,
        target: &Arc<FetchTarget>,
        blocks: &[u64],
        pin: bool,
    ) -> Vec<Ask> {
        let mut asks = Vec::with_capacity(blocks.len());
        let mut fresh: Vec<(u64, Waiter)> = Vec::new();
        {
            let mut inflight = self.inflight();
            for &block in blocks {
                debug_assert!(block * self.block_bytes < target.size.max(1));
                let k = (target.ino, target.version, block);
                if let Some(f) = inflight.get(&k) {
                    asks.push(Ask { block, future: f.clone(), joined: true });
                    continue;
                }
                let (tx, rx) = futures::channel::oneshot::channel::<BlockResult>();
                let fut: BlockFuture =
                    rx.map(|r| r.unwrap_or(Err(EngineError::ShuttingDown { op: "fetch" }))).boxed().shared();
                inflight.insert(k, fut.clone());
                asks.push(Ask { block, future: fut, joined: false });
                fresh.push((block, tx));
            }
        }
        // Runs of contiguous blocks, each at most fetch_bytes.
        let per_get = (self.fetch_bytes / self.block_bytes).max(1) as usize;
        let mut run: Vec<(u64, Waiter)> = Vec::new();
        for (block, tx) in fresh {
            let contiguous = run.last().is_some_and(|(b, _)| *b + 1 == block);
            // Runs are cut at multiples of fetch_bytes in the object, not relative to where a
            // run starts: servers store large objects in parts (multipart part size, SeaweedFS
            // chunks), and a misaligned range makes them read two parts for one. Measured with
            // SeaweedFS: aligned GETs lifted cold reads from 0.69–0.84 to medians of 0.82–0.96
            // of the raw client in five runs (perf/README.md).
            let boundary = block % per_get as u64 == 0;
            if !run.is_empty() && (!contiguous || boundary) {
                self.start_get(bucket, target, std::mem::take(&mut run), pin);
            }
            run.push((block, tx));
        }
        if !run.is_empty() {
            self.start_get(bucket, target, run, pin);
        }
        asks
    }

    fn start_get(
        self: &Arc<Self>,
        bucket: &Arc<Bucket>,
        target: &Arc<FetchTarget>,
        run: Vec<(u64, Waiter)>,
        pin: bool,
    ) {
        let (me, bucket2, target) = (self.clone(), bucket.clone(), target.clone());
        bucket.runtime().spawn(async move { me.run_get(&bucket2, &target, run, pin).await });
    }

    /// One ranged GET for a run of blocks, retried from the first block not yet delivered.
    async fn run_get(
        self: &Arc<Self>,
        bucket: &Arc<Bucket>,
        target: &Arc<FetchTarget>,
        run: Vec<(u64, Waiter)>,
        pin: bool,
    ) {
        let mut pending: std::collections::VecDeque<(u64, Waiter)> = run.into();
        let slot = bucket.get_slot().await;
        let policy = bucket.retry_policy();
        let mut attempt = 1;
        while let Some(&(first, _)) = pending.front() {
            let last = pending.back().map_or(first, |(b, _)| *b);
            let start = first * self.block_bytes;
            let end = ((last + 1) * self.block_bytes).min(target.size);
            self.counters.gets.fetch_add(1, Ordering::Relaxed);
            let failure = match bucket.get_range_once(&target.key, start..end, target.etag.as_deref()).await {
                Ok(mut body) => {
                    let mut block = Block::default();
                    let mut failure = None;
                    while let Some(chunk) = body.next().await {
                        match chunk {
                            Ok(mut chunk) => {
                                bucket.count_received(chunk.len() as u64);
                                while !chunk.is_empty() {
                                    let Some(&(b, _)) = pending.front() else { break };
                                    let want = self.block_len(target, b) as usize;
                                    let take = (want - block.len()).min(chunk.len());
                                    block.push(chunk.split_to(take));
                                    if block.len() == want {
                                        if let Some((b, tx)) = pending.pop_front() {
                                            self.deliver(target, b, std::mem::take(&mut block), tx, pin);
                                        }
                                    }
                                }
                            }
                            Err(e) => {
                                bucket.count_error(&e);
                                failure = Some(e);
                                break;
                            }
                        }
                    }
                    failure
                }
                Err(e) => Some(e),
            };
            let failure = failure.or_else(|| {
                // A body of the right length delivers every block; anything else is a short body.
                (!pending.is_empty()).then(|| ObjectError::Transient {
                    op: "get",
                    key: target.key.clone(),
                    detail: "body ended before the last block".into(),
                })
            });
            let Some(e) = failure else { break };
            if e.is_retryable() && attempt < policy.attempts_max {
                tracing::debug!(key = %target.key, error = %e, attempt, "GET failed; retrying the rest");
                bucket.count_retry();
                tokio::time::sleep(policy.backoff(attempt, &e)).await;
                attempt += 1;
                continue;
            }
            let err = if e.is_precondition() || e.is_not_found() {
                self.counters.changed.fetch_add(1, Ordering::Relaxed);
                EngineError::Changed { op: "read", path: target.path.clone() }
            } else {
                EngineError::Bucket {
                    op: "read",
                    path: target.path.clone(),
                    bucket: bucket.name().to_string(),
                    source: Box::new(e),
                }
            };
            for (block, tx) in pending.drain(..) {
                // Forget the fetch before failing its waiters: a reader that retries the moment
                // it sees the error must start a new fetch, not join this failed one (found by
                // the faults test, which retries at once after the bucket recovers).
                self.inflight().remove(&(target.ino, target.version, block));
                let _ = tx.send(Err(err.clone()));
            }
        }
        drop(slot);
    }

    fn block_len(&self, target: &FetchTarget, block: u64) -> u64 {
        (target.size - block * self.block_bytes).min(self.block_bytes)
    }

    /// Hands a block to its waiters and writes it to the cache; the in-flight entry goes when the
    /// write is done (or failed).
    fn deliver(self: &Arc<Self>, target: &FetchTarget, block: u64, bytes: Block, tx: Waiter, pin: bool) {
        self.counters.blocks_fetched.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_fetched.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let _ = tx.send(Ok(bytes.clone()));
        let k = (target.ino, target.version, block);
        let parts: Vec<&[u8]> = bytes.parts.iter().map(|p| &p[..]).collect();
        let Some(extent) = ExtentBuf::from_parts(&parts) else {
            // block_bytes is checked against the extent bound at construction; only an empty
            // block (impossible: blocks lie below the object's size) could get here.
            self.inflight().remove(&k);
            return;
        };
        let me = self.clone();
        let path = target.path.clone();
        let key = target.cache_key(block);
        let opts = PutOptions { dirty: false, pinned: pin };
        let kept = bytes.clone();
        let sent = self.store.put_then(key, extent, opts, move |r| {
            if let Err(e) = r {
                me.counters.cache_put_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(path = %path, block, error = %e, "fetched block not cached");
            }
            me.recent.lock().unwrap_or_else(|p| p.into_inner()).insert(k, kept);
            me.inflight().remove(&k);
        });
        if let Err(e) = sent {
            self.counters.cache_put_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(path = %target.path, block, error = %e, "fetched block not cached");
            self.inflight().remove(&k);
        }
    }
}
