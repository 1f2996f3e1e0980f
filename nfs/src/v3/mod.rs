//! NFSv3 (RFC 1813) over the engine: program 100003, version 3.
//!
//! [`Nfs3`] is a [`Program`]: the transport's [`crate::service::RpcServer`] hands it calls. A
//! dispatch table maps each procedure number to its file here (decode the arguments, run,
//! encode the results). Arguments that do not decode are GARBAGE_ARGS, an unknown procedure is
//! PROC_UNAVAIL; nothing a client sends can panic the server ([`decode_args`] is the fuzzing
//! entry point).
//!
//! Every call that names a file handle goes through [`Ctx::target`]: the 29-byte engine handle
//! (anything else is NFS3ERR_BADHANDLE), its export (unknown: NFS3ERR_STALE), the export's
//! client list (outside it: NFS3ERR_ACCES) and the inode (gone: NFS3ERR_STALE). Procedures that
//! change something go through [`Ctx::target_to_change`]: a read-only export answers
//! NFS3ERR_ROFS before anything else is checked. Then permissions ([`perm`]: the caller after
//! root squash against the mode bits), then the engine's write path. Their replies carry
//! wcc_data: the attributes captured before the change and read again after it.
//!
//! Writes: WRITE goes to the engine at the stability asked (DATA_SYNC and FILE_SYNC come back
//! FILE_SYNC), COMMIT makes the file durable; both return the engine's write verifier, random
//! per engine start, so a client resends unstable data after a restart (the engine keeps a file's
//! unstable data until it is durable, failures included). NFSv3 has no close: the
//! engine publishes a file to the bucket once it has been idle (`upload_delay_idle`). Hard links
//! and device files are NFS3ERR_NOTSUPP (one object per file).
//!
//! Runs on: the core whose connection received the call (futures are not `Send`).

pub mod access;
pub mod attrs;
pub mod commit;
pub mod create;
pub mod dirlist;
pub mod dirop;
pub mod errors;
pub mod fsinfo;
pub mod fsstat;
pub mod getattr;
pub mod link;
pub mod lookup;
pub mod mkdir;
pub mod mknod;
pub mod null;
pub mod pathconf;
pub mod perm;
pub mod read;
pub mod readdir;
pub mod readdirplus;
pub mod readlink;
pub mod remove;
pub mod rename;
pub mod rmdir;
pub mod setattr;
pub mod symlink;
pub mod types;
pub mod write;

use std::sync::Arc;

use engine::meta::InodeRecord;
use engine::{Attr, Engine, FileHandle, Namespace};
use futures::future::LocalBoxFuture;

use crate::export::{Access, Exports, NfsExport};
use crate::rpc::{AcceptStat, Auth};
use crate::service::{Call, Program};
use crate::v3::attrs::Fattr3;
use crate::v3::errors::{engine_fail, Fail, Failure};
use crate::v3::perm::Creds;
use crate::v3::types::Nfsstat3;
use crate::xdr::{self, Reader, Writer, XdrError};

/// The NFSv3 program.
pub struct Nfs3 {
    exports: Exports,
}

impl Nfs3 {
    pub fn new(exports: Exports) -> Nfs3 {
        Nfs3 { exports }
    }

    pub fn exports(&self) -> &Exports {
        &self.exports
    }

    pub fn engine(&self) -> &Arc<Engine> {
        self.exports.engine()
    }
}

/// One call being served.
pub struct Ctx<'a> {
    pub nfs: &'a Nfs3,
    pub call: Call<'a>,
}

/// The object a file handle names, on an export the caller may reach.
pub struct Target<'a> {
    pub export: &'a NfsExport,
    pub access: Access,
    pub fh: FileHandle,
    pub rec: Arc<InodeRecord>,
}

impl Target<'_> {
    pub fn ns(&self) -> &Namespace {
        &self.export.ns
    }

    /// Attributes as last known (no revalidation).
    pub fn fattr(&self) -> Fattr3 {
        self.fattr_of(&self.ns().attr(&self.rec))
    }

    pub fn fattr_of(&self, attr: &Attr) -> Fattr3 {
        Fattr3::new(attr, self.ns().export_id())
    }

    /// Attributes as last known, in the engine's form.
    pub fn attr(&self) -> Attr {
        self.ns().attr(&self.rec)
    }

    /// The write verifier: the engine's, random per engine start.
    pub fn verifier(&self, nfs: &Nfs3) -> u64 {
        nfs.exports.engine().write_verifier()
    }

    /// Attributes as they are now (after a change); `None` when the object is gone.
    pub fn fattr_now(&self, proc_: &'static str) -> Option<Fattr3> {
        let rec = self.ns().resolve(proc_, &self.fh).ok()?;
        Some(self.fattr_of(&self.ns().attr(&rec)))
    }
}

