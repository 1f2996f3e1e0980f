//! The whole store: formatting a device, one thread per shard, and a handle that routes requests.
//!
//! Each shard runs on its own thread (pinned to a core when asked), owns its device handle (its
//! own io_uring ring), its buffer pool and its index; nothing of a shard is shared. Other threads
//! talk to a shard through a bounded channel ([`Store`] is `Send + Sync` and cheap to share); a
//! caller that wants thread-per-core access runs a closure on the shard's own thread with
//! [`Store::run_on_shard`]. A key always maps to the same shard (a fixed hash, stable across
//! restarts).

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::buf::{AlignedBuf, BufPool, SECTOR_BYTES};
use crate::device::{DeviceSpec, IoRequest};
use crate::error::{Result, StoreError};
use crate::format::{Checkpoint, Key, SegmentEntry, SegmentState, Superblock, EXTENT_BYTES_MAX};
use crate::shard::{DirtyExtent, Event, ExtentBuf, PutOptions, ReadBuf, Shard, ShardConfig, ShardStats};

/// How to lay out a device.
#[derive(Clone, Debug)]
pub struct FormatOptions {
    pub segment_bytes: u64,
    pub shard_count: u32,
}

impl Default for FormatOptions {
    fn default() -> FormatOptions {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        FormatOptions { segment_bytes: 64 << 20, shard_count: cores as u32 }
    }
}

fn device_error(e: crate::device::DeviceError) -> StoreError {
    StoreError::Device { key: None, source: e }
}

fn run_sync(dev: &mut dyn crate::device::Device, reqs: Vec<IoRequest>) -> Result<Vec<crate::device::IoCompletion>> {
    let mut done = Vec::new();
    for req in reqs {
        dev.push(req).map_err(|refused| device_error(refused.1))?;
        while dev.in_flight() >= dev.info().queue_depth_max as usize {
            dev.submit_and_wait(1, &mut done).map_err(device_error)?;
        }
    }
    while dev.in_flight() > 0 {
        dev.submit_and_wait(dev.in_flight(), &mut done).map_err(device_error)?;
    }
    for c in &done {
        if let Err(e) = &c.result {
            return Err(device_error(e.clone()));
        }
    }
    Ok(done)
}

/// How long `format` waits for another process to let go of the device.
const FORMAT_DEVICE_WAIT: Duration = Duration::from_secs(10);

/// Writes a fresh superblock and empty checkpoints: everything on the device is forgotten.
/// Refuses a device another process is using.
pub fn format(spec: &DeviceSpec, opts: &FormatOptions) -> Result<Superblock> {
    spec.wait_until_unused(FORMAT_DEVICE_WAIT).map_err(device_error)?;
    let mut dev = spec.open(8, None).map_err(device_error)?;
    let info = dev.info().clone();
    let uuid = new_uuid();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let sb = Superblock::plan(info.size_bytes, opts.segment_bytes, opts.shard_count, uuid, now).ok_or_else(|| {
        StoreError::Format {
            device: info.name.clone(),
            reason: format!(
                "{} bytes is too small for {} shards of at least 3 segments of {} bytes",
                info.size_bytes, opts.shard_count, opts.segment_bytes
            ),
        }
    })?;
    let mut reqs = Vec::new();
    let sb_bytes = sb.encode();
    reqs.push(IoRequest::write(0, AlignedBuf::from_slice(&sb_bytes), 0));
    reqs.push(IoRequest::write(SECTOR_BYTES as u64, AlignedBuf::from_slice(&sb_bytes), 1));
    for shard in 0..sb.shard_count {
        let segments =
            vec![SegmentEntry { state: SegmentState::Free, epoch: 0 }; sb.shard_segment_count(shard) as usize];
        for slot in 0..2u32 {
            // slot 0 holds checkpoint 0 (valid, empty); slot 1 is cleared so no older layout's
            // checkpoint survives a reformat.
            let bytes = if slot == 0 {
                Checkpoint { checkpoint_seq: 0, seq_reserved: 1, segments: segments.clone() }
                    .encode(sb.checkpoint_sectors)
                    .ok_or_else(|| StoreError::Format {
                        device: info.name.clone(),
                        reason: "checkpoint does not fit".into(),
                    })?
            } else {
                vec![0u8; sb.checkpoint_sectors as usize * SECTOR_BYTES]
            };
            let offset = sb.checkpoint_offset(shard, slot);
            for (i, chunk) in bytes.chunks(512 << 10).enumerate() {
                reqs.push(IoRequest::write(offset + (i * (512 << 10)) as u64, AlignedBuf::from_slice(chunk), 2));
            }
        }
    }
    run_sync(dev.as_mut(), reqs)?;
    run_sync(dev.as_mut(), vec![IoRequest::flush(3)])?;
    Ok(sb)
}

