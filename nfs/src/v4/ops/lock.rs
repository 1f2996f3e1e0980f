//! LOCK (RFC 8881 section 18.10, RFC 7530 section 16.10): a byte-range lock for a lock-owner,
//! held in the engine's lock manager (other protocols see it). The state rules are in
//! [`crate::v4::state::lock`]; this file decodes, finds the file and writes the answer.
//!
//! - The current file handle must be a regular file (NFS4ERR_ISDIR for a directory, INVAL in
//!   4.0 / SYMLINK in 4.1 for a symbolic link); these are answered before any seqid is looked at.
//! - `open_to_lock_owner4` (a new lock-owner, or a known one's first lock on this file) names
//!   an open stateid of the file; `exist_lock_owner4` names the lock stateid. 4.0 checks the
//!   open-owner's or lock-owner's seqid (a retransmission gets the last reply again, DENIED
//!   included); 4.1 ignores seqids and takes the session's client whatever the owner's clientid
//!   says.
//! - Length 0, or an offset + length past 2^64 - 1 (unless the length is all ones: to the end of
//!   file) → NFS4ERR_INVAL, as RFC 8881 section 18.10.3 says (NFS4ERR_BAD_RANGE is for servers
//!   that cannot lock 64-bit ranges, which this one can). A write lock under an open without
//!   write access, or a read lock under one without read access → NFS4ERR_OPENMODE.
//! - A conflict → NFS4ERR_DENIED with LOCK4denied (the conflicting lock with the lowest offset:
//!   its range, type and owner). READW_LT/WRITEW_LT are the same: nothing waits here, the
//!   client polls.
//! - Grace: reclaim = TRUE during grace takes the lock (a client of the previous boot that has
//!   not said RECLAIM_COMPLETE), after grace NFS4ERR_NO_GRACE; reclaim = FALSE during grace
//!   NFS4ERR_GRACE. Locks are not recorded durably: nothing checks a reclaim against the
//!   previous boot's locks.

#![warn(missing_docs)]

use crate::v4::node::{self, Node};
use crate::v4::state::client::ClientId;
use crate::v4::state::lock::{LockOwnerKey, LockReq, Locker};
use crate::v4::state::{badxdr, wire, Stateid, OPAQUE_BYTES_MAX};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer, XdrError};
use engine::locks::LockRange;
use engine::meta::Kind;
use engine::FileHandle;

/// locker4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockerArgs {
    /// open_to_lock_owner4.
    OpenToLockOwner {
        /// open_seqid.
        open_seqid: u32,
        /// open_stateid.
        open_stateid: Stateid,
        /// lock_seqid.
        lock_seqid: u32,
        /// lock_owner.clientid.
        clientid: ClientId,
        /// lock_owner.owner.
        owner: Vec<u8>,
    },
    /// exist_lock_owner4.
    ExistLockOwner {
        /// lock_stateid.
        lock_stateid: Stateid,
        /// lock_seqid.
        lock_seqid: u32,
    },
}

/// LOCK4args.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// nfs_lock_type4 (one of the four, else it does not decode).
    pub locktype: u32,
    /// A reclaim after a restart.
    pub reclaim: bool,
    /// The first byte.
    pub offset: u64,
    /// Bytes, or all ones: to the end of the file.
    pub length: u64,
    /// Who asks.
    pub locker: LockerArgs,
}

/// nfs_lock_type4, which must be one of the four.
pub(crate) fn locktype(r: &mut Reader<'_>) -> xdr::Result<u32> {
    let at = r.position();
    let t = r.u32("nfs_lock_type4")?;
    match wire::lock_kind(t) {
        Some(_) => Ok(t),
        None => Err(XdrError { what: "nfs_lock_type4", at, why: "not a lock type" }),
    }
}

/// lock_owner4.
pub(crate) fn lock_owner(r: &mut Reader<'_>) -> xdr::Result<(ClientId, Vec<u8>)> {
    Ok((wire::clientid(r)?, r.opaque("lock owner", OPAQUE_BYTES_MAX)?.to_vec()))
}

