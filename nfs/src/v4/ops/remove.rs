//! REMOVE (RFC 8881 section 18.25): a file, symbolic link or empty directory out of the current
//! directory (a directory with entries is NFS4ERR_NOTEMPTY). Checks: ROFS, NOTDIR, the name,
//! the caller's `wx` on the directory and the sticky-bit rule (change.rs). The engine queues the
//! bucket's delete; a file still open elsewhere loses its data (its handle goes stale), as
//! object storage cannot keep an unlinked object. Answers the directory's change_info.

use crate::v4::change::{self, ChangeInfo};
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode<'a>(r: &mut Reader<'a>) -> xdr::Result<&'a [u8]> {
    r.opaque("remove target", usize::MAX)
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let raw = decode(r).map_err(|_| Status::BADXDR)?;
    let (dir, caller) = change::writable_dir(cx)?;
    let name = change::name(raw)?;
    let dir_attr = dir.attr();
    if dir_attr.mode & 0o1000 != 0 {
        let entry = change::entry(&dir, name).await?.ok_or(Status::NOENT)?;
        caller.may_unlink(&dir_attr, &entry.attr())?;
    }
    let ns = &dir.export.ns;
    let before = change::change_of(ns, dir.rec.ino);
    cx.server.exports.engine().remove(&dir.fh, name, None).await.map_err(|e| from_engine(&e))?;
    let after = change::change_of(ns, dir.rec.ino);
    tracing::debug!(peer = %cx.conn.peer, dir = dir.rec.ino, name, "REMOVE");
    ChangeInfo::around(before, after).encode(w);
    Ok(())
}
