//! Byte-range locks: lock-owners and lock stateids (RFC 8881 sections 8.2, 9.1–9.6, 18.10–18.12;
//! RFC 7530 sections 9.1.7, 16.10–16.12, 16.37 for NFSv4.0 seqids and RELEASE_LOCKOWNER).
//!
//! The locks themselves live in the engine's lock manager ([`engine::locks`]), shared with
//! every other protocol; this module keeps what NFSv4 adds around them:
//! - a **lock-owner** is (clientid, owner bytes); in 4.0 it carries a seqid and the reply to
//!   its last seqid-mutating operation (LOCK, LOCKU) for retransmissions, and lives until
//!   RELEASE_LOCKOWNER or its client goes; in 4.1 (seqids ignored) it lives while it has
//!   stateids.
//! - a **lock stateid** per (lock-owner, file), made by a LOCK that names an open stateid
//!   (`open_to_lock_owner4`), then used by later LOCKs and LOCKUs, READ and WRITE. It remembers
//!   the open it came from: READ/WRITE access and NFS4ERR_OPENMODE follow that open, and CLOSE
//!   of that open with locks still held answers NFS4ERR_LOCKS_HELD (else it takes the open's
//!   lock stateids with it). Its seqid is 1 after the first LOCK and goes up by one with every
//!   LOCK and LOCKU.
//!
//! Engine owners: a lock-owner is `LockOwner { client: clientid, owner: bytes }` in the engine.
//! A conflict with a lock of a client whose lease ran out expires that client (all its locks
//! and opens go) and the request is tried again.
//!
//! Limits: a LOCK over the engine's bounds answers NFS4ERR_RESOURCE in 4.0 and NFS4ERR_DENIED
//! in 4.1 (where RESOURCE is not an error of LOCK; the denial names the requester itself and
//! the range it asked for, as nothing else is in the way); a LOCK or LOCKU that would have to
//! split one of the owner's own ranges beyond them answers NFS4ERR_LOCK_RANGE.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use engine::locks::{Conflict, LockError, LockKind, LockOwner, LockRange, RangeError, Release};
use engine::FileHandle;

use super::client::ClientId;
use super::open::{bumps_seqid, OpenOwnerKey, OpenStatus, OwnerReply, SeqidCheck};
use super::{wire, OtherParts, StateKind, Stateid, Status, Tables, LOCK_OWNERS_MAX, LOCK_STATEIDS_MAX};
use crate::xdr::Writer;

/// A lock-owner: the client and its opaque owner name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LockOwnerKey {
    /// The client it belongs to.
    pub client: ClientId,
    /// The client's name for it (lock_owner4.owner).
    pub owner: Vec<u8>,
}

impl LockOwnerKey {
    /// The owner as the engine's lock manager knows it.
    pub fn engine(&self) -> LockOwner {
        LockOwner { client: self.client.0, owner: self.owner.clone() }
    }
}

/// Whether a lock stateid can still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStatus {
    /// Usable.
    Live,
    /// The client's lease ran out (its locks are gone): the stateid answers NFS4ERR_EXPIRED.
    Expired,
}

/// One lock stateid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockState {
    /// The stateid's `other`.
    pub other: [u8; 12],
    /// 0 until the first LOCK grants something, then one more per LOCK and LOCKU.
    pub seqid: u32,
    /// Its lock-owner.
    pub owner: LockOwnerKey,
    /// The file it locks.
    pub file: FileHandle,
    /// The open stateid (`other`) it was made from.
    pub open: [u8; 12],
    /// Live or expired.
    pub status: LockStatus,
}

impl LockState {
    /// The stateid as the client holds it now.
    pub fn stateid(&self) -> Stateid {
        Stateid { seqid: self.seqid, other: self.other }
    }

    fn bump(&mut self) -> Stateid {
        // Wraps past u32::MAX to 1 (0 means "current" in 4.1).
        self.seqid = self.seqid.checked_add(1).unwrap_or(1);
        self.stateid()
    }
}

/// One lock-owner's record.
#[derive(Debug, Clone)]
pub struct LockOwnerRec {
    /// Made by a 4.0 client: kept (for its seqid) until RELEASE_LOCKOWNER.
    pub v40: bool,
    /// 4.0: the last seqid processed.
    pub seqid: u32,
    /// 4.0: the reply to it, for a retransmission.
    pub last: Option<OwnerReply>,
    /// Its lock stateids by file.
    pub states: HashMap<FileHandle, [u8; 12]>,
    /// The open-owner whose open made it.
    pub open_owner: OpenOwnerKey,
}

