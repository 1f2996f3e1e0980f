//! The local-directory backend of `StoreClient`: object_store's `LocalFileSystem` plus what it
//! lacks, so a directory behaves like a bucket for the engine (development, tests, NAS roots).
//!
//! - User metadata: extended attributes `user.bucketfs.meta.<name>` on the object's file, set on
//!   the staged file before it is published, so a reader never sees a body without its metadata.
//!   A filesystem without user xattrs is refused when the client opens (`Unsupported`).
//! - PUT is done here (staged file `<name>#<digits>`, which `LocalFileSystem` listings ignore,
//!   then rename / hard link), and so are multipart uploads (`local_upload`: parts written into
//!   a staged file, published by `complete` the same way, conditions included). `Create`
//!   publishes with a hard link, atomic against anyone.
//!   `Update` checks the ETag and renames under this client's write lock; every write of this
//!   client takes that lock to publish, so within one client the check-and-publish is atomic.
//!   Another process (or another client on the same directory) can still publish between the
//!   check and the rename: that window is not closed.
//! - Directory markers: a key ending in `/` with an empty body is the directory itself carrying
//!   the xattr `user.bucketfs.marker` (its value is the creation time in ns, which makes the
//!   marker's ETag and mtime). A non-empty body under such a key is `Unsupported`. Deleting a
//!   marker removes the xattrs and the directory if it is empty.
//! - A key and a "directory" of the same name (`a` and `a/x`) cannot both exist: the second
//!   write fails with `Other` naming the conflict.
//! - Listing walks the directory (cost proportional to the keys under the prefix, per page),
//!   sorts keys bytewise like S3 and pages with the last key returned as token. Directories
//!   with no object below them (left by deletes of other tools) are not listed.
//! - ETags are `LocalFileSystem`'s (`"<inode>-<mtime µs>-<size>"`, hex): every write makes a new
//!   inode, so they change on overwrite. A copy is a hard link and keeps the source's ETag (as S3
//!   does for a plain copy).
//! - No fsync: this backend is not crash-durable.
//!
//! Runs on: the caller's tokio runtime; every filesystem call goes to the blocking pool.

use std::collections::BTreeMap;
use std::fs::{self, File, Metadata};
use std::io::{ErrorKind, Write};
use std::ops::Range;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::{GetOptions, GetRange, ObjectStore};
use rustix::fs::XattrFlags;
use rustix::io::Errno;

use super::local_upload::LocalUpload;
use super::store::{check_empty_range, check_etag, map_body, map_store_error, rename_op, store_path};
use super::{ByteStream, ListPage, MultipartUpload, ObjectError, ObjectMeta, ObjectResult, PutMode, PutOptions};
use super::{PutOutcome, UserMetadata};

pub(super) const META_PREFIX: &str = "user.bucketfs.meta.";
const MARKER_XATTR: &str = "user.bucketfs.marker";
/// Linux's limit on one xattr value and on the list of names.
const XATTR_BYTES_MAX: usize = 64 * 1024;

#[derive(Debug)]
pub(super) struct LocalDir {
    root: PathBuf,
    fs: LocalFileSystem,
    /// Held while publishing a write (and while checking an `Update`'s ETag before it).
    write_lock: Mutex<()>,
    staging_seq: AtomicU64,
}

pub(super) fn io_error(op: &'static str, key: &str, e: std::io::Error) -> ObjectError {
    let key = key.to_string();
    match e.kind() {
        ErrorKind::NotFound => ObjectError::NotFound { op, key },
        ErrorKind::PermissionDenied => ObjectError::Denied { op, key, detail: e.to_string() },
        _ if e.raw_os_error() == Some(libc::EOPNOTSUPP) => ObjectError::Unsupported {
            op,
            key,
            detail: format!("the filesystem does not support user extended attributes: {e}"),
        },
        ErrorKind::NotADirectory
        | ErrorKind::IsADirectory
        | ErrorKind::DirectoryNotEmpty
        | ErrorKind::AlreadyExists => ObjectError::Other {
            op,
            key,
            detail: format!("a key and a directory of keys with the same name cannot both exist here: {e}"),
        },
        _ => ObjectError::Other { op, key, detail: e.to_string() },
    }
}

