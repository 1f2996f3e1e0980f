//! Client records: NFSv4.1 EXCHANGE_ID (RFC 8881 section 18.35.5, the cases a client that
//! reboots needs) and NFSv4.0 SETCLIENTID / SETCLIENTID_CONFIRM (RFC 7530 sections 16.33.5,
//! 16.34.5), RENEW, DESTROY_CLIENTID, RECLAIM_COMPLETE, lease expiry.
//!
//! A record starts unconfirmed; CREATE_SESSION (4.1) or SETCLIENTID_CONFIRM (4.0) confirms it,
//! which also drops an older confirmed record of the same owner (the client rebooted) with all
//! its state. Principals are not compared (AUTH_SYS only): CLID_INUSE is never returned.

use std::time::{Duration, Instant};

use super::session::{CreateSessionOk, SessionId};
use super::{State, Status, Tables, CLIENTS_MAX, CLIENTS_SWEEP_AT};

/// A clientid4: boot epoch in the high 32 bits, a counter in the low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// One client record.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: ClientId,
    pub owner: Vec<u8>,
    pub verifier: [u8; 8],
    /// 0: created by SETCLIENTID; else by EXCHANGE_ID in this minor version.
    pub minor: u32,
    pub confirmed: bool,
    /// The lease ran out: sessions gone, opens revoked. Kept so stateids answer EXPIRED.
    pub expired: bool,
    /// Last lease renewal.
    pub renewed: Instant,
    /// RECLAIM_COMPLETE done (4.1).
    pub reclaim_complete: bool,
    /// May reclaim (OPEN CLAIM_PREVIOUS): a client of the previous boot, back during grace.
    pub reclaimable: bool,
    /// 4.1: the csa_sequence the next CREATE_SESSION must carry, and the last one's result.
    pub cs_seq: u32,
    pub cs_last: Option<(u32, CreateSessionOk)>,
    pub sessions: Vec<SessionId>,
    /// 4.0: the verifier SETCLIENTID_CONFIRM must present, and one for a callback update of a
    /// confirmed record.
    pub confirm_verifier: [u8; 8],
    pub update_verifier: Option<[u8; 8]>,
}

impl Client {
    fn new(id: ClientId, owner: &[u8], verifier: [u8; 8], minor: u32, now: Instant) -> Client {
        Client {
            id,
            owner: owner.to_vec(),
            verifier,
            minor,
            confirmed: false,
            expired: false,
            renewed: now,
            reclaim_complete: false,
            reclaimable: false,
            cs_seq: 1,
            cs_last: None,
            sessions: Vec::new(),
            confirm_verifier: [0; 8],
            update_verifier: None,
        }
    }

    /// Whether the lease ran out at `now`.
    pub fn lapsed(&self, now: Instant, lease: Duration) -> bool {
        self.expired || now.saturating_duration_since(self.renewed) > lease
    }

    /// Same protocol family: a 4.0 owner and a 4.1 owner with the same name are different clients.
    fn same_kind(&self, minor: u32) -> bool {
        (self.minor == 0) == (minor == 0)
    }
}

/// What EXCHANGE_ID answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeIdOk {
    pub clientid: ClientId,
    pub sequenceid: u32,
    pub confirmed: bool,
}

impl Tables {
    /// A live client of this boot: STALE_CLIENTID if unknown, EXPIRED if its lease ran out
    /// (expiring it now if that had not been noticed yet).
    pub fn live_client(&mut self, id: ClientId, now: Instant, lease: Duration) -> Result<&mut Client, Status> {
        if !self.is_this_boot(id) {
            return Err(Status::STALE_CLIENTID);
        }
        let lapsed = self.clients.get(&id).ok_or(Status::STALE_CLIENTID)?.lapsed(now, lease);
        if lapsed {
            self.expire_client(id);
            return Err(Status::EXPIRED);
        }
        self.clients.get_mut(&id).ok_or(Status::STALE_CLIENTID)
    }

    /// The lease ran out: sessions destroyed, opens and lock stateids revoked (their stateids
    /// answer EXPIRED), its locks and share reservations gone from the engine.
    pub fn expire_client(&mut self, id: ClientId) {
        let Some(c) = self.clients.get_mut(&id) else { return };
        if c.expired {
            return;
        }
        tracing::info!(clientid = id.0, confirmed = c.confirmed, "NFSv4 client lease expired");
        c.expired = true;
        self.dirty |= c.confirmed;
        for s in std::mem::take(&mut c.sessions) {
            self.sessions.remove(&s);
        }
        self.revoke_opens_of(id);
        self.revoke_locks_of(id);
        let released = self.lock_manager.release_client(id.0);
        if released.ranges + released.shares > 0 {
            tracing::info!(
                clientid = id.0,
                ranges = released.ranges,
                opens = released.shares,
                "NFSv4 client's locks released"
            );
        }
    }

