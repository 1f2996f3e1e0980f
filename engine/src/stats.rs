//! What the engine counts, as one serializable snapshot: `bucketfs stats` prints it, the admin
//! endpoint serves it as JSON and renders it for Prometheus.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A latency distribution: cumulative-style bucket counts (for Prometheus histograms) and the
/// usual quantiles (for people).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct LatencySummary {
    /// Upper bounds of the buckets, in microseconds, ascending. `counts[i]` counts samples
    /// `<= bounds_us[i]` and above the previous bound (not cumulative); the last entry of
    /// `counts` (one longer than `bounds_us`) counts samples above every bound.
    pub bounds_us: Vec<u64>,
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum_us: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// Requests to one bucket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct BucketStats {
    /// The bucket's name in the configuration.
    pub name: String,
    /// Where it is (`s3://name at http://…`, `file:///…`).
    pub describe: String,
    /// Requests sent, by kind: `get`, `head`, `list`, `put`, `multipart_part`, `copy`, `delete`.
    pub requests: BTreeMap<String, u64>,
    /// Failed requests by kind of failure: `throttled`, `transient`, `not_found`, `precondition`,
    /// `denied`, `other`.
    pub errors: BTreeMap<String, u64>,
    /// Requests sent again after a retryable failure.
    pub retries: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub gets_in_flight: u64,
    /// From sending a GET to its last body byte.
    pub get_latency: LatencySummary,
}

/// The blockstore as the engine sees it (all shards summed).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CacheStats {
    pub capacity_bytes: u64,
    pub data_bytes: u64,
    pub dirty_bytes: u64,
    pub pinned_bytes: u64,
    pub extents: u64,
    pub segments_total: u64,
    pub segments_free: u64,
    pub extents_evicted: u64,
    pub checksum_errors: u64,
    /// Shards that stopped accepting writes, with the reason.
    pub poisoned: Vec<String>,
}

/// One snapshot of everything counted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct EngineStats {
    pub uptime_ms: u64,
    /// Reads served (whole requests).
    pub reads: u64,
    pub read_bytes: u64,
    /// Cache blocks found in the blockstore / not found, by reads (read-ahead not counted).
    pub block_hits: u64,
    pub block_misses: u64,
    /// Blocks a read found already being fetched by someone else (single-flight joins).
    pub block_joins: u64,
    /// Blocks fetched ahead of a sequential reader.
    pub read_ahead_blocks: u64,
    /// Blocks found stale after revalidation (object changed in the bucket).
    pub stale_objects: u64,
    /// From a read's arrival to its last byte.
    pub read_latency: LatencySummary,
    pub cache: CacheStats,
    pub buckets: Vec<BucketStats>,
    /// Keys skipped because they are not valid file names (reported once each).
    pub keys_skipped: u64,
    /// The write path and the publisher.
    #[serde(default)]
    pub writes: WriteStats,
}

/// The write path: what clients wrote and what the bucket still owes them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct WriteStats {
    pub writes: u64,
    pub write_bytes: u64,
    pub commits: u64,
    /// Partial blocks of unstable writes held in memory.
    pub buffered_bytes: u64,
    /// Files (and directories, symlinks) waiting to be published.
    pub pending_uploads: u64,
    /// Copies and deletes queued for the bucket.
    pub pending_bucket_ops: u64,
    pub uploads: u64,
    pub upload_bytes: u64,
    /// Publishes that failed (retried later).
    pub upload_failures: u64,
    /// Publishes abandoned because the file changed under them (sent again).
    pub uploads_restarted: u64,
    /// Objects changed in the bucket by someone else: local data kept, not uploaded.
    pub conflicts: u64,
    pub copies: u64,
    pub deletes: u64,
    pub markers: u64,
    /// Writes refused because the cache was full of unpublished data.
    pub no_space: u64,
    pub read_modify_writes: u64,
    /// The last publish or bucket-operation error.
    pub last_error: Option<String>,
}