/// Every lock-owner and lock stateid.
#[derive(Debug, Default)]
pub struct Locks {
    /// Lock stateids by `other`.
    pub by_other: HashMap<[u8; 12], LockState>,
    /// Lock-owners.
    pub owners: HashMap<LockOwnerKey, LockOwnerRec>,
    /// Lock stateids by the open stateid they were made from (CLOSE looks there).
    pub by_open: HashMap<[u8; 12], Vec<[u8; 12]>>,
}

/// Who asks for a LOCK (locker4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locker {
    /// open_to_lock_owner4: the first LOCK of this lock-owner on the file.
    New {
        /// The open-owner's seqid (4.0).
        open_seqid: u32,
        /// An open stateid of the file.
        open_stateid: Stateid,
        /// The lock-owner's seqid (4.0; the first one of a new lock-owner).
        lock_seqid: u32,
        /// The lock-owner (its clientid ignored in 4.1: the session's client counts).
        owner: LockOwnerKey,
    },
    /// exist_lock_owner4.
    Existing {
        /// The lock-owner's stateid for the file.
        lock_stateid: Stateid,
        /// The lock-owner's seqid (4.0).
        lock_seqid: u32,
    },
}

/// A LOCK the op decoded, for the tables to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockReq {
    /// The COMPOUND's minor version.
    pub minor: u32,
    /// The current file handle's file.
    pub file: FileHandle,
    /// Shared (READ_LT, READW_LT) or exclusive (WRITE_LT, WRITEW_LT).
    pub kind: LockKind,
    /// Offset and length as sent: length 0 or past the largest offset is NFS4ERR_INVAL (RFC
    /// 8881 section 18.10.3), answered after the seqid checks so that 4.0 seqids move on.
    pub range: Result<LockRange, RangeError>,
    /// A reclaim after a restart (only during grace).
    pub reclaim: bool,
    /// Who asks.
    pub locker: Locker,
}

/// What LOCK or LOCKU answers: the status and the result after it (the lock stateid, or
/// LOCK4denied); a 4.0 retransmission gets the same again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// nfsstat4.
    pub status: Status,
    /// What follows it in the reply (empty for most errors).
    pub body: Vec<u8>,
}

impl Answer {
    fn granted(s: Stateid) -> Answer {
        let mut w = Writer::new();
        s.encode(&mut w);
        Answer { status: Status::OK, body: w.to_vec() }
    }

    fn denied(c: &Conflict) -> Answer {
        let mut w = Writer::new();
        wire::put_lock_denied(&mut w, c);
        Answer { status: Status::DENIED, body: w.to_vec() }
    }

    fn replay(last: OwnerReply) -> Answer {
        Answer { status: last.status, body: last.resok }
    }
}

impl From<Status> for Answer {
    fn from(status: Status) -> Answer {
        Answer { status, body: Vec::new() }
    }
}

/// Whether an open with `access` allows a lock of `kind` (else NFS4ERR_OPENMODE).
fn open_allows(access: super::ShareAccess, kind: LockKind) -> bool {
    match kind {
        LockKind::Shared => access.read(),
        LockKind::Exclusive => access.write(),
    }
}

impl Tables {
    /// Finds the lock stateid a stateid names, whatever its status; STALE/BAD_STATEID if none.
    pub fn find_lock(&self, minor: u32, stateid: &Stateid) -> Result<&LockState, Status> {
        if stateid.is_special() {
            return Err(Status::BAD_STATEID);
        }
        let parts = OtherParts::decode(&stateid.other);
        if parts.epoch != self.epoch {
            let stale = parts.epoch < self.epoch;
            return Err(if minor == 0 && stale { Status::STALE_STATEID } else { Status::BAD_STATEID });
        }
        if parts.kind != StateKind::Lock as u8 {
            return Err(Status::BAD_STATEID);
        }
        self.locks.by_other.get(&stateid.other).ok_or(Status::BAD_STATEID)
    }

