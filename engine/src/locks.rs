//! The lock manager: byte-range locks and share reservations of every protocol in one place, so
//! an NFS client and an SMB client of the same file see each other's locks and share modes.
//!
//! What it holds, per file (an inode number, [`FileId`]):
//! - **byte-range locks**: shared or exclusive locks over `[offset, last]` (a range may run to
//!   the end of the file however long it grows), each held by an opaque [`LockOwner`]. POSIX
//!   semantics per owner: a new lock over the owner's own ranges replaces them (upgrade,
//!   downgrade), an unlock of part of a range splits it, adjacent ranges of the same kind are
//!   coalesced. Ranges of different owners conflict when they overlap and one is exclusive.
//! - **share reservations**: one open per owner and file with access and deny bits (NFSv4
//!   OPEN share_access/share_deny, SMB share modes); an open conflicts with another owner's
//!   when its access meets their deny or its deny meets their access.
//!
//! Owners are protocol-neutral: `client` is the protocol's client identity (the NFSv4
//! clientid; an SMB session), `owner` the bytes naming the owner within it (the NFSv4 lock- or
//! open-owner; an SMB handle). Callers keep client ids of different protocols apart (one
//! protocol's lease expiry calls [`LockManager::release_client`] with its own ids only).
//! Byte-range locks and share reservations are separate tables: releasing an owner's locks
//! leaves its opens alone.
//!
//! Nothing waits here. A request that conflicts fails at once and names the holder
//! ([`Conflict`], [`ShareConflict`]); blocking locks are the client's retry loop (NFSv4 LOCK
//! answers DENIED and the client polls). Everything is bounded ([`LockLimits`]): beyond a limit
//! a request fails with [`LimitExceeded`] and changes nothing. NFSv4 maps it to
//! NFS4ERR_RESOURCE (4.0) or NFS4ERR_DENIED (4.1, where RESOURCE is not an error of LOCK) for a
//! LOCK, and to NFS4ERR_LOCK_RANGE for a LOCKU that would have to split a range.
//!
//! Where it runs: on the protocol threads that call it (the NFS connection cores; SMB later),
//! never on the read path. A call takes the mutex of its file's shard ([`SHARDS`] shards by
//! file id) and, for a few hash-map updates, the mutex of the owner index (always in that
//! order); neither is held across anything that waits. Release of a client or owner visits
//! the files the index names, one shard at a time.

#![warn(missing_docs)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Mutex, MutexGuard};

use crate::error::Action;

/// The file a lock is on: its inode number (unique across the engine's exports).
pub type FileId = u64;

/// The `length` that means "to the end of the file", as NFSv4 carries it.
pub const LEN_TO_EOF: u64 = u64::MAX;

/// Shards of the per-file tables (by file id).
pub const SHARDS: usize = 64;

/// Who holds a lock or an open: a client and an opaque owner name within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockOwner {
    /// The protocol's client identity (NFSv4 clientid; SMB session).
    pub client: u64,
    /// The owner's name within the client (NFSv4 lock-owner or open-owner bytes; SMB handle).
    pub owner: Vec<u8>,
}

impl LockOwner {
    /// An owner of `client` named `owner`.
    pub fn new(client: u64, owner: impl Into<Vec<u8>>) -> LockOwner {
        LockOwner { client, owner: owner.into() }
    }
}

impl fmt::Display for LockOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {:#x} owner ", self.client)?;
        for b in self.owner.iter().take(32) {
            write!(f, "{b:02x}")?;
        }
        if self.owner.len() > 32 {
            write!(f, "…")?;
        }
        Ok(())
    }
}

/// A byte-range lock's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockKind {
    /// A read lock: others may hold shared locks over the same bytes.
    Shared,
    /// A write lock: nobody else may hold any lock over the same bytes.
    Exclusive,
}

impl LockKind {
    /// Whether locks of these kinds held by different owners over common bytes conflict.
    pub fn conflicts_with(self, other: LockKind) -> bool {
        self == LockKind::Exclusive || other == LockKind::Exclusive
    }
}

/// A non-empty byte range `[start, last]`; `last == u64::MAX` means to the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockRange {
    start: u64,
    last: u64,
}

/// Why `(offset, length)` is no range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Length 0.
    #[error("empty byte range (length 0)")]
    Empty,
    /// `offset + length` is past the largest offset (and the length is not "to end of file").
    #[error("byte range past the largest offset")]
    Overflow,
}

impl RangeError {
    /// What the caller should do: fix the request.
    pub fn action(&self) -> Action {
        Action::FixInput
    }
}

impl LockRange {
    /// `[offset, offset + length)`; [`LEN_TO_EOF`] runs to the end of the file. Length 0 and
    /// an end past `u64::MAX` (other than to the end of file) are refused.
    pub fn new(offset: u64, length: u64) -> Result<LockRange, RangeError> {
        match length {
            0 => Err(RangeError::Empty),
            LEN_TO_EOF => Ok(LockRange { start: offset, last: u64::MAX }),
            _ => {
                let end = offset.checked_add(length).ok_or(RangeError::Overflow)?;
                Ok(LockRange { start: offset, last: end - 1 })
            }
        }
    }

    /// From `offset` to the end of the file.
    pub fn to_eof(offset: u64) -> LockRange {
        LockRange { start: offset, last: u64::MAX }
    }

    /// The first byte.
    pub fn offset(&self) -> u64 {
        self.start
    }

    /// The last byte (`u64::MAX`: the range runs to the end of the file).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The length as NFS and SMB carry it: [`LEN_TO_EOF`] for a range to the end of file.
    pub fn length(&self) -> u64 {
        if self.last == u64::MAX {
            LEN_TO_EOF
        } else {
            self.last - self.start + 1
        }
    }

    /// Whether the range runs to the end of the file.
    pub fn is_to_eof(&self) -> bool {
        self.last == u64::MAX
    }

    /// Whether the two ranges share a byte.
    pub fn overlaps(&self, other: &LockRange) -> bool {
        self.start <= other.last && other.start <= self.last
    }
}

