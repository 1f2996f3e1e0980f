//! MOUNT (RFC 1813 appendix I): program 100005, versions 1 to 3. Clients of NFSv3 ask it for an
//! export's root handle (MNT) before any NFS call; it also lists exports (EXPORT, what
//! `showmount -e` shows) and the mounts it has handed out (DUMP).
//!
//! MNT takes an export's path or a directory below it (`/data/sub`). Its handle is the engine's
//! 29-byte handle, so only version 3 serves MNT (versions 1 and 2 carry 32-byte handles for
//! NFSv2, which is not served: PROC_UNAVAIL); every other procedure has the same form in all
//! three versions. Mounts are remembered per client address (at most [`MOUNTS_MAX`]) only to
//! answer DUMP: a client that never unmounts keeps its entry, as with every MOUNT server.
//!
//! Runs on: the core of the calling connection; the mount list is behind a mutex.

pub mod dump;
pub mod export;
pub mod mnt;
pub mod umnt;
pub mod umntall;

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use futures::future::LocalBoxFuture;

use crate::export::Exports;
use crate::rpc::AcceptStat;
use crate::service::{Call, Program};
use crate::xdr::{Reader, Writer, XdrError};

pub const PROGRAM: u32 = 100_005;
/// Longest path (MNTPATHLEN) and host name (MNTNAMLEN).
pub const PATH_BYTES_MAX: usize = 1024;
pub const NAME_BYTES_MAX: usize = 255;
/// Mounts remembered for DUMP.
pub const MOUNTS_MAX: usize = 4096;

/// Procedure numbers.
pub mod proc_ {
    pub const NULL: u32 = 0;
    pub const MNT: u32 = 1;
    pub const DUMP: u32 = 2;
    pub const UMNT: u32 = 3;
    pub const UMNTALL: u32 = 4;
    pub const EXPORT: u32 = 5;
}

/// mountstat3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MountStat {
    Ok = 0,
    Perm = 1,
    Noent = 2,
    Io = 5,
    Acces = 13,
    Notdir = 20,
    Inval = 22,
    Nametoolong = 63,
    Notsupp = 10004,
    Serverfault = 10006,
}

/// A mount handed out: the client's address and the path it mounted.
pub type MountEntry = (String, String);

/// The MOUNT program.
pub struct Mount {
    exports: Exports,
    mounts: Mutex<BTreeSet<MountEntry>>,
}

impl Mount {
    pub fn new(exports: Exports) -> Mount {
        Mount { exports, mounts: Mutex::new(BTreeSet::new()) }
    }

    pub fn exports(&self) -> &Exports {
        &self.exports
    }

    fn mounts(&self) -> MutexGuard<'_, BTreeSet<MountEntry>> {
        // Every change under the lock is one insert or remove: a poisoned set is consistent.
        self.mounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The mounts handed out and not yet unmounted.
    pub fn mount_list(&self) -> Vec<MountEntry> {
        self.mounts().iter().cloned().collect()
    }
}

/// A directory path as sent (bytes: a path that is not UTF-8 names no export).
pub fn decode_path<'a>(r: &mut Reader<'a>) -> crate::xdr::Result<&'a [u8]> {
    r.opaque("dirpath", PATH_BYTES_MAX)
}

/// Decodes the arguments of procedure `proc_` and drops them (fuzzing, tests).
pub fn decode_args(proc_: u32, args: &[u8]) -> Result<(), XdrError> {
    let mut r = Reader::new(args);
    match proc_ {
        proc_::NULL | proc_::DUMP | proc_::UMNTALL | proc_::EXPORT => Ok(()),
        proc_::MNT => mnt::Args::decode(&mut r).map(drop),
        proc_::UMNT => umnt::Args::decode(&mut r).map(drop),
        _ => Err(XdrError { what: "procedure", at: 0, why: "no such MOUNT procedure" }),
    }
}

impl Program for Mount {
    fn number(&self) -> u32 {
        PROGRAM
    }

    fn versions(&self) -> (u32, u32) {
        (1, 3)
    }

    fn call<'a>(&'a self, call: Call<'a>, w: &'a mut Writer) -> LocalBoxFuture<'a, Result<(), AcceptStat>> {
        Box::pin(async move {
            let garbage = |e: XdrError| {
                tracing::debug!(peer = %call.conn.peer, xid = call.header.xid, proc_ = call.header.proc_, error = %e, "MOUNT: garbage arguments");
                AcceptStat::GarbageArgs
            };
            match call.header.proc_ {
                proc_::NULL => Ok(()),
                proc_::MNT if call.header.vers == 3 => mnt::serve(self, &call, w).await.map_err(garbage),
                proc_::DUMP => {
                    dump::serve(self, w);
                    Ok(())
                }
                proc_::UMNT => umnt::serve(self, &call).map_err(garbage),
                proc_::UMNTALL => {
                    umntall::serve(self, &call);
                    Ok(())
                }
                proc_::EXPORT => {
                    export::serve(self, w);
                    Ok(())
                }
                _ => Err(AcceptStat::ProcUnavail),
            }
        })
    }
}
