//! The durable metadata store: inode numbers, file-handle generations and what the engine knows of
//! each object (size, mtime, ETag, content version, POSIX attributes), so a restart keeps every
//! handle valid and every cached block addressable.
//!
//! Built on `redb` (pure Rust, ACID, copy-on-write B-trees, a commit is durable when it returns,
//! one writer at a time, the file locked against a second process). Why redb: see ARCHITECTURE.md.
//!
//! Tables:
//! - `settings`: store id (random, in every file handle), next inode number.
//! - `exports`: export name → export id.
//! - `paths`: (export id, path) → inode number. Paths are relative to the export's root, `/`
//!   separated, "" for the root itself.
//! - `inodes`: inode number → [`InodeRecord`] (JSON).
//! - `children`: (directory inode, name) → inode number.
//! - `ops`: sequence number → [`BucketOp`] (JSON): the durable queue of bucket operations the
//!   write path owes the bucket (copies and deletes of renames and removes), executed in order
//!   per key and removed when done.
//!
//! Runs on: the backfill runtime's blocking threads (every write transaction fsyncs).

use std::path::Path;

use rand::Rng;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

const SETTINGS: TableDefinition<&str, u64> = TableDefinition::new("settings");
const EXPORTS: TableDefinition<&str, u32> = TableDefinition::new("exports");
const PATHS: TableDefinition<(u32, &str), u64> = TableDefinition::new("paths");
const INODES: TableDefinition<u64, &[u8]> = TableDefinition::new("inodes");
const CHILDREN: TableDefinition<(u64, &str), u64> = TableDefinition::new("children");
const OPS: TableDefinition<u64, &[u8]> = TableDefinition::new("ops");

/// Inode numbers below this are never allocated (0 is invalid everywhere; NFS readdir cookies 1
/// and 2 are reserved, and cookies are inode numbers).
pub const INO_FIRST: u64 = 16;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// A symbolic link: its target is in [`InodeRecord::link`]; in the bucket it is an object
    /// whose body is the target and whose `mode` metadata has the S_IFLNK type bits (as s3fs
    /// writes them).
    Symlink,
}

/// POSIX attributes carried in object user metadata (`mode`, `uid`, `gid`, `mtime`, as s3fs and
/// rclone write them).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PosixAttrs {
    /// Permission bits only (`0o7777` at most).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime_ns: Option<i64>,
}

/// What the appliance keeps of one file or directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct InodeRecord {
    pub ino: u64,
    pub export: u32,
    pub parent: u64,
    /// Relative to the export's root; "" for the root.
    pub path: String,
    pub kind: Kind,
    /// Random at creation; part of the file handle, so a handle from before a reformat or of a
    /// removed file is recognised as stale.
    pub generation: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub etag: Option<String>,
    /// Bumped whenever the object's ETag changes: part of every cache key, so old bytes are never
    /// returned for a changed object.
    pub content_version: u64,
    /// Bumped on every change of anything here (the NFS `change` attribute).
    pub change: u64,
    /// POSIX attributes from user metadata, and the ETag they were read for.
    pub posix: Option<PosixAttrs>,
    pub posix_etag: Option<String>,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// What the bucket does not have yet: content written here, or a placement (create,
    /// rename) not yet published. While set, listings do not change the record and the
    /// uploader owes the bucket this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<Local>,
}

/// The local side of an entry the bucket does not match yet.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Local {
    /// Where bytes not written here come from: the object the content started from. `None` for
    /// a file created here (unwritten bytes are zeros).
    pub base: Option<Base>,
    /// The ETag the bucket is believed to hold at this entry's key (`None`: nothing there).
    /// The upload is conditional on it (`If-Match`, or `If-None-Match: *`).
    pub bucket_etag: Option<String>,
    /// Bumped by every change of content, size or placement: an upload is published only if
    /// the generation it started from is still current, so a file rewritten during its upload
    /// is uploaded again, never a mix.
    pub generation: u64,
    /// Bytes were written or the size changed (else publishing is a server-side copy from
    /// `base`, or nothing when `base` is already at the entry's key).
    pub modified: bool,
    /// A conflict that stopped the upload (the object changed in the bucket meanwhile): kept,
    /// reported, not retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
    /// The verifier of an exclusive create (NFS EXCLUSIVE4_1), so a retransmission succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_verifier: Option<u64>,
}

