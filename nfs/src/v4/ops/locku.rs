//! LOCKU (RFC 8881 section 18.12, RFC 7530 section 16.12): unlocks a range of a lock stateid's
//! locks (bytes not held are ignored; the lock type is not checked); the stateid comes back with
//! seqid + 1. 4.0 checks the lock-owner's seqid (a retransmission gets the same reply). An
//! unlock in the middle of a range splits it; if that goes over the lock manager's bounds,
//! NFS4ERR_LOCK_RANGE (nothing changed). Range rules as LOCK's (NFS4ERR_INVAL).

#![warn(missing_docs)]

use super::lock::{lock_target, locktype, session_client};
use crate::v4::state::{badxdr, Stateid};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};
use engine::locks::LockRange;

/// LOCKU4args.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    /// nfs_lock_type4 (one of the four, else it does not decode; not checked further).
    pub locktype: u32,
    /// The lock-owner's seqid (4.0).
    pub seqid: u32,
    /// The lock stateid.
    pub lock_stateid: Stateid,
    /// The first byte.
    pub offset: u64,
    /// Bytes, or all ones: to the end of the file.
    pub length: u64,
}

/// LOCKU4args (also the fuzz target's).
pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args {
        locktype: locktype(r)?,
        seqid: r.u32("locku seqid")?,
        lock_stateid: Stateid::decode(r)?,
        offset: r.u64("locku offset")?,
        length: r.u64("locku length")?,
    })
}

impl Args {
    /// LOCKU4args, as a client sends them.
    pub fn encode(&self, w: &mut Writer) {
        w.put_u32(self.locktype);
        w.put_u32(self.seqid);
        self.lock_stateid.encode(w);
        w.put_u64(self.offset);
        w.put_u64(self.length);
    }
}

/// Runs LOCKU on the current file handle.
pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    let file = lock_target(cx)?;
    let client = session_client(cx)?;
    let stateid = cx.resolve_stateid(args.lock_stateid)?;
    let range = LockRange::new(args.offset, args.length);
    let minor = cx.minor;
    let a =
        cx.state().with_tables(|t, now, lease| t.locku(minor, client, &stateid, args.seqid, &file, range, now, lease));
    tracing::debug!(peer = %cx.conn.peer, ino = file.ino, offset = args.offset, length = args.length, status = a.status.0, "LOCKU");
    w.put_opaque_fixed(&a.body);
    if a.status != Status::OK {
        return Err(a.status);
    }
    cx.current_stateid = Stateid::decode(&mut Reader::new(&a.body)).ok();
    Ok(())
}
