//! Permission bits for a caller: which of read, write, execute the mode grants, as a local
//! filesystem would (owner, then group, then other; root reads and writes anything and executes
//! what anyone may execute). The caller's identity is taken after root squash.
//!
//! Changes: writing a file's bytes (WRITE, COMMIT, a truncate) needs write permission, or being
//! its owner (knfsd's owner override: a file created read-only is still written through the
//! descriptor that created it); making, removing or renaming an entry needs write and search
//! permission on the directory, and in a sticky directory (mode 01000) owning the entry or the
//! directory; attribute changes follow chmod/chown/utimes ([`may_set`]).

use engine::meta::Kind;
use engine::Attr;

use crate::v3::types::{Nfsstat3, Sattr3, SetTime};

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

impl Creds {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether the caller is in group `gid` (primary or supplementary).
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.gids.contains(&gid)
    }
}

/// Whether the caller may change the bytes of the file (WRITE, COMMIT, truncate): write
/// permission, or its owner.
pub fn may_write_data(creds: &Creds, attr: &Attr) -> bool {
    creds.uid == attr.uid || granted(creds, attr) & MAY_WRITE != 0
}

/// Whether the caller may add or remove entries of directory `dir`: write and search.
pub fn may_change_entries(creds: &Creds, dir: &Attr) -> bool {
    granted(creds, dir) & (MAY_WRITE | MAY_EXECUTE) == MAY_WRITE | MAY_EXECUTE
}

/// The sticky-bit rule: in a directory with mode 01000 only root, the directory's owner and the
/// entry's owner may remove or rename the entry.
pub fn sticky_allows(creds: &Creds, dir: &Attr, entry: &Attr) -> bool {
    dir.mode & 0o1000 == 0 || creds.is_root() || creds.uid == dir.uid || creds.uid == entry.uid
}

/// Whether the caller may make the changes `set` asks of an object with `attr` (SETATTR, and
/// the attributes of an UNCHECKED CREATE of an existing file), as chmod, chown, truncate and
/// utimes would allow: NFS3ERR_PERM for what only the owner or root may do, NFS3ERR_ACCES for
/// what needs write permission. Changing nothing (a uid or gid set to what it is) is allowed.
pub fn may_set(creds: &Creds, attr: &Attr, set: &Sattr3) -> Result<(), Nfsstat3> {
    if creds.is_root() {
        return Ok(());
    }
    let owner = creds.uid == attr.uid;
    if set.uid.is_some_and(|uid| uid != attr.uid) {
        return Err(Nfsstat3::Perm);
    }
    if set.gid.is_some_and(|gid| gid != attr.gid && !(owner && creds.in_group(gid))) {
        return Err(Nfsstat3::Perm);
    }
    if set.mode.is_some() && !owner {
        return Err(Nfsstat3::Perm);
    }
    let client_time = |t: SetTime| matches!(t, SetTime::ClientTime(_));
    if (client_time(set.mtime) || client_time(set.atime)) && !owner {
        return Err(Nfsstat3::Perm);
    }
    let server_time = |t: SetTime| t == SetTime::ServerTime;
    if (server_time(set.mtime) || server_time(set.atime)) && !may_write_data(creds, attr) {
        return Err(Nfsstat3::Acces);
    }
    if set.size.is_some() && !may_write_data(creds, attr) {
        return Err(Nfsstat3::Acces);
    }
    Ok(())
}

/// The mode to store for a chmod by `creds`: the set-group-id bit of a file is dropped when
/// the caller is not root and not in the file's group (as chmod(2) does).
pub fn chmod_mode(creds: &Creds, attr: &Attr, mode: u32) -> u32 {
    if attr.kind == Kind::File && !creds.is_root() && !creds.in_group(attr.gid) {
        mode & !0o2000
    } else {
        mode
    }
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

    fn sattr() -> Sattr3 {
        Sattr3 { mode: None, uid: None, gid: None, size: None, atime: SetTime::DontChange, mtime: SetTime::DontChange }
    }

    #[test]
    fn changes() {
        let file = attr(Kind::File, 0o444, 1000, 100);
        let (owner, other, root) = (creds(1000, 100, &[7]), creds(2000, 100, &[]), creds(0, 0, &[]));
        // Owner override for data; others need the w bit.
        assert!(may_write_data(&owner, &file));
        assert!(!may_write_data(&other, &file));
        assert!(may_write_data(&other, &attr(Kind::File, 0o464, 1000, 100)));
        // Directories: w and x.
        assert!(!may_change_entries(&owner, &attr(Kind::Dir, 0o555, 1000, 100)));
        assert!(!may_change_entries(&owner, &attr(Kind::Dir, 0o655, 1000, 100)));
        assert!(may_change_entries(&owner, &attr(Kind::Dir, 0o755, 1000, 100)));
        assert!(may_change_entries(&root, &attr(Kind::Dir, 0o555, 1000, 100)));
        // Sticky.
        let tmp = attr(Kind::Dir, 0o1777, 0, 0);
        assert!(sticky_allows(&owner, &tmp, &file));
        assert!(!sticky_allows(&other, &tmp, &file));
        assert!(sticky_allows(&other, &attr(Kind::Dir, 0o777, 0, 0), &file));
        // chmod, chown, chgrp, utimes, truncate.
        let chmod = Sattr3 { mode: Some(0o600), ..sattr() };
        assert_eq!(may_set(&owner, &file, &chmod), Ok(()));
        assert_eq!(may_set(&other, &file, &chmod), Err(Nfsstat3::Perm));
        let chown = Sattr3 { uid: Some(2000), ..sattr() };
        assert_eq!(may_set(&owner, &file, &chown), Err(Nfsstat3::Perm));
        assert_eq!(may_set(&root, &file, &chown), Ok(()));
        assert_eq!(may_set(&owner, &file, &Sattr3 { uid: Some(1000), ..sattr() }), Ok(()));
        assert_eq!(may_set(&owner, &file, &Sattr3 { gid: Some(7), ..sattr() }), Ok(()));
        assert_eq!(may_set(&owner, &file, &Sattr3 { gid: Some(8), ..sattr() }), Err(Nfsstat3::Perm));
        let truncate = Sattr3 { size: Some(0), ..sattr() };
        assert_eq!(may_set(&other, &file, &truncate), Err(Nfsstat3::Acces));
        assert_eq!(may_set(&other, &attr(Kind::File, 0o666, 1000, 100), &truncate), Ok(()));
        let touch = Sattr3 { mtime: SetTime::ServerTime, ..sattr() };
        assert_eq!(may_set(&other, &file, &touch), Err(Nfsstat3::Acces));
        let set_time = Sattr3 { mtime: SetTime::ClientTime(Default::default()), ..sattr() };
        assert_eq!(may_set(&other, &attr(Kind::File, 0o666, 1000, 100), &set_time), Err(Nfsstat3::Perm));
        assert_eq!(chmod_mode(&other, &file, 0o2755), 0o2755);
        assert_eq!(chmod_mode(&creds(2000, 5, &[]), &file, 0o2755), 0o755);
    }
}
