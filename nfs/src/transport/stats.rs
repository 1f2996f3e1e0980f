//! Transport counters: written by one core each, read by anyone.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct CoreCounters {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub connections_broken: AtomicU64,
    pub calls: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl CoreCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self, core: usize) -> CoreStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CoreStats {
            core,
            connections_open: get(&self.connections_open),
            connections_total: get(&self.connections_total),
            connections_broken: get(&self.connections_broken),
            calls: get(&self.calls),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
        }
    }
}

/// One core's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreStats {
    pub core: usize,
    pub connections_open: u64,
    pub connections_total: u64,
    /// Connections closed for broken framing, a record over the limit, or a service panic.
    pub connections_broken: u64,
    /// Calls answered (or dropped without a reply by the service).
    pub calls: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Every core's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportStats {
    pub cores: Vec<CoreStats>,
}

impl TransportStats {
    /// The sum over cores (`core` is the number of cores).
    pub fn total(&self) -> CoreStats {
        let mut t = CoreStats { core: self.cores.len(), ..CoreStats::default() };
        for c in &self.cores {
            t.connections_open += c.connections_open;
            t.connections_total += c.connections_total;
            t.connections_broken += c.connections_broken;
            t.calls += c.calls;
            t.bytes_in += c.bytes_in;
            t.bytes_out += c.bytes_out;
        }
        t
    }
}