/// Reads and checks the superblock (either copy).
pub fn read_superblock(spec: &DeviceSpec) -> Result<Superblock> {
    let mut dev = spec.open(4, None).map_err(device_error)?;
    let name = dev.info().name.clone();
    let done = run_sync(
        dev.as_mut(),
        vec![
            IoRequest::read(0, AlignedBuf::zeroed(SECTOR_BYTES), 0),
            IoRequest::read(SECTOR_BYTES as u64, AlignedBuf::zeroed(SECTOR_BYTES), 1),
        ],
    )?;
    let mut first_error = "no superblock";
    let mut sorted: Vec<_> = done.into_iter().collect();
    sorted.sort_by_key(|c| c.tag);
    for c in sorted {
        let Some(buf) = c.buf else { continue };
        match Superblock::decode(buf.as_slice()) {
            Ok(sb) => return Ok(sb),
            Err(e) => first_error = e,
        }
    }
    Err(StoreError::Format { device: name, reason: first_error.to_string() })
}

fn new_uuid() -> [u8; 16] {
    use rand::RngCore;
    let mut uuid = [0u8; 16];
    rand::rng().fill_bytes(&mut uuid);
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}

/// Which shard owns `key`: a fixed mix of its fields, stable across restarts and builds.
pub fn shard_of(key: &Key, shard_count: u32) -> u32 {
    let mut x = key.object_id ^ key.block.rotate_left(21) ^ key.version.rotate_left(42);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % u64::from(shard_count.max(1))) as u32
}

/// How the store runs.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub shard: ShardConfig,
    /// Requests queued to one shard at most before senders wait.
    pub channel_depth: usize,
    /// Pin shard i's thread to core i (mod the core count).
    pub pin_cores: bool,
    /// How long `open` waits for another process to let go of the device (a store still running
    /// there, or the I/O of a killed one still in flight) before it refuses.
    pub device_wait: Duration,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            shard: ShardConfig::default(),
            channel_depth: 256,
            pin_cores: false,
            device_wait: Duration::from_secs(10),
        }
    }
}

type ShardTask = Box<dyn FnOnce(&mut Shard) + Send>;

/// Where a request's result goes: a waiting thread, or a callback run on the shard's thread
/// (for callers on an executor, who complete a future from it).
enum Reply<T> {
    Wait(SyncSender<Result<T>>),
    Call(Box<dyn FnOnce(Result<T>) + Send>),
}

impl<T> Reply<T> {
    fn send(self, result: Result<T>) {
        match self {
            Reply::Wait(tx) => {
                let _ = tx.send(result);
            }
            Reply::Call(f) => f(result),
        }
    }
}

enum Request {
    Get { key: Key, offset: u64, len: usize, reply: Reply<ReadBuf> },
    Put { key: Key, data: ExtentBuf, opts: PutOptions, reply: Reply<u64> },
    Delete { key: Key, reply: Reply<bool> },
    MarkClean { key: Key, put_seq: u64, reply: Reply<bool> },
    Flush { reply: Reply<()> },
    Run(ShardTask),
}

enum Pending {
    Get(Reply<ReadBuf>),
    Put(u64, Reply<u64>),
    Flush(Reply<()>),
}

struct ShardThread {
    tx: Option<SyncSender<Request>>,
    join: Option<JoinHandle<()>>,
}

/// An open store: one thread per shard.
pub struct Store {
    sb: Superblock,
    device: String,
    shards: Vec<ShardThread>,
}

impl Store {
    /// Opens a formatted device: each shard thread opens its own handle and recovers its index.
    pub fn open(spec: &DeviceSpec, config: StoreConfig) -> Result<Store> {
        spec.wait_until_unused(config.device_wait).map_err(device_error)?;
        let sb = read_superblock(spec)?;
        let device = format!("{spec:?}");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut shards = Vec::new();
        let mut started = Vec::new();
        for id in 0..sb.shard_count {
            let (tx, rx) = mpsc::sync_channel::<Request>(config.channel_depth.max(1));
            let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<()>>(1);
            let (spec, sb2, cfg) = (spec.clone(), sb.clone(), config.clone());
            let pin = config.pin_cores.then_some(id as usize % cores);
            let join = std::thread::Builder::new()
                .name(format!("blockstore-shard-{id}"))
                .spawn(move || shard_main(id, spec, sb2, cfg, pin, rx, ready_tx))
                .map_err(|e| StoreError::Format {
                    device: device.clone(),
                    reason: format!("cannot start shard thread: {e}"),
                })?;
            shards.push(ShardThread { tx: Some(tx), join: Some(join) });
            started.push(ready_rx);
        }
        let store = Store { sb, device, shards };
        for ready in started {
            ready.recv().map_err(|_| StoreError::Closed)??;
        }
        Ok(store)
    }

    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    pub fn shard_count(&self) -> u32 {
        self.sb.shard_count
    }

