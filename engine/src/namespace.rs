//! The namespace of one export: a bucket (optionally under a prefix) seen as a directory tree.
//!
//! One object per file; `/` separates directories. A directory is a common prefix of a
//! delimiter listing, or an empty "directory marker" object whose key ends in `/`. Keys that are
//! not valid names (an empty component from `//`, `.`, `..`, a NUL, more than 255 bytes) are
//! reported once and skipped; a file shadowed by a directory of the same name is skipped too.
//!
//! Listings are paged (1000 keys a page) and kept for the export's listing TTL; after it, the
//! next lookup, readdir or directory getattr lists again, so objects written by other tools
//! appear. A file's attributes are revalidated with a HEAD after the TTL (close-to-open: the
//! client's GETATTR at open sees a changed object). HEAD also reads POSIX attributes from user
//! metadata (`mode`, `uid`, `gid`, `mtime`); export defaults apply where none are present.
//!
//! Inode numbers, generations and content versions live in the durable [`MetaStore`]; handles
//! ([`FileHandle`]) survive restarts. Readdir cookies are inode numbers, and entries are returned
//! in inode order, so cookies stay valid across calls, changes and restarts (new entries get
//! larger inode numbers and come last).
//!
//! Runs on: callers' executors for cached answers; bucket requests and metadata commits run on
//! the backfill runtime.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::bucket::Bucket;
use crate::error::{EngineError, Result};
use crate::meta::{base_name, InodeRecord, Kind, MetaStore, Observed, PosixAttrs};
use crate::object::{ObjectError, ObjectMeta, UserMetadata};

/// Name length limit (NAME_MAX).
pub const NAME_BYTES_MAX: usize = 255;
/// Keys asked for per listing page.
pub const LIST_PAGE_KEYS: usize = 1000;
/// Keys remembered as already reported invalid (bounded; beyond it they are reported again).
const SKIPPED_REMEMBERED_MAX: usize = 100_000;
/// Directory listings kept in memory at most.
const DIRS_CACHED_MAX: usize = 16_384;

/// One export: where it is in the pseudo-filesystem and what it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSpec {
    /// Path in the pseudo-filesystem (`/data`).
    pub name: String,
    /// The bucket's configured name.
    pub bucket: String,
    /// Key prefix inside the bucket ("" for the whole bucket).
    pub prefix: String,
    pub read_only: bool,
    /// Permission bits for files and directories without POSIX metadata.
    pub file_mode: u32,
    pub dir_mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// How long a listing or a file's attributes are trusted before revalidation.
    pub listing_ttl: Duration,
    /// Read POSIX attributes from user metadata (one HEAD per object version).
    pub posix_from_metadata: bool,
}

impl ExportSpec {
    /// An export of a whole bucket with the usual defaults.
    pub fn new(name: &str, bucket: &str) -> ExportSpec {
        ExportSpec {
            name: name.to_string(),
            bucket: bucket.to_string(),
            prefix: String::new(),
            read_only: false,
            file_mode: 0o644,
            dir_mode: 0o755,
            uid: 0,
            gid: 0,
            listing_ttl: Duration::from_secs(30),
            posix_from_metadata: true,
        }
    }
}

/// A file handle: which store, export, inode and generation. Opaque to clients, 29 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileHandle {
    pub store_id: u64,
    pub export: u32,
    pub ino: u64,
    pub generation: u64,
}

const HANDLE_VERSION: u8 = 1;
pub const HANDLE_BYTES: usize = 29;

impl FileHandle {
    pub fn encode(&self) -> [u8; HANDLE_BYTES] {
        let mut b = [0u8; HANDLE_BYTES];
        b[0] = HANDLE_VERSION;
        b[1..9].copy_from_slice(&self.store_id.to_be_bytes());
        b[9..13].copy_from_slice(&self.export.to_be_bytes());
        b[13..21].copy_from_slice(&self.ino.to_be_bytes());
        b[21..29].copy_from_slice(&self.generation.to_be_bytes());
        b
    }

    /// Decodes a handle; `None` for anything that is not one of ours.
    pub fn decode(bytes: &[u8]) -> Option<FileHandle> {
        let b: &[u8; HANDLE_BYTES] = bytes.try_into().ok()?;
        if b[0] != HANDLE_VERSION {
            return None;
        }
        let u64_at = |at: usize| b.get(at..at + 8).and_then(|s| s.try_into().ok()).map(u64::from_be_bytes);
        let export = b.get(9..13).and_then(|s| s.try_into().ok()).map(u32::from_be_bytes)?;
        Some(FileHandle { store_id: u64_at(1)?, export, ino: u64_at(13)?, generation: u64_at(21)? })
    }
}

