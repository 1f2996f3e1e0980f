//! The engine's one protocol-neutral error type. Each error names the operation and the path or
//! key, and says what the caller should do ([`Action`]); the protocol edge (NFS, SMB) maps it to
//! nfsstat / NTSTATUS. No errno, nfsstat or NTSTATUS in here.

use blockstore::StoreError;

use crate::object::ObjectError;

pub use blockstore::Action;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// No such name in a directory, or no such object in the bucket.
    #[error("{op} {path}: no such file or directory")]
    NotFound { op: &'static str, path: String },
    #[error("{op} {path}: not a directory")]
    NotADirectory { op: &'static str, path: String },
    #[error("{op} {path}: is a directory")]
    IsADirectory { op: &'static str, path: String },
    /// A file handle that no longer names anything (removed, or from another store).
    #[error("{op}: stale file handle ({detail})")]
    Stale { op: &'static str, detail: String },
    /// The request is malformed (a bad handle encoding, a name that is not valid).
    #[error("{op} {path}: invalid argument: {detail}")]
    Invalid { op: &'static str, path: String, detail: String },
    /// The bucket failed the request after the retries the engine allows.
    #[error("{op} {path}: bucket {bucket}: {source}")]
    Bucket { op: &'static str, path: String, bucket: String, source: Box<ObjectError> },
    /// The object changed in the bucket while it was being read: re-read to get the new bytes.
    #[error("{op} {path}: the object changed in the bucket while being read")]
    Changed { op: &'static str, path: String },
    /// The cache device failed.
    #[error("{op} {path}: cache: {source}")]
    Cache { op: &'static str, path: String, source: Box<StoreError> },
    /// The durable metadata store failed.
    #[error("{op}: metadata store: {detail}")]
    Metadata { op: &'static str, detail: String },
    #[error("{op}: unknown {what} {name:?}")]
    Unknown { op: &'static str, what: &'static str, name: String },
    /// The name is taken (an exclusive or guarded create, a mkdir).
    #[error("{op} {path}: file exists")]
    Exists { op: &'static str, path: String },
    /// A directory that must be empty is not.
    #[error("{op} {path}: directory not empty")]
    NotEmpty { op: &'static str, path: String },
    /// No room: the cache is full of data the bucket does not have yet.
    #[error("{op} {path}: no space: {detail}")]
    NoSpace { op: &'static str, path: String, detail: String },
    /// The filesystem does not do this (hard links).
    #[error("{op} {path}: not supported: {detail}")]
    NotSupported { op: &'static str, path: String, detail: String },
    /// A rename between exports.
    #[error("{op} {path}: across exports")]
    CrossExport { op: &'static str, path: String },
    /// The engine is shutting down.
    #[error("{op}: engine is shutting down")]
    ShuttingDown { op: &'static str },
}

impl EngineError {
    pub fn action(&self) -> Action {
        match self {
            EngineError::NotFound { .. }
            | EngineError::NotADirectory { .. }
            | EngineError::IsADirectory { .. }
            | EngineError::Stale { .. }
            | EngineError::Invalid { .. }
            | EngineError::Unknown { .. }
            | EngineError::Exists { .. }
            | EngineError::NotEmpty { .. }
            | EngineError::NotSupported { .. }
            | EngineError::CrossExport { .. } => Action::FixInput,
            EngineError::NoSpace { .. } => Action::Retry,
            EngineError::Changed { .. } => Action::Retry,
            EngineError::Bucket { source, .. } => {
                if source.is_retryable() {
                    Action::Retry
                } else if source.is_not_found() || source.is_precondition() {
                    Action::FixInput
                } else {
                    Action::Fatal
                }
            }
            EngineError::Cache { source, .. } => source.action(),
            EngineError::Metadata { .. } | EngineError::ShuttingDown { .. } => Action::Fatal,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl From<redb::Error> for EngineError {
    fn from(e: redb::Error) -> EngineError {
        EngineError::Metadata { op: "metadata", detail: e.to_string() }
    }
}

/// Converts any redb error type into a metadata error naming the operation.
pub(crate) fn meta_err(op: &'static str) -> impl Fn(redb::Error) -> EngineError {
    move |e| EngineError::Metadata { op, detail: e.to_string() }
}