    /// A lock stateid usable now: live, its client's lease running (renewed in 4.0), its seqid
    /// current (0 in 4.1: whatever is current), of `file` if given.
    pub fn check_lock_stateid(
        &mut self,
        minor: u32,
        stateid: &Stateid,
        file: Option<&FileHandle>,
        now: Instant,
        lease: Duration,
    ) -> Result<LockState, Status> {
        let l = self.find_lock(minor, stateid)?.clone();
        if l.status == LockStatus::Expired {
            return Err(Status::EXPIRED);
        }
        match self.clients.get_mut(&l.owner.client) {
            None => return Err(Status::BAD_STATEID),
            Some(c) if c.lapsed(now, lease) => {
                self.expire_client(l.owner.client);
                return Err(Status::EXPIRED);
            }
            Some(c) if minor == 0 => c.renewed = now,
            Some(_) => {}
        }
        if !(minor >= 1 && stateid.seqid == 0) {
            if stateid.seqid > l.seqid {
                return Err(Status::BAD_STATEID);
            }
            if stateid.seqid < l.seqid {
                return Err(Status::OLD_STATEID);
            }
        }
        if file.is_some_and(|f| *f != l.file) {
            return Err(Status::BAD_STATEID);
        }
        Ok(l)
    }

    /// The live open a lock stateid was made from.
    fn open_of_lock(&self, l: &LockState) -> Result<&super::open::Open, Status> {
        self.opens.by_other.get(&l.open).filter(|o| o.status == OpenStatus::Live).ok_or(Status::BAD_STATEID)
    }

    /// 4.0: checks a lock-owner's seqid before LOCK or LOCKU.
    fn lock_owner_seqid_check(&self, key: &LockOwnerKey, seqid: u32) -> Result<SeqidCheck, Status> {
        let o = self.locks.owners.get(key).ok_or(Status::BAD_STATEID)?;
        match &o.last {
            Some(last) if last.seqid == seqid => Ok(SeqidCheck::Replay(last.clone())),
            _ if seqid == o.seqid.wrapping_add(1) => Ok(SeqidCheck::Run),
            _ => Err(Status::BAD_SEQID),
        }
    }

    /// 4.0: records the outcome of a lock-owner's seqid-mutating operation.
    fn lock_owner_seqid_done(&mut self, key: &LockOwnerKey, seqid: u32, a: &Answer) {
        if !bumps_seqid(a.status) {
            return;
        }
        let Some(o) = self.locks.owners.get_mut(key) else { return };
        o.seqid = seqid;
        o.last = Some(OwnerReply { seqid, status: a.status, resok: a.body.clone(), file: None });
    }

    /// Expires the client of a conflicting lock if its lease ran out (its locks go with it):
    /// whether it did, so the request can be tried again.
    pub(crate) fn expire_if_lapsed(&mut self, client: u64, now: Instant, lease: Duration) -> bool {
        let id = ClientId(client);
        if !self.clients.get(&id).is_some_and(|c| c.lapsed(now, lease)) {
            return false;
        }
        self.expire_client(id);
        // Whatever happened before, nothing of a lapsed client stays in the way.
        self.lock_manager.release_client(client);
        true
    }

    /// Takes a lock in the engine, expiring lapsed holders of conflicting locks on the way
    /// (each retry follows the release of one client's locks, so it ends).
    fn engine_lock(
        &mut self,
        l: &LockState,
        range: LockRange,
        kind: LockKind,
        now: Instant,
        lease: Duration,
    ) -> Result<(), LockError> {
        let owner = l.owner.engine();
        loop {
            match self.lock_manager.lock(l.file.ino, &owner, range, kind) {
                Err(LockError::Conflict(c)) if self.expire_if_lapsed(c.owner.client, now, lease) => continue,
                out => return out,
            }
        }
    }

    /// The grace period rules of LOCK: a reclaim only during grace by a client that may
    /// reclaim; anything else not during grace.
    fn lock_grace_check(&mut self, req: &LockReq, client: ClientId, now: Instant, lease: Duration) -> Status {
        let on = self.grace.on(now);
        if !req.reclaim {
            return if on { Status::GRACE } else { Status::OK };
        }
        if !on {
            return Status::NO_GRACE;
        }
        match self.live_client(client, now, lease) {
            Err(st) => st,
            Ok(c) if c.reclaim_complete => Status::NO_GRACE,
            Ok(c) if !c.reclaimable => Status::RECLAIM_BAD,
            Ok(_) => Status::OK,
        }
    }

