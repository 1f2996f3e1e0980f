//! Sequential-stream detection and the read-ahead window.
//!
//! Each file keeps up to [`STREAMS_PER_FILE`] streams (next expected offset, window). A read that
//! lands near a stream's next offset (within a tolerance, since clients keep several reads in
//! flight and they arrive out of order) continues it and doubles its window up to
//! `read_ahead_bytes_max`; any other read starts a new stream with no read-ahead. So a random
//! reader never causes read-ahead, and a sequential one gets a window that grows with it.
//! The decision returns the blocks to fetch ahead that were not already asked for.
//!
//! Runs on: the caller's thread; one short lock per read.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;
use std::time::Instant;

pub const STREAMS_PER_FILE: usize = 4;
/// Files whose streams are remembered at most (least recently used go first).
const FILES_MAX: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Stream {
    next_offset: u64,
    window_bytes: u64,
    /// Blocks below this were already asked for by the read-ahead.
    ahead_until_block: u64,
    sequential_reads: u32,
    used: Instant,
}

#[derive(Debug)]
pub struct ReadAhead {
    block_bytes: u64,
    window_first_bytes: u64,
    window_max_bytes: u64,
    /// Top-ups end on multiples of this many blocks (the GET size), so GETs stay aligned.
    align_blocks: u64,
    files: Mutex<HashMap<u64, Vec<Stream>>>,
}

impl ReadAhead {
    pub fn new(block_bytes: u64, window_max_bytes: u64, align_bytes: u64) -> ReadAhead {
        let window_max_bytes = window_max_bytes.max(block_bytes);
        ReadAhead {
            align_blocks: (align_bytes / block_bytes).max(1),
            block_bytes,
            window_first_bytes: (4 * block_bytes).min(window_max_bytes),
            window_max_bytes,
            files: Mutex::new(HashMap::new()),
        }
    }

    /// Records a read of `len` bytes at `offset` of file `ino` (of `size` bytes); returns the
    /// blocks to fetch ahead (empty for a random read or at the end of the file).
    pub fn on_read(&self, ino: u64, offset: u64, len: u64, size: u64) -> Range<u64> {
        if self.window_max_bytes == 0 || size == 0 {
            return 0..0;
        }
        let end = offset.saturating_add(len).min(size);
        let tolerance = 4 * len.max(1);
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if files.len() >= FILES_MAX && !files.contains_key(&ino) {
            let oldest = files.iter().min_by_key(|(_, s)| s.iter().map(|x| x.used).max()).map(|(k, _)| *k);
            if let Some(k) = oldest {
                files.remove(&k);
            }
        }
        let streams = files.entry(ino).or_default();
        let now = Instant::now();
        let hit =
            streams.iter_mut().find(|s| offset <= s.next_offset + tolerance && offset + tolerance >= s.next_offset);
        let stream = match hit {
            Some(s) => {
                s.sequential_reads += 1;
                s.window_bytes = if s.window_bytes == 0 {
                    self.window_first_bytes
                } else {
                    (s.window_bytes * 2).min(self.window_max_bytes)
                };
                s.next_offset = s.next_offset.max(end);
                s.used = now;
                *s
            }
            None => {
                if streams.len() >= STREAMS_PER_FILE {
                    if let Some(i) = streams.iter().enumerate().min_by_key(|(_, s)| s.used).map(|(i, _)| i) {
                        streams.swap_remove(i);
                    }
                }
                // A read from the very start of a file is taken as the start of a stream (files
                // are mostly read from the beginning); anywhere else, wait for a second read.
                let window_bytes = if offset == 0 { self.window_first_bytes } else { 0 };
                let s = Stream { next_offset: end, window_bytes, ahead_until_block: 0, sequential_reads: 0, used: now };
                streams.push(s);
                if window_bytes == 0 {
                    return 0..0;
                }
                s
            }
        };
        let blocks_total = size.div_ceil(self.block_bytes);
        // Top the window up only when less than half of it is left ahead of the reader, so the
        // backfill gets large contiguous runs (whole GETs), not one block per read.
        let window_blocks = stream.window_bytes.div_ceil(self.block_bytes);
        let ahead_blocks = stream.ahead_until_block.saturating_sub(end.div_ceil(self.block_bytes));
        if ahead_blocks * 2 > window_blocks {
            return 0..0;
        }
        let from = (end.div_ceil(self.block_bytes)).max(stream.ahead_until_block);
        let to = (end + stream.window_bytes)
            .div_ceil(self.block_bytes)
            .next_multiple_of(self.align_blocks)
            .min(blocks_total);
        if from >= to {
            return 0..0;
        }
        if let Some(s) = streams.iter_mut().find(|s| s.next_offset == stream.next_offset) {
            s.ahead_until_block = to;
        }
        from..to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn sequential_reads_grow_the_window_to_its_bound() {
        let ra = ReadAhead::new(MIB, 64 * MIB, MIB);
        let size = 1 << 40;
        assert_eq!(ra.on_read(1, 0, MIB, size), 1..5, "a read at offset 0 starts a stream: 4 blocks");
        assert_eq!(ra.on_read(9, 5 * MIB, MIB, size), 0..0, "one read elsewhere is not a stream yet");
        let first = ra.on_read(1, MIB, MIB, size);
        assert_eq!(first, 5..10, "window doubled to 8 blocks, topped up");
        let mut until = first.end;
        let mut last_len = 4;
        let mut batches = Vec::new();
        for i in 2..200u64 {
            let r = ra.on_read(1, i * MIB, MIB, size);
            if !r.is_empty() {
                assert_eq!(r.start, until, "never asks twice for a block");
                until = r.end;
                last_len = r.end - (i + 1);
                batches.push(r.end - r.start);
            }
            assert!(until > i, "the window stays ahead of the reader");
        }
        assert_eq!(last_len, 64, "window capped at 64 blocks");
        assert!(batches.iter().rev().take(3).all(|&b| b >= 32), "steady state asks in half windows: {batches:?}");
    }

    #[test]
    fn top_ups_end_on_get_boundaries() {
        let ra = ReadAhead::new(MIB, 64 * MIB, 16 * MIB);
        let size = 1 << 40;
        for i in 0..100u64 {
            let r = ra.on_read(4, i * MIB, MIB, size);
            if !r.is_empty() {
                assert_eq!(r.end % 16, 0, "{r:?}");
            }
        }
    }

    #[test]
    fn random_reads_get_no_read_ahead() {
        let ra = ReadAhead::new(MIB, 64 * MIB, MIB);
        let size = 1 << 40;
        let mut x: u64 = 12345;
        for _ in 0..1000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let off = (x >> 20) % (size - 4096);
            assert!(ra.on_read(2, off & !4095, 4096, size).is_empty());
        }
    }

    #[test]
    fn out_of_order_reads_in_flight_still_count_as_sequential_and_stop_at_eof() {
        let ra = ReadAhead::new(MIB, 16 * MIB, MIB);
        let size = 10 * MIB;
        ra.on_read(3, 0, MIB, size);
        ra.on_read(3, 2 * MIB, MIB, size); // arrived before the read of block 1
        let r = ra.on_read(3, MIB, MIB, size);
        assert!(r.end <= 10, "never past the last block: {r:?}");
        let mut all = Vec::new();
        for i in 3..10 {
            all.push(ra.on_read(3, i * MIB, MIB, size));
        }
        assert!(all.iter().all(|r| r.end <= 10));
    }
}
