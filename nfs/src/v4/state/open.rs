//! Opens: open-owners, open stateids and share reservations (RFC 8881 sections 9.7, 18.16,
//! 18.18, 18.2; RFC 7530 section 9.1.7 for the NFSv4.0 open-owner seqid).
//!
//! One open stateid per (open-owner, file): a second OPEN of the same file by the same owner
//! upgrades it (access and deny modes are OR-ed, seqid + 1). Share reservations are the engine
//! lock manager's (owner = clientid + open-owner bytes), so they conflict with other open-owners
//! and with other protocols' opens of the file; OPEN, OPEN_DOWNGRADE and CLOSE change them
//! there. NFSv4.0 open-owners carry a seqid: the last seqid-mutating operation's reply is kept
//! and replayed for a retransmission; a closed open stays behind as a tombstone until the
//! owner's next operation so a retransmitted CLOSE finds it. CLOSE of an open whose lock
//! stateids still hold locks answers NFS4ERR_LOCKS_HELD (both minor versions; RFC 8881 section
//! 18.2.4 and RFC 7530 section 16.2.4 let the server refuse rather than drop them).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use engine::locks::{LockOwner, ShareBits, ShareError};
use engine::FileHandle;

use super::client::ClientId;
use super::{OtherParts, State, StateKind, Stateid, Status, Tables, OPENS_MAX, OWNERS_MAX};

pub const SHARE_ACCESS_READ: u32 = 1;
pub const SHARE_ACCESS_WRITE: u32 = 2;
pub const SHARE_ACCESS_BOTH: u32 = 3;

/// Share access or deny bits (READ = 1, WRITE = 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShareAccess(pub u32);

impl ShareAccess {
    pub fn read(self) -> bool {
        self.0 & SHARE_ACCESS_READ != 0
    }

    pub fn write(self) -> bool {
        self.0 & SHARE_ACCESS_WRITE != 0
    }

    pub fn overlaps(self, other: ShareAccess) -> bool {
        self.0 & other.0 != 0
    }

    pub fn contains(self, other: ShareAccess) -> bool {
        self.0 & other.0 == other.0
    }

    /// The engine's bits (READ and WRITE are the same values).
    pub fn engine(self) -> ShareBits {
        ShareBits(self.0 & SHARE_ACCESS_BOTH)
    }
}

/// An open-owner: the client and its opaque owner name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpenOwnerKey {
    pub client: ClientId,
    pub owner: Vec<u8>,
}

impl OpenOwnerKey {
    /// The owner of its share reservations in the engine's lock manager.
    pub fn engine(&self) -> LockOwner {
        LockOwner { client: self.client.0, owner: self.owner.clone() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenStatus {
    Live,
    /// Closed (4.0 tombstone for a CLOSE retransmission).
    Closed,
    /// The client's lease ran out.
    Expired,
}

/// One open stateid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub other: [u8; 12],
    pub seqid: u32,
    pub owner: OpenOwnerKey,
    pub file: FileHandle,
    pub access: ShareAccess,
    pub deny: ShareAccess,
    pub status: OpenStatus,
}

impl Open {
    pub fn stateid(&self) -> Stateid {
        Stateid { seqid: self.seqid, other: self.other }
    }

    fn bump(&mut self) -> Stateid {
        // Wraps past u32::MAX to 1 (0 means "current" in 4.1).
        self.seqid = self.seqid.checked_add(1).unwrap_or(1);
        self.stateid()
    }
}

/// The reply of a 4.0 open-owner's last seqid-mutating operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerReply {
    pub seqid: u32,
    pub status: Status,
    /// The result after the status.
    pub resok: Vec<u8>,
    /// OPEN: the file that became the current file handle.
    pub file: Option<FileHandle>,
}

#[derive(Debug, Clone, Default)]
pub struct OpenOwner {
    /// 4.0: OPEN_CONFIRM done (4.1 owners are always confirmed).
    pub confirmed: bool,
    /// 4.0: the last seqid processed.
    pub seqid: u32,
    pub last: Option<OwnerReply>,
    /// Live (and expired) opens by file.
    pub opens: HashMap<FileHandle, [u8; 12]>,
    /// 4.0: the open its last CLOSE closed.
    pub closed: Option<[u8; 12]>,
}

/// Every open.
#[derive(Debug, Default)]
pub struct Opens {
    pub by_other: HashMap<[u8; 12], Open>,
    pub owners: HashMap<OpenOwnerKey, OpenOwner>,
    /// Files whose live open went away other than by CLOSE (lease expiry, DESTROY_CLIENTID, a
    /// replaced 4.0 owner), for the engine to hear of ([`State::take_released`]).
    pub released: Vec<FileHandle>,
}

/// A 4.0 open-owner seqid check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqidCheck {
    Run,
    Replay(OwnerReply),
}

