//! An NVMe namespace through io_uring passthrough: NVMe read, write and flush commands sent to the
//! namespace's generic char device (`/dev/ngXnY`) as `IORING_OP_URING_CMD`, bypassing the block
//! layer's request merging and the filesystem.
//!
//! The ring uses 128-byte SQEs (the 80-byte command area holds a `struct nvme_uring_cmd`) and
//! 32-byte CQEs. At open the handle asks the char device for its namespace id (`NVME_IOCTL_ID`)
//! and the namespace for its size and LBA format (Identify Namespace, an admin command through
//! `NVME_IOCTL_ADMIN_CMD`, which needs `CAP_SYS_ADMIN`; sysfs is the fallback). Namespaces
//! formatted with per-block metadata are refused.
//!
//! Buffers: a buffer from the registered pool goes out with `IORING_URING_CMD_FIXED` and its
//! fixed-buffer index (the kernel maps the registered pages, no per-I/O pinning); any other
//! buffer by address. Linux 6.1 fails a fixed-buffer command with `EINVAL` when the registered
//! buffer has more than the queue's `max_segments` pages from the command's start to its end
//! (127 pages, 508 KiB, in the QEMU guest), whatever the command's length; such commands go out
//! by address instead, and any other `EINVAL` on a fixed buffer is retried once by address. Either way one command moves at most [`UringNvmeDevice::max_transfer_bytes`]
//! (the queue's `max_hw_sectors_kb` and `max_segments` from sysfs, 128 KiB if sysfs does not
//! say); a larger operation goes out as consecutive commands, one at a time, and completes once.
//!
//! Results: a CQE result below zero is `-errno` from the kernel; above zero it is the NVMe status
//! field (status code type and code), reported as "NVMe status 0x...".
//!
//! IOPOLL: when asked, on Linux 6.5 or later (earlier kernels poll passthrough commands through
//! a bio that may already be freed), and the namespace's block queue reports poll queues
//! (`queue/io_poll`, the nvme driver loaded with `poll_queues=N`), the ring is built with
//! `IORING_SETUP_IOPOLL`;
//! passthrough flushes are fine on a polled ring. Otherwise the ring is interrupt-driven and
//! [`DeviceInfo::polled`] says so. The ring machinery is shared with the file backend; see
//! [`super::uring_file`].

use std::fs::{File, OpenOptions};
use std::io;
use std::mem::offset_of;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use io_uring::{cqueue, opcode, squeue, types};

use super::uring_file::{check_queue_depth, Chunk, Codec, EngineSetup, Outcome, UringEngine, UringStats};
use super::{Device, DeviceError, DeviceInfo, DeviceKind, IoCompletion, IoKind, IoRequest};
use crate::buf::{AlignedBuf, BufPool, SECTOR_BYTES};

/// NVMe I/O command opcodes (NVM command set).
const NVME_CMD_FLUSH: u8 = 0x00;
const NVME_CMD_WRITE: u8 = 0x01;
const NVME_CMD_READ: u8 = 0x02;
/// Admin opcode Identify; CNS 0 is Identify Namespace.
const NVME_ADMIN_IDENTIFY: u8 = 0x06;
const IDENTIFY_BYTES: usize = 4096;
/// One command moves at most 65536 logical blocks (a 16-bit zero-based count in CDW12).
const NLB_MAX: u64 = 1 << 16;
/// Bytes per command when sysfs does not give the queue limits.
const TRANSFER_BYTES_DEFAULT: usize = 128 << 10;

/// `struct nvme_passthru_cmd` / `struct nvme_uring_cmd` (linux/nvme_ioctl.h): the same 72-byte
/// layout; the last field is `result` for the ioctl and reserved for io_uring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct NvmeCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

const _: () = assert!(std::mem::size_of::<NvmeCmd>() == 72);

/// `NVME_IOCTL_ID`: `_IO('N', 0x40)`, returns the namespace id of the device.
const NVME_IOCTL_ID: libc::Ioctl = libc::_IO(b'N' as u32, 0x40);
/// `NVME_IOCTL_ADMIN_CMD`: `_IOWR('N', 0x41, struct nvme_admin_cmd)`.
const NVME_IOCTL_ADMIN_CMD: libc::Ioctl = libc::_IOWR::<NvmeCmd>(b'N' as u32, 0x41);
/// `NVME_URING_CMD_IO`: `_IOWR('N', 0x80, struct nvme_uring_cmd)`, the io_uring `cmd_op`.
const NVME_URING_CMD_IO: u32 = libc::_IOWR::<NvmeCmd>(b'N' as u32, 0x80) as u32;

