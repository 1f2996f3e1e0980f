//! COMMIT (RFC 8881 section 18.3): makes everything written to the file durable and answers the
//! write verifier; the client compares it with its WRITEs' and sends again what was written
//! under another (a restart in between). The range is not used: the engine commits the whole
//! file (its partial blocks, its puts, the store flush, the record), which also covers it.
//!
//! A directory is NFS4ERR_ISDIR, a symbolic link NFS4ERR_INVAL. On a read-only export or in the
//! pseudo-filesystem nothing can have been written: the verifier is answered as it is.

use engine::meta::Kind;

use crate::v4::node::{self, Node};
use crate::v4::ops::write::verifier_bytes;
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub offset: u64,
    pub count: u32,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args { offset: r.u64("commit offset")?, count: r.u32("commit count")? })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        w.put_u64(self.offset);
        w.put_u32(self.count);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(|_| Status::BADXDR)?;
    let engine = cx.server.exports.engine();
    let n = match node::current(cx)? {
        Node::Pseudo(_) => return Err(Status::ISDIR),
        Node::Export(n) => n,
    };
    match n.rec.kind {
        Kind::File => {}
        Kind::Dir => return Err(Status::ISDIR),
        Kind::Symlink => return Err(Status::INVAL),
    }
    if args.offset.checked_add(u64::from(args.count)).is_none() {
        return Err(Status::INVAL);
    }
    let verifier = if n.access.may_write() {
        engine.commit(&n.fh).await.map_err(|e| from_engine(&e))?
    } else {
        engine.write_verifier()
    };
    w.put_opaque_fixed(&verifier_bytes(verifier));
    Ok(())
}
