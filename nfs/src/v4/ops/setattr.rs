//! SETATTR (RFC 8881 section 18.30): size, mode, owner, group and times (settable.rs says which
//! attributes and in what form), made durable by the engine before the reply.
//!
//! Checks, in order: ROFS (the pseudo-filesystem too), the attributes decode (BADXDR, INVAL for
//! read-only attributes, ATTRNOTSUPP, BADOWNER), a size only on a regular file (ISDIR for a
//! directory, INVAL otherwise) with a stateid good for writing (as WRITE: an open with write
//! access, or the anonymous stateid and `w` permission), and who may change what (change.rs:
//! mode and client times by the owner, owner by root, group by the owner to one of its
//! groups). `time_access_set` is accepted and not kept (no access times in object storage).
//!
//! SETATTR4res carries `attrsset` whatever the status: every attribute asked on success, none
//! after an error (nothing is applied unless everything may be).

use engine::meta::Kind;

use crate::v4::attrs::{self, Bitmap, Fattr, MAXFILESIZE_BYTES};
use crate::v4::change::{self, Caller};
use crate::v4::ops::write::file_for_change;
use crate::v4::settable;
use crate::v4::state::Stateid;
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args<'a> {
    pub stateid: Stateid,
    pub attrs: Fattr<'a>,
}

pub fn decode<'a>(r: &mut Reader<'a>) -> xdr::Result<Args<'a>> {
    Ok(Args { stateid: Stateid::decode(r)?, attrs: attrs::decode_fattr(r)? })
}

impl Args<'_> {
    pub fn encode(&self, w: &mut Writer) {
        self.stateid.encode(w);
        self.attrs.mask.encode(w);
        w.put_opaque(self.attrs.vals);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let out = run(cx, r).await;
    // attrsset follows the status either way.
    out.unwrap_or_default().encode(w);
    out.map(drop)
}

async fn run(cx: &mut Compound<'_>, r: &mut Reader<'_>) -> Result<Bitmap, Status> {
    let args = decode(r).map_err(|_| Status::BADXDR)?;
    let n = change::writable(cx, cx.current()?)?;
    let s = settable::decode(&args.attrs.mask, args.attrs.mask_beyond, args.attrs.vals)?;
    if let Some(size) = s.size {
        match n.rec.kind {
            Kind::File => {}
            Kind::Dir => return Err(Status::ISDIR),
            Kind::Symlink => return Err(Status::INVAL),
        }
        if size > MAXFILESIZE_BYTES {
            return Err(Status::FBIG);
        }
        file_for_change(cx, args.stateid)?;
    }
    let caller = Caller::of(cx, &n);
    change::may_set(&caller, &n.attr(), &s)?;
    let set = s.engine();
    if !set.is_empty() {
        let engine = cx.server.exports.engine();
        engine.setattr(&n.fh, &set).await.map_err(|e| from_engine(&e))?;
    }
    tracing::debug!(peer = %cx.conn.peer, ino = n.fh.ino, ?set, "SETATTR");
    Ok(s.mask)
}
