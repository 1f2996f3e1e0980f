//! The write path: client writes land in the blockstore as dirty extents, COMMIT makes them
//! durable, and the publisher ([`publish`]) puts the files into the bucket later.
//!
//! Content model. A file changed here gets a new content version `V'` (part of every cache key)
//! and a [`Local`] state in its record. Block `b` of the file is, in order: the dirty extent
//! `(ino, b, V')` if one was written (clipped at the file's size), else the block of the
//! [`Base`] object the content started from (its bytes below `base.valid`), else zeros. So a
//! file created here needs no read before writing, and a file changed in place reads only the
//! blocks it does not overwrite in full.
//!
//! Writes. A write that covers a block (up to the end of the file) is put into the blockstore at
//! once as a dirty extent (not yet durable). A partial block is merged into an in-memory block
//! buffer (UNSTABLE data may stay volatile until COMMIT); when the buffer is complete, or at
//! COMMIT, close, a read of that block or memory pressure (`buffered_bytes_max`), it is written
//! out, merging in the block's current bytes (read-modify-write). Per file one async lock orders
//! changes of size, buffers and puts; puts complete outside it.
//!
//! Durability. COMMIT (and a DATA_SYNC/FILE_SYNC write) writes out the file's buffers, waits for
//! its puts, flushes the blockstore and then commits the record (size, local state) to the
//! metadata store: after a crash the file has exactly the committed size, and every block is
//! either its committed content or content written after (never garbage). Dirty extents of a
//! version no record owns (written before a crash and never committed) are dropped at start.
//! The write verifier is random per engine start, so clients resend what they did not commit.
//!
//! A full cache: a put refused with `CacheFull` waits (`dirty_wait`) for the publisher to make
//! room, then fails with [`EngineError::NoSpace`].
//!
//! Runs on: callers' executors (writes, commits); blockstore work on shard threads; metadata
//! commits on the backfill runtime's blocking threads.

pub mod names;
pub mod publish;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use blockstore::{ExtentBuf, Key, PutOptions, Store, StoreError};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::meta::{Base, Batch, InodeRecord, Kind, Local};
use crate::namespace::{ns_from_time, Namespace};

/// How durable a write must be before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stability {
    /// May stay in volatile memory until a commit.
    Unstable,
    /// Data durable (size included, as this engine keeps them together).
    DataSync,
    /// Data and metadata durable.
    FileSync,
}

/// Write-path settings.
#[derive(Clone, Debug)]
pub struct WriteConfig {
    /// Partial blocks of unstable writes kept in memory at most (all files).
    pub buffered_bytes_max: u64,
    /// A file is published this long after its last close (a rename right after a close,
    /// the checkpoint pattern, then costs no second upload).
    pub upload_delay_after_close: Duration,
    /// A file still open (or never closed, NFSv3) is published this long after its last write.
    pub upload_delay_idle: Duration,
    /// Multipart part size; files up to it go in one PUT.
    pub part_bytes: u64,
    /// Parts of one upload in flight at most.
    pub parts_in_flight_max: usize,
    /// Files being published at once at most.
    pub uploads_in_flight_max: usize,
    /// Queued bucket operations (copies, deletes) running at once at most.
    pub ops_in_flight_max: usize,
    /// How long a write waits for room in a full cache before failing with `NoSpace`.
    pub dirty_wait: Duration,
    /// First wait after a failed upload; doubles up to `retry_delay_max`.
    pub retry_delay: Duration,
    pub retry_delay_max: Duration,
}

impl Default for WriteConfig {
    fn default() -> WriteConfig {
        WriteConfig {
            buffered_bytes_max: 256 << 20,
            upload_delay_after_close: Duration::from_secs(2),
            upload_delay_idle: Duration::from_secs(30),
            part_bytes: 16 << 20,
            parts_in_flight_max: 4,
            uploads_in_flight_max: 4,
            ops_in_flight_max: 8,
            dirty_wait: Duration::from_secs(10),
            retry_delay: Duration::from_secs(1),
            retry_delay_max: Duration::from_secs(60),
        }
    }
}

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    pub count: u64,
    /// How durable it is now (at least what was asked).
    pub stability: Stability,
    /// Changes when the engine restarts: data written unstable under another verifier must be
    /// sent again.
    pub verifier: u64,
    /// The file's size after the write.
    pub size: u64,
}

/// Attribute changes (SETATTR); `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetAttrs {
    pub size: Option<u64>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Modification time; `Some(None)` means "now".
    pub mtime: Option<Option<SystemTime>>,
}

impl SetAttrs {
    pub fn is_empty(&self) -> bool {
        *self == SetAttrs::default()
    }
}

/// Counters of the write path.
#[derive(Debug, Default)]
pub struct WriteCounters {
    pub writes: AtomicU64,
    pub write_bytes: AtomicU64,
    pub commits: AtomicU64,
    pub read_modify_writes: AtomicU64,
    pub no_space: AtomicU64,
    pub uploads: AtomicU64,
    pub upload_bytes: AtomicU64,
    pub upload_retries: AtomicU64,
    pub upload_failures: AtomicU64,
    pub uploads_restarted: AtomicU64,
    pub conflicts: AtomicU64,
    pub copies: AtomicU64,
    pub deletes: AtomicU64,
    pub markers: AtomicU64,
}

