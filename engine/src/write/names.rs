//! Namespace changes made here: create, mkdir, symlink, remove, rename.
//!
//! Each change is one durable metadata transaction that also queues the bucket operations it
//! owes ([`BucketOp`]), so after a crash the namespace and the queue agree. The bucket follows in
//! the background ([`super::publish`]): new entries are published when due; a rename of an entry
//! the bucket has becomes a server-side copy to the new key and a delete of the old one; a
//! rename of a file not yet uploaded costs nothing in the bucket (it is uploaded straight to its
//! final key, so write-temp-then-rename costs one upload). A directory rename first makes sure
//! every object under it has a record (one flat listing), then moves them all at once.
//!
//! Hard links are refused ([`EngineError::NotSupported`]): one object per file cannot share
//! content between two keys.
//!
//! Runs on: callers' executors; metadata commits on the backfill runtime's blocking threads.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use super::publish::publish_key;
use super::SetAttrs;
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::meta::{Base, Batch, BucketOp, InodeRecord, Kind, Local, NewEntry, PosixAttrs};
use crate::namespace::{invalid_name, join_path, ns_from_time, Attr, FileHandle, Namespace};

/// How a create treats an existing name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateMode {
    /// Open it if it exists (truncating if the attributes say size 0).
    Unchecked,
    /// Fail with `Exists` if it exists.
    Guarded,
    /// Fail with `Exists` unless it was created by a create with this verifier (a retransmission).
    Exclusive(u64),
}

/// What a create made or found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    pub fh: FileHandle,
    pub attr: Attr,
    /// False when the name existed (an unchecked create, or an exclusive retransmission).
    pub created: bool,
}

fn posix_of(set: &SetAttrs, now_ns: i64) -> PosixAttrs {
    PosixAttrs {
        mode: set.mode.map(|m| m & 0o7777),
        uid: set.uid,
        gid: set.gid,
        mtime_ns: Some(match set.mtime {
            Some(Some(t)) => ns_from_time(t),
            _ => now_ns,
        }),
    }
}

impl Engine {
    fn dir_record(&self, op: &'static str, dir: &FileHandle) -> Result<(Arc<Namespace>, Arc<InodeRecord>)> {
        let ns = self.export_of(op, dir)?.clone();
        let rec = ns.resolve(op, dir)?;
        if rec.kind != Kind::Dir {
            return Err(EngineError::NotADirectory { op, path: ns.display(&rec.path) });
        }
        Ok((ns, rec))
    }

    fn check_name(op: &'static str, ns: &Namespace, dir: &InodeRecord, name: &str) -> Result<String> {
        let path = join_path(&dir.path, name);
        if let Some(why) = invalid_name(name) {
            return Err(EngineError::Invalid { op, path: ns.display(&path), detail: why.into() });
        }
        Ok(path)
    }

