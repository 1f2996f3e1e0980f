//! The on-disk format, version [`FORMAT_VERSION`]; described in `blockstore/FORMAT.md`.
//!
//! Pure encoders and decoders: no I/O here. Every structure carries a magic number and a CRC32C of
//! its own bytes; decoders return `None` for anything that does not check out (torn, stale, or
//! foreign bytes), never panic, whatever the input.
//!
//! Layout of a device (all little-endian, 4 KiB sectors):
//! ```text
//! sector 0, 1        superblock (two identical copies)
//! sector 2 ..        per shard: checkpoint slot A, checkpoint slot B
//! data_start ..      segments; segment g belongs to shard g % shard_count
//! ```
//! A segment holds the data of its extent records contiguously from its first sector upwards, one
//! header sector per record from just below its last sector downwards, and once sealed a summary
//! of its records in the gap between the two and a trailer in its last sector. Keeping headers
//! apart keeps consecutive extents' data contiguous (and 1 MiB extents 1 MiB-aligned), so a
//! sequential reader's stream has no gaps.

use crate::buf::SECTOR_BYTES;

pub const FORMAT_VERSION: u32 = 2;
pub const SUPERBLOCK_MAGIC: &[u8; 8] = b"BKTFSBLK";
pub const CHECKPOINT_MAGIC: &[u8; 8] = b"BKTFSCKP";
pub const RECORD_MAGIC: u32 = 0x4352_4B42; // "BKRC"
pub const SUMMARY_MAGIC: u32 = 0x4D53_4B42; // "BKSM"
pub const TRAILER_MAGIC: u32 = 0x5254_4B42; // "BKTR"

/// Largest extent a record holds: its per-sector checksums must fit in the header sector.
pub const EXTENT_BYTES_MAX: usize = 2 << 20;
pub const EXTENT_SECTORS_MAX: usize = EXTENT_BYTES_MAX / SECTOR_BYTES;
const RECORD_CRCS_AT: usize = 128;
const SUMMARY_HEADER_BYTES: usize = 32;
const SUMMARY_ENTRY_BYTES: usize = 72;
const CHECKPOINT_HEADER_BYTES: usize = 64;
const CHECKPOINT_ENTRY_BYTES: usize = 16;
/// Data starts on a 1 MiB boundary.
pub const DATA_ALIGN_BYTES: u64 = 1 << 20;

pub fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(bytes)
}

/// Identifies an extent: which object, which block of it, which version of the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub object_id: u64,
    pub block: u64,
    pub version: u64,
}

impl Key {
    pub const fn new(object_id: u64, block: u64, version: u64) -> Key {
        Key { object_id, block, version }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "object {} block {} version {:#x}", self.object_id, self.block, self.version)
    }
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn get_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn get_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn get_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
fn put_key(b: &mut [u8], at: usize, k: &Key) {
    put_u64(b, at, k.object_id);
    put_u64(b, at + 8, k.block);
    put_u64(b, at + 16, k.version);
}
fn get_key(b: &[u8], at: usize) -> Option<Key> {
    Some(Key { object_id: get_u64(b, at)?, block: get_u64(b, at + 8)?, version: get_u64(b, at + 16)? })
}
/// CRC of `b` with the 4 bytes at `at` taken as zero.
fn crc_with_hole(b: &[u8], at: usize) -> u32 {
    let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    digest.update(&b[..at]);
    digest.update(&[0u8; 4]);
    digest.update(&b[at + 4..]);
    digest.finalize() as u32
}

/// What every record, summary and trailer is stamped with: the store (from the superblock's uuid,
/// so nothing written before a reformat is ever taken for current) and the use of the segment
/// (its epoch, so nothing written before the segment was last reopened is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub store_id: u64,
    pub epoch: u64,
}

/// The device's geometry, written once by `format`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    pub format_version: u32,
    pub uuid: [u8; 16],
    pub device_bytes: u64,
    pub segment_bytes: u64,
    pub segment_count: u32,
    pub shard_count: u32,
    pub data_start: u64,
    /// Sectors of one checkpoint slot.
    pub checkpoint_sectors: u32,
    pub created_unix_s: u64,
}

const SB_CRC_AT: usize = 80;

