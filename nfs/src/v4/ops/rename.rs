//! RENAME (RFC 8881 section 18.26): `oldname` in the saved directory (SAVEFH) becomes `newname`
//! in the current one, replacing a file there (or an empty directory, for a directory).
//!
//! Checks: both handles set (NFS4ERR_NOFILEHANDLE), both of a writable export (NFS4ERR_ROFS),
//! both directories (NFS4ERR_NOTDIR), the same export (NFS4ERR_XDEV), the names, the caller's
//! `wx` on both directories, the sticky-bit rule for the entry moved and for one replaced. The
//! engine does the rest in one metadata transaction (a directory with everything under it) and
//! queues the bucket's copies and deletes. Answers both directories' change_info (the same
//! values twice for a rename within one directory).
//! Files being moved keep their unstable writes: the engine makes them durable with the rename.

use crate::v4::change::{self, Caller, ChangeInfo};
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};
use engine::meta::Kind;

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
    engine.rename(&from.fh, oldname, &to.fh, newname).await.map_err(|e| from_engine(&e))?;
    let (from_after, to_after) = (change::change_of(ns, from.rec.ino), change::change_of(ns, to.rec.ino));
    tracing::debug!(peer = %cx.conn.peer, from = from.rec.ino, oldname, to = to.rec.ino, newname, "RENAME");
    let source = ChangeInfo::around(from_before, from_after);
    let target = if same_dir { source } else { ChangeInfo::around(to_before, to_after) };
    source.encode(w);
    target.encode(w);
    Ok(())
}
