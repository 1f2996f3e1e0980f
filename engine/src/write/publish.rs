//! The publisher: puts what changed here into the bucket, in the background.
//!
//! Two kinds of work. (1) Files, directories and symlinks with local state are published when
//! due (after close, or idle): a file up to `part_bytes` in one PUT, a larger one as a multipart
//! upload with `parts_in_flight_max` parts in flight; a directory as an empty `dir/` marker; a
//! symlink as an object whose body is the target. Uploads carry the POSIX attributes as user
//! metadata and `bucketfs-origin` (the store id), and are conditional on what the bucket is
//! believed to hold at the key (`If-Match` / `If-None-Match: *`). (2) The durable queue of bucket
//! operations ([`BucketOp`]: copies and deletes of renames and removes), in the metadata store.
//!
//! Order per key. An operation runs only when no earlier queued operation touches one of its keys
//! and nothing is running on them; a publish to a key waits while any queued operation touches
//! it. So a rename's copy runs before the upload that overwrites its destination, and a delete
//! of a removed file runs after an upload to that key that was already running.
//!
//! Consistency. A publish writes out the file's partial blocks, then reads the file while
//! counting its changes; if anything changed (a write, a truncate, a rename) before the object
//! would be published, the upload is abandoned (a multipart upload aborted) and tried again
//! later: the bucket never gets a mix of two versions. After success the file's dirty extents
//! are marked clean (they stay cached) and its local state is dropped.
//!
//! Conflicts. A 412 means the object changed in the bucket. If the object there carries this
//! store's origin it is our own earlier upload (e.g. one that finished just before a crash) and
//! the upload is sent again against its ETag; otherwise it is a conflict: logged, counted,
//! recorded in the file's local state, and the local data is kept, never silently overwritten.
//!
//! Failures (throttling, 5xx, resets) are retried by the bucket's retry policy, then the file is
//! tried again after a growing delay; nothing is dropped.
//!
//! Runs on: the backfill runtime (one scheduling task, uploads and operations as tasks).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use blockstore::Key;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};

use super::FileState;
use crate::bucket::{Bucket, RequestKind};
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::meta::{Batch, BucketOp, InodeRecord, Kind};
use crate::namespace::Namespace;
use crate::object::{ObjectError, PutMode, PutOptions, UserMetadata};

/// User metadata naming the store that wrote an object.
pub const ORIGIN_METADATA: &str = "bucketfs-origin";
/// The file-type bits s3fs puts into `mode` for a symlink.
const S_IFLNK: u32 = 0o120_000;

/// The publisher's bookkeeping.
#[derive(Default)]
pub(crate) struct Publisher {
    notify: Arc<tokio::sync::Notify>,
    /// Set by [`Engine::stop_write_back`]: nothing new starts.
    stopping: std::sync::atomic::AtomicBool,
    state: Mutex<PubState>,
}

#[derive(Default)]
struct PubState {
    /// Queued bucket operations not yet done, by sequence number.
    ops: BTreeMap<u64, BucketOp>,
    running_ops: HashSet<u64>,
    /// Operations that failed, and when they may run again.
    ops_not_before: HashMap<u64, Instant>,
    op_failures: HashMap<u64, u32>,
    /// (bucket, key) with an upload or operation running.
    busy: HashMap<(String, String), u32>,
    /// Inodes being published.
    uploading: HashSet<u64>,
    last_error: Option<String>,
}

impl Publisher {
    fn state(&self) -> MutexGuard<'_, PubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the scheduling task (a file was closed, room is needed).
    pub(crate) fn kick(&self) {
        self.notify.notify_one();
    }

    pub(crate) fn is_uploading(&self, ino: u64) -> bool {
        self.state().uploading.contains(&ino)
    }

    /// Nothing queued, nothing running.
    pub(crate) fn idle(&self) -> bool {
        let state = self.state();
        state.ops.is_empty() && state.uploading.is_empty()
    }

    pub(crate) fn uploading(&self) -> u64 {
        self.state().uploading.len() as u64
    }

