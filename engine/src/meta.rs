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

/// Inode numbers below this are never allocated (0 is invalid everywhere; NFS readdir cookies 1
/// and 2 are reserved, and cookies are inode numbers).
pub const INO_FIRST: u64 = 16;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
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
                let old = old.filter(|o| o.kind == obs.kind);
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
    if rec.kind == Kind::File && obs.etag.is_some() && obs.etag != rec.etag {
        rec.content_version += 1;
        rec.etag = obs.etag.clone();
        rec.posix = None;
        rec.posix_etag = None;
    }
    if rec.kind == Kind::File {
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