impl<'a> Ctx<'a> {
    /// Resolves a file handle and checks the caller may reach its export.
    pub fn target(&self, proc_: &'static str, fh: &[u8]) -> Result<Target<'a>, Fail> {
        let fh = FileHandle::decode(fh).ok_or(Nfsstat3::Badhandle)?;
        let export = self.nfs.exports.by_id(fh.export).ok_or(Nfsstat3::Stale)?;
        let peer = self.call.conn.peer.ip();
        let access = export.access(peer);
        if access == Access::Denied {
            tracing::debug!(proc_, %peer, export = %export.policy.path, "client not in the export's client list");
            return Err(Fail::new(Nfsstat3::Acces));
        }
        let rec = export.ns.resolve(proc_, &fh).map_err(|e| engine_fail(proc_, &e, None))?;
        Ok(Target { export, access, fh, rec })
    }

    /// A target the call is to change: as [`Ctx::target`], then NFS3ERR_ROFS on a read-only
    /// export (with the object's attributes), before any other check.
    pub fn target_to_change(&self, proc_: &'static str, fh: &[u8]) -> Result<Target<'a>, Fail> {
        let t = self.target(proc_, fh)?;
        if !t.access.may_write() {
            tracing::debug!(proc_, peer = %self.call.conn.peer, export = %t.export.policy.path, "read-only export");
            return Err(Fail::with_attr(Nfsstat3::Rofs, Some(t.fattr())));
        }
        Ok(t)
    }

    pub fn engine(&self) -> &Arc<Engine> {
        self.nfs.engine()
    }

    /// The caller's identity on `export`, after root squash.
    pub fn creds(&self, export: &NfsExport) -> Creds {
        let (uid, gid) = export.creds(&self.call.header.auth);
        let gids = match &self.call.header.auth {
            Auth::Sys(s) if s.uid == uid => s.gids.clone(),
            _ => Vec::new(),
        };
        Creds { uid, gid, gids }
    }
}

/// One procedure: how its arguments decode and how it runs.
pub(crate) trait Procedure {
    const NAME: &'static str;
    type Args<'a>;
    fn decode<'a>(r: &mut Reader<'a>) -> xdr::Result<Self::Args<'a>>;
    /// Writes the results (status first); failures are results too.
    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer);
}

type ServeFn = for<'a> fn(&'a Ctx<'a>, &'a mut Writer) -> LocalBoxFuture<'a, xdr::Result<()>>;
type DecodeFn = fn(&[u8]) -> xdr::Result<()>;

struct Entry {
    name: &'static str,
    serve: ServeFn,
    decode: DecodeFn,
}

fn serve<'a, P: Procedure>(ctx: &'a Ctx<'a>, w: &'a mut Writer) -> LocalBoxFuture<'a, xdr::Result<()>> {
    Box::pin(async move {
        let mut r = Reader::new(ctx.call.args);
        let args = P::decode(&mut r)?;
        P::run(ctx, args, w).await;
        Ok(())
    })
}

fn decode_only<P: Procedure>(args: &[u8]) -> xdr::Result<()> {
    P::decode(&mut Reader::new(args)).map(drop)
}

const fn entry<P: Procedure>() -> Entry {
    Entry { name: P::NAME, serve: serve::<P>, decode: decode_only::<P> }
}

/// Procedure number → procedure (RFC 1813 order).
const TABLE: [Entry; 22] = [
    entry::<null::Null>(),
    entry::<getattr::Getattr>(),
    entry::<setattr::Setattr>(),
    entry::<lookup::Lookup>(),
    entry::<access::AccessProc>(),
    entry::<readlink::Readlink>(),
    entry::<read::Read>(),
    entry::<write::Write>(),
    entry::<create::Create>(),
    entry::<mkdir::Mkdir>(),
    entry::<symlink::Symlink>(),
    entry::<mknod::Mknod>(),
    entry::<remove::Remove>(),
    entry::<rmdir::Rmdir>(),
    entry::<rename::Rename>(),
    entry::<link::Link>(),
    entry::<readdir::Readdir>(),
    entry::<readdirplus::Readdirplus>(),
    entry::<fsstat::Fsstat>(),
    entry::<fsinfo::Fsinfo>(),
    entry::<pathconf::Pathconf>(),
    entry::<commit::Commit>(),
];

/// The name of procedure `proc_`, if it exists.
pub fn proc_name(proc_: u32) -> Option<&'static str> {
    TABLE.get(proc_ as usize).map(|e| e.name)
}