pub(super) fn errno(op: &'static str, key: &str, e: Errno) -> ObjectError {
    io_error(op, key, std::io::Error::from(e))
}

/// `LocalFileSystem`'s ETag of a file with this metadata (same formula, so `if_match` on a GET,
/// which `LocalFileSystem` checks, agrees with the ETags this module hands out).
pub(super) fn file_etag(m: &Metadata) -> String {
    let mtime = m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or_default().as_micros();
    format!("\"{:x}-{:x}-{:x}\"", m.ino(), mtime, m.len())
}

fn marker_etag(m: &Metadata, created_ns: u64) -> String {
    format!("\"d{:x}-{created_ns:x}\"", m.ino())
}

/// Staging and other reserved names: `name#<digits>` (`LocalFileSystem`'s rule).
fn is_reserved_name(name: &str) -> bool {
    match name.split_once('#') {
        Some((_, suffix)) => !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

fn read_xattr(path: &FsPath, name: &str) -> Result<Option<Vec<u8>>, Errno> {
    let mut buf = vec![0u8; XATTR_BYTES_MAX];
    match rustix::fs::getxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Ok(Some(buf))
        }
        Err(Errno::NODATA) => Ok(None),
        Err(e) => Err(e),
    }
}

fn xattr_names(path: &FsPath) -> Result<Vec<String>, Errno> {
    let mut buf = vec![0u8; XATTR_BYTES_MAX];
    let n = rustix::fs::listxattr(path, &mut buf[..])?;
    buf.truncate(n);
    Ok(buf
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .filter_map(|n| std::str::from_utf8(n).ok().map(str::to_string))
        .collect())
}

fn read_user_metadata(path: &FsPath) -> Result<UserMetadata, Errno> {
    let mut meta = BTreeMap::new();
    for name in xattr_names(path)? {
        if let Some(short) = name.strip_prefix(META_PREFIX) {
            if let Some(value) = read_xattr(path, &name)? {
                meta.insert(short.to_string(), String::from_utf8_lossy(&value).into_owned());
            }
        }
    }
    Ok(meta)
}

fn check_metadata_names(op: &'static str, key: &str, meta: &UserMetadata) -> ObjectResult<()> {
    for name in meta.keys() {
        if name.is_empty() || name.contains('\0') || META_PREFIX.len() + name.len() > 255 {
            return Err(ObjectError::Other { op, key: key.into(), detail: format!("bad metadata name {name:?}") });
        }
    }
    Ok(())
}

fn marker_created_ns(dir: &FsPath) -> Result<Option<u64>, Errno> {
    Ok(read_xattr(dir, MARKER_XATTR)?.map(|v| String::from_utf8_lossy(&v).trim().parse::<u64>().unwrap_or_default()))
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or_default()
}

impl LocalDir {
    pub(super) fn open(root: &FsPath) -> ObjectResult<LocalDir> {
        let op = "open";
        let key = root.display().to_string();
        let root = fs::canonicalize(root).map_err(|e| io_error(op, &key, e))?;
        let fs = LocalFileSystem::new_with_prefix(&root).map_err(|e| map_store_error(op, &key, e))?;
        // Refuse a filesystem without user xattrs now rather than at the first metadata write.
        let probe = "user.bucketfs.probe";
        rustix::fs::setxattr(&root, probe, b"1", XattrFlags::empty()).map_err(|e| errno(op, &key, e))?;
        rustix::fs::removexattr(&root, probe).map_err(|e| errno(op, &key, e))?;
        Ok(LocalDir { root, fs, write_lock: Mutex::new(()), staging_seq: AtomicU64::new(0) })
    }