    /// The existing entry `name` in `dir`, if any.
    async fn existing(&self, ns: &Namespace, dir: &InodeRecord, name: &str) -> Result<Option<Arc<InodeRecord>>> {
        match ns.lookup(dir.ino, name).await {
            Ok(rec) => Ok(Some(rec)),
            Err(EngineError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The directory record with its mtime and change moved (its entries changed).
    fn touched_dir(ns: &Namespace, dir: u64, now_ns: i64) -> Option<InodeRecord> {
        let mut rec = (*ns.inode("touch directory", dir).ok()?).clone();
        super::set_mtime(&mut rec, now_ns);
        rec.change += 1;
        Some(rec)
    }

    /// For a rename: writes out the partial blocks of every moved file that has write state,
    /// flushes the store once, and returns the moved records as they are in memory (the store's
    /// list of the subtree gives the set; the in-memory records give sizes not yet committed).
    async fn settle_for_move(
        &self,
        op: &'static str,
        ns: &Arc<Namespace>,
        moved: Vec<InodeRecord>,
    ) -> Result<Vec<InodeRecord>> {
        let mut any = false;
        for rec in &moved {
            let Some(fs) = self.writes.existing(rec.ino) else { continue };
            let (now, puts) = {
                let _guard = fs.lock.lock().await;
                let now = ns.inode(op, rec.ino)?;
                let puts = self.write_out_buffers(ns, &now, &fs).await?;
                (now, puts)
            };
            self.await_puts(op, ns, &now, &fs, puts).await?;
            any = true;
        }
        if any {
            self.flush_store(op, ns, &moved[0]).await?;
        }
        moved.into_iter().map(|rec| ns.inode(op, rec.ino).map(|r| (*r).clone())).collect()
    }

    #[allow(clippy::too_many_arguments)]
    async fn make_entry(
        &self,
        op: &'static str,
        ns: &Arc<Namespace>,
        dir: &InodeRecord,
        path: String,
        kind: Kind,
        set: &SetAttrs,
        link: Option<String>,
        create_verifier: Option<u64>,
    ) -> Result<Arc<InodeRecord>> {
        let now_ns = ns_from_time(SystemTime::now());
        let entry = NewEntry {
            export: ns.export_id(),
            parent: dir.ino,
            path,
            kind,
            mtime_ns: now_ns,
            posix: Some(posix_of(set, now_ns)),
            link,
            local: Local { modified: true, create_verifier, ..Local::default() },
        };
        let mut batch = Batch { creates: vec![entry], ..Batch::default() };
        batch.puts.extend(Self::touched_dir(ns, dir.ino, now_ns));
        let out = self.meta_commit(op, batch.clone()).await?;
        for rec in batch.puts {
            ns.remember_record(rec);
        }
        let rec =
            out.created.into_iter().next().ok_or(EngineError::Metadata { op, detail: "no record created".into() })?;
        let rec = ns.remember_record(rec);
        ns.listing_insert(dir.ino, crate::meta::base_name(&rec.path), rec.ino, kind).await;
        if kind == Kind::Dir {
            ns.listing_new(rec.ino).await;
        }
        let fs = self.writes.file(rec.ino);
        let delay = if kind == Kind::File {
            self.writes.config.upload_delay_idle
        } else {
            self.writes.config.upload_delay_after_close
        };
        self.writes.schedule(&fs, delay);
        Ok(rec)
    }

    /// Creates (or opens) the file `name` in `dir`.
    pub async fn create(&self, dir: &FileHandle, name: &str, mode: CreateMode, set: &SetAttrs) -> Result<Created> {
        let op = "create";
        let (ns, dir_rec) = self.dir_record(op, dir)?;
        let path = Self::check_name(op, &ns, &dir_rec, name)?;
        if let Some(rec) = self.existing(&ns, &dir_rec, name).await? {
            let same_create = matches!(mode, CreateMode::Exclusive(v)
                if rec.local.as_ref().and_then(|l| l.create_verifier) == Some(v));
            match mode {
                CreateMode::Guarded => return Err(EngineError::Exists { op, path: ns.display(&path) }),
                CreateMode::Exclusive(_) if !same_create => {
                    return Err(EngineError::Exists { op, path: ns.display(&path) })
                }
                _ => {}
            }
            if rec.kind == Kind::Dir {
                return Err(EngineError::IsADirectory { op, path: ns.display(&path) });
            }
            let fh = ns.handle(&rec);
            let attr = if mode == CreateMode::Unchecked && !set.is_empty() {
                self.setattr(&fh, set).await?
            } else {
                ns.attr(&rec)
            };
            return Ok(Created { fh, attr, created: false });
        }
        let verifier = match mode {
            CreateMode::Exclusive(v) => Some(v),
            _ => None,
        };
        let mut initial = set.clone();
        let size = initial.size.take();
        let rec = self.make_entry(op, &ns, &dir_rec, path, Kind::File, &initial, None, verifier).await?;
        let fh = ns.handle(&rec);
        let attr = match size {
            Some(n) if n > 0 => self.setattr(&fh, &SetAttrs { size: Some(n), ..SetAttrs::default() }).await?,
            _ => ns.attr(&rec),
        };
        Ok(Created { fh, attr, created: true })
    }

    /// Makes the directory `name` in `dir`.
    pub async fn mkdir(&self, dir: &FileHandle, name: &str, set: &SetAttrs) -> Result<Created> {
        let op = "mkdir";
        let (ns, dir_rec) = self.dir_record(op, dir)?;
        let path = Self::check_name(op, &ns, &dir_rec, name)?;
        if self.existing(&ns, &dir_rec, name).await?.is_some() {
            return Err(EngineError::Exists { op, path: ns.display(&path) });
        }
        let rec = self.make_entry(op, &ns, &dir_rec, path, Kind::Dir, set, None, None).await?;
        Ok(Created { fh: ns.handle(&rec), attr: ns.attr(&rec), created: true })
    }

    /// Makes the symbolic link `name` in `dir` pointing at `target`.
    pub async fn symlink(&self, dir: &FileHandle, name: &str, target: &str, set: &SetAttrs) -> Result<Created> {
        let op = "symlink";
        let (ns, dir_rec) = self.dir_record(op, dir)?;
        let path = Self::check_name(op, &ns, &dir_rec, name)?;
        if target.is_empty() || target.len() > 4096 || target.contains('\0') {
            return Err(EngineError::Invalid { op, path: ns.display(&path), detail: "bad symlink target".into() });
        }
        if self.existing(&ns, &dir_rec, name).await?.is_some() {
            return Err(EngineError::Exists { op, path: ns.display(&path) });
        }
        let rec = self.make_entry(op, &ns, &dir_rec, path, Kind::Symlink, set, Some(target.to_string()), None).await?;
        Ok(Created { fh: ns.handle(&rec), attr: ns.attr(&rec), created: true })
    }

    /// A symbolic link's target.
    pub async fn readlink(&self, fh: &FileHandle) -> Result<String> {
        let op = "readlink";
        let ns = self.export_of(op, fh)?.clone();
        let rec = ns.resolve(op, fh)?;
        if rec.kind != Kind::Symlink {
            return Err(EngineError::Invalid { op, path: ns.display(&rec.path), detail: "not a symbolic link".into() });
        }
        if let Some(link) = &rec.link {
            return Ok(link.clone());
        }
        // A symlink object written by another tool: its body is the target.
        let target = Arc::new(crate::backfill::FetchTarget {
            ino: rec.ino,
            version: rec.content_version,
            key: ns.object_key(&rec.path),
            etag: rec.etag.clone(),
            size: rec.size.min(4096),
            path: ns.display(&rec.path),
        });
        let bytes = self.read_target(&ns, &target, 0, 4096).await?.to_vec();
        String::from_utf8(bytes).map_err(|_| EngineError::Invalid {
            op,
            path: ns.display(&rec.path),
            detail: "symlink target is not UTF-8".into(),
        })
    }

    /// Hard links: refused (one object per file).
    pub fn link(&self, fh: &FileHandle) -> Result<()> {
        let op = "link";
        let ns = self.export_of(op, fh)?;
        let rec = ns.resolve(op, fh)?;
        Err(EngineError::NotSupported {
            op,
            path: ns.display(&rec.path),
            detail: "hard links are not supported: each file is one object in the bucket".into(),
        })
    }

    /// Whether the bucket has (or will have, through a queued copy or a running upload)
    /// something at the entry's current key.
    fn bucket_may_have(&self, rec: &InodeRecord) -> bool {
        match &rec.local {
            None => true,
            Some(local) => {
                rec.kind == Kind::Dir
                    || local.bucket_etag.is_some()
                    || local.base.is_some()
                    || self.writes.publisher.is_uploading(rec.ino)
            }
        }
    }

    /// Removes the file, symlink or empty directory `name` from `dir`. `dir_only`: `Some(true)`
    /// for rmdir (must be a directory), `Some(false)` for unlink (must not be), `None` either.
    pub async fn remove(&self, dir: &FileHandle, name: &str, dir_only: Option<bool>) -> Result<()> {
        let op = "remove";
        let (ns, dir_rec) = self.dir_record(op, dir)?;
        let path = Self::check_name(op, &ns, &dir_rec, name)?;
        let Some(rec) = self.existing(&ns, &dir_rec, name).await? else {
            return Err(EngineError::NotFound { op, path: ns.display(&path) });
        };
        match (rec.kind, dir_only) {
            (Kind::Dir, Some(false)) => return Err(EngineError::IsADirectory { op, path: ns.display(&path) }),
            (k, Some(true)) if k != Kind::Dir => {
                return Err(EngineError::NotADirectory { op, path: ns.display(&path) })
            }
            _ => {}
        }
        if rec.kind == Kind::Dir {
            let page = ns.readdir(rec.ino, 0, 1).await?;
            if !page.entries.is_empty() {
                return Err(EngineError::NotEmpty { op, path: ns.display(&path) });
            }
        }
        let now_ns = ns_from_time(SystemTime::now());
        let mut batch = Batch { removes: vec![(ns.export_id(), rec.path.clone())], ..Batch::default() };
        if self.bucket_may_have(&rec) {
            batch
                .ops_add
                .push(BucketOp::Delete { bucket: ns.bucket().name().to_string(), key: publish_key(&ns, &rec) });
        }
        batch.puts.extend(Self::touched_dir(&ns, dir_rec.ino, now_ns));
        self.apply_namespace_change(op, &ns, batch, std::slice::from_ref(&rec)).await?;
        ns.listing_remove(dir_rec.ino, name).await;
        Ok(())
    }

    /// Commits a namespace change and applies it in memory: records, forgotten inodes (and
    /// their dirty extents), queued operations.
    async fn apply_namespace_change(
        &self,
        op: &'static str,
        ns: &Arc<Namespace>,
        batch: Batch,
        gone: &[Arc<InodeRecord>],
    ) -> Result<()> {
        let out = self.meta_commit(op, batch.clone()).await?;
        for rec in &batch.puts {
            ns.remember_record(rec.clone());
        }
        for rec in gone {
            ns.forget_ino(rec.ino);
            if let Some(fs) = self.writes.existing(rec.ino) {
                fs.changes.fetch_add(1, Ordering::Relaxed);
            }
            for (block, _) in self.writes.forget(rec.ino) {
                let _ = self.store().delete(blockstore::Key::new(rec.ino, block, rec.content_version));
            }
        }
        self.writes.publisher.add_ops(self, out.op_seqs.into_iter().zip(batch.ops_add));
        Ok(())
    }

    /// Renames `from_name` in `from_dir` to `to_name` in `to_dir`, replacing a file there (or an
    /// empty directory, for a directory). Atomic in the namespace at once.
    pub async fn rename(
        &self,
        from_dir: &FileHandle,
        from_name: &str,
        to_dir: &FileHandle,
        to_name: &str,
    ) -> Result<()> {
        let op = "rename";
        let (ns, src_dir) = self.dir_record(op, from_dir)?;
        let (dst_ns, dst_dir) = self.dir_record(op, to_dir)?;
        let from_path = Self::check_name(op, &ns, &src_dir, from_name)?;
        let to_path = Self::check_name(op, &dst_ns, &dst_dir, to_name)?;
        if dst_ns.export_id() != ns.export_id() {
            return Err(EngineError::CrossExport { op, path: ns.display(&from_path) });
        }
        let Some(src) = self.existing(&ns, &src_dir, from_name).await? else {
            return Err(EngineError::NotFound { op, path: ns.display(&from_path) });
        };
        if from_path == to_path {
            return Ok(());
        }
        if src.kind == Kind::Dir && (to_path.starts_with(&format!("{from_path}/"))) {
            return Err(EngineError::Invalid {
                op,
                path: ns.display(&to_path),
                detail: "a directory cannot move into itself".into(),
            });
        }
        let replaced = self.existing(&ns, &dst_dir, to_name).await?;
        if let Some(d) = &replaced {
            if d.ino == src.ino {
                return Ok(());
            }
            match (src.kind == Kind::Dir, d.kind == Kind::Dir) {
                (true, false) => return Err(EngineError::NotADirectory { op, path: ns.display(&to_path) }),
                (false, true) => return Err(EngineError::IsADirectory { op, path: ns.display(&to_path) }),
                (true, true) => {
                    if !ns.readdir(d.ino, 0, 1).await?.entries.is_empty() {
                        return Err(EngineError::NotEmpty { op, path: ns.display(&to_path) });
                    }
                }
                (false, false) => {}
            }
        }
        if src.kind == Kind::Dir {
            ns.load_subtree(op, &src).await?;
        }
        let bucket = ns.bucket().name().to_string();
        let moved = {
            let meta = self.meta().clone();
            let (export, path) = (ns.export_id(), src.path.clone());
            self.runtime_handle(op)?
                .spawn_blocking(move || meta.subtree(export, &path))
                .await
                .map_err(|_| EngineError::ShuttingDown { op })??
        };
        // The moved records as they are now (sizes of writes not yet committed included), with
        // those writes made durable first: the rename commits the records.
        let moved = self.settle_for_move(op, &ns, moved).await?;
        let now_ns = ns_from_time(SystemTime::now());
        let mut batch = Batch::default();
        let mut gone = Vec::new();
        // What the bucket holds at the destination key: the replaced entry's object.
        let mut dst_etag = None;
        if let Some(d) = &replaced {
            dst_etag = match &d.local {
                None => d.etag.clone(),
                Some(l) => l.bucket_etag.clone(),
            };
            batch.removes.push((ns.export_id(), d.path.clone()));
            gone.push(d.clone());
        }
        batch.moves.push((ns.export_id(), src.path.clone(), to_path.clone(), dst_dir.ino));
        for (i, rec) in moved.iter().enumerate() {
            let mut new = rec.clone();
            new.path = format!("{to_path}{}", &rec.path[src.path.len()..]);
            if i == 0 {
                new.parent = dst_dir.ino;
            }
            new.change += 1;
            let old_key = publish_key(&ns, rec);
            let new_key = publish_key(&ns, &new);
            let in_bucket = self.bucket_may_have(rec);
            let top_dst = if i == 0 { dst_etag.clone() } else { None };
            match rec.kind {
                Kind::Dir => {
                    batch.ops_add.push(BucketOp::Delete { bucket: bucket.clone(), key: old_key });
                    let mut local = new.local.take().unwrap_or_default();
                    local.modified = true;
                    new.local = Some(local);
                }
                Kind::File | Kind::Symlink => {
                    let base = match &rec.local {
                        None => Some(Base {
                            key: old_key.clone(),
                            etag: rec.etag.clone(),
                            version: rec.content_version,
                            size: rec.size,
                            valid: rec.size,
                        }),
                        Some(l) => l.base.clone(),
                    };
                    if base.is_some() {
                        batch.ops_add.push(BucketOp::Copy {
                            bucket: bucket.clone(),
                            from: old_key.clone(),
                            to: new_key.clone(),
                            etag: base.as_ref().and_then(|b| b.etag.clone()),
                            ino: rec.ino,
                        });
                    }
                    if in_bucket {
                        batch.ops_add.push(BucketOp::Delete { bucket: bucket.clone(), key: old_key });
                    }
                    let mut local = new.local.take().unwrap_or(Local { base: base.clone(), ..Local::default() });
                    local.bucket_etag = top_dst;
                    local.generation += 1;
                    new.local = Some(local);
                }
            }
            batch.puts.push(new);
        }
        batch.puts.extend(Self::touched_dir(&ns, src_dir.ino, now_ns));
        if dst_dir.ino != src_dir.ino {
            batch.puts.extend(Self::touched_dir(&ns, dst_dir.ino, now_ns));
        }
        let moved_inos: Vec<(u64, Kind)> = moved.iter().map(|r| (r.ino, r.kind)).collect();
        self.apply_namespace_change(op, &ns, batch, &gone).await?;
        ns.listing_remove(src_dir.ino, from_name).await;
        ns.listing_insert(dst_dir.ino, to_name, src.ino, src.kind).await;
        for (ino, kind) in moved_inos {
            let fs = self.writes.file(ino);
            fs.changes.fetch_add(1, Ordering::Relaxed);
            let delay = if kind == Kind::File && fs.inner().opens > 0 {
                self.writes.config.upload_delay_idle
            } else {
                self.writes.config.upload_delay_after_close
            };
            self.writes.schedule(&fs, delay);
        }
        self.writes.publisher.kick();
        Ok(())
    }
}
