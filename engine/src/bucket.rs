//! One configured bucket as the engine uses it: an object client plus the policy around every
//! request — run on the backfill runtime, retried with exponential backoff and full jitter when
//! the failure is retryable (503 SlowDown, 5xx, resets, short bodies), bounded GETs in flight,
//! and counted (requests by kind, failures by kind, bytes, GET latency).
//!
//! Runs on: the backfill runtime. Callers on any executor await a `JoinHandle`, so a data-path
//! core never runs object-client code.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::Rng;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::latency::LatencyRecorder;
use crate::object::{ByteStream, ListPage, ObjectClient, ObjectError, ObjectMeta, ObjectResult};
use crate::stats::BucketStats;

/// How failed requests are retried.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts_max: u32,
    /// The first backoff's upper bound; doubles each attempt up to `backoff_max`. The wait is
    /// uniform in [0, bound] ("full jitter").
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Throttling (503 SlowDown, 429) starts from this larger bound.
    pub throttled_backoff_base: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts_max: 8,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            throttled_backoff_base: Duration::from_millis(250),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempt counts from 1) after `error`.
    pub fn backoff(&self, attempt: u32, error: &ObjectError) -> Duration {
        let base = if matches!(error, ObjectError::Throttled { .. }) {
            self.throttled_backoff_base
        } else {
            self.backoff_base
        };
        let bound = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(self.backoff_max);
        let bound_us = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX).max(1);
        Duration::from_micros(rand::rng().random_range(0..=bound_us))
    }
}

const KINDS: [&str; 7] = ["get", "head", "list", "put", "multipart_part", "copy", "delete"];
const ERROR_KINDS: [&str; 7] =
    ["not_found", "precondition", "denied", "throttled", "transient", "unsupported", "other"];

