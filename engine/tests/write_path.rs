//! The write path against a real blockstore on a file, the metadata store and a local-directory
//! bucket (the embedded default backend): writes, commits, truncates, creates, removes, renames,
//! publishing to the bucket, restarts, conflicts, faults and a full cache.
#![allow(clippy::unwrap_used)] // tests: a failure is the test failing

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use blockstore::{Store, StoreConfig};
use common::{pattern, rt, spec, Dirs, MIB};
use engine::object::fault::{FaultPlan, FaultRule, FaultyClient, OpKind, Trigger};
use engine::object::store::{ObjectStoreConfig, StoreClient};
use engine::object::ObjectClient;
use engine::{BucketSpec, CreateMode, Engine, EngineConfig, EngineError, ExportSpec, FileHandle, SetAttrs, Stability};

fn write_config() -> engine::WriteConfig {
    engine::WriteConfig {
        upload_delay_after_close: Duration::from_millis(50),
        // Long: publish_all() makes files due at once; an idle upload must not start mid-test.
        upload_delay_idle: Duration::from_secs(30),
        part_bytes: 5 * MIB,
        retry_delay: Duration::from_millis(50),
        retry_delay_max: Duration::from_millis(400),
        dirty_wait: Duration::from_secs(2),
        ..engine::WriteConfig::default()
    }
}

struct Setup {
    dirs: Dirs,
    bucket_dir: PathBuf,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dirs = Dirs::new(&format!("write-{name}"));
        let bucket_dir = dirs.root.join("bucket");
        std::fs::create_dir_all(&bucket_dir).unwrap();
        Setup { dirs, bucket_dir }
    }

    fn client(&self) -> StoreClient {
        StoreClient::new(&ObjectStoreConfig::Local { root: self.bucket_dir.clone() }).unwrap()
    }

    /// Replaces the cache with a small one.
    fn small_cache(&self, bytes: u64) {
        let cache = self.dirs.cache();
        std::fs::remove_file(&cache).unwrap();
        std::fs::File::create(&cache).unwrap().set_len(bytes).unwrap();
        blockstore::format(&spec(&cache), &blockstore::FormatOptions { segment_bytes: 8 * MIB, shard_count: 1 })
            .unwrap();
    }

    fn engine_with(&self, client: Arc<dyn ObjectClient>) -> Arc<Engine> {
        let store = Store::open(&spec(&self.dirs.cache()), StoreConfig::default()).unwrap();
        let mut export = ExportSpec::new("/data", "b");
        export.listing_ttl = Duration::from_millis(200);
        let buckets = vec![BucketSpec { name: "b".into(), client, gets_in_flight_max: 8 }];
        let config = EngineConfig { write: write_config(), ..EngineConfig::default() };
        let engine = Arc::new(Engine::new(config, store, &self.dirs.meta(), buckets, vec![export]).unwrap());
        engine.start_write_back().unwrap();
        engine
    }

    fn engine(&self) -> Arc<Engine> {
        self.engine_with(Arc::new(self.client()))
    }

    fn object(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.bucket_dir.join(key)).ok()
    }

    fn put_object(&self, key: &str, body: &[u8]) {
        let p = self.bucket_dir.join(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

async fn root(e: &Engine) -> FileHandle {
    let ns = e.export("/data").unwrap();
    let rec = ns.lookup_path("").await.unwrap();
    ns.handle(&rec)
}

async fn lookup(e: &Engine, path: &str) -> Result<FileHandle, EngineError> {
    let ns = e.export("/data").unwrap();
    let rec = ns.lookup_path(path).await?;
    Ok(ns.handle(&rec))
}

async fn read_all(e: &Engine, fh: &FileHandle) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let r = e.read(fh, out.len() as u64, 4 * MIB).await.unwrap();
        let eof = r.eof;
        let got = r.to_vec();
        out.extend_from_slice(&got);
        if eof || got.is_empty() {
            return out;
        }
    }
}

async fn publish(e: &Arc<Engine>) {
    assert!(e.publish_all(Duration::from_secs(20)).await, "publish did not finish: {:?}", e.write_stats());
}

