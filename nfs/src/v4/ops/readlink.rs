//! READLINK (RFC 8881 section 18.24, RFC 7530 section 16.25): a symbolic link's target, from
//! its record (links made here) or its object's body (links written by s3fs-style tools).
//! Anything else: a directory is NFS4ERR_ISDIR, other objects NFS4ERR_WRONG_TYPE in NFSv4.1+
//! and NFS4ERR_INVAL in NFSv4.0 (which has no WRONG_TYPE).

use engine::meta::Kind;

use crate::v4::node::{self, Node};
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode(_r: &mut Reader<'_>) -> xdr::Result<()> {
    Ok(())
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    decode(r).map_err(|_| Status::BADXDR)?;
    let n = match node::current(cx)? {
        Node::Pseudo(_) => return Err(Status::ISDIR),
        Node::Export(n) => n,
    };
    match n.rec.kind {
        Kind::Symlink => {}
        Kind::Dir => return Err(Status::ISDIR),
        Kind::File if cx.minor == 0 => return Err(Status::INVAL),
        Kind::File => return Err(Status::WRONG_TYPE),
    }
    let target = cx.server.exports.engine().readlink(&n.fh).await.map_err(|e| from_engine(&e))?;
    w.put_string(&target);
    Ok(())
}
