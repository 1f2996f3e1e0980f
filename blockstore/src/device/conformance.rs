//! One conformance suite for every [`Device`] backend: the simulated device, the fault wrapper,
//! the io_uring file backend and (inside a QEMU guest) NVMe passthrough all run it.
//!
//! The device must be at least 4 MiB; its prior contents are not assumed.

use super::{Device, IoCompletion, IoKind, IoRequest};
use crate::buf::{AlignedBuf, BufPool, SECTOR_BYTES};

/// Runs every check. `pool`, when given, must be the pool registered with `dev`.
pub fn run_all(dev: &mut dyn Device, pool: Option<&BufPool>) {
    assert!(dev.info().size_bytes >= 4 << 20, "conformance needs a 4 MiB device");
    assert!(dev.info().queue_depth_max >= 4, "conformance needs queue depth >= 4");
    idle_wait_returns_nothing(dev);
    write_read_flush_round_trip(dev, pool);
    many_in_flight_complete_with_their_tags(dev, pool);
    malformed_requests_are_refused(dev);
    queue_bound_is_enforced(dev);
}

fn alloc(pool: Option<&BufPool>, len: usize) -> AlignedBuf {
    match pool {
        Some(pool) => pool.get(len),
        None => AlignedBuf::zeroed(len),
    }
}

/// Deterministic contents for the sector at `offset` in generation `generation`.
pub fn pattern(offset: u64, generation: u64, out: &mut [u8]) {
    let mut x = offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ generation.wrapping_add(1);
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Pushes every request (draining completions when the queue is full) and waits for them all.
pub fn run_to_completion(dev: &mut dyn Device, reqs: Vec<IoRequest>) -> Vec<IoCompletion> {
    let mut done = Vec::new();
    for mut req in reqs {
        loop {
            match dev.push(req) {
                Ok(()) => break,
                Err(refused) => {
                    let (back, error) = *refused;
                    assert!(error.reason.contains("queue full"), "unexpected refusal: {error}");
                    assert!(dev.in_flight() > 0, "queue full with nothing in flight");
                    dev.submit_and_wait(1, &mut done).expect("submit");
                    req = back;
                }
            }
        }
    }
    while dev.in_flight() > 0 {
        let before = done.len();
        let n = dev.submit_and_wait(dev.in_flight(), &mut done).expect("submit");
        assert_eq!(n, done.len() - before, "returned count matches appended completions");
    }
    done
}

fn idle_wait_returns_nothing(dev: &mut dyn Device) {
    let mut out = Vec::new();
    assert_eq!(dev.in_flight(), 0);
    assert_eq!(dev.submit_and_wait(0, &mut out).expect("idle submit"), 0);
    assert!(out.is_empty());
}

fn write_read_flush_round_trip(dev: &mut dyn Device, pool: Option<&BufPool>) {
    let extents: [(u64, usize); 3] = [(0, SECTOR_BYTES), (1 << 20, 16 * SECTOR_BYTES), (3 << 20, 256 * SECTOR_BYTES)];
    let writes = extents
        .iter()
        .enumerate()
        .map(|(i, &(offset, len))| {
            let mut buf = alloc(pool, len);
            for (s, sector) in buf.as_mut_slice().chunks_mut(SECTOR_BYTES).enumerate() {
                pattern(offset + (s * SECTOR_BYTES) as u64, 7, sector);
            }
            IoRequest::write(offset, buf, i as u64)
        })
        .collect();
    for c in run_to_completion(dev, writes) {
        c.result.expect("write");
        assert_eq!(c.kind, IoKind::Write);
    }
    let flushed = run_to_completion(dev, vec![IoRequest::flush(99)]);
    assert_eq!(flushed.len(), 1);
    assert_eq!(flushed[0].tag, 99);
    flushed.into_iter().for_each(|c| c.result.expect("flush"));

    let reads = extents
        .iter()
        .enumerate()
        .map(|(i, &(offset, len))| IoRequest::read(offset, alloc(pool, len), 100 + i as u64))
        .collect();
    let mut done = run_to_completion(dev, reads);
    done.sort_by_key(|c| c.tag);
    assert_eq!(done.len(), extents.len());
    let mut want = vec![0u8; SECTOR_BYTES];
    for (c, &(offset, len)) in done.into_iter().zip(extents.iter()) {
        assert_eq!(c.offset, offset);
        c.result.expect("read");
        let buf = c.buf.expect("read returns its buffer");
        assert_eq!(buf.len(), len);
        for (s, sector) in buf.as_slice().chunks(SECTOR_BYTES).enumerate() {
            pattern(offset + (s * SECTOR_BYTES) as u64, 7, &mut want);
            assert!(sector == want.as_slice(), "sector {s} of extent at {offset} differs");
        }
    }
}

fn many_in_flight_complete_with_their_tags(dev: &mut dyn Device, pool: Option<&BufPool>) {
    // 64 single-sector writes to scattered sectors, then 64 reads back, all tags accounted for.
    let offsets: Vec<u64> = (0..64u64).map(|i| ((i * 37) % 512) * SECTOR_BYTES as u64 + (2 << 20)).collect();
    let writes = offsets
        .iter()
        .enumerate()
        .map(|(i, &offset)| {
            let mut buf = alloc(pool, SECTOR_BYTES);
            pattern(offset, 11, buf.as_mut_slice());
            IoRequest::write(offset, buf, i as u64)
        })
        .collect();
    let mut tags: Vec<u64> = run_to_completion(dev, writes)
        .into_iter()
        .map(|c| {
            c.result.expect("write");
            c.tag
        })
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, (0..64).collect::<Vec<_>>());

    let reads = offsets
        .iter()
        .enumerate()
        .map(|(i, &offset)| IoRequest::read(offset, alloc(pool, SECTOR_BYTES), i as u64))
        .collect();
    let mut want = vec![0u8; SECTOR_BYTES];
    let mut seen = 0;
    for c in run_to_completion(dev, reads) {
        c.result.expect("read");
        let offset = offsets[usize::try_from(c.tag).expect("tag")];
        assert_eq!(c.offset, offset, "completion offset matches its tag");
        pattern(offset, 11, &mut want);
        assert!(c.buf.expect("buffer").as_slice() == want.as_slice(), "read at {offset}");
        seen += 1;
    }
    assert_eq!(seen, 64);
}

