//! What a file handle names, resolved for the calling client: a directory of the
//! pseudo-filesystem, or an inode of an export together with the export and what this client
//! may do there. Every operation that uses the current file handle goes through [`resolve`], so
//! the export's client list is checked at use (NFS4ERR_ACCESS for a client not in it) and a
//! handle of a removed or replaced inode is NFS4ERR_STALE.
//!
//! Also the attribute source ([`attrs::Object`]) of either kind, and the mode-bit permission
//! check shared by ACCESS and READ. Runs on the connection's core.

use std::sync::Arc;

use engine::meta::{InodeRecord, Kind};
use engine::{Attr, FileHandle};

use super::attrs::{self, Object};
use super::fh::Fh;
use super::status::from_engine;
use super::{Compound, Status};
use crate::export::{Access, NfsExport};

/// ACCESS4 bits (RFC 8881 section 18.1).
pub const ACCESS4_READ: u32 = 0x01;
pub const ACCESS4_LOOKUP: u32 = 0x02;
pub const ACCESS4_MODIFY: u32 = 0x04;
pub const ACCESS4_EXTEND: u32 = 0x08;
pub const ACCESS4_DELETE: u32 = 0x10;
pub const ACCESS4_EXECUTE: u32 = 0x20;
/// Every bit this server decides on.
pub const ACCESS4_ALL: u32 =
    ACCESS4_READ | ACCESS4_LOOKUP | ACCESS4_MODIFY | ACCESS4_EXTEND | ACCESS4_DELETE | ACCESS4_EXECUTE;

/// A resolved file handle.
#[derive(Clone)]
pub enum Node<'a> {
    /// A pseudo-filesystem directory (its node id).
    Pseudo(u32),
    Export(ExportNode<'a>),
}

/// An inode of an export.
#[derive(Clone)]
pub struct ExportNode<'a> {
    pub export: &'a NfsExport,
    pub access: Access,
    pub fh: FileHandle,
    pub rec: Arc<InodeRecord>,
}

impl Node<'_> {
    pub fn fh(&self) -> Fh {
        match self {
            Node::Pseudo(id) => Fh::Pseudo(*id),
            Node::Export(n) => Fh::Export(n.fh),
        }
    }

    pub fn is_dir(&self) -> bool {
        match self {
            Node::Pseudo(_) => true,
            Node::Export(n) => n.rec.kind == Kind::Dir,
        }
    }
}

/// Resolves a handle for this client. Pseudo handles of nodes that do not exist (the export
/// list changed) and engine handles of removed, replaced or unknown inodes are STALE.
pub fn resolve<'a>(cx: &Compound<'a>, fh: Fh) -> Result<Node<'a>, Status> {
    match fh {
        Fh::Pseudo(id) => match cx.server.pseudo.node(id) {
            Some(_) => Ok(Node::Pseudo(id)),
            None => Err(Status::STALE),
        },
        Fh::Export(fh) => {
            let (export, access) = cx.export(fh.export)?;
            let rec = export.ns.resolve("nfs4", &fh).map_err(|e| from_engine(&e))?;
            Ok(Node::Export(ExportNode { export, access, fh, rec }))
        }
    }
}

/// Resolves the current file handle.
pub fn current<'a>(cx: &Compound<'a>) -> Result<Node<'a>, Status> {
    resolve(cx, cx.current()?)
}

/// The export root's node for a client, as LOOKUP from the pseudo-filesystem enters it.
pub fn export_root<'a>(cx: &Compound<'a>, export_id: u32) -> Result<Node<'a>, Status> {
    let (export, access) = cx.export(export_id)?;
    let rec = export.ns.inode("nfs4 lookup", export.ns.root_ino()).map_err(|e| from_engine(&e))?;
    let fh = export.ns.handle(&rec);
    Ok(Node::Export(ExportNode { export, access, fh, rec }))
}

