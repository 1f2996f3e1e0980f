//! The one place engine errors become nfsstat3, and the failures procedures return ([`Fail`],
//! and [`WccFail`] for the procedures that change something).

use engine::error::Action;
use engine::EngineError;

use crate::v3::attrs::{put_wcc_data, Fattr3};
use crate::v3::types::Nfsstat3;
use crate::xdr::Writer;

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

/// The weak cache consistency data of one object: its attributes before a change and after.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wcc {
    pub before: Option<Fattr3>,
    pub after: Option<Fattr3>,
}

impl Wcc {
    /// Nothing changed: only the attributes as they are.
    pub fn unchanged(attr: Option<Fattr3>) -> Wcc {
        Wcc { before: None, after: attr }
    }

    /// wcc_data.
    pub fn encode(&self, w: &mut Writer) {
        put_wcc_data(w, self.before.as_ref(), self.after.as_ref());
    }
}

/// A failed change: its status and the wcc_data of the object it was about (a directory for
/// namespace changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WccFail {
    pub stat: Nfsstat3,
    /// Boxed: failures are the rare path, and keep `Result`s small.
    pub wcc: Box<Wcc>,
}

impl WccFail {
    pub fn new(stat: Nfsstat3, before: Option<&Fattr3>, after: Option<Fattr3>) -> WccFail {
        WccFail { stat, wcc: Box::new(Wcc { before: before.cloned(), after }) }
    }
}

impl From<Fail> for WccFail {
    /// A failure before anything changed: the attributes are the object's as found.
    fn from(f: Fail) -> WccFail {
        WccFail { stat: f.stat, wcc: Box::new(Wcc::unchanged(f.attr)) }
    }
}

impl From<Nfsstat3> for WccFail {
    fn from(stat: Nfsstat3) -> WccFail {
        WccFail { stat, wcc: Box::default() }
    }
}

/// What every failure carries: its status.
pub trait Failure {
    fn stat(&self) -> Nfsstat3;
}

impl Failure for Fail {
    fn stat(&self) -> Nfsstat3 {
        self.stat
    }
}

impl Failure for WccFail {
    fn stat(&self) -> Nfsstat3 {
        self.stat
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
/// handle, name exists, directory not empty, not supported) at debug level, failures of the
/// bucket, cache or metadata store (and a full cache) as warnings.
pub fn engine_fail(proc_: &'static str, e: &EngineError, attr: Option<Fattr3>) -> Fail {
    let stat = status_of(e);
    match stat {
        Nfsstat3::Noent
        | Nfsstat3::Notdir
        | Nfsstat3::Isdir
        | Nfsstat3::Stale
        | Nfsstat3::Inval
        | Nfsstat3::Exist
        | Nfsstat3::Notempty
        | Nfsstat3::Notsupp
        | Nfsstat3::Xdev => {
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