/// A partial block of unstable writes.
struct BlockBuf {
    data: Vec<u8>,
    /// Written ranges within the block, disjoint and sorted: start → end.
    valid: BTreeMap<usize, usize>,
}

impl BlockBuf {
    fn new(block_bytes: usize) -> BlockBuf {
        BlockBuf { data: vec![0; block_bytes], valid: BTreeMap::new() }
    }

    fn merge(&mut self, at: usize, bytes: &[u8]) {
        let (mut start, mut end) = (at, at + bytes.len());
        self.data[start..end].copy_from_slice(bytes);
        let touching: Vec<(usize, usize)> =
            self.valid.range(..=end).filter(|(_, &e)| e >= start).map(|(&s, &e)| (s, e)).collect();
        for (s, e) in touching {
            self.valid.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.valid.insert(start, end);
    }

    /// Fills `[0, bytes.len())` with `bytes` where nothing was written (older data under newer).
    fn merge_under(&mut self, bytes: &[u8]) {
        let mut gaps = Vec::new();
        let mut at = 0;
        for (&s, &e) in &self.valid {
            if s > at {
                gaps.push((at, s.min(bytes.len())));
            }
            at = at.max(e);
        }
        gaps.push((at, bytes.len()));
        for (s, e) in gaps {
            if s < e {
                self.merge(s, &bytes[s..e]);
            }
        }
    }

    /// Covers `[0, len)` entirely.
    fn covers(&self, len: usize) -> bool {
        self.valid.first_key_value().is_some_and(|(&s, &e)| s == 0 && e >= len)
    }
}

/// In-memory state of a file being written or published.
pub(crate) struct FileState {
    /// Orders changes of size, buffers and puts of this file.
    pub(crate) lock: tokio::sync::Mutex<()>,
    inner: Mutex<FileInner>,
    /// Bumped when a change starts and when its put completes: a publish that read the file
    /// while it stayed the same saw one consistent version.
    pub(crate) changes: AtomicU64,
}

#[derive(Default)]
struct FileInner {
    buffers: BTreeMap<u64, BlockBuf>,
    /// Dirty extents of the current version: block → (put sequence, length).
    written: BTreeMap<u64, (u64, u32)>,
    opens: u32,
    /// When the file should be published (None: not due, e.g. clean).
    due: Option<Instant>,
    /// Consecutive failed publishes (for the backoff).
    failures: u32,
    /// Puts of this file sent and not yet settled (stored, or failed and their bytes put back
    /// into memory): while any is, the file's bytes are in neither `buffers` nor `written`, and
    /// the publisher must not read it.
    puts_in_flight: u32,
}

impl FileState {
    fn new() -> FileState {
        FileState {
            lock: tokio::sync::Mutex::new(()),
            inner: Mutex::new(FileInner::default()),
            changes: AtomicU64::new(0),
        }
    }

    fn inner(&self) -> MutexGuard<'_, FileInner> {
        // Every change under this lock is a few inserts; a poisoned state is consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The write path's state, one per engine.
pub struct WriteBack {
    pub(crate) config: WriteConfig,
    verifier: u64,
    files: Mutex<HashMap<u64, Arc<FileState>>>,
    buffered_bytes: AtomicU64,
    pub(crate) counters: WriteCounters,
    pub(crate) publisher: publish::Publisher,
}

impl std::fmt::Debug for WriteBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBack").field("verifier", &self.verifier).finish()
    }
}

impl WriteBack {
    pub(crate) fn new(config: WriteConfig) -> WriteBack {
        WriteBack {
            config,
            verifier: rand::random::<u64>() | 1,
            files: Mutex::new(HashMap::new()),
            buffered_bytes: AtomicU64::new(0),
            counters: WriteCounters::default(),
            publisher: publish::Publisher::default(),
        }
    }

    pub fn verifier(&self) -> u64 {
        self.verifier
    }