impl Superblock {
    /// Lays out a device of `device_bytes` with segments of `segment_bytes` and `shard_count`
    /// shards. `None` when there would be fewer than 3 segments per shard.
    pub fn plan(
        device_bytes: u64,
        segment_bytes: u64,
        shard_count: u32,
        uuid: [u8; 16],
        now_unix_s: u64,
    ) -> Option<Superblock> {
        if shard_count == 0
            || segment_bytes < 16 * SECTOR_BYTES as u64
            || !segment_bytes.is_multiple_of(SECTOR_BYTES as u64)
        {
            return None;
        }
        let upper = device_bytes / segment_bytes;
        let per_shard_upper = upper.div_ceil(u64::from(shard_count));
        let cp_bytes = CHECKPOINT_HEADER_BYTES as u64 + per_shard_upper * CHECKPOINT_ENTRY_BYTES as u64;
        let checkpoint_sectors = u32::try_from(cp_bytes.div_ceil(SECTOR_BYTES as u64)).ok()?;
        let meta_bytes = (2 + 2 * u64::from(shard_count) * u64::from(checkpoint_sectors)) * SECTOR_BYTES as u64;
        let data_start = meta_bytes.div_ceil(DATA_ALIGN_BYTES) * DATA_ALIGN_BYTES;
        let segment_count = u32::try_from(device_bytes.checked_sub(data_start)? / segment_bytes).ok()?;
        if segment_count < 3 * shard_count {
            return None;
        }
        Some(Superblock {
            format_version: FORMAT_VERSION,
            uuid,
            device_bytes,
            segment_bytes,
            segment_count,
            shard_count,
            data_start,
            checkpoint_sectors,
            created_unix_s: now_unix_s,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; SECTOR_BYTES];
        b[0..8].copy_from_slice(SUPERBLOCK_MAGIC);
        put_u32(&mut b, 8, self.format_version);
        b[16..32].copy_from_slice(&self.uuid);
        put_u64(&mut b, 32, self.device_bytes);
        put_u64(&mut b, 40, self.segment_bytes);
        put_u32(&mut b, 48, self.segment_count);
        put_u32(&mut b, 52, self.shard_count);
        put_u64(&mut b, 56, self.data_start);
        put_u32(&mut b, 64, self.checkpoint_sectors);
        put_u64(&mut b, 72, self.created_unix_s);
        let crc = crc_with_hole(&b, SB_CRC_AT);
        put_u32(&mut b, SB_CRC_AT, crc);
        b
    }

    /// Decodes and checks a superblock sector; `Err` says why it is not one.
    pub fn decode(b: &[u8]) -> Result<Superblock, &'static str> {
        if b.len() < SECTOR_BYTES || &b[0..8] != SUPERBLOCK_MAGIC {
            return Err("no bucketfs superblock (not formatted?)");
        }
        if get_u32(b, SB_CRC_AT) != Some(crc_with_hole(&b[..SECTOR_BYTES], SB_CRC_AT)) {
            return Err("superblock checksum mismatch");
        }
        let format_version = get_u32(b, 8).ok_or("short")?;
        if format_version != FORMAT_VERSION {
            return Err("unsupported format version");
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[16..32]);
        let sb = Superblock {
            format_version,
            uuid,
            device_bytes: get_u64(b, 32).ok_or("short")?,
            segment_bytes: get_u64(b, 40).ok_or("short")?,
            segment_count: get_u32(b, 48).ok_or("short")?,
            shard_count: get_u32(b, 52).ok_or("short")?,
            data_start: get_u64(b, 56).ok_or("short")?,
            checkpoint_sectors: get_u32(b, 64).ok_or("short")?,
            created_unix_s: get_u64(b, 72).ok_or("short")?,
        };
        let end = sb.data_start.checked_add(u64::from(sb.segment_count) * sb.segment_bytes);
        if sb.shard_count == 0
            || !sb.segment_bytes.is_multiple_of(SECTOR_BYTES as u64)
            || sb.segment_bytes < 16 * SECTOR_BYTES as u64
            || end.is_none_or(|e| e > sb.device_bytes)
        {
            return Err("superblock geometry is inconsistent");
        }
        Ok(sb)
    }

    /// The store id every record is stamped with (the uuid's first 8 bytes).
    pub fn store_id(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.uuid[..8]);
        u64::from_le_bytes(b)
    }

    pub fn segment_sectors(&self) -> u32 {
        (self.segment_bytes / SECTOR_BYTES as u64) as u32
    }

    /// Segments owned by `shard` (global segment g belongs to shard g % shard_count).
    pub fn shard_segment_count(&self, shard: u32) -> u32 {
        let base = self.segment_count / self.shard_count;
        base + u32::from(shard < self.segment_count % self.shard_count)
    }

    /// Device offset of a shard's `local`-th segment.
    pub fn segment_offset(&self, shard: u32, local: u32) -> u64 {
        let global = u64::from(local) * u64::from(self.shard_count) + u64::from(shard);
        self.data_start + global * self.segment_bytes
    }

    /// Device offset of a shard's checkpoint slot (0 or 1).
    pub fn checkpoint_offset(&self, shard: u32, slot: u32) -> u64 {
        let sectors = 2 + (u64::from(shard) * 2 + u64::from(slot)) * u64::from(self.checkpoint_sectors);
        sectors * SECTOR_BYTES as u64
    }
}

