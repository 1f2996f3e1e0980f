//! The read path end to end: a real blockstore on a file (io_uring, O_DIRECT), the in-memory
//! bucket (which counts requests), the real metadata store. Checks bytes, request counts,
//! single flight, read-ahead, revalidation after a change, and handles across a restart.

#![allow(clippy::unwrap_used)] // test setup: a failure is the test failing

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use engine::object::memory::MemoryClient;
use engine::FileHandle;

#[test]
fn cold_read_fetches_and_warm_read_sends_nothing_to_the_bucket() {
    let dirs = Dirs::new("warm");
    let client = MemoryClient::new().with_chunk_bytes(100_000);
    let body = pattern(1, (5 * MIB + 12345) as usize);
    client.insert("ds/shard-0.tar", body.clone());
    let e = engine(&dirs, &client, Duration::from_secs(60));
    rt().block_on(async {
        let fh = handle_of(&e, "ds/shard-0.tar").await;
        let all = e.read(&fh, 0, 8 * MIB).await.unwrap();
        assert!(all.eof);
        assert_eq!(all.to_vec(), body);
        let gets_cold = client.counts().get.load(Ordering::Relaxed);
        assert!(gets_cold >= 1);
        // Wait for the cache writes, then read again in odd pieces: all from the cache.
        while e.stats().cache.extents < 6 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = client.counts().get.load(Ordering::Relaxed);
        for (off, len) in [(0u64, 4096u64), (MIB - 10, 20), (3 * MIB + 7, 2 * MIB), (5 * MIB, 1 << 20)] {
            let r = e.read(&fh, off, len).await.unwrap();
            let end = (off + len).min(body.len() as u64) as usize;
            assert_eq!(r.to_vec(), &body[off as usize..end], "read {off}+{len}");
        }
        assert_eq!(client.counts().get.load(Ordering::Relaxed), before, "warm reads send no GET");
        let s = e.stats();
        assert!(s.block_hits >= 6, "{s:?}");
        assert_eq!(s.buckets[0].requests["get"], before);
    });
}

#[test]
fn concurrent_readers_of_one_block_cause_one_get() {
    let dirs = Dirs::new("single");
    let client = MemoryClient::new();
    client.insert("f", pattern(2, MIB as usize));
    let e = Arc::new(engine(&dirs, &client, Duration::from_secs(60)));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let fh = handle_of(&e, "f").await;
        let mut tasks = Vec::new();
        for i in 0..16u64 {
            let e = e.clone();
            tasks.push(tokio::spawn(async move { e.read(&fh, i * 4096, 4096).await.unwrap().to_vec() }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let got = t.await.unwrap();
            assert_eq!(got, &pattern(2, MIB as usize)[i * 4096..(i + 1) * 4096]);
        }
    });
    assert_eq!(client.counts().get.load(Ordering::Relaxed), 1, "one GET for one block");
    assert!(e.stats().block_joins >= 1 || e.stats().block_hits >= 1);
}

#[test]
fn sequential_reader_gets_read_ahead_in_large_gets_and_random_reader_does_not() {
    let dirs = Dirs::new("ahead");
    let client = MemoryClient::new();
    let body = pattern(3, (96 * MIB) as usize);
    client.insert("big", body.clone());
    client.insert("rand", pattern(4, (64 * MIB) as usize));
    let e = engine(&dirs, &client, Duration::from_secs(60));
    rt().block_on(async {
        let fh = handle_of(&e, "big").await;
        for i in 0..96u64 {
            let r = e.read(&fh, i * MIB, MIB).await.unwrap();
            assert_eq!(r.to_vec(), &body[(i * MIB) as usize..((i + 1) * MIB) as usize]);
        }
        let gets = client.counts().get.load(Ordering::Relaxed);
        let bytes = client.counts().get_bytes.load(Ordering::Relaxed);
        assert_eq!(bytes, 96 * MIB, "every byte fetched exactly once");
        assert!(gets <= 20, "96 MiB read sequentially in {gets} GETs (coalesced read-ahead)");
        assert!(e.stats().read_ahead_blocks >= 64);

        let fh = handle_of(&e, "rand").await;
        let before_gets = client.counts().get.load(Ordering::Relaxed);
        let before_bytes = client.counts().get_bytes.load(Ordering::Relaxed);
        let mut x: u64 = 99;
        let mut blocks = std::collections::HashSet::new();
        for _ in 0..40 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let off = ((x >> 16) % (64 * MIB - 4096)) & !4095;
            blocks.insert(off / MIB);
            e.read(&fh, off, 4096).await.unwrap();
        }
        let gets = client.counts().get.load(Ordering::Relaxed) - before_gets;
        let bytes = client.counts().get_bytes.load(Ordering::Relaxed) - before_bytes;
        assert_eq!(gets as usize, blocks.len(), "one GET per block touched, nothing ahead");
        assert_eq!(bytes, blocks.len() as u64 * MIB);
    });
}

