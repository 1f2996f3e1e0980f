//! The simulated device: memory with a crash model, driven by a seed.
//!
//! [`SimMedia`] is the medium, shared by every handle opened on it (one per shard, as with a real
//! device). Completed writes are visible to reads at once but sit in a volatile cache until a
//! flush makes them durable. [`SimMedia::crash`] models power loss: each unflushed write is kept,
//! lost, or torn (each of its sectors kept or lost independently), chosen by the seed. Reads can
//! fail at a seeded rate, completions come back in a seeded order, and each batch can be delayed.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{validate_request, Device, DeviceError, DeviceInfo, DeviceKind, IoCompletion, IoKind, IoRequest};
use crate::buf::SECTOR_BYTES;

/// Knobs of the simulated medium.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub size_bytes: u64,
    pub seed: u64,
    /// Probability that a read fails with an injected media error.
    pub read_error_rate: f64,
    /// Sleep per submitted batch, to model device latency.
    pub latency_per_batch: Duration,
    /// Return completions in a seeded random order rather than submission order.
    pub reorder_completions: bool,
}

impl SimConfig {
    pub fn new(size_bytes: u64, seed: u64) -> SimConfig {
        SimConfig {
            size_bytes,
            seed,
            read_error_rate: 0.0,
            latency_per_batch: Duration::ZERO,
            reorder_completions: true,
        }
    }
}

struct PendingWrite {
    offset: u64,
    data: Vec<u8>,
}

struct SimState {
    durable: Vec<u8>,
    /// Completed, unflushed writes in completion order.
    volatile: Vec<PendingWrite>,
    rng: ChaCha8Rng,
    config: SimConfig,
    writes_total: u64,
    flushes_total: u64,
    crashes_total: u64,
    /// Take a crash image when `writes_total` reaches this.
    crash_at_write: Option<u64>,
    /// The image power loss at that moment would have left.
    crash_image: Option<Vec<u8>>,
}

/// Applies the crash model to `volatile` on top of `durable`: each write kept, lost, or torn
/// sector by sector, by the seed.
fn apply_crash(durable: &mut [u8], volatile: &[PendingWrite], rng: &mut ChaCha8Rng) -> CrashReport {
    let mut report = CrashReport::default();
    for write in volatile {
        let offset = usize::try_from(write.offset).expect("offset fits");
        match rng.random_range(0..3u32) {
            0 => {
                durable[offset..offset + write.data.len()].copy_from_slice(&write.data);
                report.writes_kept += 1;
            }
            1 => report.writes_lost += 1,
            _ => {
                for (i, sector) in write.data.chunks(SECTOR_BYTES).enumerate() {
                    if rng.random_bool(0.5) {
                        let at = offset + i * SECTOR_BYTES;
                        durable[at..at + sector.len()].copy_from_slice(sector);
                    }
                }
                report.writes_torn += 1;
            }
        }
    }
    report
}

/// A simulated medium shared by its handles.
#[derive(Clone)]
pub struct SimMedia {
    name: Arc<str>,
    state: Arc<Mutex<SimState>>,
}

/// What [`SimMedia::crash`] did to the unflushed writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    pub writes_kept: u64,
    pub writes_lost: u64,
    pub writes_torn: u64,
}