impl fmt::Display for LockRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_to_eof() {
            write!(f, "{}..EOF", self.start)
        } else {
            write!(f, "{}..={}", self.start, self.last)
        }
    }
}

/// One byte-range lock as held.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeldLock {
    /// Who holds it.
    pub owner: LockOwner,
    /// The bytes (adjacent ranges of one owner and kind are one).
    pub range: LockRange,
    /// Shared or exclusive.
    pub kind: LockKind,
}

/// The lock that stands in the way of a request: who holds it, over what, of which kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} lock over {range} held by {owner}")]
pub struct Conflict {
    /// Who holds the conflicting lock.
    pub owner: LockOwner,
    /// Its whole range (not only the part that overlaps the request).
    pub range: LockRange,
    /// Its kind.
    pub kind: LockKind,
}

/// Which bound a request would go over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`LockLimits::ranges_max`]: lock ranges of everybody together.
    RangesTotal,
    /// [`LockLimits::ranges_per_owner_max`]: lock ranges of one owner.
    RangesPerOwner,
    /// [`LockLimits::shares_max`]: share reservations of everybody together.
    SharesTotal,
}

/// A request refused because it would go over a bound; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("lock table limit reached: {limit:?}")]
pub struct LimitExceeded {
    /// The bound.
    pub limit: Limit,
    /// The request overlaps the owner's own ranges, which it would have to split (NFSv4 says
    /// NFS4ERR_LOCK_RANGE for that).
    pub splits_own: bool,
}

impl LimitExceeded {
    /// What the caller should do: wait for others to unlock (a total bound), or unlock
    /// something first (the owner's own bound).
    pub fn action(&self) -> Action {
        match self.limit {
            Limit::RangesTotal | Limit::SharesTotal => Action::Retry,
            Limit::RangesPerOwner => Action::FixInput,
        }
    }
}

/// Why a lock or unlock was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    /// Another owner holds a conflicting lock.
    #[error("lock denied: {0}")]
    Conflict(Conflict),
    /// The request would go over a bound.
    #[error(transparent)]
    Limit(LimitExceeded),
}

impl LockError {
    /// What the caller should do: a conflict may clear when its holder unlocks.
    pub fn action(&self) -> Action {
        match self {
            LockError::Conflict(_) => Action::Retry,
            LockError::Limit(l) => l.action(),
        }
    }
}

/// Share access or deny bits (NFSv4 OPEN4_SHARE_ACCESS_* / OPEN4_SHARE_DENY_*; SMB
/// FILE_SHARE_* with DELETE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct ShareBits(pub u32);

impl ShareBits {
    /// No bits: no access (SMB attribute-only opens), or denying nothing.
    pub const NONE: ShareBits = ShareBits(0);
    /// Reading (NFSv4 OPEN4_SHARE_ACCESS_READ / DENY_READ).
    pub const READ: ShareBits = ShareBits(1);
    /// Writing (NFSv4 OPEN4_SHARE_ACCESS_WRITE / DENY_WRITE).
    pub const WRITE: ShareBits = ShareBits(2);
    /// Deleting or renaming (SMB FILE_SHARE_DELETE; NFSv4 has none).
    pub const DELETE: ShareBits = ShareBits(4);

    /// Whether the two sets have a bit in common.
    pub fn meets(self, other: ShareBits) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether every bit of `other` is in `self`.
    pub fn contains(self, other: ShareBits) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets' bits.
    pub fn union(self, other: ShareBits) -> ShareBits {
        ShareBits(self.0 | other.0)
    }
}

/// One owner's open of a file: what it does and what it denies others.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareOpen {
    /// Whose open.
    pub owner: LockOwner,
    /// What it does.
    pub access: ShareBits,
    /// What it denies other owners.
    pub deny: ShareBits,
}

/// The open that stands in the way of a share reservation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("share reservation of {holder} (access {access:?}, deny {deny:?}) conflicts")]
pub struct ShareConflict {
    /// Whose open.
    pub holder: LockOwner,
    /// Its access bits.
    pub access: ShareBits,
    /// Its deny bits.
    pub deny: ShareBits,
}

/// Why a share reservation change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// Another owner's open conflicts.
    #[error("share denied: {0}")]
    Conflict(ShareConflict),
    /// The request would go over a bound.
    #[error(transparent)]
    Limit(LimitExceeded),
    /// A downgrade of an open the owner does not have.
    #[error("no open of this owner on this file")]
    NotOpen,
    /// A downgrade to bits the open does not have.
    #[error("a downgrade must stay within the open's access and deny bits")]
    NotWithin,
}

impl ShareError {
    /// What the caller should do.
    pub fn action(&self) -> Action {
        match self {
            ShareError::Conflict(_) => Action::Retry,
            ShareError::Limit(l) => l.action(),
            ShareError::NotOpen | ShareError::NotWithin => Action::FixInput,
        }
    }
}

/// How [`LockManager::release_owner`] treats locks the owner still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Refuse with [`LocksHeld`] (NFSv4 RELEASE_LOCKOWNER: NFS4ERR_LOCKS_HELD).
    IfUnlocked,
    /// Drop them.
    DropLocks,
}

/// The owner still holds byte-range locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the owner still holds {ranges} lock ranges")]
pub struct LocksHeld {
    /// Ranges it holds, all files together.
    pub ranges: usize,
}

impl LocksHeld {
    /// What the caller should do: unlock first.
    pub fn action(&self) -> Action {
        Action::FixInput
    }
}

/// Bounds of the lock tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockLimits {
    /// Byte-range lock ranges, all owners together.
    pub ranges_max: usize,
    /// Byte-range lock ranges of one owner, all files together.
    pub ranges_per_owner_max: usize,
    /// Share reservations (opens), all owners together.
    pub shares_max: usize,
}

impl Default for LockLimits {
    fn default() -> LockLimits {
        LockLimits { ranges_max: 1 << 20, ranges_per_owner_max: 1 << 14, shares_max: 1 << 20 }
    }
}

