//! The executor: run queues, the wake path from any thread, the run loop and teardown.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use async_task::{Runnable, Task};

use super::ring::{Reaped, Ring};
use super::TASKS_PER_TURN;

/// How a core's reactor is built.
#[derive(Debug, Clone)]
pub struct ReactorConfig {
    /// The core's number (for logs and [`Remote::core`]).
    pub core: usize,
    /// Submission queue entries.
    pub ring_entries: u32,
    /// Ring operations in flight at most; more wait for a slot.
    pub ops_in_flight_max: usize,
    /// How long teardown waits for the kernel to finish cancelled operations.
    pub teardown_wait: Duration,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        ReactorConfig { core: 0, ring_entries: 256, ops_in_flight_max: 4096, teardown_wait: Duration::from_secs(2) }
    }
}

/// The part of a core other threads reach: its remote run queue and its doorbell.
struct Shared {
    /// Unique per reactor (0 is "none").
    id: u64,
    core: usize,
    remote: Mutex<RemoteQueue>,
    /// The core is (about to be) blocked in the ring.
    sleeping: AtomicBool,
    /// The doorbell was written and its read has not completed yet.
    rung: AtomicBool,
    doorbell: OwnedFd,
}

#[derive(Default)]
struct RemoteQueue {
    /// The reactor is gone: tasks scheduled now are never run.
    closed: bool,
    tasks: VecDeque<Runnable>,
}

impl Shared {
    fn push_remote(&self, runnable: Runnable) {
        let mut q = self.remote.lock().unwrap_or_else(PoisonError::into_inner);
        if q.closed {
            drop(q);
            // A local task must not be dropped off its thread (its future is `!Send`), and
            // its thread no longer runs it: leak it.
            std::mem::forget(runnable);
            return;
        }
        q.tasks.push_back(runnable);
        drop(q);
        self.ring_doorbell();
    }

    /// Wakes the core if it sleeps in the ring.
    fn ring_doorbell(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) && !self.rung.swap(true, Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd this struct owns.
            let n = unsafe { libc::write(self.doorbell.as_raw_fd(), (&one as *const u64).cast(), 8) };
            if n != 8 {
                tracing::error!(core = self.core, error = %io::Error::last_os_error(), "doorbell write failed");
            }
        }
    }

    fn remote_is_empty(&self) -> bool {
        self.remote.lock().unwrap_or_else(PoisonError::into_inner).tasks.is_empty()
    }

    fn take_remote(&self, into: &mut VecDeque<Runnable>) {
        let mut q = self.remote.lock().unwrap_or_else(PoisonError::into_inner);
        into.append(&mut q.tasks);
    }
}

/// A core's reactor as seen by the operations on its thread.
pub(crate) struct Core {
    shared: Arc<Shared>,
    pub(crate) ring: RefCell<Ring>,
}

thread_local! {
    static CORE: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
    /// `Shared::id` of the reactor running on this thread, 0 if none.
    static CURRENT_ID: Cell<u64> = const { Cell::new(0) };
    /// Tasks woken on this thread.
    static READY: RefCell<VecDeque<Runnable>> = const { RefCell::new(VecDeque::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The reactor of the current thread, if any.
pub(crate) fn current_core() -> Option<Rc<Core>> {
    CORE.try_with(|c| c.borrow().clone()).ok().flatten()
}

fn pop_ready() -> Option<Runnable> {
    READY.try_with(|q| q.borrow_mut().pop_front()).ok().flatten()
}

fn ready_is_empty() -> bool {
    READY.try_with(|q| q.borrow().is_empty()).unwrap_or(true)
}

fn schedule_on(shared: Arc<Shared>) -> impl Fn(Runnable) + Send + Sync + 'static {
    move |runnable: Runnable| {
        if CURRENT_ID.try_with(Cell::get).ok() == Some(shared.id) {
            let mut slot = Some(runnable);
            let _ = READY.try_with(|q| {
                if let Some(r) = slot.take() {
                    q.borrow_mut().push_back(r);
                }
            });
            // The thread is exiting and its queue is gone: leak rather than drop.
            if let Some(r) = slot {
                std::mem::forget(r);
            }
        } else {
            shared.push_remote(runnable);
        }
    }
}

/// Spawns a `!Send` future on the current thread's reactor. Dropping the returned [`Task`]
/// cancels the future (it is dropped on this thread); `Task::detach` lets it run on.
///
/// # Panics
/// When the current thread runs no [`Reactor`] (a programming error, not an input error).
pub fn spawn_local<F>(future: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let core = current_core().unwrap_or_else(|| panic!("spawn_local called on a thread without a reactor"));
    let (runnable, task) = async_task::spawn_local(future, schedule_on(core.shared.clone()));
    runnable.schedule();
    task
}

/// A handle to a core that any thread may hold.
#[derive(Clone)]
pub struct Remote {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("core", &self.shared.core).finish()
    }
}

impl Remote {
    pub fn core(&self) -> usize {
        self.shared.core
    }

    /// Runs a `Send` future on the core (a cross-core message). Once the core is gone the
    /// future never runs.
    pub fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (runnable, task) = async_task::spawn(future, schedule_on(self.shared.clone()));
        runnable.schedule();
        task
    }
}

/// Wakes [`Reactor::block_on`]'s own future.
struct MainWaker {
    woken: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if CURRENT_ID.try_with(Cell::get).ok() != Some(self.shared.id) {
            self.shared.ring_doorbell();
        }
    }
}