impl NvmeCmd {
    /// The command as the 80-byte area of a 128-byte SQE (native endianness, as the kernel
    /// reads the struct).
    fn to_sqe_cmd(self) -> [u8; 80] {
        let mut out = [0u8; 80];
        let mut put = |offset: usize, bytes: &[u8]| {
            if let Some(dst) = out.get_mut(offset..offset + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        };
        put(offset_of!(NvmeCmd, opcode), &[self.opcode]);
        put(offset_of!(NvmeCmd, flags), &[self.flags]);
        put(offset_of!(NvmeCmd, nsid), &self.nsid.to_ne_bytes());
        put(offset_of!(NvmeCmd, cdw2), &self.cdw2.to_ne_bytes());
        put(offset_of!(NvmeCmd, cdw3), &self.cdw3.to_ne_bytes());
        put(offset_of!(NvmeCmd, metadata), &self.metadata.to_ne_bytes());
        put(offset_of!(NvmeCmd, addr), &self.addr.to_ne_bytes());
        put(offset_of!(NvmeCmd, metadata_len), &self.metadata_len.to_ne_bytes());
        put(offset_of!(NvmeCmd, data_len), &self.data_len.to_ne_bytes());
        put(offset_of!(NvmeCmd, cdw10), &self.cdw10.to_ne_bytes());
        put(offset_of!(NvmeCmd, cdw11), &self.cdw11.to_ne_bytes());
        put(offset_of!(NvmeCmd, cdw12), &self.cdw12.to_ne_bytes());
        put(offset_of!(NvmeCmd, cdw13), &self.cdw13.to_ne_bytes());
        put(offset_of!(NvmeCmd, cdw14), &self.cdw14.to_ne_bytes());
        put(offset_of!(NvmeCmd, cdw15), &self.cdw15.to_ne_bytes());
        put(offset_of!(NvmeCmd, timeout_ms), &self.timeout_ms.to_ne_bytes());
        out
    }
}

/// An NVMe namespace through io_uring passthrough. See the module docs.
pub struct UringNvmeDevice {
    engine: UringEngine<NvmeCodec>,
    /// The open char device; declared after the engine so it closes after the rings.
    _file: File,
    max_transfer_bytes: usize,
    nsid: u32,
}

impl UringNvmeDevice {
    /// Opens the NVMe generic char device `path` (`/dev/ngXnY`) with room for `queue_depth`
    /// operations in flight. `iopoll` asks for polled completions; [`DeviceInfo::polled`] says
    /// whether they are in effect. `pool`'s slots are registered as fixed buffers when given.
    pub fn open(
        path: &Path,
        queue_depth: u32,
        iopoll: bool,
        pool: Option<&BufPool>,
    ) -> Result<UringNvmeDevice, DeviceError> {
        UringNvmeDevice::open_with(path, queue_depth, iopoll, pool, None)
    }

