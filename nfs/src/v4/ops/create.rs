//! CREATE (RFC 8881 section 18.4): a directory (NF4DIR) or a symbolic link (NF4LNK) in the
//! current directory, which then becomes the current handle.
//!
//! Regular files are made by OPEN (NF4REG is NFS4ERR_BADTYPE, as are named attributes); device
//! files, sockets and FIFOs cannot be objects in a bucket: NFS4ERR_NOTSUPP (logged). Checks in
//! order: ROFS, NOTDIR, the type, the name, the attributes, the caller's `wx` on the directory
//! (change.rs); an existing name is NFS4ERR_EXIST. The new object belongs to the caller (after
//! root squash) unless `createattrs` name an owner, which only root may. `size` is not settable
//! here (NFS4ERR_INVAL). Answers the directory's change_info and the attributes set.

use crate::v4::attrs::{self, Fattr};
use crate::v4::change::{self, ChangeInfo};
use crate::v4::fh::Fh;
use crate::v4::settable;
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

/// nfs_ftype4.
pub const NF4REG: u32 = 1;
pub const NF4DIR: u32 = 2;
pub const NF4BLK: u32 = 3;
pub const NF4CHR: u32 = 4;
pub const NF4LNK: u32 = 5;
pub const NF4SOCK: u32 = 6;
pub const NF4FIFO: u32 = 7;
pub const NF4ATTRDIR: u32 = 8;
pub const NF4NAMEDATTR: u32 = 9;

/// Longest symbolic link target accepted (the engine's limit).
pub const LINK_BYTES_MAX: usize = 4096;

/// createtype4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjType<'a> {
    Link(&'a [u8]),
    Device {
        kind: u32,
        major: u32,
        minor: u32,
    },
    /// NF4DIR, NF4SOCK, NF4FIFO and anything else (void arms).
    Other(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args<'a> {
    pub objtype: ObjType<'a>,
    pub name: &'a [u8],
    pub attrs: Fattr<'a>,
}

pub fn decode<'a>(r: &mut Reader<'a>) -> xdr::Result<Args<'a>> {
    let objtype = match r.u32("createtype4")? {
        NF4LNK => ObjType::Link(r.opaque("linkdata", usize::MAX)?),
        kind @ (NF4BLK | NF4CHR) => ObjType::Device { kind, major: r.u32("specdata1")?, minor: r.u32("specdata2")? },
        other => ObjType::Other(other),
    };
    let name = r.opaque("objname", usize::MAX)?;
    let attrs = attrs::decode_fattr(r)?;
    Ok(Args { objtype, name, attrs })
}

impl Args<'_> {
    pub fn encode(&self, w: &mut Writer) {
        match self.objtype {
            ObjType::Link(target) => {
                w.put_u32(NF4LNK);
                w.put_opaque(target);
            }
            ObjType::Device { kind, major, minor } => {
                w.put_u32(kind);
                w.put_u32(major);
                w.put_u32(minor);
            }
            ObjType::Other(kind) => w.put_u32(kind),
        }
        w.put_opaque(self.name);
        self.attrs.mask.encode(w);
        w.put_opaque(self.attrs.vals);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(|_| Status::BADXDR)?;
    let dir = change::writable(cx, cx.current()?)?;
    if dir.rec.kind != engine::meta::Kind::Dir {
        return Err(Status::NOTDIR);
    }
    let target = match args.objtype {
        ObjType::Other(NF4DIR) => None,
        ObjType::Link(t) => {
            let t = std::str::from_utf8(t).map_err(|_| Status::INVAL)?;
            if t.is_empty() || t.contains('\0') {
                return Err(Status::INVAL);
            }
            if t.len() > LINK_BYTES_MAX {
                return Err(Status::NAMETOOLONG);
            }
            Some(t)
        }
        ObjType::Device { kind, .. } | ObjType::Other(kind @ (NF4SOCK | NF4FIFO)) => {
            tracing::info!(peer = %cx.conn.peer, kind, "CREATE of a special file refused: a bucket holds files, directories and symbolic links only");
            return Err(Status::NOTSUPP);
        }
        ObjType::Other(_) => return Err(Status::BADTYPE),
    };
    let name = change::name(args.name)?;
    let s = settable::decode(&args.attrs.mask, args.attrs.mask_beyond, args.attrs.vals)?;
    if s.size.is_some() {
        return Err(Status::INVAL);
    }
    let caller = change::Caller::of(cx, &dir);
    caller.may_change_entries(&dir.attr())?;
    let set = change::creation_attrs(&caller, &s)?;
    let engine = cx.server.exports.engine();
    let ns = &dir.export.ns;
    let before = change::change_of(ns, dir.rec.ino);
    let made = match target {
        None => engine.mkdir(&dir.fh, name, &set).await,
        Some(t) => engine.symlink(&dir.fh, name, t, &set).await,
    }
    .map_err(|e| from_engine(&e))?;
    let after = change::change_of(ns, dir.rec.ino);
    tracing::debug!(peer = %cx.conn.peer, dir = dir.rec.ino, name, ino = made.fh.ino, symlink = target.is_some(), "CREATE");
    cx.current = Some(Fh::Export(made.fh));
    ChangeInfo::around(before, after).encode(w);
    s.mask.encode(w);
    Ok(())
}