    fn files(&self) -> MutexGuard<'_, HashMap<u64, Arc<FileState>>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn file(&self, ino: u64) -> Arc<FileState> {
        self.files().entry(ino).or_insert_with(|| Arc::new(FileState::new())).clone()
    }

    pub(crate) fn existing(&self, ino: u64) -> Option<Arc<FileState>> {
        self.files().get(&ino).cloned()
    }

    /// Forgets a file's state (removed, or published and closed); returns its dirty extents.
    pub(crate) fn forget(&self, ino: u64) -> Vec<(u64, (u64, u32))> {
        let Some(fs) = self.files().remove(&ino) else { return Vec::new() };
        let mut inner = fs.inner();
        let freed: u64 = inner.buffers.values().map(|b| b.data.len() as u64).sum();
        self.buffered_bytes.fetch_sub(freed, Ordering::Relaxed);
        inner.buffers.clear();
        std::mem::take(&mut inner.written).into_iter().collect()
    }

    /// Files due for publishing now (or with no time: every file with local state).
    pub(crate) fn due(&self, now: Instant) -> Vec<u64> {
        let files = self.files();
        let mut out: Vec<(Instant, u64)> =
            files.iter().filter_map(|(&ino, fs)| fs.inner().due.filter(|&d| d <= now).map(|d| (d, ino))).collect();
        out.sort_unstable();
        out.into_iter().map(|(_, ino)| ino).collect()
    }

    /// Every file waiting for its upload delay is due now (the cache is full).
    pub(crate) fn make_all_due(&self) {
        let now = Instant::now();
        for fs in self.files().values() {
            let mut inner = fs.inner();
            if inner.due.is_some_and(|d| d > now) {
                inner.due = Some(now);
            }
        }
    }

    /// Inodes with in-memory write state.
    pub(crate) fn files_with_state(&self) -> Vec<u64> {
        self.files().keys().copied().collect()
    }

    /// Files with a publish scheduled (pending uploads).
    pub fn pending_files(&self) -> u64 {
        self.files().values().filter(|fs| fs.inner().due.is_some()).count() as u64
    }

    pub fn buffered_bytes(&self) -> u64 {
        self.buffered_bytes.load(Ordering::Relaxed)
    }

    fn schedule(&self, fs: &FileState, after: Duration) {
        let at = Instant::now() + after;
        let mut inner = fs.inner();
        inner.due = Some(match inner.due {
            // A sooner publish (a close) wins over a later one (a write while open).
            Some(d) if inner.opens == 0 && d < at => d,
            _ => at,
        });
    }
}

/// Moves a record's modification time: the record's own and, when the POSIX attributes carry
/// one (they win in `Namespace::attr`), that too.
pub(crate) fn set_mtime(rec: &mut InodeRecord, now_ns: i64) {
    rec.mtime_ns = now_ns;
    if let Some(posix) = rec.posix.as_mut() {
        if posix.mtime_ns.is_some() {
            posix.mtime_ns = Some(now_ns);
        }
    }
}

