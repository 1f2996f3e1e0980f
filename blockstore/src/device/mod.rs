//! Where the bytes live: one completion-based device trait and its backends.
//!
//! A [`Device`] is one shard's private queue onto the medium: operations are pushed with a tag,
//! submitted in batches, and come back as completions, each carrying its buffer back (the model
//! io_uring and NVMe queues have). A device handle is owned by one shard thread and is not shared;
//! each shard opens its own handle (its own ring) onto the same medium through a [`DeviceSpec`].
//!
//! Backends:
//! - [`uring_file::UringFileDevice`]: a block device or file opened `O_DIRECT`, driven through
//!   io_uring with registered files and buffers, IOPOLL when the device has poll queues.
//! - [`uring_nvme::UringNvmeDevice`]: an NVMe namespace's generic char device (`/dev/ngXnY`)
//!   through io_uring passthrough (`IORING_OP_URING_CMD`, NVMe read/write/flush commands).
//! - [`sim::SimDevice`]: memory with a crash model (unflushed writes lost or torn), read errors
//!   and latency, all driven by a seed: the in-memory twin for tests.
//! - [`fault::FaultDevice`]: wraps any device and fails chosen operations (the fault injector).
//!
//! Offsets and lengths are multiples of [`SECTOR_BYTES`]; buffers are [`AlignedBuf`]s.

pub mod fault;
pub mod sim;
pub mod uring_file;
pub mod uring_nvme;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::buf::{AlignedBuf, BufPool, SECTOR_BYTES};

/// What a device operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoKind {
    Read,
    Write,
    /// Makes every write that completed before it durable.
    Flush,
}

impl fmt::Display for IoKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoKind::Read => "read",
            IoKind::Write => "write",
            IoKind::Flush => "flush",
        })
    }
}

/// One operation handed to a device. Reads fill `buf` (its whole length); writes write it.
#[derive(Debug)]
pub struct IoRequest {
    pub kind: IoKind,
    pub offset: u64,
    pub buf: Option<AlignedBuf>,
    /// Caller's identifier, returned in the completion.
    pub tag: u64,
}

impl IoRequest {
    pub fn read(offset: u64, buf: AlignedBuf, tag: u64) -> IoRequest {
        IoRequest { kind: IoKind::Read, offset, buf: Some(buf), tag }
    }
    pub fn write(offset: u64, buf: AlignedBuf, tag: u64) -> IoRequest {
        IoRequest { kind: IoKind::Write, offset, buf: Some(buf), tag }
    }
    pub fn flush(tag: u64) -> IoRequest {
        IoRequest { kind: IoKind::Flush, offset: 0, buf: None, tag }
    }
    /// Bytes moved by this operation.
    pub fn len_bytes(&self) -> usize {
        self.buf.as_ref().map_or(0, AlignedBuf::len)
    }
}

/// A finished operation: the request's tag, kind and offset, its buffer back, and the outcome.
#[derive(Debug)]
pub struct IoCompletion {
    pub tag: u64,
    pub kind: IoKind,
    pub offset: u64,
    pub buf: Option<AlignedBuf>,
    pub result: Result<(), DeviceError>,
}

/// What kind of medium a device is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    NvmePassthrough,
    BlockOrFile,
    Simulated,
}

/// Facts about a device that the store needs.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Path or name, used in every error message.
    pub name: String,
    pub kind: DeviceKind,
    pub size_bytes: u64,
    /// Logical block size of the medium (512 or 4096); I/O is always in whole sectors.
    pub lba_bytes: u32,
    /// Most operations in flight at once on one handle.
    pub queue_depth_max: u32,
    /// Whether completions are polled (IOPOLL) rather than interrupt-driven.
    pub polled: bool,
}

/// A failed device operation, naming the device, the operation and the offset.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{device}: {op} at offset {offset} ({len_bytes} bytes) failed: {reason}")]
pub struct DeviceError {
    pub device: String,
    pub op: String,
    pub offset: u64,
    pub len_bytes: usize,
    pub reason: String,
}

impl DeviceError {
    pub fn new(
        device: &str,
        op: impl fmt::Display,
        offset: u64,
        len_bytes: usize,
        reason: impl fmt::Display,
    ) -> DeviceError {
        DeviceError { device: device.to_string(), op: op.to_string(), offset, len_bytes, reason: reason.to_string() }
    }
}

/// One shard's queue onto a medium. Owned by one thread.
pub trait Device {
    fn info(&self) -> &DeviceInfo;

    /// Queues an operation. Fails without side effects (handing the request back) when the queue
    /// is full, `queue_depth_max` operations being in flight, or the request is malformed
    /// (unaligned, out of range, missing buffer).
    fn push(&mut self, req: IoRequest) -> Result<(), Box<(IoRequest, DeviceError)>>;

    /// Submits everything queued and waits until at least `wait_min` completions (capped at the
    /// number in flight) have been appended to `out`. `wait_min == 0` only reaps what is ready.
    /// Returns how many completions were appended. An `Err` means the queue itself broke; the
    /// failure of a single operation is reported in its completion.
    fn submit_and_wait(&mut self, wait_min: usize, out: &mut Vec<IoCompletion>) -> Result<usize, DeviceError>;

    /// Operations pushed and not yet returned as completions.
    fn in_flight(&self) -> usize;
}

