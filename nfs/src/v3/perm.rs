//! Permission bits for a caller: which of read, write, execute the mode grants, as a local
//! filesystem would (owner, then group, then other; root reads and writes anything and executes
//! what anyone may execute). The caller's identity is taken after root squash.

use engine::meta::Kind;
use engine::Attr;

/// A caller after root squash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (AUTH_SYS; dropped when the caller was squashed).
    pub gids: Vec<u32>,
}

pub const MAY_READ: u32 = 4;
pub const MAY_WRITE: u32 = 2;
pub const MAY_EXECUTE: u32 = 1;

/// The rwx bits (`MAY_*`) the mode grants `creds` on an object with `attr`.
pub fn granted(creds: &Creds, attr: &Attr) -> u32 {
    let mode = attr.mode;
    if creds.uid == 0 {
        let any_x = mode & 0o111 != 0 || attr.kind == Kind::Dir;
        return MAY_READ | MAY_WRITE | if any_x { MAY_EXECUTE } else { 0 };
    }
    let triple = if creds.uid == attr.uid {
        mode >> 6
    } else if creds.gid == attr.gid || creds.gids.contains(&attr.gid) {
        mode >> 3
    } else {
        mode
    };
    triple & 0o7
}

/// Whether READ may return the file's bytes: read or execute permission (a client runs
/// programs by reading them), and the owner always (a file created without read permission is
/// still readable through the descriptor that created it).
pub fn may_read_data(creds: &Creds, attr: &Attr) -> bool {
    creds.uid == attr.uid || granted(creds, attr) & (MAY_READ | MAY_EXECUTE) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn attr(kind: Kind, mode: u32, uid: u32, gid: u32) -> Attr {
        Attr { ino: 20, kind, size: 0, mode, uid, gid, mtime: UNIX_EPOCH, change: 0, nlink: 1, etag: None }
    }

    fn creds(uid: u32, gid: u32, gids: &[u32]) -> Creds {
        Creds { uid, gid, gids: gids.to_vec() }
    }

    #[test]
    fn owner_group_other_root() {
        let a = attr(Kind::File, 0o640, 1000, 100);
        assert_eq!(granted(&creds(1000, 1, &[]), &a), MAY_READ | MAY_WRITE);
        assert_eq!(granted(&creds(2000, 100, &[]), &a), MAY_READ);
        assert_eq!(granted(&creds(2000, 1, &[7, 100]), &a), MAY_READ);
        assert_eq!(granted(&creds(2000, 1, &[7]), &a), 0);
        assert_eq!(granted(&creds(0, 0, &[]), &a), MAY_READ | MAY_WRITE);
        assert_eq!(granted(&creds(0, 0, &[]), &attr(Kind::File, 0o100, 1, 1)), MAY_READ | MAY_WRITE | MAY_EXECUTE);
        assert_eq!(granted(&creds(0, 0, &[]), &attr(Kind::Dir, 0o000, 1, 1)), MAY_READ | MAY_WRITE | MAY_EXECUTE);
        assert!(may_read_data(&creds(1000, 1, &[]), &attr(Kind::File, 0o000, 1000, 1)));
        assert!(!may_read_data(&creds(1001, 1, &[]), &attr(Kind::File, 0o600, 1000, 1)));
        assert!(may_read_data(&creds(1001, 2, &[]), &attr(Kind::File, 0o601, 1000, 1)));
        assert!(!may_read_data(&creds(1001, 1, &[]), &attr(Kind::File, 0o601, 1000, 1)));
    }
}