/// Drops the engine as a crash would leave things: nothing published or flushed beyond what
/// is already done (running uploads and operations are let finish so the cache is released).
fn crash(e: Arc<Engine>) {
    e.stop_write_back();
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while Arc::strong_count(&e) > 1 {
        assert!(std::time::Instant::now() < until, "background work still holds the engine");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(e);
}

fn settle_shutdown(e: Arc<Engine>) {
    let e = Arc::try_unwrap(e).unwrap_or_else(|_| panic!("engine still shared"));
    e.shutdown().unwrap();
}

#[test]
fn new_file_written_in_pieces_is_published_byte_for_byte() {
    let s = Setup::new("new-file");
    let e = s.engine();
    rt().block_on(async {
        let root = root(&e).await;
        let c = e.create(&root, "a.bin", CreateMode::Guarded, &SetAttrs::default()).await.unwrap();
        assert!(c.created);
        let data = pattern(3, (12 * MIB + 12345) as usize);
        // Out of order and in odd sizes: whole blocks, partial ones, a tail.
        let cuts = [0usize, 700_000, 3 * MIB as usize, 3 * MIB as usize + 17, 9 * MIB as usize, data.len()];
        for w in cuts.windows(2).rev() {
            let out = e.write(&c.fh, w[0] as u64, &data[w[0]..w[1]], Stability::Unstable).await.unwrap();
            assert_eq!(out.count as usize, w[1] - w[0]);
        }
        assert!(read_all(&e, &c.fh).await == data, "read back before commit");
        let v = e.commit(&c.fh).await.unwrap();
        assert_eq!(v, e.write_verifier());
        e.opened(&c.fh);
        e.closed(&c.fh).await.unwrap();
        publish(&e).await;
        assert!(s.object("a.bin").as_deref() == Some(&data[..]), "bucket object");
        let st = e.write_stats();
        assert_eq!(st.uploads, 1);
        assert_eq!(st.pending_uploads, 0);
        assert_eq!(e.stats().cache.dirty_bytes, 0, "published extents are clean");
        // Still readable from the cache after publishing, also after the listing is trusted no
        // more and the file is revalidated: the published ETag is the bucket's, so the cached
        // blocks stay valid (no GET).
        assert!(read_all(&e, &c.fh).await == data);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let gets_before = e.stats().buckets[0].requests.get("get").copied().unwrap_or(0);
        let again = lookup(&e, "a.bin").await.unwrap();
        let _ = e.export("/data").unwrap().getattr(again.ino).await.unwrap();
        assert!(read_all(&e, &again).await == data);
        let gets = e.stats().buckets[0].requests.get("get").copied().unwrap_or(0) - gets_before;
        assert_eq!(gets, 0, "a published file is read from the cache");
        // Guarded create of an existing name fails; unchecked opens it.
        let again = e.create(&root, "a.bin", CreateMode::Guarded, &SetAttrs::default()).await;
        assert!(matches!(again, Err(EngineError::Exists { .. })), "{again:?}");
        let open = e.create(&root, "a.bin", CreateMode::Unchecked, &SetAttrs::default()).await.unwrap();
        assert!(!open.created);
        assert_eq!(open.fh, c.fh);
    });
    settle_shutdown(e);
}

#[test]
fn random_writes_truncates_and_appends_match_a_model() {
    let s = Setup::new("model");
    s.put_object("m.bin", &pattern(9, (3 * MIB + 100) as usize));
    let e = s.engine();
    rt().block_on(async {
        let fh = lookup(&e, "m.bin").await.unwrap();
        let mut model = pattern(9, (3 * MIB + 100) as usize);
        let mut seed = 0x1234_5678_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..60 {
            match next(6) {
                0 => {
                    let size = next(5 * MIB);
                    e.setattr(&fh, &SetAttrs { size: Some(size), ..SetAttrs::default() }).await.unwrap();
                    model.resize(size as usize, 0);
                }
                1 => {
                    let len = next(300_000) as usize + 1;
                    let bytes = pattern(round as u8, len);
                    let at = model.len();
                    e.write(&fh, at as u64, &bytes, Stability::Unstable).await.unwrap();
                    model.extend_from_slice(&bytes);
                }
                _ => {
                    let at = next(5 * MIB) as usize;
                    let len = next(70_000) as usize + 1;
                    let bytes = pattern(round as u8 ^ 0x55, len);
                    e.write(&fh, at as u64, &bytes, Stability::Unstable).await.unwrap();
                    if model.len() < at + len {
                        model.resize(at + len, 0);
                    }
                    model[at..at + len].copy_from_slice(&bytes);
                }
            }
            if round % 10 == 0 {
                let got = read_all(&e, &fh).await;
                assert_eq!(got.len(), model.len(), "round {round}: size");
                assert!(
                    got == model,
                    "round {round}: first difference at {:?}",
                    got.iter().zip(&model).position(|(a, b)| a != b)
                );
            }
        }
        // A hole punch and an allocation past the end.
        let punch_at = model.len() as u64 / 3;
        e.deallocate(&fh, punch_at, 200_000).await.unwrap();
        let punch_end = (punch_at as usize + 200_000).min(model.len());
        model[punch_at as usize..punch_end].fill(0);
        let grown = e.allocate(&fh, model.len() as u64, 3000).await.unwrap();
        model.resize(model.len() + 3000, 0);
        assert_eq!(grown.size, model.len() as u64);
        e.commit(&fh).await.unwrap();
        assert!(read_all(&e, &fh).await == model);
        publish(&e).await;
        assert!(s.object("m.bin").unwrap() == model, "bucket matches the model");
    });
    settle_shutdown(e);
}

#[test]
fn checkpoint_pattern_costs_one_upload_and_replaces_the_old_checkpoint() {
    let s = Setup::new("ckpt");
    s.put_object("ckpt", b"old checkpoint");
    let e = s.engine();
    rt().block_on(async {
        let root = root(&e).await;
        let old = lookup(&e, "ckpt").await.unwrap();
        assert_eq!(read_all(&e, &old).await, b"old checkpoint");
        let puts_before = e.stats().buckets[0].requests.get("put").copied().unwrap_or(0);
        let tmp = e.create(&root, "ckpt.tmp", CreateMode::Guarded, &SetAttrs::default()).await.unwrap();
        e.opened(&tmp.fh);
        let data = pattern(1, (2 * MIB + 5) as usize);
        e.write(&tmp.fh, 0, &data, Stability::Unstable).await.unwrap();
        e.commit(&tmp.fh).await.unwrap();
        e.closed(&tmp.fh).await.unwrap();
        e.rename(&root, "ckpt.tmp", &root, "ckpt").await.unwrap();
        assert!(matches!(lookup(&e, "ckpt.tmp").await, Err(EngineError::NotFound { .. })));
        // A rename right after unstable writes keeps them (and their size).
        let u = e.create(&root, "u", CreateMode::Guarded, &SetAttrs::default()).await.unwrap();
        e.write(&u.fh, 0, b"unstable", Stability::Unstable).await.unwrap();
        let before = e.export("/data").unwrap().getattr(u.fh.ino).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        e.write(&u.fh, 8, b"!", Stability::Unstable).await.unwrap();
        let after = e.export("/data").unwrap().getattr(u.fh.ino).await.unwrap();
        assert!(after.mtime > before.mtime, "a write moves the mtime of a file made here");
        e.rename(&root, "u", &root, "v").await.unwrap();
        let v = lookup(&e, "v").await.unwrap();
        assert_eq!(read_all(&e, &v).await, b"unstable!");
        e.remove(&root, "v", None).await.unwrap();
        let now = lookup(&e, "ckpt").await.unwrap();
        assert_eq!(now, tmp.fh, "the renamed file keeps its handle");
        assert!(read_all(&e, &now).await == data);
        publish(&e).await;
        assert!(s.object("ckpt").unwrap() == data);
        assert!(s.object("ckpt.tmp").is_none(), "the temporary name never reached the bucket");
        let st = e.stats();
        let puts = st.buckets[0].requests.get("put").copied().unwrap_or(0) - puts_before;
        assert_eq!(puts, 1, "one upload: {:?}", st.buckets[0].requests);
        assert_eq!(st.writes.copies, 0);
        assert_eq!(st.writes.conflicts, 0);
    });
    settle_shutdown(e);
}

#[test]
fn directory_rename_moves_every_object_including_unlisted_ones() {
    let s = Setup::new("dir-rename");
    for i in 0..25 {
        s.put_object(&format!("d/sub/f{i:02}"), &pattern(i, 1000 + i as usize));
    }
    s.put_object("d/top", b"top");
    let e = s.engine();
    rt().block_on(async {
        let root = root(&e).await;
        // Only the top level is known; the sub-directory was never listed.
        let d = lookup(&e, "d").await.unwrap();
        let fresh = e.create(&d, "new.txt", CreateMode::Guarded, &SetAttrs::default()).await.unwrap();
        e.write(&fresh.fh, 0, b"made here", Stability::FileSync).await.unwrap();
        e.rename(&root, "d", &root, "e").await.unwrap();
        assert!(matches!(lookup(&e, "d").await, Err(EngineError::NotFound { .. })));
        let f = lookup(&e, "e/sub/f07").await.unwrap();
        assert_eq!(read_all(&e, &f).await, pattern(7, 1007), "readable at once, before the bucket moved");
        assert_eq!(read_all(&e, &lookup(&e, "e/new.txt").await.unwrap()).await, b"made here");
        publish(&e).await;
        for i in 0..25 {
            assert_eq!(s.object(&format!("e/sub/f{i:02}")).unwrap(), pattern(i, 1000 + i as usize));
            assert!(s.object(&format!("d/sub/f{i:02}")).is_none(), "old key d/sub/f{i:02} still there");
        }
        assert_eq!(s.object("e/top").unwrap(), b"top");
        assert_eq!(s.object("e/new.txt").unwrap(), b"made here");
        assert!(s.object("d/top").is_none());
        // After the listing TTL the names come from the bucket again, unchanged.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let page = e.export("/data").unwrap().readdir(lookup(&e, "e/sub").await.unwrap().ino, 0, 100).await.unwrap();
        assert_eq!(page.entries.len(), 25);
        assert!(matches!(lookup(&e, "d").await, Err(EngineError::NotFound { .. })));
    });
    settle_shutdown(e);
}

#[test]
fn remove_mkdir_rmdir_symlink_and_link() {
    let s = Setup::new("names");
    s.put_object("gone.txt", b"x");
    let e = s.engine();
    rt().block_on(async {
        let root = root(&e).await;
        e.remove(&root, "gone.txt", Some(false)).await.unwrap();
        assert!(matches!(lookup(&e, "gone.txt").await, Err(EngineError::NotFound { .. })));
        let dir = e.mkdir(&root, "empty", &SetAttrs { mode: Some(0o750), ..SetAttrs::default() }).await.unwrap();
        assert_eq!(dir.attr.mode, 0o750);
        let l = e.symlink(&root, "link", "empty/target", &SetAttrs::default()).await.unwrap();
        assert_eq!(e.readlink(&l.fh).await.unwrap(), "empty/target");
        assert!(matches!(e.link(&l.fh), Err(EngineError::NotSupported { .. })));
        let inner = e.create(&dir.fh, "f", CreateMode::Guarded, &SetAttrs::default()).await.unwrap();
        assert!(matches!(e.remove(&root, "empty", Some(true)).await, Err(EngineError::NotEmpty { .. })));
        e.remove(&dir.fh, "f", None).await.unwrap();
        assert!(matches!(e.write(&inner.fh, 0, b"x", Stability::Unstable).await, Err(EngineError::Stale { .. })));
        publish(&e).await;
        assert!(s.object("gone.txt").is_none(), "removed object deleted in the bucket");
        assert!(s.bucket_dir.join("empty").is_dir(), "the empty directory's marker is in the bucket");
        assert_eq!(s.object("link").unwrap(), b"empty/target");
        e.remove(&root, "empty", Some(true)).await.unwrap();
        publish(&e).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(matches!(lookup(&e, "empty").await, Err(EngineError::NotFound { .. })));
    });
    settle_shutdown(e);
}

#[test]
fn committed_writes_survive_a_crash_and_uncommitted_ones_are_old_or_new() {
    let s = Setup::new("crash");
    let (fh, committed) = {
        let e = s.engine();
        let out = rt().block_on(async {
            let root = root(&e).await;
            let c = e.create(&root, "log", CreateMode::Guarded, &SetAttrs::default()).await.unwrap();
            let committed = pattern(5, (2 * MIB + 3) as usize);
            e.write(&c.fh, 0, &committed, Stability::Unstable).await.unwrap();
            e.commit(&c.fh).await.unwrap();
            // Not committed: a rewrite of the start and an extension.
            e.write(&c.fh, 0, &pattern(6, 1000), Stability::Unstable).await.unwrap();
            e.write(&c.fh, committed.len() as u64, &pattern(7, 5000), Stability::Unstable).await.unwrap();
            (c.fh, committed)
        });
        // A crash: nothing flushed or published, the engine is dropped without shutdown.
        crash(e);
        out
    };
    let e = s.engine();
    rt().block_on(async {
        let got = read_all(&e, &fh).await;
        assert_eq!(got.len(), committed.len(), "size is the committed size");
        let new_head = pattern(6, 1000);
        assert!(
            got[..1000] == committed[..1000] || got[..1000] == new_head[..],
            "the head is old or new, not garbage: {:?}",
            &got[..16]
        );
        assert!(got[1000..] == committed[1000..]);
        publish(&e).await;
        assert!(s.object("log").unwrap() == got, "what is readable is what reaches the bucket");
    });
    settle_shutdown(e);
}

#[test]
fn an_object_changed_in_the_bucket_meanwhile_is_a_conflict_not_overwritten() {
    let s = Setup::new("conflict");
    s.put_object("shared.txt", b"version 1");
    let e = s.engine();
    rt().block_on(async {
        let fh = lookup(&e, "shared.txt").await.unwrap();
        assert_eq!(read_all(&e, &fh).await, b"version 1");
        e.write(&fh, 0, b"VERSION", Stability::FileSync).await.unwrap();
        // Someone else rewrites the object before we publish.
        std::thread::sleep(Duration::from_millis(20));
        s.put_object("shared.txt", b"their version 2");
        publish(&e).await;
        assert_eq!(s.object("shared.txt").unwrap(), b"their version 2", "not overwritten");
        let st = e.write_stats();
        assert_eq!(st.conflicts, 1, "{st:?}");
        assert!(st.last_error.is_none() || !st.last_error.as_deref().unwrap_or("").is_empty());
        // Our data is still there locally.
        assert_eq!(read_all(&e, &fh).await, b"VERSION 1");
    });
    settle_shutdown(e);
}

#[test]
fn uploads_through_throttling_and_resets_end_in_a_correct_bucket() {
    let s = Setup::new("faults");
    let plan = FaultPlan::default()
        .with_rule(OpKind::Put, FaultRule { slow_down_503: Trigger::EveryNth(2), ..FaultRule::default() })
        // Parts fail at random (a multipart upload whose part fails is sent again whole).
        .with_rule(OpKind::UploadPart, FaultRule { reset: Trigger::Probability(0.15), ..FaultRule::default() })
        .with_rule(OpKind::Delete, FaultRule { error_500: Trigger::EveryNth(2), ..FaultRule::default() })
        .with_rule(OpKind::Copy, FaultRule { slow_down_503: Trigger::EveryNth(2), ..FaultRule::default() });
    let client = Arc::new(FaultyClient::new(s.client(), plan));
    s.put_object("keep/a", b"aaaa");
    let e = s.engine_with(client.clone());
    rt().block_on(async {
        let root = root(&e).await;
        let mut expected = Vec::new();
        for i in 0..6u8 {
            let c = e.create(&root, &format!("f{i}"), CreateMode::Guarded, &SetAttrs::default()).await.unwrap();
            let data = pattern(i, if i % 2 == 0 { (11 * MIB) as usize } else { 4096 * (i as usize + 1) });
            e.write(&c.fh, 0, &data, Stability::FileSync).await.unwrap();
            e.opened(&c.fh);
            e.closed(&c.fh).await.unwrap();
            expected.push((format!("f{i}"), data));
        }
        e.rename(&root, "keep", &root, "kept").await.unwrap();
        e.remove(&root, "f5", None).await.unwrap();
        expected.pop();
        publish(&e).await;
        for (name, data) in &expected {
            assert!(s.object(name).as_deref() == Some(&data[..]), "{name}");
        }
        assert!(s.object("f5").is_none());
        assert_eq!(s.object("kept/a").unwrap(), b"aaaa");
        assert!(s.object("keep/a").is_none());
        let counts = client.counts();
        assert!(counts.slow_down_503 + counts.reset + counts.error_500 > 0, "faults were injected: {counts:?}");
        // No leftovers: every object in the bucket is one we expect.
        let mut found = Vec::new();
        collect(&s.bucket_dir, &s.bucket_dir, &mut found);
        found.sort();
        let mut want: Vec<String> = expected.iter().map(|(n, _)| n.clone()).collect();
        want.push("kept/a".into());
        want.sort();
        assert_eq!(found, want);
    });
    settle_shutdown(e);
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            collect(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().to_string());
        }
    }
}