/// An OPEN the op decided to grant, for the tables to record.
#[derive(Debug, Clone)]
pub struct OpenReq {
    pub minor: u32,
    pub owner: OpenOwnerKey,
    pub file: FileHandle,
    pub access: ShareAccess,
    pub deny: ShareAccess,
}

/// What OPEN answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOk {
    pub stateid: Stateid,
    /// 4.0: the owner must OPEN_CONFIRM (OPEN4_RESULT_CONFIRM).
    pub confirm: bool,
}

/// Whether a status moves a 4.0 open-owner's seqid on (RFC 7530 section 9.1.7).
pub fn bumps_seqid(st: Status) -> bool {
    !matches!(
        st,
        Status::STALE_CLIENTID
            | Status::STALE_STATEID
            | Status::BAD_STATEID
            | Status::BAD_SEQID
            | Status::BADXDR
            | Status::RESOURCE
            | Status::NOFILEHANDLE
            | Status::MOVED
    )
}

impl Tables {
    /// Revokes every open of a client whose lease ran out: stateids answer EXPIRED (its share
    /// reservations leave the engine in [`Tables::expire_client`]).
    pub fn revoke_opens_of(&mut self, client: ClientId) {
        for o in self.opens.by_other.values_mut().filter(|o| o.owner.client == client) {
            if o.status == OpenStatus::Live {
                self.opens.released.push(o.file);
            }
            o.status = OpenStatus::Expired;
        }
    }

    /// Forgets every open and open-owner of a client (its share reservations leave the engine
    /// in [`Tables::remove_client`]).
    pub fn remove_opens_of(&mut self, client: ClientId) {
        let released: Vec<FileHandle> = self
            .opens
            .by_other
            .values()
            .filter(|o| o.owner.client == client && o.status == OpenStatus::Live)
            .map(|o| o.file)
            .collect();
        self.opens.released.extend(released);
        self.opens.by_other.retain(|_, o| o.owner.client != client);
        self.opens.owners.retain(|k, _| k.client != client);
    }

    pub fn has_live_opens(&self, client: ClientId) -> bool {
        self.opens.by_other.values().any(|o| o.owner.client == client && o.status == OpenStatus::Live)
    }

    /// 4.0: checks an open-owner's seqid before a seqid-mutating operation. `opening`: the
    /// operation is OPEN, which creates the owner (and replaces an unconfirmed one).
    pub fn owner_seqid_check(&mut self, key: &OpenOwnerKey, seqid: u32, opening: bool) -> Result<SeqidCheck, Status> {
        let fresh = match self.opens.owners.get(key) {
            None => true,
            Some(o) if opening && !o.confirmed => {
                // An unconfirmed owner is replaced, without looking for a replay (as Linux does).
                self.release_owner(key);
                true
            }
            Some(o) => {
                return match &o.last {
                    Some(last) if last.seqid == seqid => Ok(SeqidCheck::Replay(last.clone())),
                    _ if seqid == o.seqid.wrapping_add(1) => Ok(SeqidCheck::Run),
                    _ => Err(Status::BAD_SEQID),
                };
            }
        };
        if fresh {
            if !opening {
                return Err(Status::BAD_STATEID);
            }
            if self.opens.owners.len() >= OWNERS_MAX {
                return Err(Status::RESOURCE);
            }
            let owner = OpenOwner { seqid: seqid.wrapping_sub(1), ..OpenOwner::default() };
            self.opens.owners.insert(key.clone(), owner);
        }
        Ok(SeqidCheck::Run)
    }

    /// 4.0: records the outcome of a seqid-mutating operation.
    pub fn owner_seqid_done(
        &mut self,
        key: &OpenOwnerKey,
        seqid: u32,
        status: Status,
        resok: Vec<u8>,
        file: Option<FileHandle>,
    ) {
        if !bumps_seqid(status) {
            return;
        }
        let Some(o) = self.opens.owners.get_mut(key) else { return };
        o.seqid = seqid;
        o.last = Some(OwnerReply { seqid, status, resok, file });
    }