/// One core's executor and network ring. See the module docs.
pub struct Reactor {
    core: Rc<Core>,
    config: ReactorConfig,
    _not_send: PhantomData<*const ()>,
}

impl Reactor {
    /// Creates the reactor of the current thread (one per thread).
    pub fn new(config: ReactorConfig) -> io::Result<Reactor> {
        if current_core().is_some() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "this thread already runs a reactor"));
        }
        // SAFETY: eventfd has no memory arguments; a non-negative result is a new descriptor.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::other(format!(
                "core {}: eventfd for the doorbell: {}",
                config.core,
                io::Error::last_os_error()
            )));
        }
        // SAFETY: `fd` was just created and nothing else owns it.
        let doorbell = unsafe { OwnedFd::from_raw_fd(fd) };
        let ring = Ring::new(config.ring_entries, config.ops_in_flight_max, doorbell.as_raw_fd())
            .map_err(|e| io::Error::new(e.kind(), format!("core {}: io_uring setup: {e}", config.core)))?;
        let shared = Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            core: config.core,
            remote: Mutex::new(RemoteQueue::default()),
            sleeping: AtomicBool::new(false),
            rung: AtomicBool::new(false),
            doorbell,
        });
        let core = Rc::new(Core { shared, ring: RefCell::new(ring) });
        CORE.with(|c| *c.borrow_mut() = Some(core.clone()));
        CURRENT_ID.with(|c| c.set(core.shared.id));
        Ok(Reactor { core, config, _not_send: PhantomData })
    }

    pub fn remote(&self) -> Remote {
        Remote { shared: self.core.shared.clone() }
    }

    pub fn core(&self) -> usize {
        self.config.core
    }

    /// Runs tasks and the ring until `future` completes. Errors of the ring itself (not of
    /// operations) are logged and retried after a pause.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let main = Arc::new(MainWaker { woken: AtomicBool::new(true), shared: self.core.shared.clone() });
        let waker = Waker::from(main.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        let mut batch = VecDeque::new();
        let mut reaped = Reaped::default();
        loop {
            if main.woken.swap(false, Ordering::SeqCst) {
                if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                    return out;
                }
            }
            self.run_turn(&mut batch);
            let idle = ready_is_empty() && !main.woken.load(Ordering::SeqCst);
            let res = if idle { self.park(&main) } else { self.poke() };
            if let Err(e) = res {
                tracing::error!(core = self.config.core, error = %e, "io_uring enter failed");
                std::thread::sleep(Duration::from_millis(10));
            }
            self.reap(&mut reaped);
        }
    }

    /// Runs up to [`TASKS_PER_TURN`] ready tasks (remote wakes first join the local queue).
    fn run_turn(&self, batch: &mut VecDeque<Runnable>) {
        self.core.shared.take_remote(batch);
        if !batch.is_empty() {
            let _ = READY.try_with(|q| q.borrow_mut().append(batch));
        }
        for _ in 0..TASKS_PER_TURN {
            match pop_ready() {
                Some(r) => {
                    r.run();
                }
                None => break,
            }
        }
    }

    /// Hands queued entries to the kernel without waiting, if there is anything to hand.
    fn poke(&self) -> io::Result<()> {
        let mut ring = self.core.ring.borrow_mut();
        if ring.needs_enter() {
            ring.enter(0, None)
        } else {
            Ok(())
        }
    }

    /// Sleeps in the ring until a completion or the doorbell.
    fn park(&self, main: &MainWaker) -> io::Result<()> {
        let shared = &self.core.shared;
        let mut ring = self.core.ring.borrow_mut();
        ring.arm_doorbell();
        shared.sleeping.store(true, Ordering::SeqCst);
        let res = if shared.remote_is_empty() && !main.woken.load(Ordering::SeqCst) {
            ring.enter(1, None)
        } else {
            ring.enter(0, None)
        };
        shared.sleeping.store(false, Ordering::SeqCst);
        res
    }

    fn reap(&self, reaped: &mut Reaped) {
        self.core.ring.borrow_mut().reap(reaped);
        if std::mem::take(&mut reaped.doorbell) {
            self.core.shared.rung.store(false, Ordering::SeqCst);
        }
        for w in reaped.wake.drain(..) {
            w.wake();
        }
        reaped.release.clear();
    }
}

impl Drop for Reactor {
    /// Drops every task still queued or waiting on the ring (on this thread), then waits
    /// (bounded) for the kernel to finish the cancelled operations before freeing their
    /// buffers. Tasks whose wakers other threads still hold are leaked when woken.
    fn drop(&mut self) {
        let shared = &self.core.shared;
        let mut batch = {
            let mut q = shared.remote.lock().unwrap_or_else(PoisonError::into_inner);
            q.closed = true;
            std::mem::take(&mut q.tasks)
        };
        let mut wakers = Vec::new();
        // Dropping a task may cancel others (their handles) or free wakers: repeat until quiet.
        for _ in 0..64 {
            batch.clear();
            while let Some(r) = pop_ready() {
                drop(r);
            }
            self.core.ring.borrow_mut().take_wakers(&mut wakers);
            let had_wakers = !wakers.is_empty();
            wakers.clear();
            if !had_wakers && ready_is_empty() {
                break;
            }
        }
        let released = self.core.ring.borrow_mut().cancel_all(self.config.teardown_wait);
        drop(released);
        CURRENT_ID.with(|c| c.set(0));
        CORE.with(|c| c.borrow_mut().take());
    }
}