#[test]
fn a_cache_full_of_unpublished_data_fails_writes_cleanly() {
    let s = Setup::new("full");
    // The bucket refuses every PUT: nothing can be published, dirty data piles up.
    let plan = FaultPlan::default()
        .with_rule(OpKind::Put, FaultRule { error_500: Trigger::EveryNth(1), ..FaultRule::default() })
        .with_rule(OpKind::CreateMultipart, FaultRule { error_500: Trigger::EveryNth(1), ..FaultRule::default() });
    let client = Arc::new(FaultyClient::new(s.client(), plan));
    s.small_cache(64 * MIB);
    let e = s.engine_with(client);
    rt().block_on(async {
        let root = root(&e).await;
        let c = e.create(&root, "big", CreateMode::Guarded, &SetAttrs::default()).await.unwrap();
        let block = pattern(1, MIB as usize);
        let mut failed = None;
        for i in 0..64u64 {
            if let Err(err) = e.write(&c.fh, i * MIB, &block, Stability::Unstable).await {
                failed = Some((i, err));
                break;
            }
        }
        let (at, err) = failed.expect("writes must fail once the dirty limit is reached");
        assert!(matches!(err, EngineError::NoSpace { .. }), "{err:?}");
        assert!(at >= 8, "failed too early, at block {at}");
        assert!(e.write_stats().no_space >= 1);
        // What was written before stays readable.
        let r = e.read(&c.fh, 0, MIB).await.unwrap().to_vec();
        assert_eq!(r, block);
    });
}

