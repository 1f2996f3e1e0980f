//! The fault injector: wraps any [`Device`] and fails the operations a shared [`FaultPlan`] names.
//!
//! A failed operation never reaches the inner device; its completion carries an injected
//! [`DeviceError`]. The plan is shared (and can be changed while a store runs), so a test can let a
//! store start cleanly and then make every write, every flush, or reads of a range fail.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{validate_request, Device, DeviceError, DeviceInfo, IoCompletion, IoKind, IoRequest};

#[derive(Default, Debug)]
struct FaultRules {
    /// Writes still allowed before every later write fails (None: never fail).
    writes_left: Option<u64>,
    /// Flushes still allowed before every later flush fails.
    flushes_left: Option<u64>,
    /// Reads overlapping these [start, end) byte ranges fail.
    bad_read_ranges: Vec<(u64, u64)>,
    injected_total: u64,
}

/// What to fail; shared between a test and the devices it wraps.
#[derive(Clone, Default, Debug)]
pub struct FaultPlan {
    rules: Arc<Mutex<FaultRules>>,
}

impl FaultPlan {
    pub fn new() -> FaultPlan {
        FaultPlan::default()
    }

    fn lock(&self) -> MutexGuard<'_, FaultRules> {
        self.rules.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Let `n` more writes through, then fail every write.
    pub fn fail_writes_after(&self, n: u64) {
        self.lock().writes_left = Some(n);
    }

    /// Let `n` more flushes through, then fail every flush.
    pub fn fail_flushes_after(&self, n: u64) {
        self.lock().flushes_left = Some(n);
    }

    /// Fail reads that overlap `[offset, offset + len)`.
    pub fn fail_reads_in(&self, offset: u64, len: u64) {
        self.lock().bad_read_ranges.push((offset, offset + len));
    }

    /// Stop injecting anything.
    pub fn heal(&self) {
        let mut rules = self.lock();
        rules.writes_left = None;
        rules.flushes_left = None;
        rules.bad_read_ranges.clear();
    }

    /// Operations failed so far.
    pub fn injected_total(&self) -> u64 {
        self.lock().injected_total
    }

    fn should_fail(&self, req: &IoRequest) -> bool {
        let mut rules = self.lock();
        let fail = match req.kind {
            IoKind::Write => take_allowance(&mut rules.writes_left),
            IoKind::Flush => take_allowance(&mut rules.flushes_left),
            IoKind::Read => {
                let end = req.offset + req.len_bytes() as u64;
                rules.bad_read_ranges.iter().any(|&(s, e)| req.offset < e && s < end)
            }
        };
        if fail {
            rules.injected_total += 1;
        }
        fail
    }
}

/// Consumes one allowance; true when the operation must fail.
fn take_allowance(left: &mut Option<u64>) -> bool {
    match left {
        None => false,
        Some(0) => true,
        Some(n) => {
            *n -= 1;
            false
        }
    }
}

/// A device whose operations fail as its [`FaultPlan`] says.
pub struct FaultDevice {
    inner: Box<dyn Device>,
    plan: FaultPlan,
    failed: Vec<IoCompletion>,
}

impl FaultDevice {
    pub fn new(inner: Box<dyn Device>, plan: FaultPlan) -> FaultDevice {
        FaultDevice { inner, plan, failed: Vec::new() }
    }
}

impl Device for FaultDevice {
    fn info(&self) -> &DeviceInfo {
        self.inner.info()
    }

    fn push(&mut self, req: IoRequest) -> Result<(), Box<(IoRequest, DeviceError)>> {
        if let Err(e) = validate_request(self.inner.info(), &req) {
            return Err(Box::new((req, e)));
        }
        if self.in_flight() >= self.info().queue_depth_max as usize {
            let e = DeviceError::new(&self.info().name, req.kind, req.offset, req.len_bytes(), "queue full");
            return Err(Box::new((req, e)));
        }
        if self.plan.should_fail(&req) {
            let error = DeviceError::new(&self.info().name, req.kind, req.offset, req.len_bytes(), "injected fault");
            self.failed.push(IoCompletion {
                tag: req.tag,
                kind: req.kind,
                offset: req.offset,
                buf: req.buf,
                result: Err(error),
            });
            return Ok(());
        }
        self.inner.push(req)
    }

    fn submit_and_wait(&mut self, wait_min: usize, out: &mut Vec<IoCompletion>) -> Result<usize, DeviceError> {
        let failed = self.failed.len();
        out.append(&mut self.failed);
        let inner_min = wait_min.saturating_sub(failed).min(self.inner.in_flight());
        let inner = self.inner.submit_and_wait(inner_min, out)?;
        Ok(failed + inner)
    }

    fn in_flight(&self) -> usize {
        self.inner.in_flight() + self.failed.len()
    }
}
