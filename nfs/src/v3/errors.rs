//! The one place engine errors become nfsstat3, and the failure every procedure returns.

use engine::error::Action;
use engine::EngineError;

use crate::v3::attrs::Fattr3;
use crate::v3::types::Nfsstat3;

/// A failed procedure: its status and the attributes of the object it was about, when known
/// (the post_op_attr or wcc_data of the failure reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub stat: Nfsstat3,
    pub attr: Option<Fattr3>,
}

impl Fail {
    pub fn new(stat: Nfsstat3) -> Fail {
        Fail { stat, attr: None }
    }

    pub fn with_attr(stat: Nfsstat3, attr: Option<Fattr3>) -> Fail {
        Fail { stat, attr }
    }
}

impl From<Nfsstat3> for Fail {
    fn from(stat: Nfsstat3) -> Fail {
        Fail::new(stat)
    }
}

/// The nfsstat3 of an engine error. Retryable failures are NFS3ERR_JUKEBOX, so clients retry
/// after a pause instead of failing the application.
pub fn status_of(e: &EngineError) -> Nfsstat3 {
    match e {
        EngineError::NotFound { .. } => Nfsstat3::Noent,
        EngineError::NotADirectory { .. } => Nfsstat3::Notdir,
        EngineError::IsADirectory { .. } => Nfsstat3::Isdir,
        EngineError::Stale { .. } => Nfsstat3::Stale,
        EngineError::Invalid { .. } => Nfsstat3::Inval,
        EngineError::ShuttingDown { .. } => Nfsstat3::Jukebox,
        EngineError::Unknown { .. } => Nfsstat3::Serverfault,
        EngineError::Changed { .. } => Nfsstat3::Jukebox,
        EngineError::Metadata { .. } => Nfsstat3::Io,
        EngineError::Exists { .. } => Nfsstat3::Exist,
        EngineError::NotEmpty { .. } => Nfsstat3::Notempty,
        EngineError::NoSpace { .. } => Nfsstat3::Nospc,
        EngineError::NotSupported { .. } => Nfsstat3::Notsupp,
        EngineError::CrossExport { .. } => Nfsstat3::Xdev,
        // The object vanished from the bucket (or changed under a conditional request): the
        // handle no longer names what it named.
        EngineError::Bucket { .. } if e.action() == Action::FixInput => Nfsstat3::Stale,
        EngineError::Bucket { .. } | EngineError::Cache { .. } => match e.action() {
            Action::Retry => Nfsstat3::Jukebox,
            _ => Nfsstat3::Io,
        },
    }
}

/// Maps an engine error and logs it with its context: routine answers (no such name, stale
/// handle) at debug level, failures of the bucket, cache or metadata store as warnings.
pub fn engine_fail(proc_: &'static str, e: &EngineError, attr: Option<Fattr3>) -> Fail {
    let stat = status_of(e);
    match stat {
        Nfsstat3::Noent | Nfsstat3::Notdir | Nfsstat3::Isdir | Nfsstat3::Stale | Nfsstat3::Inval => {
            tracing::debug!(proc_, ?stat, error = %e, "NFSv3 request failed");
        }
        _ => tracing::warn!(proc_, ?stat, error = %e, "NFSv3 request failed"),
    }
    Fail::with_attr(stat, attr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        let nf = EngineError::NotFound { op: "lookup", path: "/d/x".into() };
        assert_eq!(status_of(&nf), Nfsstat3::Noent);
        assert_eq!(status_of(&EngineError::Stale { op: "read", detail: String::new() }), Nfsstat3::Stale);
        assert_eq!(status_of(&EngineError::ShuttingDown { op: "read" }), Nfsstat3::Jukebox);
        assert_eq!(status_of(&EngineError::Changed { op: "read", path: "/d/x".into() }), Nfsstat3::Jukebox);
        assert_eq!(status_of(&EngineError::Metadata { op: "read", detail: "disk".into() }), Nfsstat3::Io);
        let isdir = EngineError::IsADirectory { op: "read", path: "/d".into() };
        assert_eq!(engine_fail("READ", &isdir, None).stat, Nfsstat3::Isdir);
    }
}
