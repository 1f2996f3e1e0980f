//! Engine calls polled inside the engine's tokio runtime context.
//!
//! The NFS cores run their own executor ([`crate::reactor`]), not tokio. Most engine futures do
//! not care, but some create tokio timers while polled on the caller's thread (the write path
//! waits with `tokio::time::sleep` when the cache is full of data not yet uploaded), and creating
//! a tokio timer outside a runtime context panics. [`in_runtime`] enters the engine runtime's
//! context for the duration of each poll only: the guard is made and dropped inside `poll`, so
//! guards of different calls on one core never interleave. Timers so created are driven by the
//! runtime's own threads, which wake the call's task on its core like any other engine wake.
//!
//! Runs on: the calling core; no allocation but the boxed future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use engine::Engine;

/// A future polled inside a tokio runtime's context (see the module docs).
pub struct InRuntime<F: Future> {
    handle: Option<tokio::runtime::Handle>,
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for InRuntime<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _guard = this.handle.as_ref().map(|h| h.enter());
        this.fut.as_mut().poll(cx)
    }
}

/// Wraps an engine call so it is polled inside the engine's runtime context. An engine without
/// a runtime (shutting down) polls it as is: its calls fail with `ShuttingDown` by themselves.
pub fn in_runtime<F: Future>(engine: &Engine, fut: F) -> InRuntime<F> {
    InRuntime { handle: engine.runtime().cloned(), fut: Box::pin(fut) }
}
