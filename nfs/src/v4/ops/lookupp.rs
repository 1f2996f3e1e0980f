//! LOOKUPP (RFC 8881 section 18.14): the parent directory. An export's root leads to the
//! pseudo directory it sits in; the pseudo root has no parent (NFS4ERR_NOENT). Also used by
//! SECINFO_NO_NAME.

use crate::v4::node::{self, Node};
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode(_r: &mut Reader<'_>) -> xdr::Result<()> {
    Ok(())
}

/// The parent of `dir`.
pub fn parent<'a>(cx: &Compound<'a>, dir: &Node<'a>) -> Result<Node<'a>, Status> {
    if !dir.is_dir() {
        return Err(Status::NOTDIR);
    }
    match dir {
        Node::Pseudo(0) => Err(Status::NOENT),
        Node::Pseudo(id) => cx.server.pseudo.node(*id).map(|n| Node::Pseudo(n.parent)).ok_or(Status::STALE),
        Node::Export(n) => {
            let ns = &n.export.ns;
            if n.rec.ino == ns.root_ino() {
                cx.server.pseudo.parent_of_export(ns.export_id()).map(Node::Pseudo).ok_or(Status::NOENT)
            } else {
                let rec = ns.inode("nfs4 lookupp", n.rec.parent).map_err(|e| from_engine(&e))?;
                Ok(Node::Export(n.with_record(rec)))
            }
        }
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    decode(r).map_err(|_| Status::BADXDR)?;
    let dir = node::current(cx)?;
    let up = parent(cx, &dir)?;
    cx.current = Some(up.fh());
    Ok(())
}
