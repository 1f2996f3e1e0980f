//! A shard: one core's slice of the store — its segments, its index, its device queue.
//!
//! A shard is owned by one thread and is not `Send`-shared: every call happens on its thread.
//! The API is completion-based, like the device under it: [`Shard::get`] and [`Shard::put`]
//! queue work and return at once, [`Shard::poll`] drives the device and hands back [`Event`]s.
//! Blocking conveniences (`get_now`, `put_now`, `flush_now`) drive the same path to completion.
//!
//! ## Write path
//! A put appends a record to the shard's open segment: its data right after the previous
//! record's data, and its header (key, sequence numbers, one CRC32C per data sector) in the next
//! header sector, which grow down from the segment's end. It is readable at once (reads of a
//! record still being written wait for both writes) and durable after [`Shard::flush`]. When the
//! open segment is full it is sealed (a summary of its records goes after the data, a trailer in
//! its last sector),
//! a free segment is opened, and the shard's checkpoint (its segment table and a reservation of
//! sequence numbers) is written and flushed before any record lands in the new segment.
//!
//! ## Eviction
//! When fewer than [`FREE_SEGMENTS_RESERVE`] segments are free, the oldest sealed segment is
//! reclaimed (FIFO by segment, so a tombstone always outlives the records it hides): dirty and
//! pinned extents and extents read at least twice since they were (re)written are copied forward
//! into the open segment (CLOCK-style reinsertion: a one-pass scan cannot push out a hot working
//! set); everything else is dropped. Dirty extents are never dropped: when unsaved data would
//! exceed what the shard can hold, puts fail with [`StoreError::CacheFull`].
//!
//! ## Failure
//! A failed write or flush poisons the shard: writes, deletes and flushes fail from then on with
//! the reason; reads of data already stored go on.
//!
//! ## Recovery
//! [`Shard::open`] reads the newer valid checkpoint, then each sealed segment's trailer and
//! summary (two small reads a segment), and scans open segments header by header, verifying every
//! data checksum and stopping at the first record that does not check out. Records are applied in
//! sequence order. The recovered open segment is sealed and a fresh one opened, so the log is
//! never appended behind a torn tail.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::time::Instant;

use crate::buf::{AlignedBuf, BufPool, PoolClassSpec, SECTOR_BYTES};
use crate::device::{Device, IoCompletion, IoKind, IoRequest};
use crate::error::{Result, StoreError};
use crate::format::{
    self, Checkpoint, Key, Record, RecordKind, RecordMeta, SegmentEntry, SegmentState, Stamp, Superblock, Trailer,
    EXTENT_BYTES_MAX, FLAG_DIRTY, FLAG_PINNED,
};

/// Free segments a shard keeps in hand for copying forward during reclaim.
pub const FREE_SEGMENTS_RESERVE: usize = 2;
/// Sequence numbers reserved by one checkpoint.
const SEQ_RESERVE_WINDOW: u64 = 1 << 20;
/// Largest single device request the shard issues while scanning or copying.
const SCAN_CHUNK_BYTES: usize = 512 << 10;
/// Reads of the same extent after which it is reinserted instead of evicted.
const HOT_READS_MIN: u8 = 2;

/// How a shard runs.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// Device operations in flight at most.
    pub queue_depth: u32,
    /// Requests queued beyond the device's queue at most (then [`StoreError::Busy`]).
    pub backlog_max: usize,
    /// Registered buffer pool size classes.
    pub pool: Vec<PoolClassSpec>,
}

impl Default for ShardConfig {
    fn default() -> ShardConfig {
        ShardConfig {
            queue_depth: 64,
            backlog_max: 1024,
            pool: vec![
                PoolClassSpec { slot_bytes: SECTOR_BYTES, slots: 256 },
                PoolClassSpec { slot_bytes: 128 << 10, slots: 32 },
                PoolClassSpec { slot_bytes: EXTENT_BYTES_MAX + SECTOR_BYTES, slots: 8 },
            ],
        }
    }
}

/// Options of a put.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Written by a client, not yet in the bucket: never evicted until marked clean.
    pub dirty: bool,
    /// Never evicted (preload with pinning) until deleted.
    pub pinned: bool,
}

/// A buffer for one extent's data (written as is; the shard writes the record header apart).
pub struct ExtentBuf {
    buf: AlignedBuf,
    data_len: usize,
}

impl ExtentBuf {
    /// A zeroed extent buffer for `data_len` bytes (`None` beyond [`EXTENT_BYTES_MAX`]).
    pub fn new(data_len: usize, pool: Option<&BufPool>) -> Option<ExtentBuf> {
        if data_len == 0 || data_len > EXTENT_BYTES_MAX {
            return None;
        }
        let total = data_len.div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
        let buf = match pool {
            Some(pool) => pool.get(total),
            None => AlignedBuf::zeroed(total),
        };
        Some(ExtentBuf { buf, data_len })
    }

    /// An extent holding `parts` one after the other (heap buffer, each byte written once).
    pub fn from_parts(parts: &[&[u8]]) -> Option<ExtentBuf> {
        let data_len: usize = parts.iter().map(|p| p.len()).sum();
        if data_len == 0 || data_len > EXTENT_BYTES_MAX {
            return None;
        }
        Some(ExtentBuf { buf: AlignedBuf::from_parts(parts), data_len })
    }

    pub fn from_bytes(data: &[u8], pool: Option<&BufPool>) -> Option<ExtentBuf> {
        let mut e = ExtentBuf::new(data.len(), pool)?;
        e.data_mut().copy_from_slice(data);
        Some(e)
    }

    pub fn data_len(&self) -> usize {
        self.data_len
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        let len = self.data_len;
        &mut self.buf.as_mut_slice()[..len]
    }

    pub fn data(&self) -> &[u8] {
        &self.buf.as_slice()[..self.data_len]
    }
}

/// Bytes read from an extent: a view into an owned, aligned buffer (no copy to hand it on).
#[derive(Debug)]
pub struct ReadBuf {
    buf: AlignedBuf,
    start: usize,
    len: usize,
}

impl ReadBuf {
    pub fn bytes(&self) -> &[u8] {
        &self.buf.as_slice()[self.start..self.start + self.len]
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The whole buffer and where the bytes are in it.
    pub fn into_parts(self) -> (AlignedBuf, usize, usize) {
        (self.buf, self.start, self.len)
    }
}

/// The outcome of queued work, returned by [`Shard::poll`].
#[derive(Debug)]
pub enum Event {
    Read {
        tag: u64,
        result: Result<ReadBuf>,
    },
    /// A put's record is written (not yet durable: see `Flushed`).
    Written {
        tag: u64,
        result: Result<()>,
    },
    /// Everything written before the flush was requested is durable.
    Flushed {
        tag: u64,
        result: Result<()>,
    },
}

/// A dirty extent, as listed by [`Shard::dirty_extents`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirtyExtent {
    pub key: Key,
    pub put_seq: u64,
    pub data_len: u32,
}

