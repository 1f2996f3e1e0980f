//! NFSv4 state: client records, sessions and their slot reply caches, open stateids and share
//! reservations, lock-owners and lock stateids, leases, the grace period after a restart, and the
//! durable client records that make reclaim possible.
//!
//! Share reservations and byte-range locks themselves live in the engine's lock manager
//! ([`engine::locks::LockManager`], the one [`crate::v4::Nfs4::new`] attaches), so another
//! protocol's opens and locks of the same file conflict with these; the tables here keep the
//! NFSv4 side (stateids, owners, seqids) and call the manager under their lock (the manager's
//! own locks are leaves: it never calls back).
//!
//! Shared by every core. All tables sit behind one mutex ([`Tables`]), held only for short,
//! non-blocking stretches and never across an `.await`: operations that need the engine (OPEN's
//! lookup) do that first, then take the lock to change state. Writing the durable records file
//! (rare: a client confirmed, a RECLAIM_COMPLETE, a client gone) happens after the lock is
//! released, under a second lock that only orders the writes.
//!
//! Identifiers carry the boot epoch (seconds since 1970 at start, always above the previous
//! boot's), so a clientid, stateid or session from before a restart is recognised as stale:
//! clientid = epoch << 32 | counter; stateid.other = epoch (4 bytes) | kind (1) | counter (7).
//! Session ids are random.
//!
//! Leases expire lazily: a client whose lease ran out loses everything (sessions, opens and lock
//! stateids — which stay behind as "expired" so their stateids answer NFS4ERR_EXPIRED — and its
//! locks and share reservations in the engine) the next time anything touches it or its locks
//! stand in another client's way, when the table grows past [`CLIENTS_SWEEP_AT`] and is swept,
//! or at the latest [`EXPIRY_SWEEP_INTERVAL`] after it lapsed if any NFSv4 operation runs (so
//! that a dead client's locks do not block another protocol's clients, which the NFS tables
//! never see).
//!
//! - [`client`]: EXCHANGE_ID, CREATE_SESSION's client side, SETCLIENTID(_CONFIRM), RENEW, expiry.
//! - [`session`]: sessions, the slot table, SEQUENCE's rules and the reply cache.
//! - [`open`]: open-owners (NFSv4.0 seqid replay), opens, stateids, share reservations.
//! - [`lock`]: lock-owners, lock stateids; LOCK, LOCKT, LOCKU, RELEASE_LOCKOWNER.
//! - [`durable`]: the records file (atomic rewrite) and what it holds.
//! - [`wire`]: XDR pieces the state operations share.

pub mod client;
pub mod durable;
pub mod lock;
pub mod open;
pub mod session;
pub mod wire;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engine::locks::LockManager;
use engine::FileHandle;

use super::fh::Fh;
use super::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub use client::{Client, ClientId};
pub use open::{OpenOwnerKey, ShareAccess};
pub use session::{SessionId, SESSION_ID_BYTES};

/// When the client table holds more records than this, creating one first sweeps out the
/// expired ones.
pub const CLIENTS_SWEEP_AT: usize = 256;
/// Client records at most (new clients get NFS4ERR_DELAY / NFS4ERR_RESOURCE beyond).
pub const CLIENTS_MAX: usize = 16_384;
/// Open stateids at most, all clients together (new opens get NFS4ERR_RESOURCE / DELAY).
pub const OPENS_MAX: usize = 1 << 20;
/// Open-owners at most, all clients together.
pub const OWNERS_MAX: usize = 1 << 18;
/// Lock-owners at most, all clients together.
pub const LOCK_OWNERS_MAX: usize = 1 << 18;
/// Lock stateids at most, all clients together.
pub const LOCK_STATEIDS_MAX: usize = 1 << 20;
/// NFS4_OPAQUE_LIMIT: owner names, server owner and scope.
pub const OPAQUE_BYTES_MAX: usize = 1024;
/// How often at most clients whose lease ran out are looked for and expired (when NFSv4
/// operations run).
pub const EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A stateid4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stateid {
    pub seqid: u32,
    pub other: [u8; 12],
}

