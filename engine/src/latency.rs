//! A latency recorder: an HDR histogram behind a mutex, summarised as [`LatencySummary`] with
//! fixed bucket bounds (for Prometheus) and quantiles (for people).

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::stats::LatencySummary;

/// Bucket upper bounds in microseconds: 50 µs to 60 s.
pub const BOUNDS_US: [u64; 18] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 60_000_000,
];

const HIGHEST_US: u64 = 3_600_000_000;

#[derive(Debug)]
pub struct LatencyRecorder {
    hist: Mutex<Histogram<u64>>,
}

impl Default for LatencyRecorder {
    fn default() -> LatencyRecorder {
        LatencyRecorder::new()
    }
}

impl LatencyRecorder {
    pub fn new() -> LatencyRecorder {
        // 1 µs to an hour at 3 significant digits: valid arguments, cannot fail.
        #[allow(clippy::unwrap_used)]
        let hist = Histogram::new_with_bounds(1, HIGHEST_US, 3).unwrap();
        LatencyRecorder { hist: Mutex::new(hist) }
    }

    pub fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).clamp(1, HIGHEST_US);
        let mut h = self.hist.lock().unwrap_or_else(|p| p.into_inner());
        h.saturating_record(us);
    }

    pub fn summary(&self) -> LatencySummary {
        let h = self.hist.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut counts = vec![0u64; BOUNDS_US.len() + 1];
        let mut sum_us = 0u64;
        for v in h.iter_recorded() {
            let value = h.highest_equivalent(v.value_iterated_to());
            let at = BOUNDS_US.iter().position(|&b| value <= b).unwrap_or(BOUNDS_US.len());
            if let Some(c) = counts.get_mut(at) {
                *c += v.count_at_value();
            }
            sum_us = sum_us.saturating_add(value.saturating_mul(v.count_at_value()));
        }
        LatencySummary {
            bounds_us: BOUNDS_US.to_vec(),
            counts,
            count: h.len(),
            sum_us,
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_every_sample_once_in_its_bucket() {
        let r = LatencyRecorder::new();
        for us in [10u64, 60, 60, 900, 2_000_000, 100_000_000] {
            r.record(Duration::from_micros(us));
        }
        let s = r.summary();
        assert_eq!(s.count, 6);
        assert_eq!(s.counts.iter().sum::<u64>(), 6);
        assert_eq!(s.counts[0], 1); // <= 50
        assert_eq!(s.counts[1], 2); // <= 100
        assert_eq!(s.counts[4], 1); // <= 1000
        assert_eq!(s.counts[14], 1); // <= 2.5 s
        assert_eq!(s.counts.last(), Some(&1)); // > 60 s
        assert!(s.p50_us >= 60 && s.p50_us < 1000);
    }
}
