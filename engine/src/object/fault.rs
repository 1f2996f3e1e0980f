//! `FaultyClient`: wraps any [`ObjectClient`] and injects the failures object storage produces,
//! on demand and reproducibly, so the engine's retry, backoff and recovery paths can be tested
//! without a misbehaving server.
//!
//! API: `FaultyClient::new(inner, plan)`; [`FaultPlan`] holds a seed, a default [`FaultRule`] and
//! per-operation overrides ([`OpKind`]). A rule adds latency (fixed + uniform random jitter) and
//! fires, each by probability or on every Nth call of that kind: a 500 (`Transient`), a 503
//! SlowDown (`Throttled`), a connection reset before any byte (`Transient`), and for GETs a short
//! body (the stream ends early, which `checked_length` turns into a `Transient` error; the cut is
//! at a random byte before the end). At most one fault fires per call, checked in that order.
//! `set_plan` switches plans at run time (and reseeds); `counts` says what was injected.
//! Multipart uploads are wrapped too (`UploadPart`, `CompleteMultipart`).
//!
//! Determinism: one ChaCha8 generator seeded from the plan draws, per call, the same number of
//! values whatever fires, so a given sequence of calls sees the same faults on every run.
//! Concurrent callers interleave their draws in scheduling order.
//!
//! Runs on: whatever runtime the caller runs on (tokio, for the latency sleeps).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{
    checked_length, ByteStream, ListPage, MultipartUpload, ObjectClient, ObjectError, ObjectMeta, ObjectResult,
    PutOptions, PutOutcome,
};

/// The kinds of request a rule can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    Head,
    Get,
    List,
    Put,
    CreateMultipart,
    UploadPart,
    CompleteMultipart,
    Copy,
    Delete,
}

/// When a fault fires.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Trigger {
    #[default]
    Never,
    /// Independently on each call, with this probability (0.0 ..= 1.0).
    Probability(f64),
    /// On calls N, 2N, 3N, ... of this kind (counted from 1 since the plan was set).
    EveryNth(u64),
}

/// What to do to one kind of request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultRule {
    pub latency_fixed: Duration,
    /// Uniform random extra latency in `0..latency_jitter`.
    pub latency_jitter: Duration,
    pub error_500: Trigger,
    pub slow_down_503: Trigger,
    pub reset: Trigger,
    /// GET only: the body stops early.
    pub short_body: Trigger,
}

/// Seed, default rule and per-kind overrides. `FaultPlan::default()` injects nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    pub seed: u64,
    pub default: FaultRule,
    pub per_op: HashMap<OpKind, FaultRule>,
}

impl FaultPlan {
    pub fn with_rule(mut self, op: OpKind, rule: FaultRule) -> FaultPlan {
        self.per_op.insert(op, rule);
        self
    }
}

/// How many faults were injected, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub delayed: u64,
    pub error_500: u64,
    pub slow_down_503: u64,
    pub reset: u64,
    pub short_body: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delayed: AtomicU64,
    error_500: AtomicU64,
    slow_down_503: AtomicU64,
    reset: AtomicU64,
    short_body: AtomicU64,
}

#[derive(Debug)]
struct State {
    plan: FaultPlan,
    rng: ChaCha8Rng,
    calls: HashMap<OpKind, u64>,
}

#[derive(Debug)]
struct Faults {
    state: Mutex<State>,
    counters: Counters,
}