/// Decodes the arguments of procedure `proc_` and drops them (fuzzing, tests).
pub fn decode_args(proc_: u32, args: &[u8]) -> Result<(), XdrError> {
    match TABLE.get(proc_ as usize) {
        Some(e) => (e.decode)(args),
        None => Err(XdrError { what: "procedure", at: 0, why: "no such NFSv3 procedure" }),
    }
}

impl Program for Nfs3 {
    fn number(&self) -> u32 {
        types::PROGRAM
    }

    fn versions(&self) -> (u32, u32) {
        (types::VERSION, types::VERSION)
    }

    fn call<'a>(&'a self, call: Call<'a>, w: &'a mut Writer) -> LocalBoxFuture<'a, Result<(), AcceptStat>> {
        Box::pin(async move {
            let Some(entry) = TABLE.get(call.header.proc_ as usize) else {
                return Err(AcceptStat::ProcUnavail);
            };
            let ctx = Ctx { nfs: self, call };
            (entry.serve)(&ctx, w).await.map_err(|e| {
                tracing::debug!(peer = %call.conn.peer, xid = call.header.xid, proc_ = entry.name, error = %e, "garbage arguments");
                AcceptStat::GarbageArgs
            })
        })
    }
}

/// Writes a status and, for a success, what `ok` writes; for a failure, what `fail` writes.
pub(crate) fn put_result<T, F: Failure>(
    w: &mut Writer,
    result: Result<T, F>,
    ok: impl FnOnce(&mut Writer, T),
    fail: impl FnOnce(&mut Writer, F),
) {
    match result {
        Ok(v) => {
            w.put_u32(Nfsstat3::Ok.code());
            ok(w, v);
        }
        Err(f) => {
            w.put_u32(f.stat().code());
            fail(w, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::types::proc_;

    #[test]
    fn table_is_in_procedure_order() {
        let names = [
            (proc_::NULL, "NULL"),
            (proc_::GETATTR, "GETATTR"),
            (proc_::SETATTR, "SETATTR"),
            (proc_::LOOKUP, "LOOKUP"),
            (proc_::ACCESS, "ACCESS"),
            (proc_::READLINK, "READLINK"),
            (proc_::READ, "READ"),
            (proc_::WRITE, "WRITE"),
            (proc_::CREATE, "CREATE"),
            (proc_::MKDIR, "MKDIR"),
            (proc_::SYMLINK, "SYMLINK"),
            (proc_::MKNOD, "MKNOD"),
            (proc_::REMOVE, "REMOVE"),
            (proc_::RMDIR, "RMDIR"),
            (proc_::RENAME, "RENAME"),
            (proc_::LINK, "LINK"),
            (proc_::READDIR, "READDIR"),
            (proc_::READDIRPLUS, "READDIRPLUS"),
            (proc_::FSSTAT, "FSSTAT"),
            (proc_::FSINFO, "FSINFO"),
            (proc_::PATHCONF, "PATHCONF"),
            (proc_::COMMIT, "COMMIT"),
        ];
        for (n, name) in names {
            assert_eq!(proc_name(n), Some(name));
        }
        assert_eq!(proc_name(22), None);
        assert!(decode_args(22, &[]).is_err());
    }

    #[test]
    fn decoders_take_well_formed_args_and_refuse_short_ones() {
        let mut w = Writer::new();
        w.put_opaque(&[1u8; 29]); // fh
        w.put_u64(5); // offset
        w.put_u32(4096); // count
        let read = w.to_vec();
        assert!(decode_args(proc_::READ, &read).is_ok());
        assert!(decode_args(proc_::READ, &read[..read.len() - 1]).is_err());
        assert!(decode_args(proc_::COMMIT, &read).is_ok());
        // A handle longer than NFS3_FHSIZE is not XDR for nfs_fh3.
        let mut w = Writer::new();
        w.put_opaque(&[0u8; 65]);
        assert!(decode_args(proc_::GETATTR, &w.to_vec()).is_err());
        // WRITE: a stable_how out of range.
        let mut w = Writer::new();
        w.put_opaque(&[1u8; 29]);
        w.put_u64(0);
        w.put_u32(3);
        w.put_u32(3);
        w.put_opaque(b"abc");
        let mut write = w.to_vec();
        assert!(decode_args(proc_::WRITE, &write).is_err());
        write[4 + 32 + 8 + 4 + 3] = 2;
        assert!(decode_args(proc_::WRITE, &write).is_ok());
        assert!(decode_args(proc_::NULL, &[]).is_ok());
    }
}
