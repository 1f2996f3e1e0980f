//! Preload: pull a prefix or a manifest of keys into the cache ahead of an epoch.
//!
//! The request and event types are the wire format of the admin endpoint's `POST /v1/preload`
//! (one JSON request, then one JSON event per line back).

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PreloadRequest {
    /// The bucket's name in the configuration.
    pub bucket: String,
    /// Keys under this prefix (ignored with a manifest, except as a prefix of its keys).
    pub prefix: String,
    /// Exact keys to load instead of listing the prefix (one per line in `--manifest FILE`).
    pub manifest: Option<Vec<String>>,
    /// Keep the loaded blocks in the cache until they are deleted.
    pub pin: bool,
    /// At most this many requests to the bucket per second (None: only the in-flight bound).
    pub requests_per_sec_max: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PreloadProgress {
    pub objects_done: u64,
    /// Objects found so far; final once `listing_done`.
    pub objects_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub listing_done: bool,
    pub elapsed_ms: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PreloadReport {
    /// Objects and bytes fetched from the bucket.
    pub fetched_objects: u64,
    pub fetched_bytes: u64,
    /// Objects whose every block was already cached.
    pub cached_objects: u64,
    pub cached_bytes: u64,
    /// Objects not loaded, with the reason (missing key, not a valid name, a failed request).
    pub skipped: Vec<PreloadSkip>,
    /// Requests sent to the bucket (GET, HEAD, LIST).
    pub requests: u64,
    pub elapsed_ms: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PreloadSkip {
    pub key: String,
    pub reason: String,
}

/// One line of the preload stream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PreloadEvent {
    Progress(PreloadProgress),
    Skipped(PreloadSkip),
    Done(PreloadReport),
    /// The preload as a whole failed (unknown bucket, listing failed); nothing more follows.
    Failed {
        error: String,
    },
}