    /// Drops an open-owner with its opens and their share reservations.
    fn release_owner(&mut self, key: &OpenOwnerKey) {
        let Some(o) = self.opens.owners.remove(key) else { return };
        for other in o.opens.values().chain(o.closed.iter()) {
            if let Some(open) = self.opens.by_other.remove(other) {
                if open.status == OpenStatus::Live {
                    self.lock_manager.close_share(open.file.ino, &key.engine());
                    self.opens.released.push(open.file);
                }
            }
        }
    }

    /// Drops the owner's CLOSE tombstone (its next operation is not a CLOSE retransmission).
    pub(crate) fn clear_tombstone(&mut self, key: &OpenOwnerKey) {
        if let Some(t) = self.opens.owners.get_mut(key).and_then(|o| o.closed.take()) {
            self.opens.by_other.remove(&t);
        }
    }

    /// Takes (or widens) the owner's share reservation in the engine's lock manager; a
    /// conflicting NFSv4 client whose lease ran out is expired on the way.
    fn take_share(&mut self, req: &OpenReq, now: Instant, lease: Duration) -> Result<(), Status> {
        let owner = req.owner.engine();
        loop {
            match self.lock_manager.open_share(req.file.ino, &owner, req.access.engine(), req.deny.engine()) {
                Ok(()) => return Ok(()),
                Err(ShareError::Conflict(c)) if self.expire_if_lapsed(c.holder.client, now, lease) => continue,
                Err(ShareError::Conflict(c)) => {
                    tracing::debug!(ino = req.file.ino, conflict = %c, "NFSv4 OPEN: share denied");
                    return Err(Status::SHARE_DENIED);
                }
                Err(ShareError::Limit(_)) => return Err(if req.minor == 0 { Status::RESOURCE } else { Status::DELAY }),
                Err(e @ (ShareError::NotOpen | ShareError::NotWithin)) => {
                    tracing::error!(error = %e, "NFSv4 OPEN: unexpected answer of the lock manager");
                    return Err(Status::SERVERFAULT);
                }
            }
        }
    }

    /// Records a granted OPEN: takes the share reservation (conflicts with other owners, of
    /// any protocol), then creates or upgrades the owner's stateid.
    pub fn open(&mut self, req: &OpenReq, now: Instant, lease: Duration) -> Result<OpenOk, Status> {
        let full = if req.minor == 0 { Status::RESOURCE } else { Status::DELAY };
        let existing = self.opens.owners.get(&req.owner).and_then(|o| o.opens.get(&req.file)).copied();
        let upgrade =
            existing.is_some_and(|o| self.opens.by_other.get(&o).is_some_and(|o| o.status == OpenStatus::Live));
        // Bounds first: nothing to undo in the engine after the share is taken.
        if !self.opens.owners.contains_key(&req.owner) && self.opens.owners.len() >= OWNERS_MAX {
            return Err(full);
        }
        if !upgrade && self.opens.by_other.len() >= OPENS_MAX {
            return Err(full);
        }
        self.take_share(req, now, lease)?;
        self.clear_tombstone(&req.owner);
        if !self.opens.owners.contains_key(&req.owner) {
            let confirmed = req.minor >= 1;
            self.opens.owners.insert(req.owner.clone(), OpenOwner { confirmed, ..OpenOwner::default() });
        }
        let confirm = req.minor == 0 && self.opens.owners.get(&req.owner).is_some_and(|o| !o.confirmed);
        if let Some(other) = existing {
            if let Some(o) = self.opens.by_other.get_mut(&other).filter(|o| o.status == OpenStatus::Live) {
                o.access.0 |= req.access.0;
                o.deny.0 |= req.deny.0;
                return Ok(OpenOk { stateid: o.bump(), confirm });
            }
            // An expired open of this owner and file: replaced by a new one.
            self.opens.by_other.remove(&other);
        }
        let other = self.new_other(StateKind::Open);
        let open = Open {
            other,
            seqid: 1,
            owner: req.owner.clone(),
            file: req.file,
            access: req.access,
            deny: req.deny,
            status: OpenStatus::Live,
        };
        let stateid = open.stateid();
        self.opens.by_other.insert(other, open);
        if let Some(o) = self.opens.owners.get_mut(&req.owner) {
            o.opens.insert(req.file, other);
        }
        Ok(OpenOk { stateid, confirm })
    }