impl SimMedia {
    pub fn new(name: &str, config: SimConfig) -> SimMedia {
        let size = usize::try_from(config.size_bytes).expect("simulated device fits in memory");
        assert_eq!(size % SECTOR_BYTES, 0, "simulated size must be whole sectors");
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        SimMedia {
            name: name.into(),
            state: Arc::new(Mutex::new(SimState {
                durable: vec![0; size],
                volatile: Vec::new(),
                rng,
                config,
                writes_total: 0,
                flushes_total: 0,
                crashes_total: 0,
                crash_at_write: None,
                crash_image: None,
            })),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock leaves plain bytes behind; the state stays usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens a handle (what a shard owns).
    pub fn handle(&self, queue_depth: u32) -> SimDevice {
        let config = self.lock().config.clone();
        SimDevice {
            media: self.clone(),
            info: DeviceInfo {
                name: self.name.to_string(),
                kind: DeviceKind::Simulated,
                size_bytes: config.size_bytes,
                lba_bytes: 4096,
                queue_depth_max: queue_depth.max(1),
                polled: false,
            },
            queued: Vec::new(),
            ready: Vec::new(),
            in_flight: 0,
        }
    }

    /// Power loss: every unflushed write is kept, lost or torn, by the seed. Handles opened before
    /// the crash must not be used afterwards (their owner "died").
    pub fn crash(&self) -> CrashReport {
        let mut state = self.lock();
        let volatile = std::mem::take(&mut state.volatile);
        let state = &mut *state;
        let report = apply_crash(&mut state.durable, &volatile, &mut state.rng);
        state.crashes_total += 1;
        state.crash_at_write = None;
        state.crash_image = None;
        report
    }

    /// Power loss in the middle of whatever is running: when `writes` more writes have
    /// completed, the image a crash at that instant would leave is taken (the writes go on
    /// normally). [`SimMedia::restore_crash_image`] then puts it in place.
    pub fn arm_crash_after_writes(&self, writes: u64) {
        let mut state = self.lock();
        state.crash_at_write = Some(state.writes_total + writes.max(1));
        state.crash_image = None;
    }

    /// Cancels an armed crash that has not happened yet.
    pub fn disarm_crash(&self) {
        let mut state = self.lock();
        state.crash_at_write = None;
        state.crash_image = None;
    }

    /// Whether an armed crash image has been taken.
    pub fn crash_image_taken(&self) -> bool {
        self.lock().crash_image.is_some()
    }

    /// Replaces the medium with the armed crash image (handles opened before must not be used
    /// afterwards). Returns false if no image was taken.
    pub fn restore_crash_image(&self) -> bool {
        let mut state = self.lock();
        let Some(image) = state.crash_image.take() else { return false };
        state.durable = image;
        state.volatile.clear();
        state.crash_at_write = None;
        state.crashes_total += 1;
        true
    }

    /// Bytes as a read would see them now (durable plus volatile).
    pub fn read_now(&self, offset: u64, len: usize) -> Vec<u8> {
        let state = self.lock();
        read_view(&state, offset, len)
    }

    /// Overwrites bytes directly in the durable image, bypassing the cache (corruption tests).
    pub fn corrupt(&self, offset: u64, bytes: &[u8]) {
        let mut state = self.lock();
        let at = usize::try_from(offset).expect("offset fits");
        state.durable[at..at + bytes.len()].copy_from_slice(bytes);
        // a later volatile write to the same place would hide the corruption; drop them
        state.volatile.retain(|w| w.offset + w.data.len() as u64 <= offset || w.offset >= offset + bytes.len() as u64);
    }

    /// Completed, unflushed writes.
    pub fn unflushed_writes(&self) -> usize {
        self.lock().volatile.len()
    }

    /// (writes, flushes, crashes) so far.
    pub fn counters(&self) -> (u64, u64, u64) {
        let state = self.lock();
        (state.writes_total, state.flushes_total, state.crashes_total)
    }

    pub fn set_read_error_rate(&self, rate: f64) {
        self.lock().config.read_error_rate = rate;
    }
}

fn read_view(state: &SimState, offset: u64, len: usize) -> Vec<u8> {
    let start = usize::try_from(offset).expect("offset fits");
    let mut out = state.durable[start..start + len].to_vec();
    let end = offset + len as u64;
    for write in &state.volatile {
        let w_end = write.offset + write.data.len() as u64;
        if w_end <= offset || write.offset >= end {
            continue;
        }
        let from = write.offset.max(offset);
        let to = w_end.min(end);
        let src = usize::try_from(from - write.offset).expect("fits");
        let dst = usize::try_from(from - offset).expect("fits");
        let n = usize::try_from(to - from).expect("fits");
        out[dst..dst + n].copy_from_slice(&write.data[src..src + n]);
    }
    out
}

/// One shard's handle onto a [`SimMedia`].
pub struct SimDevice {
    media: SimMedia,
    info: DeviceInfo,
    queued: Vec<IoRequest>,
    ready: Vec<IoCompletion>,
    in_flight: usize,
}

impl SimDevice {
    fn execute(&mut self, state: &mut SimState, mut req: IoRequest) -> IoCompletion {
        let len = req.len_bytes();
        let result = match req.kind {
            IoKind::Read => {
                if state.config.read_error_rate > 0.0 && state.rng.random_bool(state.config.read_error_rate) {
                    Err(DeviceError::new(&self.info.name, req.kind, req.offset, len, "injected media error"))
                } else {
                    let data = read_view(state, req.offset, len);
                    if let Some(buf) = req.buf.as_mut() {
                        buf.as_mut_slice().copy_from_slice(&data);
                    }
                    Ok(())
                }
            }
            IoKind::Write => {
                let data = req.buf.as_ref().map(|b| b.as_slice().to_vec()).unwrap_or_default();
                state.volatile.push(PendingWrite { offset: req.offset, data });
                state.writes_total += 1;
                if state.crash_at_write == Some(state.writes_total) {
                    let mut image = state.durable.clone();
                    let volatile = std::mem::take(&mut state.volatile);
                    apply_crash(&mut image, &volatile, &mut state.rng);
                    state.volatile = volatile;
                    state.crash_image = Some(image);
                }
                Ok(())
            }
            IoKind::Flush => {
                let volatile = std::mem::take(&mut state.volatile);
                for write in volatile {
                    let at = usize::try_from(write.offset).expect("offset fits");
                    state.durable[at..at + write.data.len()].copy_from_slice(&write.data);
                }
                state.flushes_total += 1;
                Ok(())
            }
        };
        IoCompletion { tag: req.tag, kind: req.kind, offset: req.offset, buf: req.buf, result }
    }
}

impl Device for SimDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn push(&mut self, req: IoRequest) -> Result<(), Box<(IoRequest, DeviceError)>> {
        if let Err(e) = validate_request(&self.info, &req) {
            return Err(Box::new((req, e)));
        }
        if self.in_flight >= self.info.queue_depth_max as usize {
            let e = DeviceError::new(&self.info.name, req.kind, req.offset, req.len_bytes(), "queue full");
            return Err(Box::new((req, e)));
        }
        self.in_flight += 1;
        self.queued.push(req);
        Ok(())
    }

    fn submit_and_wait(&mut self, wait_min: usize, out: &mut Vec<IoCompletion>) -> Result<usize, DeviceError> {
        let media = self.media.clone();
        let mut state = media.lock();
        let latency = state.config.latency_per_batch;
        let queued = std::mem::take(&mut self.queued);
        let mut done: Vec<IoCompletion> = queued.into_iter().map(|req| self.execute(&mut state, req)).collect();
        if state.config.reorder_completions && done.len() > 1 {
            // Fisher-Yates with the medium's seed: devices complete out of order.
            for i in (1..done.len()).rev() {
                let j = state.rng.random_range(0..=i);
                done.swap(i, j);
            }
        }
        drop(state);
        if !done.is_empty() && !latency.is_zero() {
            std::thread::sleep(latency);
        }
        self.ready.extend(done);
        // Every operation completes within the batch, so wait_min is always met.
        let n = self.ready.len();
        debug_assert!(n >= wait_min.min(self.in_flight));
        out.append(&mut self.ready);
        self.in_flight -= n;
        Ok(n)
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }
}