/// Checks what every backend requires of a request before it queues it.
pub fn validate_request(info: &DeviceInfo, req: &IoRequest) -> Result<(), DeviceError> {
    let fail = |reason: &str| Err(DeviceError::new(&info.name, req.kind, req.offset, req.len_bytes(), reason));
    match req.kind {
        IoKind::Flush => Ok(()),
        IoKind::Read | IoKind::Write => {
            let Some(buf) = &req.buf else {
                return fail("no buffer");
            };
            if !req.offset.is_multiple_of(SECTOR_BYTES as u64) || !buf.len().is_multiple_of(SECTOR_BYTES) {
                return fail("offset or length not a multiple of 4096");
            }
            if req.offset.checked_add(buf.len() as u64).is_none_or(|end| end > info.size_bytes) {
                return fail("beyond the end of the device");
            }
            Ok(())
        }
    }
}

/// Takes a shared `flock` on a device handle's descriptor. The ring keeps the descriptor open
/// until every operation on it has finished, even after its process died, so the lock says
/// "someone may still be doing I/O here" for exactly as long as that is true. Fails when another
/// process holds the device exclusively (formatting or waiting for it).
pub(crate) fn lock_shared(file: &std::fs::File, name: &str) -> Result<(), DeviceError> {
    use rustix::fs::{flock, FlockOperation};
    flock(file, FlockOperation::NonBlockingLockShared).map_err(|e| {
        DeviceError::new(
            name,
            "lock",
            0,
            0,
            format!("in use by another process ({e}); is another bucketfs running on it?"),
        )
    })
}

/// Waits until no process holds `path` (no open handle of another store, and no I/O of a killed
/// one still in flight), for at most `timeout`.
fn wait_until_unused_path(path: &Path, timeout: Duration) -> Result<(), DeviceError> {
    use rustix::fs::{flock, FlockOperation};
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| DeviceError::new(&name, "open", 0, 0, e))?;
    let started = Instant::now();
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            // dropping `file` releases the lock
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK && started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(DeviceError::new(
                    &name,
                    "lock",
                    0,
                    0,
                    format!(
                        "in use by another process: still locked after {:.1} s ({e})",
                        started.elapsed().as_secs_f64()
                    ),
                ))
            }
        }
    }
}

/// How to open a device; each shard opens its own handle with [`DeviceSpec::open`].
#[derive(Clone)]
pub enum DeviceSpec {
    /// An NVMe generic char device, `/dev/ngXnY`, through io_uring passthrough.
    Nvme { path: PathBuf, iopoll: bool },
    /// A block device or regular file, `O_DIRECT` through io_uring.
    File { path: PathBuf, iopoll: bool },
    /// Shared simulated media (tests).
    Sim(sim::SimMedia),
    /// Another device with faults injected as the plan says (tests).
    Faulty { inner: Box<DeviceSpec>, plan: fault::FaultPlan },
}

impl fmt::Debug for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Nvme { path, iopoll } => write!(f, "nvme:{} iopoll={iopoll}", path.display()),
            DeviceSpec::File { path, iopoll } => write!(f, "file:{} iopoll={iopoll}", path.display()),
            DeviceSpec::Sim(media) => write!(f, "sim:{}", media.name()),
            DeviceSpec::Faulty { inner, .. } => write!(f, "faulty:{inner:?}"),
        }
    }
}

impl DeviceSpec {
    /// Chooses the backend from the path: `/dev/ng*` is NVMe passthrough, anything else a block
    /// device or file.
    pub fn from_path(path: impl Into<PathBuf>) -> DeviceSpec {
        let path = path.into();
        let is_ng =
            path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ng") && path.starts_with("/dev"));
        if is_ng {
            DeviceSpec::Nvme { path, iopoll: false }
        } else {
            DeviceSpec::File { path, iopoll: false }
        }
    }

    /// Waits (at most `timeout`) until no other process uses the device: neither a running store
    /// nor the in-flight I/O of a killed one. Note that `/dev/ngXnY` and `/dev/nvmeXnY` are
    /// different files for the same namespace: the lock covers the path the store uses.
    pub fn wait_until_unused(&self, timeout: Duration) -> Result<(), DeviceError> {
        match self {
            DeviceSpec::Nvme { path, .. } | DeviceSpec::File { path, .. } => wait_until_unused_path(path, timeout),
            DeviceSpec::Sim(_) => Ok(()),
            DeviceSpec::Faulty { inner, .. } => inner.wait_until_unused(timeout),
        }
    }

    /// Opens one handle (one ring) with room for `queue_depth` operations in flight, registering
    /// `pool`'s buffers with it when given.
    pub fn open(&self, queue_depth: u32, pool: Option<&BufPool>) -> Result<Box<dyn Device>, DeviceError> {
        Ok(match self {
            DeviceSpec::Nvme { path, iopoll } => {
                Box::new(uring_nvme::UringNvmeDevice::open(path, queue_depth, *iopoll, pool)?)
            }
            DeviceSpec::File { path, iopoll } => {
                Box::new(uring_file::UringFileDevice::open(path, queue_depth, *iopoll, pool)?)
            }
            DeviceSpec::Sim(media) => Box::new(media.handle(queue_depth)),
            DeviceSpec::Faulty { inner, plan } => {
                Box::new(fault::FaultDevice::new(inner.open(queue_depth, pool)?, plan.clone()))
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod conformance;