/// LOCK4args (also the fuzz target's).
pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    let locktype = locktype(r)?;
    let reclaim = r.bool("reclaim")?;
    let offset = r.u64("lock offset")?;
    let length = r.u64("lock length")?;
    let locker = if r.bool("new_lock_owner")? {
        let open_seqid = r.u32("open_seqid")?;
        let open_stateid = Stateid::decode(r)?;
        let lock_seqid = r.u32("lock_seqid")?;
        let (clientid, owner) = lock_owner(r)?;
        LockerArgs::OpenToLockOwner { open_seqid, open_stateid, lock_seqid, clientid, owner }
    } else {
        LockerArgs::ExistLockOwner { lock_stateid: Stateid::decode(r)?, lock_seqid: r.u32("lock_seqid")? }
    };
    Ok(Args { locktype, reclaim, offset, length, locker })
}

impl Args {
    /// LOCK4args, as a client sends them.
    pub fn encode(&self, w: &mut Writer) {
        w.put_u32(self.locktype);
        w.put_bool(self.reclaim);
        w.put_u64(self.offset);
        w.put_u64(self.length);
        match &self.locker {
            LockerArgs::OpenToLockOwner { open_seqid, open_stateid, lock_seqid, clientid, owner } => {
                w.put_bool(true);
                w.put_u32(*open_seqid);
                open_stateid.encode(w);
                w.put_u32(*lock_seqid);
                w.put_u64(clientid.0);
                w.put_opaque(owner);
            }
            LockerArgs::ExistLockOwner { lock_stateid, lock_seqid } => {
                w.put_bool(false);
                lock_stateid.encode(w);
                w.put_u32(*lock_seqid);
            }
        }
    }
}

/// The current file handle as a file that can be locked (LOCK, LOCKT, LOCKU).
pub(crate) fn lock_target(cx: &Compound<'_>) -> Result<FileHandle, Status> {
    match node::current(cx)? {
        Node::Pseudo(_) => Err(Status::ISDIR),
        Node::Export(n) => match n.rec.kind {
            Kind::File => Ok(n.fh),
            Kind::Dir => Err(Status::ISDIR),
            Kind::Symlink => Err(if cx.minor == 0 { Status::INVAL } else { Status::SYMLINK }),
        },
    }
}

/// The session's client in 4.1 (its lock-owners belong to it whatever they say); `None` in 4.0.
pub(crate) fn session_client(cx: &Compound<'_>) -> Result<Option<ClientId>, Status> {
    if cx.minor == 0 {
        return Ok(None);
    }
    cx.seq.as_ref().map(|s| Some(s.client)).ok_or(Status::OP_NOT_IN_SESSION)
}

/// Runs LOCK on the current file handle.
pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    let file = lock_target(cx)?;
    let client = session_client(cx)?;
    let kind = wire::lock_kind(args.locktype).ok_or(Status::INVAL)?;
    let locker = match args.locker {
        LockerArgs::OpenToLockOwner { open_seqid, open_stateid, lock_seqid, clientid, owner } => Locker::New {
            open_seqid,
            open_stateid: cx.resolve_stateid(open_stateid)?,
            lock_seqid,
            owner: LockOwnerKey { client: clientid, owner },
        },
        LockerArgs::ExistLockOwner { lock_stateid, lock_seqid } => {
            Locker::Existing { lock_stateid: cx.resolve_stateid(lock_stateid)?, lock_seqid }
        }
    };
    let req = LockReq {
        minor: cx.minor,
        file,
        kind,
        range: LockRange::new(args.offset, args.length),
        reclaim: args.reclaim,
        locker,
    };
    let a = cx.state().with_tables(|t, now, lease| t.lock(&req, client, now, lease));
    tracing::debug!(peer = %cx.conn.peer, ino = file.ino, ?kind, offset = args.offset, length = args.length, status = a.status.0, "LOCK");
    w.put_opaque_fixed(&a.body);
    if a.status != Status::OK {
        return Err(a.status);
    }
    cx.current_stateid = Stateid::decode(&mut Reader::new(&a.body)).ok();
    Ok(())
}