/// A segment's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentState {
    Free = 0,
    Open = 1,
    Sealed = 2,
}

/// One segment's line in a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentEntry {
    pub state: SegmentState,
    /// Sequence number at which the segment was (last) opened; its records carry it.
    pub epoch: u64,
}

/// A shard's durable map of its segments plus its sequence reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub checkpoint_seq: u64,
    /// Every record sequence number ever handed out is below this.
    pub seq_reserved: u64,
    pub segments: Vec<SegmentEntry>,
}

const CP_CRC_AT: usize = 32;

impl Checkpoint {
    /// Encodes into exactly `sectors` sectors (`None` if it does not fit).
    pub fn encode(&self, sectors: u32) -> Option<Vec<u8>> {
        let len = sectors as usize * SECTOR_BYTES;
        let need = CHECKPOINT_HEADER_BYTES + self.segments.len() * CHECKPOINT_ENTRY_BYTES;
        if need > len {
            return None;
        }
        let mut b = vec![0u8; len];
        b[0..8].copy_from_slice(CHECKPOINT_MAGIC);
        put_u32(&mut b, 8, FORMAT_VERSION);
        put_u32(&mut b, 12, u32::try_from(self.segments.len()).ok()?);
        put_u64(&mut b, 16, self.checkpoint_seq);
        put_u64(&mut b, 24, self.seq_reserved);
        for (i, s) in self.segments.iter().enumerate() {
            let at = CHECKPOINT_HEADER_BYTES + i * CHECKPOINT_ENTRY_BYTES;
            b[at] = s.state as u8;
            put_u64(&mut b, at + 8, s.epoch);
        }
        let crc = crc_with_hole(&b[..need], CP_CRC_AT);
        put_u32(&mut b, CP_CRC_AT, crc);
        Some(b)
    }

    pub fn decode(b: &[u8]) -> Option<Checkpoint> {
        if b.get(0..8)? != CHECKPOINT_MAGIC || get_u32(b, 8)? != FORMAT_VERSION {
            return None;
        }
        let count = get_u32(b, 12)? as usize;
        let need = CHECKPOINT_HEADER_BYTES.checked_add(count.checked_mul(CHECKPOINT_ENTRY_BYTES)?)?;
        if need > b.len() || get_u32(b, CP_CRC_AT)? != crc_with_hole(&b[..need], CP_CRC_AT) {
            return None;
        }
        let mut segments = Vec::with_capacity(count);
        for i in 0..count {
            let at = CHECKPOINT_HEADER_BYTES + i * CHECKPOINT_ENTRY_BYTES;
            let state = match b[at] {
                0 => SegmentState::Free,
                1 => SegmentState::Open,
                2 => SegmentState::Sealed,
                _ => return None,
            };
            segments.push(SegmentEntry { state, epoch: get_u64(b, at + 8)? });
        }
        Some(Checkpoint { checkpoint_seq: get_u64(b, 16)?, seq_reserved: get_u64(b, 24)?, segments })
    }
}

/// A record as recovery sees it: its fixed part and its data sectors' CRC32Cs.
pub type Record = (RecordMeta, Vec<u32>);

/// What a record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// An extent's bytes follow the header.
    Extent = 1,
    /// The key is deleted (as of this record's sequence number).
    Tombstone = 2,
    /// The extent put as `put_seq` is now clean (safely in the bucket).
    Clean = 3,
}

pub const FLAG_DIRTY: u8 = 1;
pub const FLAG_PINNED: u8 = 2;

/// The fixed part of a record (header sector minus checksums), also a summary entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    pub kind: RecordKind,
    pub flags: u8,
    /// Order of this record in its shard's log.
    pub seq: u64,
    /// Identity of the put this extent came from (kept when the extent is copied forward);
    /// for `Clean`, the put being marked clean.
    pub put_seq: u64,
    pub key: Key,
    pub data_len: u32,
    /// Sector of the record's header within its segment.
    /// The record's header sector within its segment.
    pub sector: u32,
    /// First data sector within its segment (for records without data: where data would go).
    pub data_sector: u32,
}

