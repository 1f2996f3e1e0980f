//! The admin endpoint: a small HTTP/1.1 server for operators and scrapers.
//!
//! Routes (`routes.rs`): `GET /metrics` (OpenMetrics text), `GET /v1/stats` (`EngineStats` as
//! JSON), `POST /v1/preload` (a JSON `PreloadRequest` in, `application/x-ndjson` out: one
//! `PreloadEvent` per line, written as produced, ending after `done` or `failed`), `GET /healthz`.
//!
//! API: `serve(listener, backend)` spawns the accept loop on the current tokio runtime and
//! returns its `JoinHandle` (abort it to stop accepting); `serve_with` takes `AdminLimits`. The
//! engine plugs in through `AdminBackend`.
//!
//! Threads: whatever tokio runtime calls `serve` (the appliance's small control runtime, never a
//! shard core). `AdminBackend::stats` may block (it asks every shard), so it runs on tokio's
//! blocking pool. A preload runs as its own task; its events pass through a bounded channel, so a
//! slow client slows the preload instead of queueing events without bound.
//!
//! Robustness: one request per connection (`Connection: close`); at most `connections_max`
//! connections (a few more get a 503, the rest are dropped); the head is limited in size (431) and in time (408), the body
//! in size (413) and time; writes time out; garbage gets a 400 and the connection is closed.
//! A client that goes away during a preload is noticed at the next event written: the receiver
//! is dropped, so the backend's `send` fails and the backend should stop.

mod conn;
mod http;
pub mod metrics;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use engine::preload::{PreloadEvent, PreloadRequest};
use engine::stats::EngineStats;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

/// Connections over `connections_max` being told 503 at once, at most.
const BUSY_REFUSALS_MAX: usize = 16;

/// What the admin endpoint needs from the engine.
pub trait AdminBackend: Send + Sync + 'static {
    /// A snapshot of every counter. May block briefly (runs on the blocking pool).
    fn stats(&self) -> EngineStats;

    /// Runs a preload, sending `Progress`/`Skipped` events as it goes and then exactly one
    /// `Done` or `Failed`. If `send` fails, the client has gone: stop. A future that ends without
    /// a final event is reported to the client as `Failed`.
    fn preload(&self, req: PreloadRequest, events: mpsc::Sender<PreloadEvent>) -> BoxFuture<'static, ()>;
}

/// Bounds on what one client can make the server hold or wait for.
#[derive(Clone, Debug)]
pub struct AdminLimits {
    pub connections_max: usize,
    pub head_bytes_max: usize,
    /// A preload manifest is the largest body.
    pub body_bytes_max: u64,
    /// For the whole request head to arrive.
    pub head_timeout: Duration,
    /// For the whole body to arrive.
    pub body_timeout: Duration,
    /// For each write to the client to complete.
    pub write_timeout: Duration,
    /// Preload events produced but not yet written.
    pub preload_events_queued_max: usize,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            connections_max: 64,
            head_bytes_max: 16 << 10,
            body_bytes_max: 64 << 20,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            preload_events_queued_max: 64,
        }
    }
}

/// Serves the admin endpoint on `listener` with the default limits. Call from a tokio runtime.
pub fn serve(listener: TcpListener, backend: Arc<dyn AdminBackend>) -> JoinHandle<()> {
    serve_with(listener, backend, AdminLimits::default())
}

/// Serves the admin endpoint on `listener`. Call from a tokio runtime.
pub fn serve_with(listener: TcpListener, backend: Arc<dyn AdminBackend>, limits: AdminLimits) -> JoinHandle<()> {
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    let refusal_slots = Arc::new(Semaphore::new(BUSY_REFUSALS_MAX));
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!("admin endpoint: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                // Refusals get their own few slots; beyond those the connection is just dropped.
                if let Ok(refusal_slot) = refusal_slots.clone().try_acquire_owned() {
                    let limits = limits.clone();
                    tokio::spawn(async move {
                        conn::refuse_busy(stream, &limits).await;
                        drop(refusal_slot);
                    });
                }
                continue;
            };
            let (backend, limits) = (backend.clone(), limits.clone());
            tokio::spawn(async move {
                conn::handle(stream, backend, &limits).await;
                tracing::trace!("admin endpoint: {peer} done");
                drop(slot);
            });
        }
    })
}

#[cfg(test)]
mod tests;
