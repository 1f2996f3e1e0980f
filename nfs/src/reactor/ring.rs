//! The core's network ring: a table of operations in flight (slot number = `user_data`),
//! bounded submission, completions handed to the futures waiting for them, and the doorbell
//! read that wakes a sleeping core. Owned by one core thread (`SINGLE_ISSUER`).

use std::any::Any;
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::task::Waker;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};
use slab::Slab;

/// `user_data` of the doorbell read.
const DOORBELL: u64 = u64::MAX;
/// `user_data` of entries whose completion nobody waits for (cancellations).
const IGNORED: u64 = u64::MAX - 1;

/// An operation in flight.
enum Slot {
    /// Submitted; the future waiting for it.
    Waiting(Option<Waker>),
    /// Completed with this result; the future has not taken it yet.
    Done(i32),
    /// Its future was dropped: the buffers the kernel may still use, freed on completion.
    Abandoned(Box<dyn Any>),
}

/// What a turn of reaping found.
#[derive(Default)]
pub(crate) struct Reaped {
    /// Futures to wake (outside the ring's borrow).
    pub wake: Vec<Waker>,
    /// Buffers of abandoned operations, to drop outside the ring's borrow.
    pub release: Vec<Box<dyn Any>>,
    /// The doorbell rang.
    pub doorbell: bool,
}

pub(crate) struct Ring {
    uring: IoUring,
    ops: Slab<Slot>,
    ops_in_flight_max: usize,
    /// Futures waiting for a free slot.
    slot_waiters: VecDeque<Waker>,
    doorbell_fd: RawFd,
    doorbell_buf: Box<[u8; 8]>,
    doorbell_armed: bool,
}