impl Stateid {
    /// The anonymous stateid (all zero): I/O without an open.
    pub const ANONYMOUS: Stateid = Stateid { seqid: 0, other: [0; 12] };
    /// The READ bypass stateid (all ones).
    pub const BYPASS: Stateid = Stateid { seqid: u32::MAX, other: [0xFF; 12] };
    /// NFSv4.1 "current stateid" (RFC 8881 section 8.2.3).
    pub const CURRENT: Stateid = Stateid { seqid: 1, other: [0; 12] };
    /// NFSv4.1 "invalid stateid": what CLOSE returns.
    pub const INVALID: Stateid = Stateid { seqid: u32::MAX, other: [0; 12] };

    pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Stateid> {
        let seqid = r.u32("stateid seqid")?;
        let b = r.opaque_fixed("stateid other", 12)?;
        let mut other = [0u8; 12];
        other.copy_from_slice(b);
        Ok(Stateid { seqid, other })
    }

    pub fn encode(&self, w: &mut Writer) {
        w.put_u32(self.seqid);
        w.put_opaque_fixed(&self.other);
    }

    /// One of the special stateids (`other` all zero or all ones).
    pub fn is_special(&self) -> bool {
        self.other == [0; 12] || self.other == [0xFF; 12]
    }
}

/// What kind of state a stateid names (byte 4 of `other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StateKind {
    Open = 1,
    Lock = 2,
}

/// The parts of a stateid's `other` we mint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtherParts {
    pub epoch: u32,
    pub kind: u8,
    pub counter: u64,
}

impl OtherParts {
    pub fn encode(&self) -> [u8; 12] {
        let mut o = [0u8; 12];
        o[..4].copy_from_slice(&self.epoch.to_be_bytes());
        o[4] = self.kind;
        o[5..].copy_from_slice(&self.counter.to_be_bytes()[1..]);
        o
    }

    pub fn decode(o: &[u8; 12]) -> OtherParts {
        let epoch = u32::from_be_bytes([o[0], o[1], o[2], o[3]]);
        let counter = u64::from_be_bytes([0, o[5], o[6], o[7], o[8], o[9], o[10], o[11]]);
        OtherParts { epoch, kind: o[4], counter }
    }
}

/// The session slot a SEQUENCE chose, for the rest of its COMPOUND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqSlot {
    pub session: [u8; 16],
    pub slot: u32,
    pub seqid: u32,
    pub cache_this: bool,
    /// The session's client.
    pub client: ClientId,
}

/// What an I/O operation does with a stateid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoAccess {
    Read,
    Write,
}

/// Where time comes from (injected so tests can move it).
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The system's monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

#[derive(Debug, Clone)]
pub struct StateConfig {
    /// How long a client's state lives without renewal (the `lease_time` attribute).
    pub lease: Duration,
    /// How long after a restart only reclaims are allowed (if any client records were loaded).
    pub grace: Duration,
    /// Where the durable client records live; `None`: nothing survives a restart (no grace).
    pub dir: Option<PathBuf>,
}

impl Default for StateConfig {
    fn default() -> StateConfig {
        StateConfig { lease: Duration::from_secs(90), grace: Duration::from_secs(90), dir: None }
    }
}

/// Every table, behind [`State`]'s one lock.
pub struct Tables {
    pub epoch: u32,
    /// Counter for clientids (low 32 bits).
    pub next_client: u32,
    /// Counter for stateids (56 bits).
    pub next_state: u64,
    pub clients: HashMap<ClientId, Client>,
    pub sessions: HashMap<SessionId, session::Session>,
    pub opens: open::Opens,
    /// Lock-owners and lock stateids.
    pub locks: lock::Locks,
    /// Share reservations and byte-range locks (the engine's, shared with other protocols).
    pub lock_manager: Arc<LockManager>,
    /// When clients whose lease ran out are next looked for.
    pub next_expiry_sweep: Option<Instant>,
    pub grace: Grace,
    /// The durable records changed: rewrite the file after the lock is released.
    pub dirty: bool,
}

/// The grace period after a restart.
#[derive(Debug, Default)]
pub struct Grace {
    /// When it ends at the latest; `None`: no grace (fresh start, or already over).
    pub until: Option<Instant>,
    /// Clients of the previous boot by owner: whether they may reclaim, and whether they said
    /// RECLAIM_COMPLETE in this boot.
    pub previous: HashMap<Vec<u8>, durable::Record>,
    /// Owners from `previous` done reclaiming.
    pub done: std::collections::HashSet<Vec<u8>>,
}

