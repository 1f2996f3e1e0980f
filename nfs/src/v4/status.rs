//! nfsstat4 (RFC 8881 section 15, RFC 7862 section 11) and the mapping of engine errors to it,
//! the one place where engine errors become NFSv4 statuses.

use engine::{Action, EngineError};

/// An nfsstat4 value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u32);

impl Status {
    pub const OK: Status = Status(0);
    pub const PERM: Status = Status(1);
    pub const NOENT: Status = Status(2);
    pub const IO: Status = Status(5);
    pub const NXIO: Status = Status(6);
    pub const ACCESS: Status = Status(13);
    pub const EXIST: Status = Status(17);
    pub const XDEV: Status = Status(18);
    pub const NOTDIR: Status = Status(20);
    pub const ISDIR: Status = Status(21);
    pub const INVAL: Status = Status(22);
    pub const FBIG: Status = Status(27);
    pub const NOSPC: Status = Status(28);
    pub const ROFS: Status = Status(30);
    pub const MLINK: Status = Status(31);
    pub const NAMETOOLONG: Status = Status(63);
    pub const NOTEMPTY: Status = Status(66);
    pub const STALE: Status = Status(70);
    pub const BADHANDLE: Status = Status(10001);
    pub const BAD_COOKIE: Status = Status(10003);
    pub const NOTSUPP: Status = Status(10004);
    pub const TOOSMALL: Status = Status(10005);
    pub const SERVERFAULT: Status = Status(10006);
    pub const BADTYPE: Status = Status(10007);
    pub const DELAY: Status = Status(10008);
    pub const SAME: Status = Status(10009);
    pub const DENIED: Status = Status(10010);
    pub const EXPIRED: Status = Status(10011);
    pub const LOCKED: Status = Status(10012);
    pub const GRACE: Status = Status(10013);
    pub const FHEXPIRED: Status = Status(10014);
    pub const SHARE_DENIED: Status = Status(10015);
    pub const WRONGSEC: Status = Status(10016);
    pub const CLID_INUSE: Status = Status(10017);
    pub const RESOURCE: Status = Status(10018);
    pub const MOVED: Status = Status(10019);
    pub const NOFILEHANDLE: Status = Status(10020);
    pub const MINOR_VERS_MISMATCH: Status = Status(10021);
    pub const STALE_CLIENTID: Status = Status(10022);
    pub const STALE_STATEID: Status = Status(10023);
    pub const OLD_STATEID: Status = Status(10024);
    pub const BAD_STATEID: Status = Status(10025);
    pub const BAD_SEQID: Status = Status(10026);
    pub const NOT_SAME: Status = Status(10027);
    pub const LOCK_RANGE: Status = Status(10028);
    pub const SYMLINK: Status = Status(10029);
    pub const RESTOREFH: Status = Status(10030);
    pub const ATTRNOTSUPP: Status = Status(10032);
    pub const NO_GRACE: Status = Status(10033);
    pub const RECLAIM_BAD: Status = Status(10034);
    pub const RECLAIM_CONFLICT: Status = Status(10035);
    pub const BADXDR: Status = Status(10036);
    pub const LOCKS_HELD: Status = Status(10037);
    pub const OPENMODE: Status = Status(10038);
    pub const BADOWNER: Status = Status(10039);
    pub const BADCHAR: Status = Status(10040);
    pub const BADNAME: Status = Status(10041);
    pub const BAD_RANGE: Status = Status(10042);
    pub const LOCK_NOTSUPP: Status = Status(10043);
    pub const OP_ILLEGAL: Status = Status(10044);
    pub const DEADLOCK: Status = Status(10045);
    pub const FILE_OPEN: Status = Status(10046);
    pub const ADMIN_REVOKED: Status = Status(10047);
    pub const CB_PATH_DOWN: Status = Status(10048);
    pub const BADSESSION: Status = Status(10052);
    pub const BADSLOT: Status = Status(10053);
    pub const COMPLETE_ALREADY: Status = Status(10054);
    pub const CONN_NOT_BOUND_TO_SESSION: Status = Status(10055);
    pub const SEQ_MISORDERED: Status = Status(10063);
    pub const SEQUENCE_POS: Status = Status(10064);
    pub const REQ_TOO_BIG: Status = Status(10065);
    pub const REP_TOO_BIG: Status = Status(10066);
    pub const REP_TOO_BIG_TO_CACHE: Status = Status(10067);
    pub const RETRY_UNCACHED_REP: Status = Status(10068);
    pub const TOO_MANY_OPS: Status = Status(10070);
    pub const OP_NOT_IN_SESSION: Status = Status(10071);
    pub const CLIENTID_BUSY: Status = Status(10074);
    pub const SEQ_FALSE_RETRY: Status = Status(10076);
    pub const BAD_HIGH_SLOT: Status = Status(10077);
    pub const DEADSESSION: Status = Status(10078);
    pub const NOT_ONLY_OP: Status = Status(10081);
    pub const WRONG_CRED: Status = Status(10082);
    pub const WRONG_TYPE: Status = Status(10083);
    pub const UNION_NOTSUPP: Status = Status(10090);
}

impl From<&EngineError> for Status {
    fn from(e: &EngineError) -> Status {
        match e {
            EngineError::NotFound { .. } => Status::NOENT,
            EngineError::NotADirectory { .. } => Status::NOTDIR,
            EngineError::IsADirectory { .. } => Status::ISDIR,
            EngineError::Stale { .. } => Status::STALE,
            EngineError::Invalid { .. } => Status::INVAL,
            EngineError::Unknown { .. } => Status::STALE,
            EngineError::ShuttingDown { .. } => Status::DELAY,
            EngineError::Exists { .. } => Status::EXIST,
            EngineError::NotEmpty { .. } => Status::NOTEMPTY,
            EngineError::NoSpace { .. } => Status::NOSPC,
            EngineError::NotSupported { .. } => Status::NOTSUPP,
            EngineError::CrossExport { .. } => Status::XDEV,
            other if other.action() == Action::Retry => Status::DELAY,
            _ => Status::IO,
        }
    }
}

/// Maps an engine error at the protocol edge, logging it with its context.
pub fn from_engine(e: &EngineError) -> Status {
    let status = Status::from(e);
    if status == Status::IO || status == Status::DELAY {
        tracing::warn!(error = %e, status = status.0, "NFSv4 operation failed");
    } else {
        tracing::debug!(error = %e, status = status.0, "NFSv4 operation refused");
    }
    status
}
