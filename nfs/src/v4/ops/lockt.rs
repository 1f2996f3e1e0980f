//! LOCKT (RFC 8881 section 18.11, RFC 7530 section 16.11): whether a lock could be granted,
//! taking nothing. A conflict with another owner's lock answers NFS4ERR_DENIED with LOCK4denied
//! naming the conflicting lock with the lowest offset; the owner's own locks never conflict.
//! 4.0 checks and renews the clientid; 4.1 takes the session's client. During grace:
//! NFS4ERR_GRACE. Range rules as LOCK's (NFS4ERR_INVAL).

#![warn(missing_docs)]

use super::lock::{lock_owner, lock_target, locktype, session_client};
use crate::v4::state::client::ClientId;
use crate::v4::state::lock::LockOwnerKey;
use crate::v4::state::{badxdr, wire};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};
use engine::locks::LockRange;

/// LOCKT4args.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// nfs_lock_type4 (one of the four, else it does not decode).
    pub locktype: u32,
    /// The first byte.
    pub offset: u64,
    /// Bytes, or all ones: to the end of the file.
    pub length: u64,
    /// owner.clientid (4.0: checked and renewed; 4.1: ignored).
    pub clientid: ClientId,
    /// owner.owner: its own locks never conflict.
    pub owner: Vec<u8>,
}

/// LOCKT4args (also the fuzz target's).
pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    let locktype = locktype(r)?;
    let offset = r.u64("lockt offset")?;
    let length = r.u64("lockt length")?;
    let (clientid, owner) = lock_owner(r)?;
    Ok(Args { locktype, offset, length, clientid, owner })
}

impl Args {
    /// LOCKT4args, as a client sends them.
    pub fn encode(&self, w: &mut Writer) {
        w.put_u32(self.locktype);
        w.put_u64(self.offset);
        w.put_u64(self.length);
        w.put_u64(self.clientid.0);
        w.put_opaque(&self.owner);
    }
}

/// Runs LOCKT on the current file handle.
pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    let file = lock_target(cx)?;
    let client = match session_client(cx)? {
        Some(c) => c,
        None => {
            cx.state().renew(args.clientid)?;
            args.clientid
        }
    };
    let range = LockRange::new(args.offset, args.length).map_err(|_| Status::INVAL)?;
    let kind = wire::lock_kind(args.locktype).ok_or(Status::INVAL)?;
    if cx.state().in_grace() {
        return Err(Status::GRACE);
    }
    let owner = LockOwnerKey { client, owner: args.owner };
    match cx.state().with_tables(|t, now, lease| t.lockt(&owner, &file, range, kind, now, lease)) {
        Ok(()) => Ok(()),
        Err(c) => {
            wire::put_lock_denied(w, &c);
            Err(Status::DENIED)
        }
    }
}