impl Grace {
    /// Whether the grace period is still on at `now`.
    pub fn on(&self, now: Instant) -> bool {
        match self.until {
            Some(until) if now < until => {
                // Over early once every client of the previous boot that may reclaim said
                // RECLAIM_COMPLETE; 4.0 clients cannot say so, so any of them keeps it on to
                // the end.
                self.previous
                    .iter()
                    .filter(|(_, rec)| rec.may_reclaim())
                    .any(|(owner, rec)| rec.minor == 0 || !self.done.contains(owner))
            }
            _ => false,
        }
    }

    /// Whether a client with this owner may reclaim in this boot.
    pub fn may_reclaim(&self, owner: &[u8]) -> bool {
        self.previous.get(owner).is_some_and(durable::Record::may_reclaim)
    }
}

/// NFSv4 state shared by every core.
pub struct State {
    pub config: StateConfig,
    clock: Arc<dyn Clock>,
    /// Stable across restarts when there is a state directory: server_owner and server_scope.
    server_id: u64,
    tables: Mutex<Tables>,
    /// Orders rewrites of the records file.
    persist: Mutex<()>,
}

impl State {
    /// State without durable records (`config.dir` must be `None`; see [`State::open`]).
    pub fn new(config: StateConfig) -> State {
        debug_assert!(config.dir.is_none(), "State::new ignores config.dir: use State::open");
        let epoch = epoch_after(0);
        State::build(config, Arc::new(SystemClock), epoch, rand::random(), Vec::new())
    }

    /// State with durable records in `config.dir` (created if missing): loads the previous
    /// boot's clients, starts a grace period if there were any, and writes the new boot epoch.
    pub fn open(config: StateConfig) -> std::io::Result<State> {
        State::open_with_clock(config, Arc::new(SystemClock))
    }

    pub fn open_with_clock(config: StateConfig, clock: Arc<dyn Clock>) -> std::io::Result<State> {
        let Some(dir) = config.dir.clone() else {
            let epoch = epoch_after(0);
            return Ok(State::build(config, clock, epoch, rand::random(), Vec::new()));
        };
        std::fs::create_dir_all(&dir)?;
        let file = durable::load(&dir)?;
        let (prev_epoch, server_id, records) = match file {
            Some(f) => (f.epoch, f.server_id, f.records),
            None => (0, rand::random(), Vec::new()),
        };
        let epoch = epoch_after(prev_epoch);
        let state = State::build(config, clock, epoch, server_id, records);
        state.persist_now()?;
        Ok(state)
    }