/// The same chain against a real S3 server (SeaweedFS on loopback): multipart and single
/// uploads, a rename (server-side copy + delete), a directory rename, a remove, and a conflict,
/// then the objects are read back through the S3 API.
#[test]
fn writes_reach_a_real_s3_bucket() {
    use engine::object::store::S3Config;
    let s = Setup::new("s3");
    let runtime = rt();
    let client = runtime.block_on(async {
        let server = testkit::S3Server::shared().unwrap_or_else(|e| panic!("S3 server: {e}"));
        let bucket = server.new_bucket("writes").await.unwrap_or_else(|e| panic!("{e}"));
        let config = ObjectStoreConfig::S3(S3Config::static_keys(
            &bucket,
            server.endpoint(),
            server.region(),
            server.access_key(),
            server.secret_key(),
        ));
        StoreClient::new(&config).unwrap()
    });
    let client: Arc<dyn ObjectClient> = Arc::new(client);
    let get = |key: &str| {
        let c = client.clone();
        let key = key.to_string();
        async move {
            match c.head(&key).await {
                Ok(m) => Some(engine::object::get_range_bytes(&*c, &key, 0..m.size, None).await.unwrap().to_vec()),
                Err(e) if e.is_not_found() => None,
                Err(e) => panic!("{e}"),
            }
        }
    };
    runtime.block_on(async {
        client.put("old/x", bytes::Bytes::from_static(b"x in old"), &Default::default()).await.unwrap();
        client.put("shared", bytes::Bytes::from_static(b"v1"), &Default::default()).await.unwrap();
    });
    let e = s.engine_with(client.clone());
    runtime.block_on(async {
        let root = root(&e).await;
        let big = pattern(2, (12 * MIB + 7) as usize);
        let c = e
            .create(&root, "big.bin", CreateMode::Guarded, &SetAttrs { mode: Some(0o600), ..SetAttrs::default() })
            .await
            .unwrap();
        e.write(&c.fh, 0, &big, Stability::Unstable).await.unwrap();
        e.commit(&c.fh).await.unwrap();
        let small = e.create(&root, "small.txt", CreateMode::Guarded, &SetAttrs::default()).await.unwrap();
        e.write(&small.fh, 0, b"small", Stability::FileSync).await.unwrap();
        publish(&e).await;
        assert!(get("big.bin").await.as_deref() == Some(&big[..]), "multipart upload");
        assert_eq!(get("small.txt").await.as_deref(), Some(&b"small"[..]));
        let meta = client.head("big.bin").await.unwrap().user_metadata.unwrap();
        assert_eq!(meta.get("mode").map(String::as_str), Some("384"), "{meta:?}");
        // A rename of a published file: copy + delete in the bucket.
        e.rename(&root, "small.txt", &root, "renamed.txt").await.unwrap();
        e.rename(&root, "old", &root, "new").await.unwrap();
        e.remove(&root, "big.bin", None).await.unwrap();
        publish(&e).await;
        assert_eq!(get("renamed.txt").await.as_deref(), Some(&b"small"[..]));
        assert_eq!(get("small.txt").await, None);
        assert_eq!(get("new/x").await.as_deref(), Some(&b"x in old"[..]));
        assert_eq!(get("old/x").await, None);
        assert_eq!(get("big.bin").await, None);
        // A conflict on S3: someone else rewrites the object after we changed it.
        let shared = lookup(&e, "shared").await.unwrap();
        e.write(&shared.clone(), 0, b"V", Stability::FileSync).await.unwrap();
        client.put("shared", bytes::Bytes::from_static(b"theirs"), &Default::default()).await.unwrap();
        publish(&e).await;
        assert_eq!(get("shared").await.as_deref(), Some(&b"theirs"[..]));
        assert_eq!(e.write_stats().conflicts, 1);
    });
    settle_shutdown(e);
}