    pub(super) fn root(&self) -> &FsPath {
        &self.root
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic while holding it leaves nothing inconsistent.
        self.write_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The filesystem path of `key` (a marker's directory for `dir/`), and whether it is a marker.
    pub(super) fn fs_path(&self, op: &'static str, key: &str) -> ObjectResult<(PathBuf, bool)> {
        let (stem, marker) = match key.strip_suffix('/') {
            Some(stem) => (stem, true),
            None => (key, false),
        };
        let path = store_path(op, stem)?;
        if path.parts().any(|p| is_reserved_name(p.as_ref())) {
            return Err(ObjectError::Unsupported {
                op,
                key: key.into(),
                detail: "names ending in '#<digits>' are reserved for staging in a local directory".into(),
            });
        }
        let fs_path = self.fs.path_to_filesystem(&path).map_err(|e| map_store_error(op, key, e))?;
        Ok((fs_path, marker))
    }

    pub(super) async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        op: &'static str,
        key: &str,
        f: impl FnOnce(&LocalDir) -> ObjectResult<T> + Send + 'static,
    ) -> ObjectResult<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this)).await.map_err(|e| ObjectError::Other {
            op,
            key: key.into(),
            detail: format!("blocking task failed: {e}"),
        })?
    }

    fn head_sync(&self, op: &'static str, key: &str) -> ObjectResult<ObjectMeta> {
        let (path, marker) = self.fs_path(op, key)?;
        if marker {
            let m = fs::metadata(&path).map_err(|e| io_error(op, key, e))?;
            let created = match marker_created_ns(&path) {
                Ok(Some(ns)) if m.is_dir() => ns,
                Ok(_) | Err(Errno::NOTDIR) => return Err(ObjectError::NotFound { op, key: key.into() }),
                Err(e) => return Err(errno(op, key, e)),
            };
            return Ok(ObjectMeta {
                key: key.into(),
                size: 0,
                mtime: UNIX_EPOCH + Duration::from_nanos(created),
                etag: Some(marker_etag(&m, created)),
                version: None,
                user_metadata: Some(read_user_metadata(&path).map_err(|e| errno(op, key, e))?),
            });
        }
        // One open file: size, ETag and metadata all describe the same inode.
        let file = File::open(&path).map_err(|e| io_error(op, key, e))?;
        let m = file.metadata().map_err(|e| io_error(op, key, e))?;
        if m.is_dir() {
            return Err(ObjectError::NotFound { op, key: key.into() });
        }
        let mut user = BTreeMap::new();
        let mut names = vec![0u8; XATTR_BYTES_MAX];
        let n = rustix::fs::flistxattr(file.as_fd(), &mut names[..]).map_err(|e| errno(op, key, e))?;
        let mut value = vec![0u8; XATTR_BYTES_MAX];
        for name in names[..n].split(|b| *b == 0).filter_map(|n| std::str::from_utf8(n).ok()) {
            if let Some(short) = name.strip_prefix(META_PREFIX) {
                match rustix::fs::fgetxattr(file.as_fd(), name, &mut value[..]) {
                    Ok(len) => {
                        user.insert(short.to_string(), String::from_utf8_lossy(&value[..len]).into_owned());
                    }
                    Err(Errno::NODATA) => {}
                    Err(e) => return Err(errno(op, key, e)),
                }
            }
        }
        Ok(ObjectMeta {
            key: key.into(),
            size: m.len(),
            mtime: m.modified().unwrap_or(UNIX_EPOCH),
            etag: Some(file_etag(&m)),
            version: None,
            user_metadata: Some(user),
        })
    }

    pub(super) async fn head(self: &Arc<Self>, key: &str) -> ObjectResult<ObjectMeta> {
        let k = key.to_string();
        self.blocking("head", key, move |this| this.head_sync("head", &k)).await
    }

    pub(super) async fn get_range(
        self: &Arc<Self>,
        key: &str,
        range: Range<u64>,
        if_match: Option<&str>,
    ) -> ObjectResult<ByteStream> {
        let op = "get";
        if range.start > range.end {
            return Err(ObjectError::Other { op, key: key.into(), detail: format!("bad range {range:?}") });
        }
        let (_, marker) = self.fs_path(op, key)?;
        if marker || range.start == range.end {
            let meta = self.head(key).await.map_err(|e| rename_op(e, op))?;
            check_empty_range(op, key, &meta, &range, if_match)?;
            if range.end > meta.size {
                return Err(ObjectError::Other {
                    op,
                    key: key.into(),
                    detail: format!("range {range:?} past the end"),
                });
            }
            return Ok(futures::stream::empty().boxed());
        }
        let path = store_path(op, key)?;
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            if_match: if_match.map(str::to_string),
            ..Default::default()
        };
        let r = self.fs.get_opts(&path, opts).await.map_err(|e| map_store_error(op, key, e))?;
        if r.range != range {
            return Err(ObjectError::Other {
                op,
                key: key.into(),
                detail: format!("range {range:?} outside the object's {} bytes", r.meta.size),
            });
        }
        Ok(map_body(op, key, range.end - range.start, r.into_stream()))
    }

    /// Creates an empty staged file next to `path` (and the directories above it).
    pub(super) fn create_staged(&self, op: &'static str, key: &str, path: &FsPath) -> ObjectResult<(PathBuf, File)> {
        let parent =
            path.parent().ok_or_else(|| ObjectError::Other { op, key: key.into(), detail: "no parent".into() })?;
        fs::create_dir_all(parent).map_err(|e| io_error(op, key, e))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let seq = self.staging_seq.fetch_add(1, Ordering::Relaxed);
        let staged = parent.join(format!("{name}#{}{seq}", std::process::id()));
        let file = File::create_new(&staged).map_err(|e| io_error(op, key, e))?;
        Ok((staged, file))
    }

    /// Sets the user metadata of a staged file as xattrs; returns its ETag (unchanged by the
    /// rename or link that publishes it).
    pub(super) fn finish_staged(op: &'static str, key: &str, file: &File, meta: &UserMetadata) -> ObjectResult<String> {
        for (k, v) in meta {
            rustix::fs::fsetxattr(file.as_fd(), format!("{META_PREFIX}{k}"), v.as_bytes(), XattrFlags::empty())
                .map_err(|e| errno(op, key, e))?;
        }
        let m = file.metadata().map_err(|e| io_error(op, key, e))?;
        Ok(file_etag(&m))
    }

    /// Writes `body` to a staged file next to `path` with the metadata as xattrs; returns the
    /// staged path and its ETag.
    fn stage(
        &self,
        op: &'static str,
        key: &str,
        path: &FsPath,
        body: &[u8],
        meta: &UserMetadata,
    ) -> ObjectResult<(PathBuf, String)> {
        let (staged, mut file) = self.create_staged(op, key, path)?;
        let result = file
            .write_all(body)
            .map_err(|e| io_error(op, key, e))
            .and_then(|()| Self::finish_staged(op, key, &file, meta));
        match result {
            Ok(etag) => Ok((staged, etag)),
            Err(e) => {
                let _ = fs::remove_file(&staged);
                Err(e)
            }
        }
    }

    fn put_file_sync(&self, key: &str, body: &[u8], opts: &PutOptions) -> ObjectResult<PutOutcome> {
        let op = "put";
        let (path, _) = self.fs_path(op, key)?;
        let (staged, etag) = self.stage(op, key, &path, body, &opts.user_metadata)?;
        self.publish_sync(op, key, &staged, &path, &opts.mode)?;
        Ok(PutOutcome { etag: Some(etag), version: None })
    }

    /// Publishes `staged` as `path` if `mode`'s condition holds; the staged name is gone after.
    pub(super) fn publish_sync(
        &self,
        op: &'static str,
        key: &str,
        staged: &FsPath,
        path: &FsPath,
        mode: &PutMode,
    ) -> ObjectResult<()> {
        let published = {
            let _guard = self.lock();
            match mode {
                PutMode::Overwrite => fs::rename(staged, path).map_err(|e| io_error(op, key, e)),
                PutMode::Create => match fs::hard_link(staged, path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        Err(ObjectError::Precondition { op, key: key.into(), detail: "object exists".into() })
                    }
                    Err(e) => Err(io_error(op, key, e)),
                },
                PutMode::Update { etag: want } => match fs::metadata(path) {
                    Ok(m) if m.is_file() => check_etag(op, key, Some(&file_etag(&m)), want)
                        .and_then(|()| fs::rename(staged, path).map_err(|e| io_error(op, key, e))),
                    Ok(_) => Err(ObjectError::Precondition { op, key: key.into(), detail: "no such object".into() }),
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        Err(ObjectError::Precondition { op, key: key.into(), detail: "no such object".into() })
                    }
                    Err(e) => Err(io_error(op, key, e)),
                },
            }
        };
        // After a rename the staged name is gone; after a link or a failure it is removed here.
        let _ = fs::remove_file(staged);
        published
    }

    fn put_marker_sync(&self, key: &str, body: &[u8], opts: &PutOptions) -> ObjectResult<PutOutcome> {
        let op = "put";
        if !body.is_empty() {
            return Err(ObjectError::Unsupported {
                op,
                key: key.into(),
                detail: "a key ending in '/' is a directory marker here and cannot hold data".into(),
            });
        }
        check_metadata_names(op, key, &opts.user_metadata)?;
        let (dir, _) = self.fs_path(op, key)?;
        let _guard = self.lock();
        let existing = match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {
                marker_created_ns(&dir).map_err(|e| errno(op, key, e))?.map(|ns| marker_etag(&m, ns))
            }
            Ok(_) => return Err(io_error(op, key, std::io::Error::from(ErrorKind::NotADirectory))),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(io_error(op, key, e)),
        };
        match (&opts.mode, &existing) {
            (PutMode::Create, Some(_)) => {
                return Err(ObjectError::Precondition { op, key: key.into(), detail: "object exists".into() })
            }
            (PutMode::Update { .. }, None) => {
                return Err(ObjectError::Precondition { op, key: key.into(), detail: "no such object".into() })
            }
            (PutMode::Update { etag }, Some(have)) => check_etag(op, key, Some(have), etag)?,
            _ => {}
        }
        fs::create_dir_all(&dir).map_err(|e| io_error(op, key, e))?;
        // Metadata first, the marker last: the marker publishes the object. Readers may see a
        // re-put marker's metadata change before its ETag does.
        for name in xattr_names(&dir).map_err(|e| errno(op, key, e))? {
            if name.starts_with(META_PREFIX) {
                rustix::fs::removexattr(&dir, name.as_str()).map_err(|e| errno(op, key, e))?;
            }
        }
        for (k, v) in &opts.user_metadata {
            rustix::fs::setxattr(&dir, format!("{META_PREFIX}{k}"), v.as_bytes(), XattrFlags::empty())
                .map_err(|e| errno(op, key, e))?;
        }
        let mut created = now_ns();
        if let Some(old) = marker_created_ns(&dir).map_err(|e| errno(op, key, e))? {
            created = created.max(old + 1); // the ETag must change
        }
        rustix::fs::setxattr(&dir, MARKER_XATTR, created.to_string().as_bytes(), XattrFlags::empty())
            .map_err(|e| errno(op, key, e))?;
        let m = fs::metadata(&dir).map_err(|e| io_error(op, key, e))?;
        Ok(PutOutcome { etag: Some(marker_etag(&m, created)), version: None })
    }

    pub(super) async fn put(self: &Arc<Self>, key: &str, body: Bytes, opts: &PutOptions) -> ObjectResult<PutOutcome> {
        check_metadata_names("put", key, &opts.user_metadata)?;
        let (k, o) = (key.to_string(), opts.clone());
        if key.ends_with('/') {
            return self.blocking("put", key, move |this| this.put_marker_sync(&k, &body, &o)).await;
        }
        self.blocking("put", key, move |this| this.put_file_sync(&k, &body, &o)).await
    }

    pub(super) async fn put_multipart(
        self: &Arc<Self>,
        key: &str,
        opts: &PutOptions,
    ) -> ObjectResult<Box<dyn MultipartUpload>> {
        let op = "create multipart";
        check_metadata_names(op, key, &opts.user_metadata)?;
        let (_, marker) = self.fs_path(op, key)?;
        if marker {
            return Err(ObjectError::Unsupported {
                op,
                key: key.into(),
                detail: "a directory marker holds no data".into(),
            });
        }
        Ok(Box::new(LocalUpload::create(self, key, opts).await?))
    }

    pub(super) async fn copy(self: &Arc<Self>, from: &str, to: &str, if_match: Option<&str>) -> ObjectResult<()> {
        let op = "copy";
        let (src, dst) = (self.fs_path(op, from)?, self.fs_path(op, to)?);
        if src.1 || dst.1 {
            if !(src.1 && dst.1) {
                return Err(ObjectError::Unsupported {
                    op,
                    key: from.into(),
                    detail: format!("copy between a directory marker and an object ({from} to {to})"),
                });
            }
            let meta = self.head(from).await.map_err(|e| rename_op(e, op))?;
            if let Some(want) = if_match {
                check_etag(op, from, meta.etag.as_deref(), want)?;
            }
            let opts = PutOptions { mode: PutMode::Overwrite, user_metadata: meta.user_metadata.unwrap_or_default() };
            return self.put(to, Bytes::new(), &opts).await.map(|_| ()).map_err(|e| rename_op(e, op));
        }
        let (f, t, want) = (from.to_string(), to.to_string(), if_match.map(str::to_string));
        self.blocking(op, from, move |this| {
            let _guard = this.lock();
            if let Some(want) = want {
                let m = fs::metadata(&src.0).map_err(|e| io_error(op, &f, e))?;
                check_etag(op, &f, Some(&file_etag(&m)), &want)?;
            }
            if let Some(parent) = dst.0.parent() {
                fs::create_dir_all(parent).map_err(|e| io_error(op, &t, e))?;
            }
            // A hard link shares the inode (and its xattrs): fine, since no write here ever
            // changes an inode in place.
            let staged = dst.0.with_file_name(format!(
                "{}#{}{}",
                dst.0.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                std::process::id(),
                this.staging_seq.fetch_add(1, Ordering::Relaxed)
            ));
            let linked = fs::hard_link(&src.0, &staged)
                .map_err(|e| io_error(op, &f, e))
                .and_then(|()| fs::rename(&staged, &dst.0).map_err(|e| io_error(op, &t, e)));
            let _ = fs::remove_file(&staged);
            linked
        })
        .await
    }

    pub(super) async fn delete(self: &Arc<Self>, key: &str) -> ObjectResult<()> {
        let op = "delete";
        let (path, marker) = self.fs_path(op, key)?;
        let k = key.to_string();
        self.blocking(op, key, move |this| {
            let _guard = this.lock();
            if marker {
                match fs::metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Ok(()),
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(io_error(op, &k, e)),
                }
                for name in xattr_names(&path).map_err(|e| errno(op, &k, e))? {
                    if name == MARKER_XATTR || name.starts_with(META_PREFIX) {
                        rustix::fs::removexattr(&path, name.as_str()).map_err(|e| errno(op, &k, e))?;
                    }
                }
                this.remove_empty_dirs(&path);
                return Ok(());
            }
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                // A directory of keys under this name: the object `key` itself does not exist.
                Err(e) if e.kind() == ErrorKind::IsADirectory => return Ok(()),
                Err(e) => return Err(io_error(op, &k, e)),
            }
            if let Some(parent) = path.parent() {
                this.remove_empty_dirs(parent);
            }
            Ok(())
        })
        .await
    }

    /// Removes `dir` and its parents while they are empty and not markers (below the root).
    pub(super) fn remove_empty_dirs(&self, dir: &FsPath) {
        let mut current = Some(dir);
        while let Some(d) = current {
            if d == self.root || !d.starts_with(&self.root) {
                return;
            }
            if matches!(marker_created_ns(d), Ok(Some(_))) || fs::remove_dir(d).is_err() {
                return;
            }
            current = d.parent();
        }
    }

    pub(super) async fn list(
        self: &Arc<Self>,
        prefix: &str,
        delimiter: bool,
        token: Option<&str>,
        page_keys_max: usize,
    ) -> ObjectResult<ListPage> {
        let (p, t) = (prefix.to_string(), token.map(str::to_string));
        self.blocking("list", prefix, move |this| this.list_sync(&p, delimiter, t.as_deref(), page_keys_max)).await
    }

    fn list_sync(
        &self,
        prefix: &str,
        delimiter: bool,
        token: Option<&str>,
        page_keys_max: usize,
    ) -> ObjectResult<ListPage> {
        let op = "list";
        let (dir_part, name_part) = match prefix.rfind('/') {
            Some(i) => prefix.split_at(i + 1),
            None => ("", prefix),
        };
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            match self.fs_path(op, dir_part) {
                Ok((p, _)) => p,
                // A prefix no key can have lists nothing.
                Err(_) => return Ok(ListPage::default()),
            }
        };
        let mut entries: Vec<(String, Option<ObjectMeta>)> = Vec::new();
        if name_part.is_empty() && !dir_part.is_empty() {
            if let Some(meta) = self.marker_meta(&start, dir_part) {
                entries.push((dir_part.to_string(), Some(meta)));
            }
        }
        let read = match fs::read_dir(&start) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(page_of(entries, token, page_keys_max))
            }
            Err(e) => return Err(io_error(op, prefix, e)),
        };
        for entry in read {
            let entry = entry.map_err(|e| io_error(op, prefix, e))?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if !name.starts_with(name_part) || is_reserved_name(&name) {
                continue;
            }
            let key = format!("{dir_part}{name}");
            let path = entry.path();
            let Ok(m) = fs::metadata(&path) else { continue };
            if m.is_dir() {
                if delimiter {
                    if self.has_objects(&path) {
                        entries.push((format!("{key}/"), None));
                    }
                } else {
                    self.walk(&path, &format!("{key}/"), &mut entries).map_err(|e| io_error(op, prefix, e))?;
                }
            } else {
                entries.push((key.clone(), Some(file_meta(key, &m))));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(page_of(entries, token, page_keys_max))
    }

    fn marker_meta(&self, dir: &FsPath, key: &str) -> Option<ObjectMeta> {
        let created = marker_created_ns(dir).ok()??;
        let m = fs::metadata(dir).ok()?;
        Some(ObjectMeta {
            key: key.into(),
            size: 0,
            mtime: UNIX_EPOCH + Duration::from_nanos(created),
            etag: Some(marker_etag(&m, created)),
            version: None,
            user_metadata: None,
        })
    }

    /// Every object at or below directory `dir` (whose keys start with `key_prefix`, ending in '/').
    fn walk(&self, dir: &FsPath, key_prefix: &str, out: &mut Vec<(String, Option<ObjectMeta>)>) -> std::io::Result<()> {
        if let Some(meta) = self.marker_meta(dir, key_prefix) {
            out.push((key_prefix.to_string(), Some(meta)));
        }
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if is_reserved_name(&name) {
                continue;
            }
            let path = entry.path();
            let Ok(m) = fs::metadata(&path) else { continue };
            let key = format!("{key_prefix}{name}");
            if m.is_dir() {
                self.walk(&path, &format!("{key}/"), out)?;
            } else {
                out.push((key.clone(), Some(file_meta(key, &m))));
            }
        }
        Ok(())
    }

    /// True when `dir` is a marker or holds an object somewhere below.
    fn has_objects(&self, dir: &FsPath) -> bool {
        if matches!(marker_created_ns(dir), Ok(Some(_))) {
            return true;
        }
        let Ok(read) = fs::read_dir(dir) else { return false };
        read.flatten().any(|entry| {
            let name = entry.file_name();
            if is_reserved_name(&name.to_string_lossy()) {
                return false;
            }
            match fs::metadata(entry.path()) {
                Ok(m) if m.is_dir() => self.has_objects(&entry.path()),
                Ok(_) => true,
                Err(_) => false,
            }
        })
    }
}

