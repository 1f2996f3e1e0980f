//! The read path over a failing bucket: the engine on a real blockstore over a real SeaweedFS S3
//! server, behind the fault wrapper. 500s, 503 SlowDown, resets and short bodies on GET, HEAD
//! and LIST are retried with backoff and every byte read is right; a bucket that keeps failing
//! gives a clear error naming the file, not a hang or a panic.
#![allow(clippy::unwrap_used)] // test setup: a failure is the test failing

mod common;

use std::sync::Arc;
use std::time::Duration;

use blockstore::{Store, StoreConfig};
use bytes::Bytes;
use common::*;
use engine::bucket::RetryPolicy;
use engine::object::fault::{FaultPlan, FaultRule, FaultyClient, OpKind, Trigger};
use engine::object::store::{ObjectStoreConfig, S3Config, StoreClient};
use engine::object::{ObjectClient, PutOptions};
use engine::{BucketSpec, Engine, EngineConfig, EngineError, ExportSpec};
use testkit::S3Server;

async fn seaweed() -> StoreClient {
    let server = S3Server::shared().unwrap_or_else(|e| panic!("S3 server: {e}"));
    let bucket = server.new_bucket("faults").await.unwrap_or_else(|e| panic!("{e}"));
    let config = ObjectStoreConfig::S3(S3Config::static_keys(
        &bucket,
        server.endpoint(),
        server.region(),
        server.access_key(),
        server.secret_key(),
    ));
    StoreClient::new(&config).unwrap()
}

fn flaky(p: f64) -> FaultRule {
    FaultRule {
        latency_jitter: Duration::from_millis(3),
        error_500: Trigger::Probability(p),
        slow_down_503: Trigger::Probability(p),
        reset: Trigger::Probability(p / 2.0),
        short_body: Trigger::Probability(p),
        ..FaultRule::default()
    }
}

fn engine_over(dirs: &Dirs, client: Arc<dyn ObjectClient>) -> Engine {
    let store = Store::open(&spec(&dirs.cache()), StoreConfig::default()).unwrap();
    let retry = RetryPolicy {
        attempts_max: 12,
        backoff_base: Duration::from_millis(2),
        backoff_max: Duration::from_millis(50),
        throttled_backoff_base: Duration::from_millis(5),
    };
    let config = EngineConfig { fetch_bytes: 4 * MIB, retry, ..EngineConfig::default() };
    let buckets = vec![BucketSpec { name: "b".into(), client, gets_in_flight_max: 4 }];
    Engine::new(config, store, &dirs.meta(), buckets, vec![ExportSpec::new("/data", "b")]).unwrap()
}

#[test]
fn reads_over_a_flaky_s3_bucket_are_retried_and_exact() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dirs = Dirs::new("faults");
    let (client, bodies) = rt.block_on(async {
        let s3 = seaweed().await;
        let mut bodies = Vec::new();
        for i in 0..3u8 {
            let body = pattern(i, (9 * MIB + 777) as usize);
            s3.put(&format!("ds/f{i}"), Bytes::from(body.clone()), &PutOptions::default()).await.unwrap();
            bodies.push(body);
        }
        let plan = FaultPlan { seed: 7, ..FaultPlan::default() }
            .with_rule(OpKind::Get, flaky(0.25))
            .with_rule(OpKind::Head, flaky(0.25))
            .with_rule(OpKind::List, flaky(0.25));
        (Arc::new(FaultyClient::new(s3, plan)), bodies)
    });
    let e = Arc::new(engine_over(&dirs, client.clone()));
    rt.block_on(async {
        let ns = e.export("/data").unwrap();
        // Sequential readers, concurrently, each over its own file.
        let mut tasks = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            let (e, ns, body) = (e.clone(), ns.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let rec = ns.lookup_path(&format!("ds/f{i}")).await.unwrap();
                let attr = ns.getattr(rec.ino).await.unwrap();
                assert_eq!(attr.size, body.len() as u64);
                let fh = ns.handle(&rec);
                let mut off = 0u64;
                while off < attr.size {
                    let r = e.read(&fh, off, 256 * 1024).await.unwrap();
                    assert_eq!(r.to_vec(), &body[off as usize..off as usize + r.len()], "f{i} at {off}");
                    off += r.len() as u64;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let injected = client.counts();
    let stats = e.stats();
    let b = &stats.buckets[0];
    assert!(injected.error_500 + injected.slow_down_503 + injected.reset + injected.short_body >= 5, "{injected:?}");
    assert!(b.retries >= 5, "retried: {}", b.retries);
    assert!(b.errors["throttled"] >= 1 && b.errors["transient"] >= 1, "{:?}", b.errors);
}

#[test]
fn a_bucket_that_keeps_failing_gives_a_clear_error_not_a_hang() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dirs = Dirs::new("faults-dead");
    let client = rt.block_on(async {
        let s3 = seaweed().await;
        s3.put("f", Bytes::from(pattern(1, MIB as usize)), &PutOptions::default()).await.unwrap();
        Arc::new(FaultyClient::new(s3, FaultPlan::default()))
    });
    let e = engine_over(&dirs, client.clone());
    rt.block_on(async {
        let ns = e.export("/data").unwrap();
        let rec = ns.lookup_path("f").await.unwrap();
        let fh = ns.handle(&rec);
        let always = FaultRule { slow_down_503: Trigger::EveryNth(1), ..FaultRule::default() };
        client.set_plan(FaultPlan::default().with_rule(OpKind::Get, always));
        let started = std::time::Instant::now();
        let err = e.read(&fh, 0, 4096).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(matches!(err, EngineError::Bucket { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("/data/f") && msg.contains("throttled"), "{msg}");
        assert_eq!(err.action(), engine::error::Action::Retry);
        // The bucket recovers: the same read now works.
        client.set_plan(FaultPlan::default());
        assert_eq!(e.read(&fh, 0, 4096).await.unwrap().to_vec(), &pattern(1, MIB as usize)[..4096]);
    });
}
