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
use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;

use crate::bucket::Bucket;
use crate::error::{EngineError, Result};
use crate::object::ObjectError;

/// The bytes of one whole block (shorter for an object's last block), or why not.
pub type BlockResult = Result<Bytes>;
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
}

/// The backfill engine: one per appliance, shared by every bucket.
pub struct Backfill {
    store: Arc<Store>,
    block_bytes: u64,
    fetch_bytes: u64,
    inflight: Mutex<HashMap<InFlightKey, BlockFuture>>,
    pub counters: BackfillCounters,
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
    pub fn new(store: Arc<Store>, block_bytes: u64, fetch_bytes: u64) -> Backfill {
        assert!(block_bytes > 0 && block_bytes <= blockstore::EXTENT_BYTES_MAX as u64);
        Backfill {
            store,
            block_bytes,
            fetch_bytes: fetch_bytes.max(block_bytes),
            inflight: Mutex::new(HashMap::new()),
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
            if !run.is_empty() && (!contiguous || run.len() >= per_get) {
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
                    let mut buf = BytesMut::new();
                    let mut failure = None;
                    while let Some(chunk) = body.next().await {
                        match chunk {
                            Ok(mut chunk) => {
                                bucket.count_received(chunk.len() as u64);
                                while !chunk.is_empty() {
                                    let Some(&(block, _)) = pending.front() else { break };
                                    let want = self.block_len(target, block) as usize;
                                    if buf.capacity() < want {
                                        buf.reserve(want - buf.len());
                                    }
                                    let take = (want - buf.len()).min(chunk.len());
                                    buf.extend_from_slice(&chunk.split_to(take));
                                    if buf.len() == want {
                                        let bytes = buf.split().freeze();
                                        if let Some((block, tx)) = pending.pop_front() {
                                            self.deliver(target, block, bytes, tx, pin);
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
                let _ = tx.send(Err(err.clone()));
                self.inflight().remove(&(target.ino, target.version, block));
            }
        }
        drop(slot);
    }

    fn block_len(&self, target: &FetchTarget, block: u64) -> u64 {
        (target.size - block * self.block_bytes).min(self.block_bytes)
    }

    /// Hands a block to its waiters and writes it to the cache; the in-flight entry goes when the
    /// write is done (or failed).
    fn deliver(self: &Arc<Self>, target: &FetchTarget, block: u64, bytes: Bytes, tx: Waiter, pin: bool) {
        self.counters.blocks_fetched.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_fetched.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let _ = tx.send(Ok(bytes.clone()));
        let k = (target.ino, target.version, block);
        let Some(extent) = ExtentBuf::from_bytes(&bytes, None) else {
            // block_bytes is checked against the extent bound at construction; only an empty
            // block (impossible: blocks lie below the object's size) could get here.
            self.inflight().remove(&k);
            return;
        };
        let me = self.clone();
        let path = target.path.clone();
        let key = target.cache_key(block);
        let opts = PutOptions { dirty: false, pinned: pin };
        let sent = self.store.put_then(key, extent, opts, move |r| {
            if let Err(e) = r {
                me.counters.cache_put_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(path = %path, block, error = %e, "fetched block not cached");
            }
            me.inflight().remove(&k);
        });
        if let Err(e) = sent {
            self.counters.cache_put_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(path = %target.path, block, error = %e, "fetched block not cached");
            self.inflight().remove(&k);
        }
    }
}