    fn send(&self, shard: u32, req: Request) -> Result<()> {
        let tx = self.shards.get(shard as usize).and_then(|s| s.tx.as_ref()).ok_or(StoreError::Closed)?;
        tx.send(req).map_err(|_| StoreError::Closed)
    }

    fn ask<T>(&self, shard: u32, make: impl FnOnce(Reply<T>) -> Request) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(shard, make(Reply::Wait(tx)))?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    pub fn get(&self, key: Key, offset: u64, len: usize) -> Result<ReadBuf> {
        self.ask(shard_of(&key, self.sb.shard_count), |reply| Request::Get { key, offset, len, reply })
    }

    /// Stores `data` for `key`; returns the put's sequence number (for `mark_clean`).
    pub fn put(&self, key: Key, data: &[u8], opts: PutOptions) -> Result<u64> {
        let extent = ExtentBuf::from_bytes(data, None)
            .ok_or(StoreError::BadLength { len: data.len(), max: EXTENT_BYTES_MAX })?;
        self.put_extent(key, extent, opts)
    }

    pub fn put_extent(&self, key: Key, data: ExtentBuf, opts: PutOptions) -> Result<u64> {
        self.ask(shard_of(&key, self.sb.shard_count), |reply| Request::Put { key, data, opts, reply })
    }

    pub fn delete(&self, key: Key) -> Result<bool> {
        self.ask(shard_of(&key, self.sb.shard_count), |reply| Request::Delete { key, reply })
    }

    pub fn mark_clean(&self, key: Key, put_seq: u64) -> Result<bool> {
        self.ask(shard_of(&key, self.sb.shard_count), |reply| Request::MarkClean { key, put_seq, reply })
    }

    /// Like [`Store::get`], but returns at once: `done` runs on the shard's thread with the
    /// result (keep it short: complete a future or send on a channel).
    pub fn get_then(
        &self,
        key: Key,
        offset: u64,
        len: usize,
        done: impl FnOnce(Result<ReadBuf>) + Send + 'static,
    ) -> Result<()> {
        let reply = Reply::Call(Box::new(done));
        self.send(shard_of(&key, self.sb.shard_count), Request::Get { key, offset, len, reply })
    }

    /// Like [`Store::put_extent`], but returns at once: `done` runs on the shard's thread once the
    /// record is written (not yet durable) with the put's sequence number.
    pub fn put_then(
        &self,
        key: Key,
        data: ExtentBuf,
        opts: PutOptions,
        done: impl FnOnce(Result<u64>) + Send + 'static,
    ) -> Result<()> {
        let reply = Reply::Call(Box::new(done));
        self.send(shard_of(&key, self.sb.shard_count), Request::Put { key, data, opts, reply })
    }

    /// Runs `task` on the thread of the shard that owns `key`, without waiting for it.
    pub fn run_for_key(&self, key: &Key, task: impl FnOnce(&mut Shard) + Send + 'static) -> Result<()> {
        self.send(shard_of(key, self.sb.shard_count), Request::Run(Box::new(task)))
    }

    /// Makes everything written so far, on every shard, durable.
    pub fn flush(&self) -> Result<()> {
        let mut waits = Vec::new();
        for shard in 0..self.sb.shard_count {
            let (tx, rx) = mpsc::sync_channel(1);
            self.send(shard, Request::Flush { reply: Reply::Wait(tx) })?;
            waits.push(rx);
        }
        let mut first_error = None;
        for rx in waits {
            if let Err(e) = rx.recv().map_err(|_| StoreError::Closed).and_then(|r| r) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Runs `task` on shard `shard`'s own thread with the shard itself (thread-per-core access).
    pub fn run_on_shard<R: Send + 'static>(
        &self,
        shard: u32,
        task: impl FnOnce(&mut Shard) -> R + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(
            shard,
            Request::Run(Box::new(move |s: &mut Shard| {
                let _ = tx.send(task(s));
            })),
        )?;
        rx.recv().map_err(|_| StoreError::Closed)
    }

    /// Runs `task` on every shard's thread at once and collects the results, shard order.
    pub fn run_on_all<R: Send + 'static>(
        &self,
        task: impl Fn(&mut Shard) -> R + Send + Sync + Clone + 'static,
    ) -> Result<Vec<R>> {
        let mut waits = Vec::new();
        for shard in 0..self.sb.shard_count {
            let (tx, rx) = mpsc::sync_channel(1);
            let task = task.clone();
            self.send(
                shard,
                Request::Run(Box::new(move |s: &mut Shard| {
                    let _ = tx.send(task(s));
                })),
            )?;
            waits.push(rx);
        }
        waits.into_iter().map(|rx| rx.recv().map_err(|_| StoreError::Closed)).collect()
    }