/// What the tables hold now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockStats {
    /// Files with a lock or an open.
    pub files: usize,
    /// Byte-range lock ranges.
    pub ranges: usize,
    /// Share reservations.
    pub shares: usize,
    /// Owners holding a lock or an open.
    pub owners: usize,
}

/// What a released client or owner gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Released {
    /// Byte-range lock ranges dropped.
    pub ranges: usize,
    /// Share reservations dropped.
    pub shares: usize,
}

/// One owner's ranges in one file: sorted by offset, disjoint, adjacent ranges of one kind
/// coalesced.
type OwnerRanges = Vec<(LockRange, LockKind)>;

/// Locks and opens of one file.
#[derive(Debug, Default)]
struct FileLocks {
    ranges: BTreeMap<LockOwner, OwnerRanges>,
    shares: Vec<ShareOpen>,
}

impl FileLocks {
    fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.shares.is_empty()
    }

    fn holds_anything(&self, owner: &LockOwner) -> bool {
        self.ranges.contains_key(owner) || self.shares.iter().any(|s| &s.owner == owner)
    }

    /// The conflicting lock of another owner with the lowest offset (then owner), if any.
    fn first_conflict(&self, owner: &LockOwner, range: &LockRange, kind: LockKind) -> Option<Conflict> {
        self.ranges
            .iter()
            .filter(|(o, _)| *o != owner)
            .flat_map(|(o, list)| list.iter().map(move |(r, k)| (o, r, k)))
            .filter(|(_, r, k)| r.overlaps(range) && k.conflicts_with(kind))
            .min_by(|a, b| (a.1.start, a.0).cmp(&(b.1.start, b.0)))
            .map(|(o, r, k)| Conflict { owner: o.clone(), range: *r, kind: *k })
    }
}

/// One shard: the files whose id falls in it.
#[derive(Debug, Default)]
struct Shard {
    files: HashMap<FileId, FileLocks>,
}

/// What one owner holds, all files together.
#[derive(Debug, Default)]
struct OwnerEntry {
    ranges: usize,
    shares: usize,
    /// Files where it holds a range or an open.
    files: HashSet<FileId>,
}

/// Counts and the owner → files index (for limits and releases).
#[derive(Debug, Default)]
struct Index {
    ranges_total: usize,
    shares_total: usize,
    owners: HashMap<LockOwner, OwnerEntry>,
}

impl Index {
    /// Records a change of `owner`'s holdings in `file`; `in_file`: it still holds something
    /// there.
    fn account(&mut self, owner: &LockOwner, file: FileId, ranges: isize, shares: isize, in_file: bool) {
        self.ranges_total = self.ranges_total.saturating_add_signed(ranges);
        self.shares_total = self.shares_total.saturating_add_signed(shares);
        let e = self.owners.entry(owner.clone()).or_default();
        e.ranges = e.ranges.saturating_add_signed(ranges);
        e.shares = e.shares.saturating_add_signed(shares);
        if in_file {
            e.files.insert(file);
        } else {
            e.files.remove(&file);
        }
        if e.files.is_empty() {
            debug_assert_eq!((e.ranges, e.shares), (0, 0), "an owner holding nothing has no counts");
            self.owners.remove(owner);
        }
    }

    fn owner_ranges(&self, owner: &LockOwner) -> usize {
        self.owners.get(owner).map_or(0, |e| e.ranges)
    }
}

/// The engine's one lock manager (see the module documentation).
#[derive(Debug)]
pub struct LockManager {
    limits: LockLimits,
    shards: Box<[Mutex<Shard>]>,
    index: Mutex<Index>,
}

impl Default for LockManager {
    fn default() -> LockManager {
        LockManager::new(LockLimits::default())
    }
}

/// Takes a mutex; a poisoned one (a panic while it was held) is taken over: every update
/// below changes the tables and then the index with nothing that can panic in between.
fn take<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `mine` with `range` unlocked, then locked as `kind` if given: ranges split around it,
/// sorted, and adjacent ranges of one kind coalesced.
fn apply(mine: &[(LockRange, LockKind)], range: LockRange, kind: Option<LockKind>) -> OwnerRanges {
    let mut out: OwnerRanges = Vec::with_capacity(mine.len() + 2);
    for &(r, k) in mine {
        if !r.overlaps(&range) {
            out.push((r, k));
            continue;
        }
        // `r` overlaps `range`: so r.start < range.start implies range.start > 0, and
        // r.last > range.last implies range.last < u64::MAX.
        if r.start < range.start {
            out.push((LockRange { start: r.start, last: range.start - 1 }, k));
        }
        if r.last > range.last {
            out.push((LockRange { start: range.last + 1, last: r.last }, k));
        }
    }
    if let Some(k) = kind {
        out.push((range, k));
    }
    out.sort_by_key(|(r, _)| r.start);
    let mut merged: OwnerRanges = Vec::with_capacity(out.len());
    for (r, k) in out {
        match merged.last_mut() {
            Some((p, pk)) if *pk == k && p.last != u64::MAX && p.last + 1 == r.start => p.last = r.last,
            _ => merged.push((r, k)),
        }
    }
    merged
}

fn delta(after: usize, before: usize) -> isize {
    // Both are lengths of vectors in memory: far below isize::MAX.
    after as isize - before as isize
}

impl LockManager {
    /// An empty lock manager with these bounds.
    pub fn new(limits: LockLimits) -> LockManager {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        LockManager { limits, shards, index: Mutex::new(Index::default()) }
    }

    /// The bounds.
    pub fn limits(&self) -> LockLimits {
        self.limits
    }

    /// The bound `grow` more ranges of `owner` would go over, if any (the owner's own first).
    fn limit_for(&self, index: &Index, owner: &LockOwner, grow: usize) -> Option<Limit> {
        if index.owner_ranges(owner) + grow > self.limits.ranges_per_owner_max {
            Some(Limit::RangesPerOwner)
        } else if index.ranges_total + grow > self.limits.ranges_max {
            Some(Limit::RangesTotal)
        } else {
            None
        }
    }

