//! Preload through the engine: a prefix and a manifest, progress, skips, pinning, the request
//! rate bound, and reads after it that send nothing to the bucket.
#![allow(clippy::unwrap_used)] // test setup: a failure is the test failing

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use engine::object::memory::MemoryClient;
use engine::preload::{PreloadEvent, PreloadReport, PreloadRequest};

async fn run(e: &Arc<engine::Engine>, req: PreloadRequest) -> (Vec<PreloadEvent>, Option<PreloadReport>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let e2 = e.clone();
    let job = tokio::spawn(async move { e2.preload(req, tx).await });
    let mut events = Vec::new();
    while let Some(ev) = rx.recv().await {
        events.push(ev);
    }
    job.await.unwrap();
    let report = events.iter().find_map(|e| match e {
        PreloadEvent::Done(r) => Some(r.clone()),
        _ => None,
    });
    (events, report)
}

#[test]
fn preload_a_prefix_then_reads_send_no_get_and_a_second_preload_finds_it_cached() {
    let dirs = Dirs::new("preload");
    let client = MemoryClient::new();
    for i in 0..12 {
        client.insert(&format!("train/shard-{i:02}.tar"), pattern(i as u8, (3 * MIB + 1000 * i) as usize));
    }
    client.insert("train/", Vec::<u8>::new());
    client.insert("val/other", vec![1u8; 10]);
    let e = Arc::new(engine(&dirs, &client, Duration::from_secs(60)));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let req = PreloadRequest { bucket: "b".into(), prefix: "train/".into(), ..Default::default() };
        let (events, report) = run(&e, req.clone()).await;
        let report = report.unwrap_or_else(|| panic!("no report: {events:?}"));
        assert_eq!(report.fetched_objects, 12, "{report:?}");
        let total: u64 = (0..12).map(|i| 3 * MIB + 1000 * i).sum();
        assert_eq!(report.fetched_bytes, total);
        assert_eq!(report.skipped.len(), 1, "the directory marker: {:?}", report.skipped);
        assert!(events
            .iter()
            .any(|e| matches!(e, PreloadEvent::Progress(p) if p.listing_done && p.objects_done == 13)));
        // Reads of everything preloaded: no GET.
        let gets = client.counts().get.load(Ordering::Relaxed);
        while e.backfill_blocks_in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ns = e.export("/data").unwrap();
        for i in 0..12u64 {
            let rec = ns.lookup_path(&format!("train/shard-{i:02}.tar")).await.unwrap();
            let r = e.read(&ns.handle(&rec), 0, 4 * MIB).await.unwrap();
            assert_eq!(r.to_vec(), pattern(i as u8, (3 * MIB + 1000 * i) as usize));
        }
        assert_eq!(client.counts().get.load(Ordering::Relaxed), gets, "epoch after preload: zero GETs");
        // Again: everything is cached, nothing fetched.
        let req_again = || req.clone();
        let (_, again) = run(&e, req.clone()).await;
        let again = again.unwrap();
        assert_eq!((again.fetched_objects, again.cached_objects), (0, 12));
        assert_eq!(client.counts().get.load(Ordering::Relaxed), gets);
        // Pinning what is cached already pins it in place: still no GET.
        assert_eq!(e.stats().cache.pinned_bytes, 0);
        let (_, pinned) = run(&e, PreloadRequest { pin: true, ..req_again() }).await;
        assert_eq!(pinned.unwrap().fetched_objects, 0);
        assert_eq!(client.counts().get.load(Ordering::Relaxed), gets);
        assert_eq!(e.stats().cache.pinned_bytes, total);
    });
}

#[test]
fn manifest_skips_missing_keys_pins_and_honours_the_rate_bound() {
    let dirs = Dirs::new("manifest");
    let client = MemoryClient::new();
    for i in 0..6 {
        client.insert(&format!("d/{i}"), pattern(i as u8, MIB as usize));
    }
    let e = Arc::new(engine(&dirs, &client, Duration::from_secs(60)));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let mut keys: Vec<String> = (0..6).map(|i| format!("d/{i}")).collect();
        keys.push("d/missing".into());
        let req = PreloadRequest {
            bucket: "b".into(),
            manifest: Some(keys),
            pin: true,
            requests_per_sec_max: Some(20),
            ..Default::default()
        };
        let started = Instant::now();
        let (_, report) = run(&e, req).await;
        let report = report.unwrap();
        // 7 HEADs + 6 GETs at 20 a second: at least 12 intervals of 50 ms.
        assert!(started.elapsed() >= Duration::from_millis(550), "{:?}", started.elapsed());
        assert_eq!(report.fetched_objects, 6);
        assert_eq!(report.skipped.len(), 1);
        assert!(report.skipped[0].reason.contains("no such object"), "{:?}", report.skipped);
        while e.backfill_blocks_in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(e.stats().cache.pinned_bytes, 6 * MIB);
        let (events, report) = run(&e, PreloadRequest { bucket: "nope".into(), ..Default::default() }).await;
        assert!(report.is_none());
        assert!(matches!(&events[..], [PreloadEvent::Failed { error }] if error.contains("nope")));
    });
}
