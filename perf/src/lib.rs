//! What the NFS benchmarks share (`nfs-bench`, `write-bench`): starting and stopping the
//! servers (nfs-ganesha with rpcbind, bucketfs), pinning them and the client to their cores, and
//! running fio under a time limit with retries of libnfs hangs and crashes.
//!
//! Runs on: the benchmark's main thread; everything here blocks (std only).

pub mod dataset;
pub mod fio;
pub mod peers;
pub mod plot;
pub mod s3count;
pub mod servers;
pub mod workloads;

/// The middle value (the upper one of an even count); `None` when empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_values() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(4.0));
        assert_eq!(median(Vec::new()), None);
    }
}
