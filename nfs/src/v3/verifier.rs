//! Write verifiers per file: the engine's verifier, changed for a file whose unstable data may
//! have been lost.
//!
//! A client keeps the data of every UNSTABLE WRITE until a COMMIT returns the verifier its
//! WRITEs got; a different verifier makes it send that data again. The engine changes its
//! verifier at each start, which covers a restart. It does not cover this: when writing out a
//! file's partial blocks fails (a full cache: `NoSpace`), the engine has already dropped them
//! from memory, and a later COMMIT succeeds without them (engine bug, reported with the write
//! path; `tests/v3_write.rs` reproduces it). Until the engine keeps them, any failure of a call
//! that may write out a file's partial blocks (WRITE, COMMIT, READ, SETATTR, CREATE of an
//! existing file) changes that file's verifier here, so its client resends what it had not
//! committed: at worst data sent twice, never data lost.
//!
//! Bounded: past [`FILES_MAX`] files the whole table is dropped and every file's verifier
//! changes at once (every client resends its uncommitted data once), which is safe as well.
//!
//! Runs on: any core (one mutex, held for a map lookup).

use std::collections::HashMap;
use std::sync::Mutex;

/// Files with a changed verifier remembered at most.
pub const FILES_MAX: usize = 65_536;

pub struct Verifiers {
    base: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Bumped when the table is dropped: changes every file's verifier.
    epoch: u64,
    /// (export id, inode) → how many times its data may have been lost.
    changed: HashMap<(u32, u64), u64>,
}

/// A well-mixed non-zero value of `n` (splitmix64), so `base ^ mix(n)` differs from `base`.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

impl Verifiers {
    /// Starting from the engine's verifier.
    pub fn new(base: u64) -> Verifiers {
        Verifiers { base, state: Mutex::new(State::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every change under the lock is one insert or a clear: a poisoned table is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The verifier WRITE and COMMIT return for the file `ino` of export `export`.
    pub fn of(&self, export: u32, ino: u64) -> u64 {
        let state = self.state();
        let n = state.changed.get(&(export, ino)).copied().unwrap_or(0);
        if state.epoch == 0 && n == 0 {
            return self.base;
        }
        // One mix of everything that names this version: never `base` (mix is non-zero).
        let x = mix(state.epoch) ^ mix(n).rotate_left(21) ^ ino.rotate_left(40) ^ u64::from(export);
        self.base ^ mix(x)
    }

    /// The file's unstable data may have been lost: its verifier changes.
    pub fn data_may_be_lost(&self, export: u32, ino: u64) {
        let mut state = self.state();
        if state.changed.len() >= FILES_MAX && !state.changed.contains_key(&(export, ino)) {
            state.changed.clear();
            state.epoch += 1;
            tracing::info!(
                "write verifiers: table full, every file's verifier changes (clients resend uncommitted data)"
            );
            return;
        }
        *state.changed.entry((export, ino)).or_insert(0) += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_whose_data_may_be_lost_gets_a_new_verifier_and_only_it() {
        let v = Verifiers::new(42);
        assert_eq!(v.of(1, 7), 42);
        v.data_may_be_lost(1, 7);
        let once = v.of(1, 7);
        assert_ne!(once, 42);
        assert_eq!(v.of(1, 8), 42);
        assert_eq!(v.of(2, 7), 42);
        v.data_may_be_lost(1, 7);
        assert_ne!(v.of(1, 7), once);
        assert_ne!(v.of(1, 7), 42);
    }

    #[test]
    fn a_full_table_changes_every_verifier() {
        let v = Verifiers::new(42);
        for ino in 0..FILES_MAX as u64 {
            v.data_may_be_lost(1, ino);
        }
        assert_eq!(v.state().changed.len(), FILES_MAX);
        let before: Vec<u64> = [0, 5, FILES_MAX as u64 + 3].iter().map(|&i| v.of(1, i)).collect();
        v.data_may_be_lost(1, FILES_MAX as u64 + 1);
        assert!(v.state().changed.is_empty());
        for (i, &ino) in [0, 5, FILES_MAX as u64 + 3].iter().enumerate() {
            assert_ne!(v.of(1, ino), before[i]);
            assert_ne!(v.of(1, ino), 42);
        }
    }
}
