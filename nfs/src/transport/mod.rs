//! ONC RPC over TCP on the per-core reactors: listeners, connections, pipelined calls.
//!
//! # Threads
//! [`Transport::start`] binds every listener once per core (`SO_REUSEPORT`: the kernel spreads
//! new connections over the cores' sockets, so a connection never changes core and nothing is
//! handed between cores) and starts one thread per core (`nfs-core-N`, optionally pinned), each
//! running a [`crate::reactor::Reactor`]. A connection, its calls and its replies live on the
//! core that accepted it; [`Service::handle`] futures run there.
//!
//! # A connection
//! The reader receives into a buffer, [`RecordDecoder`](crate::rpc::RecordDecoder) splits
//! records (a record over `record_bytes_max` or broken framing closes the connection, logged
//! with the peer), and each record becomes a task of its own, so calls are pipelined. Replies
//! go out in completion order, each as a record mark and the reply's parts, gathered by
//! `sendmsg` straight from the parts (a READ's cache buffers are not copied); several queued
//! replies share one `sendmsg`, and partial sends continue where they stopped.
//!
//! # Bounds (per connection)
//! The reader stops reading the socket while `calls_in_flight_max` calls are in flight, while
//! the records in flight hold `request_bytes_in_flight_max` bytes, or while replies of
//! `reply_bytes_queued_max` bytes wait to be sent. Memory is therefore bounded by these limits
//! plus one record (`record_bytes_max`) being received and the replies of the calls in flight.
//!
//! # Ending
//! End of stream, a reset, a send error or a framing error ends the connection: its calls in
//! flight are cancelled (their futures dropped on the core), the socket is shut down and
//! closed, and [`Service::closed`] is called. A call whose service future panics ends its
//! connection (the reply's xid is unknown to the transport); the core serves on. [`Transport::shutdown`] (or drop) stops accepting,
//! ends every connection the same way, and joins the core threads.

mod conn;
mod listen;
mod stats;

use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

pub use stats::{CoreStats, TransportStats};

use crate::reactor::{Reactor, ReactorConfig, Signal};
use crate::service::Service;
use stats::CoreCounters;

/// What the transport listens on and how much a connection may hold.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Addresses to listen on (port 0: any free port; see [`Transport::local_addrs`]).
    pub listeners: Vec<SocketAddr>,
    /// Core threads (each with its own reactor and a listening socket per address).
    pub cores: usize,
    /// Pin core thread N to the N-th CPU the process may run on.
    pub pin_cores: bool,
    /// Longest RPC record taken; a longer one closes the connection.
    pub record_bytes_max: usize,
    /// Calls in flight per connection; at the limit the socket is not read.
    pub calls_in_flight_max: usize,
    /// Bytes of received records whose calls are in flight, per connection.
    pub request_bytes_in_flight_max: usize,
    /// Bytes of replies waiting to be sent, per connection.
    pub reply_bytes_queued_max: usize,
    /// Ring operations in flight per core.
    pub ops_in_flight_max: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            listeners: Vec::new(),
            cores: 1,
            pin_cores: false,
            // A 1 MiB..4 MiB WRITE plus headers.
            record_bytes_max: (4 << 20) + (64 << 10),
            calls_in_flight_max: 128,
            request_bytes_in_flight_max: 64 << 20,
            reply_bytes_queued_max: 16 << 20,
            ops_in_flight_max: 4096,
        }
    }
}

/// A running transport. See the module docs.
pub struct Transport {
    local_addrs: Vec<SocketAddr>,
    counters: Arc<[CoreCounters]>,
    stop: Arc<Signal>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").field("local_addrs", &self.local_addrs).field("cores", &self.threads.len()).finish()
    }
}

impl Transport {
    /// Binds the listeners and starts the core threads; returns when every core is serving.
    pub fn start(config: TransportConfig, service: Arc<dyn Service>) -> io::Result<Transport> {
        if config.cores == 0 || config.listeners.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "transport needs at least one core and one listener",
            ));
        }
        if config.calls_in_flight_max == 0 || config.record_bytes_max < 8 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "calls_in_flight_max and record_bytes_max must allow a call",
            ));
        }
        let (local_addrs, mut sockets) = listen::bind_all(&config.listeners, config.cores)?;
        let counters: Arc<[CoreCounters]> = (0..config.cores).map(|_| CoreCounters::default()).collect();
        let stop = Arc::new(Signal::new());
        let cpus = if config.pin_cores { listen::allowed_cpus() } else { Vec::new() };
        let (ready_tx, ready_rx) = mpsc::sync_channel(config.cores);
        let mut transport =
            Transport { local_addrs, counters: counters.clone(), stop: stop.clone(), threads: Vec::new() };
        for (core, listeners) in sockets.drain(..).enumerate() {
            let ctx = conn::CoreSetup {
                core,
                config: config.clone(),
                service: service.clone(),
                counters: counters.clone(),
                stop: stop.clone(),
            };
            let cpu = cpus.get(core % cpus.len().max(1)).copied();
            let ready = ready_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("nfs-core-{core}"))
                .spawn(move || run_core(ctx, listeners, cpu, ready));
            match spawned {
                Ok(t) => transport.threads.push(t),
                Err(e) => {
                    transport.stop_and_join();
                    return Err(io::Error::new(e.kind(), format!("starting core thread {core}: {e}")));
                }
            }
        }
        drop(ready_tx);
        for _ in 0..config.cores {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    transport.stop_and_join();
                    return Err(e);
                }
                Err(_) => {
                    transport.stop_and_join();
                    return Err(io::Error::other("a core thread ended before it was ready"));
                }
            }
        }
        Ok(transport)
    }

    /// The bound addresses, in the order of `TransportConfig::listeners` (actual ports).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    pub fn stats(&self) -> TransportStats {
        TransportStats { cores: self.counters.iter().enumerate().map(|(core, c)| c.snapshot(core)).collect() }
    }

    /// Stops accepting, ends every connection (calls in flight are cancelled), joins the
    /// core threads.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.raise();
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a core thread panicked");
            }
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// A core thread: pin, build the reactor, serve until the stop signal, tear down.
fn run_core(
    setup: conn::CoreSetup,
    listeners: listen::CoreSockets,
    cpu: Option<usize>,
    ready: mpsc::SyncSender<io::Result<()>>,
) {
    let core = setup.core;
    if let Some(cpu) = cpu {
        if let Err(e) = listen::pin_to(cpu) {
            tracing::warn!(core, cpu, error = %e, "pinning the core thread failed; it runs unpinned");
        }
    }
    let reactor = match Reactor::new(ReactorConfig {
        core,
        ops_in_flight_max: setup.config.ops_in_flight_max,
        ..ReactorConfig::default()
    }) {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    reactor.block_on(conn::serve_core(setup, listeners));
    drop(reactor);
    tracing::debug!(core, "core thread ends");
}