    pub fn dirty_extents(&self) -> Result<Vec<DirtyExtent>> {
        Ok(self.run_on_all(|s| s.dirty_extents())?.into_iter().flatten().collect())
    }

    pub fn stats(&self) -> Result<Vec<ShardStats>> {
        self.run_on_all(|s| s.stats())
    }

    /// Stops the shard threads after the work they have queued (no flush: call `flush` first for
    /// durability).
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        for s in &mut self.shards {
            s.tx.take();
        }
        for s in &mut self.shards {
            if let Some(join) = s.join.take() {
                let _ = join.join();
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("device", &self.device).field("shards", &self.sb.shard_count).finish()
    }
}

fn pin_to_core(core: usize) {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set, CPU_SET writes within it, and
    // sched_setaffinity(0, ...) only affects the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            tracing::warn!(core, "could not pin shard thread: {}", std::io::Error::last_os_error());
        }
    }
}

fn shard_main(
    id: u32,
    spec: DeviceSpec,
    sb: Superblock,
    config: StoreConfig,
    pin: Option<usize>,
    rx: Receiver<Request>,
    ready: SyncSender<Result<()>>,
) {
    if let Some(core) = pin {
        pin_to_core(core);
    }
    let pool = BufPool::new(&config.shard.pool);
    let opened = spec
        .open(config.shard.queue_depth, Some(&pool))
        .map_err(device_error)
        .and_then(|dev| Shard::open(id, sb, dev, pool, config.shard.clone()));
    let mut shard = match opened {
        Ok(shard) => {
            let _ = ready.send(Ok(()));
            shard
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut next_tag: u64 = 1;
    let mut events = Vec::new();
    let mut open = true;
    while open || !pending.is_empty() {
        // Take what requests are there; block for one only when nothing is in flight.
        let mut took = 0;
        loop {
            let busy = shard.in_flight() > 0 || !pending.is_empty();
            let req = if !busy && took == 0 && open {
                rx.recv().map_err(|_| TryRecvError::Disconnected)
            } else if open {
                rx.try_recv()
            } else {
                Err(TryRecvError::Empty)
            };
            let req = match req {
                Ok(req) => req,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            };
            took += 1;
            let tag = next_tag;
            next_tag += 1;
            match req {
                Request::Get { key, offset, len, reply } => match shard.get(key, offset, len, tag) {
                    Ok(()) => {
                        pending.insert(tag, Pending::Get(reply));
                    }
                    Err(e) => reply.send(Err(e)),
                },
                Request::Put { key, data, opts, reply } => match shard.put(key, data, opts, Some(tag)) {
                    Ok(put_seq) => {
                        pending.insert(tag, Pending::Put(put_seq, reply));
                    }
                    Err(e) => reply.send(Err(e)),
                },
                Request::Delete { key, reply } => reply.send(shard.delete(key)),
                Request::MarkClean { key, put_seq, reply } => reply.send(shard.mark_clean(key, put_seq)),
                Request::Flush { reply } => match shard.flush(tag) {
                    Ok(()) => {
                        pending.insert(tag, Pending::Flush(reply));
                    }
                    Err(e) => reply.send(Err(e)),
                },
                Request::Run(task) => task(&mut shard),
            }
            if took >= 64 {
                break;
            }
        }
        let wait = took == 0 && (shard.in_flight() > 0 || !pending.is_empty());
        if let Err(e) = shard.poll(wait, &mut events) {
            tracing::error!(shard = id, error = %e, "shard device queue failed");
        }
        for event in events.drain(..) {
            match event {
                Event::Read { tag, result } => {
                    if let Some(Pending::Get(reply)) = pending.remove(&tag) {
                        reply.send(result);
                    }
                }
                Event::Written { tag, result } => {
                    if let Some(Pending::Put(put_seq, reply)) = pending.remove(&tag) {
                        reply.send(result.map(|()| put_seq));
                    }
                }
                Event::Flushed { tag, result } => {
                    if let Some(Pending::Flush(reply)) = pending.remove(&tag) {
                        reply.send(result);
                    }
                }
            }
        }
        if !open && shard.in_flight() == 0 && !pending.is_empty() {
            // the device has nothing left that could answer these
            for (_, p) in pending.drain() {
                match p {
                    Pending::Get(reply) => reply.send(Err(StoreError::Closed)),
                    Pending::Put(_, reply) => reply.send(Err(StoreError::Closed)),
                    Pending::Flush(reply) => reply.send(Err(StoreError::Closed)),
                }
            }
        }
    }
    if let Err(e) = shard.drain() {
        tracing::warn!(shard = id, error = %e, "shard stopped with failed work");
    }
}
