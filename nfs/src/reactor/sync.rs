//! Two small wake-up primitives: [`Notify`] between tasks of one core, [`Signal`] from any
//! thread.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Poll, Waker};

/// A wake-up for one waiting task on the same core. A `notify` with nobody waiting is kept
/// until the next `wait` (like a binary semaphore).
#[derive(Debug, Default)]
pub struct Notify {
    notified: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    pub fn new() -> Notify {
        Notify::default()
    }

    pub fn notify(&self) {
        self.notified.set(true);
        let waker = self.waker.borrow_mut().take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Completes at the first `notify` since the last `wait` completed.
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            if self.notified.replace(false) {
                return Poll::Ready(());
            }
            let mut w = self.waker.borrow_mut();
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
            Poll::Pending
        })
    }
}

/// A one-way flag raised once from any thread; every waiter (one per core, say) completes.
#[derive(Debug, Default)]
pub struct Signal {
    raised: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Signal {
    pub fn new() -> Signal {
        Signal::default()
    }

    pub fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(PoisonError::into_inner));
        for w in wakers {
            w.wake();
        }
    }

    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }

    /// Completes once the signal is raised.
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            if self.is_raised() {
                return Poll::Ready(());
            }
            let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
            drop(wakers);
            // Raised between the first look and the registration.
            if self.is_raised() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}