/// Waits for a blockstore get; `None` when the key is not cached.
pub(crate) async fn store_get(store: &Store, key: Key, offset: u64, len: usize) -> Result<Option<Vec<u8>>, StoreError> {
    let (tx, rx) = futures::channel::oneshot::channel();
    store.get_then(key, offset, len, move |r| {
        let _ = tx.send(r);
    })?;
    match rx.await.unwrap_or(Err(StoreError::Closed)) {
        Ok(buf) => Ok(Some(buf.bytes().to_vec())),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn cache_err(op: &'static str, ns: &Namespace, rec: &InodeRecord, e: StoreError) -> EngineError {
    EngineError::Cache { op, path: ns.display(&rec.path), source: Box::new(e) }
}

impl Engine {
    /// Reads a file changed here: its dirty extents, base and zeros (partial blocks are
    /// written out first).
    pub(crate) async fn read_local(
        &self,
        ns: &Namespace,
        rec: &InodeRecord,
        offset: u64,
        len: u64,
    ) -> Result<crate::engine::ReadReply> {
        let op = "read";
        let fs = self.writes.file(rec.ino);
        let buffered = !fs.inner().buffers.is_empty();
        let rec = if buffered {
            let (now, puts) = {
                let _guard = fs.lock.lock().await;
                let now = ns.inode(op, rec.ino)?;
                let puts = self.write_out_buffers(ns, &now, &fs).await?;
                (now, puts)
            };
            self.await_puts(op, ns, &now, &fs, puts).await?;
            now
        } else {
            Arc::new(rec.clone())
        };
        if offset >= rec.size || len == 0 {
            return Ok(crate::engine::ReadReply { chunks: Vec::new(), eof: offset >= rec.size });
        }
        let end = offset.saturating_add(len).min(rec.size);
        let bytes = self.read_local_range(ns, &rec, &fs, offset, end - offset).await?;
        Ok(crate::engine::ReadReply {
            chunks: vec![crate::engine::ReadChunk::Fetched(vec![bytes::Bytes::from(bytes)])],
            eof: end == rec.size,
        })
    }

    /// The write path's counters and gauges.
    pub fn write_stats(&self) -> crate::stats::WriteStats {
        let c = &self.writes.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        crate::stats::WriteStats {
            writes: load(&c.writes),
            write_bytes: load(&c.write_bytes),
            commits: load(&c.commits),
            buffered_bytes: self.writes.buffered_bytes(),
            pending_uploads: self.writes.pending_files() + self.writes.publisher.uploading(),
            pending_bucket_ops: self.writes.publisher.pending_ops(),
            uploads: load(&c.uploads),
            upload_bytes: load(&c.upload_bytes),
            upload_failures: load(&c.upload_failures),
            uploads_restarted: load(&c.uploads_restarted),
            conflicts: load(&c.conflicts),
            copies: load(&c.copies),
            deletes: load(&c.deletes),
            markers: load(&c.markers),
            no_space: load(&c.no_space),
            read_modify_writes: load(&c.read_modify_writes),
            last_error: self.writes.publisher.last_error(),
        }
    }

    /// The write verifier (changes at every start).
    pub fn write_verifier(&self) -> u64 {
        self.writes.verifier()
    }

    /// The record of a file that may be written, with local state begun (a new content
    /// version) if it had none.
    fn writable_record(&self, op: &'static str, ns: &Namespace, rec: Arc<InodeRecord>) -> Result<InodeRecord> {
        match rec.kind {
            Kind::File => {}
            Kind::Dir => return Err(EngineError::IsADirectory { op, path: ns.display(&rec.path) }),
            Kind::Symlink => {
                return Err(EngineError::Invalid { op, path: ns.display(&rec.path), detail: "a symbolic link".into() })
            }
        }
        let mut rec = (*rec).clone();
        match &mut rec.local {
            Some(local) if local.modified => {}
            Some(local) => {
                // Renamed but not changed: its blocks so far are the base's.
                local.modified = true;
                rec.content_version += 1;
            }
            None => {
                let base = (rec.size > 0 || rec.etag.is_some()).then(|| Base {
                    key: ns.object_key(&rec.path),
                    etag: rec.etag.clone(),
                    version: rec.content_version,
                    size: rec.size,
                    valid: rec.size,
                });
                rec.local = Some(Local {
                    base,
                    bucket_etag: rec.etag.clone(),
                    modified: true,
                    conflict: None,
                    generation: 0,
                    create_verifier: None,
                });
                rec.content_version += 1;
            }
        }
        Ok(rec)
    }

    /// Writes `data` at `offset` of the file `fh` names.
    pub async fn write(
        &self,
        fh: &crate::namespace::FileHandle,
        offset: u64,
        data: &[u8],
        stability: Stability,
    ) -> Result<WriteOutcome> {
        let op = "write";
        let ns = self.export_of(op, fh)?.clone();
        let rec = ns.resolve(op, fh)?;
        let end = offset.checked_add(data.len() as u64).ok_or_else(|| EngineError::Invalid {
            op,
            path: ns.display(&rec.path),
            detail: "offset + length overflows".into(),
        })?;
        if data.is_empty() {
            // Nothing to write: no change, no new mtime.
            return Ok(WriteOutcome { count: 0, stability, verifier: self.writes.verifier(), size: rec.size });
        }
        let fs = self.writes.file(rec.ino);
        let bb = self.config().block_bytes;
        let mut puts = Vec::new();
        let size;
        {
            let _guard = fs.lock.lock().await;
            let current = ns.inode(op, rec.ino)?;
            if current.generation != fh.generation {
                return Err(EngineError::Stale { op, detail: format!("inode {} was replaced", rec.ino) });
            }
            let mut rec = self.writable_record(op, &ns, current)?;
            fs.changes.fetch_add(1, Ordering::Relaxed);
            rec.size = rec.size.max(end);
            set_mtime(&mut rec, ns_from_time(SystemTime::now()));
            rec.change += 1;
            if let Some(local) = rec.local.as_mut() {
                local.generation += 1;
            }
            size = rec.size;
            let mut at = offset;
            while at < end {
                let block = at / bb;
                let block_start = block * bb;
                let block_end = ((block + 1) * bb).min(size);
                let piece_end = end.min((block + 1) * bb);
                let piece = &data[(at - offset) as usize..(piece_end - offset) as usize];
                let within = (at - block_start) as usize;
                let whole = at == block_start && piece_end >= block_end;
                let mut buffered_full = None;
                {
                    let mut inner = fs.inner();
                    if whole {
                        if let Some(b) = inner.buffers.remove(&block) {
                            self.writes.buffered_bytes.fetch_sub(b.data.len() as u64, Ordering::Relaxed);
                        }
                    } else {
                        let buf = inner.buffers.entry(block).or_insert_with(|| {
                            self.writes.buffered_bytes.fetch_add(bb, Ordering::Relaxed);
                            BlockBuf::new(bb as usize)
                        });
                        buf.merge(within, piece);
                        if buf.covers((block_end - block_start) as usize) {
                            buffered_full = inner.buffers.remove(&block);
                            self.writes.buffered_bytes.fetch_sub(bb, Ordering::Relaxed);
                        }
                    }
                }
                if whole {
                    puts.push(self.put_block(&ns, &rec, &fs, block, piece)?);
                } else if let Some(b) = buffered_full {
                    let len = (block_end - block_start) as usize;
                    let mut put = self.put_block(&ns, &rec, &fs, block, &b.data[..len])?;
                    // It holds earlier acknowledged unstable writes too.
                    put.keep_on_failure = true;
                    puts.push(put);
                }
                at = piece_end;
            }
            ns.remember_record(rec.clone());
            if self.writes.buffered_bytes() > self.writes.config.buffered_bytes_max {
                // Memory pressure: write this file's partial blocks out now.
                puts.extend(self.write_out_buffers(&ns, &rec, &fs).await?);
            }
            self.writes.schedule(&fs, self.writes.config.upload_delay_idle);
        }
        self.await_puts(op, &ns, &rec, &fs, puts).await?;
        self.writes.counters.writes.fetch_add(1, Ordering::Relaxed);
        self.writes.counters.write_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        let stability = if stability == Stability::Unstable {
            Stability::Unstable
        } else {
            self.commit_file(op, &ns, rec.ino).await?;
            Stability::FileSync
        };
        Ok(WriteOutcome { count: data.len() as u64, stability, verifier: self.writes.verifier(), size })
    }

    /// Sends one block to the blockstore as a dirty extent; the receiver gets the put's result.
    fn put_block(
        &self,
        ns: &Namespace,
        rec: &InodeRecord,
        fs: &Arc<FileState>,
        block: u64,
        bytes: &[u8],
    ) -> Result<PendingPut> {
        let op = "write";
        let key = Key::new(rec.ino, block, rec.content_version);
        let extent = ExtentBuf::from_bytes(bytes, None).ok_or_else(|| EngineError::Invalid {
            op,
            path: ns.display(&rec.path),
            detail: format!("block of {} bytes", bytes.len()),
        })?;
        let (tx, rx) = futures::channel::oneshot::channel();
        let len = bytes.len() as u32;
        let fs2 = fs.clone();
        let data = bytes.to_vec();
        self.store()
            .put_then(key, extent, PutOptions { dirty: true, pinned: false }, move |r| {
                if let Ok(seq) = &r {
                    let mut inner = fs2.inner();
                    // A later put of the same block may have completed first: keep the newest.
                    let newer = inner.written.get(&block).is_some_and(|&(s, _)| s > *seq);
                    if !newer {
                        inner.written.insert(block, (*seq, len));
                    }
                }
                fs2.changes.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(r);
            })
            .map_err(|e| cache_err(op, ns, rec, e))?;
        fs.inner().puts_in_flight += 1;
        Ok(PendingPut { key, data, rx: Mutex::new(Some(rx)), keep_on_failure: false, fs: fs.clone() })
    }

    /// Waits for puts; a put refused for a full cache is sent again until `dirty_wait` runs out.
    async fn await_puts(
        &self,
        op: &'static str,
        ns: &Namespace,
        rec: &InodeRecord,
        fs: &Arc<FileState>,
        puts: Vec<PendingPut>,
    ) -> Result<()> {
        // Every put is awaited (they were all sent); the first failure is returned, and the
        // blocks of acknowledged unstable writes that could not be stored go back into memory,
        // so nothing a client was told is written is lost: the next commit tries again.
        let mut first_error = None;
        for put in puts {
            if let Err(e) = self.await_put(op, ns, rec, fs, &put).await {
                if put.keep_on_failure {
                    self.rebuffer(fs, put.key.block, &put.data);
                }
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn await_put(
        &self,
        op: &'static str,
        ns: &Namespace,
        rec: &InodeRecord,
        fs: &Arc<FileState>,
        put: &PendingPut,
    ) -> Result<()> {
        let rx = put.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut result = match rx {
            Some(rx) => rx.await.unwrap_or(Err(StoreError::Closed)),
            None => Err(StoreError::Closed),
        };
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        while let Err(StoreError::CacheFull { .. }) = &result {
            if started.elapsed() >= self.writes.config.dirty_wait {
                self.writes.counters.no_space.fetch_add(1, Ordering::Relaxed);
                return Err(EngineError::NoSpace {
                    op,
                    path: ns.display(&rec.path),
                    detail: format!(
                        "the cache is full of data not yet in the bucket (waited {:?} for uploads to make room)",
                        self.writes.config.dirty_wait
                    ),
                });
            }
            // Room is made by publishing: everything waiting for its delay goes now.
            self.writes.make_all_due();
            self.writes.publisher.kick();
            // The engine's own timer: callers may poll from executors that are not tokio.
            self.runtime_handle(op)?
                .spawn(async move { tokio::time::sleep(pause).await })
                .await
                .map_err(|_| EngineError::ShuttingDown { op })?;
            pause = (pause * 2).min(Duration::from_millis(500));
            let retry_rec = InodeRecord { content_version: put.key.version, ..rec.clone() };
            let again = self.put_block(ns, &retry_rec, fs, put.key.block, &put.data)?;
            let rx = again.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
            result = match rx {
                Some(rx) => rx.await.unwrap_or(Err(StoreError::Closed)),
                None => Err(StoreError::Closed),
            };
        }
        result.map(drop).map_err(|e| cache_err(op, ns, rec, e))
    }

    /// Puts a block that could not be stored back among the file's partial blocks, under any
    /// write buffered since (newer bytes win).
    fn rebuffer(&self, fs: &FileState, block: u64, data: &[u8]) {
        let bb = self.config().block_bytes as usize;
        let mut inner = fs.inner();
        let buf = inner.buffers.entry(block).or_insert_with(|| {
            self.writes.buffered_bytes.fetch_add(bb as u64, Ordering::Relaxed);
            BlockBuf::new(bb)
        });
        buf.merge_under(data);
    }

    /// The bytes of block `block` of a locally changed file, `len` long (the block's part of
    /// the file), from its dirty extent, its base or zeros.
    pub(crate) async fn local_block(
        &self,
        ns: &Namespace,
        rec: &InodeRecord,
        fs: &FileState,
        block: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        let op = "read";
        let bb = self.config().block_bytes;
        let block_start = block * bb;
        let mut out = vec![0u8; len];
        let extent = fs.inner().written.get(&block).copied();
        if let Some((_, extent_len)) = extent {
            let key = Key::new(rec.ino, block, rec.content_version);
            let want = (extent_len as usize).min(len);
            if want > 0 {
                match store_get(self.store(), key, 0, want).await.map_err(|e| cache_err(op, ns, rec, e))? {
                    Some(bytes) => {
                        out[..bytes.len().min(len)].copy_from_slice(&bytes[..bytes.len().min(len)]);
                        return Ok(out);
                    }
                    None => {
                        return Err(EngineError::Cache {
                            op,
                            path: ns.display(&rec.path),
                            source: Box::new(StoreError::NotFound { key }),
                        })
                    }
                }
            }
            return Ok(out);
        }
        let Some(base) = rec.local.as_ref().and_then(|l| l.base.clone()) else { return Ok(out) };
        if block_start >= base.valid {
            return Ok(out);
        }
        let want = (base.valid - block_start).min(len as u64);
        let target = Arc::new(crate::backfill::FetchTarget {
            ino: rec.ino,
            version: base.version,
            key: base.key.clone(),
            etag: base.etag.clone(),
            size: base.size,
            path: ns.display(&rec.path),
        });
        let got = self.read_target(ns, &target, block_start, want).await?.to_vec();
        out[..got.len()].copy_from_slice(&got);
        Ok(out)
    }

    /// Writes out the partial blocks of a file (merging in the blocks' current bytes).
    async fn write_out_buffers(
        &self,
        ns: &Namespace,
        rec: &InodeRecord,
        fs: &Arc<FileState>,
    ) -> Result<Vec<PendingPut>> {
        let bb = self.config().block_bytes;
        let buffers = std::mem::take(&mut fs.inner().buffers);
        let mut puts = Vec::with_capacity(buffers.len());
        let mut pending = buffers.into_iter();
        while let Some((block, buf)) = pending.next() {
            self.writes.buffered_bytes.fetch_sub(buf.data.len() as u64, Ordering::Relaxed);
            let block_start = block * bb;
            if block_start >= rec.size {
                continue; // truncated away
            }
            let len = (rec.size - block_start).min(bb) as usize;
            let merged = if buf.covers(len) {
                Ok(vec![0; len])
            } else {
                self.writes.counters.read_modify_writes.fetch_add(1, Ordering::Relaxed);
                self.local_block(ns, rec, fs, block, len).await
            };
            let put = merged.and_then(|mut bytes| {
                for (&s, &e) in &buf.valid {
                    let (s, e) = (s.min(len), e.min(len));
                    bytes[s..e].copy_from_slice(&buf.data[s..e]);
                }
                self.put_block(ns, rec, fs, block, &bytes)
            });
            match put {
                Ok(mut put) => {
                    put.keep_on_failure = true;
                    puts.push(put);
                }
                Err(e) => {
                    // Blocks already sent may still fail (a full cache) with nobody to retry
                    // them: their bytes go back into memory too (written again later if they
                    // were stored after all).
                    for put in &puts {
                        self.rebuffer(fs, put.key.block, &put.data);
                    }
                    // Acknowledged unstable writes stay in memory: this block and the rest.
                    let mut inner = fs.inner();
                    for (b, mut old) in std::iter::once((block, buf)).chain(pending) {
                        self.writes.buffered_bytes.fetch_add(old.data.len() as u64, Ordering::Relaxed);
                        if let Some(newer) = inner.buffers.remove(&b) {
                            // Written meanwhile: newer bytes over older.
                            for (&s, &e) in &newer.valid {
                                old.merge(s, &newer.data[s..e]);
                            }
                            self.writes.buffered_bytes.fetch_sub(newer.data.len() as u64, Ordering::Relaxed);
                        }
                        inner.buffers.insert(b, old);
                    }
                    drop(inner);
                    // Puts already sent complete on their own; their blocks are in the cache.
                    return Err(e);
                }
            }
        }
        Ok(puts)
    }

    /// Makes everything written to the file so far durable (COMMIT, fsync).
    pub async fn commit(&self, fh: &crate::namespace::FileHandle) -> Result<u64> {
        let op = "commit";
        let ns = self.export_of(op, fh)?.clone();
        let rec = ns.resolve(op, fh)?;
        self.commit_file(op, &ns, rec.ino).await?;
        Ok(self.writes.verifier())
    }

    pub(crate) async fn commit_file(&self, op: &'static str, ns: &Arc<Namespace>, ino: u64) -> Result<()> {
        let Some(fs) = self.writes.existing(ino) else { return Ok(()) };
        let (rec, puts) = {
            let _guard = fs.lock.lock().await;
            let rec = ns.inode(op, ino)?;
            let puts = self.write_out_buffers(ns, &rec, &fs).await?;
            (rec, puts)
        };
        self.await_puts(op, ns, &rec, &fs, puts).await?;
        self.flush_store(op, ns, &rec).await?;
        // The record as it is now: at least everything written before this commit.
        let now = ns.inode(op, ino)?;
        if now.local.is_some() {
            self.meta_commit(op, Batch { puts: vec![(*now).clone()], ..Batch::default() }).await?;
        }
        self.writes.counters.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn flush_store(&self, op: &'static str, ns: &Namespace, rec: &InodeRecord) -> Result<()> {
        let store = self.store().clone();
        let job = self.runtime_handle(op)?.spawn_blocking(move || store.flush());
        job.await.map_err(|_| EngineError::ShuttingDown { op })?.map_err(|e| cache_err(op, ns, rec, e))
    }

    /// Commits metadata changes on a blocking thread of the backfill runtime.
    pub(crate) async fn meta_commit(&self, op: &'static str, batch: Batch) -> Result<crate::meta::BatchOutcome> {
        let meta = self.meta().clone();
        let job = self.runtime_handle(op)?.spawn_blocking(move || meta.commit(&batch));
        job.await.map_err(|_| EngineError::ShuttingDown { op })?
    }

    fn runtime_handle(&self, op: &'static str) -> Result<tokio::runtime::Handle> {
        self.runtime().cloned().ok_or(EngineError::ShuttingDown { op })
    }

    /// A file was opened (for the publisher: an open file is published only when idle).
    pub fn opened(&self, fh: &crate::namespace::FileHandle) {
        self.writes.file(fh.ino).inner().opens += 1;
    }

    /// A file was closed: publish it soon (after `upload_delay_after_close`) if it changed.
    pub async fn closed(&self, fh: &crate::namespace::FileHandle) -> Result<()> {
        let op = "close";
        let Some(fs) = self.writes.existing(fh.ino) else { return Ok(()) };
        let ns = self.export_of(op, fh)?.clone();
        {
            let mut inner = fs.inner();
            inner.opens = inner.opens.saturating_sub(1);
        }
        let Ok(rec) = ns.inode(op, fh.ino) else { return Ok(()) };
        if rec.local.is_some() {
            self.writes.schedule(&fs, self.writes.config.upload_delay_after_close);
            self.writes.publisher.kick();
        } else if fs.inner().opens == 0 {
            self.writes.forget(fh.ino);
        }
        Ok(())
    }

    /// Changes attributes: size (truncate or extend), mode, owner, mtime. Durable on return.
    pub async fn setattr(&self, fh: &crate::namespace::FileHandle, set: &SetAttrs) -> Result<crate::namespace::Attr> {
        let op = "setattr";
        let ns = self.export_of(op, fh)?.clone();
        let rec = ns.resolve(op, fh)?;
        if set.is_empty() {
            return Ok(ns.attr(&rec));
        }
        let fs = self.writes.file(rec.ino);
        let mut deletes = Vec::new();
        let rec = {
            let _guard = fs.lock.lock().await;
            let current = ns.inode(op, rec.ino)?;
            let mut rec = match set.size {
                Some(size) if size != current.size => {
                    let mut rec = self.writable_record(op, &ns, current)?;
                    fs.changes.fetch_add(1, Ordering::Relaxed);
                    let bb = self.config().block_bytes;
                    if size < rec.size {
                        // Partial blocks and extents beyond the new end go; the new last block
                        // is rewritten without the bytes beyond it.
                        let puts = self.write_out_buffers(&ns, &rec, &fs).await?;
                        self.await_puts(op, &ns, &rec, &fs, puts).await?;
                        let keep_blocks = size.div_ceil(bb);
                        {
                            let mut inner = fs.inner();
                            let gone: Vec<u64> = inner.written.range(keep_blocks..).map(|(&b, _)| b).collect();
                            for b in gone {
                                inner.written.remove(&b);
                                deletes.push(Key::new(rec.ino, b, rec.content_version));
                            }
                        }
                        if let Some(base) = rec.local.as_mut().and_then(|l| l.base.as_mut()) {
                            base.valid = base.valid.min(size);
                        }
                        if size % bb != 0 {
                            let last = size / bb;
                            let len = (size - last * bb) as usize;
                            let bytes = self.local_block(&ns, &rec, &fs, last, len).await?;
                            rec.size = size;
                            let put = self.put_block(&ns, &rec, &fs, last, &bytes)?;
                            self.await_puts(op, &ns, &rec, &fs, vec![put]).await?;
                        }
                    } else {
                        // Growing: pending partial blocks are written out against the old
                        // size first, so bytes past it cannot come back.
                        let puts = self.write_out_buffers(&ns, &rec, &fs).await?;
                        self.await_puts(op, &ns, &rec, &fs, puts).await?;
                    }
                    rec.size = size;
                    rec
                }
                _ => (*current).clone(),
            };
            let mut posix = rec.posix.unwrap_or_default();
            if let Some(mode) = set.mode {
                posix.mode = Some(mode & 0o7777);
            }
            if let Some(uid) = set.uid {
                posix.uid = Some(uid);
            }
            if let Some(gid) = set.gid {
                posix.gid = Some(gid);
            }
            let now_ns = ns_from_time(SystemTime::now());
            match set.mtime {
                Some(Some(t)) => posix.mtime_ns = Some(ns_from_time(t)),
                Some(None) => posix.mtime_ns = Some(now_ns),
                None if set.size.is_some() => posix.mtime_ns = Some(now_ns),
                None => {}
            }
            rec.posix = Some(posix);
            rec.posix_etag = rec.etag.clone();
            if set.size.is_some() {
                rec.mtime_ns = now_ns;
            }
            rec.change += 1;
            if rec.local.is_none() && rec.kind != Kind::Dir {
                // Only attributes changed: the object is published again with new metadata
                // (a copy onto itself would do on S3; an upload is what every backend has).
                rec = self.writable_record(op, &ns, Arc::new(rec))?;
                // Its bytes are unchanged: the new version reads them from the base.
            } else if rec.local.is_none() {
                rec.local = Some(Local { modified: true, ..Local::default() });
            }
            if let Some(local) = rec.local.as_mut() {
                local.generation += 1;
            }
            self.flush_store(op, &ns, &rec).await?;
            self.meta_commit(op, Batch { puts: vec![rec.clone()], ..Batch::default() }).await?;
            ns.remember_record(rec.clone());
            self.writes.schedule(&fs, self.writes.config.upload_delay_idle);
            rec
        };
        for key in deletes {
            let _ = self.store().delete(key);
        }
        Ok(ns.attr(&rec))
    }
}

impl Engine {
    /// Makes sure `[offset, offset+len)` is part of the file (NFSv4.2 ALLOCATE): extends the
    /// size if needed. Space is not reserved ahead: the cache takes blocks as they are written,
    /// and a full cache fails those writes with `NoSpace`.
    pub async fn allocate(
        &self,
        fh: &crate::namespace::FileHandle,
        offset: u64,
        len: u64,
    ) -> Result<crate::namespace::Attr> {
        let op = "allocate";
        let ns = self.export_of(op, fh)?.clone();
        let rec = ns.resolve(op, fh)?;
        let end = offset.checked_add(len).ok_or_else(|| EngineError::Invalid {
            op,
            path: ns.display(&rec.path),
            detail: "offset + length overflows".into(),
        })?;
        if end <= rec.size {
            return Ok(ns.attr(&rec));
        }
        self.setattr(fh, &SetAttrs { size: Some(end), ..SetAttrs::default() }).await
    }

    /// Zeroes `[offset, offset+len)` within the file (NFSv4.2 DEALLOCATE, a hole punch): the
    /// range reads as zeros afterwards and the size is unchanged. Durable on return.
    pub async fn deallocate(
        &self,
        fh: &crate::namespace::FileHandle,
        offset: u64,
        len: u64,
    ) -> Result<crate::namespace::Attr> {
        let op = "deallocate";
        let ns = self.export_of(op, fh)?.clone();
        let rec = ns.resolve(op, fh)?;
        let end = offset.saturating_add(len).min(rec.size);
        let bb = self.config().block_bytes;
        let zeros = vec![0u8; bb as usize];
        let mut at = offset;
        while at < end {
            let piece = (end - at).min(bb - at % bb);
            self.write(fh, at, &zeros[..piece as usize], Stability::Unstable).await?;
            at += piece;
        }
        if offset < end {
            self.commit_file(op, &ns, rec.ino).await?;
        }
        let now = ns.inode(op, rec.ino)?;
        Ok(ns.attr(&now))
    }
}

/// A put sent to the blockstore: kept so it can be sent again when the cache was full.
pub(crate) struct PendingPut {
    key: Key,
    data: Vec<u8>,
    rx: Mutex<Option<futures::channel::oneshot::Receiver<Result<u64, StoreError>>>>,
    /// The block holds acknowledged unstable writes (a written-out partial block): if it cannot
    /// be stored it goes back into memory rather than being lost.
    keep_on_failure: bool,
    fs: Arc<FileState>,
}

impl Drop for PendingPut {
    fn drop(&mut self) {
        // Settled: stored, or given up on (and put back into memory first when it must be).
        let mut inner = self.fs.inner();
        inner.puts_in_flight = inner.puts_in_flight.saturating_sub(1);
    }
}

impl FileState {
    /// No put of the file is between memory and the cache.
    pub(crate) fn settled(&self) -> bool {
        self.inner().puts_in_flight == 0
    }
}

#[cfg(test)]
mod tests {
    use super::BlockBuf;

    #[test]
    fn block_buffer_merges_ranges() {
        let mut b = BlockBuf::new(16);
        b.merge(4, &[1, 1]);
        b.merge(8, &[2, 2]);
        assert!(!b.covers(16));
        b.merge(6, &[3, 3]);
        assert_eq!(b.valid.len(), 1);
        assert_eq!(b.valid.first_key_value(), Some((&4, &10)));
        b.merge(0, &[9; 4]);
        assert!(b.covers(10));
        assert!(!b.covers(11));
        assert_eq!(&b.data[..10], &[9, 9, 9, 9, 1, 1, 3, 3, 2, 2]);
    }
}