    /// Finds the open a stateid names, whatever its status; STALE/BAD_STATEID if none.
    pub fn find_open(&self, minor: u32, stateid: &Stateid) -> Result<&Open, Status> {
        if stateid.is_special() {
            return Err(Status::BAD_STATEID);
        }
        let parts = OtherParts::decode(&stateid.other);
        if parts.epoch != self.epoch {
            // From an earlier boot: STALE_STATEID in 4.0 (4.1 has BAD_STATEID only). A later
            // epoch was never ours: forged.
            let stale = parts.epoch < self.epoch;
            return Err(if minor == 0 && stale { Status::STALE_STATEID } else { Status::BAD_STATEID });
        }
        if parts.kind != StateKind::Open as u8 {
            return Err(Status::BAD_STATEID);
        }
        self.opens.by_other.get(&stateid.other).ok_or(Status::BAD_STATEID)
    }

    /// An open stateid usable now: live, its client's lease running (renewed for 4.0, where
    /// any use of a stateid renews), its owner confirmed (4.0), its seqid current (0 in 4.1:
    /// whatever is current), and of `file` if given.
    pub fn check_open_stateid(
        &mut self,
        minor: u32,
        stateid: &Stateid,
        file: Option<&FileHandle>,
        now: Instant,
        lease: Duration,
    ) -> Result<Open, Status> {
        let o = self.find_open(minor, stateid)?.clone();
        self.check_found(minor, &o, stateid, file, now, lease, false)?;
        Ok(o)
    }

    #[allow(clippy::too_many_arguments)]
    fn check_found(
        &mut self,
        minor: u32,
        o: &Open,
        stateid: &Stateid,
        file: Option<&FileHandle>,
        now: Instant,
        lease: Duration,
        unconfirmed_ok: bool,
    ) -> Result<(), Status> {
        match o.status {
            OpenStatus::Live => {}
            OpenStatus::Closed => return Err(Status::BAD_STATEID),
            OpenStatus::Expired => return Err(Status::EXPIRED),
        }
        match self.clients.get_mut(&o.owner.client) {
            None => return Err(Status::BAD_STATEID),
            Some(c) if c.lapsed(now, lease) => {
                self.expire_client(o.owner.client);
                return Err(Status::EXPIRED);
            }
            Some(c) if minor == 0 => c.renewed = now,
            Some(_) => {}
        }
        if !unconfirmed_ok && !self.opens.owners.get(&o.owner).is_some_and(|w| w.confirmed) {
            return Err(Status::BAD_STATEID);
        }
        if !(minor >= 1 && stateid.seqid == 0) {
            if stateid.seqid > o.seqid {
                return Err(Status::BAD_STATEID);
            }
            if stateid.seqid < o.seqid {
                return Err(Status::OLD_STATEID);
            }
        }
        if file.is_some_and(|f| *f != o.file) {
            return Err(Status::BAD_STATEID);
        }
        Ok(())
    }

    /// CLOSE: 4.0 returns the stateid with seqid + 1 (and keeps a tombstone), 4.1 the invalid
    /// special stateid. Refused with LOCKS_HELD while lock stateids made from the open hold
    /// locks; the others go with it.
    pub fn close(
        &mut self,
        minor: u32,
        stateid: &Stateid,
        file: &FileHandle,
        now: Instant,
        lease: Duration,
    ) -> Result<Stateid, Status> {
        let o = self.check_open_stateid(minor, stateid, Some(file), now, lease)?;
        if self.open_has_locks(&o.other) {
            return Err(Status::LOCKS_HELD);
        }
        self.remove_locks_of_open(&o.other);
        self.lock_manager.close_share(o.file.ino, &o.owner.engine());
        if minor == 0 {
            self.clear_tombstone(&o.owner);
            let next = self.opens.by_other.get_mut(&o.other).map(|open| {
                open.status = OpenStatus::Closed;
                open.bump()
            });
            if let Some(w) = self.opens.owners.get_mut(&o.owner) {
                w.opens.remove(&o.file);
                w.closed = Some(o.other);
            }
            return next.ok_or(Status::BAD_STATEID);
        }
        self.opens.by_other.remove(&o.other);
        let empty = self.opens.owners.get_mut(&o.owner).map(|w| {
            w.opens.remove(&o.file);
            w.opens.is_empty()
        });
        if empty == Some(true) {
            self.opens.owners.remove(&o.owner);
        }
        Ok(Stateid::INVALID)
    }