impl Ring {
    /// A ring for `ops_in_flight_max` operations; `doorbell_fd` is an eventfd that must outlive
    /// the ring.
    pub fn new(entries: u32, ops_in_flight_max: usize, doorbell_fd: RawFd) -> io::Result<Ring> {
        // Every operation in flight, the doorbell read and a cancellation per operation fit
        // in the completion queue.
        let cq_entries = u32::try_from(ops_in_flight_max.saturating_mul(2).saturating_add(1).next_power_of_two())
            .unwrap_or(u32::MAX)
            .max(entries.saturating_mul(2));
        let mut builder = IoUring::builder();
        builder.setup_cqsize(cq_entries).setup_single_issuer().setup_coop_taskrun().setup_taskrun_flag();
        let uring = match builder.build(entries) {
            Ok(u) => u,
            // Kernels before 6.0 lack SINGLE_ISSUER; the flags are optimisations only.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                IoUring::builder().setup_cqsize(cq_entries).build(entries)?
            }
            Err(e) => return Err(e),
        };
        Ok(Ring {
            uring,
            ops: Slab::with_capacity(ops_in_flight_max.min(1024)),
            ops_in_flight_max: ops_in_flight_max.max(1),
            slot_waiters: VecDeque::new(),
            doorbell_fd,
            doorbell_buf: Box::new([0; 8]),
            doorbell_armed: false,
        })
    }

    /// Queues `entry`; `Err` gives it back when no slot or no submission entry is free (the
    /// waker is called when one may be).
    pub fn submit_op(&mut self, entry: squeue::Entry, waker: &Waker) -> Result<usize, squeue::Entry> {
        if self.ops.len() >= self.ops_in_flight_max {
            if !self.slot_waiters.iter().any(|w| w.will_wake(waker)) {
                self.slot_waiters.push_back(waker.clone());
            }
            return Err(entry);
        }
        let key = self.ops.insert(Slot::Waiting(Some(waker.clone())));
        let entry = entry.user_data(key as u64);
        if self.push(&entry) {
            Ok(key)
        } else {
            self.ops.remove(key);
            waker.wake_by_ref();
            Err(entry)
        }
    }

    /// Pushes an entry, handing the queue to the kernel first when it is full.
    fn push(&mut self, entry: &squeue::Entry) -> bool {
        for _ in 0..2 {
            // SAFETY: every pointer in the entries built by `ops` points into buffers the
            // operation's slot keeps alive (its future, or the slot once abandoned) until the
            // completion is reaped.
            if unsafe { self.uring.submission().push(entry) }.is_ok() {
                return true;
            }
            if let Err(e) = self.uring.submit() {
                tracing::debug!(error = %e, "io_uring submit with a full queue failed");
            }
        }
        false
    }

    /// The result of operation `key` if it completed; otherwise remembers `waker`.
    pub fn poll_op(&mut self, key: usize, waker: &Waker) -> Option<i32> {
        match self.ops.get_mut(key) {
            Some(Slot::Done(res)) => {
                let res = *res;
                self.remove(key);
                Some(res)
            }
            Some(Slot::Waiting(w)) => {
                if !w.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    *w = Some(waker.clone());
                }
                None
            }
            // A slot is abandoned only by its dropped future, and removed only here or on
            // completion: the future cannot poll it any more.
            Some(Slot::Abandoned(_)) | None => Some(-libc::ECANCELED),
        }
    }

    /// The future of operation `key` was dropped: keeps `res` until the kernel is done with
    /// it (and asks the kernel to cancel), or gives it back to drop if it already is.
    pub fn abandon(&mut self, key: usize, res: Box<dyn Any>) -> Option<Box<dyn Any>> {
        match self.ops.get_mut(key) {
            Some(Slot::Waiting(_)) => {
                self.ops[key] = Slot::Abandoned(res);
                let cancel = opcode::AsyncCancel::new(key as u64).build().user_data(IGNORED);
                if !self.push(&cancel) {
                    tracing::warn!(key, "no room to cancel an abandoned operation; it stays until it completes");
                }
                None
            }
            Some(Slot::Done(_)) => {
                self.remove(key);
                Some(res)
            }
            Some(Slot::Abandoned(_)) | None => Some(res),
        }
    }

    fn remove(&mut self, key: usize) -> Option<Slot> {
        let slot = self.ops.try_remove(key);
        if let Some(w) = self.slot_waiters.pop_front() {
            w.wake();
        }
        slot
    }

    /// Keeps a read of the doorbell eventfd in flight.
    pub fn arm_doorbell(&mut self) {
        if self.doorbell_armed {
            return;
        }
        let entry = opcode::Read::new(types::Fd(self.doorbell_fd), self.doorbell_buf.as_mut_ptr(), 8)
            .build()
            .user_data(DOORBELL);
        self.doorbell_armed = self.push(&entry);
    }

    /// Whether a call into the kernel is due without waiting: entries queued, completions
    /// the kernel holds back (task work, overflow).
    pub fn needs_enter(&mut self) -> bool {
        let sq = self.uring.submission();
        !sq.is_empty() || sq.taskrun() || sq.cq_overflow()
    }

    /// Submits what is queued and waits for `want` completions (at most `timeout`, if given).
    pub fn enter(&mut self, want: usize, timeout: Option<Duration>) -> io::Result<()> {
        let res = match timeout {
            Some(t) => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.uring.submitter().submit_with_args(want, &args)
            }
            None => self.uring.submitter().submit_and_wait(want),
        };
        match res {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR | libc::EBUSY | libc::EAGAIN | libc::ETIME) => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// Takes every completion: results go to their slots, abandoned buffers are released.
    pub fn reap(&mut self, out: &mut Reaped) {
        let mut freed = 0;
        for cqe in self.uring.completion() {
            match cqe.user_data() {
                DOORBELL => {
                    self.doorbell_armed = false;
                    out.doorbell = true;
                }
                IGNORED => {}
                key => {
                    let key = key as usize;
                    match self.ops.get_mut(key) {
                        Some(Slot::Waiting(w)) => {
                            if let Some(w) = w.take() {
                                out.wake.push(w);
                            }
                            self.ops[key] = Slot::Done(cqe.result());
                        }
                        Some(Slot::Abandoned(_)) => {
                            if let Some(Slot::Abandoned(res)) = self.ops.try_remove(key) {
                                out.release.push(res);
                            }
                            freed += 1;
                        }
                        Some(Slot::Done(_)) | None => {
                            tracing::warn!(key, "completion for an operation not in flight");
                        }
                    }
                }
            }
        }
        for _ in 0..freed {
            match self.slot_waiters.pop_front() {
                Some(w) => out.wake.push(w),
                None => break,
            }
        }
    }

    /// Takes the wakers of every waiting operation (teardown: dropping them lets the tasks
    /// holding nothing else be dropped).
    pub fn take_wakers(&mut self, out: &mut Vec<Waker>) {
        for (_, slot) in self.ops.iter_mut() {
            if let Slot::Waiting(w) = slot {
                out.extend(w.take());
            }
        }
        out.extend(self.slot_waiters.drain(..));
    }

    /// Teardown: cancels every operation in flight and waits until the kernel has completed
    /// them, for at most `wait`. Returns the buffers it could release; buffers of operations
    /// still in flight after `wait` are leaked, never freed under the kernel.
    pub fn cancel_all(&mut self, wait: Duration) -> Vec<Box<dyn Any>> {
        let keys: Vec<usize> = self.ops.iter().map(|(k, _)| k).collect();
        for key in keys {
            let cancel = opcode::AsyncCancel::new(key as u64).build().user_data(IGNORED);
            self.push(&cancel);
        }
        if self.doorbell_armed {
            let cancel = opcode::AsyncCancel::new(DOORBELL).build().user_data(IGNORED);
            self.push(&cancel);
        }
        let deadline = Instant::now() + wait;
        let mut reaped = Reaped::default();
        loop {
            self.reap(&mut reaped);
            // Results of completed, never-taken operations need nothing from the kernel.
            self.ops.retain(|_, slot| !matches!(slot, Slot::Done(_)));
            let waiting = self.doorbell_armed || !self.ops.is_empty();
            let now = Instant::now();
            if !waiting || now >= deadline {
                break;
            }
            if let Err(e) = self.enter(1, Some(deadline - now)) {
                tracing::warn!(error = %e, "io_uring enter failed while cancelling");
                break;
            }
        }
        if !self.ops.is_empty() {
            tracing::warn!(ops = self.ops.len(), "operations still in flight at teardown; their buffers are leaked");
            std::mem::forget(std::mem::take(&mut self.ops));
        }
        if self.doorbell_armed {
            std::mem::forget(std::mem::replace(&mut self.doorbell_buf, Box::new([0; 8])));
        }
        reaped.release
    }
}