#[test]
fn a_changed_object_never_returns_old_bytes_after_revalidation() {
    let dirs = Dirs::new("changed");
    let client = MemoryClient::new();
    client.insert("ckpt", pattern(5, (2 * MIB) as usize));
    let e = engine(&dirs, &client, Duration::from_millis(200));
    rt().block_on(async {
        let fh = handle_of(&e, "ckpt").await;
        let ns = e.export("/data").unwrap();
        assert_eq!(e.read(&fh, 0, 2 * MIB).await.unwrap().to_vec(), pattern(5, (2 * MIB) as usize));
        // Another tool rewrites the object, with a different size.
        let new = pattern(6, (3 * MIB) as usize);
        client.insert("ckpt", new.clone());
        // Within the TTL a cached block may still be served; once the TTL passed, getattr
        // revalidates and the read returns only the new bytes.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let attr = ns.getattr(fh.ino).await.unwrap();
        assert_eq!(attr.size, 3 * MIB);
        assert_eq!(e.read(&fh, 0, 3 * MIB).await.unwrap().to_vec(), new);
        // A change the engine has not noticed yet: the GET's If-Match fails, the read
        // revalidates and returns the newest bytes.
        let newer = pattern(7, (3 * MIB) as usize);
        client.insert("ckpt", newer.clone());
        let r = e.read(&fh, 2 * MIB + 5, 100).await;
        let r = r.unwrap().to_vec();
        assert!(
            r == newer[(2 * MIB + 5) as usize..(2 * MIB + 105) as usize]
                || r == new[(2 * MIB + 5) as usize..(2 * MIB + 105) as usize]
        );
        assert!(e.stats().stale_objects <= 1);
    });
}

#[test]
fn listing_pages_markers_bad_names_and_new_objects_after_the_ttl() {
    let dirs = Dirs::new("list");
    let client = MemoryClient::new();
    for i in 0..2500 {
        client.insert(&format!("many/f{i:05}"), vec![1u8; 10]);
    }
    client.insert("empty-dir/", Vec::<u8>::new()); // a directory marker
    client.insert("bad//name", vec![0u8; 1]);
    client.insert("x/./y", vec![0u8; 1]);
    client.insert("shadow", vec![0u8; 1]);
    client.insert("shadow/inner", vec![0u8; 1]);
    let e = engine(&dirs, &client, Duration::from_millis(300));
    rt().block_on(async {
        let ns = e.export("/data").unwrap();
        let root = ns.root_ino();
        let mut names = Vec::new();
        let mut cookie = 0;
        loop {
            let page = ns.readdir(root, cookie, 2).await.unwrap();
            names.extend(page.entries.iter().map(|d| d.name.clone()));
            if page.eof {
                break;
            }
            cookie = page.entries.last().unwrap().cookie;
        }
        names.sort();
        assert_eq!(names, ["bad", "empty-dir", "many", "shadow", "x"]);
        assert_eq!(ns.lookup(root, "shadow").await.unwrap().kind, engine::meta::Kind::Dir);
        let many = ns.lookup(root, "many").await.unwrap();
        let mut count = 0;
        let mut cookie = 0;
        let mut seen = std::collections::HashSet::new();
        loop {
            let page = ns.readdir(many.ino, cookie, 1000).await.unwrap();
            for d in &page.entries {
                assert!(seen.insert(d.name.clone()), "no duplicates");
            }
            count += page.entries.len();
            if page.eof {
                break;
            }
            cookie = page.entries.last().unwrap().cookie;
        }
        assert_eq!(count, 2500);
        let bad = ns.lookup(root, "bad").await.unwrap();
        assert!(ns.readdir(bad.ino, 0, 10).await.unwrap().entries.is_empty(), "`bad//name` is skipped");
        let x = ns.lookup(root, "x").await.unwrap();
        assert!(ns.readdir(x.ino, 0, 10).await.unwrap().entries.is_empty(), "`x/./y` is skipped");
        assert_eq!(e.stats().keys_skipped, 3, "bad//name, x/./y, and the shadowed file");
        assert!(ns.readdir(ns.lookup(root, "empty-dir").await.unwrap().ino, 0, 10).await.unwrap().entries.is_empty());
        // A new object from another tool shows up after the TTL; a removed one goes.
        let before = ns.getattr(many.ino).await.unwrap().change;
        client.insert("many/new", vec![2u8; 3]);
        client.delete_now("many/f00000");
        assert!(ns.lookup(many.ino, "new").await.is_err(), "still within the TTL");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(ns.lookup(many.ino, "new").await.unwrap().size, 3);
        assert!(ns.lookup(many.ino, "f00000").await.is_err());
        assert!(ns.getattr(many.ino).await.unwrap().change > before, "directory change attribute moved");
        let lists = client.counts().list.load(Ordering::Relaxed);
        assert!(lists >= 6, "paged: {lists} list requests");
    });
}