/// What one call gets.
enum Decision {
    Pass,
    Fail(fn(&'static str, &str) -> ObjectError),
    /// Keep this fraction of the body (then the stream ends).
    ShortBody(f64),
}

fn error_500(op: &'static str, key: &str) -> ObjectError {
    ObjectError::Transient { op, key: key.into(), detail: "injected 500 Internal Server Error".into() }
}

fn slow_down(op: &'static str, key: &str) -> ObjectError {
    ObjectError::Throttled { op, key: key.into(), detail: "injected 503 SlowDown".into() }
}

fn reset(op: &'static str, key: &str) -> ObjectError {
    ObjectError::Transient { op, key: key.into(), detail: "injected connection reset before any byte".into() }
}

impl Faults {
    fn new(plan: FaultPlan) -> Faults {
        let rng = ChaCha8Rng::seed_from_u64(plan.seed);
        Faults { state: Mutex::new(State { plan, rng, calls: HashMap::new() }), counters: Counters::default() }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update of the state is complete before anything can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn decide(&self, kind: OpKind) -> (Duration, Decision) {
        let mut st = self.state();
        let n = {
            let c = st.calls.entry(kind).or_insert(0);
            *c += 1;
            *c
        };
        let rule = st.plan.per_op.get(&kind).unwrap_or(&st.plan.default).clone();
        // Always five draws, whatever fires: the sequence depends only on the calls made.
        let draws: [f64; 5] = std::array::from_fn(|_| st.rng.random::<f64>());
        drop(st);
        let fires = |t: Trigger, draw: f64| match t {
            Trigger::Never => false,
            Trigger::Probability(p) => draw < p,
            Trigger::EveryNth(every) => every > 0 && n % every == 0,
        };
        let delay = rule.latency_fixed + rule.latency_jitter.mul_f64(draws[0]);
        let decision = if fires(rule.reset, draws[1]) {
            self.counters.reset.fetch_add(1, Ordering::Relaxed);
            Decision::Fail(reset)
        } else if fires(rule.error_500, draws[2]) {
            self.counters.error_500.fetch_add(1, Ordering::Relaxed);
            Decision::Fail(error_500)
        } else if fires(rule.slow_down_503, draws[3]) {
            self.counters.slow_down_503.fetch_add(1, Ordering::Relaxed);
            Decision::Fail(slow_down)
        } else if kind == OpKind::Get && fires(rule.short_body, draws[4]) {
            self.counters.short_body.fetch_add(1, Ordering::Relaxed);
            Decision::ShortBody(draws[4])
        } else {
            Decision::Pass
        };
        if !delay.is_zero() {
            self.counters.delayed.fetch_add(1, Ordering::Relaxed);
        }
        (delay, decision)
    }

    /// Sleeps the planned latency, then fails or lets the call through.
    async fn before(&self, kind: OpKind, op: &'static str, key: &str) -> ObjectResult<Decision> {
        let (delay, decision) = self.decide(kind);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match decision {
            Decision::Fail(make) => Err(make(op, key)),
            other => Ok(other),
        }
    }
}

/// An [`ObjectClient`] that injects faults into calls to `inner`.
#[derive(Debug)]
pub struct FaultyClient<C> {
    inner: C,
    faults: Arc<Faults>,
}

impl<C: ObjectClient> FaultyClient<C> {
    pub fn new(inner: C, plan: FaultPlan) -> FaultyClient<C> {
        FaultyClient { inner, faults: Arc::new(Faults::new(plan)) }
    }

    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// Switches to `plan` from the next call on, reseeding and restarting the Nth-call counts.
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut st = self.faults.state();
        st.rng = ChaCha8Rng::seed_from_u64(plan.seed);
        st.calls.clear();
        st.plan = plan;
    }

    pub fn counts(&self) -> FaultCounts {
        let c = &self.faults.counters;
        FaultCounts {
            delayed: c.delayed.load(Ordering::Relaxed),
            error_500: c.error_500.load(Ordering::Relaxed),
            slow_down_503: c.slow_down_503.load(Ordering::Relaxed),
            reset: c.reset.load(Ordering::Relaxed),
            short_body: c.short_body.load(Ordering::Relaxed),
        }
    }
}

/// Passes `keep_fraction` of `want` bytes of `inner`, then ends: `checked_length` reports it.
fn cut_short(op: &'static str, key: &str, want: u64, keep_fraction: f64, inner: ByteStream) -> ByteStream {
    // Strictly fewer bytes than asked (a zero-length GET cannot be short).
    let keep = ((want as f64 * keep_fraction) as u64).min(want.saturating_sub(1));
    let truncated = futures::stream::unfold((inner, 0u64), move |(mut inner, sent)| async move {
        if sent >= keep {
            return None;
        }
        match inner.next().await? {
            Ok(chunk) => {
                let room = (keep - sent) as usize;
                let chunk = if chunk.len() > room { chunk.slice(..room) } else { chunk };
                let sent = sent + chunk.len() as u64;
                Some((Ok(chunk), (inner, sent)))
            }
            Err(e) => Some((Err(e), (inner, keep))),
        }
    });
    checked_length(op, key, want, truncated.boxed())
}

#[async_trait]
impl<C: ObjectClient> ObjectClient for FaultyClient<C> {
    fn describe(&self) -> String {
        format!("faulty({})", self.inner.describe())
    }

    async fn head(&self, key: &str) -> ObjectResult<ObjectMeta> {
        self.faults.before(OpKind::Head, "head", key).await?;
        self.inner.head(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>, if_match: Option<&str>) -> ObjectResult<ByteStream> {
        let decision = self.faults.before(OpKind::Get, "get", key).await?;
        let want = range.end.saturating_sub(range.start);
        let stream = self.inner.get_range(key, range, if_match).await?;
        match decision {
            Decision::ShortBody(fraction) if want > 0 => Ok(cut_short("get", key, want, fraction, stream)),
            _ => Ok(stream),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        delimiter: bool,
        token: Option<&str>,
        page_keys_max: usize,
    ) -> ObjectResult<ListPage> {
        self.faults.before(OpKind::List, "list", prefix).await?;
        self.inner.list(prefix, delimiter, token, page_keys_max).await
    }

    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> ObjectResult<PutOutcome> {
        self.faults.before(OpKind::Put, "put", key).await?;
        self.inner.put(key, body, opts).await
    }

    async fn put_multipart(&self, key: &str, opts: &PutOptions) -> ObjectResult<Box<dyn MultipartUpload>> {
        self.faults.before(OpKind::CreateMultipart, "create multipart", key).await?;
        let inner = self.inner.put_multipart(key, opts).await?;
        Ok(Box::new(FaultyUpload { inner, key: key.to_string(), faults: self.faults.clone() }))
    }

    async fn copy(&self, from: &str, to: &str, if_match: Option<&str>) -> ObjectResult<()> {
        self.faults.before(OpKind::Copy, "copy", from).await?;
        self.inner.copy(from, to, if_match).await
    }

    async fn delete(&self, key: &str) -> ObjectResult<()> {
        self.faults.before(OpKind::Delete, "delete", key).await?;
        self.inner.delete(key).await
    }
}

#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    key: String,
    faults: Arc<Faults>,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: Bytes) -> BoxFuture<'static, ObjectResult<()>> {
        // The decision is taken now, in call order; a failed part is never sent (as a reset
        // before the request would).
        let (delay, decision) = self.faults.decide(OpKind::UploadPart);
        let key = self.key.clone();
        let send = match decision {
            Decision::Fail(make) => futures::future::ready(Err(make("upload part", &key))).boxed(),
            _ => self.inner.put_part(data),
        };
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            send.await
        }
        .boxed()
    }