    pub(crate) fn pending_ops(&self) -> u64 {
        self.state().ops.len() as u64
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.state().last_error.clone()
    }

    /// Registers queued operations (after their durable commit).
    pub(crate) fn add_ops(&self, engine: &Engine, ops: impl IntoIterator<Item = (u64, BucketOp)>) {
        let mut state = self.state();
        for (seq, op) in ops {
            if let Some(bucket) = engine.bucket(op.bucket()) {
                for key in hidden_keys(&op) {
                    bucket.hide(key);
                }
            }
            state.ops.insert(seq, op);
        }
        drop(state);
        self.kick();
    }
}

/// The keys an operation hides from listings while queued: what it deletes.
fn hidden_keys(op: &BucketOp) -> Vec<&str> {
    match op {
        BucketOp::Delete { key, .. } => vec![key.as_str()],
        BucketOp::Copy { .. } => Vec::new(),
    }
}

impl Engine {
    /// Starts the write-back: recovers local state after a restart (dirty extents of committed
    /// files, queued bucket operations; extents nobody committed are dropped) and starts the
    /// publisher on the backfill runtime. Call once, right after the engine is shared.
    pub fn start_write_back(self: &Arc<Self>) -> Result<()> {
        let op = "start write-back";
        let locals = self.meta().local_records()?;
        let by_ino: HashMap<u64, &InodeRecord> = locals.iter().map(|r| (r.ino, r)).collect();
        let extents = self.store().dirty_extents().map_err(|e| EngineError::Cache {
            op,
            path: String::new(),
            source: Box::new(e),
        })?;
        let (mut kept, mut dropped) = (0u64, 0u64);
        for ext in extents {
            let owner = by_ino.get(&ext.key.object_id).filter(|r| r.content_version == ext.key.version);
            match owner {
                Some(rec) if ext.key.block * self.config().block_bytes < rec.size.max(1) => {
                    let fs = self.writes.file(rec.ino);
                    fs.inner().written.insert(ext.key.block, (ext.put_seq, ext.data_len));
                    kept += 1;
                }
                _ => {
                    // Written and never committed (or beyond the committed size): not the
                    // file's content; nothing will ever upload it.
                    let _ = self.store().delete(ext.key);
                    dropped += 1;
                }
            }
        }
        for rec in &locals {
            let fs = self.writes.file(rec.ino);
            if rec.local.as_ref().is_some_and(|l| l.conflict.is_none()) {
                fs.inner().due = Some(Instant::now());
            }
        }
        let ops = self.meta().bucket_ops()?;
        if !locals.is_empty() || !ops.is_empty() || dropped > 0 {
            tracing::info!(
                files = locals.len(),
                extents = kept,
                extents_dropped = dropped,
                bucket_ops = ops.len(),
                "write-back recovered local state"
            );
        }
        self.writes.publisher.add_ops(self, ops);
        let weak = Arc::downgrade(self);
        let rt = self.runtime().cloned().ok_or(EngineError::ShuttingDown { op })?;
        rt.spawn(schedule_loop(weak));
        Ok(())
    }