#[test]
fn handles_and_cached_blocks_survive_a_restart() {
    let dirs = Dirs::new("restart");
    let client = MemoryClient::new();
    let body = pattern(8, (3 * MIB) as usize);
    client.insert("a/b/c.bin", body.clone());
    let fh = {
        let e = engine(&dirs, &client, Duration::from_secs(60));
        let fh = rt().block_on(async {
            let fh = handle_of(&e, "a/b/c.bin").await;
            assert_eq!(e.read(&fh, 0, 3 * MIB).await.unwrap().to_vec(), body);
            fh
        });
        while e.stats().cache.extents < 3 {
            std::thread::sleep(Duration::from_millis(5));
        }
        e.shutdown().unwrap();
        fh
    };
    let gets = client.counts().get.load(Ordering::Relaxed);
    let e = engine(&dirs, &client, Duration::from_secs(60));
    rt().block_on(async {
        // The old handle resolves without any lookup, and its bytes come from the cache.
        assert_eq!(e.read(&fh, 0, 3 * MIB).await.unwrap().to_vec(), body);
        assert_eq!(client.counts().get.load(Ordering::Relaxed), gets, "no GET after restart");
        let again = handle_of(&e, "a/b/c.bin").await;
        assert_eq!(again, fh, "same inode and generation after restart");
        // A handle with a wrong generation is stale.
        let bad = FileHandle { generation: fh.generation ^ 1, ..fh };
        assert!(matches!(e.read(&bad, 0, 1).await, Err(engine::EngineError::Stale { .. })));
    });
}

#[test]
fn posix_attributes_come_from_user_metadata_or_the_export_defaults() {
    use engine::object::{ObjectClient, PutOptions};
    let dirs = Dirs::new("posix");
    let client = MemoryClient::new();
    let e = engine(&dirs, &client, Duration::from_secs(60));
    rt().block_on(async {
        let meta: engine::object::UserMetadata =
            [("mode", "33261"), ("uid", "1000"), ("gid", "100"), ("mtime", "1700000000")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let opts = PutOptions { user_metadata: meta, ..PutOptions::default() };
        client.put("tools/run.sh", bytes::Bytes::from_static(b"#!/bin/sh\n"), &opts).await.unwrap();
        client.insert("tools/plain.txt", b"x".to_vec());
        let ns = e.export("/data").unwrap();
        let run = ns.lookup_path("tools/run.sh").await.unwrap();
        let a = ns.getattr(run.ino).await.unwrap();
        assert_eq!((a.mode, a.uid, a.gid), (0o755, 1000, 100));
        assert_eq!(a.mtime, std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let plain = ns.lookup_path("tools/plain.txt").await.unwrap();
        let a = ns.getattr(plain.ino).await.unwrap();
        assert_eq!((a.mode, a.uid, a.gid), (0o644, 0, 0));
        // One HEAD per object version: asking again sends none.
        let heads = client.counts().head.load(Ordering::Relaxed);
        ns.getattr(run.ino).await.unwrap();
        ns.getattr(plain.ino).await.unwrap();
        assert_eq!(client.counts().head.load(Ordering::Relaxed), heads);
    });
}