    fn build(
        config: StateConfig,
        clock: Arc<dyn Clock>,
        epoch: u32,
        server_id: u64,
        records: Vec<durable::Record>,
    ) -> State {
        let now = clock.now();
        let mut grace = Grace::default();
        if !records.is_empty() {
            grace.until = Some(now + config.grace);
            grace.previous = records.into_iter().map(|r| (r.owner.clone(), r)).collect();
            tracing::info!(
                clients = grace.previous.len(),
                grace_s = config.grace.as_secs(),
                "NFSv4 grace period begins"
            );
        }
        let tables = Tables {
            epoch,
            next_client: 1,
            next_state: 1,
            clients: HashMap::new(),
            sessions: HashMap::new(),
            opens: open::Opens::default(),
            locks: lock::Locks::default(),
            lock_manager: Arc::new(LockManager::default()),
            next_expiry_sweep: None,
            grace,
            dirty: false,
        };
        State { config, clock, server_id, tables: Mutex::new(tables), persist: Mutex::new(()) }
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The lease in seconds (the `lease_time` attribute).
    pub fn lease_seconds(&self) -> u32 {
        u32::try_from(self.config.lease.as_secs()).unwrap_or(u32::MAX).max(1)
    }

    /// The boot epoch inside clientids and stateids.
    pub fn epoch(&self) -> u32 {
        self.lock().epoch
    }

    /// server_owner.so_major_id and server_scope: the same across restarts (with a state dir).
    pub fn server_owner(&self) -> Vec<u8> {
        format!("bucketfs-{:016x}", self.server_id).into_bytes()
    }

    /// Whether the grace period is on (only reclaims may open files).
    pub fn in_grace(&self) -> bool {
        let now = self.now();
        self.lock().grace.on(now)
    }

    /// Makes `manager` hold this server's share reservations and byte-range locks: the engine's,
    /// so that other protocols see them ([`crate::v4::Nfs4::new`] does this). Until then a
    /// private one is used. Call it before clients have state: nothing is moved over.
    pub fn use_lock_manager(&self, manager: Arc<LockManager>) {
        let mut t = self.lock();
        debug_assert!(t.opens.by_other.is_empty() && t.locks.by_other.is_empty(), "lock manager swapped under state");
        t.lock_manager = manager;
    }

    /// The lock manager behind share reservations and byte-range locks.
    pub fn lock_manager(&self) -> Arc<LockManager> {
        self.lock().lock_manager.clone()
    }

    /// The tables, locked. A poisoned lock (a panic while it was held) is taken over: every
    /// update keeps the tables consistent step by step.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After a COMPOUND that began with SEQUENCE: keep its reply in the slot.
    pub fn finish_compound(&self, seq: &SeqSlot, reply: &Writer) {
        let mut t = self.lock();
        if let Some(s) = t.sessions.get_mut(&seq.session) {
            s.finish(seq, reply);
        }
    }

    /// Whether `stateid` may be used for I/O of kind `access` on `fh` (agreed with READ/WRITE):
    /// special stateids for reads, open stateids known, live, of that file and not old.
    pub fn check_stateid(&self, minor: u32, stateid: &Stateid, fh: &Fh, access: IoAccess) -> Result<(), Status> {
        if *stateid == Stateid::ANONYMOUS {
            return Ok(());
        }
        if *stateid == Stateid::BYPASS {
            return match access {
                IoAccess::Read => Ok(()),
                IoAccess::Write => Err(Status::BAD_STATEID),
            };
        }
        if stateid.is_special() {
            return Err(Status::BAD_STATEID);
        }
        let Fh::Export(file) = fh else { return Err(Status::BAD_STATEID) };
        let (now, lease) = (self.now(), self.config.lease);
        let mut t = self.lock();
        t.expiry_sweep(now, lease);
        let open = if OtherParts::decode(&stateid.other).kind == StateKind::Lock as u8 {
            // A lock stateid: the access of the open it was made from.
            t.check_lock_stateid(minor, stateid, Some(file), now, lease)
                .and_then(|l| t.opens.by_other.get(&l.open).cloned().ok_or(Status::BAD_STATEID))
        } else {
            t.check_open_stateid(minor, stateid, Some(file), now, lease)
        };
        let out = open.and_then(|o| match (access, o.access.write()) {
            (IoAccess::Write, false) => Err(Status::OPENMODE),
            _ => Ok(()),
        });
        drop(t);
        self.persist_if_dirty();
        out
    }

    /// Rewrites the records file if something durable changed. Errors are logged: the reply
    /// already went out or is about to, and the next change retries.
    pub(crate) fn persist_if_dirty(&self) {
        if self.config.dir.is_none() {
            return;
        }
        if !self.lock().dirty {
            return;
        }
        if let Err(e) = self.persist_now() {
            tracing::error!(error = %e, "NFSv4 client records not written");
        }
    }

    /// Rewrites the records file now (holding the write-ordering lock).
    fn persist_now(&self) -> std::io::Result<()> {
        let Some(dir) = &self.config.dir else { return Ok(()) };
        let _order = self.persist.lock().unwrap_or_else(|p| p.into_inner());
        let file = {
            let mut t = self.lock();
            t.dirty = false;
            t.durable_snapshot(self.server_id, self.now())
        };
        durable::store(dir, &file).inspect_err(|_| self.lock().dirty = true)
    }
}

impl Drop for State {
    /// The locks and share reservations of this server's clients leave the lock manager, which
    /// outlives it (it is the engine's).
    fn drop(&mut self) {
        let t = self.lock();
        for id in t.clients.keys() {
            t.lock_manager.release_client(id.0);
        }
    }
}

impl Tables {
    /// A new clientid of this boot.
    pub fn new_clientid(&mut self) -> ClientId {
        let id = ClientId(u64::from(self.epoch) << 32 | u64::from(self.next_client));
        self.next_client = self.next_client.wrapping_add(1).max(1);
        id
    }