    /// LOCK (RFC 8881 section 18.10). `client` is the session's client in 4.1 (the owner's
    /// clientid is ignored there).
    pub fn lock(&mut self, req: &LockReq, client: Option<ClientId>, now: Instant, lease: Duration) -> Answer {
        match &req.locker {
            Locker::New { open_seqid, open_stateid, lock_seqid, owner } => {
                let open_owner = match self.find_open(req.minor, open_stateid) {
                    Ok(o) => o.owner.clone(),
                    Err(st) => return st.into(),
                };
                let owner = LockOwnerKey { client: client.unwrap_or(owner.client), owner: owner.owner.clone() };
                if req.minor >= 1 {
                    return self.lock_new_owner(req, open_stateid, &owner, *lock_seqid, now, lease);
                }
                match self.owner_seqid_check(&open_owner, *open_seqid, false) {
                    Err(st) => return st.into(),
                    Ok(SeqidCheck::Replay(last)) => return Answer::replay(last),
                    Ok(SeqidCheck::Run) => {}
                }
                self.clear_tombstone(&open_owner);
                let a = self.lock_new_owner(req, open_stateid, &owner, *lock_seqid, now, lease);
                self.owner_seqid_done(&open_owner, *open_seqid, a.status, a.body.clone(), None);
                self.lock_owner_seqid_done(&owner, *lock_seqid, &a);
                a
            }
            Locker::Existing { lock_stateid, lock_seqid } => {
                let owner = match self.find_lock(req.minor, lock_stateid) {
                    Ok(l) => l.owner.clone(),
                    Err(st) => return st.into(),
                };
                if client.is_some_and(|c| c != owner.client) {
                    return Status::BAD_STATEID.into();
                }
                if req.minor >= 1 {
                    return self.lock_existing(req, lock_stateid, now, lease);
                }
                match self.lock_owner_seqid_check(&owner, *lock_seqid) {
                    Err(st) => return st.into(),
                    Ok(SeqidCheck::Replay(last)) => return Answer::replay(last),
                    Ok(SeqidCheck::Run) => {}
                }
                let a = self.lock_existing(req, lock_stateid, now, lease);
                self.lock_owner_seqid_done(&owner, *lock_seqid, &a);
                a
            }
        }
    }

    /// LOCK with open_to_lock_owner4: the lock-owner and its stateid for the file are found or
    /// made (a new stateid goes again if nothing was granted).
    fn lock_new_owner(
        &mut self,
        req: &LockReq,
        open_stateid: &Stateid,
        owner: &LockOwnerKey,
        lock_seqid: u32,
        now: Instant,
        lease: Duration,
    ) -> Answer {
        let open = match self.check_open_stateid(req.minor, open_stateid, Some(&req.file), now, lease) {
            Ok(o) => o,
            Err(st) => return st.into(),
        };
        let Ok(range) = req.range else { return Status::INVAL.into() };
        if open.owner.client != owner.client {
            return Status::BAD_STATEID.into();
        }
        let st = self.lock_grace_check(req, owner.client, now, lease);
        if st != Status::OK {
            return st.into();
        }
        if !open_allows(open.access, req.kind) {
            return Status::OPENMODE.into();
        }
        let existing_owner = self.locks.owners.get(owner).map(|o| (o.seqid, o.states.get(&req.file).copied()));
        let existing_state = match existing_owner {
            // 4.0: a known lock-owner must carry its next seqid (RFC 7530 section 16.10.5).
            Some((seqid, _)) if req.minor == 0 && lock_seqid != seqid.wrapping_add(1) => {
                return Status::BAD_SEQID.into();
            }
            Some((_, state)) => state.filter(|o| self.locks.by_other.contains_key(o)),
            None => {
                if self.locks.owners.len() >= LOCK_OWNERS_MAX {
                    return if req.minor == 0 { Status::RESOURCE } else { Status::DELAY }.into();
                }
                let rec = LockOwnerRec {
                    v40: req.minor == 0,
                    seqid: lock_seqid.wrapping_sub(1),
                    last: None,
                    states: HashMap::new(),
                    open_owner: open.owner.clone(),
                };
                self.locks.owners.insert(owner.clone(), rec);
                None
            }
        };
        let (other, made) = match existing_state {
            Some(other) => (other, false),
            None => {
                if self.locks.by_other.len() >= LOCK_STATEIDS_MAX {
                    self.forget_lock_owner_if_unused(owner);
                    return if req.minor == 0 { Status::RESOURCE } else { Status::DELAY }.into();
                }
                let other = self.new_other(StateKind::Lock);
                let l = LockState {
                    other,
                    seqid: 0,
                    owner: owner.clone(),
                    file: req.file,
                    open: open.other,
                    status: LockStatus::Live,
                };
                self.locks.by_other.insert(other, l);
                self.locks.by_open.entry(open.other).or_default().push(other);
                if let Some(o) = self.locks.owners.get_mut(owner) {
                    o.states.insert(req.file, other);
                }
                (other, true)
            }
        };
        let Some(l) = self.locks.by_other.get(&other).cloned() else { return Status::BAD_STATEID.into() };
        let a = self.grant(req, range, &l, now, lease);
        if a.status != Status::OK && made {
            self.remove_lock_state(&other);
        }
        a
    }