    fn shard(&self, file: FileId) -> MutexGuard<'_, Shard> {
        // SHARDS divides into any u64; the remainder is below SHARDS.
        let i = (file % SHARDS as u64) as usize;
        take(&self.shards[i])
    }

    /// Takes a byte-range lock of `kind` over `range` for `owner`: over the owner's own
    /// ranges it replaces them (upgrade, downgrade, split, coalesce); a conflicting lock of
    /// another owner refuses it ([`LockError::Conflict`] names the one with the lowest offset),
    /// as does going over a bound. Never waits.
    pub fn lock(&self, file: FileId, owner: &LockOwner, range: LockRange, kind: LockKind) -> Result<(), LockError> {
        let mut shard = self.shard(file);
        let fl = shard.files.entry(file).or_default();
        if let Some(c) = fl.first_conflict(owner, &range, kind) {
            if fl.is_empty() {
                shard.files.remove(&file);
            }
            return Err(LockError::Conflict(c));
        }
        let mine = fl.ranges.get(owner).map(Vec::as_slice).unwrap_or_default();
        let after = apply(mine, range, Some(kind));
        let grow = delta(after.len(), mine.len());
        let splits_own = mine.iter().any(|(r, _)| r.overlaps(&range));
        let mut index = take(&self.index);
        if grow > 0 {
            let grow = grow.unsigned_abs();
            let limit = self.limit_for(&index, owner, grow);
            if let Some(limit) = limit {
                drop(index);
                if fl.is_empty() {
                    shard.files.remove(&file);
                }
                return Err(LockError::Limit(LimitExceeded { limit, splits_own }));
            }
        }
        fl.ranges.insert(owner.clone(), after);
        index.account(owner, file, grow, 0, true);
        Ok(())
    }

    /// The first lock (lowest offset) of another owner that a lock of `kind` over `range` by
    /// `owner` would conflict with; takes nothing.
    pub fn test(&self, file: FileId, owner: &LockOwner, range: LockRange, kind: LockKind) -> Result<(), Conflict> {
        let shard = self.shard(file);
        match shard.files.get(&file).and_then(|fl| fl.first_conflict(owner, &range, kind)) {
            Some(c) => Err(c),
            None => Ok(()),
        }
    }

    /// Unlocks `range` of `owner`'s locks (bytes it does not hold are ignored); a range unlocked
    /// in its middle splits in two, which can go over a bound ([`LimitExceeded`] with
    /// `splits_own`: nothing changed).
    pub fn unlock(&self, file: FileId, owner: &LockOwner, range: LockRange) -> Result<(), LimitExceeded> {
        let mut shard = self.shard(file);
        let Some(fl) = shard.files.get_mut(&file) else { return Ok(()) };
        let Some(mine) = fl.ranges.get(owner) else { return Ok(()) };
        let after = apply(mine, range, None);
        let grow = delta(after.len(), mine.len());
        let mut index = take(&self.index);
        if grow > 0 {
            let grow = grow.unsigned_abs();
            let limit = self.limit_for(&index, owner, grow);
            if let Some(limit) = limit {
                return Err(LimitExceeded { limit, splits_own: true });
            }
        }
        if after.is_empty() {
            fl.ranges.remove(owner);
        } else {
            fl.ranges.insert(owner.clone(), after);
        }
        let in_file = fl.holds_anything(owner);
        index.account(owner, file, grow, 0, in_file);
        drop(index);
        if fl.is_empty() {
            shard.files.remove(&file);
        }
        Ok(())
    }

    /// Lock ranges `owner` holds on `file`.
    pub fn ranges_held(&self, file: FileId, owner: &LockOwner) -> usize {
        let shard = self.shard(file);
        shard.files.get(&file).and_then(|fl| fl.ranges.get(owner)).map_or(0, Vec::len)
    }

    /// Lock ranges `owner` holds, all files together.
    pub fn ranges_of_owner(&self, owner: &LockOwner) -> usize {
        take(&self.index).owner_ranges(owner)
    }

    /// Drops `owner`'s byte-range locks on every file; with [`Release::IfUnlocked`] an owner
    /// holding any refuses instead (and nothing changes). Its share reservations stay. Returns
    /// the ranges dropped.
    pub fn release_owner(&self, owner: &LockOwner, how: Release) -> Result<usize, LocksHeld> {
        let files: Vec<FileId> = {
            let index = take(&self.index);
            let Some(e) = index.owners.get(owner) else { return Ok(0) };
            if e.ranges == 0 {
                return Ok(0);
            }
            if how == Release::IfUnlocked {
                return Err(LocksHeld { ranges: e.ranges });
            }
            e.files.iter().copied().collect()
        };
        let mut dropped = 0;
        for file in files {
            dropped += self.drop_in_file(file, |o| o == owner, false).ranges;
        }
        Ok(dropped)
    }

    /// Drops every byte-range lock and share reservation of `client` (its lease expired, it
    /// went away). Returns what was dropped.
    pub fn release_client(&self, client: u64) -> Released {
        let files: HashSet<FileId> = {
            let index = take(&self.index);
            index.owners.iter().filter(|(o, _)| o.client == client).flat_map(|(_, e)| e.files.iter().copied()).collect()
        };
        let mut out = Released::default();
        for file in files {
            let r = self.drop_in_file(file, |o| o.client == client, true);
            out.ranges += r.ranges;
            out.shares += r.shares;
        }
        out
    }

    /// Drops the ranges (and, with `shares`, the opens) of the owners `which` picks in `file`.
    fn drop_in_file(&self, file: FileId, which: impl Fn(&LockOwner) -> bool, shares: bool) -> Released {
        let mut shard = self.shard(file);
        let Some(fl) = shard.files.get_mut(&file) else { return Released::default() };
        let mut changes: HashMap<LockOwner, (usize, usize)> = HashMap::new();
        fl.ranges.retain(|o, list| {
            if which(o) {
                changes.entry(o.clone()).or_default().0 += list.len();
                false
            } else {
                true
            }
        });
        if shares {
            fl.shares.retain(|s| {
                if which(&s.owner) {
                    changes.entry(s.owner.clone()).or_default().1 += 1;
                    false
                } else {
                    true
                }
            });
        }
        let mut out = Released::default();
        let mut index = take(&self.index);
        for (owner, (ranges, opens)) in changes {
            out.ranges += ranges;
            out.shares += opens;
            let in_file = fl.holds_anything(&owner);
            index.account(&owner, file, -delta(ranges, 0), -delta(opens, 0), in_file);
        }
        drop(index);
        if fl.is_empty() {
            shard.files.remove(&file);
        }
        out
    }

    /// Every byte-range lock on `file`, by offset then owner.
    pub fn locks_of(&self, file: FileId) -> Vec<HeldLock> {
        let shard = self.shard(file);
        let mut out: Vec<HeldLock> = shard
            .files
            .get(&file)
            .into_iter()
            .flat_map(|fl| fl.ranges.iter())
            .flat_map(|(o, list)| list.iter().map(|(r, k)| HeldLock { owner: o.clone(), range: *r, kind: *k }))
            .collect();
        out.sort_by(|a, b| (a.range.start, &a.owner).cmp(&(b.range.start, &b.owner)));
        out
    }

    /// Opens `file` for `owner` with these access and deny bits. An owner that has it open
    /// already gets the union of old and new bits (an upgrade). Refused, changing nothing, if
    /// another owner's open conflicts (its deny meets the access, or its access meets the
    /// deny) or the table is full.
    pub fn open_share(
        &self,
        file: FileId,
        owner: &LockOwner,
        access: ShareBits,
        deny: ShareBits,
    ) -> Result<(), ShareError> {
        let mut shard = self.shard(file);
        let fl = shard.files.entry(file).or_default();
        let existing = fl.shares.iter().position(|s| &s.owner == owner);
        let (access, deny) = match existing.and_then(|i| fl.shares.get(i)) {
            Some(s) => (s.access.union(access), s.deny.union(deny)),
            None => (access, deny),
        };
        let conflict = fl
            .shares
            .iter()
            .find(|s| &s.owner != owner && (access.meets(s.deny) || deny.meets(s.access)))
            .map(|s| ShareConflict { holder: s.owner.clone(), access: s.access, deny: s.deny });
        if let Some(c) = conflict {
            if fl.is_empty() {
                shard.files.remove(&file);
            }
            return Err(ShareError::Conflict(c));
        }
        if let Some(s) = existing.and_then(|i| fl.shares.get_mut(i)) {
            s.access = access;
            s.deny = deny;
            return Ok(());
        }
        let mut index = take(&self.index);
        if index.shares_total >= self.limits.shares_max {
            drop(index);
            if fl.is_empty() {
                shard.files.remove(&file);
            }
            return Err(ShareError::Limit(LimitExceeded { limit: Limit::SharesTotal, splits_own: false }));
        }
        fl.shares.push(ShareOpen { owner: owner.clone(), access, deny });
        index.account(owner, file, 0, 1, true);
        Ok(())
    }

    /// Narrows `owner`'s open of `file` to these bits, which must be within the current ones.
    pub fn downgrade_share(
        &self,
        file: FileId,
        owner: &LockOwner,
        access: ShareBits,
        deny: ShareBits,
    ) -> Result<(), ShareError> {
        let mut shard = self.shard(file);
        let s = shard
            .files
            .get_mut(&file)
            .and_then(|fl| fl.shares.iter_mut().find(|s| &s.owner == owner))
            .ok_or(ShareError::NotOpen)?;
        if !s.access.contains(access) || !s.deny.contains(deny) {
            return Err(ShareError::NotWithin);
        }
        s.access = access;
        s.deny = deny;
        Ok(())
    }

    /// Closes `owner`'s open of `file`; whether it had one. Its byte-range locks stay.
    pub fn close_share(&self, file: FileId, owner: &LockOwner) -> bool {
        let mut shard = self.shard(file);
        let Some(fl) = shard.files.get_mut(&file) else { return false };
        let before = fl.shares.len();
        fl.shares.retain(|s| &s.owner != owner);
        if fl.shares.len() == before {
            return false;
        }
        let in_file = fl.holds_anything(owner);
        take(&self.index).account(owner, file, 0, -1, in_file);
        if fl.is_empty() {
            shard.files.remove(&file);
        }
        true
    }

    /// Every open of `file`, by owner.
    pub fn shares_of(&self, file: FileId) -> Vec<ShareOpen> {
        let shard = self.shard(file);
        let mut out: Vec<ShareOpen> = shard.files.get(&file).map(|fl| fl.shares.clone()).unwrap_or_default();
        out.sort();
        out
    }

    /// What the tables hold now.
    pub fn stats(&self) -> LockStats {
        let files = self.shards.iter().map(|s| take(s).files.len()).sum();
        let index = take(&self.index);
        LockStats { files, ranges: index.ranges_total, shares: index.shares_total, owners: index.owners.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn o(client: u64, name: &str) -> LockOwner {
        LockOwner::new(client, name.as_bytes())
    }

    fn r(offset: u64, length: u64) -> LockRange {
        LockRange::new(offset, length).unwrap()
    }

    const S: LockKind = LockKind::Shared;
    const X: LockKind = LockKind::Exclusive;

    /// (offset, length, kind) of `owner`'s locks on `file`.
    fn held(m: &LockManager, file: FileId, owner: &LockOwner) -> Vec<(u64, u64, LockKind)> {
        m.locks_of(file)
            .into_iter()
            .filter(|h| &h.owner == owner)
            .map(|h| (h.range.start, h.range.length(), h.kind))
            .collect()
    }

    #[test]
    fn ranges() {
        assert_eq!(LockRange::new(5, 0), Err(RangeError::Empty));
        assert_eq!(LockRange::new(u64::MAX, 2), Err(RangeError::Overflow));
        assert_eq!(LockRange::new(1, u64::MAX - 1).map(|r| (r.last(), r.length())), Ok((u64::MAX - 1, u64::MAX - 1)));
        let eof = LockRange::new(u64::MAX, LEN_TO_EOF).unwrap();
        assert_eq!((eof.offset(), eof.length(), eof.is_to_eof()), (u64::MAX, LEN_TO_EOF, true));
        assert_eq!(LockRange::to_eof(3), LockRange::new(3, LEN_TO_EOF).unwrap());
        assert!(r(0, 10).overlaps(&r(9, 1)) && !r(0, 10).overlaps(&r(10, 1)));
        assert!(LockRange::to_eof(100).overlaps(&r(u64::MAX - 5, 5)));
        assert_eq!(r(10, 5).to_string(), "10..=14");
        assert_eq!(LockRange::to_eof(7).to_string(), "7..EOF");
    }

    #[test]
    fn owners_conflict_only_across_and_when_exclusive() {
        let m = LockManager::default();
        let (a, b) = (o(1, "a"), o(2, "b"));
        m.lock(7, &a, r(0, 100), S).unwrap();
        m.lock(7, &b, r(50, 100), S).unwrap();
        let c = m.lock(7, &b, r(90, 20), X).unwrap_err();
        assert_eq!(c, LockError::Conflict(Conflict { owner: a.clone(), range: r(0, 100), kind: S }));
        assert_eq!(c.action(), Action::Retry);
        assert_eq!(m.test(7, &b, r(90, 20), X), Err(Conflict { owner: a.clone(), range: r(0, 100), kind: S }));
        assert_eq!(m.test(7, &b, r(100, 20), X), Ok(()), "its own shared lock does not stand in its way");
        assert_eq!(m.test(7, &a, r(0, 10), X), Ok(()));
        assert_eq!(m.test(8, &b, r(0, 10), X), Ok(()), "another file");
        // The lowest offset is named when several conflict.
        m.lock(7, &o(3, "c"), LockRange::to_eof(1000), X).unwrap();
        let first = m.test(7, &o(4, "d"), LockRange::to_eof(0), S).unwrap_err();
        assert_eq!(first.owner, o(3, "c"));
        let first = m.test(7, &o(4, "d"), LockRange::to_eof(0), X).unwrap_err();
        assert_eq!(first.owner, a);
    }

    #[test]
    fn one_owner_upgrades_downgrades_splits_and_coalesces() {
        let m = LockManager::default();
        let a = o(1, "a");
        m.lock(1, &a, r(0, 10), S).unwrap();
        m.lock(1, &a, r(10, 10), S).unwrap();
        assert_eq!(held(&m, 1, &a), [(0, 20, S)], "adjacent, same kind: coalesced");
        m.lock(1, &a, r(5, 5), X).unwrap();
        assert_eq!(held(&m, 1, &a), [(0, 5, S), (5, 5, X), (10, 10, S)], "upgrade of a part");
        m.lock(1, &a, r(0, 20), X).unwrap();
        assert_eq!(held(&m, 1, &a), [(0, 20, X)]);
        m.unlock(1, &a, r(8, 4)).unwrap();
        assert_eq!(held(&m, 1, &a), [(0, 8, X), (12, 8, X)], "split by a partial unlock");
        m.lock(1, &a, r(8, 4), S).unwrap();
        assert_eq!(held(&m, 1, &a), [(0, 8, X), (8, 4, S), (12, 8, X)]);
        m.lock(1, &a, r(4, 12), S).unwrap();
        assert_eq!(held(&m, 1, &a), [(0, 4, X), (4, 12, S), (16, 4, X)], "downgrade");
        m.unlock(1, &a, r(100, 5)).unwrap();
        m.unlock(1, &o(9, "never"), r(0, 5)).unwrap();
        m.lock(1, &a, LockRange::to_eof(20), X).unwrap();
        assert_eq!(held(&m, 1, &a), [(0, 4, X), (4, 12, S), (16, LEN_TO_EOF, X)]);
        m.unlock(1, &a, LockRange::to_eof(0)).unwrap();
        assert!(m.locks_of(1).is_empty());
        assert_eq!(m.stats(), LockStats::default(), "nothing left anywhere");
    }

    #[test]
    fn ranges_at_the_top_of_the_offset_space() {
        let m = LockManager::default();
        let a = o(1, "a");
        m.lock(1, &a, LockRange::to_eof(u64::MAX - 1), X).unwrap();
        m.unlock(1, &a, r(u64::MAX - 1, 1)).unwrap();
        assert_eq!(held(&m, 1, &a), [(u64::MAX, LEN_TO_EOF, X)]);
        m.lock(1, &a, r(u64::MAX - 1, 1), X).unwrap();
        assert_eq!(held(&m, 1, &a), [(u64::MAX - 1, LEN_TO_EOF, X)]);
        assert!(m.test(1, &o(2, "b"), r(u64::MAX - 3, 3), S).is_err());
    }

    #[test]
    fn limits_refuse_and_change_nothing() {
        let m = LockManager::new(LockLimits { ranges_max: 5, ranges_per_owner_max: 3, shares_max: 2 });
        let (a, b) = (o(1, "a"), o(2, "b"));
        m.lock(1, &a, r(0, 1), X).unwrap();
        m.lock(1, &a, r(2, 1), X).unwrap();
        m.lock(2, &a, r(0, 1), X).unwrap();
        let e = m.lock(3, &a, r(0, 1), X).unwrap_err();
        assert_eq!(e, LockError::Limit(LimitExceeded { limit: Limit::RangesPerOwner, splits_own: false }));
        assert_eq!(e.action(), Action::FixInput);
        assert_eq!(m.ranges_of_owner(&a), 3);
        // Coalescing does not grow: fine at the limit.
        m.lock(1, &a, r(1, 1), X).unwrap();
        assert_eq!(held(&m, 1, &a), [(0, 3, X)]);
        m.lock(1, &b, r(10, 1), X).unwrap();
        m.lock(1, &b, r(12, 1), X).unwrap();
        m.lock(2, &b, r(10, 1), X).unwrap();
        let e = m.lock(5, &o(3, "c"), r(0, 1), X).unwrap_err();
        assert_eq!(e, LockError::Limit(LimitExceeded { limit: Limit::RangesTotal, splits_own: false }));
        assert_eq!(e.action(), Action::Retry);
        // A split by unlock or a lock in the middle of one's own range needs room too.
        assert_eq!(m.unlock(1, &b, r(10, 1)), Ok(()));
        m.lock(1, &a, r(20, 1), X).unwrap();
        let split = m.unlock(1, &a, r(1, 1)).unwrap_err();
        assert_eq!(split, LimitExceeded { limit: Limit::RangesPerOwner, splits_own: true });
        let split = m.lock(1, &a, r(1, 1), S).unwrap_err();
        assert_eq!(split, LockError::Limit(LimitExceeded { limit: Limit::RangesPerOwner, splits_own: true }));
        assert_eq!(held(&m, 1, &a), [(0, 3, X), (20, 1, X)], "unchanged");
        assert!(m.locks_of(5).is_empty());
        assert_eq!(m.stats(), LockStats { files: 2, ranges: 5, shares: 0, owners: 2 });
        // Shares.
        m.open_share(9, &a, ShareBits::READ, ShareBits::NONE).unwrap();
        m.open_share(9, &b, ShareBits::READ, ShareBits::NONE).unwrap();
        let e = m.open_share(9, &o(3, "c"), ShareBits::READ, ShareBits::NONE).unwrap_err();
        assert_eq!(e, ShareError::Limit(LimitExceeded { limit: Limit::SharesTotal, splits_own: false }));
        m.open_share(9, &a, ShareBits::WRITE, ShareBits::NONE).unwrap();
    }

    #[test]
    fn release_owner_and_client() {
        let m = LockManager::default();
        let (a1, a2, b) = (o(1, "a1"), o(1, "a2"), o(2, "b"));
        m.lock(1, &a1, r(0, 10), X).unwrap();
        m.lock(2, &a1, r(0, 10), S).unwrap();
        m.lock(2, &a2, r(20, 10), S).unwrap();
        m.lock(2, &b, r(0, 5), S).unwrap();
        m.open_share(1, &a1, ShareBits::READ, ShareBits::WRITE).unwrap();
        m.open_share(3, &a2, ShareBits::READ, ShareBits::NONE).unwrap();
        assert_eq!(m.release_owner(&a1, Release::IfUnlocked), Err(LocksHeld { ranges: 2 }));
        assert_eq!(m.release_owner(&o(9, "x"), Release::IfUnlocked), Ok(0));
        assert_eq!(m.ranges_held(1, &a1), 1);
        assert_eq!(m.release_owner(&a1, Release::DropLocks), Ok(2));
        assert_eq!(m.ranges_held(1, &a1), 0);
        assert_eq!(m.shares_of(1).len(), 1, "its opens stay");
        assert_eq!(m.release_owner(&a1, Release::IfUnlocked), Ok(0));
        assert_eq!(m.release_client(1), Released { ranges: 1, shares: 2 });
        assert_eq!(m.locks_of(2), [HeldLock { owner: b.clone(), range: r(0, 5), kind: S }]);
        assert!(m.shares_of(1).is_empty() && m.shares_of(3).is_empty());
        assert_eq!(m.stats(), LockStats { files: 1, ranges: 1, shares: 0, owners: 1 });
        assert_eq!(m.release_client(1), Released::default());
    }

    #[test]
    fn share_reservations() {
        let m = LockManager::default();
        let (a, b, c) = (o(1, "a"), o(2, "b"), o(3, "c"));
        let (rd, wr, none) = (ShareBits::READ, ShareBits::WRITE, ShareBits::NONE);
        m.open_share(1, &a, rd, wr).unwrap();
        let e = m.open_share(1, &b, wr, none).unwrap_err();
        assert_eq!(e, ShareError::Conflict(ShareConflict { holder: a.clone(), access: rd, deny: wr }));
        assert_eq!(m.open_share(1, &b, rd, rd).unwrap_err().action(), Action::Retry, "deny read while read");
        m.open_share(1, &b, rd, none).unwrap();
        // Upgrade is the union; it must not conflict either.
        assert!(matches!(m.open_share(1, &b, wr, none), Err(ShareError::Conflict(_))));
        m.open_share(1, &a, wr, none).unwrap();
        assert_eq!(
            m.shares_of(1),
            [
                ShareOpen { owner: a.clone(), access: ShareBits(3), deny: wr },
                ShareOpen { owner: b.clone(), access: rd, deny: none }
            ]
        );
        assert_eq!(m.downgrade_share(1, &a, ShareBits(3), ShareBits(3)), Err(ShareError::NotWithin));
        assert_eq!(m.downgrade_share(1, &c, rd, none), Err(ShareError::NotOpen));
        m.downgrade_share(1, &a, rd, none).unwrap();
        m.open_share(1, &c, wr, ShareBits::DELETE).unwrap();
        assert!(m.close_share(1, &a));
        assert!(!m.close_share(1, &a));
        assert!(m.close_share(1, &b) && m.close_share(1, &c));
        assert_eq!(m.stats(), LockStats::default());
    }

    #[test]
    fn threads_lock_disjoint_and_contended_ranges() {
        let m = std::sync::Arc::new(LockManager::default());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    let me = o(t, "t");
                    let mut won = 0;
                    for i in 0..500u64 {
                        m.lock(1, &me, r(t * 1000 + i, 1), X).unwrap();
                        if m.lock(2, &me, r(0, 1), X).is_ok() {
                            won += 1;
                            m.unlock(2, &me, r(0, 1)).unwrap();
                        }
                    }
                    won
                })
            })
            .collect();
        let won: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(won > 0);
        assert_eq!(m.locks_of(1).len(), 4, "each thread's 500 adjacent bytes coalesced");
        assert!(m.locks_of(2).is_empty());
        assert_eq!(m.stats(), LockStats { files: 1, ranges: 4, shares: 0, owners: 4 });
    }

    // ------------------------------------------------------------ model check

    /// Bytes 0..MODEL_BYTES, and one more standing for [MODEL_BYTES, EOF].
    const MODEL_BYTES: u64 = 24;
    const MODEL_SLOTS: usize = MODEL_BYTES as usize + 1;

    #[derive(Debug, Clone)]
    enum Step {
        Lock { owner: u64, start: u64, len: Option<u64>, exclusive: bool },
        Unlock { owner: u64, start: u64, len: Option<u64> },
        Test { owner: u64, start: u64, len: Option<u64>, exclusive: bool },
    }

    fn step() -> impl Strategy<Value = Step> {
        // `len`: None runs to EOF; a length runs at most to MODEL_BYTES.
        let range =
            (0..MODEL_BYTES).prop_flat_map(|s| (Just(s), proptest::option::weighted(0.85, 1..=MODEL_BYTES - s)));
        prop_oneof![
            4 => (0..3u64, range.clone(), any::<bool>())
                .prop_map(|(owner, (start, len), exclusive)| Step::Lock { owner, start, len, exclusive }),
            2 => (0..3u64, range.clone()).prop_map(|(owner, (start, len))| Step::Unlock { owner, start, len }),
            1 => (0..4u64, range, any::<bool>())
                .prop_map(|(owner, (start, len), exclusive)| Step::Test { owner, start, len, exclusive }),
        ]
    }

    /// Per slot, per owner: the kind held.
    type Model = Vec<BTreeMap<u64, LockKind>>;

    fn slots(start: u64, len: Option<u64>) -> std::ops::Range<usize> {
        let end = len.map_or(MODEL_SLOTS, |l| (start + l) as usize);
        start as usize..end
    }

    fn range_of(start: u64, len: Option<u64>) -> LockRange {
        LockRange::new(start, len.unwrap_or(LEN_TO_EOF)).unwrap()
    }

    /// The model's maximal runs per owner, as the manager should report them.
    fn runs(model: &Model) -> Vec<HeldLock> {
        let mut out = Vec::new();
        for owner in 0..4u64 {
            let mut i = 0;
            while i < MODEL_SLOTS {
                let Some(kind) = model[i].get(&owner).copied() else {
                    i += 1;
                    continue;
                };
                let start = i;
                while i < MODEL_SLOTS && model[i].get(&owner) == Some(&kind) {
                    i += 1;
                }
                let len = if i == MODEL_SLOTS { None } else { Some((i - start) as u64) };
                out.push(HeldLock { owner: o(owner, "p"), range: range_of(start as u64, len), kind });
            }
        }
        out.sort_by(|a, b| (a.range.start, &a.owner).cmp(&(b.range.start, &b.owner)));
        out
    }

    /// Conflicting holders per the model, as (owner, kind) at some slot in the range.
    fn model_conflicts(model: &Model, owner: u64, start: u64, len: Option<u64>, kind: LockKind) -> bool {
        slots(start, len).any(|i| model[i].iter().any(|(o, k)| *o != owner && k.conflicts_with(kind)))
    }

    fn check_conflict(model: &Model, c: &Conflict, owner: u64, start: u64, len: Option<u64>, kind: LockKind) {
        assert_ne!(c.owner, o(owner, "p"), "a conflict with oneself");
        assert!(c.kind.conflicts_with(kind));
        assert!(c.range.overlaps(&range_of(start, len)));
        let held = HeldLock { owner: c.owner.clone(), range: c.range, kind: c.kind };
        assert!(runs(model).contains(&held), "conflict {c:?} is not a held range");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Lock, unlock and test sequences of several owners agree with a per-byte model: the
        /// same outcome, the conflicts named are real held ranges, and the held ranges are
        /// exactly the model's maximal runs (split and coalesced).
        #[test]
        fn matches_a_per_byte_model(steps in proptest::collection::vec(step(), 1..60)) {
            let m = LockManager::default();
            let mut model: Model = vec![BTreeMap::new(); MODEL_SLOTS];
            for s in steps {
                match s {
                    Step::Lock { owner, start, len, exclusive } => {
                        let kind = if exclusive { X } else { S };
                        let expect_conflict = model_conflicts(&model, owner, start, len, kind);
                        match m.lock(1, &o(owner, "p"), range_of(start, len), kind) {
                            Ok(()) => {
                                prop_assert!(!expect_conflict);
                                for i in slots(start, len) {
                                    model[i].insert(owner, kind);
                                }
                            }
                            Err(LockError::Conflict(c)) => {
                                prop_assert!(expect_conflict);
                                check_conflict(&model, &c, owner, start, len, kind);
                            }
                            Err(e) => prop_assert!(false, "unexpected {e}"),
                        }
                    }
                    Step::Unlock { owner, start, len } => {
                        m.unlock(1, &o(owner, "p"), range_of(start, len)).unwrap();
                        for i in slots(start, len) {
                            model[i].remove(&owner);
                        }
                    }
                    Step::Test { owner, start, len, exclusive } => {
                        let kind = if exclusive { X } else { S };
                        let expect_conflict = model_conflicts(&model, owner, start, len, kind);
                        match m.test(1, &o(owner, "p"), range_of(start, len), kind) {
                            Ok(()) => prop_assert!(!expect_conflict),
                            Err(c) => {
                                prop_assert!(expect_conflict);
                                check_conflict(&model, &c, owner, start, len, kind);
                            }
                        }
                    }
                }
                let want = runs(&model);
                prop_assert_eq!(m.locks_of(1), want.clone());
                prop_assert_eq!(m.stats().ranges, want.len());
                for owner in 0..4u64 {
                    let n = want.iter().filter(|h| h.owner == o(owner, "p")).count();
                    prop_assert_eq!(m.ranges_of_owner(&o(owner, "p")), n);
                }
            }
            for owner in 0..3u64 {
                m.release_owner(&o(owner, "p"), Release::DropLocks).unwrap();
            }
            prop_assert_eq!(m.stats(), LockStats::default());
        }
    }
}