    async fn complete(&mut self) -> ObjectResult<PutOutcome> {
        self.faults.before(OpKind::CompleteMultipart, "complete multipart", &self.key).await?;
        self.inner.complete().await
    }

    async fn abort(&mut self) -> ObjectResult<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::get_range_bytes;
    use crate::object::memory::MemoryClient;

    fn rule(f: impl FnOnce(&mut FaultRule)) -> FaultRule {
        let mut r = FaultRule::default();
        f(&mut r);
        r
    }

    #[tokio::test]
    async fn every_nth_fires_on_schedule_with_the_right_kinds() {
        let mem = MemoryClient::new();
        mem.insert("k", vec![7u8; 1000]);
        let plan = FaultPlan::default()
            .with_rule(OpKind::Head, rule(|r| r.error_500 = Trigger::EveryNth(2)))
            .with_rule(OpKind::List, rule(|r| r.slow_down_503 = Trigger::EveryNth(1)))
            .with_rule(OpKind::Put, rule(|r| r.reset = Trigger::EveryNth(1)));
        let c = FaultyClient::new(mem.clone(), plan);
        assert!(c.head("k").await.is_ok());
        let e = c.head("k").await.expect_err("2nd head");
        assert!(matches!(e, ObjectError::Transient { op: "head", .. }) && e.is_retryable(), "{e:?}");
        let e = c.list("", false, None, 10).await.expect_err("list");
        assert!(matches!(e, ObjectError::Throttled { op: "list", .. }) && e.is_retryable(), "{e:?}");
        let e = c.put("p", Bytes::from_static(b"x"), &PutOptions::default()).await.expect_err("put");
        assert!(matches!(e, ObjectError::Transient { .. }) && e.to_string().contains("reset"), "{e}");
        assert!(mem.head("p").await.is_err(), "a reset request must not reach the store");
        assert_eq!(c.counts(), FaultCounts { error_500: 1, slow_down_503: 1, reset: 1, ..Default::default() });
        // Switch off at run time.
        c.set_plan(FaultPlan::default());
        assert!(c.list("", false, None, 10).await.is_ok());
    }