    /// LOCK with exist_lock_owner4.
    fn lock_existing(&mut self, req: &LockReq, lock_stateid: &Stateid, now: Instant, lease: Duration) -> Answer {
        let l = match self.check_lock_stateid(req.minor, lock_stateid, Some(&req.file), now, lease) {
            Ok(l) => l,
            Err(st) => return st.into(),
        };
        let Ok(range) = req.range else { return Status::INVAL.into() };
        let st = self.lock_grace_check(req, l.owner.client, now, lease);
        if st != Status::OK {
            return st.into();
        }
        match self.open_of_lock(&l) {
            Err(st) => return st.into(),
            Ok(o) if !open_allows(o.access, req.kind) => return Status::OPENMODE.into(),
            Ok(_) => {}
        }
        self.grant(req, range, &l, now, lease)
    }

    /// Takes the lock for a lock stateid; its seqid goes up if granted.
    fn grant(&mut self, req: &LockReq, range: LockRange, l: &LockState, now: Instant, lease: Duration) -> Answer {
        match self.engine_lock(l, range, req.kind, now, lease) {
            Ok(()) => match self.locks.by_other.get_mut(&l.other) {
                Some(state) => Answer::granted(state.bump()),
                None => Status::BAD_STATEID.into(),
            },
            Err(LockError::Conflict(c)) => Answer::denied(&c),
            Err(LockError::Limit(limit)) => {
                tracing::info!(
                    clientid = l.owner.client.0,
                    ino = l.file.ino,
                    ?limit,
                    "NFSv4 LOCK over the lock bounds"
                );
                if limit.splits_own {
                    Status::LOCK_RANGE.into()
                } else if req.minor == 0 {
                    Status::RESOURCE.into()
                } else {
                    // What stands in the way is the owner's (or everybody's) count of ranges.
                    Answer::denied(&Conflict { owner: l.owner.engine(), range, kind: req.kind })
                }
            }
        }
    }

    /// LOCKU (RFC 8881 section 18.12).
    #[allow(clippy::too_many_arguments)]
    pub fn locku(
        &mut self,
        minor: u32,
        client: Option<ClientId>,
        lock_stateid: &Stateid,
        seqid: u32,
        file: &FileHandle,
        range: Result<LockRange, RangeError>,
        now: Instant,
        lease: Duration,
    ) -> Answer {
        let owner = match self.find_lock(minor, lock_stateid) {
            Ok(l) => l.owner.clone(),
            Err(st) => return st.into(),
        };
        if client.is_some_and(|c| c != owner.client) {
            return Status::BAD_STATEID.into();
        }
        if minor == 0 {
            match self.lock_owner_seqid_check(&owner, seqid) {
                Err(st) => return st.into(),
                Ok(SeqidCheck::Replay(last)) => return Answer::replay(last),
                Ok(SeqidCheck::Run) => {}
            }
        }
        let a = match (self.check_lock_stateid(minor, lock_stateid, Some(file), now, lease), range) {
            (Err(st), _) => st.into(),
            (Ok(_), Err(_)) => Status::INVAL.into(),
            (Ok(l), Ok(range)) => match self.lock_manager.unlock(l.file.ino, &l.owner.engine(), range) {
                Err(_) => Status::LOCK_RANGE.into(),
                Ok(()) => match self.locks.by_other.get_mut(&l.other) {
                    Some(state) => Answer::granted(state.bump()),
                    None => Status::BAD_STATEID.into(),
                },
            },
        };
        if minor == 0 {
            self.lock_owner_seqid_done(&owner, seqid, &a);
        }
        a
    }

    /// LOCKT (RFC 8881 section 18.11): the first conflicting lock of another owner, if any.
    pub fn lockt(
        &mut self,
        owner: &LockOwnerKey,
        file: &FileHandle,
        range: LockRange,
        kind: LockKind,
        now: Instant,
        lease: Duration,
    ) -> Result<(), Conflict> {
        let me = owner.engine();
        loop {
            match self.lock_manager.test(file.ino, &me, range, kind) {
                Err(c) if self.expire_if_lapsed(c.owner.client, now, lease) => continue,
                out => return out,
            }
        }
    }

