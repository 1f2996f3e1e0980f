//! A block device or regular file opened `O_DIRECT`, driven through io_uring.
//!
//! [`UringFileDevice`] opens the path `O_RDWR | O_DIRECT | O_CLOEXEC`, registers the file with its
//! ring (fixed file slot 0) and, when given a [`BufPool`], registers every slot of the pool as an
//! io_uring fixed buffer. A request whose buffer is a slot of that pool goes out as
//! `READ_FIXED`/`WRITE_FIXED`; any other buffer as a plain `READ`/`WRITE`. A flush is `FSYNC`
//! with `DATASYNC`: `fdatasync` for a file, a volatile-cache flush for a block device.
//!
//! IOPOLL. When asked to poll, the handle first looks at the medium's `queue/io_poll` in sysfs; a
//! medium without poll queues (virtio-blk, for one) gets an interrupt-driven ring and
//! [`DeviceInfo::polled`] says `false`. Otherwise it builds an `IORING_SETUP_IOPOLL` ring and
//! probes it with one read of sector 0: the kernel fails polled I/O to a medium that cannot poll
//! with `EOPNOTSUPP` at completion, not at setup, and in that case the handle is rebuilt without
//! IOPOLL. If polled I/O is refused later (a file whose first sector was a hole when probed), the
//! refused operation and everything after it moves to an interrupt-driven ring and `polled`
//! turns `false`; nothing fails. An IOPOLL ring accepts only pollable operations (`FSYNC` fails
//! there with `EINVAL`), so a polled handle keeps a second, interrupt-driven ring for flushes.
//! A polled operation goes out in pieces the block layer need not split (`max_sectors_kb` and
//! `max_segments` pages): on Linux 6.1 a polled request that needs a split never completes.
//!
//! The ring machinery, [`UringEngine`], is shared with the NVMe passthrough backend
//! ([`super::uring_nvme`]): a slab of in-flight operations (each owning its buffer until its
//! completion is reaped), the queue-depth bound, large operations split into chunks, short
//! transfers resubmitted for their remainder, `EAGAIN`/`EINTR` completions retried a bounded
//! number of times, and a drop that waits for every in-flight operation before freeing buffers.
//! A backend supplies a [`Codec`]: how to build an SQE for a chunk, and how to read a CQE.
//!
//! One handle belongs to one shard thread; each shard opens its own handle (its own rings).

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use io_uring::squeue::EntryMarker as _;
use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::{validate_request, Device, DeviceError, DeviceInfo, DeviceKind, IoCompletion, IoKind, IoRequest};
use crate::buf::{AlignedBuf, BufPool, SECTOR_BYTES};

/// Largest queue depth a handle accepts.
pub const QUEUE_DEPTH_MAX: u32 = 4096;
/// Most times one operation is resubmitted after an `EAGAIN` or `EINTR` completion.
const RETRIES_MAX: u8 = 4;
/// Most consecutive `io_uring_enter` calls that make no progress (`EBUSY`, `EAGAIN`, `EINTR`)
/// before the queue is declared broken.
const STALLS_MAX: u32 = 100_000;
/// Largest chunk one file SQE moves (the kernel caps one read or write below 2 GiB).
const FILE_CHUNK_BYTES_MAX: usize = 1 << 30;
/// Largest chunk of a polled operation when sysfs does not give the queue's limits.
const POLLED_CHUNK_BYTES_DEFAULT: usize = 128 << 10;

// ---------------------------------------------------------------------------------------------
// The file backend.

/// A block device or regular file opened `O_DIRECT`, through io_uring. See the module docs.
pub struct UringFileDevice {
    engine: UringEngine<FileCodec>,
    /// The open medium; declared after the engine so it closes after the rings.
    _file: File,
}

impl UringFileDevice {
    /// Opens `path` (a regular file or a block device) with room for `queue_depth` operations in
    /// flight. `iopoll` asks for polled completions; [`DeviceInfo::polled`] says whether they are
    /// in effect. `pool`'s slots are registered as fixed buffers when given.
    pub fn open(
        path: &Path,
        queue_depth: u32,
        iopoll: bool,
        pool: Option<&BufPool>,
    ) -> Result<UringFileDevice, DeviceError> {
        UringFileDevice::open_with(path, queue_depth, iopoll, pool, Tuning::default())
    }

    fn open_with(
        path: &Path,
        queue_depth: u32,
        iopoll: bool,
        pool: Option<&BufPool>,
        tuning: Tuning,
    ) -> Result<UringFileDevice, DeviceError> {
        let name = path.display().to_string();
        let fail = |reason: String| DeviceError::new(&name, "open", 0, 0, reason);
        check_queue_depth(&name, queue_depth)?;
        let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
        if !meta.file_type().is_file() && !meta.file_type().is_block_device() {
            return Err(fail(format!(
                "not a regular file or block device ({}); an NVMe generic char device \
                 (/dev/ngXnY) needs the NVMe passthrough backend",
                describe_file_type(&meta)
            )));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::EINVAL) {
                    fail(format!("O_DIRECT open refused, the filesystem may not support it: {e}"))
                } else {
                    fail(format!("O_RDWR|O_DIRECT open failed: {e}"))
                }
            })?;
        super::lock_shared(&file, &path.display().to_string())?;
        // Look again through the open descriptor: the path may have changed under us.
        let meta = file.metadata().map_err(|e| fail(format!("fstat failed: {e}")))?;
        let geometry = if meta.file_type().is_block_device() {
            block_geometry(&file).map_err(fail)?
        } else if meta.file_type().is_file() {
            file_geometry(&file, &meta).map_err(fail)?
        } else {
            return Err(fail(format!("not a regular file or block device ({})", describe_file_type(&meta))));
        };
        let poll_dev = if meta.file_type().is_block_device() { meta.rdev() } else { meta.dev() };

        let info = DeviceInfo {
            name: name.clone(),
            kind: DeviceKind::BlockOrFile,
            size_bytes: geometry.size_bytes,
            lba_bytes: geometry.lba_bytes,
            queue_depth_max: queue_depth,
            polled: false,
        };
        let try_poll = iopoll
            && match sysfs_io_poll(poll_dev) {
                _ if tuning.poll == PollPolicy::Unprobed => true,
                Some(false) => {
                    tracing::info!(
                        device = %name,
                        "IOPOLL requested but the medium has no poll queues; using interrupts"
                    );
                    false
                }
                Some(true) | None => true,
            };
        // Polled operations go out in pieces the block layer need not split (see
        // `sysfs_unsplit_bytes`); 128 KiB when sysfs does not say.
        let polled_chunk_bytes = sysfs_unsplit_bytes(poll_dev).unwrap_or(POLLED_CHUNK_BYTES_DEFAULT);
        let setup = |iopoll: bool| EngineSetup {
            info: info.clone(),
            fd: file.as_raw_fd(),
            iopoll,
            pool,
            chunk_bytes_max: if iopoll {
                tuning.chunk_bytes_max.min(polled_chunk_bytes)
            } else {
                tuning.chunk_bytes_max
            },
            flush_unpolled: true,
            fixed_span_bytes_max: usize::MAX,
        };
        let engine = if tuning.poll == PollPolicy::Unprobed {
            UringEngine::new(setup(try_poll), FileCodec)?
        } else {
            UringEngine::open_probing(&setup, try_poll, FileCodec)?
        };
        Ok(UringFileDevice { engine, _file: file })
    }

    /// Counters of how operations went out (fixed or plain buffers, resubmissions, fallbacks).
    pub fn stats(&self) -> UringStats {
        self.engine.stats()
    }
}