/// The bucket object a locally changed file started from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Base {
    pub key: String,
    pub etag: Option<String>,
    /// Its content version (the cache key's version of its blocks).
    pub version: u64,
    /// Its size.
    pub size: u64,
    /// Bytes `[0, valid)` of it are still the file's where not written over (a truncate
    /// lowers it; bytes beyond it read as zeros).
    pub valid: u64,
}

/// A bucket operation the write path owes the bucket, queued durably.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum BucketOp {
    /// Server-side copy (a rename of an entry the bucket has), conditional on the source ETag.
    /// `ino` is the renamed inode: when the copy is done its base moves to `to`.
    Copy { bucket: String, from: String, to: String, etag: Option<String>, ino: u64 },
    /// Delete a key (a removed entry, the source of a rename, a removed directory's marker).
    Delete { bucket: String, key: String },
}

impl BucketOp {
    /// The keys the operation touches: operations on one key run in queue order.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            BucketOp::Copy { from, to, .. } => vec![from.as_str(), to.as_str()],
            BucketOp::Delete { key, .. } => vec![key.as_str()],
        }
    }

    pub fn bucket(&self) -> &str {
        match self {
            BucketOp::Copy { bucket, .. } | BucketOp::Delete { bucket, .. } => bucket,
        }
    }
}

/// A new entry made here (create, mkdir, symlink).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEntry {
    pub export: u32,
    pub parent: u64,
    pub path: String,
    pub kind: Kind,
    pub mtime_ns: i64,
    pub posix: Option<PosixAttrs>,
    pub link: Option<String>,
    pub local: Local,
}

/// Changes made together in one durable transaction (the write path's namespace operations).
/// Applied in this order: `removes`, `moves`, `creates`, `puts`, then the queue changes.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// Paths forgotten with everything under them.
    pub removes: Vec<(u32, String)>,
    /// Subtrees renamed: (export, from, to, new parent inode).
    pub moves: Vec<(u32, String, String, u64)>,
    pub creates: Vec<NewEntry>,
    /// Records stored as they are (their paths must be current).
    pub puts: Vec<InodeRecord>,
    /// Bucket operations queued (sequence numbers are assigned in order).
    pub ops_add: Vec<BucketOp>,
    /// Bucket operations done.
    pub ops_done: Vec<u64>,
}

/// What a [`Batch`] did.
#[derive(Clone, Debug, Default)]
pub struct BatchOutcome {
    /// The records of `creates`, in order.
    pub created: Vec<InodeRecord>,
    /// Every record a move rewrote (new paths), the moved entry first.
    pub moved: Vec<InodeRecord>,
    /// The sequence numbers given to `ops_add`, in order.
    pub op_seqs: Vec<u64>,
}

/// What a listing or a HEAD says an entry is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub export: u32,
    pub parent: u64,
    pub path: String,
    pub kind: Kind,
    pub size: u64,
    pub mtime_ns: i64,
    pub etag: Option<String>,
    /// `Some` after a HEAD (user metadata read), `None` from a listing.
    pub posix: Option<PosixAttrs>,
}

/// The durable metadata store. Cheap to share (`Arc`); every method is a transaction.
pub struct MetaStore {
    db: Database,
    store_id: u64,
}

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore").field("store_id", &self.store_id).finish()
    }
}

fn err(op: &'static str) -> impl Fn(redb::Error) -> EngineError {
    crate::error::meta_err(op)
}

fn encode(rec: &InodeRecord) -> Result<Vec<u8>> {
    serde_json::to_vec(rec).map_err(|e| EngineError::Metadata { op: "encode inode", detail: e.to_string() })
}