    /// Forgets a client and all its state.
    pub fn remove_client(&mut self, id: ClientId) {
        let Some(c) = self.clients.remove(&id) else { return };
        self.dirty |= c.confirmed && !c.expired;
        for s in &c.sessions {
            self.sessions.remove(s);
        }
        self.remove_opens_of(id);
        self.remove_locks_of(id);
        self.lock_manager.release_client(id.0);
    }

    /// Drops clients whose lease ran out (once the table is large).
    pub fn maybe_sweep(&mut self, now: Instant, lease: Duration) {
        if self.clients.len() <= CLIENTS_SWEEP_AT {
            return;
        }
        let lapsed: Vec<ClientId> = self.clients.values().filter(|c| c.lapsed(now, lease)).map(|c| c.id).collect();
        for id in lapsed {
            self.remove_client(id);
        }
    }

    fn add_client(&mut self, owner: &[u8], verifier: [u8; 8], minor: u32, now: Instant) -> Result<ClientId, Status> {
        if self.clients.len() >= CLIENTS_MAX {
            tracing::warn!(clients = self.clients.len(), "NFSv4 client table full");
            return Err(if minor == 0 { Status::RESOURCE } else { Status::DELAY });
        }
        let id = self.new_clientid();
        self.clients.insert(id, Client::new(id, owner, verifier, minor, now));
        Ok(id)
    }

    /// Confirmed or unconfirmed records of this owner and kind.
    fn by_owner(&self, owner: &[u8], minor: u32, confirmed: bool) -> Vec<ClientId> {
        self.clients
            .values()
            .filter(|c| c.owner == owner && c.same_kind(minor) && c.confirmed == confirmed)
            .map(|c| c.id)
            .collect()
    }

    /// The live confirmed record of this owner, dropping lapsed ones on the way.
    fn confirmed_of(&mut self, owner: &[u8], minor: u32, now: Instant, lease: Duration) -> Option<ClientId> {
        let mut found = None;
        for id in self.by_owner(owner, minor, true) {
            if self.clients.get(&id).is_some_and(|c| c.lapsed(now, lease)) {
                self.remove_client(id);
            } else {
                found = Some(id);
            }
        }
        found
    }

    /// Confirms a record: an older confirmed record of the same owner (the client rebooted)
    /// goes with its state; during grace a client of the previous boot may reclaim.
    pub fn confirm_client(&mut self, id: ClientId, now: Instant) {
        let Some(c) = self.clients.get(&id) else { return };
        let (owner, minor) = (c.owner.clone(), c.minor);
        for old in self.by_owner(&owner, minor, true) {
            tracing::info!(old = old.0, new = id.0, "NFSv4 client rebooted: its old state goes");
            self.remove_client(old);
        }
        let reclaimable = self.grace.on(now) && self.grace.may_reclaim(&owner);
        if let Some(c) = self.clients.get_mut(&id) {
            c.confirmed = true;
            c.reclaimable = reclaimable;
            c.renewed = now;
            self.dirty = true;
        }
    }
}

impl State {
    /// EXCHANGE_ID: `update` is EXCHGID4_FLAG_UPD_CONFIRMED_REC_A.
    pub fn exchange_id(
        &self,
        owner: &[u8],
        verifier: [u8; 8],
        minor: u32,
        update: bool,
    ) -> Result<ExchangeIdOk, Status> {
        let (now, lease) = (self.now(), self.config.lease);
        let mut t = self.lock();
        t.maybe_sweep(now, lease);
        let confirmed = t.confirmed_of(owner, minor, now, lease);
        let existing = confirmed.and_then(|id| t.clients.get(&id)).map(|c| (c.id, c.verifier, c.cs_seq));
        let out = match (existing, update) {
            (None, true) => Err(Status::NOENT),
            (Some((_, v, _)), true) if v != verifier => Err(Status::NOT_SAME),
            (Some((id, v, sequenceid)), _) if v == verifier => {
                // The same incarnation again (or an update of it): same clientid.
                if let Some(c) = t.clients.get_mut(&id) {
                    c.renewed = now;
                }
                Ok(ExchangeIdOk { clientid: id, sequenceid, confirmed: true })
            }
            _ => {
                // New client, or a new incarnation of a confirmed one (its old record stays
                // until CREATE_SESSION confirms this one). An unconfirmed record is replaced.
                for id in t.by_owner(owner, minor, false) {
                    t.remove_client(id);
                }
                t.add_client(owner, verifier, minor, now).map(|id| ExchangeIdOk {
                    clientid: id,
                    sequenceid: 1,
                    confirmed: false,
                })
            }
        };
        drop(t);
        self.persist_if_dirty();
        out
    }

