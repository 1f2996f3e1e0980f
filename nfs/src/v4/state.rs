//! NFSv4 state: client records, sessions and their slot reply caches, stateids, leases and the
//! grace period. Shared by every core; each table behind its own lock.
//!
//! (Skeleton: the types the COMPOUND loop needs. Filled in by the state work.)

use std::time::Duration;

use crate::xdr::Writer;

/// A stateid4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stateid {
    pub seqid: u32,
    pub other: [u8; 12],
}

/// The session slot a SEQUENCE chose, for the rest of its COMPOUND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqSlot {
    pub session: [u8; 16],
    pub slot: u32,
    pub seqid: u32,
    pub cache_this: bool,
}

#[derive(Debug, Clone)]
pub struct StateConfig {
    pub lease: Duration,
    pub grace: Duration,
}

pub struct State {
    pub config: StateConfig,
}

impl State {
    pub fn new(config: StateConfig) -> State {
        State { config }
    }

    /// After a COMPOUND that began with SEQUENCE: keep its reply in the slot.
    pub fn finish_compound(&self, _seq: &SeqSlot, _reply: &Writer) {}
}