    /// [`Self::open`], with the fixed-buffer span limit overridden (tests).
    fn open_with(
        path: &Path,
        queue_depth: u32,
        iopoll: bool,
        pool: Option<&BufPool>,
        fixed_span_bytes_max: Option<usize>,
    ) -> Result<UringNvmeDevice, DeviceError> {
        let name = path.display().to_string();
        let fail = |reason: String| DeviceError::new(&name, "open", 0, 0, reason);
        check_queue_depth(&name, queue_depth)?;
        let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
        if !meta.file_type().is_char_device() {
            return Err(fail(
                "not a character device: NVMe passthrough needs a namespace's generic char \
                 device (/dev/ngXnY); a block device or file needs the file backend"
                    .to_string(),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| fail(format!("O_RDWR open failed: {e}")))?;
        super::lock_shared(&file, &path.display().to_string())?;
        let nsid = namespace_id(&file).map_err(fail)?;
        let block = block_device_name(path);
        let namespace = match identify_namespace(&file, nsid) {
            Ok(namespace) => namespace,
            Err(identify_error) => {
                let sysfs = block.as_deref().ok_or_else(|| "no block device name".to_string());
                sysfs.and_then(sysfs_namespace).map_err(|sysfs_error| {
                    fail(format!("{identify_error}; sysfs fallback failed too: {sysfs_error}"))
                })?
            }
        };
        let limits = queue_limits(block.as_deref(), namespace.lba_shift).map_err(fail)?;
        let max_transfer_bytes = limits.transfer_bytes;
        let io_poll = block.as_deref().and_then(|b| sysfs_read_u64(b, "queue/io_poll"));
        // Poll only on a kernel whose passthrough polling is sound, and only when sysfs confirms
        // poll queues: on Linux 6.1 a passthrough command on an IOPOLL ring that completes
        // through an interrupt queue corrupts the ring's poll state and panics the kernel on the
        // next poll.
        let kernel = passthrough_iopoll_kernel_check(kernel_release().as_deref());
        if let (true, Err(reason)) = (iopoll, &kernel) {
            tracing::warn!(device = %name, "IOPOLL requested but {reason}; using interrupts");
        }
        let try_poll = iopoll
            && kernel.is_ok()
            && match io_poll {
                Some(1) => true,
                Some(_) => {
                    tracing::info!(
                        device = %name,
                        "IOPOLL requested but the namespace's queue has no poll queues (load \
                         nvme with poll_queues=N); using interrupts"
                    );
                    false
                }
                None => {
                    tracing::info!(
                        device = %name,
                        "IOPOLL requested but sysfs does not say whether the namespace has poll \
                         queues; using interrupts"
                    );
                    false
                }
            };
        let info = DeviceInfo {
            name: name.clone(),
            kind: DeviceKind::NvmePassthrough,
            size_bytes: namespace.size_bytes,
            lba_bytes: 1 << namespace.lba_shift,
            queue_depth_max: queue_depth,
            polled: false,
        };
        let setup = |iopoll: bool| EngineSetup {
            info: info.clone(),
            fd: file.as_raw_fd(),
            iopoll,
            pool,
            chunk_bytes_max: max_transfer_bytes,
            // A no-data passthrough command on an IOPOLL ring panics Linux 6.1 (seen in the
            // QEMU guest: `nvme_ns_head_chr_uring_cmd_iopoll` polls a clobbered bio cookie), so
            // flushes go to the interrupt-driven ring, as for files.
            flush_unpolled: true,
            fixed_span_bytes_max: fixed_span_bytes_max.unwrap_or(limits.fixed_span_bytes),
        };
        let codec = NvmeCodec { nsid, lba_shift: namespace.lba_shift };
        let engine = UringEngine::open_probing(&setup, try_poll, codec)?;
        Ok(UringNvmeDevice { engine, _file: file, max_transfer_bytes, nsid })
    }

    /// Most bytes one NVMe command moves; larger operations are split into consecutive commands.
    pub fn max_transfer_bytes(&self) -> usize {
        self.max_transfer_bytes
    }

    /// The namespace id.
    pub fn nsid(&self) -> u32 {
        self.nsid
    }

    /// Counters of how operations went out (fixed or plain buffers, resubmissions, fallbacks).
    pub fn stats(&self) -> UringStats {
        self.engine.stats()
    }
}

impl Device for UringNvmeDevice {
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

/// Builds NVMe read/write/flush commands for `NVME_URING_CMD_IO`.
#[derive(Clone, Copy)]
struct NvmeCodec {
    nsid: u32,
    lba_shift: u32,
}

impl NvmeCodec {
    fn command(&self, chunk: &Chunk) -> NvmeCmd {
        let mut cmd = NvmeCmd { nsid: self.nsid, ..NvmeCmd::default() };
        match chunk.kind {
            IoKind::Flush => cmd.opcode = NVME_CMD_FLUSH,
            IoKind::Read | IoKind::Write => {
                cmd.opcode = if chunk.kind == IoKind::Read { NVME_CMD_READ } else { NVME_CMD_WRITE };
                let slba = chunk.offset >> self.lba_shift;
                let blocks = u64::from(chunk.len) >> self.lba_shift;
                cmd.addr = chunk.addr as u64;
                cmd.data_len = chunk.len;
                cmd.cdw10 = slba as u32;
                cmd.cdw11 = (slba >> 32) as u32;
                // Zero-based count; the engine's chunk limit keeps it within 16 bits.
                cmd.cdw12 = blocks.saturating_sub(1) as u32 & 0xffff;
            }
        }
        cmd
    }
}

impl Codec for NvmeCodec {
    type Sqe = squeue::Entry128;
    type Cqe = cqueue::Entry32;

    fn sqe(&self, chunk: &Chunk) -> squeue::Entry128 {
        opcode::UringCmd80::new(types::Fixed(0), NVME_URING_CMD_IO)
            .cmd(self.command(chunk).to_sqe_cmd())
            .buf_index(chunk.buf_index)
            .build()
    }

    fn outcome(&self, chunk_bytes: usize, res: i32) -> Outcome {
        match res {
            0 => Outcome::Moved(chunk_bytes),
            r if r < 0 => Outcome::Errno(r.saturating_neg()),
            status => Outcome::Failed(describe_status(status)),
        }
    }
}

/// Text for an NVMe completion status field (status code type in bits 8..10, code in 0..7).
fn describe_status(status: i32) -> String {
    let sct = (status >> 8) & 0x7;
    let sc = status & 0xff;
    let what = match (sct, sc) {
        (0, 0x01) => "invalid command opcode",
        (0, 0x02) => "invalid field in command",
        (0, 0x04) => "data transfer error",
        (0, 0x06) => "internal error",
        (0, 0x07) => "command abort requested",
        (0, 0x0b) => "invalid namespace or format",
        (0, 0x80) => "LBA out of range",
        (0, 0x81) => "capacity exceeded",
        (0, 0x82) => "namespace not ready",
        (1, 0x80) => "conflicting attributes",
        (2, 0x80) => "write fault",
        (2, 0x81) => "unrecovered read error",
        (2, 0x82) => "end-to-end guard check error",
        (2, 0x86) => "access denied",
        (2, 0x87) => "deallocated or unwritten logical block",
        (3, _) => "path-related status",
        _ => "",
    };
    let dnr = if status & 0x4000 != 0 { ", do not retry" } else { "" };
    if what.is_empty() {
        format!("NVMe status {status:#x} (type {sct:#x}, code {sc:#x}{dnr})")
    } else {
        format!("NVMe status {status:#x} ({what}; type {sct:#x}, code {sc:#x}{dnr})")
    }
}

fn namespace_id(file: &File) -> Result<u32, String> {
    // SAFETY: NVME_IOCTL_ID takes no argument and returns the namespace id; the descriptor is
    // open for the duration of the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), NVME_IOCTL_ID) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(format!("ioctl NVME_IOCTL_ID failed, not an NVMe namespace? ({e})"));
    }
    u32::try_from(rc).ok().filter(|&id| id != 0).ok_or_else(|| format!("bad namespace id {rc}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Namespace {
    size_bytes: u64,
    lba_shift: u32,
}

fn identify_namespace(file: &File, nsid: u32) -> Result<Namespace, String> {
    let mut data = AlignedBuf::zeroed(IDENTIFY_BYTES);
    let mut cmd = NvmeCmd {
        opcode: NVME_ADMIN_IDENTIFY,
        nsid,
        addr: data.as_mut_ptr() as u64,
        data_len: IDENTIFY_BYTES as u32,
        cdw10: 0, // CNS 0: Identify Namespace
        ..NvmeCmd::default()
    };
    // SAFETY: NVME_IOCTL_ADMIN_CMD reads the 72-byte command and writes its `result` field, both
    // through a pointer to a live local of the right layout; the controller writes at most
    // `data_len` = 4096 bytes to `addr`, which is `data`, a live 4096-byte buffer. The ioctl is
    // synchronous, so both outlive the device's use of them.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), NVME_IOCTL_ADMIN_CMD, &mut cmd as *mut NvmeCmd) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(format!("Identify Namespace (NVME_IOCTL_ADMIN_CMD) failed: {e}"));
    }
    if rc > 0 {
        return Err(format!("Identify Namespace failed: {}", describe_status(rc)));
    }
    parse_identify_namespace(data.as_slice())
}

/// Reads size and LBA format from an Identify Namespace data structure.
fn parse_identify_namespace(data: &[u8]) -> Result<Namespace, String> {
    let u64_at = |offset: usize| {
        data.get(offset..offset + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or("identify data too short")
    };
    let u32_at = |offset: usize| {
        data.get(offset..offset + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or("identify data too short")
    };
    let nsze = u64_at(0)?;
    let nlbaf = *data.get(25).ok_or("identify data too short")?;
    let flbas = *data.get(26).ok_or("identify data too short")?;
    // FLBAS bits 3:0 index the format; bits 6:5 are its high bits when there are > 16 formats.
    let mut format = usize::from(flbas & 0x0f);
    if nlbaf >= 16 {
        format |= usize::from((flbas >> 5) & 0x03) << 4;
    }
    let lbaf = u32_at(128 + 4 * format)?;
    let metadata_bytes = lbaf & 0xffff;
    let lba_shift = (lbaf >> 16) & 0xff;
    if metadata_bytes != 0 {
        return Err(format!(
            "namespace formatted with {metadata_bytes} metadata bytes per block (LBA format \
             {format}); reformat without metadata"
        ));
    }
    namespace(nsze, lba_shift)
}

fn namespace(blocks: u64, lba_shift: u32) -> Result<Namespace, String> {
    if !(9..=12).contains(&lba_shift) {
        return Err(format!("LBA size 2^{lba_shift} unsupported (need 512 to 4096 bytes)"));
    }
    let size = blocks.checked_mul(1 << lba_shift).ok_or_else(|| format!("namespace of {blocks} blocks overflows"))?;
    Ok(Namespace { size_bytes: size - size % SECTOR_BYTES as u64, lba_shift })
}

/// The namespace's block device name for `/dev/ngXnY`: `nvmeXnY`.
fn block_device_name(path: &Path) -> Option<String> {
    let file_name = path.file_name()?.to_str()?;
    file_name.strip_prefix("ng").map(|rest| format!("nvme{rest}"))
}

/// The running kernel's release (`uname -r`), from procfs.
fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string())
}

/// The first kernel whose NVMe passthrough IOPOLL polls the request itself ("nvme: improved uring
/// polling", Linux 6.5). Before it the poll went through a bio cookie that the command's
/// completion may already have freed: the QEMU guest on Debian's 6.1.192 panicked in `bio_poll`
/// under `nvme_ns_head_chr_uring_cmd_iopoll` while the store ran on a polled ring.
const PASSTHROUGH_IOPOLL_KERNEL_MIN: (u32, u32) = (6, 5);

/// Whether passthrough IOPOLL is safe on kernel `release`; the error says why not.
fn passthrough_iopoll_kernel_check(release: Option<&str>) -> Result<(), String> {
    let (major_min, minor_min) = PASSTHROUGH_IOPOLL_KERNEL_MIN;
    let Some(release) = release else {
        return Err("the kernel release is unknown (no /proc/sys/kernel/osrelease)".to_string());
    };
    let mut numbers = release.split(|c: char| !c.is_ascii_digit()).map(str::parse::<u32>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(major)), Some(Ok(minor))) if (major, minor) >= (major_min, minor_min) => Ok(()),
        (Some(Ok(_)), Some(Ok(_))) => Err(format!(
            "kernel {release} polls NVMe passthrough through a bio the completion may have freed \
             (fixed in Linux {major_min}.{minor_min})"
        )),
        _ => Err(format!("kernel release {release:?} is not MAJOR.MINOR...")),
    }
}

fn sysfs_read_u64(block: &str, attr: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/sys/block/{block}/{attr}")).ok()?.trim().parse().ok()
}

fn sysfs_namespace(block: &str) -> Result<Namespace, String> {
    let sectors = sysfs_read_u64(block, "size").ok_or_else(|| format!("no /sys/block/{block}/size"))?;
    let lba = sysfs_read_u64(block, "queue/logical_block_size")
        .ok_or_else(|| format!("no /sys/block/{block}/queue/logical_block_size"))?;
    if !lba.is_power_of_two() {
        return Err(format!("logical block size {lba}"));
    }
    let lba_shift = lba.trailing_zeros();
    // sysfs counts 512-byte sectors whatever the LBA size.
    namespace(sectors.saturating_mul(512) >> lba_shift, lba_shift)
}

/// What one passthrough command may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct QueueLimits {
    /// Most bytes one command moves: the queue's hardware sector limit and segment count (each
    /// 4 KiB page of a buffer may be its own segment), and the 16-bit block count of a command.
    transfer_bytes: usize,
    /// How far a registered buffer may extend past a command's start for the command to use it
    /// as a fixed buffer: Linux 6.1 counts every page from there to the end of the registered
    /// buffer against `max_segments` and fails the command with `EINVAL` beyond that.
    fixed_span_bytes: usize,
}

fn queue_limits(block: Option<&str>, lba_shift: u32) -> Result<QueueLimits, String> {
    let hw_bytes = block.and_then(|b| sysfs_read_u64(b, "queue/max_hw_sectors_kb"));
    let segments = block.and_then(|b| sysfs_read_u64(b, "queue/max_segments"));
    let default = TRANSFER_BYTES_DEFAULT as u64;
    let span = segments.map_or(default, |s| s.saturating_mul(SECTOR_BYTES as u64));
    let transfer = hw_bytes.map_or(default, |kb| kb.saturating_mul(1024)).min(span);
    let transfer = transfer.min(NLB_MAX << lba_shift);
    let transfer = transfer - transfer % SECTOR_BYTES as u64;
    if transfer == 0 {
        return Err("the queue cannot move one 4 KiB sector per command".to_string());
    }
    Ok(QueueLimits {
        transfer_bytes: usize::try_from(transfer).map_err(|_| format!("transfer limit {transfer}"))?,
        fixed_span_bytes: usize::try_from(span).unwrap_or(usize::MAX),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::buf::PoolClassSpec;
    use crate::device::conformance::{pattern, run_all, run_to_completion};

    #[test]
    #[allow(clippy::unnecessary_cast)] // `libc::Ioctl` is c_ulong on glibc, c_int on musl
    fn ioctl_numbers_match_the_kernel_headers() {
        // Values from linux/nvme_ioctl.h on the generic ioctl encoding (x86-64, arm64).
        assert_eq!(NVME_IOCTL_ID as u64, 0x4E40);
        assert_eq!(NVME_IOCTL_ADMIN_CMD as u64, 0xC048_4E41);
        assert_eq!(NVME_URING_CMD_IO, 0xC048_4E80);
    }

    #[test]
    fn commands_are_laid_out_as_struct_nvme_uring_cmd() {
        let codec = NvmeCodec { nsid: 3, lba_shift: 9 };
        let mut memory = AlignedBuf::zeroed(8192);
        let chunk = Chunk {
            kind: IoKind::Write,
            offset: (5u64 << 32) * 512 + 8192,
            addr: memory.as_mut_ptr(),
            len: 8192,
            buf_index: None,
        };
        let bytes = codec.command(&chunk).to_sqe_cmd();
        let u32_at = |o: usize| u32::from_ne_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_ne_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
        assert_eq!(bytes[0], NVME_CMD_WRITE);
        assert_eq!(u32_at(4), 3, "nsid");
        assert_eq!(u64_at(24), memory.as_ptr() as u64, "addr");
        assert_eq!(u32_at(36), 8192, "data_len");
        assert_eq!(u32_at(40), 16, "cdw10: starting LBA, low half");
        assert_eq!(u32_at(44), 5, "cdw11: starting LBA, high half");
        assert_eq!(u32_at(48), 15, "cdw12: zero-based block count");
        assert!(bytes[52..].iter().all(|b| *b == 0));

        let flush = Chunk { kind: IoKind::Flush, offset: 0, addr: std::ptr::null_mut(), len: 0, buf_index: None };
        let bytes = codec.command(&flush).to_sqe_cmd();
        assert_eq!(bytes[0], NVME_CMD_FLUSH);
        assert_eq!(u32_at_slice(&bytes, 4), 3);
        assert!(bytes[8..].iter().all(|b| *b == 0));
    }

    fn u32_at_slice(bytes: &[u8], o: usize) -> u32 {
        u32::from_ne_bytes(bytes[o..o + 4].try_into().expect("4 bytes"))
    }

    #[test]
    fn identify_namespace_data_is_parsed() {
        let mut data = vec![0u8; IDENTIFY_BYTES];
        data[0..8].copy_from_slice(&(1u64 << 21).to_le_bytes()); // nsze: 2 Mi blocks
        data[25] = 1; // two formats
        data[26] = 1; // in use: format 1
        data[128..132].copy_from_slice(&(9u32 << 16).to_le_bytes()); // format 0: 512 B
        data[132..136].copy_from_slice(&(12u32 << 16).to_le_bytes()); // format 1: 4 KiB
        let ns = parse_identify_namespace(&data).expect("parse");
        assert_eq!(ns, Namespace { size_bytes: 8 << 30, lba_shift: 12 });

        data[26] = 0;
        let ns = parse_identify_namespace(&data).expect("parse");
        assert_eq!(ns, Namespace { size_bytes: 1 << 30, lba_shift: 9 });

        data[128..132].copy_from_slice(&(9u32 << 16 | 8).to_le_bytes()); // 8 bytes of metadata
        let error = parse_identify_namespace(&data).expect_err("metadata is refused");
        assert!(error.contains("metadata"), "{error}");
    }

    #[test]
    fn nvme_status_is_described() {
        let text = describe_status(0x4281);
        assert!(text.contains("0x4281") && text.contains("unrecovered read error"), "{text}");
        assert!(text.contains("do not retry"), "{text}");
        assert!(describe_status(0x80).contains("LBA out of range"));
        assert!(describe_status(0x1ff).contains("NVMe status 0x1ff"));
    }

    #[test]
    fn opening_what_is_not_an_nvme_namespace_fails_clearly() {
        let error = UringNvmeDevice::open(Path::new("/dev/null"), 8, false, None)
            .err()
            .expect("/dev/null is no NVMe namespace");
        let text = error.to_string();
        assert!(text.contains("/dev/null") && text.contains("NVME_IOCTL_ID"), "{text}");
        assert_eq!(error.op, "open");

        let error =
            UringNvmeDevice::open(Path::new("/dev/ng-bucketfs-missing"), 8, false, None).err().expect("missing");
        let text = error.to_string();
        assert!(text.contains("/dev/ng-bucketfs-missing") && text.contains("No such file"), "{text}");

        let error =
            UringNvmeDevice::open(Path::new("/proc/self/status"), 8, false, None).err().expect("a regular file");
        assert!(error.to_string().contains("not a character device"), "{error}");
    }

    #[test]
    fn passthrough_iopoll_needs_linux_6_5() {
        use super::passthrough_iopoll_kernel_check as check;
        assert!(check(Some("6.12.95+deb12-amd64")).is_ok());
        assert!(check(Some("6.5.0")).is_ok());
        assert!(check(Some("7.0.1-arch1")).is_ok());
        assert!(check(Some("6.18.44-fc-v445")).is_ok());
        let old = check(Some("6.1.0-56-amd64")).unwrap_err();
        assert!(old.contains("6.1.0-56-amd64") && old.contains("6.5"), "{old}");
        assert!(check(Some("5.19.17")).is_err());
        assert!(check(Some("unknown")).is_err());
        assert!(check(None).is_err());
    }

    #[test]
    fn queue_limits_default_without_sysfs() {
        let limits = queue_limits(None, 9).expect("limits");
        assert_eq!(limits.transfer_bytes, TRANSFER_BYTES_DEFAULT);
        assert_eq!(limits.fixed_span_bytes, TRANSFER_BYTES_DEFAULT);
        assert_eq!(block_device_name(Path::new("/dev/ng0n1")).as_deref(), Some("nvme0n1"));
        assert_eq!(block_device_name(Path::new("/dev/sda")), None);
    }

    /// The NVMe generic char device named by `BUCKETFS_TEST_NVME` (its data is destroyed), and
    /// whether `BUCKETFS_TEST_NVME_IOPOLL=1` asks for polling.
    fn nvme_under_test(test: &str) -> Option<(PathBuf, bool)> {
        let Some(path) = std::env::var_os("BUCKETFS_TEST_NVME") else {
            eprintln!("{test}: skipped (set BUCKETFS_TEST_NVME=/dev/ngXnY to run; destroys its data)");
            return None;
        };
        let iopoll = std::env::var("BUCKETFS_TEST_NVME_IOPOLL").is_ok_and(|v| v == "1");
        Some((PathBuf::from(path), iopoll))
    }

    fn check_polling_is_honest(dev: &UringNvmeDevice, path: &Path, iopoll: bool) {
        let sysfs = block_device_name(path).and_then(|b| sysfs_read_u64(&b, "queue/io_poll"));
        eprintln!(
            "{}: nsid {}, {} bytes, LBA {} B, {} B per command, iopoll asked {iopoll}, sysfs \
             io_poll {sysfs:?}, polled {}",
            path.display(),
            dev.nsid(),
            dev.info().size_bytes,
            dev.info().lba_bytes,
            dev.max_transfer_bytes(),
            dev.info().polled
        );
        if !iopoll {
            assert!(!dev.info().polled);
        } else if passthrough_iopoll_kernel_check(kernel_release().as_deref()).is_err() {
            assert!(!dev.info().polled, "a kernel before 6.5 must not poll passthrough");
        } else if let Some(io_poll) = sysfs {
            assert_eq!(dev.info().polled, io_poll == 1, "polled must follow the poll queues");
        }
    }

    #[test]
    fn nvme_device_conforms_with_heap_buffers() {
        let Some((path, iopoll)) = nvme_under_test("nvme_device_conforms_with_heap_buffers") else {
            return;
        };
        let mut dev = UringNvmeDevice::open(&path, 32, iopoll, None).expect("open");
        assert_eq!(dev.info().kind, DeviceKind::NvmePassthrough);
        check_polling_is_honest(&dev, &path, iopoll);
        run_all(&mut dev, None);
        assert_eq!(dev.stats().fixed_sqes, 0);
    }

    #[test]
    fn nvme_device_conforms_with_registered_pool() {
        let Some((path, iopoll)) = nvme_under_test("nvme_device_conforms_with_registered_pool") else {
            return;
        };
        let pool = BufPool::new(&[
            PoolClassSpec { slot_bytes: 4096, slots: 128 },
            PoolClassSpec { slot_bytes: 64 << 10, slots: 8 },
            PoolClassSpec { slot_bytes: 1 << 20, slots: 4 },
        ]);
        let mut dev = UringNvmeDevice::open(&path, 32, iopoll, Some(&pool)).expect("open");
        check_polling_is_honest(&dev, &path, iopoll);
        run_all(&mut dev, Some(&pool));
        let stats = dev.stats();
        eprintln!("{stats:?}");
        assert!(stats.fixed_sqes >= 64, "pooled buffers go out fixed: {stats:?}");

        // 32 concurrent 4 KiB reads, and operations larger than one command, pooled and not.
        let offsets: Vec<u64> = (0..32u64).map(|i| (8 << 20) + (i * 97 % 1024) * 4096).collect();
        let writes = offsets
            .iter()
            .map(|&o| {
                let mut buf = pool.get(4096);
                pattern(o, 21, buf.as_mut_slice());
                IoRequest::write(o, buf, o)
            })
            .collect();
        run_to_completion(&mut dev, writes).into_iter().for_each(|c| c.result.expect("write"));
        for &o in &offsets {
            dev.push(IoRequest::read(o, pool.get(4096), o)).expect("push");
        }
        assert_eq!(dev.in_flight(), 32);
        let mut out = Vec::new();
        assert_eq!(dev.submit_and_wait(32, &mut out).expect("wait"), 32);
        let mut want = vec![0u8; 4096];
        for c in out {
            c.result.expect("read");
            pattern(c.offset, 21, &mut want);
            assert!(c.buf.expect("buf").as_slice() == want.as_slice(), "read at {}", c.offset);
        }

        let big = 4 * dev.max_transfer_bytes().max(1 << 20);
        let base = 16u64 << 20;
        assert!(dev.info().size_bytes >= base + big as u64, "device too small for the big test");
        let mut heap = AlignedBuf::zeroed(big);
        for (s, sector) in heap.as_mut_slice().chunks_mut(4096).enumerate() {
            pattern(base + (s * 4096) as u64, 22, sector);
        }
        let expected = heap.as_slice().to_vec();
        let done = run_to_completion(&mut dev, vec![IoRequest::write(base, heap, 1), IoRequest::flush(2)]);
        done.into_iter().for_each(|c| c.result.expect("big write, flush"));
        let done = run_to_completion(&mut dev, vec![IoRequest::read(base, AlignedBuf::zeroed(big), 3)]);
        let c = done.into_iter().next().expect("one");
        assert!(c.buf.expect("buf").as_slice() == expected.as_slice(), "big read");
        let done = run_to_completion(&mut dev, vec![IoRequest::read(base, pool.get(1 << 20), 4)]);
        let c = done.into_iter().next().expect("one");
        assert!(c.buf.expect("buf").as_slice() == &expected[..1 << 20], "pooled 1 MiB read");
    }

    #[test]
    fn nvme_fixed_buffer_the_kernel_refuses_goes_out_by_address() {
        let Some((path, iopoll)) = nvme_under_test("nvme_fixed_buffer_the_kernel_refuses_goes_out_by_address") else {
            return;
        };
        // 1 MiB registered slots used as fixed buffers from their start, whatever the span:
        // Linux 6.1 refuses those commands with EINVAL; the handle must resubmit by address.
        let pool = BufPool::new(&[PoolClassSpec { slot_bytes: 1 << 20, slots: 2 }]);
        let mut dev = UringNvmeDevice::open_with(&path, 8, iopoll, Some(&pool), Some(usize::MAX)).expect("open");
        let base = 32u64 << 20;
        let mut buf = pool.get(1 << 20);
        for (s, sector) in buf.as_mut_slice().chunks_mut(4096).enumerate() {
            pattern(base + (s * 4096) as u64, 23, sector);
        }
        let expected = buf.as_slice().to_vec();
        let done = run_to_completion(&mut dev, vec![IoRequest::write(base, buf, 1), IoRequest::flush(2)]);
        done.into_iter().for_each(|c| c.result.expect("write, flush"));
        let done = run_to_completion(&mut dev, vec![IoRequest::read(base, pool.get(1 << 20), 3)]);
        let c = done.into_iter().next().expect("one");
        assert!(c.buf.expect("buf").as_slice() == expected.as_slice(), "read back");
        eprintln!("unlimited fixed span: {:?}", dev.stats());
    }

    #[test]
    fn nvme_device_opens_through_the_spec() {
        let Some((path, iopoll)) = nvme_under_test("nvme_device_opens_through_the_spec") else {
            return;
        };
        let spec = super::super::DeviceSpec::from_path(&path);
        assert!(matches!(spec, super::super::DeviceSpec::Nvme { .. }), "{spec:?}");
        let spec = super::super::DeviceSpec::Nvme { path: path.clone(), iopoll };
        let mut dev = spec.open(8, None).expect("open");
        assert_eq!(dev.info().kind, DeviceKind::NvmePassthrough);
        run_all(dev.as_mut(), None);
    }
}