impl RecordMeta {
    pub fn data_sectors(&self) -> u32 {
        (self.data_len as usize).div_ceil(SECTOR_BYTES) as u32
    }
}

fn kind_from(b: u8) -> Option<RecordKind> {
    match b {
        1 => Some(RecordKind::Extent),
        2 => Some(RecordKind::Tombstone),
        3 => Some(RecordKind::Clean),
        _ => None,
    }
}

const REC_CRC_AT: usize = 68;

/// Writes a record header sector: `meta`, the stamp and one CRC32C per data sector.
pub fn encode_record_header(out: &mut [u8], meta: &RecordMeta, stamp: Stamp, crcs: &[u32]) {
    assert!(out.len() >= SECTOR_BYTES && crcs.len() == meta.data_sectors() as usize);
    assert!(crcs.len() <= EXTENT_SECTORS_MAX);
    let b = &mut out[..SECTOR_BYTES];
    b.fill(0);
    put_u32(b, 0, RECORD_MAGIC);
    put_u16(b, 4, FORMAT_VERSION as u16);
    b[6] = meta.kind as u8;
    b[7] = meta.flags;
    put_u64(b, 8, meta.seq);
    put_u64(b, 16, stamp.epoch);
    put_key(b, 24, &meta.key);
    put_u32(b, 48, meta.data_len);
    put_u64(b, 56, meta.put_seq);
    put_u32(b, 64, meta.sector);
    put_u32(b, 80, meta.data_sector);
    put_u64(b, 72, stamp.store_id);
    for (i, c) in crcs.iter().enumerate() {
        put_u32(b, RECORD_CRCS_AT + 4 * i, *c);
    }
    let crc = crc_with_hole(b, REC_CRC_AT);
    put_u32(b, REC_CRC_AT, crc);
}

/// Decodes a record header sector written with `stamp` at `sector`; `None` for anything else
/// (garbage, torn, a record of an earlier use of the segment or an earlier format).
pub fn decode_record_header(b: &[u8], stamp: Stamp, sector: u32) -> Option<(RecordMeta, Vec<u32>)> {
    let b = b.get(..SECTOR_BYTES)?;
    if get_u32(b, 0)? != RECORD_MAGIC || u32::from(get_u16(b, 4)?) != FORMAT_VERSION {
        return None;
    }
    if get_u32(b, REC_CRC_AT)? != crc_with_hole(b, REC_CRC_AT)
        || get_u64(b, 16)? != stamp.epoch
        || get_u64(b, 72)? != stamp.store_id
    {
        return None;
    }
    let meta = RecordMeta {
        kind: kind_from(b[6])?,
        flags: b[7],
        seq: get_u64(b, 8)?,
        key: get_key(b, 24)?,
        data_len: get_u32(b, 48)?,
        put_seq: get_u64(b, 56)?,
        sector: get_u32(b, 64)?,
        data_sector: get_u32(b, 80)?,
    };
    if meta.sector != sector
        || meta.data_len as usize > EXTENT_BYTES_MAX
        || (meta.kind != RecordKind::Extent && meta.data_len != 0)
    {
        return None;
    }
    let crcs =
        (0..meta.data_sectors() as usize).map(|i| get_u32(b, RECORD_CRCS_AT + 4 * i)).collect::<Option<Vec<_>>>()?;
    Some((meta, crcs))
}

/// Bytes a summary entry for a record with `data_sectors` data sectors takes.
pub fn summary_entry_bytes(data_sectors: u32) -> usize {
    SUMMARY_ENTRY_BYTES + 4 * data_sectors as usize
}

/// Bytes of a summary holding entries of `entry_bytes` in total.
pub fn summary_bytes(entry_bytes: usize) -> usize {
    SUMMARY_HEADER_BYTES + entry_bytes
}