    /// OPEN_CONFIRM (4.0): confirms the owner, stateid seqid + 1.
    pub fn open_confirm(
        &mut self,
        stateid: &Stateid,
        file: &FileHandle,
        now: Instant,
        lease: Duration,
    ) -> Result<Stateid, Status> {
        let o = self.find_open(0, stateid)?.clone();
        self.check_found(0, &o, stateid, Some(file), now, lease, true)?;
        let owner = self.opens.owners.get_mut(&o.owner).ok_or(Status::BAD_STATEID)?;
        if owner.confirmed {
            return Err(Status::BAD_STATEID);
        }
        owner.confirmed = true;
        self.opens.by_other.get_mut(&o.other).map(Open::bump).ok_or(Status::BAD_STATEID)
    }

    /// OPEN_DOWNGRADE: the new modes must be within the current ones (access not empty).
    #[allow(clippy::too_many_arguments)]
    pub fn open_downgrade(
        &mut self,
        minor: u32,
        stateid: &Stateid,
        file: &FileHandle,
        access: ShareAccess,
        deny: ShareAccess,
        now: Instant,
        lease: Duration,
    ) -> Result<Stateid, Status> {
        let o = self.check_open_stateid(minor, stateid, Some(file), now, lease)?;
        if access.0 == 0 || !o.access.contains(access) || !o.deny.contains(deny) {
            return Err(Status::INVAL);
        }
        match self.lock_manager.downgrade_share(o.file.ino, &o.owner.engine(), access.engine(), deny.engine()) {
            Ok(()) => {}
            Err(ShareError::NotWithin) => return Err(Status::INVAL),
            Err(e) => {
                tracing::error!(error = %e, "NFSv4 OPEN_DOWNGRADE: the lock manager has no such open");
                return Err(Status::SERVERFAULT);
            }
        }
        if minor == 0 {
            self.clear_tombstone(&o.owner);
        }
        let open = self.opens.by_other.get_mut(&o.other).ok_or(Status::BAD_STATEID)?;
        open.access = access;
        open.deny = deny;
        Ok(open.bump())
    }

    /// TEST_STATEID for one stateid (open or lock) of `client`.
    pub fn test_stateid(&mut self, client: ClientId, stateid: &Stateid, now: Instant, lease: Duration) -> Status {
        if !stateid.is_special() && Tables::kind_of(stateid) == StateKind::Lock as u8 {
            return self.test_lock_stateid(client, stateid, now, lease);
        }
        let o = match self.find_open(1, stateid) {
            Ok(o) if o.owner.client == client => o.clone(),
            Ok(_) => return Status::BAD_STATEID,
            Err(st) => return st,
        };
        match self.check_found(1, &o, stateid, None, now, lease, false) {
            Ok(()) => Status::OK,
            Err(st) => st,
        }
    }

    /// FREE_STATEID: an open still held, or a lock stateid holding locks, answers LOCKS_HELD;
    /// an expired open, or a lock stateid holding nothing, is forgotten.
    pub fn free_stateid(&mut self, client: ClientId, stateid: &Stateid) -> Result<(), Status> {
        if !stateid.is_special() && Tables::kind_of(stateid) == StateKind::Lock as u8 {
            return self.free_lock_stateid(client, stateid);
        }
        let o = match self.find_open(1, stateid) {
            Ok(o) if o.owner.client == client => o.clone(),
            Ok(_) => return Err(Status::BAD_STATEID),
            Err(st) => return Err(st),
        };
        match o.status {
            OpenStatus::Live => Err(Status::LOCKS_HELD),
            OpenStatus::Closed | OpenStatus::Expired => {
                self.opens.by_other.remove(&o.other);
                if let Some(w) = self.opens.owners.get_mut(&o.owner) {
                    if w.opens.get(&o.file) == Some(&o.other) {
                        w.opens.remove(&o.file);
                    }
                }
                Ok(())
            }
        }
    }
}

impl State {
    /// Files whose opens went away without a CLOSE since the last call (see `Opens::released`).
    pub fn take_released(&self) -> Vec<FileHandle> {
        std::mem::take(&mut self.lock().opens.released)
    }

    /// Runs `f` on the tables with the time and lease, then writes the records if needed.
    pub fn with_tables<R>(&self, f: impl FnOnce(&mut Tables, Instant, Duration) -> R) -> R {
        let (now, lease) = (self.now(), self.config.lease);
        let mut t = self.lock();
        t.expiry_sweep(now, lease);
        let out = f(&mut t, now, lease);
        drop(t);
        self.persist_if_dirty();
        out
    }
}
