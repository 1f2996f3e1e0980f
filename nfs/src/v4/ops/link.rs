//! LINK (RFC 8881 section 18.9): hard links cannot exist here — each file is one object in the
//! bucket, and two keys cannot share one object's bytes — so a LINK on a writable export is
//! NFS4ERR_NOTSUPP, logged with the reason (the engine's). `link_support` is false in the
//! attributes, so clients know before trying. On a read-only export (or in the
//! pseudo-filesystem) it is NFS4ERR_ROFS first; no saved handle is NFS4ERR_NOFILEHANDLE.

use crate::v4::change;
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode<'a>(r: &mut Reader<'a>) -> xdr::Result<&'a [u8]> {
    r.opaque("link newname", usize::MAX)
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    let raw = decode(r).map_err(|_| Status::BADXDR)?;
    let saved = cx.saved.ok_or(Status::NOFILEHANDLE)?;
    let dir = change::writable(cx, cx.current()?)?;
    let source = change::writable(cx, saved)?;
    if dir.rec.kind != engine::meta::Kind::Dir {
        return Err(Status::NOTDIR);
    }
    if source.fh.export != dir.fh.export {
        return Err(Status::XDEV);
    }
    change::name(raw)?;
    let e = match cx.server.exports.engine().link(&source.fh) {
        Err(e) => e,
        Ok(()) => return Err(Status::NOTSUPP),
    };
    tracing::info!(peer = %cx.conn.peer, error = %e, "LINK refused");
    Err(from_engine(&e))
}