impl<'a> ExportNode<'a> {
    /// The node for another inode of the same export.
    pub fn with_record(&self, rec: Arc<InodeRecord>) -> ExportNode<'a> {
        ExportNode { export: self.export, access: self.access, fh: self.export.ns.handle(&rec), rec }
    }

    /// Attributes as last recorded (no bucket request).
    pub fn attr(&self) -> Attr {
        self.export.ns.attr(&self.rec)
    }

    /// Attributes revalidated as the export's listing TTL says (may HEAD or list).
    pub async fn fresh_attr(&self) -> Result<Attr, Status> {
        self.export.ns.getattr(self.rec.ino).await.map_err(|e| from_engine(&e))
    }

    pub fn object(&self, attr: &Attr) -> Object {
        Object::export(&self.export.ns, self.fh, attr)
    }
}

/// The attribute source of a node, revalidated (GETATTR, VERIFY).
pub async fn object(node: &Node<'_>) -> Result<Object, Status> {
    match node {
        Node::Pseudo(id) => Ok(Object::pseudo(*id)),
        Node::Export(n) => {
            let attr = n.fresh_attr().await?;
            Ok(n.object(&attr))
        }
    }
}

/// Which ACCESS4 bits of `want` the caller is granted, from the mode bits against its
/// credentials after root squash. Write bits only on an export this client may write.
pub fn permitted(cx: &Compound<'_>, node: &Node<'_>, want: u32) -> u32 {
    let n = match node {
        Node::Pseudo(_) => return want & (ACCESS4_READ | ACCESS4_LOOKUP),
        Node::Export(n) => n,
    };
    let attr = n.attr();
    let (uid, gid) = cx.creds(n.export);
    let gids: &[u32] = match cx.auth {
        crate::rpc::Auth::Sys(s) if uid == s.uid => &s.gids,
        _ => &[],
    };
    let bits = mode_bits(&attr, uid, gid, gids);
    let is_dir = attr.kind == Kind::Dir;
    let (r, wr, x) = (bits & 4 != 0, bits & 2 != 0, bits & 1 != 0);
    let mut granted = 0;
    if r {
        granted |= ACCESS4_READ;
    }
    if x {
        granted |= if is_dir { ACCESS4_LOOKUP } else { ACCESS4_EXECUTE };
    }
    if wr && n.access.may_write() {
        granted |= ACCESS4_MODIFY | ACCESS4_EXTEND;
        if is_dir {
            granted |= ACCESS4_DELETE;
        }
    }
    want & granted
}

/// The rwx bits that apply to (uid, gid, gids); root (unsquashed) reads and writes everything
/// and executes what anyone may execute (or any directory).
fn mode_bits(attr: &Attr, uid: u32, gid: u32, gids: &[u32]) -> u32 {
    let mode = attr.mode;
    if uid == 0 {
        let any_x = mode & 0o111 != 0 || attr.kind == Kind::Dir;
        return 0o6 | u32::from(any_x);
    }
    if uid == attr.uid {
        (mode >> 6) & 7
    } else if gid == attr.gid || gids.contains(&attr.gid) {
        (mode >> 3) & 7
    } else {
        mode & 7
    }
}

/// The attribute context of this COMPOUND.
pub fn attr_context(cx: &Compound<'_>) -> attrs::Context {
    let lease_seconds = u32::try_from(cx.server.state.config.lease.as_secs()).unwrap_or(u32::MAX);
    attrs::Context { minor: cx.minor, lease_seconds }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn attr(kind: Kind, mode: u32, uid: u32, gid: u32) -> Attr {
        Attr { ino: 20, kind, size: 0, mode, uid, gid, mtime: UNIX_EPOCH, change: 1, nlink: 1, etag: None }
    }

    #[test]
    fn mode_bits_by_class() {
        let a = attr(Kind::File, 0o640, 1000, 100);
        assert_eq!(mode_bits(&a, 1000, 5, &[]), 6);
        assert_eq!(mode_bits(&a, 1001, 100, &[]), 4);
        assert_eq!(mode_bits(&a, 1001, 5, &[100]), 4);
        assert_eq!(mode_bits(&a, 1001, 5, &[]), 0);
        assert_eq!(mode_bits(&a, 0, 0, &[]), 6);
        let x = attr(Kind::File, 0o700, 1000, 100);
        assert_eq!(mode_bits(&x, 0, 0, &[]), 7);
        let d = attr(Kind::Dir, 0o700, 1000, 100);
        assert_eq!(mode_bits(&d, 0, 0, &[]), 7);
    }
}