    /// Publishes everything due now and waits until nothing is left to publish or `timeout`
    /// passes (tests, shutdown, `bucketfs stats --wait`). True when all is published.
    pub async fn publish_all(self: &Arc<Self>, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            for ino in self.writes.files_with_state() {
                if let Some(fs) = self.writes.existing(ino) {
                    let mut inner = fs.inner();
                    if inner.due.is_some() {
                        inner.due = Some(Instant::now());
                    }
                }
            }
            self.writes.publisher.kick();
            if self.writes.pending_files() == 0 && self.writes.publisher.idle() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn namespace_of(&self, ino: u64) -> Option<(Arc<Namespace>, Arc<InodeRecord>)> {
        self.exports().find_map(|ns| ns.inode("publish", ino).ok().map(|rec| (ns.clone(), rec)))
    }

    /// Stops starting uploads and bucket operations (those running finish; everything not done
    /// stays durable and resumes at the next start). For a stop or a simulated crash.
    pub fn stop_write_back(&self) {
        self.writes.publisher.stopping.store(true, Ordering::Relaxed);
    }

    /// Uploads or bucket operations running now.
    pub fn write_back_busy(&self) -> bool {
        let state = self.writes.publisher.state();
        !state.uploading.is_empty() || !state.running_ops.is_empty()
    }

    /// One pass of the scheduler: starts queued operations and due publishes that may run.
    fn schedule(self: &Arc<Self>) {
        if self.writes.publisher.stopping.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let cfg = self.writes.config.clone();
        let mut to_start_ops = Vec::new();
        let mut touched: HashSet<(String, String)> = HashSet::new();
        {
            let mut state = self.writes.publisher.state();
            let running = state.running_ops.len();
            let mut room = cfg.ops_in_flight_max.saturating_sub(running);
            let ops: Vec<(u64, BucketOp)> = state.ops.iter().map(|(s, o)| (*s, o.clone())).collect();
            for (seq, op) in ops {
                let keys: Vec<(String, String)> =
                    op.keys().into_iter().map(|k| (op.bucket().to_string(), k.to_string())).collect();
                let blocked = state.running_ops.contains(&seq)
                    || keys.iter().any(|k| touched.contains(k) || state.busy.contains_key(k))
                    || state.ops_not_before.get(&seq).is_some_and(|t| *t > now);
                touched.extend(keys.iter().cloned());
                if blocked || room == 0 {
                    continue;
                }
                room -= 1;
                state.running_ops.insert(seq);
                for k in &keys {
                    *state.busy.entry(k.clone()).or_insert(0) += 1;
                }
                to_start_ops.push((seq, op, keys));
            }
        }
        for (seq, op, keys) in to_start_ops {
            let me = self.clone();
            if let Some(rt) = self.runtime() {
                rt.spawn(async move { me.run_op(seq, op, keys).await });
            }
        }
        let due = self.writes.due(now);
        for ino in due {
            let Some((ns, rec)) = self.namespace_of(ino) else {
                // Gone (removed): nothing to publish.
                self.writes.forget(ino);
                continue;
            };
            let key = publish_key(&ns, &rec);
            let bk = (ns.bucket().name().to_string(), key);
            {
                let mut state = self.writes.publisher.state();
                if state.uploading.len() >= cfg.uploads_in_flight_max {
                    break;
                }
                if state.uploading.contains(&ino) || touched.contains(&bk) || state.busy.contains_key(&bk) {
                    continue;
                }
                state.uploading.insert(ino);
                *state.busy.entry(bk.clone()).or_insert(0) += 1;
            }
            if let Some(fs) = self.writes.existing(ino) {
                fs.inner().due = None;
            }
            let me = self.clone();
            if let Some(rt) = self.runtime() {
                rt.spawn(async move {
                    let outcome = me.publish(&ns, ino).await;
                    me.publish_done(ino, &bk, outcome);
                });
            }
        }
    }

    fn publish_done(self: &Arc<Self>, ino: u64, bk: &(String, String), outcome: Result<Published>) {
        {
            let mut state = self.writes.publisher.state();
            state.uploading.remove(&ino);
            release(&mut state.busy, bk);
            if let Err(e) = &outcome {
                state.last_error = Some(e.to_string());
            }
        }
        let fs = self.writes.existing(ino);
        match outcome {
            Ok(Published::Done) => {
                if let Some(fs) = fs {
                    fs.inner().failures = 0;
                }
            }
            Ok(Published::Again) => {
                self.writes.counters.uploads_restarted.fetch_add(1, Ordering::Relaxed);
                if let Some(fs) = fs {
                    self.writes.schedule(&fs, Duration::from_millis(200));
                }
            }
            Ok(Published::Stopped) => {}
            Err(e) => {
                self.writes.counters.upload_failures.fetch_add(1, Ordering::Relaxed);
                if let Some(fs) = fs {
                    let failures = {
                        let mut inner = fs.inner();
                        inner.failures += 1;
                        inner.failures
                    };
                    let delay = self
                        .writes
                        .config
                        .retry_delay
                        .saturating_mul(1 << failures.min(16).saturating_sub(1))
                        .min(self.writes.config.retry_delay_max);
                    tracing::warn!(ino, error = %e, retry_in = ?delay, "publish failed; will retry");
                    self.writes.schedule(&fs, delay);
                }
            }
        }
        self.writes.publisher.kick();
    }

    /// Publishes one entry.
    async fn publish(self: &Arc<Self>, ns: &Arc<Namespace>, ino: u64) -> Result<Published> {
        let op = "publish";
        let Ok(rec) = ns.inode(op, ino) else { return Ok(Published::Stopped) };
        let Some(local) = rec.local.clone() else { return Ok(Published::Stopped) };
        if local.conflict.is_some() {
            return Ok(Published::Stopped);
        }
        let key = publish_key(ns, &rec);
        let fs = self.writes.file(ino);
        let changes_before = fs.changes.load(Ordering::Relaxed);
        let mut meta = UserMetadata::new();
        let posix = rec.posix.unwrap_or_default();
        let type_bits = if rec.kind == Kind::Symlink { S_IFLNK } else { 0 };
        if let Some(mode) = posix.mode.or_else(|| (rec.kind == Kind::Symlink).then_some(0o777)) {
            meta.insert("mode".into(), (type_bits | mode).to_string());
        }
        if let Some(uid) = posix.uid {
            meta.insert("uid".into(), uid.to_string());
        }
        if let Some(gid) = posix.gid {
            meta.insert("gid".into(), gid.to_string());
        }
        let mtime_ns = posix.mtime_ns.unwrap_or(rec.mtime_ns);
        meta.insert(
            "mtime".into(),
            format!("{}.{:09}", mtime_ns.div_euclid(1_000_000_000), mtime_ns.rem_euclid(1_000_000_000)),
        );
        meta.insert(ORIGIN_METADATA.into(), format!("{:016x}", self.meta().store_id()));
        let mode = match (&local.bucket_etag, rec.kind) {
            // A marker is empty: replacing one loses nothing.
            (_, Kind::Dir) => PutMode::Overwrite,
            (Some(etag), _) => PutMode::Update { etag: etag.clone() },
            (None, _) => PutMode::Create,
        };
        let opts = PutOptions { mode, user_metadata: meta };
        let bucket = ns.bucket().clone();
        if !local.modified && rec.kind != Kind::Dir {
            // Renamed only: the queued copy publishes it (or nothing is owed).
            if local.base.as_ref().is_some_and(|b| b.key == key) {
                self.settle(ns, ino, None, changes_before, &fs).await?;
            }
            return Ok(Published::Stopped);
        }
        let result = match rec.kind {
            Kind::Dir => self.put_small(&bucket, &key, Bytes::new(), &opts).await.inspect(|_| {
                self.writes.counters.markers.fetch_add(1, Ordering::Relaxed);
            }),
            Kind::Symlink => {
                let target = rec.link.clone().unwrap_or_default();
                self.put_small(&bucket, &key, Bytes::from(target.into_bytes()), &opts).await
            }
            Kind::File => {
                // Partial blocks first, so the read below sees everything written.
                let puts = {
                    let _guard = fs.lock.lock().await;
                    let now = ns.inode(op, ino)?;
                    self.write_out_buffers(ns, &now, &fs).await?
                };
                self.await_puts(op, ns, &rec, &fs, puts).await?;
                let changes_before = fs.changes.load(Ordering::Relaxed);
                if !fs.settled() {
                    // Another caller's write-out is between memory and the cache (e.g. waiting
                    // for room): its bytes are readable from neither; try again soon.
                    return Ok(Published::Again);
                }
                let rec = ns.inode(op, ino)?;
                if publish_key(ns, &rec) != key {
                    return Ok(Published::Again);
                }
                let uploaded = if rec.size <= self.writes.config.part_bytes {
                    let body = self.read_local_range(ns, &rec, &fs, 0, rec.size).await?;
                    if fs.changes.load(Ordering::Relaxed) != changes_before {
                        return Ok(Published::Again);
                    }
                    self.put_small(&bucket, &key, Bytes::from(body), &opts).await
                } else {
                    match self.put_multipart(ns, &bucket, &key, &rec, &fs, changes_before, &opts).await? {
                        Some(r) => r,
                        None => return Ok(Published::Again),
                    }
                };
                if uploaded.is_ok() {
                    self.writes.counters.uploads.fetch_add(1, Ordering::Relaxed);
                    self.writes.counters.upload_bytes.fetch_add(rec.size, Ordering::Relaxed);
                }
                uploaded
            }
        };
        match result {
            Ok(etag) => self.settle(ns, ino, Some(etag), changes_before, &fs).await,
            Err(e) if rec.kind == Kind::Dir && !e.is_retryable() && !e.is_precondition() => {
                // The backend cannot hold an empty `dir/` object: the directory exists in the
                // bucket once something is written under it; an empty one lives only here.
                tracing::warn!(path = %ns.display(&rec.path), key, error = %e, "directory marker not written");
                self.settle(ns, ino, Some(None), changes_before, &fs).await
            }
            Err(e) if e.is_precondition() => self.precondition_failed(ns, ino, &key, e).await,
            Err(e) => Err(EngineError::Bucket {
                op,
                path: ns.display(&rec.path),
                bucket: bucket.name().to_string(),
                source: Box::new(e),
            }),
        }
    }

    /// A PUT with retries; returns the new ETag.
    async fn put_small(
        &self,
        bucket: &Arc<Bucket>,
        key: &str,
        body: Bytes,
        opts: &PutOptions,
    ) -> Result<Option<String>, ObjectError> {
        let len = body.len() as u64;
        let out = bucket.retrying(RequestKind::Put, || bucket.client().put(key, body.clone(), opts)).await?;
        bucket.count_sent(len);
        Ok(out.etag)
    }

    /// A multipart upload with parts in flight; `None` when the file changed under it (the
    /// upload was aborted).
    #[allow(clippy::too_many_arguments)]
    async fn put_multipart(
        &self,
        ns: &Namespace,
        bucket: &Arc<Bucket>,
        key: &str,
        rec: &InodeRecord,
        fs: &Arc<FileState>,
        changes_before: u64,
        opts: &PutOptions,
    ) -> Result<Option<Result<Option<String>, ObjectError>>> {
        let created = bucket.retrying(RequestKind::Put, || bucket.client().put_multipart(key, opts)).await;
        let mut upload = match created {
            Ok(u) => u,
            Err(ObjectError::Unsupported { .. }) if opts.mode != PutMode::Overwrite => {
                // The backend cannot make the upload conditional: check, then overwrite (a
                // window remains between the HEAD and the completion).
                match bucket.head(key).await {
                    Ok(m) if PutMode::Update { etag: m.etag.clone().unwrap_or_default() } == opts.mode => {}
                    Err(e) if e.is_not_found() && opts.mode == PutMode::Create => {}
                    Ok(m) => {
                        return Ok(Some(Err(ObjectError::Precondition {
                            op: "create multipart",
                            key: key.into(),
                            detail: format!("the bucket has ETag {:?}", m.etag),
                        })))
                    }
                    Err(e) => return Ok(Some(Err(e))),
                }
                let plain = PutOptions { mode: PutMode::Overwrite, user_metadata: opts.user_metadata.clone() };
                match bucket.retrying(RequestKind::Put, || bucket.client().put_multipart(key, &plain)).await {
                    Ok(u) => u,
                    Err(e) => return Ok(Some(Err(e))),
                }
            }
            Err(e) => return Ok(Some(Err(e))),
        };
        let part = self.writes.config.part_bytes;
        let mut in_flight = FuturesUnordered::new();
        let mut at = 0;
        let mut failed = None;
        while at < rec.size && failed.is_none() {
            let len = part.min(rec.size - at);
            let body = match self.read_local_range(ns, rec, fs, at, len).await {
                Ok(b) => b,
                Err(e) => {
                    let _ = upload.abort().await;
                    return Err(e);
                }
            };
            if fs.changes.load(Ordering::Relaxed) != changes_before {
                let _ = upload.abort().await;
                return Ok(None);
            }
            bucket.count_request(RequestKind::MultipartPart);
            bucket.count_sent(len);
            in_flight.push(upload.put_part(Bytes::from(body)));
            at += len;
            while in_flight.len() >= self.writes.config.parts_in_flight_max.max(1) {
                if let Some(Err(e)) = in_flight.next().await {
                    failed = Some(e);
                    break;
                }
            }
        }
        while let Some(r) = in_flight.next().await {
            if let (Err(e), None) = (r, &failed) {
                failed = Some(e);
            }
        }
        if let Some(e) = failed {
            bucket.count_error(&e);
            let _ = upload.abort().await;
            return Ok(Some(Err(e)));
        }
        if fs.changes.load(Ordering::Relaxed) != changes_before {
            let _ = upload.abort().await;
            return Ok(None);
        }
        match upload.complete().await {
            Ok(out) => Ok(Some(Ok(out.etag))),
            Err(e) => {
                bucket.count_error(&e);
                let _ = upload.abort().await;
                Ok(Some(Err(e)))
            }
        }
    }

    /// Reads `[offset, offset+len)` of a locally changed file.
    pub(crate) async fn read_local_range(
        &self,
        ns: &Namespace,
        rec: &InodeRecord,
        fs: &FileState,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>> {
        let bb = self.config().block_bytes;
        let end = (offset + len).min(rec.size);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let block = at / bb;
            let block_len = ((block + 1) * bb).min(rec.size) - block * bb;
            let bytes = self.local_block(ns, rec, fs, block, block_len as usize).await?;
            let from = (at - block * bb) as usize;
            let to = (end.min((block + 1) * bb) - block * bb) as usize;
            out.extend_from_slice(&bytes[from..to]);
            at = block * bb + to as u64;
        }
        Ok(out)
    }

    /// After a successful publish (or a rename that settled): the entry is clean unless it
    /// changed meanwhile.
    async fn settle(
        self: &Arc<Self>,
        ns: &Arc<Namespace>,
        ino: u64,
        etag: Option<Option<String>>,
        changes_before: u64,
        fs: &Arc<FileState>,
    ) -> Result<Published> {
        let op = "publish";
        let _guard = fs.lock.lock().await;
        let Ok(now) = ns.inode(op, ino) else { return Ok(Published::Stopped) };
        let mut rec = (*now).clone();
        let unchanged = fs.changes.load(Ordering::Relaxed) == changes_before && fs.settled();
        if !unchanged {
            // Rewritten during the upload: what is in the bucket now is our last upload.
            if let (Some(local), Some(etag)) = (rec.local.as_mut(), etag) {
                local.bucket_etag = etag;
            }
            self.meta_commit(op, Batch { puts: vec![rec.clone()], ..Batch::default() }).await?;
            ns.remember_record(rec);
            return Ok(Published::Again);
        }
        let written: Vec<(u64, (u64, u32))> = fs.inner().written.iter().map(|(b, v)| (*b, *v)).collect();
        for (block, (seq, _)) in written {
            let _ = self.store().mark_clean(Key::new(ino, block, rec.content_version), seq);
        }
        let new_etag = match etag {
            Some(e) => e,
            None => rec.local.as_ref().and_then(|l| l.base.as_ref()).and_then(|b| b.etag.clone()),
        };
        rec.etag = new_etag;
        rec.posix_etag = rec.etag.clone();
        rec.local = None;
        rec.change += 1;
        self.meta_commit(op, Batch { puts: vec![rec.clone()], ..Batch::default() }).await?;
        ns.remember_record(rec);
        ns.mark_validated(ino);
        let idle = fs.inner().opens == 0;
        if idle {
            self.writes.forget(ino);
        } else {
            fs.inner().written.clear();
        }
        Ok(Published::Done)
    }

    /// A 412 on publish: our own earlier upload (send again against it) or a conflict.
    async fn precondition_failed(
        self: &Arc<Self>,
        ns: &Arc<Namespace>,
        ino: u64,
        key: &str,
        e: ObjectError,
    ) -> Result<Published> {
        let op = "publish";
        let there = ns.bucket().head(key).await;
        let ours = format!("{:016x}", self.meta().store_id());
        let Ok(rec) = ns.inode(op, ino) else { return Ok(Published::Stopped) };
        let mut rec = (*rec).clone();
        let Some(local) = rec.local.as_mut() else { return Ok(Published::Stopped) };
        match there {
            Ok(m) if m.user_metadata.as_ref().and_then(|u| u.get(ORIGIN_METADATA)) == Some(&ours) => {
                local.bucket_etag = m.etag;
                self.meta_commit(op, Batch { puts: vec![rec.clone()], ..Batch::default() }).await?;
                ns.remember_record(rec);
                Ok(Published::Again)
            }
            Err(nf) if nf.is_not_found() => {
                // Gone meanwhile: create it.
                local.bucket_etag = None;
                self.meta_commit(op, Batch { puts: vec![rec.clone()], ..Batch::default() }).await?;
                ns.remember_record(rec);
                Ok(Published::Again)
            }
            other => {
                let detail = match other {
                    Ok(m) => {
                        format!("the object was changed in the bucket by someone else (ETag now {:?}): {e}", m.etag)
                    }
                    Err(h) => format!("{e}; and a HEAD failed: {h}"),
                };
                tracing::error!(path = %ns.display(&rec.path), key, "{detail}; local data kept, not uploaded");
                self.writes.counters.conflicts.fetch_add(1, Ordering::Relaxed);
                local.conflict = Some(detail);
                self.meta_commit(op, Batch { puts: vec![rec.clone()], ..Batch::default() }).await?;
                ns.remember_record(rec);
                Ok(Published::Stopped)
            }
        }
    }

    /// Runs one queued bucket operation.
    async fn run_op(self: Arc<Self>, seq: u64, op: BucketOp, keys: Vec<(String, String)>) {
        let outcome = self.run_op_inner(&op).await;
        let mut done = false;
        match outcome {
            Ok(batch) => {
                let mut batch = batch;
                batch.ops_done.push(seq);
                match self.meta_commit("bucket op", batch.clone()).await {
                    Ok(_) => {
                        for rec in batch.puts {
                            let settled = rec.local.is_none();
                            let ino = rec.ino;
                            if let Some((ns, _)) = self.namespace_of(ino) {
                                ns.remember_record(rec);
                            }
                            let closed = self.writes.existing(ino).is_some_and(|fs| fs.inner().opens == 0);
                            if settled && closed {
                                self.writes.forget(ino);
                            }
                        }
                        done = true;
                    }
                    Err(e) => tracing::error!(seq, error = %e, "could not record a bucket operation as done"),
                }
            }
            Err(e) => {
                tracing::warn!(seq, op = ?op, error = %e, "bucket operation failed; will retry");
                self.writes.publisher.state().last_error = Some(e.to_string());
            }
        }
        {
            let mut state = self.writes.publisher.state();
            state.running_ops.remove(&seq);
            for k in &keys {
                release(&mut state.busy, k);
            }
            if done {
                state.ops.remove(&seq);
                state.ops_not_before.remove(&seq);
                state.op_failures.remove(&seq);
            } else {
                let n = state.op_failures.entry(seq).or_insert(0);
                *n += 1;
                let delay = self
                    .writes
                    .config
                    .retry_delay
                    .saturating_mul(1 << (*n).min(16).saturating_sub(1))
                    .min(self.writes.config.retry_delay_max);
                state.ops_not_before.insert(seq, Instant::now() + delay);
            }
        }
        if done {
            if let Some(bucket) = self.bucket(op.bucket()) {
                for key in hidden_keys(&op) {
                    bucket.unhide(key);
                }
            }
        }
        self.writes.publisher.kick();
    }

    /// Does the operation; returns the metadata changes that go with it.
    async fn run_op_inner(&self, op: &BucketOp) -> Result<Batch> {
        let Some(bucket) = self.bucket(op.bucket()).cloned() else {
            tracing::error!(op = ?op, "bucket operation for a bucket no longer configured; dropped");
            return Ok(Batch::default());
        };
        let fail = |what: &'static str, key: &str, e: ObjectError| EngineError::Bucket {
            op: what,
            path: key.to_string(),
            bucket: bucket.name().to_string(),
            source: Box::new(e),
        };
        match op {
            BucketOp::Delete { key, .. } => {
                match bucket.retrying(RequestKind::Delete, || bucket.client().delete(key)).await {
                    Ok(()) => {}
                    // A directory marker the backend cannot address: it cannot have written
                    // one either, so there is nothing to delete.
                    Err(e) if key.ends_with('/') && !e.is_retryable() => {
                        tracing::debug!(key, error = %e, "directory marker not deletable here; nothing to delete");
                    }
                    Err(e) => return Err(fail("delete", key, e)),
                }
                self.writes.counters.deletes.fetch_add(1, Ordering::Relaxed);
                Ok(Batch::default())
            }
            BucketOp::Copy { from, to, etag, ino, .. } => {
                let copied =
                    bucket.retrying(RequestKind::Copy, || bucket.client().copy(from, to, etag.as_deref())).await;
                let owner = self.namespace_of(*ino);
                match copied {
                    Ok(()) => {
                        self.writes.counters.copies.fetch_add(1, Ordering::Relaxed);
                        let Some((ns, rec)) = owner else { return Ok(Batch::default()) };
                        let new_etag = match bucket.head(to).await {
                            Ok(m) => m.etag,
                            Err(_) => None,
                        };
                        let mut rec = (*rec).clone();
                        let key_now = publish_key(&ns, &rec);
                        let Some(local) = rec.local.as_mut() else { return Ok(Batch::default()) };
                        if let Some(base) = local.base.as_mut().filter(|b| &b.key == from) {
                            base.key = to.clone();
                            base.etag = new_etag.clone();
                        }
                        if &key_now == to {
                            local.bucket_etag = new_etag.clone();
                            if !local.modified {
                                rec.etag = new_etag;
                                rec.posix_etag = rec.etag.clone();
                                rec.local = None;
                                ns.mark_validated(rec.ino);
                            }
                        }
                        Ok(Batch { puts: vec![rec], ..Batch::default() })
                    }
                    Err(e) if e.is_not_found() || e.is_precondition() => {
                        // The source changed or went away in the bucket: the renamed file's
                        // unwritten bytes are lost to us. Recorded as a conflict on the file.
                        self.writes.counters.conflicts.fetch_add(1, Ordering::Relaxed);
                        let detail = format!("rename: copying {from} to {to} failed: {e}");
                        tracing::error!("{detail}");
                        let Some((_, rec)) = owner else { return Ok(Batch::default()) };
                        let mut rec = (*rec).clone();
                        if let Some(local) = rec.local.as_mut() {
                            local.conflict = Some(detail);
                        }
                        Ok(Batch { puts: vec![rec], ..Batch::default() })
                    }
                    Err(e) => Err(fail("copy", from, e)),
                }
            }
        }
    }
}

/// Where an entry goes in the bucket: its key; a directory's marker ends in `/`.
pub(crate) fn publish_key(ns: &Namespace, rec: &InodeRecord) -> String {
    let key = ns.object_key(&rec.path);
    if rec.kind == Kind::Dir {
        format!("{key}/")
    } else {
        key
    }
}

fn release(busy: &mut HashMap<(String, String), u32>, k: &(String, String)) {
    if let Some(n) = busy.get_mut(k) {
        *n -= 1;
        if *n == 0 {
            busy.remove(k);
        }
    }
}

/// How a publish ended.
enum Published {
    /// In the bucket, clean.
    Done,
    /// Changed meanwhile (or a 412 on our own upload): try again soon.
    Again,
    /// Nothing to do (gone, a conflict, waiting for a copy).
    Stopped,
}

/// The scheduling task: wakes on a kick or every 250 ms; ends with the engine.
async fn schedule_loop(engine: Weak<Engine>) {
    loop {
        let notify = match engine.upgrade() {
            Some(e) => {
                e.schedule();
                e.writes.publisher.notify.clone()
            }
            None => return,
        };
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}