fn error_kind(e: &ObjectError) -> usize {
    match e {
        ObjectError::NotFound { .. } => 0,
        ObjectError::Precondition { .. } => 1,
        ObjectError::Denied { .. } => 2,
        ObjectError::Throttled { .. } => 3,
        ObjectError::Transient { .. } => 4,
        ObjectError::Unsupported { .. } => 5,
        ObjectError::Other { .. } => 6,
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: [AtomicU64; KINDS.len()],
    errors: [AtomicU64; ERROR_KINDS.len()],
    retries: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    gets_in_flight: AtomicU64,
}

/// A bucket: client, runtime, limits, counters.
#[derive(Debug)]
pub struct Bucket {
    name: String,
    client: Arc<dyn ObjectClient>,
    rt: Handle,
    gets: Arc<Semaphore>,
    gets_in_flight_max: usize,
    retry: RetryPolicy,
    counters: Counters,
    get_latency: LatencyRecorder,
    /// Keys with a queued delete or copy-away not yet done (count of operations): listings
    /// do not show them, so a removed or renamed entry does not come back meanwhile. A
    /// directory's marker key (`dir/`) hides the common prefix of that name too.
    pending_keys: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

/// The kinds of request counted (index into the counters).
#[derive(Clone, Copy, Debug)]
pub enum RequestKind {
    Get = 0,
    Head = 1,
    List = 2,
    Put = 3,
    MultipartPart = 4,
    Copy = 5,
    Delete = 6,
}

impl Bucket {
    pub fn new(
        name: &str,
        client: Arc<dyn ObjectClient>,
        rt: Handle,
        gets_in_flight_max: usize,
        retry: RetryPolicy,
    ) -> Bucket {
        let gets_in_flight_max = gets_in_flight_max.max(1);
        Bucket {
            name: name.to_string(),
            client,
            rt,
            gets: Arc::new(Semaphore::new(gets_in_flight_max)),
            gets_in_flight_max,
            retry,
            counters: Counters::default(),
            get_latency: LatencyRecorder::new(),
            pending_keys: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, u32>> {
        // Single inserts and removes only: a poisoned map is consistent.
        self.pending_keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hides `key` from listings until [`Bucket::unhide`] (counted).
    pub fn hide(&self, key: &str) {
        *self.pending().entry(key.to_string()).or_insert(0) += 1;
    }

    pub fn unhide(&self, key: &str) {
        let mut pending = self.pending();
        if let Some(n) = pending.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                pending.remove(key);
            }
        }
    }

    /// Whether listings must not show `key` (an object, or a common prefix ending in `/`).
    pub fn is_hidden(&self, key: &str) -> bool {
        self.pending().contains_key(key)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &Arc<dyn ObjectClient> {
        &self.client
    }

    pub fn runtime(&self) -> &Handle {
        &self.rt
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    pub fn gets_in_flight_max(&self) -> usize {
        self.gets_in_flight_max
    }

    /// Runs `fut` on the backfill runtime and waits for it from any executor.
    pub async fn on_runtime<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> Option<T> {
        self.rt.spawn(fut).await.ok()
    }

    pub(crate) fn count_request(&self, kind: RequestKind) {
        if let Some(c) = self.counters.requests.get(kind as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn count_error(&self, e: &ObjectError) {
        if let Some(c) = self.counters.errors.get(error_kind(e)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn count_retry(&self) {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_sent(&self, bytes: u64) {
        self.counters.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn count_received(&self, bytes: u64) {
        self.counters.bytes_received.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Runs `attempt` until it succeeds, fails for good, or the attempts run out, backing off
    /// between attempts. Must run on the backfill runtime (it sleeps with tokio's timer).
    pub async fn retrying<T, F, Fut>(&self, kind: RequestKind, mut attempt: F) -> ObjectResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ObjectResult<T>>,
    {
        let mut n = 1;
        loop {
            self.count_request(kind);
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    self.count_error(&e);
                    if !e.is_retryable() || n >= self.retry.attempts_max {
                        return Err(e);
                    }
                    tracing::debug!(bucket = %self.name, error = %e, attempt = n, "retrying");
                    self.count_retry();
                    tokio::time::sleep(self.retry.backoff(n, &e)).await;
                    n += 1;
                }
            }
        }
    }

    /// HEAD with retries, on the backfill runtime.
    pub async fn head(self: &Arc<Self>, key: &str) -> ObjectResult<ObjectMeta> {
        let (me, key) = (self.clone(), key.to_string());
        let key2 = key.clone();
        self.on_runtime(async move { me.retrying(RequestKind::Head, || me.client.head(&key)).await })
            .await
            .unwrap_or_else(|| Err(shutting_down("head", &key2)))
    }

    /// One listing page with retries, on the backfill runtime.
    pub async fn list_page(
        self: &Arc<Self>,
        prefix: &str,
        delimiter: bool,
        token: Option<String>,
        page_keys_max: usize,
    ) -> ObjectResult<ListPage> {
        let (me, prefix) = (self.clone(), prefix.to_string());
        let prefix2 = prefix.clone();
        self.on_runtime(async move {
            me.retrying(RequestKind::List, || me.client.list(&prefix, delimiter, token.as_deref(), page_keys_max)).await
        })
        .await
        .unwrap_or_else(|| Err(shutting_down("list", &prefix2)))
    }

    /// Waits for a GET slot (bounded GETs in flight per bucket).
    pub async fn get_slot(&self) -> GetSlot<'_> {
        // The semaphore is never closed, so acquiring cannot fail.
        #[allow(clippy::unwrap_used)]
        let permit = self.gets.clone().acquire_owned().await.unwrap();
        self.counters.gets_in_flight.fetch_add(1, Ordering::Relaxed);
        GetSlot { bucket: self, _permit: permit, started: Instant::now() }
    }

    /// Starts one ranged GET (one attempt, counted); the body stream counts bytes received.
    /// Call within a [`GetSlot`] on the backfill runtime.
    pub async fn get_range_once(
        &self,
        key: &str,
        range: Range<u64>,
        if_match: Option<&str>,
    ) -> ObjectResult<ByteStream> {
        self.count_request(RequestKind::Get);
        let stream = self.client.get_range(key, range, if_match).await;
        match stream {
            Ok(s) => Ok(s.boxed()),
            Err(e) => {
                self.count_error(&e);
                Err(e)
            }
        }
    }

    pub fn stats(&self) -> BucketStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BucketStats {
            name: self.name.clone(),
            describe: self.client.describe(),
            requests: KINDS.iter().zip(&c.requests).map(|(k, v)| (k.to_string(), load(v))).collect::<BTreeMap<_, _>>(),
            errors: ERROR_KINDS.iter().zip(&c.errors).map(|(k, v)| (k.to_string(), load(v))).collect(),
            retries: load(&c.retries),
            bytes_received: load(&c.bytes_received),
            bytes_sent: load(&c.bytes_sent),
            gets_in_flight: load(&c.gets_in_flight),
            get_latency: self.get_latency.summary(),
        }
    }
}

/// A held GET slot; records the GET's latency and frees the slot when dropped.
pub struct GetSlot<'a> {
    bucket: &'a Bucket,
    _permit: OwnedSemaphorePermit,
    started: Instant,
}

impl Drop for GetSlot<'_> {
    fn drop(&mut self) {
        self.bucket.get_latency.record(self.started.elapsed());
        self.bucket.counters.gets_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn shutting_down(op: &'static str, key: &str) -> ObjectError {
    ObjectError::Other { op, key: key.to_string(), detail: "the backfill runtime is shutting down".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_bound_and_throttling_waits_longer() {
        let p = RetryPolicy::default();
        let t = ObjectError::Throttled { op: "get", key: "k".into(), detail: String::new() };
        let x = ObjectError::Transient { op: "get", key: "k".into(), detail: String::new() };
        for attempt in 1..20 {
            assert!(p.backoff(attempt, &x) <= p.backoff_max);
            assert!(p.backoff(attempt, &t) <= p.backoff_max);
        }
        let first_max = (0..200).map(|_| p.backoff(1, &x)).max().unwrap();
        assert!(first_max <= p.backoff_base);
        let throttled_max = (0..200).map(|_| p.backoff(1, &t)).max().unwrap();
        assert!(throttled_max > p.backoff_base, "jitter spans the larger throttled bound");
    }
}