    /// SETCLIENTID: the clientid and the verifier SETCLIENTID_CONFIRM must present.
    pub fn setclientid(&self, owner: &[u8], verifier: [u8; 8]) -> Result<(ClientId, [u8; 8]), Status> {
        let (now, lease) = (self.now(), self.config.lease);
        let confirm: [u8; 8] = rand::random();
        let mut t = self.lock();
        t.maybe_sweep(now, lease);
        let confirmed = t.confirmed_of(owner, 0, now, lease);
        if let Some(c) = confirmed.and_then(|id| t.clients.get_mut(&id)) {
            if c.verifier == verifier {
                // A callback update of the confirmed record: same clientid.
                c.update_verifier = Some(confirm);
                return Ok((c.id, confirm));
            }
        }
        for id in t.by_owner(owner, 0, false) {
            t.remove_client(id);
        }
        let id = t.add_client(owner, verifier, 0, now)?;
        if let Some(c) = t.clients.get_mut(&id) {
            c.confirm_verifier = confirm;
        }
        Ok((id, confirm))
    }

    /// SETCLIENTID_CONFIRM.
    pub fn setclientid_confirm(&self, id: ClientId, confirm: [u8; 8]) -> Result<(), Status> {
        let now = self.now();
        let mut t = self.lock();
        if !t.is_this_boot(id) {
            return Err(Status::STALE_CLIENTID);
        }
        let c = t.clients.get_mut(&id).filter(|c| c.minor == 0 && !c.expired).ok_or(Status::STALE_CLIENTID)?;
        if c.confirmed {
            if c.update_verifier == Some(confirm) || c.confirm_verifier == confirm {
                // The callback update, or a retransmission of the confirmation.
                c.update_verifier = None;
                c.renewed = now;
                return Ok(());
            }
            return Err(Status::STALE_CLIENTID);
        }
        if c.confirm_verifier != confirm {
            return Err(Status::STALE_CLIENTID);
        }
        t.confirm_client(id, now);
        drop(t);
        self.persist_if_dirty();
        Ok(())
    }

    /// RENEW (4.0) and any other renewal by clientid: STALE_CLIENTID, EXPIRED, or a new lease.
    pub fn renew(&self, id: ClientId) -> Result<(), Status> {
        let (now, lease) = (self.now(), self.config.lease);
        let mut t = self.lock();
        t.expiry_sweep(now, lease);
        let out = match t.live_client(id, now, lease) {
            Ok(c) if !c.confirmed => Err(Status::STALE_CLIENTID),
            Ok(c) => {
                c.renewed = now;
                Ok(())
            }
            Err(st) => Err(st),
        };
        drop(t);
        self.persist_if_dirty();
        out
    }

    /// DESTROY_CLIENTID: only a client without sessions and opens.
    pub fn destroy_clientid(&self, id: ClientId) -> Result<(), Status> {
        let mut t = self.lock();
        if !t.is_this_boot(id) {
            return Err(Status::STALE_CLIENTID);
        }
        let c = t.clients.get(&id).filter(|c| c.minor != 0).ok_or(Status::STALE_CLIENTID)?;
        if !c.sessions.is_empty() || t.has_live_opens(id) {
            return Err(Status::CLIENTID_BUSY);
        }
        t.remove_client(id);
        drop(t);
        self.persist_if_dirty();
        Ok(())
    }

    /// RECLAIM_COMPLETE (rca_one_fs = false): the client reclaimed all it is going to.
    pub fn reclaim_complete(&self, id: ClientId) -> Result<(), Status> {
        let (now, lease) = (self.now(), self.config.lease);
        let mut t = self.lock();
        let c = t.live_client(id, now, lease)?;
        if c.reclaim_complete {
            return Err(Status::COMPLETE_ALREADY);
        }
        c.reclaim_complete = true;
        c.reclaimable = false;
        let owner = c.owner.clone();
        t.dirty = true;
        if t.grace.previous.contains_key(&owner) {
            t.grace.done.insert(owner);
            if !t.grace.on(now) && t.grace.until.is_some() {
                tracing::info!("NFSv4 grace period over: every client reclaimed");
                t.grace.until = None;
            }
        }
        drop(t);
        self.persist_if_dirty();
        Ok(())
    }

    /// The client of a 4.1 session slot, renewed (the lease was renewed by SEQUENCE already).
    pub fn client_of(&self, id: ClientId) -> Result<Client, Status> {
        let (now, lease) = (self.now(), self.config.lease);
        let mut t = self.lock();
        t.live_client(id, now, lease).map(|c| c.clone())
    }
}
