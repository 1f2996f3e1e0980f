//! RENAME (RFC 8881 section 18.26): `oldname` in the saved directory (SAVEFH) becomes `newname`
//! in the current one, replacing a file there (or an empty directory, for a directory).
//!
//! Checks: both handles set (NFS4ERR_NOFILEHANDLE), both of a writable export (NFS4ERR_ROFS),
//! both directories (NFS4ERR_NOTDIR), the same export (NFS4ERR_XDEV), the names, the caller's
//! `wx` on both directories, the sticky-bit rule for the entry moved and for one replaced. The
//! engine does the rest in one metadata transaction (a directory with everything under it) and
//! queues the bucket's copies and deletes. Answers both directories' change_info (the same
//! values twice for a rename within one directory).
//!
//! Workaround: the engine's rename rebuilds the moved records from the metadata store, which
//! holds what was last committed, so a file written UNSTABLE and not yet committed would lose
//! its new size (and with it the data) when it, or a directory above it, is renamed. Until the
//! engine takes the in-memory records, every file being moved is committed first
//! ([`commit_moved`]; files without pending writes cost a table lookup). A write racing with
//! the rename can still be lost that way.

use std::sync::Arc;

use engine::meta::{InodeRecord, Kind};
use engine::{Engine, EngineError};

use crate::v4::change::{self, Caller, ChangeInfo};
use crate::v4::node::ExportNode;
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub oldname: &'a [u8],
    pub newname: &'a [u8],
}

pub fn decode<'a>(r: &mut Reader<'a>) -> xdr::Result<Args<'a>> {
    Ok(Args { oldname: r.opaque("rename oldname", usize::MAX)?, newname: r.opaque("rename newname", usize::MAX)? })
}

impl Args<'_> {
    pub fn encode(&self, w: &mut Writer) {
        w.put_opaque(self.oldname);
        w.put_opaque(self.newname);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(|_| Status::BADXDR)?;
    let saved = cx.saved.ok_or(Status::NOFILEHANDLE)?;
    let to = change::writable(cx, cx.current()?)?;
    let from = change::writable(cx, saved)?;
    if from.rec.kind != Kind::Dir || to.rec.kind != Kind::Dir {
        return Err(Status::NOTDIR);
    }
    if from.fh.export != to.fh.export {
        return Err(Status::XDEV);
    }
    let oldname = change::name(args.oldname)?;
    let newname = change::name(args.newname)?;
    let caller = Caller::of(cx, &from);
    let (from_attr, to_attr) = (from.attr(), to.attr());
    caller.may_change_entries(&from_attr)?;
    caller.may_change_entries(&to_attr)?;
    let moved = change::entry(&from, oldname).await?.ok_or(Status::NOENT)?;
    caller.may_unlink(&from_attr, &moved.attr())?;
    if to_attr.mode & 0o1000 != 0 {
        if let Some(replaced) = change::entry(&to, newname).await? {
            caller.may_unlink(&to_attr, &replaced.attr())?;
        }
    }
    let ns = &from.export.ns;
    let same_dir = from.rec.ino == to.rec.ino;
    let (from_before, to_before) = (change::change_of(ns, from.rec.ino), change::change_of(ns, to.rec.ino));
    let engine = cx.server.exports.engine();
    commit_moved(engine, &moved).await?;
    engine.rename(&from.fh, oldname, &to.fh, newname).await.map_err(|e| from_engine(&e))?;
    let (from_after, to_after) = (change::change_of(ns, from.rec.ino), change::change_of(ns, to.rec.ino));
    tracing::debug!(peer = %cx.conn.peer, from = from.rec.ino, oldname, to = to.rec.ino, newname, "RENAME");
    let source = ChangeInfo::around(from_before, from_after);
    let target = if same_dir { source } else { ChangeInfo::around(to_before, to_after) };
    source.encode(w);
    target.encode(w);
    Ok(())
}

/// Commits the file `moved`, or every file under the directory `moved` (see the module doc).
async fn commit_moved(engine: &Arc<Engine>, moved: &ExportNode<'_>) -> Result<(), Status> {
    let ns = &moved.export.ns;
    let files: Vec<InodeRecord> = match moved.rec.kind {
        Kind::Dir => {
            let (meta, export, path) = (engine.meta().clone(), ns.export_id(), moved.rec.path.clone());
            let rt = engine.runtime().ok_or(Status::DELAY)?;
            let all = rt.spawn_blocking(move || meta.subtree(export, &path)).await.map_err(|_| Status::DELAY)?;
            all.map_err(|e| from_engine(&e))?.into_iter().filter(|r| r.kind == Kind::File).collect()
        }
        Kind::File => vec![(*moved.rec).clone()],
        Kind::Symlink => Vec::new(),
    };
    for rec in files {
        match engine.commit(&ns.handle(&rec)).await {
            Ok(_) | Err(EngineError::NotFound { .. } | EngineError::Stale { .. } | EngineError::Unknown { .. }) => {}
            Err(e) => return Err(from_engine(&e)),
        }
    }
    Ok(())
}