    /// RELEASE_LOCKOWNER (4.0): forgets a lock-owner and its stateids, unless it still holds
    /// locks (NFS4ERR_LOCKS_HELD). An unknown lock-owner is fine.
    pub fn release_lockowner(&mut self, key: &LockOwnerKey) -> Result<(), Status> {
        if self.lock_manager.release_owner(&key.engine(), Release::IfUnlocked).is_err() {
            return Err(Status::LOCKS_HELD);
        }
        if let Some(rec) = self.locks.owners.remove(key) {
            for other in rec.states.values() {
                self.locks.by_other.remove(other);
            }
        }
        Ok(())
    }

    /// Whether any lock stateid made from the open `open` holds locks.
    pub(crate) fn open_has_locks(&self, open: &[u8; 12]) -> bool {
        self.locks
            .by_open
            .get(open)
            .into_iter()
            .flatten()
            .filter_map(|other| self.locks.by_other.get(other))
            .filter(|l| l.status == LockStatus::Live)
            .any(|l| self.lock_manager.ranges_held(l.file.ino, &l.owner.engine()) > 0)
    }

    /// Forgets the lock stateids made from the open `open` (it is being closed; they hold
    /// nothing).
    pub(crate) fn remove_locks_of_open(&mut self, open: &[u8; 12]) {
        for other in self.locks.by_open.remove(open).unwrap_or_default() {
            self.remove_lock_state(&other);
        }
    }

    /// Forgets one lock stateid (and a 4.1 lock-owner left without any).
    fn remove_lock_state(&mut self, other: &[u8; 12]) {
        let Some(l) = self.locks.by_other.remove(other) else { return };
        if let Some(v) = self.locks.by_open.get_mut(&l.open) {
            v.retain(|o| o != other);
            if v.is_empty() {
                self.locks.by_open.remove(&l.open);
            }
        }
        if let Some(o) = self.locks.owners.get_mut(&l.owner) {
            if o.states.get(&l.file) == Some(other) {
                o.states.remove(&l.file);
            }
        }
        self.forget_lock_owner_if_unused(&l.owner);
    }

    /// A 4.1 lock-owner without stateids is forgotten (4.0 ones keep their seqid until
    /// RELEASE_LOCKOWNER).
    fn forget_lock_owner_if_unused(&mut self, key: &LockOwnerKey) {
        if self.locks.owners.get(key).is_some_and(|o| !o.v40 && o.states.is_empty()) {
            self.locks.owners.remove(key);
        }
    }

    /// TEST_STATEID of a lock stateid of `client`.
    pub(crate) fn test_lock_stateid(
        &mut self,
        client: ClientId,
        stateid: &Stateid,
        now: Instant,
        lease: Duration,
    ) -> Status {
        match self.find_lock(1, stateid) {
            Ok(l) if l.owner.client == client => {}
            Ok(_) => return Status::BAD_STATEID,
            Err(st) => return st,
        }
        match self.check_lock_stateid(1, stateid, None, now, lease) {
            Ok(_) => Status::OK,
            Err(st) => st,
        }
    }

    /// FREE_STATEID of a lock stateid of `client`: NFS4ERR_LOCKS_HELD while it holds locks.
    pub(crate) fn free_lock_stateid(&mut self, client: ClientId, stateid: &Stateid) -> Result<(), Status> {
        let l = match self.find_lock(1, stateid) {
            Ok(l) if l.owner.client == client => l.clone(),
            Ok(_) => return Err(Status::BAD_STATEID),
            Err(st) => return Err(st),
        };
        if l.status == LockStatus::Live && self.lock_manager.ranges_held(l.file.ino, &l.owner.engine()) > 0 {
            return Err(Status::LOCKS_HELD);
        }
        self.remove_lock_state(&l.other);
        Ok(())
    }

    /// The client's lease ran out: its lock stateids answer EXPIRED (the engine drops the
    /// locks, see [`Tables::expire_client`]).
    pub(crate) fn revoke_locks_of(&mut self, client: ClientId) {
        for l in self.locks.by_other.values_mut().filter(|l| l.owner.client == client) {
            l.status = LockStatus::Expired;
        }
    }

    /// Forgets every lock-owner and lock stateid of a client.
    pub(crate) fn remove_locks_of(&mut self, client: ClientId) {
        let others: Vec<[u8; 12]> =
            self.locks.by_other.values().filter(|l| l.owner.client == client).map(|l| l.other).collect();
        for other in others {
            self.remove_lock_state(&other);
        }
        self.locks.owners.retain(|k, _| k.client != client);
    }
}
