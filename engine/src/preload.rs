//! Preload: pull a prefix or a manifest of keys into the cache ahead of an epoch.
//!
//! The request and event types are the wire format of the admin endpoint's `POST /v1/preload`
//! (one JSON request, then one JSON event per line back).

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PreloadRequest {
    /// The bucket's name in the configuration.
    pub bucket: String,
    /// Keys under this prefix; with a manifest, its keys are taken relative to this prefix.
    pub prefix: String,
    /// Keys to load instead of listing the prefix (one per line in `--manifest FILE`).
    pub manifest: Option<Vec<String>>,
    /// Keep the loaded blocks in the cache until they are deleted.
    pub pin: bool,
    /// At most this many requests to the bucket per second (None: only the in-flight bound).
    pub requests_per_sec_max: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PreloadProgress {
    pub objects_done: u64,
    /// Objects found so far; final once `listing_done`.
    pub objects_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub listing_done: bool,
    pub elapsed_ms: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PreloadReport {
    /// Objects and bytes fetched from the bucket.
    pub fetched_objects: u64,
    pub fetched_bytes: u64,
    /// Objects whose every block was already cached.
    pub cached_objects: u64,
    pub cached_bytes: u64,
    /// Objects not loaded, with the reason (missing key, not a valid name, a failed request).
    pub skipped: Vec<PreloadSkip>,
    /// Requests sent to the bucket (GET, HEAD, LIST).
    pub requests: u64,
    pub elapsed_ms: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PreloadSkip {
    pub key: String,
    pub reason: String,
}

/// One line of the preload stream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PreloadEvent {
    Progress(PreloadProgress),
    Skipped(PreloadSkip),
    Done(PreloadReport),
    /// The preload as a whole failed (unknown bucket, listing failed); nothing more follows.
    Failed {
        error: String,
    },
}

// ---------------------------------------------------------------------------------------------
// The preload itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::mpsc;

use crate::backfill::FetchTarget;
use crate::engine::{block_states, repin_block, Engine};
use crate::object::ObjectMeta;

/// Objects listed ahead of the fetchers at most (bounds memory for huge prefixes).
const LISTED_AHEAD_MAX: usize = 10_000;
/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Spaces requests out to at most `per_sec` a second.
struct RateLimit {
    interval: Option<Duration>,
    next: tokio::sync::Mutex<Instant>,
}

impl RateLimit {
    fn new(per_sec: Option<u32>) -> RateLimit {
        let interval = per_sec.filter(|r| *r > 0).map(|r| Duration::from_secs(1) / r);
        RateLimit { interval, next: tokio::sync::Mutex::new(Instant::now()) }
    }

    async fn wait(&self) {
        let Some(interval) = self.interval else { return };
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(Instant::now());
            *next = at + interval;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

#[derive(Default)]
struct Tally {
    objects_total: AtomicU64,
    bytes_total: AtomicU64,
    objects_done: AtomicU64,
    bytes_done: AtomicU64,
    fetched_objects: AtomicU64,
    fetched_bytes: AtomicU64,
    cached_objects: AtomicU64,
    cached_bytes: AtomicU64,
    requests: AtomicU64,
    listing_done: AtomicBool,
    skipped: Mutex<Vec<PreloadSkip>>,
}

impl Tally {
    fn progress(&self, started: Instant) -> PreloadProgress {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PreloadProgress {
            objects_done: l(&self.objects_done),
            objects_total: l(&self.objects_total),
            bytes_done: l(&self.bytes_done),
            bytes_total: l(&self.bytes_total),
            listing_done: self.listing_done.load(Ordering::Relaxed),
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl Engine {
    /// Runs a preload, sending progress, skips and the final report on `events`. Objects are
    /// listed (or HEADed, for a manifest) while earlier ones are fetched; at most the bucket's
    /// GET bound of runs are in flight, spaced by the request-rate bound.
    pub async fn preload(self: &Arc<Self>, req: PreloadRequest, events: mpsc::Sender<PreloadEvent>) {
        let me = self.clone();
        let Some(rt) = self.runtime().cloned() else {
            let _ = events.send(PreloadEvent::Failed { error: "engine is shutting down".into() }).await;
            return;
        };
        // Everything runs on the backfill runtime; this task only waits for it.
        let job = rt.spawn(async move { me.preload_on_runtime(req, events).await });
        let _ = job.await;
    }

    async fn preload_on_runtime(self: Arc<Self>, req: PreloadRequest, events: mpsc::Sender<PreloadEvent>) {
        let started = Instant::now();
        let Some(bucket) = self.bucket(&req.bucket).cloned() else {
            let error = format!("no bucket named {:?} is configured", req.bucket);
            let _ = events.send(PreloadEvent::Failed { error }).await;
            return;
        };
        if !self.exports().any(|ns| ns.spec().bucket == req.bucket) {
            let error = format!("bucket {:?} is not exported: preloaded data could not be read", req.bucket);
            let _ = events.send(PreloadEvent::Failed { error }).await;
            return;
        }
        let tally = Arc::new(Tally::default());
        let limit = Arc::new(RateLimit::new(req.requests_per_sec_max));
        let (obj_tx, obj_rx) = mpsc::channel::<ObjectMeta>(LISTED_AHEAD_MAX);

        // Lister: a listing of the prefix, or a HEAD per manifest key.
        let lister = {
            let (bucket, tally, limit, events, req) =
                (bucket.clone(), tally.clone(), limit.clone(), events.clone(), req.clone());
            tokio::spawn(async move {
                let result: std::result::Result<(), String> = async {
                    match &req.manifest {
                        Some(keys) => {
                            for key in keys {
                                let key = &crate::object::join_key(&req.prefix, key);
                                if events.is_closed() {
                                    return Ok(()); // the client went away: stop
                                }
                                limit.wait().await;
                                tally.requests.fetch_add(1, Ordering::Relaxed);
                                match bucket.head(key).await {
                                    Ok(meta) => {
                                        tally.objects_total.fetch_add(1, Ordering::Relaxed);
                                        tally.bytes_total.fetch_add(meta.size, Ordering::Relaxed);
                                        if obj_tx.send(meta).await.is_err() {
                                            return Ok(());
                                        }
                                    }
                                    Err(e) => {
                                        let skip = PreloadSkip { key: key.to_string(), reason: e.to_string() };
                                        tally.skipped.lock().unwrap_or_else(|p| p.into_inner()).push(skip.clone());
                                        let _ = events.send(PreloadEvent::Skipped(skip)).await;
                                    }
                                }
                            }
                        }
                        None => {
                            let mut token = None;
                            loop {
                                if events.is_closed() {
                                    return Ok(()); // the client went away: stop
                                }
                                limit.wait().await;
                                tally.requests.fetch_add(1, Ordering::Relaxed);
                                let page = bucket
                                    .list_page(&req.prefix, false, token.take(), crate::namespace::LIST_PAGE_KEYS)
                                    .await
                                    .map_err(|e| e.to_string())?;
                                for meta in page.objects {
                                    tally.objects_total.fetch_add(1, Ordering::Relaxed);
                                    tally.bytes_total.fetch_add(meta.size, Ordering::Relaxed);
                                    if obj_tx.send(meta).await.is_err() {
                                        return Ok(());
                                    }
                                }
                                match page.next_token {
                                    Some(t) => token = Some(t),
                                    None => break,
                                }
                            }
                        }
                    }
                    Ok(())
                }
                .await;
                tally.listing_done.store(true, Ordering::Relaxed);
                result
            })
        };

        // Progress ticker.
        let ticker = {
            let (tally, events) = (tally.clone(), events.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(PROGRESS_EVERY).await;
                    if events.send(PreloadEvent::Progress(tally.progress(started))).await.is_err() {
                        break;
                    }
                }
            })
        };

        // Fetchers: one object after another, at most the bucket's GET bound of objects at once.
        let parallel = bucket.gets_in_flight_max();
        let objects = tokio_stream_from(obj_rx);
        objects
            .for_each_concurrent(parallel, |meta| {
                let (me, tally, limit, events, req) =
                    (self.clone(), tally.clone(), limit.clone(), events.clone(), &req);
                async move {
                    if events.is_closed() {
                        return; // the client went away: drain without fetching
                    }
                    let key = meta.key.clone();
                    let size = meta.size;
                    match me.preload_object(req, meta, &tally, &limit).await {
                        Ok(()) => {}
                        Err(reason) => {
                            let skip = PreloadSkip { key, reason };
                            tally.skipped.lock().unwrap_or_else(|p| p.into_inner()).push(skip.clone());
                            let _ = events.send(PreloadEvent::Skipped(skip)).await;
                        }
                    }
                    tally.objects_done.fetch_add(1, Ordering::Relaxed);
                    tally.bytes_done.fetch_add(size, Ordering::Relaxed);
                }
            })
            .await;
        ticker.abort();
        let listed = lister.await.unwrap_or_else(|e| Err(format!("lister failed: {e}")));
        if let Err(error) = listed {
            let _ = events.send(PreloadEvent::Failed { error: format!("listing {}: {error}", req.prefix) }).await;
            return;
        }
        let _ = events.send(PreloadEvent::Progress(tally.progress(started))).await;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let report = PreloadReport {
            fetched_objects: l(&tally.fetched_objects),
            fetched_bytes: l(&tally.fetched_bytes),
            cached_objects: l(&tally.cached_objects),
            cached_bytes: l(&tally.cached_bytes),
            skipped: std::mem::take(&mut *tally.skipped.lock().unwrap_or_else(|p| p.into_inner())),
            requests: l(&tally.requests),
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        let _ = events.send(PreloadEvent::Done(report)).await;
    }

    /// Loads one object: maps its key to an export path, records it, fetches what is missing.
    async fn preload_object(
        &self,
        req: &PreloadRequest,
        meta: ObjectMeta,
        tally: &Tally,
        limit: &RateLimit,
    ) -> std::result::Result<(), String> {
        let ns = self
            .exports()
            .filter(|ns| ns.spec().bucket == req.bucket && meta.key.starts_with(ns.key_prefix()))
            .max_by_key(|ns| ns.key_prefix().len())
            .cloned()
            .ok_or_else(|| "not under any export of this bucket".to_string())?;
        let path = &meta.key[ns.key_prefix().len()..];
        if path.is_empty() || path.ends_with('/') {
            return Err("a directory marker, not a file".into());
        }
        if meta.size == 0 {
            // Nothing to load. Not recorded either: a flat listing of some S3 servers shows a
            // deeper directory marker `a/b/` as an empty `a/b`, which must not become a file.
            tally.cached_objects.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let rec = ns.observe_object(path, &meta).await.map_err(|e| e.to_string())?;
        let bb = self.config().block_bytes;
        let target = Arc::new(FetchTarget {
            ino: rec.ino,
            version: rec.content_version,
            key: meta.key.clone(),
            etag: rec.etag.clone(),
            size: rec.size,
            path: ns.display(&rec.path),
        });
        let blocks = rec.size.div_ceil(bb);
        let mut missing = Vec::new();
        for (block, state) in block_states(self.store(), &target, 0..blocks).await {
            match state {
                None => missing.push(block),
                // Cached but not pinned: pin it in place, no request to the bucket.
                Some(false) if req.pin => {
                    let len = (rec.size - block * bb).min(bb) as usize;
                    if !repin_block(self.store(), &target, block, len).await.map_err(|e| e.to_string())? {
                        missing.push(block); // evicted meanwhile
                    }
                }
                Some(_) => {}
            }
        }
        if missing.is_empty() {
            tally.cached_objects.fetch_add(1, Ordering::Relaxed);
            tally.cached_bytes.fetch_add(rec.size, Ordering::Relaxed);
            return Ok(());
        }
        // Runs of at most fetch_bytes, one GET each, one after another for this object.
        let per_get = (self.config().fetch_bytes / bb).max(1) as usize;
        let mut runs: Vec<Vec<u64>> = Vec::new();
        for b in missing {
            match runs.last_mut() {
                Some(run) if run.len() < per_get && run.last().is_some_and(|l| l + 1 == b) => run.push(b),
                _ => runs.push(vec![b]),
            }
        }
        let mut fetched = 0u64;
        for run in runs {
            limit.wait().await;
            tally.requests.fetch_add(1, Ordering::Relaxed);
            let asks = self.backfill.fetch(ns.bucket(), &target, &run, req.pin);
            for ask in asks {
                let block = ask.future.await.map_err(|e| e.to_string())?;
                fetched += block.len() as u64;
            }
        }
        tally.fetched_objects.fetch_add(1, Ordering::Relaxed);
        tally.fetched_bytes.fetch_add(fetched, Ordering::Relaxed);
        Ok(())
    }
}

/// A stream of what arrives on `rx`.
fn tokio_stream_from<T: Send + 'static>(rx: mpsc::Receiver<T>) -> futures::stream::BoxStream<'static, T> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) }).boxed()
}