/// Counters and gauges of one shard.
#[derive(Clone, Debug, Default)]
pub struct ShardStats {
    pub shard: u32,
    pub extents: u64,
    pub data_bytes: u64,
    pub dirty_bytes: u64,
    pub pinned_bytes: u64,
    pub unsaved_limit_bytes: u64,
    pub segments_total: u64,
    pub segments_free: u64,
    pub gets: u64,
    pub get_bytes: u64,
    pub get_not_found: u64,
    pub puts: u64,
    pub put_bytes: u64,
    pub deletes: u64,
    pub flushes: u64,
    pub segments_reclaimed: u64,
    pub extents_evicted: u64,
    pub extents_reinserted: u64,
    pub checksum_errors: u64,
    pub read_errors: u64,
    pub reclaim_errors: u64,
    pub poisoned: Option<String>,
    pub recovered_extents: u64,
    pub recovery_us: u64,
}

/// Hashes keys with a fixed mix (keys come from the engine, not from clients, so no keyed hash
/// is needed; SipHash showed up in the 4 KiB read profile).
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(23) ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The checksums a read must verify: inline for reads of up to four sectors (no allocation on
/// the 4 KiB path).
enum Crcs {
    Inline { n: u8, v: [u32; 4] },
    Heap(Vec<u32>),
}

impl Crcs {
    fn from_slice(crcs: &[u32]) -> Crcs {
        if crcs.len() <= 4 {
            let mut v = [0u32; 4];
            v[..crcs.len()].copy_from_slice(crcs);
            Crcs::Inline { n: crcs.len() as u8, v }
        } else {
            Crcs::Heap(crcs.to_vec())
        }
    }
    fn as_slice(&self) -> &[u32] {
        match self {
            Crcs::Inline { n, v } => &v[..*n as usize],
            Crcs::Heap(v) => v,
        }
    }
}

/// Device bytes an extent of `data_len` bytes takes: header sector plus padded data.
fn footprint_bytes(data_len: u32) -> u64 {
    (1 + (data_len as usize).div_ceil(SECTOR_BYTES)) as u64 * SECTOR_BYTES as u64
}

struct Entry {
    seg: u32,
    data_sector: u32,
    data_len: u32,
    seq: u64,
    put_seq: u64,
    flags: u8,
    freq: u8,
    writing: bool,
    crcs: Box<[u32]>,
}

impl Entry {
    fn unsaved(&self) -> bool {
        self.flags & (FLAG_DIRTY | FLAG_PINNED) != 0
    }
}

struct Seg {
    state: SegmentState,
    epoch: u64,
    /// Data sectors used, from the segment's start.
    data_used: u32,
    /// Record header sectors used, from just below the trailer downwards.
    headers_used: u32,
    /// Records of the open segment, for its summary.
    records: Vec<Record>,
    summary_entry_bytes: usize,
    /// Keys with a record here (sealed segments), for reclaim.
    keys: Vec<Key>,
}

impl Seg {
    fn free() -> Seg {
        Seg {
            state: SegmentState::Free,
            epoch: 0,
            data_used: 0,
            headers_used: 0,
            records: Vec::new(),
            summary_entry_bytes: 0,
            keys: Vec::new(),
        }
    }
}

enum Op {
    Get {
        tag: u64,
        key: Key,
        crcs: Crcs,
        first_sector: u32,
        start: usize,
        len: usize,
    },
    /// One of a record's two writes (data, header); the put completes when both have.
    Record {
        key: Key,
        seq: u64,
        tag: Option<u64>,
    },
    Meta,
    Flush {
        tags: Vec<u64>,
    },
    Sync,
    /// A finished `Sync` op, kept in its slot until `sync_io` takes it (so the tag is not reused).
    SyncDone(IoCompletion),
}

/// A queued get waiting for the write of the record it reads.
struct WaitingGet {
    key: Key,
    offset: u64,
    len: usize,
    tag: u64,
}

pub struct Shard {
    id: u32,
    sb: Superblock,
    dev: Box<dyn Device>,
    pool: BufPool,
    config: ShardConfig,
    segs: Vec<Seg>,
    open: Option<u32>,
    sealed_fifo: VecDeque<u32>,
    free: Vec<u32>,
    index: HashMap<Key, Entry, BuildHasherDefault<KeyHasher>>,
    next_seq: u64,
    seq_reserved: u64,
    checkpoint_seq: u64,
    /// In-flight operations; a device tag is an index here.
    ops: Vec<Option<Op>>,
    free_ops: Vec<u64>,
    completions: Vec<IoCompletion>,
    backlog: VecDeque<IoRequest>,
    writes_in_flight: usize,
    flush_waiting: Vec<u64>,
    flush_in_flight: bool,
    waiting_gets: Vec<WaitingGet>,
    /// Records whose two writes are not both complete: parts left and the first error.
    record_parts: HashMap<u64, (u8, Option<crate::device::DeviceError>)>,
    events: Vec<Event>,
    poisoned: Option<String>,
    unsaved_footprint_bytes: u64,
    stats: ShardStats,
}

impl Shard {
    /// Opens shard `id` of a formatted device and recovers its index.
    pub fn open(id: u32, sb: Superblock, dev: Box<dyn Device>, pool: BufPool, config: ShardConfig) -> Result<Shard> {
        let started = Instant::now();
        let nsegs = sb.shard_segment_count(id);
        let mut shard = Shard {
            id,
            dev,
            pool,
            config,
            segs: (0..nsegs).map(|_| Seg::free()).collect(),
            open: None,
            sealed_fifo: VecDeque::new(),
            free: Vec::new(),
            index: HashMap::default(),
            next_seq: 1,
            seq_reserved: 0,
            checkpoint_seq: 0,
            ops: Vec::new(),
            free_ops: Vec::new(),
            completions: Vec::new(),
            backlog: VecDeque::new(),
            writes_in_flight: 0,
            flush_waiting: Vec::new(),
            flush_in_flight: false,
            waiting_gets: Vec::new(),
            record_parts: HashMap::new(),
            events: Vec::new(),
            poisoned: None,
            unsaved_footprint_bytes: 0,
            stats: ShardStats { shard: id, segments_total: u64::from(nsegs), ..ShardStats::default() },
            sb,
        };
        shard.recover()?;
        shard.stats.recovery_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Ok(shard)
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn pool(&self) -> &BufPool {
        &self.pool
    }

    fn stamp(&self, epoch: u64) -> Stamp {
        Stamp { store_id: self.sb.store_id(), epoch }
    }

    fn device_name(&self) -> String {
        self.dev.info().name.clone()
    }

    /// Device bytes (headers and padding included) that unsaved (dirty + pinned) extents may take:
    /// all segments but the free reserve and the open one, each less the most a segment can
    /// waste at its end (a record that did not fit) and room for its summary and for metadata
    /// records, so reclaim and `mark_clean` always have space to work in.
    fn unsaved_limit_bytes(&self) -> u64 {
        let usable = self.segs.len().saturating_sub(FREE_SEGMENTS_RESERVE + 1) as u64;
        let waste = ((EXTENT_BYTES_MAX + SECTOR_BYTES) as u64).min(self.sb.segment_bytes / 2);
        usable * (self.sb.segment_bytes / 8 * 7).saturating_sub(waste)
    }

    // ----- public API -----

    /// Queues a read of `len` bytes at `offset` within `key`'s extent; the bytes come back as
    /// `Event::Read { tag }`.
    pub fn get(&mut self, key: Key, offset: u64, len: usize, tag: u64) -> Result<()> {
        self.stats.gets += 1;
        let Some(e) = self.index.get(&key) else {
            self.stats.get_not_found += 1;
            return Err(StoreError::NotFound { key });
        };
        let data_len = u64::from(e.data_len);
        if len == 0 || offset.checked_add(len as u64).is_none_or(|end| end > data_len) {
            return Err(StoreError::OutOfRange { key, offset, len: len as u64, data_len });
        }
        if self.backlog.len() >= self.config.backlog_max {
            return Err(StoreError::Busy {
                device: self.device_name(),
                shard: self.id,
                what: "read backlog",
                bound: self.config.backlog_max,
            });
        }
        if e.writing {
            self.waiting_gets.push(WaitingGet { key, offset, len, tag });
            return Ok(());
        }
        let first = (offset / SECTOR_BYTES as u64) as u32;
        let last = ((offset + len as u64 - 1) / SECTOR_BYTES as u64) as u32;
        let crcs = Crcs::from_slice(&e.crcs[first as usize..=last as usize]);
        let dev_offset = self.sector_offset(e.seg, e.data_sector + first);
        let buf = self.pool.get((last - first + 1) as usize * SECTOR_BYTES);
        let start = (offset % SECTOR_BYTES as u64) as usize;
        let op = self.add_op(Op::Get { tag, key, crcs, first_sector: first, start, len });
        self.enqueue(IoRequest::read(dev_offset, buf, op));
        Ok(())
    }

    /// Stores `extent` as `key`'s bytes (replacing any earlier extent of the key). Returns the
    /// put's sequence number, which identifies it in [`Shard::mark_clean`]; completion comes as
    /// `Event::Written { tag }` when a tag is given.
    pub fn put(&mut self, key: Key, mut extent: ExtentBuf, opts: PutOptions, tag: Option<u64>) -> Result<u64> {
        self.check_writable()?;
        let data_len = extent.data_len;
        if data_len == 0 || data_len > EXTENT_BYTES_MAX {
            return Err(StoreError::BadLength { len: data_len, max: EXTENT_BYTES_MAX });
        }
        if opts.dirty || opts.pinned {
            let replaced = self.index.get(&key).filter(|e| e.unsaved()).map_or(0, |e| footprint_bytes(e.data_len));
            let after = self.unsaved_footprint_bytes - replaced + footprint_bytes(data_len as u32);
            if after > self.unsaved_limit_bytes() {
                return Err(StoreError::CacheFull {
                    device: self.device_name(),
                    shard: self.id,
                    unsaved_bytes: self.unsaved_footprint_bytes,
                    limit_bytes: self.unsaved_limit_bytes(),
                });
            }
        }
        // zero the padding after the data so checksums cover defined bytes
        let padded_end = data_len.div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
        extent.buf.as_mut_slice()[data_len..padded_end].fill(0);
        extent.buf.truncate(padded_end);
        let mut flags = 0;
        if opts.dirty {
            flags |= FLAG_DIRTY;
        }
        if opts.pinned {
            flags |= FLAG_PINNED;
        }
        let put_seq = self.append_extent(key, extent, flags, 0, None, tag)?;
        self.stats.puts += 1;
        self.stats.put_bytes += data_len as u64;
        Ok(put_seq)
    }

    /// Removes `key`. Returns whether it was there. Durable after the next flush.
    pub fn delete(&mut self, key: Key) -> Result<bool> {
        self.check_writable()?;
        if !self.index.contains_key(&key) {
            return Ok(false);
        }
        self.append_meta(RecordKind::Tombstone, key, 0)?;
        self.drop_entry(&key);
        self.stats.deletes += 1;
        Ok(true)
    }

    /// Marks the extent written by put `put_seq` clean (it is safely in the bucket), making it
    /// evictable. Returns false if `key` has since been rewritten or is not dirty.
    pub fn mark_clean(&mut self, key: Key, put_seq: u64) -> Result<bool> {
        self.check_writable()?;
        match self.index.get(&key) {
            Some(e) if e.put_seq == put_seq && e.flags & FLAG_DIRTY != 0 => {}
            _ => return Ok(false),
        }
        self.append_meta(RecordKind::Clean, key, put_seq)?;
        if let Some(e) = self.index.get_mut(&key) {
            e.flags &= !FLAG_DIRTY;
            let unsaved_now = e.unsaved();
            let len = u64::from(e.data_len);
            self.stats.dirty_bytes -= len;
            if !unsaved_now {
                self.unsaved_footprint_bytes -= footprint_bytes(len as u32);
            }
        }
        Ok(true)
    }

    /// Requests durability of everything written so far; `Event::Flushed { tag }` follows.
    pub fn flush(&mut self, tag: u64) -> Result<()> {
        self.check_writable()?;
        self.flush_waiting.push(tag);
        self.maybe_start_flush();
        Ok(())
    }

    /// Every dirty extent, for the uploader (after a restart too).
    pub fn dirty_extents(&self) -> Vec<DirtyExtent> {
        let mut out: Vec<DirtyExtent> = self
            .index
            .iter()
            .filter(|(_, e)| e.flags & FLAG_DIRTY != 0)
            .map(|(k, e)| DirtyExtent { key: *k, put_seq: e.put_seq, data_len: e.data_len })
            .collect();
        out.sort_by_key(|d| d.put_seq);
        out
    }

    /// Whether `key` is stored, and its length.
    pub fn contains(&self, key: &Key) -> Option<u32> {
        self.index.get(key).map(|e| e.data_len)
    }

    /// Whether `key` is stored pinned (`None`: not stored).
    pub fn is_pinned(&self, key: &Key) -> Option<bool> {
        self.index.get(key).map(|e| e.flags & FLAG_PINNED != 0)
    }

    pub fn stats(&self) -> ShardStats {
        let mut s = self.stats.clone();
        s.extents = self.index.len() as u64;
        s.segments_free = self.free.len() as u64;
        s.unsaved_limit_bytes = self.unsaved_limit_bytes();
        s.poisoned = self.poisoned.clone();
        s
    }

    /// Operations queued or in flight on the device.
    pub fn in_flight(&self) -> usize {
        self.dev.in_flight() + self.backlog.len()
    }

    /// Submits queued work, waits for at least one completion when `wait` is set and anything is
    /// in flight, and moves finished work into `out`.
    pub fn poll(&mut self, wait: bool, out: &mut Vec<Event>) -> Result<()> {
        self.pump(usize::from(wait))?;
        out.append(&mut self.events);
        Ok(())
    }

    // ----- blocking conveniences (same path, driven to completion) -----

    pub fn get_now(&mut self, key: Key, offset: u64, len: usize) -> Result<ReadBuf> {
        let tag = u64::MAX - 1;
        self.get(key, offset, len, tag)?;
        match self.wait_event(|e| matches!(e, Event::Read { tag: t, .. } if *t == tag))? {
            Event::Read { result, .. } => result,
            _ => unreachable!("wait_event returns the matching event"),
        }
    }

    pub fn put_now(&mut self, key: Key, data: &[u8], opts: PutOptions) -> Result<u64> {
        let extent = ExtentBuf::from_bytes(data, Some(&self.pool))
            .ok_or(StoreError::BadLength { len: data.len(), max: EXTENT_BYTES_MAX })?;
        let tag = u64::MAX - 2;
        let put_seq = self.put(key, extent, opts, Some(tag))?;
        match self.wait_event(|e| matches!(e, Event::Written { tag: t, .. } if *t == tag))? {
            Event::Written { result, .. } => result.map(|()| put_seq),
            _ => unreachable!("wait_event returns the matching event"),
        }
    }

    pub fn flush_now(&mut self) -> Result<()> {
        let tag = u64::MAX - 3;
        self.flush(tag)?;
        match self.wait_event(|e| matches!(e, Event::Flushed { tag: t, .. } if *t == tag))? {
            Event::Flushed { result, .. } => result,
            _ => unreachable!("wait_event returns the matching event"),
        }
    }

    /// Waits for every queued operation to finish; their events stay queued for `poll`.
    pub fn drain(&mut self) -> Result<()> {
        while self.in_flight() > 0 || (!self.flush_waiting.is_empty() && self.poisoned.is_none()) {
            self.pump(1)?;
        }
        Ok(())
    }

    fn wait_event(&mut self, want: impl Fn(&Event) -> bool) -> Result<Event> {
        loop {
            if let Some(i) = self.events.iter().position(&want) {
                return Ok(self.events.remove(i));
            }
            if self.in_flight() == 0 && self.flush_waiting.is_empty() {
                // nothing can produce the event any more
                return Err(StoreError::Format {
                    device: self.device_name(),
                    reason: "internal: awaited event never produced".into(),
                });
            }
            self.pump(1)?;
        }
    }

    // ----- internals: submission -----

    fn add_op(&mut self, op: Op) -> u64 {
        match self.free_ops.pop() {
            Some(tag) => {
                debug_assert!(self.ops[tag as usize].is_none());
                self.ops[tag as usize] = Some(op);
                tag
            }
            None => {
                self.ops.push(Some(op));
                (self.ops.len() - 1) as u64
            }
        }
    }

    fn take_op(&mut self, tag: u64) -> Option<Op> {
        let op = self.ops.get_mut(usize::try_from(tag).ok()?)?.take();
        if op.is_some() {
            self.free_ops.push(tag);
        }
        op
    }

    fn enqueue(&mut self, req: IoRequest) {
        if req.kind == IoKind::Write {
            self.writes_in_flight += 1;
        }
        self.backlog.push_back(req);
    }

    /// Device offset of sector `sector` of the shard's segment `seg`.
    fn sector_offset(&self, seg: u32, sector: u32) -> u64 {
        self.sb.segment_offset(self.id, seg) + u64::from(sector) * SECTOR_BYTES as u64
    }

    /// Moves backlog into the device, submits, and processes completions.
    fn pump(&mut self, wait_min: usize) -> Result<()> {
        while let Some(req) = self.backlog.pop_front() {
            if let Err(refused) = self.dev.push(req) {
                let (req, error) = *refused;
                if error.reason.contains("queue full") {
                    self.backlog.push_front(req);
                    break;
                }
                // a malformed request is a bug in the shard; fail the operation loudly
                self.complete(IoCompletion {
                    tag: req.tag,
                    kind: req.kind,
                    offset: req.offset,
                    buf: req.buf,
                    result: Err(error),
                });
            }
        }
        let mut done = std::mem::take(&mut self.completions);
        let wait = wait_min.min(self.dev.in_flight());
        self.dev.submit_and_wait(wait, &mut done).map_err(|source| {
            let reason = format!("device queue failed: {source}");
            self.poison(reason);
            StoreError::Device { key: None, source }
        })?;
        for c in done.drain(..) {
            self.complete(c);
        }
        self.completions = done;
        self.maybe_start_flush();
        Ok(())
    }

    fn complete(&mut self, c: IoCompletion) {
        if c.kind == IoKind::Write {
            self.writes_in_flight -= 1;
        }
        let sync = matches!(self.ops.get(c.tag as usize), Some(Some(Op::Sync)));
        if sync {
            let slot = c.tag as usize;
            self.ops[slot] = Some(Op::SyncDone(c));
            return;
        }
        let Some(op) = self.take_op(c.tag) else {
            debug_assert!(false, "completion for unknown op {}", c.tag);
            return;
        };
        match op {
            Op::Get { tag, key, crcs, first_sector, start, len } => {
                let result = self.finish_get(c, key, crcs.as_slice(), first_sector, start, len);
                self.events.push(Event::Read { tag, result });
            }
            Op::Record { key, seq, tag } => {
                let parts = self.record_parts.entry(seq).or_insert((2, None));
                parts.0 -= 1;
                if let Err(e) = c.result {
                    parts.1.get_or_insert(e);
                }
                if parts.0 > 0 {
                    return;
                }
                let failed = self.record_parts.remove(&seq).and_then(|(_, e)| e);
                let result = match failed.map_or(Ok(()), Err) {
                    Ok(()) => {
                        if let Some(e) = self.index.get_mut(&key).filter(|e| e.seq == seq) {
                            e.writing = false;
                        }
                        Ok(())
                    }
                    Err(source) => {
                        self.poison(format!("write of {key} failed: {source}"));
                        if self.index.get(&key).is_some_and(|e| e.seq == seq) {
                            self.drop_entry(&key);
                        }
                        Err(StoreError::Device { key: Some(key), source })
                    }
                };
                self.release_waiting_gets(key);
                if let Some(tag) = tag {
                    self.events.push(Event::Written { tag, result });
                }
            }
            Op::Meta => {
                if let Err(source) = c.result {
                    self.poison(format!("metadata write failed: {source}"));
                }
            }
            Op::Flush { tags } => {
                self.flush_in_flight = false;
                self.stats.flushes += 1;
                let result = c.result.map_err(|source| {
                    self.poison(format!("flush failed: {source}"));
                    StoreError::Device { key: None, source }
                });
                for tag in tags {
                    self.events.push(Event::Flushed { tag, result: result.clone() });
                }
            }
            Op::Sync | Op::SyncDone(_) => unreachable!("sync completions are kept in their slot above"),
        }
    }

    fn finish_get(
        &mut self,
        c: IoCompletion,
        key: Key,
        crcs: &[u32],
        first_sector: u32,
        start: usize,
        len: usize,
    ) -> Result<ReadBuf> {
        if let Err(source) = c.result {
            self.stats.read_errors += 1;
            return Err(StoreError::Device { key: Some(key), source });
        }
        let buf = c.buf.ok_or_else(|| StoreError::Format {
            device: self.device_name(),
            reason: "read completed without its buffer".into(),
        })?;
        for (i, (sector, want)) in buf.as_slice().chunks(SECTOR_BYTES).zip(crcs).enumerate() {
            if format::crc32c(sector) != *want {
                self.stats.checksum_errors += 1;
                return Err(StoreError::Checksum {
                    device: self.device_name(),
                    key,
                    offset: c.offset + (i * SECTOR_BYTES) as u64,
                    sector: first_sector + i as u32,
                });
            }
        }
        if let Some(e) = self.index.get_mut(&key) {
            e.freq = e.freq.saturating_add(1).min(3);
        }
        self.stats.get_bytes += len as u64;
        Ok(ReadBuf { buf, start, len })
    }

    fn release_waiting_gets(&mut self, key: Key) {
        if self.waiting_gets.is_empty() || self.index.get(&key).is_some_and(|e| e.writing) {
            return;
        }
        let (ready, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.waiting_gets).into_iter().partition(|w| w.key == key);
        self.waiting_gets = rest;
        for w in ready {
            if let Err(e) = self.get(w.key, w.offset, w.len, w.tag) {
                self.events.push(Event::Read { tag: w.tag, result: Err(e) });
            }
        }
    }

    fn maybe_start_flush(&mut self) {
        if self.flush_waiting.is_empty() || self.flush_in_flight || self.writes_in_flight > 0 {
            return;
        }
        if let Some(reason) = &self.poisoned {
            let error = StoreError::Poisoned { device: self.device_name(), shard: self.id, reason: reason.clone() };
            for tag in std::mem::take(&mut self.flush_waiting) {
                self.events.push(Event::Flushed { tag, result: Err(error.clone()) });
            }
            return;
        }
        let tags = std::mem::take(&mut self.flush_waiting);
        self.flush_in_flight = true;
        let op = self.add_op(Op::Flush { tags });
        self.backlog.push_back(IoRequest::flush(op));
    }

    fn poison(&mut self, reason: String) {
        if self.poisoned.is_none() {
            tracing::error!(shard = self.id, device = %self.device_name(), %reason, "shard poisoned");
            self.poisoned = Some(reason);
        }
    }

    fn check_writable(&self) -> Result<()> {
        match &self.poisoned {
            Some(reason) => {
                Err(StoreError::Poisoned { device: self.device_name(), shard: self.id, reason: reason.clone() })
            }
            None => Ok(()),
        }
    }

    // ----- internals: synchronous device access (recovery, segment switches, reclaim) -----

    fn sync_io(&mut self, req: IoRequest) -> Result<IoCompletion> {
        let tag = self.add_op(Op::Sync);
        let kind = req.kind;
        self.enqueue(IoRequest { tag, ..req });
        loop {
            if let Some(c) = self.take_sync_done(tag) {
                return match c.result {
                    Ok(()) => Ok(c),
                    Err(source) => {
                        if kind != IoKind::Read {
                            self.poison(format!("{kind} failed: {source}"));
                        }
                        Err(StoreError::Device { key: None, source })
                    }
                };
            }
            self.pump(1)?;
        }
    }

    /// The completion of a finished sync op, freeing its slot; None while it is in flight.
    fn take_sync_done(&mut self, tag: u64) -> Option<IoCompletion> {
        if !matches!(self.ops.get(tag as usize), Some(Some(Op::SyncDone(_)))) {
            return None;
        }
        match self.take_op(tag) {
            Some(Op::SyncDone(c)) => Some(c),
            _ => None,
        }
    }

    fn write_sync(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        for (i, chunk) in bytes.chunks(SCAN_CHUNK_BYTES).enumerate() {
            let at = offset + (i * SCAN_CHUNK_BYTES) as u64;
            self.sync_io(IoRequest::write(at, AlignedBuf::from_slice(chunk), 0))?;
        }
        Ok(())
    }

    fn flush_sync(&mut self) -> Result<()> {
        while self.writes_in_flight > 0 {
            self.pump(1)?;
        }
        self.sync_io(IoRequest::flush(0)).map(|_| ())
    }

    /// Reads `len` bytes at `offset`, in chunks, several in flight.
    fn read_sync(&mut self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        let chunks: Vec<(usize, usize)> =
            (0..len).step_by(SCAN_CHUNK_BYTES).map(|at| (at, SCAN_CHUNK_BYTES.min(len - at))).collect();
        let window = (self.config.queue_depth as usize / 2).max(1);
        for group in chunks.chunks(window) {
            let mut tags = Vec::with_capacity(group.len());
            for &(at, n) in group {
                let tag = self.add_op(Op::Sync);
                self.enqueue(IoRequest::read(offset + at as u64, AlignedBuf::zeroed(n), tag));
                tags.push((tag, at, n));
            }
            for (tag, at, n) in tags {
                loop {
                    if let Some(c) = self.take_sync_done(tag) {
                        c.result.map_err(|source| StoreError::Device { key: None, source })?;
                        let buf = c.buf.ok_or_else(|| StoreError::Format {
                            device: self.device_name(),
                            reason: "read without buffer".into(),
                        })?;
                        out[at..at + n].copy_from_slice(&buf.as_slice()[..n]);
                        break;
                    }
                    self.pump(1)?;
                }
            }
        }
        Ok(out)
    }

    /// Writes and flushes the next checkpoint. Everything written before it is flushed first: a
    /// checkpoint may free a segment whose extents were just copied forward, and must never be
    /// durable while those copies are not.
    fn write_checkpoint(&mut self) -> Result<()> {
        self.flush_sync()?;
        if self.next_seq + SEQ_RESERVE_WINDOW / 2 > self.seq_reserved {
            self.seq_reserved = self.next_seq + SEQ_RESERVE_WINDOW;
        }
        self.checkpoint_seq += 1;
        let cp = Checkpoint {
            checkpoint_seq: self.checkpoint_seq,
            seq_reserved: self.seq_reserved,
            segments: self.segs.iter().map(|s| SegmentEntry { state: s.state, epoch: s.epoch }).collect(),
        };
        let bytes = cp.encode(self.sb.checkpoint_sectors).ok_or_else(|| StoreError::Format {
            device: self.device_name(),
            reason: "checkpoint does not fit its slot".into(),
        })?;
        let slot = (self.checkpoint_seq % 2) as u32;
        let offset = self.sb.checkpoint_offset(self.id, slot);
        self.write_sync(offset, &bytes)?;
        self.flush_sync()
    }

    fn take_seq(&mut self) -> Result<u64> {
        if self.next_seq >= self.seq_reserved {
            self.write_checkpoint()?;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(seq)
    }

    // ----- internals: log -----

    fn summary_sectors(entry_bytes: usize) -> u32 {
        format::summary_bytes(entry_bytes).div_ceil(SECTOR_BYTES) as u32
    }

    /// Whether a record with `data_sectors` of data fits: data, then room for the summary, then
    /// the headers (one more), then the trailer.
    fn fits(&self, seg: u32, data_sectors: u32, entry_bytes: usize) -> bool {
        let s = &self.segs[seg as usize];
        let summary = Self::summary_sectors(s.summary_entry_bytes + entry_bytes);
        s.data_used + data_sectors + summary + s.headers_used + 1 < self.sb.segment_sectors()
    }

    /// The header sector the next record of `seg` takes.
    fn next_header_sector(&self, seg: u32) -> u32 {
        self.sb.segment_sectors() - 2 - self.segs[seg as usize].headers_used
    }

    /// Makes sure the open segment has room for a record, switching segments when it does not.
    /// Opening a segment may reclaim older ones, copying extents forward into the new segment, so
    /// the record may still not fit afterwards: then switch again (a bounded number of times).
    fn ensure_room(&mut self, data_sectors: u32, entry_bytes: usize) -> Result<u32> {
        for _ in 0..=self.segs.len() {
            if let Some(open) = self.open {
                if self.fits(open, data_sectors, entry_bytes) {
                    return Ok(open);
                }
                let s = &self.segs[open as usize];
                if s.data_used == 0 && s.headers_used == 0 {
                    return Err(StoreError::Format {
                        device: self.device_name(),
                        reason: format!("record of {data_sectors} data sectors does not fit an empty segment"),
                    });
                }
                self.seal(open)?;
            }
            self.open_segment()?;
        }
        Err(StoreError::CacheFull {
            device: self.device_name(),
            shard: self.id,
            unsaved_bytes: self.unsaved_footprint_bytes,
            limit_bytes: self.unsaved_limit_bytes(),
        })
    }

    fn seal(&mut self, seg: u32) -> Result<()> {
        // every record must be durable before a summary claims it: recovery trusts a summary
        // that checks out without re-reading the data (found by the mid-operation crash tests)
        self.flush_sync()?;
        let (epoch, used, records) = {
            let s = &mut self.segs[seg as usize];
            (s.epoch, s.data_used, std::mem::take(&mut s.records))
        };
        let summary = format::encode_summary(self.stamp(epoch), &records);
        let summary_sectors = (summary.len() / SECTOR_BYTES) as u32;
        let trailer =
            format::encode_trailer(&Trailer { epoch, summary_sector: used, summary_sectors }, self.sb.store_id());
        let base = self.sb.segment_offset(self.id, seg);
        self.write_sync(base + u64::from(used) * SECTOR_BYTES as u64, &summary)?;
        self.write_sync(base + self.sb.segment_bytes - SECTOR_BYTES as u64, &trailer)?;
        let s = &mut self.segs[seg as usize];
        s.keys = records.iter().map(|(m, _)| m.key).collect();
        s.state = SegmentState::Sealed;
        s.summary_entry_bytes = 0;
        self.sealed_fifo.push_back(seg);
        if self.open == Some(seg) {
            self.open = None;
        }
        Ok(())
    }

    /// Opens a free segment, reclaims old ones into it while fewer than the reserve are free, and
    /// only then writes the checkpoint that declares it (which first flushes the copies). A crash
    /// before that checkpoint leaves the durable state as it was before this call: the copies are
    /// ignored (the segment is still free there) and the originals still in place. So an
    /// interrupted open, however often, never costs a free segment (found by crashing the
    /// simulation in the middle of recovery).
    fn open_segment(&mut self) -> Result<u32> {
        let Some(seg) = self.free.pop() else {
            return Err(StoreError::CacheFull {
                device: self.device_name(),
                shard: self.id,
                unsaved_bytes: self.unsaved_footprint_bytes,
                limit_bytes: self.unsaved_limit_bytes(),
            });
        };
        // nothing may still be reading a segment that is about to be overwritten
        self.drain()?;
        let epoch = self.take_seq()?;
        self.segs[seg as usize] = Seg { state: SegmentState::Open, epoch, ..Seg::free() };
        self.open = Some(seg);
        self.reclaim_while_short()?;
        self.write_checkpoint()?;
        Ok(seg)
    }

    /// Reclaims oldest segments into the (new, open) segment until the free reserve is met or the
    /// open segment is full. Never opens a segment itself.
    fn reclaim_while_short(&mut self) -> Result<()> {
        let mut passes = self.sealed_fifo.len() * 4;
        while self.free.len() < FREE_SEGMENTS_RESERVE && passes > 0 {
            let Some(victim) = self.sealed_fifo.pop_front() else {
                break;
            };
            if !self.reclaim(victim)? {
                break;
            }
            passes -= 1;
        }
        Ok(())
    }

    /// Frees the oldest sealed segment: copies forward what must or should stay, drops the rest.
    /// Returns false, leaving the segment sealed and oldest with the keys it still holds, when the
    /// open segment fills up first.
    fn reclaim(&mut self, seg: u32) -> Result<bool> {
        let open = self.open.ok_or_else(|| StoreError::Format {
            device: self.device_name(),
            reason: "internal: reclaim without an open segment".into(),
        })?;
        let keys = std::mem::take(&mut self.segs[seg as usize].keys);
        let mut keys = keys.into_iter();
        while let Some(key) = keys.next() {
            let Some(e) = self.index.get(&key).filter(|e| e.seg == seg) else {
                continue;
            };
            let hot = e.freq >= HOT_READS_MIN;
            if !(e.unsaved() || hot) {
                self.drop_entry(&key);
                self.stats.extents_evicted += 1;
                continue;
            }
            let (flags, put_seq, data_len, freq) =
                (e.flags, e.put_seq, e.data_len as usize, if hot { 1 } else { e.freq });
            let sectors = data_len.div_ceil(SECTOR_BYTES);
            if !self.fits(open, sectors as u32, format::summary_entry_bytes(sectors as u32)) {
                // the open segment is full: the rest stays here for the next reclaim
                self.segs[seg as usize].keys = std::iter::once(key).chain(keys).collect();
                self.sealed_fifo.push_front(seg);
                return Ok(false);
            }
            let crcs = e.crcs.clone();
            let offset = self.sector_offset(e.seg, e.data_sector);
            let copied = self.read_sync(offset, sectors * SECTOR_BYTES).and_then(|bytes| {
                let bad = bytes.chunks(SECTOR_BYTES).zip(crcs.iter()).position(|(s, c)| format::crc32c(s) != *c);
                match bad {
                    Some(i) => Err(StoreError::Checksum {
                        device: self.device_name(),
                        key,
                        offset: offset + (i * SECTOR_BYTES) as u64,
                        sector: i as u32,
                    }),
                    None => Ok(bytes),
                }
            });
            match copied {
                Ok(bytes) => {
                    let mut extent =
                        ExtentBuf::new(data_len, Some(&self.pool)).expect("stored extents have valid lengths");
                    extent.buf.as_mut_slice()[..sectors * SECTOR_BYTES].copy_from_slice(&bytes);
                    extent.buf.truncate(sectors * SECTOR_BYTES);
                    self.append_extent(key, extent, flags, freq, Some(put_seq), None)?;
                    self.stats.extents_reinserted += 1;
                }
                Err(error) => {
                    // unreadable: nothing to copy. Clean data is refetched from the bucket; dirty
                    // data is lost, which is logged loudly and counted.
                    tracing::error!(shard = self.id, %key, dirty = flags & FLAG_DIRTY != 0, %error, "extent unreadable during reclaim; dropped");
                    self.stats.reclaim_errors += 1;
                    self.drop_entry(&key);
                }
            }
        }
        self.segs[seg as usize] = Seg::free();
        self.free.push(seg);
        self.stats.segments_reclaimed += 1;
        Ok(true)
    }

    /// Appends an extent record; `keep_put_seq` when copying forward. Returns the put_seq.
    fn append_extent(
        &mut self,
        key: Key,
        extent: ExtentBuf,
        flags: u8,
        freq: u8,
        keep_put_seq: Option<u64>,
        tag: Option<u64>,
    ) -> Result<u64> {
        let data_sectors = extent.data_len.div_ceil(SECTOR_BYTES) as u32;
        debug_assert_eq!(extent.buf.len(), data_sectors as usize * SECTOR_BYTES);
        let entry_bytes = format::summary_entry_bytes(data_sectors);
        let seg = self.ensure_room(data_sectors, entry_bytes)?;
        let seq = self.take_seq()?;
        let put_seq = keep_put_seq.unwrap_or(seq);
        let (data_sector, sector) = (self.segs[seg as usize].data_used, self.next_header_sector(seg));
        let data_len = extent.data_len as u32;
        let meta = RecordMeta { kind: RecordKind::Extent, flags, seq, put_seq, key, data_len, sector, data_sector };
        let crcs: Vec<u32> = extent.buf.as_slice().chunks(SECTOR_BYTES).map(format::crc32c).collect();
        let mut header = self.pool.get(SECTOR_BYTES);
        let epoch = self.segs[seg as usize].epoch;
        format::encode_record_header(header.as_mut_slice(), &meta, self.stamp(epoch), &crcs);
        {
            let s = &mut self.segs[seg as usize];
            s.data_used += data_sectors;
            s.headers_used += 1;
            s.summary_entry_bytes += entry_bytes;
            s.records.push((meta, crcs.clone()));
        }
        self.drop_entry(&key);
        self.insert_entry(
            key,
            Entry {
                seg,
                data_sector,
                data_len,
                seq,
                put_seq,
                flags,
                freq,
                writing: true,
                crcs: crcs.into_boxed_slice(),
            },
        );
        // two writes, data and header; the put is done when both are
        self.record_parts.insert(seq, (2, None));
        let op = self.add_op(Op::Record { key, seq, tag });
        self.enqueue(IoRequest::write(self.sector_offset(seg, data_sector), extent.buf, op));
        let op = self.add_op(Op::Record { key, seq, tag });
        self.enqueue(IoRequest::write(self.sector_offset(seg, sector), header, op));
        Ok(put_seq)
    }

    fn append_meta(&mut self, kind: RecordKind, key: Key, put_seq: u64) -> Result<()> {
        let entry_bytes = format::summary_entry_bytes(0);
        let seg = self.ensure_room(0, entry_bytes)?;
        let seq = self.take_seq()?;
        let (data_sector, sector) = (self.segs[seg as usize].data_used, self.next_header_sector(seg));
        let meta = RecordMeta { kind, flags: 0, seq, put_seq, key, data_len: 0, sector, data_sector };
        let mut buf = self.pool.get(SECTOR_BYTES);
        let epoch = self.segs[seg as usize].epoch;
        format::encode_record_header(buf.as_mut_slice(), &meta, self.stamp(epoch), &[]);
        let offset = self.sector_offset(seg, sector);
        let s = &mut self.segs[seg as usize];
        s.headers_used += 1;
        s.summary_entry_bytes += entry_bytes;
        s.records.push((meta, Vec::new()));
        let op = self.add_op(Op::Meta);
        self.enqueue(IoRequest::write(offset, buf, op));
        Ok(())
    }

    fn insert_entry(&mut self, key: Key, e: Entry) {
        let len = u64::from(e.data_len);
        self.stats.data_bytes += len;
        if e.flags & FLAG_DIRTY != 0 {
            self.stats.dirty_bytes += len;
        }
        if e.flags & FLAG_PINNED != 0 {
            self.stats.pinned_bytes += len;
        }
        if e.unsaved() {
            self.unsaved_footprint_bytes += footprint_bytes(e.data_len);
        }
        self.index.insert(key, e);
    }

    fn drop_entry(&mut self, key: &Key) {
        if let Some(e) = self.index.remove(key) {
            let len = u64::from(e.data_len);
            self.stats.data_bytes -= len;
            if e.flags & FLAG_DIRTY != 0 {
                self.stats.dirty_bytes -= len;
            }
            if e.flags & FLAG_PINNED != 0 {
                self.stats.pinned_bytes -= len;
            }
            if e.unsaved() {
                self.unsaved_footprint_bytes -= footprint_bytes(e.data_len);
            }
        }
    }

    // ----- recovery -----

    fn recover(&mut self) -> Result<()> {
        let cp = self.read_checkpoint()?;
        if cp.segments.len() != self.segs.len() {
            return Err(StoreError::Format {
                device: self.device_name(),
                reason: format!(
                    "shard {}: checkpoint lists {} segments, geometry says {}",
                    self.id,
                    cp.segments.len(),
                    self.segs.len()
                ),
            });
        }
        self.checkpoint_seq = cp.checkpoint_seq;
        self.next_seq = cp.seq_reserved.max(1);
        self.seq_reserved = cp.seq_reserved;
        let mut records: Vec<(u32, RecordMeta, Vec<u32>)> = Vec::new();
        let mut was_open = Vec::new();
        for (i, entry) in cp.segments.iter().enumerate() {
            let seg = i as u32;
            let found = match entry.state {
                SegmentState::Free => {
                    self.free.push(seg);
                    continue;
                }
                SegmentState::Sealed => match self.read_summary(seg, entry.epoch)? {
                    Some(found) => found,
                    None => {
                        tracing::warn!(shard = self.id, seg, "sealed segment has no valid summary; scanning it");
                        self.scan_segment(seg, entry.epoch)?.0
                    }
                },
                SegmentState::Open => {
                    let (found, data_used) = self.scan_segment(seg, entry.epoch)?;
                    was_open.push((seg, data_used, found.clone()));
                    found
                }
            };
            let s = &mut self.segs[i];
            s.state = SegmentState::Sealed;
            s.epoch = entry.epoch;
            s.data_used = self.sb.segment_sectors();
            s.keys = found.iter().map(|(m, _)| m.key).collect();
            records.extend(found.into_iter().map(|(m, c)| (seg, m, c)));
        }
        // Apply in log order.
        records.sort_by_key(|(_, m, _)| m.seq);
        for (seg, meta, crcs) in records {
            self.next_seq = self.next_seq.max(meta.seq + 1);
            match meta.kind {
                RecordKind::Extent => {
                    self.drop_entry(&meta.key);
                    let e = Entry {
                        seg,
                        data_sector: meta.data_sector,
                        data_len: meta.data_len,
                        seq: meta.seq,
                        put_seq: meta.put_seq,
                        flags: meta.flags,
                        freq: 0,
                        writing: false,
                        crcs: crcs.into_boxed_slice(),
                    };
                    self.insert_entry(meta.key, e);
                }
                RecordKind::Tombstone => {
                    if self.index.get(&meta.key).is_some_and(|e| e.seq < meta.seq) {
                        self.drop_entry(&meta.key);
                    }
                }
                RecordKind::Clean => {
                    if let Some(e) =
                        self.index.get_mut(&meta.key).filter(|e| e.put_seq == meta.put_seq && e.flags & FLAG_DIRTY != 0)
                    {
                        e.flags &= !FLAG_DIRTY;
                        let (len, unsaved) = (u64::from(e.data_len), e.unsaved());
                        self.stats.dirty_bytes -= len;
                        if !unsaved {
                            self.unsaved_footprint_bytes -= footprint_bytes(e.data_len);
                        }
                    }
                }
            }
        }
        // Oldest first, by the epoch each segment was opened in.
        let mut sealed: Vec<u32> =
            (0..self.segs.len() as u32).filter(|&s| self.segs[s as usize].state == SegmentState::Sealed).collect();
        sealed.sort_by_key(|&s| self.segs[s as usize].epoch);
        // Seal what was open: its summary goes right after its last good record's data.
        for (seg, data_used, found) in was_open {
            let s = &mut self.segs[seg as usize];
            s.data_used = data_used;
            s.headers_used = found.len() as u32;
            s.summary_entry_bytes = found.iter().map(|(m, _)| format::summary_entry_bytes(m.data_sectors())).sum();
            s.records = found;
            s.state = SegmentState::Open;
            sealed.retain(|&x| x != seg);
            // seal() queues it at the back of the FIFO; the sort below restores epoch order
            self.seal(seg)?;
        }
        // Free segments are taken lowest address first, so a shard's log (and a sequential
        // reader of what it wrote) moves forward through the device.
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        let mut fifo: Vec<u32> = self.sealed_fifo.drain(..).chain(sealed).collect();
        fifo.sort_by_key(|&s| self.segs[s as usize].epoch);
        self.sealed_fifo = fifo.into();
        self.stats.recovered_extents = self.index.len() as u64;
        self.open_segment()?;
        Ok(())
    }

    fn read_checkpoint(&mut self) -> Result<Checkpoint> {
        let len = self.sb.checkpoint_sectors as usize * SECTOR_BYTES;
        let mut best: Option<Checkpoint> = None;
        for slot in 0..2 {
            let offset = self.sb.checkpoint_offset(self.id, slot);
            let bytes = self.read_sync(offset, len)?;
            if let Some(cp) = Checkpoint::decode(&bytes) {
                if best.as_ref().is_none_or(|b| cp.checkpoint_seq > b.checkpoint_seq) {
                    best = Some(cp);
                }
            }
        }
        best.ok_or_else(|| StoreError::Format {
            device: self.device_name(),
            reason: format!("shard {}: no valid checkpoint (not formatted, or both slots damaged)", self.id),
        })
    }

    fn read_summary(&mut self, seg: u32, epoch: u64) -> Result<Option<Vec<Record>>> {
        let base = self.sb.segment_offset(self.id, seg);
        let trailer_bytes = self.read_sync(base + self.sb.segment_bytes - SECTOR_BYTES as u64, SECTOR_BYTES)?;
        let Some(t) = format::decode_trailer(&trailer_bytes, self.stamp(epoch)) else {
            return Ok(None);
        };
        if t.summary_sector.checked_add(t.summary_sectors).is_none_or(|end| end >= self.sb.segment_sectors()) {
            return Ok(None);
        }
        let summary = self.read_sync(
            base + u64::from(t.summary_sector) * SECTOR_BYTES as u64,
            t.summary_sectors as usize * SECTOR_BYTES,
        )?;
        // every record's data must lie below the summary and its header above it
        let summary_end = t.summary_sector + t.summary_sectors;
        let trailer = self.sb.segment_sectors() - 1;
        Ok(format::decode_summary(&summary, self.stamp(epoch)).filter(|recs| {
            recs.iter().all(|(m, _)| {
                m.data_sector.checked_add(m.data_sectors()).is_some_and(|end| end <= t.summary_sector)
                    && m.sector >= summary_end
                    && m.sector < trailer
            })
        }))
    }

    /// Reads a segment and returns its valid records and where their data ends. Headers are read
    /// from just below the trailer downwards; each must check out, place its data right after the
    /// previous record's, and have data matching its checksums. The first that does not ends the
    /// scan.
    fn scan_segment(&mut self, seg: u32, epoch: u64) -> Result<(Vec<Record>, u32)> {
        let stamp = self.stamp(epoch);
        let base = self.sb.segment_offset(self.id, seg);
        let bytes = self.read_sync(base, self.sb.segment_bytes as usize)?;
        let trailer = self.sb.segment_sectors() - 1;
        let mut found = Vec::new();
        let mut data_end = 0u32;
        for header in (0..trailer).rev() {
            if header < data_end {
                break;
            }
            let at = header as usize * SECTOR_BYTES;
            let Some((meta, crcs)) = format::decode_record_header(&bytes[at..at + SECTOR_BYTES], stamp, header) else {
                break;
            };
            let end = data_end + meta.data_sectors();
            if meta.data_sector != data_end || end > header {
                break;
            }
            let data = &bytes[data_end as usize * SECTOR_BYTES..end as usize * SECTOR_BYTES];
            if data.chunks(SECTOR_BYTES).zip(&crcs).any(|(s, c)| format::crc32c(s) != *c) {
                break;
            }
            data_end = end;
            found.push((meta, crcs));
        }
        Ok((found, data_end))
    }
}

#[cfg(test)]
mod tests;