/// Attributes as a protocol needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    /// Permission bits only.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    /// Changes whenever anything here changes (NFS `change`).
    pub change: u64,
    pub nlink: u32,
    /// Object ETag (files).
    pub etag: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub ino: u64,
    pub kind: Kind,
    /// Pass back to continue after this entry.
    pub cookie: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirPage {
    pub entries: Vec<DirEntry>,
    pub eof: bool,
}

/// A directory's entries as last listed.
#[derive(Debug, Default)]
struct Listing {
    listed_at: Option<Instant>,
    by_name: HashMap<String, u64>,
    /// Inode order: readdir order and cookies.
    by_ino: BTreeMap<u64, (String, Kind)>,
}

/// Turns nanoseconds since the epoch into a time.
pub fn time_from_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

pub fn ns_from_time(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// Why a name is not a valid file name, if it is not.
pub fn invalid_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty path component (`//` in the key)")
    } else if name == "." || name == ".." {
        Some("`.` or `..` as a path component")
    } else if name.len() > NAME_BYTES_MAX {
        Some("path component longer than 255 bytes")
    } else if name.contains('\0') {
        Some("NUL in the name")
    } else {
        None
    }
}

/// Reads POSIX attributes from user metadata: `mode` (decimal as s3fs writes it, or octal with a
/// leading `0`/`0o`), `uid`, `gid`, `mtime` (seconds since the epoch, fractional allowed).
pub fn posix_from_user_metadata(meta: &UserMetadata) -> PosixAttrs {
    let get = |k: &str| meta.get(k).map(|v| v.trim());
    let mode = get("mode").and_then(|v| {
        let parsed = if let Some(oct) = v.strip_prefix("0o") {
            u32::from_str_radix(oct, 8).ok()
        } else if v.len() > 1 && v.starts_with('0') {
            u32::from_str_radix(&v[1..], 8).ok()
        } else {
            v.parse::<u32>().ok()
        };
        parsed.map(|m| m & 0o7777)
    });
    let mtime_ns = get("mtime").and_then(|v| v.parse::<f64>().ok()).filter(|s| s.is_finite()).map(|s| (s * 1e9) as i64);
    PosixAttrs {
        mode,
        uid: get("uid").and_then(|v| v.parse().ok()),
        gid: get("gid").and_then(|v| v.parse().ok()),
        mtime_ns,
    }
}

/// The namespace of one export.
pub struct Namespace {
    export_id: u32,
    spec: ExportSpec,
    /// "" or ending in `/`.
    prefix: String,
    bucket: Arc<Bucket>,
    meta: Arc<MetaStore>,
    root: u64,
    records: RwLock<HashMap<u64, Arc<InodeRecord>>>,
    validated: Mutex<HashMap<u64, Instant>>,
    dirs: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<Listing>>>>,
    heads: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    skipped: Mutex<HashSet<String>>,
    pub keys_skipped: AtomicU64,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace").field("export", &self.spec.name).field("id", &self.export_id).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change under these locks is a single insert or remove: a poisoned map is consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn normalize_prefix(prefix: &str) -> String {
    let p = prefix.trim_start_matches('/');
    if p.is_empty() || p.ends_with('/') {
        p.to_string()
    } else {
        format!("{p}/")
    }
}

impl Namespace {
    /// Opens the export: its id and root inode come from the metadata store (created once).
    pub fn open(spec: ExportSpec, bucket: Arc<Bucket>, meta: Arc<MetaStore>) -> Result<Namespace> {
        let export_id = meta.export_id(&spec.name)?;
        let root_obs = Observed {
            export: export_id,
            parent: 0,
            path: String::new(),
            kind: Kind::Dir,
            size: 0,
            mtime_ns: ns_from_time(SystemTime::now()),
            etag: None,
            posix: None,
        };
        let root = match meta.lookup_path(export_id, "")? {
            Some(r) => r,
            None => meta.apply(&[root_obs], &[])?.remove(0),
        };
        let prefix = normalize_prefix(&spec.prefix);
        let ns = Namespace {
            export_id,
            spec,
            prefix,
            bucket,
            meta,
            root: root.ino,
            records: RwLock::new(HashMap::new()),
            validated: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            heads: Mutex::new(HashMap::new()),
            skipped: Mutex::new(HashSet::new()),
            keys_skipped: AtomicU64::new(0),
        };
        ns.remember(root);
        Ok(ns)
    }