fn decode(ino: u64, bytes: &[u8]) -> Result<InodeRecord> {
    serde_json::from_slice(bytes)
        .map_err(|e| EngineError::Metadata { op: "decode inode", detail: format!("inode {ino}: {e}") })
}

impl MetaStore {
    /// Opens (or creates) the store in `dir` (file `dir/meta.redb`). A second process opening the
    /// same store is refused.
    pub fn open(dir: &Path) -> Result<MetaStore> {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::Metadata {
            op: "open metadata store",
            detail: format!("{}: {e}", dir.display()),
        })?;
        let path = dir.join("meta.redb");
        let db = Database::create(&path).map_err(|e| EngineError::Metadata {
            op: "open metadata store",
            detail: format!("{}: {e}", path.display()),
        })?;
        let txn = db.begin_write().map_err(|e| err("open metadata store")(e.into()))?;
        let store_id = {
            let mut settings = txn.open_table(SETTINGS).map_err(|e| err("open metadata store")(e.into()))?;
            // Create the other tables so readers find them.
            txn.open_table(EXPORTS).map_err(|e| err("open metadata store")(e.into()))?;
            txn.open_table(PATHS).map_err(|e| err("open metadata store")(e.into()))?;
            txn.open_table(INODES).map_err(|e| err("open metadata store")(e.into()))?;
            txn.open_table(CHILDREN).map_err(|e| err("open metadata store")(e.into()))?;
            txn.open_table(OPS).map_err(|e| err("open metadata store")(e.into()))?;
            let existing =
                settings.get("store_id").map_err(|e| err("open metadata store")(e.into()))?.map(|v| v.value());
            match existing {
                Some(id) => id,
                None => {
                    let id = rand::rng().random::<u64>() | 1;
                    settings.insert("store_id", id).map_err(|e| err("open metadata store")(e.into()))?;
                    settings.insert("next_ino", INO_FIRST).map_err(|e| err("open metadata store")(e.into()))?;
                    id
                }
            }
        };
        txn.commit().map_err(|e| err("open metadata store")(e.into()))?;
        Ok(MetaStore { db, store_id })
    }

    /// Random at creation of the store; goes into file handles.
    pub fn store_id(&self) -> u64 {
        self.store_id
    }

    /// The id of export `name`, allocated on first use and kept.
    pub fn export_id(&self, name: &str) -> Result<u32> {
        let op = "export id";
        let txn = self.db.begin_write().map_err(|e| err(op)(e.into()))?;
        let id = {
            let mut exports = txn.open_table(EXPORTS).map_err(|e| err(op)(e.into()))?;
            let existing = exports.get(name).map_err(|e| err(op)(e.into()))?.map(|v| v.value());
            match existing {
                Some(id) => id,
                None => {
                    let mut next = 1u32;
                    for item in exports.iter().map_err(|e| err(op)(e.into()))? {
                        let (_, v) = item.map_err(|e| err(op)(e.into()))?;
                        next = next.max(v.value() + 1);
                    }
                    exports.insert(name, next).map_err(|e| err(op)(e.into()))?;
                    next
                }
            }
        };
        txn.commit().map_err(|e| err(op)(e.into()))?;
        Ok(id)
    }

    pub fn get(&self, ino: u64) -> Result<Option<InodeRecord>> {
        let op = "get inode";
        let txn = self.db.begin_read().map_err(|e| err(op)(e.into()))?;
        let inodes = txn.open_table(INODES).map_err(|e| err(op)(e.into()))?;
        let got = inodes.get(ino).map_err(|e| err(op)(e.into()))?;
        got.map(|v| decode(ino, v.value())).transpose()
    }

    pub fn lookup_path(&self, export: u32, path: &str) -> Result<Option<InodeRecord>> {
        let op = "lookup path";
        let txn = self.db.begin_read().map_err(|e| err(op)(e.into()))?;
        let paths = txn.open_table(PATHS).map_err(|e| err(op)(e.into()))?;
        let Some(ino) = paths.get((export, path)).map_err(|e| err(op)(e.into()))?.map(|v| v.value()) else {
            return Ok(None);
        };
        let inodes = txn.open_table(INODES).map_err(|e| err(op)(e.into()))?;
        let got = inodes.get(ino).map_err(|e| err(op)(e.into()))?;
        got.map(|v| decode(ino, v.value())).transpose()
    }

    /// Records what was observed and forgets what was removed, in one durable transaction.
    /// Returns the record of each observed entry, in order: a new entry gets a fresh inode
    /// number and generation; a known one keeps them, with its content version bumped when its
    /// ETag changed. An entry whose kind changed (a file became a directory) is a new inode.
    /// `removed` paths are forgotten with everything under them.
    pub fn apply(&self, observed: &[Observed], removed: &[(u32, String)]) -> Result<Vec<InodeRecord>> {
        let op = "update metadata";
        let e = err(op);
        let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        let mut out = Vec::with_capacity(observed.len());
        {
            let mut settings = txn.open_table(SETTINGS).map_err(|x| e(x.into()))?;
            let mut paths = txn.open_table(PATHS).map_err(|x| e(x.into()))?;
            let mut inodes = txn.open_table(INODES).map_err(|x| e(x.into()))?;
            let mut children = txn.open_table(CHILDREN).map_err(|x| e(x.into()))?;
            let mut t = Tables { paths: &mut paths, inodes: &mut inodes, children: &mut children };
            for (export, path) in removed {
                t.forget(*export, path).map_err(&e)?;
            }
            let mut next_ino = settings.get("next_ino").map_err(|x| e(x.into()))?.map_or(INO_FIRST, |v| v.value());
            let next_ino_before = next_ino;
            let mut rng = rand::rng();
            for obs in observed {
                let known = t.paths.get((obs.export, obs.path.as_str())).map_err(|x| e(x.into()))?.map(|v| v.value());
                let old = match known {
                    Some(ino) => {
                        let got = t.inodes.get(ino).map_err(|x| e(x.into()))?;
                        got.map(|v| decode(ino, v.value())).transpose()?
                    }
                    None => None,
                };
                if let Some(o) = old.as_ref().filter(|o| o.local.is_some()) {
                    // Changed here and not yet published: the appliance's view wins.
                    out.push(o.clone());
                    continue;
                }
                // A listing cannot tell a symlink object from a file: a known symlink stays one.
                let old = old.filter(|o| o.kind == obs.kind || (o.kind == Kind::Symlink && obs.kind == Kind::File));
                let (rec, changed) = match old {
                    Some(old) => merge(old, obs),
                    None => {
                        if let Some(stale) = known {
                            // Same path, other kind: the old inode and its subtree go.
                            t.forget(obs.export, &obs.path).map_err(&e)?;
                            tracing::debug!(ino = stale, path = %obs.path, "kind changed; new inode");
                        }
                        let ino = next_ino;
                        next_ino += 1;
                        let rec = InodeRecord {
                            ino,
                            export: obs.export,
                            parent: obs.parent,
                            path: obs.path.clone(),
                            kind: obs.kind,
                            generation: rng.random::<u64>() | 1,
                            size: obs.size,
                            mtime_ns: obs.mtime_ns,
                            etag: obs.etag.clone(),
                            content_version: 1,
                            change: 1,
                            posix: obs.posix,
                            posix_etag: obs.posix.and(obs.etag.clone()),
                            link: None,
                            local: None,
                        };
                        t.paths.insert((obs.export, obs.path.as_str()), ino).map_err(|x| e(x.into()))?;
                        if !obs.path.is_empty() {
                            t.children.insert((obs.parent, base_name(&obs.path)), ino).map_err(|x| e(x.into()))?;
                        }
                        (rec, true)
                    }
                };
                if changed {
                    t.inodes.insert(rec.ino, encode(&rec)?.as_slice()).map_err(|x| e(x.into()))?;
                }
                out.push(rec);
            }
            if next_ino != next_ino_before {
                settings.insert("next_ino", next_ino).map_err(|x| e(x.into()))?;
            }
        }
        txn.commit().map_err(|x| e(x.into()))?;
        Ok(out)
    }

    /// The entries of directory `dir` as last recorded: (name, inode number).
    pub fn children(&self, dir: u64) -> Result<Vec<(String, u64)>> {
        let op = "list children";
        let txn = self.db.begin_read().map_err(|e| err(op)(e.into()))?;
        let children = txn.open_table(CHILDREN).map_err(|e| err(op)(e.into()))?;
        let mut out = Vec::new();
        for item in children.range((dir, "")..(dir + 1, "")).map_err(|e| err(op)(e.into()))? {
            let (k, v) = item.map_err(|e| err(op)(e.into()))?;
            out.push((k.value().1.to_string(), v.value()));
        }
        Ok(out)
    }

    /// Marks directory `ino` as changed (its entries changed): new mtime, `change` bumped.
    pub fn touch(&self, ino: u64, mtime_ns: i64) -> Result<Option<InodeRecord>> {
        let op = "touch directory";
        let e = err(op);
        let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        let rec = {
            let mut inodes = txn.open_table(INODES).map_err(|x| e(x.into()))?;
            let got = inodes.get(ino).map_err(|x| e(x.into()))?.map(|v| decode(ino, v.value())).transpose()?;
            match got {
                Some(mut rec) => {
                    rec.mtime_ns = mtime_ns;
                    rec.change += 1;
                    inodes.insert(ino, encode(&rec)?.as_slice()).map_err(|x| e(x.into()))?;
                    Some(rec)
                }
                None => None,
            }
        };
        txn.commit().map_err(|x| e(x.into()))?;
        Ok(rec)
    }

    /// Applies `batch` in one durable transaction (see [`Batch`] for the order).
    pub fn commit(&self, batch: &Batch) -> Result<BatchOutcome> {
        let op = "commit metadata";
        let e = err(op);
        let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        let mut out = BatchOutcome::default();
        {
            let mut settings = txn.open_table(SETTINGS).map_err(|x| e(x.into()))?;
            let mut paths = txn.open_table(PATHS).map_err(|x| e(x.into()))?;
            let mut inodes = txn.open_table(INODES).map_err(|x| e(x.into()))?;
            let mut children = txn.open_table(CHILDREN).map_err(|x| e(x.into()))?;
            let mut ops = txn.open_table(OPS).map_err(|x| e(x.into()))?;
            let mut t = Tables { paths: &mut paths, inodes: &mut inodes, children: &mut children };
            for (export, path) in &batch.removes {
                t.forget(*export, path).map_err(&e)?;
            }
            for (export, from, to, parent) in &batch.moves {
                out.moved.extend(t.rename(*export, from, to, *parent).map_err(&e)?);
            }
            if !batch.creates.is_empty() {
                let mut next_ino = settings.get("next_ino").map_err(|x| e(x.into()))?.map_or(INO_FIRST, |v| v.value());
                let mut rng = rand::rng();
                for c in &batch.creates {
                    if t.paths.get((c.export, c.path.as_str())).map_err(|x| e(x.into()))?.is_some() {
                        return Err(EngineError::Metadata {
                            op,
                            detail: format!("create {}: the path is taken", c.path),
                        });
                    }
                    let rec = InodeRecord {
                        ino: next_ino,
                        export: c.export,
                        parent: c.parent,
                        path: c.path.clone(),
                        kind: c.kind,
                        generation: rng.random::<u64>() | 1,
                        size: 0,
                        mtime_ns: c.mtime_ns,
                        etag: None,
                        content_version: 1,
                        change: 1,
                        posix: c.posix,
                        posix_etag: None,
                        link: c.link.clone(),
                        local: Some(c.local.clone()),
                    };
                    next_ino += 1;
                    t.paths.insert((c.export, c.path.as_str()), rec.ino).map_err(|x| e(x.into()))?;
                    t.children.insert((c.parent, base_name(&c.path)), rec.ino).map_err(|x| e(x.into()))?;
                    t.inodes.insert(rec.ino, encode(&rec)?.as_slice()).map_err(|x| e(x.into()))?;
                    out.created.push(rec);
                }
                settings.insert("next_ino", next_ino).map_err(|x| e(x.into()))?;
            }
            for rec in &batch.puts {
                t.inodes.insert(rec.ino, encode(rec)?.as_slice()).map_err(|x| e(x.into()))?;
            }
            if !batch.ops_add.is_empty() {
                let mut next_seq = ops.last().map_err(|x| e(x.into()))?.map_or(1, |(k, _)| k.value() + 1);
                let floor = settings.get("next_op").map_err(|x| e(x.into()))?.map_or(1, |v| v.value());
                next_seq = next_seq.max(floor);
                for bop in &batch.ops_add {
                    let bytes = serde_json::to_vec(bop)
                        .map_err(|x| EngineError::Metadata { op, detail: format!("encode bucket op: {x}") })?;
                    ops.insert(next_seq, bytes.as_slice()).map_err(|x| e(x.into()))?;
                    out.op_seqs.push(next_seq);
                    next_seq += 1;
                }
                settings.insert("next_op", next_seq).map_err(|x| e(x.into()))?;
            }
            for seq in &batch.ops_done {
                ops.remove(*seq).map_err(|x| e(x.into()))?;
            }
        }
        txn.commit().map_err(|x| e(x.into()))?;
        Ok(out)
    }

    /// The queued bucket operations, in order.
    pub fn bucket_ops(&self) -> Result<Vec<(u64, BucketOp)>> {
        let op = "read bucket ops";
        let txn = self.db.begin_read().map_err(|e| err(op)(e.into()))?;
        let ops = txn.open_table(OPS).map_err(|e| err(op)(e.into()))?;
        let mut out = Vec::new();
        for item in ops.iter().map_err(|e| err(op)(e.into()))? {
            let (k, v) = item.map_err(|e| err(op)(e.into()))?;
            let bop = serde_json::from_slice(v.value())
                .map_err(|x| EngineError::Metadata { op, detail: format!("bucket op {}: {x}", k.value()) })?;
            out.push((k.value(), bop));
        }
        Ok(out)
    }

    /// The record at `path` and every record below it, the entry itself first.
    pub fn subtree(&self, export: u32, path: &str) -> Result<Vec<InodeRecord>> {
        let op = "read subtree";
        let txn = self.db.begin_read().map_err(|e| err(op)(e.into()))?;
        let paths = txn.open_table(PATHS).map_err(|e| err(op)(e.into()))?;
        let inodes = txn.open_table(INODES).map_err(|e| err(op)(e.into()))?;
        let mut inos = Vec::new();
        if let Some(v) = paths.get((export, path)).map_err(|e| err(op)(e.into()))? {
            inos.push(v.value());
        }
        let under = if path.is_empty() { String::new() } else { format!("{path}/") };
        let end = format!("{under}\u{10FFFF}");
        for item in paths.range((export, under.as_str())..(export, end.as_str())).map_err(|e| err(op)(e.into()))? {
            let (_, v) = item.map_err(|e| err(op)(e.into()))?;
            inos.push(v.value());
        }
        let mut out = Vec::with_capacity(inos.len());
        for ino in inos {
            if let Some(v) = inodes.get(ino).map_err(|e| err(op)(e.into()))? {
                out.push(decode(ino, v.value())?);
            }
        }
        Ok(out)
    }

    /// Every record with local state (changed here, not yet published): the uploader's work
    /// after a restart.
    pub fn local_records(&self) -> Result<Vec<InodeRecord>> {
        let op = "read local records";
        let txn = self.db.begin_read().map_err(|e| err(op)(e.into()))?;
        let inodes = txn.open_table(INODES).map_err(|e| err(op)(e.into()))?;
        let mut out = Vec::new();
        for item in inodes.iter().map_err(|e| err(op)(e.into()))? {
            let (k, v) = item.map_err(|e| err(op)(e.into()))?;
            // Cheap filter before decoding every record.
            if !v.value().windows(8).any(|w| w == b"\"local\":") {
                continue;
            }
            let rec = decode(k.value(), v.value())?;
            if rec.local.is_some() {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Number of inodes known (for stats and tests).
    pub fn inode_count(&self) -> Result<u64> {
        let op = "count inodes";
        let txn = self.db.begin_read().map_err(|e| err(op)(e.into()))?;
        let inodes = txn.open_table(INODES).map_err(|e| err(op)(e.into()))?;
        inodes.len().map_err(|e| err(op)(e.into()))
    }
}

/// Folds an observation into a known record; says whether anything changed.
fn merge(mut rec: InodeRecord, obs: &Observed) -> (InodeRecord, bool) {
    let before = rec.clone();
    if rec.local.is_some() {
        // Changed here and not yet published: the appliance's view wins until it is.
        return (rec, false);
    }
    if rec.kind != Kind::Dir && obs.etag.is_some() && obs.etag != rec.etag {
        rec.content_version += 1;
        rec.etag = obs.etag.clone();
        rec.posix = None;
        rec.posix_etag = None;
    }
    if rec.kind != Kind::Dir {
        // A directory's size and mtime are the appliance's (see `touch`), not the listing's.
        rec.size = obs.size;
        rec.mtime_ns = obs.mtime_ns;
    }
    rec.parent = obs.parent;
    if obs.posix.is_some() {
        rec.posix = obs.posix;
        rec.posix_etag = rec.etag.clone();
    }
    let changed = rec != before;
    if changed {
        rec.change += 1;
    }
    (rec, changed)
}

/// The last component of a path.
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

struct Tables<'a, 'txn> {
    paths: &'a mut redb::Table<'txn, (u32, &'static str), u64>,
    inodes: &'a mut redb::Table<'txn, u64, &'static [u8]>,
    children: &'a mut redb::Table<'txn, (u64, &'static str), u64>,
}

impl Tables<'_, '_> {
    /// Removes `path` and every path under it.
    /// Renames `from` (and everything under it) to `to` below `parent`; `to` must be free.
    /// Returns the rewritten records, the moved entry first.
    fn rename(
        &mut self,
        export: u32,
        from: &str,
        to: &str,
        parent: u64,
    ) -> std::result::Result<Vec<InodeRecord>, redb::Error> {
        let under = format!("{from}/");
        let end = format!("{under}\u{10FFFF}");
        let mut moving = Vec::new();
        let Some(top) = self.paths.get((export, from))?.map(|v| v.value()) else {
            return Err(redb::Error::Corrupted(format!("rename {from}: no such path")));
        };
        moving.push((from.to_string(), top));
        for item in self.paths.range((export, under.as_str())..(export, end.as_str()))? {
            let (k, v) = item?;
            moving.push((k.value().1.to_string(), v.value()));
        }
        let mut out = Vec::with_capacity(moving.len());
        for (i, (old_path, ino)) in moving.into_iter().enumerate() {
            let new_path = format!("{to}{}", &old_path[from.len()..]);
            self.paths.remove((export, old_path.as_str()))?;
            self.paths.insert((export, new_path.as_str()), ino)?;
            let got = self.inodes.get(ino)?.map(|v| decode(ino, v.value()));
            let Some(Ok(mut rec)) = got else { continue };
            if i == 0 {
                self.children.remove((rec.parent, base_name(&old_path)))?;
                self.children.insert((parent, base_name(&new_path)), ino)?;
                rec.parent = parent;
            }
            rec.path = new_path;
            rec.change += 1;
            let bytes = encode(&rec).map_err(|x| redb::Error::Corrupted(x.to_string()))?;
            self.inodes.insert(ino, bytes.as_slice())?;
            out.push(rec);
        }
        Ok(out)
    }

    fn forget(&mut self, export: u32, path: &str) -> std::result::Result<(), redb::Error> {
        let under = if path.is_empty() { String::new() } else { format!("{path}/") };
        let end = format!("{under}\u{10FFFF}");
        let mut doomed = Vec::new();
        if let Some(ino) = self.paths.get((export, path))?.map(|v| v.value()) {
            doomed.push((path.to_string(), ino));
        }
        for item in self.paths.range((export, under.as_str())..(export, end.as_str()))? {
            let (k, v) = item?;
            doomed.push((k.value().1.to_string(), v.value()));
        }
        for (p, ino) in doomed {
            self.paths.remove((export, p.as_str()))?;
            let parent = self.inodes.remove(ino)?.and_then(|v| decode(ino, v.value()).ok()).map(|r| r.parent);
            if let (Some(parent), false) = (parent, p.is_empty()) {
                self.children.remove((parent, base_name(&p)))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(path: &str, kind: Kind, etag: &str) -> Observed {
        Observed {
            export: 1,
            parent: 0,
            path: path.into(),
            kind,
            size: 5,
            mtime_ns: 7,
            etag: Some(etag.into()),
            posix: None,
        }
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("bucketfs-meta-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn inode_numbers_and_generations_survive_reopen() {
        let dir = temp_dir("reopen");
        let (id, recs) = {
            let m = MetaStore::open(&dir).unwrap();
            let recs = m.apply(&[obs("a", Kind::File, "e1"), obs("d", Kind::Dir, "")], &[]).unwrap();
            (m.store_id(), recs)
        };
        let m = MetaStore::open(&dir).unwrap();
        assert_eq!(m.store_id(), id);
        assert_eq!(m.get(recs[0].ino).unwrap().unwrap(), recs[0]);
        assert_eq!(m.lookup_path(1, "d").unwrap().unwrap(), recs[1]);
        // New inodes continue after the old ones.
        let more = m.apply(&[obs("b", Kind::File, "e1")], &[]).unwrap();
        assert!(more[0].ino > recs[1].ino);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn etag_change_bumps_content_version_and_change_keeps_ino() {
        let dir = temp_dir("etag");
        let m = MetaStore::open(&dir).unwrap();
        let a = m.apply(&[obs("a", Kind::File, "e1")], &[]).unwrap().remove(0);
        let same = m.apply(&[obs("a", Kind::File, "e1")], &[]).unwrap().remove(0);
        assert_eq!(same, a);
        let b = m.apply(&[obs("a", Kind::File, "e2")], &[]).unwrap().remove(0);
        assert_eq!((b.ino, b.generation), (a.ino, a.generation));
        assert_eq!(b.content_version, a.content_version + 1);
        assert!(b.change > a.change);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn removing_a_directory_forgets_its_subtree_and_kind_change_is_a_new_inode() {
        let dir = temp_dir("remove");
        let m = MetaStore::open(&dir).unwrap();
        let recs =
            m.apply(&[obs("d", Kind::Dir, ""), obs("d/x", Kind::File, "e"), obs("dx", Kind::File, "e")], &[]).unwrap();
        m.apply(&[], &[(1, "d".into())]).unwrap();
        assert!(m.get(recs[0].ino).unwrap().is_none());
        assert!(m.get(recs[1].ino).unwrap().is_none());
        assert!(m.lookup_path(1, "dx").unwrap().is_some(), "a sibling sharing the prefix stays");
        assert_eq!(m.children(0).unwrap(), vec![("dx".to_string(), recs[2].ino)]);
        let f = m.apply(&[obs("dx", Kind::Dir, "")], &[]).unwrap().remove(0);
        assert_eq!(m.children(0).unwrap(), vec![("dx".to_string(), f.ino)]);
        assert_ne!(f.ino, recs[2].ino);
        assert!(m.get(recs[2].ino).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_second_open_of_the_same_store_is_refused() {
        let dir = temp_dir("lock");
        let _m = MetaStore::open(&dir).unwrap();
        let e = MetaStore::open(&dir).unwrap_err().to_string();
        assert!(e.contains("meta.redb"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn exports_get_stable_ids() {
        let dir = temp_dir("exports");
        let m = MetaStore::open(&dir).unwrap();
        let a = m.export_id("/a").unwrap();
        let b = m.export_id("/b").unwrap();
        assert_ne!(a, b);
        assert_eq!(m.export_id("/a").unwrap(), a);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
