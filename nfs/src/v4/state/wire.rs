//! XDR pieces shared by the state operations: bitmap4, verifier4, channel_attrs4,
//! callback_sec_parms4, clientid4, nfs_lock_type4 and LOCK4denied.

use engine::locks::{Conflict, LockKind};

use super::client::ClientId;
use super::session::ChannelAttrs;
use crate::rpc::{AUTH_SYS_GIDS_MAX, MACHINE_NAME_BYTES_MAX};
use crate::xdr::{self, Reader, Writer};

/// Words in a bitmap4 we accept.
pub const BITMAP_WORDS_MAX: usize = 8;
/// callback_sec_parms4 entries we accept.
pub const CB_SEC_PARMS_MAX: usize = 16;
/// GSS handles in callback_sec_parms4.
pub const GSS_HANDLE_BYTES_MAX: usize = 1024;

pub fn bitmap(r: &mut Reader<'_>, what: &'static str) -> xdr::Result<Vec<u32>> {
    let n = r.array_len(what, BITMAP_WORDS_MAX, 4)?;
    (0..n).map(|_| r.u32(what)).collect()
}

pub fn put_bitmap(w: &mut Writer, words: &[u32]) {
    w.put_u32(words.len() as u32);
    for x in words {
        w.put_u32(*x);
    }
}

pub fn verifier(r: &mut Reader<'_>, what: &'static str) -> xdr::Result<[u8; 8]> {
    let b = r.opaque_fixed(what, 8)?;
    let mut v = [0u8; 8];
    v.copy_from_slice(b);
    Ok(v)
}

pub fn clientid(r: &mut Reader<'_>) -> xdr::Result<ClientId> {
    r.u64("clientid").map(ClientId)
}

pub fn channel_attrs(r: &mut Reader<'_>) -> xdr::Result<ChannelAttrs> {
    let headerpad_bytes = r.u32("ca_headerpadsize")?;
    let request_bytes_max = r.u32("ca_maxrequestsize")?;
    let response_bytes_max = r.u32("ca_maxresponsesize")?;
    let response_cached_bytes_max = r.u32("ca_maxresponsesize_cached")?;
    let operations_max = r.u32("ca_maxoperations")?;
    let requests_max = r.u32("ca_maxrequests")?;
    let n = r.array_len("ca_rdma_ird", 1, 4)?;
    let rdma_ird = if n == 1 { Some(r.u32("ca_rdma_ird")?) } else { None };
    Ok(ChannelAttrs {
        headerpad_bytes,
        request_bytes_max,
        response_bytes_max,
        response_cached_bytes_max,
        operations_max,
        requests_max,
        rdma_ird,
    })
}

pub fn put_channel_attrs(w: &mut Writer, a: &ChannelAttrs) {
    w.put_u32(a.headerpad_bytes);
    w.put_u32(a.request_bytes_max);
    w.put_u32(a.response_bytes_max);
    w.put_u32(a.response_cached_bytes_max);
    w.put_u32(a.operations_max);
    w.put_u32(a.requests_max);
    match a.rdma_ird {
        Some(x) => {
            w.put_u32(1);
            w.put_u32(x);
        }
        None => w.put_u32(0),
    }
}

/// callback_sec_parms4 (accepted and ignored: no callbacks are made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CbSec {
    None,
    Sys { stamp: u32, machine: Vec<u8>, uid: u32, gid: u32, gids: Vec<u32> },
    Gss { service: u32, handle_from_server: Vec<u8>, handle_from_client: Vec<u8> },
}

pub fn cb_sec_parms(r: &mut Reader<'_>) -> xdr::Result<Vec<CbSec>> {
    let n = r.array_len("callback_sec_parms", CB_SEC_PARMS_MAX, 4)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(match r.u32("cb_secflavor")? {
            0 => CbSec::None,
            1 => {
                let stamp = r.u32("cbsp_sys_cred stamp")?;
                let machine = r.opaque("cbsp_sys_cred machinename", MACHINE_NAME_BYTES_MAX)?.to_vec();
                let uid = r.u32("cbsp_sys_cred uid")?;
                let gid = r.u32("cbsp_sys_cred gid")?;
                let ng = r.array_len("cbsp_sys_cred gids", AUTH_SYS_GIDS_MAX, 4)?;
                let gids = (0..ng).map(|_| r.u32("cbsp_sys_cred gid")).collect::<xdr::Result<_>>()?;
                CbSec::Sys { stamp, machine, uid, gid, gids }
            }
            6 => CbSec::Gss {
                service: r.u32("gcbp_service")?,
                handle_from_server: r.opaque("gcbp_handle_from_server", GSS_HANDLE_BYTES_MAX)?.to_vec(),
                handle_from_client: r.opaque("gcbp_handle_from_client", GSS_HANDLE_BYTES_MAX)?.to_vec(),
            },
            _ => return Err(r.error("cb_secflavor", "unknown flavor")),
        });
    }
    Ok(out)
}

pub fn put_cb_sec_parms(w: &mut Writer, parms: &[CbSec]) {
    w.put_u32(parms.len() as u32);
    for p in parms {
        match p {
            CbSec::None => w.put_u32(0),
            CbSec::Sys { stamp, machine, uid, gid, gids } => {
                w.put_u32(1);
                w.put_u32(*stamp);
                w.put_opaque(machine);
                w.put_u32(*uid);
                w.put_u32(*gid);
                put_bitmap(w, gids);
            }
            CbSec::Gss { service, handle_from_server, handle_from_client } => {
                w.put_u32(6);
                w.put_u32(*service);
                w.put_opaque(handle_from_server);
                w.put_opaque(handle_from_client);
            }
        }
    }
}

/// nfs_lock_type4: a read (shared) lock.
pub const READ_LT: u32 = 1;
/// nfs_lock_type4: a write (exclusive) lock.
pub const WRITE_LT: u32 = 2;
/// nfs_lock_type4: a read lock the client will wait for (it polls; nothing waits here).
pub const READW_LT: u32 = 3;
/// nfs_lock_type4: a write lock the client will wait for (it polls; nothing waits here).
pub const WRITEW_LT: u32 = 4;

/// nfs_lock_type4 → the engine's kind (`None` for a value that is none of the four).
pub fn lock_kind(locktype: u32) -> Option<LockKind> {
    match locktype {
        READ_LT | READW_LT => Some(LockKind::Shared),
        WRITE_LT | WRITEW_LT => Some(LockKind::Exclusive),
        _ => None,
    }
}

/// LOCK4denied: the conflicting lock's range, type and owner (lock_owner4).
pub fn put_lock_denied(w: &mut Writer, c: &Conflict) {
    w.put_u64(c.range.offset());
    w.put_u64(c.range.length());
    w.put_u32(match c.kind {
        LockKind::Shared => READ_LT,
        LockKind::Exclusive => WRITE_LT,
    });
    w.put_u64(c.owner.client);
    w.put_opaque(&c.owner.owner);
}