impl Device for UringFileDevice {
    fn info(&self) -> &DeviceInfo {
        self.engine.info()
    }

    fn push(&mut self, req: IoRequest) -> Result<(), Box<(IoRequest, DeviceError)>> {
        self.engine.push(req)
    }

    fn submit_and_wait(&mut self, wait_min: usize, out: &mut Vec<IoCompletion>) -> Result<usize, DeviceError> {
        self.engine.submit_and_wait(wait_min, out)
    }

    fn in_flight(&self) -> usize {
        self.engine.in_flight()
    }
}

/// Knobs the tests turn; [`UringFileDevice::open`] uses the defaults.
#[derive(Clone, Copy, Debug)]
struct Tuning {
    chunk_bytes_max: usize,
    poll: PollPolicy,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning { chunk_bytes_max: FILE_CHUNK_BYTES_MAX, poll: PollPolicy::Detect }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PollPolicy {
    /// Ask sysfs, then probe a polled ring with one read (what `open` does).
    Detect,
    /// Build the polled ring as asked, without asking sysfs or probing: polled I/O the medium
    /// refuses is then moved to the interrupt-driven ring at run time.
    #[cfg_attr(not(test), allow(dead_code))]
    Unprobed,
}

/// Builds `READ`/`WRITE` (plain or fixed) and `FSYNC` SQEs against fixed file slot 0.
#[derive(Clone, Copy)]
struct FileCodec;

impl Codec for FileCodec {
    type Sqe = squeue::Entry;
    type Cqe = cqueue::Entry;

    fn sqe(&self, chunk: &Chunk) -> squeue::Entry {
        let fd = types::Fixed(0);
        match (chunk.kind, chunk.buf_index) {
            (IoKind::Read, Some(index)) => {
                opcode::ReadFixed::new(fd, chunk.addr, chunk.len, index).offset(chunk.offset).build()
            }
            (IoKind::Read, None) => opcode::Read::new(fd, chunk.addr, chunk.len).offset(chunk.offset).build(),
            (IoKind::Write, Some(index)) => {
                opcode::WriteFixed::new(fd, chunk.addr.cast_const(), chunk.len, index).offset(chunk.offset).build()
            }
            (IoKind::Write, None) => {
                opcode::Write::new(fd, chunk.addr.cast_const(), chunk.len).offset(chunk.offset).build()
            }
            (IoKind::Flush, _) => opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build(),
        }
    }

    fn outcome(&self, _chunk_bytes: usize, res: i32) -> Outcome {
        match usize::try_from(res) {
            Ok(moved) => Outcome::Moved(moved),
            Err(_) => Outcome::Errno(res.saturating_neg()),
        }
    }
}

struct Geometry {
    size_bytes: u64,
    lba_bytes: u32,
}

/// `BLKGETSIZE64`: the size of a block device in bytes (`_IOR(0x12, 114, size_t)`).
const BLKGETSIZE64: libc::Ioctl = libc::_IOR::<libc::size_t>(0x12, 114);

fn block_geometry(file: &File) -> Result<Geometry, String> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points to a live local of
    // that type; the descriptor is open for the duration of the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) };
    if rc < 0 {
        return Err(format!("ioctl BLKGETSIZE64 failed: {}", io::Error::last_os_error()));
    }
    let mut lba: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which points to a live local of that
    // type; the descriptor is open for the duration of the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::BLKSSZGET, &mut lba as *mut libc::c_int) };
    if rc < 0 {
        return Err(format!("ioctl BLKSSZGET failed: {}", io::Error::last_os_error()));
    }
    let lba_bytes = u32::try_from(lba).map_err(|_| format!("BLKSSZGET returned {lba}"))?;
    geometry(size, lba_bytes)
}

/// A file's size, and its `O_DIRECT` offset alignment (`statx` `STATX_DIOALIGN`, Linux 6.1+) as
/// the logical block size; 512 when the kernel does not say.
fn file_geometry(file: &File, meta: &Metadata) -> Result<Geometry, String> {
    use rustix::fs::{AtFlags, StatxFlags};
    let lba_bytes = match rustix::fs::statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN) {
        Ok(stx) if stx.stx_mask & StatxFlags::DIOALIGN.bits() != 0 => {
            if stx.stx_dio_offset_align == 0 {
                return Err("the filesystem does not support O_DIRECT for this file".to_string());
            }
            if stx.stx_dio_mem_align as usize > SECTOR_BYTES {
                return Err(format!(
                    "O_DIRECT needs {}-byte aligned memory, more than the {SECTOR_BYTES} buffers have",
                    stx.stx_dio_mem_align
                ));
            }
            stx.stx_dio_offset_align
        }
        _ => 512,
    };
    geometry(meta.len(), lba_bytes)
}

/// Checks the logical block size and rounds the size down to whole sectors (a file's tail past
/// the last whole sector is never used).
fn geometry(size: u64, lba_bytes: u32) -> Result<Geometry, String> {
    if !lba_bytes.is_power_of_two() || lba_bytes < 512 || lba_bytes as usize > SECTOR_BYTES {
        return Err(format!(
            "logical block size {lba_bytes} unsupported (need a power of two from 512 to \
             {SECTOR_BYTES})"
        ));
    }
    let size_bytes = size - size % SECTOR_BYTES as u64;
    Ok(Geometry { size_bytes, lba_bytes })
}

fn describe_file_type(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        "an unknown file type"
    }
}

/// Whether the block device numbered `dev` (or the disk holding that partition) has poll queues,
/// from `/sys/dev/block/MAJ:MIN/queue/io_poll`. `None` when sysfs does not say (e.g. a file on a
/// filesystem without a single backing device).
pub(super) fn sysfs_io_poll(dev: u64) -> Option<bool> {
    sysfs_queue_attr(dev, "io_poll").map(|s| s.trim() == "1")
}

/// The most bytes one polled operation may move on the block device numbered `dev` without the
/// block layer splitting it: `max_sectors_kb`, and `max_segments` pages (a buffer's pages need
/// not be physically contiguous). A polled request that needs a split never completes on Linux
/// 6.1 (seen in the QEMU guest: a 1 MiB polled read of an NVMe block device hangs).
fn sysfs_unsplit_bytes(dev: u64) -> Option<usize> {
    let kb: usize = sysfs_queue_attr(dev, "max_sectors_kb")?.trim().parse().ok()?;
    let segments: usize = sysfs_queue_attr(dev, "max_segments")?.trim().parse().ok()?;
    let bytes = kb.saturating_mul(1024).min(segments.saturating_mul(SECTOR_BYTES));
    Some(bytes - bytes % SECTOR_BYTES).filter(|&b| b > 0)
}