/// Queued bucket operations survive a crash and run, in order, after the restart.
#[test]
fn queued_bucket_operations_resume_after_a_crash() {
    let s = Setup::new("queue-resume");
    s.put_object("a/1", b"one");
    s.put_object("a/2", b"two");
    s.put_object("gone", b"bye");
    {
        // Copies and deletes fail: the operations stay queued.
        let down = FaultRule { error_500: Trigger::EveryNth(1), ..FaultRule::default() };
        let plan = FaultPlan::default().with_rule(OpKind::Copy, down.clone()).with_rule(OpKind::Delete, down);
        let e = s.engine_with(Arc::new(FaultyClient::new(s.client(), plan)));
        rt().block_on(async {
            let root = root(&e).await;
            e.rename(&root, "a", &root, "b").await.unwrap();
            e.remove(&root, "gone", None).await.unwrap();
            // Then a new file takes the removed name: its upload must wait for the delete.
            let c = e.create(&root, "gone", CreateMode::Guarded, &SetAttrs::default()).await.unwrap();
            e.write(&c.fh, 0, b"back again", Stability::FileSync).await.unwrap();
            assert!(!e.publish_all(Duration::from_millis(500)).await, "nothing can finish");
            assert!(e.write_stats().pending_bucket_ops >= 5);
            assert_eq!(s.object("gone").unwrap(), b"bye", "the new file waits for the delete");
        });
        crash(e);
    }
    let e = s.engine();
    rt().block_on(async {
        assert!(read_all(&e, &lookup(&e, "b/1").await.unwrap()).await == b"one");
        publish(&e).await;
        assert_eq!(s.object("b/1").unwrap(), b"one");
        assert_eq!(s.object("b/2").unwrap(), b"two");
        assert!(s.object("a/1").is_none() && s.object("a/2").is_none());
        assert_eq!(s.object("gone").unwrap(), b"back again", "delete first, then the new upload");
        assert_eq!(e.write_stats().pending_bucket_ops, 0);
    });
    settle_shutdown(e);
}

