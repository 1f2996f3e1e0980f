//! The store's errors: each names the device, the operation, the offset or key, and says what the
//! caller should do about it ([`Action`]).

use crate::device::DeviceError;
use crate::format::Key;

/// What a caller should do with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Transient: try again later (queue full, cache momentarily full of unsaved data).
    Retry,
    /// The request itself is wrong (no such key, range beyond the extent, too large).
    FixInput,
    /// The medium or its contents are bad; for a read, treat as a miss and refetch; for writes,
    /// the shard is out of service until repaired.
    Fatal,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{key}: not in the store")]
    NotFound { key: Key },
    #[error("{key}: range {offset}+{len} is outside the extent of {data_len} bytes")]
    OutOfRange { key: Key, offset: u64, len: u64, data_len: u64 },
    #[error("extent of {len} bytes is not between 1 and {max} bytes")]
    BadLength { len: usize, max: usize },
    #[error("{device}: checksum mismatch reading {key} at device offset {offset} (sector {sector} of the extent)")]
    Checksum { device: String, key: Key, offset: u64, sector: u32 },
    #[error("{}{source}", MaybeKey(key))]
    Device { key: Option<Key>, source: DeviceError },
    #[error("{device}: shard {shard} is poisoned and refuses writes: {reason}")]
    Poisoned { device: String, shard: u32, reason: String },
    #[error("{device}: shard {shard}: cache full of unsaved data ({unsaved_bytes} of {limit_bytes} bytes of the device hold dirty or pinned extents); upload or unpin data first")]
    CacheFull { device: String, shard: u32, unsaved_bytes: u64, limit_bytes: u64 },
    #[error("{device}: shard {shard}: {what} would exceed its bound of {bound}; retry when in-flight work completes")]
    Busy { device: String, shard: u32, what: &'static str, bound: usize },
    #[error("{device}: {reason}")]
    Format { device: String, reason: String },
    #[error("store is shut down")]
    Closed,
}

impl StoreError {
    pub fn action(&self) -> Action {
        match self {
            StoreError::NotFound { .. } | StoreError::OutOfRange { .. } | StoreError::BadLength { .. } => {
                Action::FixInput
            }
            StoreError::CacheFull { .. } | StoreError::Busy { .. } => Action::Retry,
            StoreError::Checksum { .. }
            | StoreError::Device { .. }
            | StoreError::Poisoned { .. }
            | StoreError::Format { .. }
            | StoreError::Closed => Action::Fatal,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Formats `Option<Key>` as a message prefix ("object 1 block 2 version 0x3: ") or nothing.
pub(crate) struct MaybeKey<'a>(pub &'a Option<Key>);

impl std::fmt::Display for MaybeKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(k) => write!(f, "{k}: "),
            None => Ok(()),
        }
    }
}