/// `/sys/dev/block/MAJ:MIN/queue/ATTR` of the block device numbered `dev`, or of the disk holding
/// that partition.
fn sysfs_queue_attr(dev: u64, attr: &str) -> Option<String> {
    let base = format!("/sys/dev/block/{}:{}", rustix::fs::major(dev), rustix::fs::minor(dev));
    // A partition has no queue directory of its own; its disk is the parent directory.
    [format!("{base}/queue/{attr}"), format!("{base}/../queue/{attr}")]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
}

pub(super) fn check_queue_depth(name: &str, queue_depth: u32) -> Result<(), DeviceError> {
    if queue_depth == 0 || queue_depth > QUEUE_DEPTH_MAX {
        return Err(DeviceError::new(
            name,
            "open",
            0,
            0,
            format!("queue depth {queue_depth} out of range 1..={QUEUE_DEPTH_MAX}"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The ring machinery shared by the io_uring backends.

/// How a backend encodes operations for its ring and decodes their results.
pub(super) trait Codec: Clone {
    type Sqe: squeue::EntryMarker;
    type Cqe: cqueue::EntryMarker;
    /// The SQE for `chunk`, against fixed file slot 0 (the engine sets `user_data`).
    fn sqe(&self, chunk: &Chunk) -> Self::Sqe;
    /// What a CQE result means for a chunk of `chunk_bytes` bytes.
    fn outcome(&self, chunk_bytes: usize, res: i32) -> Outcome;
}

/// One SQE's worth of an operation.
pub(super) struct Chunk {
    pub kind: IoKind,
    /// Byte offset on the medium.
    pub offset: u64,
    /// Start of the chunk's memory (null for a flush).
    pub addr: *mut u8,
    /// Bytes (0 for a flush).
    pub len: u32,
    /// The fixed-buffer index when the memory lies in a buffer registered with this ring.
    pub buf_index: Option<u16>,
}

/// What a completion says about its chunk.
pub(super) enum Outcome {
    /// This many bytes moved (for a flush: it succeeded).
    Moved(usize),
    /// The kernel failed the chunk with this errno.
    Errno(i32),
    /// The device failed the chunk, for this reason (an NVMe status, say).
    Failed(String),
}

/// Counters of one handle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UringStats {
    /// SQEs that used a registered (fixed) buffer.
    pub fixed_sqes: u64,
    /// SQEs with a plain user address (heap buffers, flushes, the fallback ring).
    pub plain_sqes: u64,
    /// Chunks resubmitted: remainders of short transfers, the next chunk of a large operation,
    /// and `EAGAIN`/`EINTR` retries.
    pub resubmits: u64,
    /// Operations moved to the interrupt-driven ring because the medium refused polled I/O.
    pub poll_refusals: u64,
    /// Chunks the kernel refused with a fixed buffer (`EINVAL`) and that were resubmitted with
    /// a plain address.
    pub fixed_refusals: u64,
}

/// What a backend hands [`UringEngine::open_probing`].
pub(super) struct EngineSetup<'a> {
    /// Facts about the medium; `polled` is filled in by the engine.
    pub info: DeviceInfo,
    /// The open medium, registered as fixed file slot 0 with every ring.
    pub fd: RawFd,
    pub iopoll: bool,
    pub pool: Option<&'a BufPool>,
    /// Largest chunk one SQE may move; bigger operations go out one chunk after another.
    pub chunk_bytes_max: usize,
    /// Whether a flush must go to an interrupt-driven ring when the main ring is polled.
    pub flush_unpolled: bool,
    /// A chunk uses its fixed buffer only if the registered buffer extends at most this many
    /// bytes past the chunk's start (see the NVMe backend); `usize::MAX` for no limit.
    pub fixed_span_bytes_max: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ring {
    Primary,
    Fallback,
}

/// An operation between push and completion. Owns its buffer: the kernel may touch that memory
/// until the operation's last CQE is reaped.
struct Op {
    tag: u64,
    kind: IoKind,
    offset: u64,
    buf: Option<AlignedBuf>,
    /// Bytes done by earlier chunks.
    done_bytes: usize,
    /// Bytes of the chunk in flight.
    chunk_bytes: usize,
    ring: Ring,
    retries: u8,
    /// Whether the chunk in flight uses a fixed buffer.
    chunk_fixed: bool,
    /// Set once the kernel refused this operation's fixed buffer: plain addresses from then on.
    fixed_refused: bool,
}

impl Op {
    fn len_bytes(&self) -> usize {
        self.buf.as_ref().map_or(0, AlignedBuf::len)
    }
}

/// What to do with an operation after one of its CQEs.
enum Next {
    Finish(Result<(), String>),
    Resubmit,
}

/// Rings, in-flight slab and bounds, generic over the SQE/CQE format. See the module docs.
pub(super) struct UringEngine<K: Codec> {
    info: DeviceInfo,
    /// The main ring: polled when IOPOLL is in effect, with the pool's buffers registered.
    primary: IoUring<K::Sqe, K::Cqe>,
    /// Beside a polled main ring: an interrupt-driven ring (no registered buffers) for flushes
    /// when they cannot be polled, and for everything once the medium refuses polled I/O.
    fallback: Option<IoUring<K::Sqe, K::Cqe>>,
    codec: K,
    /// Keeps the registered memory alive at least as long as the rings (declared after them,
    /// so dropped after them).
    _pool: Option<BufPool>,
    /// `(address, length)` of each registered buffer, by fixed-buffer index.
    fixed: Vec<(usize, usize)>,
    ops: Vec<Option<Op>>,
    free: Vec<usize>,
    in_flight: usize,
    in_flight_primary: usize,
    in_flight_fallback: usize,
    primary_polled: bool,
    poll_refused: bool,
    flush_unpolled: bool,
    fixed_span_bytes_max: usize,
    chunk_bytes_max: usize,
    /// Scratch space for CQEs copied out of a completion queue.
    cqes: Vec<(u64, i32)>,
    stats: UringStats,
}

impl<K: Codec> UringEngine<K> {
    /// Builds the engine, polled if `try_poll`; a polled engine is probed with one read of
    /// sector 0 and rebuilt without IOPOLL if the medium refuses polled I/O.
    pub(super) fn open_probing<'a>(
        setup: &dyn Fn(bool) -> EngineSetup<'a>,
        try_poll: bool,
        codec: K,
    ) -> Result<UringEngine<K>, DeviceError> {
        if !try_poll {
            return UringEngine::new(setup(false), codec);
        }
        let mut engine = UringEngine::new(setup(true), codec.clone())?;
        engine.probe_polling();
        if !engine.poll_refused {
            return Ok(engine);
        }
        tracing::info!(
            device = %engine.info.name,
            "the medium refused polled I/O; reopening without IOPOLL"
        );
        drop(engine);
        UringEngine::new(setup(false), codec)
    }

    fn new(setup: EngineSetup<'_>, codec: K) -> Result<UringEngine<K>, DeviceError> {
        let EngineSetup { mut info, fd, iopoll, pool, chunk_bytes_max, flush_unpolled, fixed_span_bytes_max } = setup;
        let name = info.name.clone();
        let fail = |what: &str, e: io::Error| DeviceError::new(&name, "open", 0, 0, format!("{what}: {e}"));
        let depth = info.queue_depth_max;
        let primary = build_ring::<K>(depth, iopoll)
            .map_err(|e| fail(if iopoll { "io_uring setup with IOPOLL failed" } else { "io_uring setup failed" }, e))?;
        primary.submitter().register_files(&[fd]).map_err(|e| fail("registering the file with io_uring failed", e))?;
        let mut fixed = Vec::new();
        if let Some(pool) = pool {
            let iovecs = pool.iovecs();
            if !iovecs.is_empty() {
                // SAFETY: the iovecs describe the pool's slot memory, which lives as long as any
                // clone of the pool; the engine keeps a clone (`_pool`) declared after the rings,
                // so the memory outlives the registration. The kernel only touches it through
                // SQEs the engine builds for buffers it owns (see `fixed_index`).
                unsafe { primary.submitter().register_buffers(&iovecs) }.map_err(|e| {
                    let bytes: usize = iovecs.iter().map(|v| v.iov_len).sum();
                    fail(
                        &format!(
                            "registering {} buffers ({bytes} bytes) with io_uring failed \
                             (RLIMIT_MEMLOCK too low, or more than 16384 buffers?)",
                            iovecs.len()
                        ),
                        e,
                    )
                })?;
                fixed = iovecs.iter().map(|v| (v.iov_base as usize, v.iov_len)).collect();
            }
        }
        let fallback = if iopoll {
            let ring =
                build_ring::<K>(depth, false).map_err(|e| fail("io_uring setup (interrupt-driven ring) failed", e))?;
            ring.submitter().register_files(&[fd]).map_err(|e| fail("registering the file with io_uring failed", e))?;
            Some(ring)
        } else {
            None
        };
        info.polled = iopoll;
        let depth = depth as usize;
        Ok(UringEngine {
            info,
            primary,
            fallback,
            codec,
            _pool: pool.cloned(),
            fixed,
            ops: (0..depth).map(|_| None).collect(),
            free: (0..depth).rev().collect(),
            in_flight: 0,
            in_flight_primary: 0,
            in_flight_fallback: 0,
            primary_polled: iopoll,
            poll_refused: false,
            flush_unpolled,
            fixed_span_bytes_max,
            chunk_bytes_max: chunk_bytes_max.clamp(SECTOR_BYTES, FILE_CHUNK_BYTES_MAX),
            cqes: Vec::with_capacity(depth * 2),
            stats: UringStats::default(),
        })
    }

    pub(super) fn info(&self) -> &DeviceInfo {
        &self.info
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub(super) fn stats(&self) -> UringStats {
        self.stats
    }

    /// One read of sector 0 through a polled ring: a medium without poll queues refuses it, and
    /// the refusal handling in [`Self::complete_chunk`] records that.
    fn probe_polling(&mut self) {
        if !self.primary_polled || self.info.size_bytes < SECTOR_BYTES as u64 {
            return;
        }
        let probe = IoRequest::read(0, AlignedBuf::zeroed(SECTOR_BYTES), u64::MAX);
        if let Err(refused) = self.push(probe) {
            tracing::warn!(device = %self.info.name, error = %refused.1, "IOPOLL probe not queued");
            return;
        }
        let mut out = Vec::with_capacity(1);
        match self.submit_and_wait(1, &mut out) {
            Ok(_) => {
                for c in out {
                    if let Err(error) = c.result {
                        tracing::warn!(device = %self.info.name, %error, "IOPOLL probe read failed");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(device = %self.info.name, %error, "IOPOLL probe failed");
            }
        }
    }

    pub(super) fn push(&mut self, req: IoRequest) -> Result<(), Box<(IoRequest, DeviceError)>> {
        if let Err(error) = validate_request(&self.info, &req) {
            return Err(Box::new((req, error)));
        }
        let slot = match self.free.pop() {
            Some(slot) if self.in_flight < self.info.queue_depth_max as usize => slot,
            other => {
                if let Some(slot) = other {
                    self.free.push(slot);
                }
                let error = DeviceError::new(
                    &self.info.name,
                    req.kind,
                    req.offset,
                    req.len_bytes(),
                    format!("queue full: {} operations in flight", self.in_flight),
                );
                return Err(Box::new((req, error)));
            }
        };
        let ring = self.route(req.kind);
        let IoRequest { kind, offset, buf, tag } = req;
        let op = Op {
            tag,
            kind,
            offset,
            buf,
            done_bytes: 0,
            chunk_bytes: 0,
            ring,
            retries: 0,
            chunk_fixed: false,
            fixed_refused: false,
        };
        if let Some(entry) = self.ops.get_mut(slot) {
            *entry = Some(op);
        }
        if let Err(error) = self.queue_chunk(slot) {
            let op = self.ops.get_mut(slot).and_then(Option::take);
            self.free.push(slot);
            let req = match op {
                Some(op) => IoRequest { kind: op.kind, offset: op.offset, buf: op.buf, tag: op.tag },
                // Unreachable: the slot was filled above.
                None => IoRequest { kind, offset, buf: None, tag },
            };
            return Err(Box::new((req, error)));
        }
        self.in_flight += 1;
        self.count_queued(ring);
        Ok(())
    }

    fn route(&self, kind: IoKind) -> Ring {
        let unpolled = self.poll_refused || (kind == IoKind::Flush && self.flush_unpolled);
        if self.fallback.is_some() && unpolled {
            Ring::Fallback
        } else {
            Ring::Primary
        }
    }

    fn ring_mut(&mut self, ring: Ring) -> &mut IoUring<K::Sqe, K::Cqe> {
        match (ring, self.fallback.as_mut()) {
            (Ring::Fallback, Some(fallback)) => fallback,
            _ => &mut self.primary,
        }
    }

    fn count_queued(&mut self, ring: Ring) {
        match ring {
            Ring::Primary => self.in_flight_primary += 1,
            Ring::Fallback => self.in_flight_fallback += 1,
        }
    }

    fn count_reaped(&mut self, ring: Ring) {
        match ring {
            Ring::Primary => self.in_flight_primary = self.in_flight_primary.saturating_sub(1),
            Ring::Fallback => self.in_flight_fallback = self.in_flight_fallback.saturating_sub(1),
        }
    }

    /// Puts the SQE for the next chunk of the operation in `slot` on its ring's submission queue.
    fn queue_chunk(&mut self, slot: usize) -> Result<(), DeviceError> {
        let name = &self.info.name;
        let Some(op) = self.ops.get_mut(slot).and_then(Option::as_mut) else {
            return Err(DeviceError::new(name, "submit", 0, 0, "internal: empty slot"));
        };
        let len_bytes = op.len_bytes();
        let chunk_bytes = (len_bytes - op.done_bytes).min(self.chunk_bytes_max);
        let (addr, buf_index) = match op.buf.as_mut() {
            Some(buf) => {
                // SAFETY: done_bytes < buf.len() (an operation is resubmitted only while bytes
                // remain), so the pointer stays inside the buffer's allocation.
                let addr = unsafe { buf.as_mut_ptr().add(op.done_bytes) };
                let index = match op.ring {
                    Ring::Primary if !op.fixed_refused => {
                        fixed_index(&self.fixed, buf, addr as usize, self.fixed_span_bytes_max)
                    }
                    _ => None,
                };
                (addr, index)
            }
            None => (std::ptr::null_mut(), None),
        };
        let chunk = Chunk {
            kind: op.kind,
            offset: op.offset + op.done_bytes as u64,
            addr,
            len: u32::try_from(chunk_bytes)
                .map_err(|_| DeviceError::new(name, op.kind, op.offset, len_bytes, "internal: chunk too large"))?,
            buf_index,
        };
        op.chunk_bytes = chunk_bytes;
        op.chunk_fixed = buf_index.is_some();
        let ring = op.ring;
        let mut sqe = self.codec.sqe(&chunk);
        sqe.set_user_data(slot as u64);
        if buf_index.is_some() {
            self.stats.fixed_sqes += 1;
        } else {
            self.stats.plain_sqes += 1;
        }
        for _ in 0..2 {
            // SAFETY: the SQE points at memory owned by `self.ops[slot]` (a heap allocation or a
            // registered pool slot, which does not move when the `AlignedBuf` handle moves). The
            // op stays in its slot until its CQE is reaped, and dropping the engine waits for
            // every CQE (or leaks the buffers), so the memory outlives the kernel's use of it.
            let pushed = unsafe { self.ring_mut(ring).submission().push(&sqe) }.is_ok();
            if pushed {
                return Ok(());
            }
            // The submission queue is full: hand it to the kernel to make room.
            self.enter(ring, 0)?;
        }
        Err(DeviceError::new(&self.info.name, chunk.kind, chunk.offset, chunk_bytes, "submission queue stays full"))
    }

    pub(super) fn submit_and_wait(
        &mut self,
        wait_min: usize,
        out: &mut Vec<IoCompletion>,
    ) -> Result<usize, DeviceError> {
        let start = out.len();
        let want = wait_min.min(self.in_flight);
        let mut polled_once = false;
        let mut stalls = 0u32;
        loop {
            let before = out.len();
            self.reap(out);
            if out.len() > before {
                stalls = 0;
            }
            let need = want.saturating_sub(out.len() - start);
            let queued_primary = !self.primary.submission().is_empty();
            let queued_fallback = self.fallback.as_mut().is_some_and(|ring| !ring.submission().is_empty());
            let progressed = if need == 0 {
                // Hand over what is queued (new pushes, resubmissions); poll a polled ring once.
                let poll = self.primary_polled && self.in_flight_primary > 0 && !polled_once;
                if !queued_primary && !queued_fallback && !poll {
                    break;
                }
                let mut progressed = true;
                if queued_primary || poll {
                    polled_once = true;
                    progressed &= self.enter(Ring::Primary, 0)?;
                }
                if queued_fallback {
                    progressed &= self.enter(Ring::Fallback, 0)?;
                }
                progressed
            } else if self.in_flight_primary == 0 {
                let wait = need.min(self.in_flight_fallback);
                self.enter(Ring::Fallback, wait)?
            } else {
                // Never block on one ring while the other holds unsubmitted entries; while both
                // rings have work, wait for one completion at a time on the main ring.
                if queued_fallback {
                    self.enter(Ring::Fallback, 0)?;
                }
                let wait = if self.in_flight_fallback > 0 { 1 } else { need };
                self.enter(Ring::Primary, wait.min(self.in_flight_primary))?
            };
            if !progressed {
                stalls += 1;
                if stalls > STALLS_MAX {
                    return Err(DeviceError::new(
                        &self.info.name,
                        "submit",
                        0,
                        0,
                        format!("io_uring_enter made no progress {STALLS_MAX} times in a row"),
                    ));
                }
                std::thread::yield_now();
            }
        }
        Ok(out.len() - start)
    }

    /// Submits what `ring` has queued and waits for `want` completions. `Ok(false)` when the
    /// kernel asked to be called again (`EINTR`, `EBUSY`, `EAGAIN`); the caller reaps and retries.
    fn enter(&mut self, ring: Ring, want: usize) -> Result<bool, DeviceError> {
        match self.ring_mut(ring).submit_and_wait(want) {
            Ok(_) => Ok(true),
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR | libc::EBUSY | libc::EAGAIN) => Ok(false),
                _ => Err(DeviceError::new(&self.info.name, "submit", 0, 0, format!("io_uring_enter failed: {e}"))),
            },
        }
    }

    /// Moves every available CQE of both rings into completions or resubmissions.
    fn reap(&mut self, out: &mut Vec<IoCompletion>) {
        for ring in [Ring::Primary, Ring::Fallback] {
            if ring == Ring::Fallback && self.fallback.is_none() {
                continue;
            }
            let mut cqes = std::mem::take(&mut self.cqes);
            cqes.clear();
            for cqe in self.ring_mut(ring).completion() {
                let cqe: cqueue::Entry = cqe.into();
                cqes.push((cqe.user_data(), cqe.result()));
            }
            for &(user_data, res) in &cqes {
                self.complete_chunk(ring, user_data, res, out);
            }
            self.cqes = cqes;
        }
    }

    fn complete_chunk(&mut self, ring: Ring, user_data: u64, res: i32, out: &mut Vec<IoCompletion>) {
        let slot = usize::try_from(user_data).unwrap_or(usize::MAX);
        let can_fall_back = ring == Ring::Primary && self.primary_polled && self.fallback.is_some();
        let Some(op) = self.ops.get_mut(slot).and_then(Option::as_mut) else {
            tracing::error!(device = %self.info.name, user_data, res, "completion for no operation");
            return;
        };
        let outcome = self.codec.outcome(op.chunk_bytes, res);
        let mut refused_poll = false;
        let mut refused_fixed = false;
        let next = match outcome {
            Outcome::Moved(_) if op.kind == IoKind::Flush => Next::Finish(Ok(())),
            Outcome::Moved(0) => Next::Finish(Err(format!(
                "short {}: the device moved 0 bytes at offset {} with {} of {} bytes left \
                 (end of file?)",
                op.kind,
                op.offset + op.done_bytes as u64,
                op.len_bytes() - op.done_bytes,
                op.len_bytes()
            ))),
            Outcome::Moved(moved) if moved > op.chunk_bytes => {
                Next::Finish(Err(format!("the device reported {moved} bytes for a {}-byte chunk", op.chunk_bytes)))
            }
            Outcome::Moved(moved) => {
                op.done_bytes += moved;
                op.retries = 0;
                if op.done_bytes == op.len_bytes() {
                    Next::Finish(Ok(()))
                } else {
                    Next::Resubmit
                }
            }
            Outcome::Errno(libc::EOPNOTSUPP) if can_fall_back => {
                op.ring = Ring::Fallback;
                refused_poll = true;
                Next::Resubmit
            }
            Outcome::Errno(libc::EINVAL) if op.chunk_fixed && !op.fixed_refused => {
                // Some kernels refuse a fixed buffer the device's limits cannot take as is
                // (Linux 6.1 NVMe passthrough counts every page to the registered buffer's end
                // against max_segments); the same memory by address works.
                op.fixed_refused = true;
                refused_fixed = true;
                Next::Resubmit
            }
            Outcome::Errno(libc::EAGAIN | libc::EINTR) if op.retries < RETRIES_MAX => {
                op.retries += 1;
                Next::Resubmit
            }
            Outcome::Errno(errno) => {
                let error = io::Error::from_raw_os_error(errno);
                Next::Finish(Err(if op.done_bytes > 0 {
                    format!("{error} after {} of {} bytes", op.done_bytes, op.len_bytes())
                } else {
                    error.to_string()
                }))
            }
            Outcome::Failed(reason) => Next::Finish(Err(reason)),
        };
        self.count_reaped(ring);
        if refused_poll {
            self.refuse_polling();
        }
        if refused_fixed {
            self.stats.fixed_refusals += 1;
            if self.stats.fixed_refusals == 1 {
                tracing::warn!(
                    device = %self.info.name,
                    "the kernel refused a fixed buffer (EINVAL); resubmitting by address"
                );
            }
        }
        match next {
            Next::Finish(result) => self.finish(slot, result, out),
            Next::Resubmit => {
                self.stats.resubmits += 1;
                match self.queue_chunk(slot) {
                    Ok(()) => {
                        let ring = self.ops.get(slot).and_then(Option::as_ref).map(|op| op.ring);
                        self.count_queued(ring.unwrap_or(Ring::Primary));
                    }
                    Err(error) => self.finish(slot, Err(error.reason), out),
                }
            }
        }
    }

    fn refuse_polling(&mut self) {
        self.stats.poll_refusals += 1;
        if !self.poll_refused {
            self.poll_refused = true;
            self.info.polled = false;
            tracing::warn!(
                device = %self.info.name,
                "the medium refused polled I/O (EOPNOTSUPP); continuing interrupt-driven"
            );
        }
    }

    fn finish(&mut self, slot: usize, result: Result<(), String>, out: &mut Vec<IoCompletion>) {
        let Some(op) = self.ops.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.free.push(slot);
        self.in_flight -= 1;
        let result =
            result.map_err(|reason| DeviceError::new(&self.info.name, op.kind, op.offset, op.len_bytes(), reason));
        out.push(IoCompletion { tag: op.tag, kind: op.kind, offset: op.offset, buf: op.buf, result });
    }
}

impl<K: Codec> Drop for UringEngine<K> {
    /// Waits for every in-flight operation: the kernel may write into their buffers until their
    /// completions arrive. If the ring breaks, the buffers are leaked rather than freed.
    fn drop(&mut self) {
        let mut sink = Vec::new();
        while self.in_flight > 0 {
            let want = self.in_flight;
            match self.submit_and_wait(want, &mut sink) {
                Ok(_) => sink.clear(),
                Err(error) => {
                    tracing::error!(
                        device = %self.info.name,
                        %error,
                        in_flight = self.in_flight,
                        "could not drain the ring; leaking in-flight buffers"
                    );
                    for op in self.ops.iter_mut().filter_map(Option::take) {
                        std::mem::forget(op.buf);
                    }
                    break;
                }
            }
        }
    }
}

/// The fixed-buffer index for `buf` when its memory lies inside the buffer registered at that
/// index (a buffer from another pool carries an index that means nothing to this ring) and that
/// registered buffer ends at most `span_max` bytes past `chunk_addr`.
fn fixed_index(fixed: &[(usize, usize)], buf: &AlignedBuf, chunk_addr: usize, span_max: usize) -> Option<u16> {
    let index = buf.registered_index()?;
    let &(base, len) = fixed.get(usize::from(index))?;
    let start = buf.as_ptr() as usize;
    let inside = start >= base && start + buf.len() <= base + len;
    (inside && base + len - chunk_addr <= span_max).then_some(index)
}

fn build_ring<K: Codec>(entries: u32, iopoll: bool) -> io::Result<IoUring<K::Sqe, K::Cqe>> {
    let mut builder = IoUring::<K::Sqe, K::Cqe>::builder();
    if iopoll {
        builder.setup_iopoll();
    }
    builder.build(entries)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::buf::PoolClassSpec;
    use crate::device::conformance::{pattern, run_all, run_to_completion};

    /// A scratch file on a filesystem that supports `O_DIRECT`, removed on drop.
    pub(crate) struct ScratchFile {
        pub(crate) path: PathBuf,
    }

    impl ScratchFile {
        pub(crate) fn new(name: &str, size_bytes: u64) -> ScratchFile {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let unique = NEXT.fetch_add(1, Ordering::Relaxed);
            let file_name = format!("bucketfs-{}-{unique}-{name}", std::process::id());
            let path = direct_io_dir().join(file_name);
            let file = File::create(&path).expect("create scratch file");
            file.set_len(size_bytes).expect("size scratch file");
            ScratchFile { path }
        }
    }

    impl Drop for ScratchFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// The temp dir, unless it is a tmpfs (no `O_DIRECT` before Linux 6.6): then /var/tmp.
    fn direct_io_dir() -> PathBuf {
        const TMPFS_MAGIC: i128 = 0x0102_1994;
        let tmp = std::env::temp_dir();
        match rustix::fs::statfs(&tmp) {
            Ok(fs) if i128::from(fs.f_type) == TMPFS_MAGIC => PathBuf::from("/var/tmp"),
            _ => tmp,
        }
    }

    fn pool() -> BufPool {
        BufPool::new(&[
            PoolClassSpec { slot_bytes: 4096, slots: 128 },
            PoolClassSpec { slot_bytes: 64 << 10, slots: 8 },
            PoolClassSpec { slot_bytes: 1 << 20, slots: 4 },
        ])
    }

    fn sector_with(offset: u64, generation: u64) -> AlignedBuf {
        let mut buf = AlignedBuf::zeroed(SECTOR_BYTES);
        pattern(offset, generation, buf.as_mut_slice());
        buf
    }

    #[test]
    fn file_device_conforms_with_heap_buffers() {
        let scratch = ScratchFile::new("heap", 8 << 20);
        let mut dev = UringFileDevice::open(&scratch.path, 32, false, None).expect("open");
        let info = dev.info().clone();
        assert_eq!(info.kind, DeviceKind::BlockOrFile);
        assert_eq!(info.size_bytes, 8 << 20);
        assert_eq!(info.queue_depth_max, 32);
        assert!(!info.polled);
        assert!(info.lba_bytes >= 512 && info.lba_bytes as usize <= SECTOR_BYTES, "{info:?}");
        run_all(&mut dev, None);
        let stats = dev.stats();
        assert_eq!(stats.fixed_sqes, 0, "{stats:?}");
        assert!(stats.plain_sqes > 0);
    }

    #[test]
    fn file_device_conforms_with_registered_pool() {
        let scratch = ScratchFile::new("pool", 8 << 20);
        let pool = pool();
        let mut dev = UringFileDevice::open(&scratch.path, 32, false, Some(&pool)).expect("open");
        run_all(&mut dev, Some(&pool));
        let stats = dev.stats();
        assert!(stats.fixed_sqes >= 64, "pooled buffers go out as fixed buffers: {stats:?}");
        drop(dev);
        assert_eq!(pool.free_slots(), vec![128, 8, 4], "every slot came back");
    }

    #[test]
    fn iopoll_request_is_honest_about_polling() {
        let scratch = ScratchFile::new("iopoll", 8 << 20);
        let pool = pool();
        let mut dev = UringFileDevice::open(&scratch.path, 32, true, Some(&pool)).expect("open");
        let meta = std::fs::metadata(&scratch.path).expect("stat");
        let sysfs = sysfs_io_poll(meta.dev());
        eprintln!("iopoll requested: sysfs io_poll = {sysfs:?}, polled = {}", dev.info().polled);
        if sysfs == Some(false) {
            assert!(!dev.info().polled, "no poll queues, so not polled");
        }
        run_all(&mut dev, Some(&pool));
        // Whatever was decided at open, the handle still says the truth after real I/O: a
        // refusal at run time would have turned `polled` off.
        if dev.stats().poll_refusals > 0 {
            assert!(!dev.info().polled);
        }
    }

    #[test]
    fn polled_ring_refused_at_run_time_moves_to_interrupts() {
        // Skip sysfs and the probe: a medium without poll queues refuses the first polled I/O
        // with EOPNOTSUPP, and the handle must carry on, interrupt-driven, and say so.
        let scratch = ScratchFile::new("refused", 8 << 20);
        let pool = pool();
        let tuning = Tuning { poll: PollPolicy::Unprobed, ..Tuning::default() };
        let mut dev = UringFileDevice::open_with(&scratch.path, 16, true, Some(&pool), tuning).expect("open");
        assert!(dev.info().polled, "an unprobed polled ring starts out polled");
        let meta = std::fs::metadata(&scratch.path).expect("stat");
        run_all(&mut dev, Some(&pool));
        let stats = dev.stats();
        eprintln!("unprobed polled ring: {stats:?}, polled = {}", dev.info().polled);
        if sysfs_io_poll(meta.dev()) == Some(false) {
            assert!(stats.poll_refusals >= 1, "{stats:?}");
            assert!(!dev.info().polled);
        }
    }

    #[test]
    fn iopoll_probe_reopens_without_polling_when_refused() {
        // Sector 0 must be allocated for the probe to reach the medium (a hole reads as zeros
        // without I/O).
        let scratch = ScratchFile::new("probe", 1 << 20);
        std::fs::write(&scratch.path, vec![7u8; 1 << 20]).expect("fill");
        let meta = std::fs::metadata(&scratch.path).expect("stat");
        let name = scratch.path.display().to_string();
        let file =
            OpenOptions::new().read(true).write(true).custom_flags(libc::O_DIRECT).open(&scratch.path).expect("open");
        let info = DeviceInfo {
            name,
            kind: DeviceKind::BlockOrFile,
            size_bytes: 1 << 20,
            lba_bytes: 512,
            queue_depth_max: 8,
            polled: false,
        };
        let setup = |iopoll: bool| EngineSetup {
            info: info.clone(),
            fd: file.as_raw_fd(),
            iopoll,
            pool: None,
            chunk_bytes_max: FILE_CHUNK_BYTES_MAX,
            flush_unpolled: true,
            fixed_span_bytes_max: usize::MAX,
        };
        // Ignore sysfs: probe for real.
        let engine = UringEngine::open_probing(&setup, true, FileCodec).expect("open");
        eprintln!("probed: polled = {}, fallback ring = {}", engine.info.polled, engine.fallback.is_some());
        if sysfs_io_poll(meta.dev()) == Some(false) {
            assert!(!engine.info.polled);
            assert!(!engine.primary_polled, "rebuilt without IOPOLL");
            assert!(engine.fallback.is_none());
        }
    }

    #[test]
    fn thirty_two_concurrent_reads_complete_correctly() {
        let scratch = ScratchFile::new("qd32", 4 << 20);
        let pool = pool();
        let mut dev = UringFileDevice::open(&scratch.path, 32, false, Some(&pool)).expect("open");
        let offsets: Vec<u64> = (0..32u64).map(|i| (i * 97 % 1024) * SECTOR_BYTES as u64).collect();
        let writes = offsets.iter().map(|&o| IoRequest::write(o, sector_with(o, 3), o)).collect();
        for c in run_to_completion(&mut dev, writes) {
            c.result.expect("write");
        }
        for (i, &offset) in offsets.iter().enumerate() {
            let buf = if i % 2 == 0 { pool.get(SECTOR_BYTES) } else { AlignedBuf::zeroed(SECTOR_BYTES) };
            dev.push(IoRequest::read(offset, buf, offset)).expect("push within depth");
        }
        assert_eq!(dev.in_flight(), 32);
        let refused = dev.push(IoRequest::read(0, AlignedBuf::zeroed(SECTOR_BYTES), 1)).expect_err("33rd");
        assert!(refused.1.reason.contains("queue full"), "{}", refused.1);
        let mut out = Vec::new();
        let n = dev.submit_and_wait(32, &mut out).expect("wait");
        assert_eq!(n, 32);
        assert_eq!(dev.in_flight(), 0);
        let mut want = vec![0u8; SECTOR_BYTES];
        for c in out {
            c.result.expect("read");
            assert_eq!(c.tag, c.offset);
            pattern(c.offset, 3, &mut want);
            assert!(c.buf.expect("buf").as_slice() == want.as_slice(), "sector at {}", c.offset);
        }
    }

    #[test]
    fn large_operations_go_out_in_chunks() {
        let scratch = ScratchFile::new("chunks", 4 << 20);
        let tuning = Tuning { chunk_bytes_max: 8192, ..Tuning::default() };
        let mut dev = UringFileDevice::open_with(&scratch.path, 4, false, None, tuning).expect("open");
        let mut buf = AlignedBuf::zeroed(1 << 20);
        for (s, sector) in buf.as_mut_slice().chunks_mut(SECTOR_BYTES).enumerate() {
            pattern((s * SECTOR_BYTES) as u64, 5, sector);
        }
        let expected = buf.as_slice().to_vec();
        let done = run_to_completion(&mut dev, vec![IoRequest::write(1 << 20, buf, 1), IoRequest::flush(2)]);
        assert_eq!(done.len(), 2);
        done.into_iter().for_each(|c| c.result.expect("write and flush"));
        let done = run_to_completion(&mut dev, vec![IoRequest::read(1 << 20, AlignedBuf::zeroed(1 << 20), 3)]);
        let read = done.into_iter().next().expect("one completion");
        assert_eq!((read.tag, read.offset), (3, 1 << 20));
        let data = read.result.map(|()| read.buf).expect("read").expect("buf");
        assert!(data.as_slice() == expected.as_slice());
        assert!(dev.stats().resubmits >= 2 * 127, "{:?}", dev.stats());
    }

    #[test]
    fn reads_past_a_shrunken_file_fail_instead_of_coming_back_short() {
        let scratch = ScratchFile::new("short", 1 << 20);
        let mut dev = UringFileDevice::open(&scratch.path, 4, false, None).expect("open");
        // Shrink the file under the open handle: its recorded size is now a lie.
        let file = OpenOptions::new().write(true).open(&scratch.path).expect("open");
        file.set_len(512 << 10).expect("truncate");
        let done = run_to_completion(
            &mut dev,
            vec![
                IoRequest::read((512 << 10) - 4096, AlignedBuf::zeroed(8192), 1),
                IoRequest::read(768 << 10, AlignedBuf::zeroed(4096), 2),
                IoRequest::read(0, AlignedBuf::zeroed(4096), 3),
            ],
        );
        for c in done {
            match c.tag {
                3 => c.result.expect("inside the file"),
                _ => {
                    let error = c.result.expect_err("past the end must fail");
                    let text = error.to_string();
                    assert!(text.contains("short read"), "{text}");
                    assert!(text.contains(&scratch.path.display().to_string()), "{text}");
                    assert!(text.contains(&c.offset.to_string()), "{text}");
                }
            }
        }
    }

    #[test]
    fn a_buffer_from_another_pool_goes_out_plain() {
        let scratch = ScratchFile::new("otherpool", 1 << 20);
        let ours = pool();
        let theirs = pool();
        let mut dev = UringFileDevice::open(&scratch.path, 4, false, Some(&ours)).expect("open");
        let mut buf = theirs.get(SECTOR_BYTES);
        assert_eq!(buf.registered_index(), Some(0));
        pattern(0, 9, buf.as_mut_slice());
        let done = run_to_completion(&mut dev, vec![IoRequest::write(0, buf, 1)]);
        done.into_iter().for_each(|c| c.result.expect("write"));
        assert_eq!(dev.stats(), UringStats { plain_sqes: 1, ..UringStats::default() });
        let done = run_to_completion(&mut dev, vec![IoRequest::read(0, ours.get(SECTOR_BYTES), 2)]);
        let c = done.into_iter().next().expect("one");
        let mut want = vec![0u8; SECTOR_BYTES];
        pattern(0, 9, &mut want);
        assert!(c.buf.expect("buf").as_slice() == want.as_slice());
        assert_eq!(dev.stats().fixed_sqes, 1);
    }

    #[test]
    fn dropping_with_operations_in_flight_waits_for_them() {
        let scratch = ScratchFile::new("drop", 4 << 20);
        let pool = pool();
        let mut dev = UringFileDevice::open(&scratch.path, 32, false, Some(&pool)).expect("open");
        for i in 0..32u64 {
            let req = if i % 2 == 0 {
                IoRequest::read(i * SECTOR_BYTES as u64, pool.get(SECTOR_BYTES), i)
            } else {
                IoRequest::write(i * SECTOR_BYTES as u64, pool.get(SECTOR_BYTES), i)
            };
            dev.push(req).expect("push");
        }
        let mut out = Vec::new();
        dev.submit_and_wait(0, &mut out).expect("submit");
        drop(out);
        drop(dev);
        assert_eq!(pool.free_slots(), vec![128, 8, 4], "buffers freed only after completion");
    }

    #[test]
    fn opening_what_is_not_a_file_or_block_device_fails_clearly() {
        let error = UringFileDevice::open(Path::new("/dev/null"), 8, false, None).err().expect("/dev/null is refused");
        let text = error.to_string();
        assert!(text.contains("/dev/null") && text.contains("character device"), "{text}");
        assert_eq!(error.op, "open");

        let missing = direct_io_dir().join("bucketfs-no-such-file");
        let error = UringFileDevice::open(&missing, 8, false, None).err().expect("missing");
        let text = error.to_string();
        assert!(text.contains("bucketfs-no-such-file") && text.contains("No such file"), "{text}");

        let error = UringFileDevice::open(&direct_io_dir(), 8, false, None).err().expect("dir");
        assert!(error.to_string().contains("directory"), "{error}");

        let scratch = ScratchFile::new("depth", 1 << 20);
        let error = UringFileDevice::open(&scratch.path, 0, false, None).err().expect("depth 0");
        assert!(error.to_string().contains("queue depth 0"), "{error}");
    }

    /// A block device to test on, named by `BUCKETFS_TEST_BLOCKDEV` (its data is destroyed), and
    /// whether `BUCKETFS_TEST_BLOCKDEV_IOPOLL=1` asks for polling. Run in the QEMU guest on
    /// /dev/nvme0n1 (with poll queues: real polled I/O) or on the host on a loop device.
    #[test]
    fn block_device_conforms() {
        let Some(path) = std::env::var_os("BUCKETFS_TEST_BLOCKDEV").map(PathBuf::from) else {
            eprintln!("block_device_conforms: skipped (set BUCKETFS_TEST_BLOCKDEV=/dev/X; destroys its data)");
            return;
        };
        let iopoll = std::env::var("BUCKETFS_TEST_BLOCKDEV_IOPOLL").is_ok_and(|v| v == "1");
        let pool = pool();
        let mut dev = UringFileDevice::open(&path, 32, iopoll, Some(&pool)).expect("open");
        let rdev = std::fs::metadata(&path).expect("stat").rdev();
        let sysfs = sysfs_io_poll(rdev);
        let info = dev.info().clone();
        eprintln!("{}: {info:?}, iopoll asked {iopoll}, sysfs io_poll {sysfs:?}", path.display());
        assert_eq!(info.kind, DeviceKind::BlockOrFile);
        if !iopoll || sysfs == Some(false) {
            assert!(!info.polled);
        }
        run_all(&mut dev, Some(&pool));
        let stats = dev.stats();
        eprintln!("{stats:?}, polled after the suite: {}", dev.info().polled);
        assert!(stats.fixed_sqes >= 64, "{stats:?}");
        if iopoll && sysfs == Some(true) {
            assert!(dev.info().polled, "a medium with poll queues is polled");
            assert_eq!(stats.poll_refusals, 0);
        }
    }

    #[test]
    fn device_spec_opens_the_file_backend() {
        let scratch = ScratchFile::new("spec", 8 << 20);
        let spec = super::super::DeviceSpec::from_path(&scratch.path);
        let mut dev = spec.open(8, None).expect("open through the spec");
        assert_eq!(dev.info().kind, DeviceKind::BlockOrFile);
        run_all(dev.as_mut(), None);
    }
}