/// Encodes a segment summary: every record of the segment with its checksums.
pub fn encode_summary(stamp: Stamp, records: &[Record]) -> Vec<u8> {
    let entry_bytes: usize = records.iter().map(|(m, _)| summary_entry_bytes(m.data_sectors())).sum();
    let len = summary_bytes(entry_bytes);
    let mut b = vec![0u8; len.div_ceil(SECTOR_BYTES) * SECTOR_BYTES];
    put_u32(&mut b, 0, SUMMARY_MAGIC);
    put_u32(&mut b, 4, records.len() as u32);
    put_u64(&mut b, 8, stamp.epoch);
    put_u32(&mut b, 16, len as u32);
    put_u64(&mut b, 24, stamp.store_id);
    let mut at = SUMMARY_HEADER_BYTES;
    for (m, crcs) in records {
        b[at] = m.kind as u8;
        b[at + 1] = m.flags;
        put_u32(&mut b, at + 4, m.sector);
        put_u32(&mut b, at + 52, m.data_sector);
        put_u64(&mut b, at + 8, m.seq);
        put_u64(&mut b, at + 16, m.put_seq);
        put_key(&mut b, at + 24, &m.key);
        put_u32(&mut b, at + 48, m.data_len);
        at += SUMMARY_ENTRY_BYTES;
        for c in crcs {
            put_u32(&mut b, at, *c);
            at += 4;
        }
    }
    let crc = crc_with_hole(&b[..len], 20);
    put_u32(&mut b, 20, crc);
    b
}

pub fn decode_summary(b: &[u8], stamp: Stamp) -> Option<Vec<Record>> {
    if get_u32(b, 0)? != SUMMARY_MAGIC || get_u64(b, 8)? != stamp.epoch || get_u64(b, 24)? != stamp.store_id {
        return None;
    }
    let count = get_u32(b, 4)? as usize;
    let len = get_u32(b, 16)? as usize;
    if len > b.len() || len < SUMMARY_HEADER_BYTES || get_u32(b, 20)? != crc_with_hole(&b[..len], 20) {
        return None;
    }
    let mut out = Vec::with_capacity(count.min(len / SUMMARY_ENTRY_BYTES));
    let mut at = SUMMARY_HEADER_BYTES;
    for _ in 0..count {
        let meta = RecordMeta {
            kind: kind_from(*b.get(at)?)?,
            flags: *b.get(at + 1)?,
            sector: get_u32(b, at + 4)?,
            data_sector: get_u32(b, at + 52)?,
            seq: get_u64(b, at + 8)?,
            put_seq: get_u64(b, at + 16)?,
            key: get_key(b, at + 24)?,
            data_len: get_u32(b, at + 48)?,
        };
        if meta.data_len as usize > EXTENT_BYTES_MAX {
            return None;
        }
        at += SUMMARY_ENTRY_BYTES;
        let n = meta.data_sectors() as usize;
        if at + 4 * n > len {
            return None;
        }
        let crcs = (0..n).map(|i| get_u32(b, at + 4 * i)).collect::<Option<Vec<_>>>()?;
        at += 4 * n;
        out.push((meta, crcs));
    }
    (at == len).then_some(out)
}

/// The last sector of a sealed segment: where its summary is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    pub epoch: u64,
    pub summary_sector: u32,
    pub summary_sectors: u32,
}

pub fn encode_trailer(t: &Trailer, store_id: u64) -> Vec<u8> {
    let mut b = vec![0u8; SECTOR_BYTES];
    put_u32(&mut b, 0, TRAILER_MAGIC);
    put_u64(&mut b, 8, t.epoch);
    put_u32(&mut b, 16, t.summary_sector);
    put_u32(&mut b, 20, t.summary_sectors);
    put_u64(&mut b, 32, store_id);
    let crc = crc_with_hole(&b, 24);
    put_u32(&mut b, 24, crc);
    b
}