    #[tokio::test]
    async fn short_body_ends_with_a_transient_error() {
        let mem = MemoryClient::new().with_chunk_bytes(100);
        mem.insert("k", vec![1u8; 1000]);
        let plan = FaultPlan::default().with_rule(OpKind::Get, rule(|r| r.short_body = Trigger::EveryNth(1)));
        let c = FaultyClient::new(mem, plan);
        for _ in 0..20 {
            let e = get_range_bytes(&c, "k", 10..1000, None).await.expect_err("short");
            assert!(matches!(e, ObjectError::Transient { op: "get", .. }) && e.to_string().contains("short body"));
        }
        assert_eq!(c.counts().short_body, 20);
    }

    #[tokio::test]
    async fn same_seed_same_faults() {
        let run = |seed: u64| async move {
            let mem = MemoryClient::new();
            mem.insert("k", vec![0u8; 10]);
            let plan = FaultPlan {
                seed,
                default: rule(|r| {
                    r.error_500 = Trigger::Probability(0.3);
                    r.slow_down_503 = Trigger::Probability(0.3);
                }),
                ..Default::default()
            };
            let c = FaultyClient::new(mem, plan);
            let mut outcomes = Vec::new();
            for _ in 0..200 {
                outcomes.push(match c.head("k").await {
                    Ok(_) => 0,
                    Err(ObjectError::Transient { .. }) => 1,
                    Err(_) => 2,
                });
            }
            outcomes
        };
        let a = run(7).await;
        assert_eq!(a, run(7).await);
        assert_ne!(a, run(8).await);
        let failures = a.iter().filter(|o| **o != 0).count();
        assert!((80..=180).contains(&failures), "{failures} of 200 with p ≈ 0.51");
    }

    #[tokio::test]
    async fn latency_is_added() {
        let mem = MemoryClient::new();
        let plan = FaultPlan {
            default: rule(|r| {
                r.latency_fixed = Duration::from_millis(30);
                r.latency_jitter = Duration::from_millis(20);
            }),
            ..Default::default()
        };
        let c = FaultyClient::new(mem, plan);
        let start = std::time::Instant::now();
        assert!(c.head("missing").await.expect_err("missing").is_not_found());
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(30), "{took:?}");
        assert_eq!(c.counts().delayed, 1);
    }
}