fn malformed_requests_are_refused(dev: &mut dyn Device) {
    let size = dev.info().size_bytes;
    let cases = [
        IoRequest::read(512, AlignedBuf::zeroed(SECTOR_BYTES), 1),
        IoRequest::read(size - SECTOR_BYTES as u64, AlignedBuf::zeroed(2 * SECTOR_BYTES), 2),
        IoRequest::write(u64::MAX - 4095, AlignedBuf::zeroed(SECTOR_BYTES), 3),
        IoRequest { kind: IoKind::Write, offset: 0, buf: None, tag: 4 },
    ];
    for req in cases {
        let tag = req.tag;
        let refused = dev.push(req).expect_err("malformed request must be refused");
        let (back, error) = *refused;
        assert_eq!(back.tag, tag, "the request comes back");
        assert!(error.to_string().contains(&dev.info().name), "error names the device: {error}");
        assert_eq!(dev.in_flight(), 0);
    }
}

fn queue_bound_is_enforced(dev: &mut dyn Device) {
    let depth = dev.info().queue_depth_max as usize;
    for i in 0..depth {
        dev.push(IoRequest::read((i * SECTOR_BYTES) as u64, AlignedBuf::zeroed(SECTOR_BYTES), i as u64))
            .expect("within the bound");
    }
    let refused = dev.push(IoRequest::read(0, AlignedBuf::zeroed(SECTOR_BYTES), 9999)).expect_err("beyond the bound");
    assert!(refused.1.reason.contains("queue full"));
    let mut out = Vec::new();
    while dev.in_flight() > 0 {
        dev.submit_and_wait(dev.in_flight(), &mut out).expect("drain");
    }
    assert_eq!(out.len(), depth);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::fault::{FaultDevice, FaultPlan};
    use crate::device::sim::{SimConfig, SimMedia};

    #[test]
    fn sim_device_conforms() {
        let media = SimMedia::new("sim0", SimConfig::new(8 << 20, 1));
        run_all(&mut media.handle(32), None);
    }

    #[test]
    fn fault_wrapper_without_faults_conforms() {
        let media = SimMedia::new("sim1", SimConfig::new(8 << 20, 2));
        let mut dev = FaultDevice::new(Box::new(media.handle(16)), FaultPlan::new());
        run_all(&mut dev, None);
    }

    #[test]
    fn fault_wrapper_fails_what_the_plan_names() {
        let media = SimMedia::new("sim2", SimConfig::new(8 << 20, 3));
        let plan = FaultPlan::new();
        let mut dev = FaultDevice::new(Box::new(media.handle(16)), plan.clone());
        plan.fail_writes_after(1);
        plan.fail_reads_in(8192, 4096);
        let done = run_to_completion(
            &mut dev,
            vec![
                IoRequest::write(0, AlignedBuf::zeroed(4096), 1),
                IoRequest::write(4096, AlignedBuf::zeroed(4096), 2),
                IoRequest::read(8192, AlignedBuf::zeroed(8192), 3),
                IoRequest::read(16384, AlignedBuf::zeroed(4096), 4),
            ],
        );
        let mut outcome: Vec<(u64, bool)> = done.iter().map(|c| (c.tag, c.result.is_ok())).collect();
        outcome.sort_unstable();
        assert_eq!(outcome, vec![(1, true), (2, false), (3, false), (4, true)]);
        assert_eq!(plan.injected_total(), 2);
        let failed = done.iter().find(|c| c.tag == 2).expect("tag 2");
        let msg = failed.result.as_ref().expect_err("failed").to_string();
        assert!(msg.contains("sim2") && msg.contains("write") && msg.contains("4096"), "{msg}");
    }

    #[test]
    fn sim_crash_loses_or_tears_only_unflushed_writes() {
        let media = SimMedia::new("sim3", SimConfig::new(4 << 20, 4));
        let mut dev = media.handle(64);
        let mut flushed = AlignedBuf::zeroed(8 * SECTOR_BYTES);
        flushed.as_mut_slice().fill(0xAA);
        run_to_completion(&mut dev, vec![IoRequest::write(0, flushed, 1), IoRequest::flush(2)]);
        let writes = (0..40u64)
            .map(|i| {
                let mut b = AlignedBuf::zeroed(4 * SECTOR_BYTES);
                b.as_mut_slice().fill(0xBB);
                IoRequest::write((1 << 20) + i * 4 * SECTOR_BYTES as u64, b, i)
            })
            .collect();
        run_to_completion(&mut dev, writes);
        assert_eq!(media.unflushed_writes(), 40);
        let report = media.crash();
        assert_eq!(report.writes_kept + report.writes_lost + report.writes_torn, 40);
        assert!(report.writes_lost > 0 && report.writes_torn > 0 && report.writes_kept > 0, "{report:?}");
        assert!(media.read_now(0, 8 * SECTOR_BYTES).iter().all(|b| *b == 0xAA), "flushed data survives");
        // every unflushed sector is either the old (zero) or the new (0xBB) contents
        for sector in media.read_now(1 << 20, 160 * SECTOR_BYTES).chunks(SECTOR_BYTES) {
            assert!(sector.iter().all(|b| *b == 0) || sector.iter().all(|b| *b == 0xBB));
        }
    }
}