    /// A new stateid `other` of this boot.
    pub fn new_other(&mut self, kind: StateKind) -> [u8; 12] {
        let counter = self.next_state & 0x00FF_FFFF_FFFF_FFFF;
        self.next_state = self.next_state.wrapping_add(1);
        OtherParts { epoch: self.epoch, kind: kind as u8, counter }.encode()
    }

    /// Whether a clientid was minted in this boot.
    pub fn is_this_boot(&self, id: ClientId) -> bool {
        (id.0 >> 32) as u32 == self.epoch
    }

    /// Expires clients whose lease ran out, at most once per [`EXPIRY_SWEEP_INTERVAL`]: their
    /// locks and share reservations leave the engine even if no NFSv4 client asks for them.
    pub fn expiry_sweep(&mut self, now: Instant, lease: Duration) {
        if self.next_expiry_sweep.is_some_and(|t| now < t) {
            return;
        }
        self.next_expiry_sweep = Some(now + EXPIRY_SWEEP_INTERVAL);
        let lapsed: Vec<ClientId> =
            self.clients.values().filter(|c| !c.expired && c.lapsed(now, lease)).map(|c| c.id).collect();
        for id in lapsed {
            self.expire_client(id);
        }
    }

    /// What kind of state a stateid of ours names (byte 4 of `other`).
    pub fn kind_of(stateid: &Stateid) -> u8 {
        OtherParts::decode(&stateid.other).kind
    }

    /// What the records file should hold now.
    fn durable_snapshot(&mut self, server_id: u64, now: Instant) -> durable::File {
        let mut records: Vec<durable::Record> = self
            .clients
            .values()
            .filter(|c| c.confirmed && !c.expired)
            .map(|c| durable::Record { owner: c.owner.clone(), minor: c.minor, reclaim_complete: c.reclaim_complete })
            .collect();
        if self.grace.on(now) {
            // Clients of the previous boot that have not come back yet may still reclaim after
            // another restart.
            for (owner, rec) in &self.grace.previous {
                if !records.iter().any(|r| &r.owner == owner) {
                    records.push(rec.clone());
                }
            }
        }
        records.sort_by(|a, b| a.owner.cmp(&b.owner));
        durable::File { epoch: self.epoch, server_id, records }
    }
}

impl Compound<'_> {
    /// Replaces the NFSv4.1 "current stateid" special value with the compound's current
    /// stateid (RFC 8881 section 16.2.3.1.2); other stateids are returned as they are.
    pub fn resolve_stateid(&self, s: Stateid) -> Result<Stateid, Status> {
        if self.minor >= 1 && s == Stateid::CURRENT {
            return self.current_stateid.ok_or(Status::BAD_STATEID);
        }
        Ok(s)
    }

    /// The state tables.
    pub fn state(&self) -> &State {
        &self.server.state
    }
}

/// A boot epoch above `previous` (seconds since 1970, or `previous + 1` if the clock is behind).
fn epoch_after(previous: u32) -> u32 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let now = u32::try_from(now).unwrap_or(u32::MAX);
    now.max(previous.wrapping_add(1)).max(1)
}

/// Maps an XDR decode failure of an operation's arguments.
pub fn badxdr(e: xdr::XdrError) -> Status {
    tracing::debug!(error = %e, "NFSv4 operation arguments do not decode");
    Status::BADXDR
}

/// The engine handle behind a file handle, if it is one.
pub fn export_handle(fh: &Fh) -> Option<FileHandle> {
    match fh {
        Fh::Export(h) => Some(*h),
        Fh::Pseudo(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_parts_round_trip() {
        let p = OtherParts { epoch: 0xDEAD_BEEF, kind: 1, counter: 0x00AB_CDEF_0123_4567 };
        assert_eq!(OtherParts::decode(&p.encode()), p);
        assert!(!Stateid { seqid: 1, other: p.encode() }.is_special());
        assert!(Stateid::CURRENT.is_special() && Stateid::BYPASS.is_special());
    }

    #[test]
    fn epochs_increase() {
        assert!(epoch_after(0) > 1_600_000_000);
        assert_eq!(epoch_after(u32::MAX - 1), u32::MAX);
    }
}