fn file_meta(key: String, m: &Metadata) -> ObjectMeta {
    ObjectMeta {
        key,
        size: m.len(),
        mtime: m.modified().unwrap_or(UNIX_EPOCH),
        etag: Some(file_etag(m)),
        version: None,
        user_metadata: None,
    }
}

/// The page after `token` from sorted entries (`None` meta: a common prefix).
fn page_of(entries: Vec<(String, Option<ObjectMeta>)>, token: Option<&str>, page_keys_max: usize) -> ListPage {
    let page_keys_max = page_keys_max.clamp(1, 1000);
    let mut page = ListPage::default();
    let mut rest = entries.into_iter().filter(|(k, _)| token.is_none_or(|t| k.as_str() > t)).peekable();
    let mut last: Option<String> = None;
    while page.objects.len() + page.prefixes.len() < page_keys_max {
        let Some((key, meta)) = rest.next() else { break };
        match meta {
            Some(m) => page.objects.push(m),
            None => page.prefixes.push(key.clone()),
        }
        last = Some(key);
    }
    if rest.peek().is_some() {
        page.next_token = last;
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::store::{ObjectStoreConfig, StoreClient};
    use crate::object::ObjectClient;
    use object_store::path::Path;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn etag_formula_matches_local_file_system() {
        let dir = tempfile::tempdir().expect("tempdir");
        let client = StoreClient::new(&ObjectStoreConfig::Local { root: dir.path().into() }).expect("client");
        let put = client.put("a/b", Bytes::from_static(b"hello"), &PutOptions::default()).await.expect("put");
        let fs = LocalFileSystem::new_with_prefix(dir.path()).expect("fs");
        let theirs = fs.head(&Path::from("a/b")).await.expect("head");
        assert_eq!(put.etag, theirs.e_tag);
        assert_eq!(client.head("a/b").await.expect("head").etag, theirs.e_tag);
    }

    #[tokio::test]
    async fn staging_names_and_conflicts_are_refused_clearly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let client = StoreClient::new(&ObjectStoreConfig::Local { root: dir.path().into() }).expect("client");
        let e = client.put("x#12", Bytes::new(), &PutOptions::default()).await.expect_err("reserved");
        assert!(matches!(e, ObjectError::Unsupported { .. }), "{e:?}");
        client.put("a/b", Bytes::from_static(b"1"), &PutOptions::default()).await.expect("put");
        let e = client.put("a", Bytes::from_static(b"1"), &PutOptions::default()).await.expect_err("dir exists");
        assert!(matches!(e, ObjectError::Other { .. }) && e.to_string().contains("cannot both exist"), "{e}");
        let e = client.put("d/", Bytes::from_static(b"1"), &PutOptions::default()).await.expect_err("marker body");
        assert!(matches!(e, ObjectError::Unsupported { .. }), "{e:?}");
        // Deleting the last key removes its now-empty directory.
        client.delete("a/b").await.expect("delete");
        assert!(!dir.path().join("a").exists());
    }
}