pub fn decode_trailer(b: &[u8], stamp: Stamp) -> Option<Trailer> {
    let epoch = stamp.epoch;
    let b = b.get(..SECTOR_BYTES)?;
    if get_u32(b, 0)? != TRAILER_MAGIC
        || get_u32(b, 24)? != crc_with_hole(b, 24)
        || get_u64(b, 8)? != epoch
        || get_u64(b, 32)? != stamp.store_id
    {
        return None;
    }
    Some(Trailer { epoch, summary_sector: get_u32(b, 16)?, summary_sectors: get_u32(b, 20)? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta(kind: RecordKind, data_len: u32) -> RecordMeta {
        RecordMeta {
            kind,
            flags: FLAG_DIRTY,
            seq: 42,
            put_seq: 40,
            key: Key::new(1, 2, 3),
            data_len,
            sector: 7,
            data_sector: 3,
        }
    }

    #[test]
    fn superblock_round_trip_and_geometry() {
        let sb = Superblock::plan(1 << 30, 64 << 20, 2, [9; 16], 1).expect("plan");
        assert_eq!(sb.data_start % DATA_ALIGN_BYTES, 0);
        assert!(sb.data_start + u64::from(sb.segment_count) * sb.segment_bytes <= sb.device_bytes);
        assert_eq!(sb.shard_segment_count(0) + sb.shard_segment_count(1), sb.segment_count);
        let enc = sb.encode();
        assert_eq!(Superblock::decode(&enc), Ok(sb.clone()));
        let mut bad = enc.clone();
        bad[40] ^= 1;
        assert_eq!(Superblock::decode(&bad), Err("superblock checksum mismatch"));
        assert!(Superblock::decode(&[0u8; 4096]).is_err());
        // checkpoint slots end before the data
        let last = sb.checkpoint_offset(1, 1) + u64::from(sb.checkpoint_sectors) * SECTOR_BYTES as u64;
        assert!(last <= sb.data_start);
        assert!(Superblock::plan(4 << 20, 1 << 20, 2, [0; 16], 0).is_none(), "too small");
    }

    const STAMP: Stamp = Stamp { store_id: 0xABCD, epoch: 77 };

    #[test]
    fn record_header_rejects_other_epochs_stores_and_sectors() {
        let m = meta(RecordKind::Extent, 5000);
        let mut b = vec![0u8; SECTOR_BYTES];
        encode_record_header(&mut b, &m, STAMP, &[1, 2]);
        assert_eq!(decode_record_header(&b, STAMP, 7), Some((m, vec![1, 2])));
        assert_eq!(decode_record_header(&b, Stamp { epoch: 78, ..STAMP }, 7), None);
        assert_eq!(decode_record_header(&b, Stamp { store_id: 1, ..STAMP }, 7), None, "an earlier format's record");
        assert_eq!(decode_record_header(&b, STAMP, 8), None);
        b[30] ^= 0x10;
        assert_eq!(decode_record_header(&b, STAMP, 7), None);
    }

    #[test]
    fn summary_and_trailer_round_trip() {
        let records = vec![
            (meta(RecordKind::Extent, 8192), vec![5, 6]),
            (meta(RecordKind::Tombstone, 0), vec![]),
            (meta(RecordKind::Clean, 0), vec![]),
        ];
        let stamp = Stamp { epoch: 9, ..STAMP };
        let enc = encode_summary(stamp, &records);
        assert_eq!(enc.len() % SECTOR_BYTES, 0);
        assert_eq!(decode_summary(&enc, stamp), Some(records));
        assert_eq!(decode_summary(&enc, Stamp { epoch: 10, ..stamp }), None);
        assert_eq!(decode_summary(&enc, Stamp { store_id: 2, ..stamp }), None);
        let t = Trailer { epoch: 9, summary_sector: 100, summary_sectors: 2 };
        assert_eq!(decode_trailer(&encode_trailer(&t, STAMP.store_id), stamp), Some(t));
        assert_eq!(decode_trailer(&encode_trailer(&t, STAMP.store_id), Stamp { epoch: 8, ..stamp }), None);
        assert_eq!(decode_trailer(&encode_trailer(&t, 5), stamp), None);
    }

    #[test]
    fn checkpoint_round_trip() {
        let cp = Checkpoint {
            checkpoint_seq: 3,
            seq_reserved: 1 << 20,
            segments: vec![
                SegmentEntry { state: SegmentState::Sealed, epoch: 5 },
                SegmentEntry { state: SegmentState::Free, epoch: 0 },
                SegmentEntry { state: SegmentState::Open, epoch: 9 },
            ],
        };
        let enc = cp.encode(1).expect("fits");
        assert_eq!(Checkpoint::decode(&enc), Some(cp));
    }

    proptest! {
        #[test]
        fn decoders_never_panic_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..9000), epoch in any::<u64>(), sector in any::<u32>()) {
            let _ = Superblock::decode(&bytes);
            let _ = Checkpoint::decode(&bytes);
            let stamp = Stamp { store_id: epoch.rotate_left(7), epoch };
            let _ = decode_record_header(&bytes, stamp, sector);
            let _ = decode_summary(&bytes, stamp);
            let _ = decode_trailer(&bytes, stamp);
        }

        #[test]
        fn summaries_survive_any_flip(flip in 0usize..summary_bytes(summary_entry_bytes(1)), bit in 0u8..8) {
            let records = vec![(meta(RecordKind::Extent, 4096), vec![11])];
            let mut enc = encode_summary(STAMP, &records);
            enc[flip] ^= 1 << bit;
            prop_assert_eq!(decode_summary(&enc, STAMP), None);
        }
    }
}