    pub fn spec(&self) -> &ExportSpec {
        &self.spec
    }

    pub fn export_id(&self) -> u32 {
        self.export_id
    }

    pub fn bucket(&self) -> &Arc<Bucket> {
        &self.bucket
    }

    pub fn root_ino(&self) -> u64 {
        self.root
    }

    /// The key prefix of the export ("" or ending in `/`).
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The bucket key of a file at `path`.
    pub fn object_key(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    fn list_prefix(&self, dir_path: &str) -> String {
        if dir_path.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}{dir_path}/", self.prefix)
        }
    }

    pub fn handle(&self, rec: &InodeRecord) -> FileHandle {
        FileHandle { store_id: self.meta.store_id(), export: self.export_id, ino: rec.ino, generation: rec.generation }
    }

    /// Replaces the in-memory record (the write path's changes; durable ones are committed to
    /// the metadata store by the caller).
    pub(crate) fn remember_record(&self, rec: InodeRecord) -> Arc<InodeRecord> {
        self.remember(rec)
    }

    /// The record was just checked against the bucket (or written to it).
    pub(crate) fn mark_validated(&self, ino: u64) {
        lock(&self.validated).insert(ino, Instant::now());
    }

    fn remember(&self, rec: InodeRecord) -> Arc<InodeRecord> {
        let rec = Arc::new(rec);
        self.records.write().unwrap_or_else(|p| p.into_inner()).insert(rec.ino, rec.clone());
        rec
    }

    pub(crate) fn forget_ino(&self, ino: u64) {
        self.records.write().unwrap_or_else(|p| p.into_inner()).remove(&ino);
        lock(&self.validated).remove(&ino);
    }

    /// The record of `ino`, from memory or the metadata store.
    pub fn inode(&self, op: &'static str, ino: u64) -> Result<Arc<InodeRecord>> {
        if let Some(r) = self.records.read().unwrap_or_else(|p| p.into_inner()).get(&ino) {
            return Ok(r.clone());
        }
        match self.meta.get(ino)? {
            Some(rec) if rec.export == self.export_id => Ok(self.remember(rec)),
            _ => Err(EngineError::Stale { op, detail: format!("inode {ino} no longer exists in {}", self.spec.name) }),
        }
    }

    /// The record a handle names, if the handle is still valid.
    pub fn resolve(&self, op: &'static str, fh: &FileHandle) -> Result<Arc<InodeRecord>> {
        if fh.store_id != self.meta.store_id() || fh.export != self.export_id {
            return Err(EngineError::Stale { op, detail: "handle from another store or export".into() });
        }
        let rec = self.inode(op, fh.ino)?;
        if rec.generation != fh.generation {
            return Err(EngineError::Stale { op, detail: format!("inode {} was replaced", fh.ino) });
        }
        Ok(rec)
    }

    fn report_skip(&self, key: &str, why: &str) {
        let mut skipped = lock(&self.skipped);
        if skipped.contains(key) {
            return;
        }
        if skipped.len() >= SKIPPED_REMEMBERED_MAX {
            skipped.clear();
        }
        skipped.insert(key.to_string());
        self.keys_skipped.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(export = %self.spec.name, key, "skipping key: {why}");
    }

    fn dir_slot(&self, ino: u64) -> Arc<tokio::sync::Mutex<Listing>> {
        let mut dirs = lock(&self.dirs);
        if dirs.len() >= DIRS_CACHED_MAX && !dirs.contains_key(&ino) {
            // Drop listings nobody is using; they are listed again when needed.
            dirs.retain(|_, d| Arc::strong_count(d) > 1);
        }
        dirs.entry(ino).or_default().clone()
    }

    fn bucket_error(&self, op: &'static str, path: &str, e: ObjectError) -> EngineError {
        EngineError::Bucket {
            op,
            path: self.display(path),
            bucket: self.bucket.name().to_string(),
            source: Box::new(e),
        }
    }

    /// `path` as users see it (`/export/path`).
    pub fn display(&self, path: &str) -> String {
        let base = self.spec.name.trim_end_matches('/');
        if path.is_empty() {
            if base.is_empty() {
                "/".into()
            } else {
                base.to_string()
            }
        } else {
            format!("{base}/{path}")
        }
    }

    /// Runs a metadata commit on a blocking thread of the backfill runtime.
    async fn apply(&self, observed: Vec<Observed>, removed: Vec<(u32, String)>) -> Result<Vec<InodeRecord>> {
        let meta = self.meta.clone();
        let job = self.bucket.runtime().spawn_blocking(move || meta.apply(&observed, &removed));
        job.await.map_err(|_| EngineError::ShuttingDown { op: "update metadata" })?
    }

    /// Lists directory `dir` again if its listing is older than the TTL (or absent); returns the
    /// locked listing.
    async fn listed(&self, op: &'static str, dir: &Arc<InodeRecord>) -> Result<tokio::sync::OwnedMutexGuard<Listing>> {
        if dir.kind != Kind::Dir {
            return Err(EngineError::NotADirectory { op, path: self.display(&dir.path) });
        }
        let slot = self.dir_slot(dir.ino);
        let mut listing = slot.lock_owned().await;
        let fresh = listing.listed_at.is_some_and(|t| t.elapsed() < self.spec.listing_ttl);
        if !fresh {
            self.relist(op, dir, &mut listing).await?;
        }
        Ok(listing)
    }

    /// Lists `dir` from the bucket and reconciles the metadata store and the cached listing.
    async fn relist(&self, op: &'static str, dir: &Arc<InodeRecord>, listing: &mut Listing) -> Result<()> {
        let list_prefix = self.list_prefix(&dir.path);
        let mut files: BTreeMap<String, ObjectMeta> = BTreeMap::new();
        let mut subdirs: BTreeMap<String, ()> = BTreeMap::new();
        let mut token = None;
        loop {
            let page = self
                .bucket
                .list_page(&list_prefix, true, token.take(), LIST_PAGE_KEYS)
                .await
                .map_err(|e| self.bucket_error(op, &dir.path, e))?;
            for obj in page.objects {
                let name = &obj.key[list_prefix.len().min(obj.key.len())..];
                if name.is_empty() {
                    continue; // the directory's own marker
                }
                if self.bucket.is_hidden(&obj.key) {
                    continue; // removed or renamed here; the delete is queued
                }
                if let Some(why) = invalid_name(name) {
                    self.report_skip(&obj.key, why);
                    continue;
                }
                files.insert(name.to_string(), obj);
            }
            for p in page.prefixes {
                if self.bucket.is_hidden(&p) {
                    continue; // a directory removed or renamed here
                }
                let name = p.get(list_prefix.len()..p.len().saturating_sub(1)).unwrap_or("");
                if let Some(why) = invalid_name(name) {
                    self.report_skip(&p, why);
                    continue;
                }
                subdirs.insert(name.to_string(), ());
            }
            match page.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        let now_ns = ns_from_time(SystemTime::now());
        let mut observed = Vec::with_capacity(files.len() + subdirs.len());
        for name in subdirs.keys() {
            if let Some(obj) = files.remove(name) {
                self.report_skip(&obj.key, "a directory of the same name shadows this object");
            }
            observed.push(Observed {
                export: self.export_id,
                parent: dir.ino,
                path: join_path(&dir.path, name),
                kind: Kind::Dir,
                size: 0,
                mtime_ns: now_ns,
                etag: None,
                posix: None,
            });
        }
        for (name, obj) in &files {
            observed.push(Observed {
                export: self.export_id,
                parent: dir.ino,
                path: join_path(&dir.path, name),
                kind: Kind::File,
                size: obj.size,
                mtime_ns: ns_from_time(obj.mtime),
                etag: obj.etag.clone(),
                posix: None,
            });
        }
        // What was there before: the cached listing, or after a restart the stored one.
        let before: HashMap<String, u64> = if listing.listed_at.is_some() {
            listing.by_name.clone()
        } else {
            let meta = self.meta.clone();
            let dir_ino = dir.ino;
            self.bucket
                .runtime()
                .spawn_blocking(move || meta.children(dir_ino))
                .await
                .map_err(|_| EngineError::ShuttingDown { op })??
                .into_iter()
                .collect()
        };
        let mut present: HashSet<&str> = observed.iter().map(|o| base_name(&o.path)).collect();
        // Entries made or changed here and not yet in the bucket stay.
        let mut kept_local: Vec<(String, u64, Kind)> = Vec::new();
        for (name, &ino) in &before {
            if present.contains(name.as_str()) {
                continue;
            }
            if let Ok(rec) = self.inode(op, ino) {
                if rec.local.is_some() {
                    kept_local.push((name.clone(), ino, rec.kind));
                }
            }
        }
        present.extend(kept_local.iter().map(|(n, _, _)| n.as_str()));
        let removed: Vec<(u32, String)> = before
            .keys()
            .filter(|name| !present.contains(name.as_str()))
            .map(|name| (self.export_id, join_path(&dir.path, name)))
            .collect();
        let gone: Vec<u64> =
            before.iter().filter(|(name, _)| !present.contains(name.as_str())).map(|(_, ino)| *ino).collect();
        let records = self.apply(observed, removed).await?;
        let validated_at = Instant::now();
        let mut fresh = Listing { listed_at: Some(validated_at), ..Listing::default() };
        let mut added = false;
        let mut files_validated = Vec::new();
        for rec in records {
            let name = base_name(&rec.path).to_string();
            added |= before.get(&name) != Some(&rec.ino);
            fresh.by_name.insert(name.clone(), rec.ino);
            fresh.by_ino.insert(rec.ino, (name, rec.kind));
            if rec.kind != Kind::Dir {
                files_validated.push(rec.ino);
            }
            self.remember(rec);
        }
        for (name, ino, kind) in kept_local {
            fresh.by_name.insert(name.clone(), ino);
            fresh.by_ino.insert(ino, (name, kind));
        }
        lock(&self.validated).extend(files_validated.into_iter().map(|ino| (ino, validated_at)));
        for ino in &gone {
            self.forget_ino(*ino);
        }
        if added || !gone.is_empty() {
            let meta = self.meta.clone();
            let dir_ino = dir.ino;
            let touched = self
                .bucket
                .runtime()
                .spawn_blocking(move || meta.touch(dir_ino, now_ns))
                .await
                .map_err(|_| EngineError::ShuttingDown { op })??;
            if let Some(rec) = touched {
                self.remember(rec);
            }
        }
        *listing = fresh;
        Ok(())
    }

    /// The entry `name` in directory `dir` (`..` is the parent; `.` the directory itself).
    pub async fn lookup(&self, dir: u64, name: &str) -> Result<Arc<InodeRecord>> {
        let op = "lookup";
        let dir = self.inode(op, dir)?;
        if name == "." {
            return Ok(dir);
        }
        if name == ".." {
            return if dir.ino == self.root { Ok(dir) } else { self.inode(op, dir.parent) };
        }
        if let Some(why) = invalid_name(name) {
            return Err(EngineError::Invalid {
                op,
                path: self.display(&join_path(&dir.path, name)),
                detail: why.into(),
            });
        }
        let listing = self.listed(op, &dir).await?;
        match listing.by_name.get(name) {
            Some(&ino) => self.inode(op, ino),
            None => Err(EngineError::NotFound { op, path: self.display(&join_path(&dir.path, name)) }),
        }
    }

    /// Resolves a `/`-separated path below the export root.
    pub async fn lookup_path(&self, path: &str) -> Result<Arc<InodeRecord>> {
        let mut rec = self.inode("lookup", self.root)?;
        for name in path.split('/').filter(|c| !c.is_empty()) {
            rec = self.lookup(rec.ino, name).await?;
        }
        Ok(rec)
    }

    /// Entries of `dir` after `cookie` (0: from the start), at most `entries_max`.
    pub async fn readdir(&self, dir: u64, cookie: u64, entries_max: usize) -> Result<DirPage> {
        let op = "readdir";
        let dir = self.inode(op, dir)?;
        let listing = self.listed(op, &dir).await?;
        let mut entries = Vec::new();
        let mut iter = listing.by_ino.range(cookie.saturating_add(1)..);
        for (&ino, (name, kind)) in iter.by_ref() {
            entries.push(DirEntry { name: name.clone(), ino, kind: *kind, cookie: ino });
            if entries.len() >= entries_max.max(1) {
                break;
            }
        }
        let eof = iter.next().is_none();
        Ok(DirPage { entries, eof })
    }

    /// Attributes of `ino`, revalidated when older than the TTL: a HEAD for a file (which also
    /// reads its POSIX metadata once per object version), a listing for a directory.
    pub async fn getattr(&self, ino: u64) -> Result<Attr> {
        let op = "getattr";
        let rec = self.inode(op, ino)?;
        let rec = match rec.kind {
            Kind::Dir => {
                drop(self.listed(op, &rec).await?);
                self.inode(op, ino)?
            }
            // Changed here: the appliance's record is the truth until published.
            Kind::File | Kind::Symlink if rec.local.is_some() => rec,
            Kind::File | Kind::Symlink => {
                let stale = lock(&self.validated).get(&ino).is_none_or(|t| t.elapsed() >= self.spec.listing_ttl);
                let posix_unknown = self.spec.posix_from_metadata && rec.posix_etag != rec.etag;
                if stale || posix_unknown {
                    self.revalidate_file(op, &rec, false).await?
                } else {
                    rec
                }
            }
        };
        Ok(self.attr(&rec))
    }

    /// HEADs a file and records what it says. A missing object makes the inode stale.
    /// With `force`, HEADs even when the attributes are fresh (the object is known to have
    /// changed).
    pub async fn revalidate_file(&self, op: &'static str, rec: &InodeRecord, force: bool) -> Result<Arc<InodeRecord>> {
        let gate = lock(&self.heads).entry(rec.ino).or_default().clone();
        let _one = gate.lock().await;
        // Someone else may have just done it.
        let now = self.inode(op, rec.ino)?;
        let fresh = lock(&self.validated).get(&rec.ino).is_some_and(|t| t.elapsed() < self.spec.listing_ttl);
        if !force && fresh && !(self.spec.posix_from_metadata && now.posix_etag != now.etag) {
            return Ok(now);
        }
        let key = self.object_key(&rec.path);
        let result = match self.bucket.head(&key).await {
            Ok(meta) => {
                let posix = meta.user_metadata.as_ref().map(posix_from_user_metadata).unwrap_or_default();
                let obs = Observed {
                    export: self.export_id,
                    parent: rec.parent,
                    path: rec.path.clone(),
                    kind: Kind::File,
                    size: meta.size,
                    mtime_ns: ns_from_time(meta.mtime),
                    etag: meta.etag,
                    posix: Some(posix),
                };
                let mut recs = self.apply(vec![obs], Vec::new()).await?;
                let new = recs.pop().ok_or(EngineError::Metadata { op, detail: "no record returned".into() })?;
                lock(&self.validated).insert(new.ino, Instant::now());
                if new.ino != rec.ino {
                    // It became something else; the old handle is stale.
                    self.forget_ino(rec.ino);
                }
                Ok(self.remember(new))
            }
            Err(e) if e.is_not_found() => {
                self.apply(Vec::new(), vec![(self.export_id, rec.path.clone())]).await?;
                self.forget_ino(rec.ino);
                if let Some(slot) = lock(&self.dirs).get(&rec.parent) {
                    if let Ok(mut l) = slot.try_lock() {
                        l.listed_at = None; // list the parent again next time
                    }
                }
                Err(EngineError::Stale {
                    op,
                    detail: format!("{} was removed from the bucket", self.display(&rec.path)),
                })
            }
            Err(e) => Err(self.bucket_error(op, &rec.path, e)),
        };
        drop(_one);
        let mut heads = lock(&self.heads);
        if heads.get(&rec.ino).is_some_and(|g| Arc::strong_count(g) <= 2) {
            heads.remove(&rec.ino);
        }
        result
    }

    /// Attributes from a record and the export's defaults.
    pub fn attr(&self, rec: &InodeRecord) -> Attr {
        let posix = rec.posix.unwrap_or_default();
        let (default_mode, nlink) = match rec.kind {
            Kind::File => (self.spec.file_mode, 1),
            Kind::Symlink => (0o777, 1),
            Kind::Dir => (self.spec.dir_mode, 2),
        };
        Attr {
            ino: rec.ino,
            kind: rec.kind,
            size: match (rec.kind, &rec.link) {
                (Kind::Dir, _) => 4096,
                (Kind::Symlink, Some(link)) => link.len() as u64,
                _ => rec.size,
            },
            mode: posix.mode.unwrap_or(default_mode),
            uid: posix.uid.unwrap_or(self.spec.uid),
            gid: posix.gid.unwrap_or(self.spec.gid),
            mtime: time_from_ns(posix.mtime_ns.unwrap_or(rec.mtime_ns)),
            change: rec.change,
            nlink,
            etag: rec.etag.clone(),
        }
    }

    /// Puts an entry into directory `dir`'s cached listing (an entry made here).
    pub(crate) async fn listing_insert(&self, dir: u64, name: &str, ino: u64, kind: Kind) {
        let slot = self.dir_slot(dir);
        let mut listing = slot.lock().await;
        if listing.listed_at.is_some() {
            if let Some(old) = listing.by_name.insert(name.to_string(), ino) {
                listing.by_ino.remove(&old);
            }
            listing.by_ino.insert(ino, (name.to_string(), kind));
        }
    }

    /// Takes an entry out of directory `dir`'s cached listing.
    pub(crate) async fn listing_remove(&self, dir: u64, name: &str) {
        let slot = self.dir_slot(dir);
        let mut listing = slot.lock().await;
        if let Some(ino) = listing.by_name.remove(name) {
            listing.by_ino.remove(&ino);
        }
    }

    /// A directory made here has nothing in the bucket yet: its listing starts empty and fresh.
    pub(crate) async fn listing_new(&self, dir: u64) {
        let slot = self.dir_slot(dir);
        let mut listing = slot.lock().await;
        *listing = Listing { listed_at: Some(Instant::now()), ..Listing::default() };
    }

    /// Makes sure every object under directory `dir` in the bucket has a record (before a
    /// rename of the directory, which must move all of them): one flat listing of its prefix,
    /// recorded depth by depth.
    pub(crate) async fn load_subtree(&self, op: &'static str, dir: &InodeRecord) -> Result<()> {
        let prefix = self.list_prefix(&dir.path);
        let mut files: Vec<(String, ObjectMeta)> = Vec::new();
        let mut dirs: BTreeMap<String, ()> = BTreeMap::new();
        let mut token = None;
        loop {
            let page = self
                .bucket
                .list_page(&prefix, false, token.take(), LIST_PAGE_KEYS)
                .await
                .map_err(|e| self.bucket_error(op, &dir.path, e))?;
            for obj in page.objects {
                if self.bucket.is_hidden(&obj.key) {
                    continue;
                }
                let Some(rel) = obj.key.get(prefix.len()..) else { continue };
                let (rel, is_marker) = match rel.strip_suffix('/') {
                    Some(r) => (r, true),
                    None => (rel, false),
                };
                if rel.is_empty() || rel.split('/').any(|c| invalid_name(c).is_some()) {
                    continue;
                }
                let mut at = 0;
                while let Some(i) = rel[at..].find('/') {
                    dirs.insert(rel[..at + i].to_string(), ());
                    at += i + 1;
                }
                if is_marker {
                    dirs.insert(rel.to_string(), ());
                } else {
                    files.push((rel.to_string(), obj));
                }
            }
            match page.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        let now_ns = ns_from_time(SystemTime::now());
        let mut inos: HashMap<String, u64> = HashMap::new();
        inos.insert(String::new(), dir.ino);
        let depth = |p: &str| p.matches('/').count();
        let max_depth = dirs.keys().map(|p| depth(p)).chain(files.iter().map(|(p, _)| depth(p))).max().unwrap_or(0);
        for d in 0..=max_depth {
            let mut observed = Vec::new();
            for p in dirs.keys().filter(|p| depth(p) == d) {
                let parent_rel = p.rsplit_once('/').map_or("", |(a, _)| a);
                let Some(&parent) = inos.get(parent_rel) else { continue };
                observed.push(Observed {
                    export: self.export_id,
                    parent,
                    path: join_path(&dir.path, p),
                    kind: Kind::Dir,
                    size: 0,
                    mtime_ns: now_ns,
                    etag: None,
                    posix: None,
                });
            }
            for (p, obj) in files.iter().filter(|(p, _)| depth(p) == d) {
                if dirs.contains_key(p) {
                    continue; // shadowed by a directory
                }
                let parent_rel = p.rsplit_once('/').map_or("", |(a, _)| a);
                let Some(&parent) = inos.get(parent_rel) else { continue };
                observed.push(Observed {
                    export: self.export_id,
                    parent,
                    path: join_path(&dir.path, p),
                    kind: Kind::File,
                    size: obj.size,
                    mtime_ns: ns_from_time(obj.mtime),
                    etag: obj.etag.clone(),
                    posix: None,
                });
            }
            if observed.is_empty() {
                continue;
            }
            let base_len = if dir.path.is_empty() { 0 } else { dir.path.len() + 1 };
            for rec in self.apply(observed, Vec::new()).await? {
                inos.insert(rec.path.get(base_len..).unwrap_or("").to_string(), rec.ino);
                self.remember(rec);
            }
        }
        Ok(())
    }

    /// Records an object found by key (preload), creating the directories above it, without
    /// listing them. Returns the file's record.
    pub async fn observe_object(&self, path: &str, obj: &ObjectMeta) -> Result<Arc<InodeRecord>> {
        let op = "preload";
        let mut parent = self.inode(op, self.root)?;
        let comps: Vec<&str> = path.split('/').collect();
        let (file_name, dirs) = comps.split_last().ok_or(EngineError::Invalid {
            op,
            path: self.display(path),
            detail: "empty path".into(),
        })?;
        for name in comps.iter().chain(std::iter::once(file_name)) {
            if let Some(why) = invalid_name(name) {
                return Err(EngineError::Invalid { op, path: self.display(path), detail: why.into() });
            }
        }
        for name in dirs {
            let dir_path = join_path(&parent.path, name);
            let known = self.meta.lookup_path(self.export_id, &dir_path)?;
            parent = match known {
                Some(rec) if rec.kind == Kind::Dir => self.remember(rec),
                _ => {
                    let obs = Observed {
                        export: self.export_id,
                        parent: parent.ino,
                        path: dir_path,
                        kind: Kind::Dir,
                        size: 0,
                        mtime_ns: ns_from_time(SystemTime::now()),
                        etag: None,
                        posix: None,
                    };
                    let mut recs = self.apply(vec![obs], Vec::new()).await?;
                    self.remember(recs.pop().ok_or(EngineError::Metadata { op, detail: "no record".into() })?)
                }
            };
        }
        let obs = Observed {
            export: self.export_id,
            parent: parent.ino,
            path: path.to_string(),
            kind: Kind::File,
            size: obj.size,
            mtime_ns: ns_from_time(obj.mtime),
            etag: obj.etag.clone(),
            posix: obj.user_metadata.as_ref().map(posix_from_user_metadata),
        };
        let mut recs = self.apply(vec![obs], Vec::new()).await?;
        let rec = recs.pop().ok_or(EngineError::Metadata { op, detail: "no record".into() })?;
        lock(&self.validated).insert(rec.ino, Instant::now());
        Ok(self.remember(rec))
    }
}

/// `dir/name`, or `name` at the root.
pub fn join_path(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_garbage_is_refused() {
        let fh = FileHandle { store_id: 7, export: 3, ino: 1 << 40, generation: 99 };
        assert_eq!(FileHandle::decode(&fh.encode()), Some(fh));
        assert_eq!(FileHandle::decode(&[]), None);
        assert_eq!(FileHandle::decode(&[0u8; HANDLE_BYTES]), None);
        assert_eq!(FileHandle::decode(&[1u8; HANDLE_BYTES + 1]), None);
    }

    #[test]
    fn names_that_cannot_be_files_are_refused() {
        assert!(invalid_name("").is_some());
        assert!(invalid_name(".").is_some());
        assert!(invalid_name("..").is_some());
        assert!(invalid_name(&"x".repeat(256)).is_some());
        assert!(invalid_name("a\0b").is_some());
        assert!(invalid_name("a b.tar").is_none());
        assert!(invalid_name(&"é".repeat(127)).is_none());
    }

    #[test]
    fn posix_metadata_in_s3fs_decimal_and_octal() {
        let m: UserMetadata = [("mode", "33188"), ("uid", "1000"), ("gid", "100"), ("mtime", "1700000000.5")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let p = posix_from_user_metadata(&m);
        assert_eq!(p.mode, Some(0o644));
        assert_eq!((p.uid, p.gid), (Some(1000), Some(100)));
        assert_eq!(p.mtime_ns, Some(1_700_000_000_500_000_000));
        let m: UserMetadata = [("mode".to_string(), "0750".to_string())].into_iter().collect();
        assert_eq!(posix_from_user_metadata(&m).mode, Some(0o750));
        let m: UserMetadata = [("mode".to_string(), "rwx".to_string())].into_iter().collect();
        assert_eq!(posix_from_user_metadata(&m).mode, None);
    }
}