/// A file written while its multipart upload is under way is uploaded again; the bucket never
/// holds a mix of the two versions.
#[test]
fn a_file_rewritten_during_its_upload_is_uploaded_again_whole() {
    let s = Setup::new("rewrite-during-upload");
    let slow = FaultRule { latency_fixed: Duration::from_millis(150), ..FaultRule::default() };
    let plan = FaultPlan::default().with_rule(OpKind::UploadPart, slow);
    let e = s.engine_with(Arc::new(FaultyClient::new(s.client(), plan)));
    rt().block_on(async {
        let root = root(&e).await;
        let c = e.create(&root, "f", CreateMode::Guarded, &SetAttrs::default()).await.unwrap();
        let first = pattern(1, (16 * MIB) as usize);
        e.write(&c.fh, 0, &first, Stability::FileSync).await.unwrap();
        e.opened(&c.fh);
        e.closed(&c.fh).await.unwrap();
        // Wait until the upload is running, then change the middle of the file.
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while e.stats().buckets[0].requests.get("multipart_part").copied().unwrap_or(0) == 0 {
            assert!(std::time::Instant::now() < until, "the upload did not start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut second = first.clone();
        second[(8 * MIB) as usize..(8 * MIB) as usize + 4096].fill(0xEE);
        e.write(&c.fh, 8 * MIB, &second[(8 * MIB) as usize..(8 * MIB) as usize + 4096], Stability::FileSync)
            .await
            .unwrap();
        publish(&e).await;
        assert!(s.object("f").unwrap() == second, "the bucket has the second version, whole");
        assert!(e.write_stats().uploads_restarted >= 1, "{:?}", e.write_stats());
    });
    settle_shutdown(e);
}

/// A full cache makes writers wait while files waiting for their upload delay are published at
/// once; then the writes go on (nothing fails).
#[test]
fn a_full_cache_waits_for_uploads_then_writes_go_on() {
    let s = Setup::new("full-waits");
    s.small_cache(64 * MIB);
    let e = s.engine();
    rt().block_on(async {
        let root = root(&e).await;
        let block = pattern(3, MIB as usize);
        let mut written_total = 0u64;
        // Each file fits the cache's room for dirty data (a single file being written must);
        // together they are more than the cache holds.
        let names = ["a", "b", "c", "d", "e", "f"];
        for name in names {
            let c = e.create(&root, name, CreateMode::Guarded, &SetAttrs::default()).await.unwrap();
            for i in 0..12u64 {
                e.write(&c.fh, i * MIB, &block, Stability::Unstable)
                    .await
                    .unwrap_or_else(|err| panic!("{name} block {i}: {err}"));
                written_total += MIB;
            }
            e.commit(&c.fh).await.unwrap();
        }
        assert!(written_total > 64 * MIB, "more than the cache holds went through");
        publish(&e).await;
        for name in names {
            assert_eq!(s.object(name).unwrap().len() as u64, 12 * MIB, "{name}");
        }
        assert_eq!(e.write_stats().no_space, 0);
    });
    settle_shutdown(e);
}
