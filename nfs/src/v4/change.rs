//! What every operation that changes something checks first, and the `change_info4` it answers.
//!
//! Order of checks (the same in every changing operation): the handle resolves (STALE, ACCESS
//! for a client outside the export's list), the export is writable (NFS4ERR_ROFS, before
//! anything else; the pseudo-filesystem above the exports is read-only too), then the caller's
//! permission from the mode bits after root squash (NFS4ERR_ACCESS):
//! - creating, removing or renaming an entry needs write and search (`wx`) on the directory;
//!   in a sticky directory (mode 01000) removing or renaming an entry also needs to own it or
//!   the directory;
//! - writing a file needs `w` on it, unless the caller writes through an open stateid with
//!   write access (permission was checked at OPEN, so a file created read-only stays writable
//!   through the open that created it, as on a local filesystem);
//! - root (unsquashed) passes every mode check.
//!
//! `change_info4`: the directory's `change` before and after; `atomic` when the change moved by
//! exactly one (only this operation changed the directory in between). Runs on the
//! connection's core.

use engine::meta::Kind;
use engine::{Attr, Namespace};

use super::fh::Fh;
use super::node::{self, ExportNode, Node};
use super::settable::{SetTime, Settable};
use super::status::from_engine;
use super::{Compound, Status};
use crate::rpc::Auth;
use crate::xdr::Writer;

/// The caller on an export, after root squash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (AUTH_SYS; none when squashed).
    pub gids: Vec<u32>,
}

impl Caller {
    pub fn of(cx: &Compound<'_>, n: &ExportNode<'_>) -> Caller {
        let (uid, gid) = cx.creds(n.export);
        let gids = match cx.auth {
            Auth::Sys(s) if s.uid == uid => s.gids.clone(),
            _ => Vec::new(),
        };
        Caller { uid, gid, gids }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.gids.contains(&gid)
    }

    /// The rwx bits the mode grants (root: everything but x on a file nobody may execute).
    pub fn bits(&self, attr: &Attr) -> u32 {
        if self.is_root() {
            let any_x = attr.mode & 0o111 != 0 || attr.kind == Kind::Dir;
            return 0o6 | u32::from(any_x);
        }
        let shift = if self.uid == attr.uid {
            6
        } else if self.in_group(attr.gid) {
            3
        } else {
            0
        };
        (attr.mode >> shift) & 7
    }

    /// Write and search permission on a directory: creating, removing, renaming entries.
    pub fn may_change_entries(&self, dir: &Attr) -> Result<(), Status> {
        if self.bits(dir) & 0o3 == 0o3 {
            Ok(())
        } else {
            Err(Status::ACCESS)
        }
    }

    /// The sticky-bit rule for removing or renaming `entry` out of `dir`.
    pub fn may_unlink(&self, dir: &Attr, entry: &Attr) -> Result<(), Status> {
        if dir.mode & 0o1000 == 0 || self.is_root() || self.uid == entry.uid || self.uid == dir.uid {
            Ok(())
        } else {
            Err(Status::ACCESS)
        }
    }

    /// Write permission on a file.
    pub fn may_write(&self, attr: &Attr) -> Result<(), Status> {
        if self.bits(attr) & 0o2 != 0 {
            Ok(())
        } else {
            Err(Status::ACCESS)
        }
    }
}

/// The engine's attributes for something the caller creates: owned by the caller unless the
/// attributes say otherwise, which only root may (or the caller naming itself, or a group of
/// its own): NFS4ERR_PERM otherwise.
pub fn creation_attrs(caller: &Caller, s: &Settable) -> Result<engine::SetAttrs, Status> {
    let mut set = s.engine();
    match set.uid {
        Some(uid) if uid != caller.uid && !caller.is_root() => return Err(Status::PERM),
        Some(_) => {}
        None => set.uid = Some(caller.uid),
    }
    match set.gid {
        Some(gid) if !caller.in_group(gid) && !caller.is_root() => return Err(Status::PERM),
        Some(_) => {}
        None => set.gid = Some(caller.gid),
    }
    Ok(set)
}

/// Whether the caller may change `attr`'s object as `s` says (SETATTR), apart from the size,
/// which needs write access and is checked with the stateid. POSIX rules: the mode and times
/// by the owner (any time, or "now" with write permission too); the owner by root only (or no
/// change); the group by root, or by the owner to one of its groups. NFS4ERR_PERM otherwise
/// (NFS4ERR_ACCESS for "now" without write permission).
pub fn may_set(caller: &Caller, attr: &Attr, s: &Settable) -> Result<(), Status> {
    if caller.is_root() {
        return Ok(());
    }
    let owner = caller.uid == attr.uid;
    if s.mode.is_some() && !owner {
        return Err(Status::PERM);
    }
    if s.uid.is_some_and(|uid| uid != attr.uid) {
        return Err(Status::PERM);
    }
    if s.gid.is_some_and(|gid| gid != attr.gid && !(owner && caller.in_group(gid))) {
        return Err(Status::PERM);
    }
    for t in [s.mtime, s.atime].into_iter().flatten() {
        match t {
            SetTime::Client(_) if !owner => return Err(Status::PERM),
            SetTime::Server if !owner => caller.may_write(attr)?,
            _ => {}
        }
    }
    Ok(())
}

/// A handle as something of a writable export: NFS4ERR_ROFS on a read-only export or in the
/// pseudo-filesystem.
pub fn writable<'a>(cx: &Compound<'a>, fh: Fh) -> Result<ExportNode<'a>, Status> {
    match node::resolve(cx, fh)? {
        Node::Pseudo(_) => Err(Status::ROFS),
        Node::Export(n) if !n.access.may_write() => Err(Status::ROFS),
        Node::Export(n) => Ok(n),
    }
}

/// The current handle as a directory of a writable export whose entries the caller may change.
pub fn writable_dir<'a>(cx: &Compound<'a>) -> Result<(ExportNode<'a>, Caller), Status> {
    let dir = writable(cx, cx.current()?)?;
    if dir.rec.kind != Kind::Dir {
        return Err(Status::NOTDIR);
    }
    let caller = Caller::of(cx, &dir);
    caller.may_change_entries(&dir.attr())?;
    Ok((dir, caller))
}

/// The `change` of inode `ino` now (0 if it is gone).
pub fn change_of(ns: &Namespace, ino: u64) -> u64 {
    ns.inode("change_info", ino).map(|r| ns.attr(&r).change).unwrap_or(0)
}

/// change_info4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeInfo {
    pub atomic: bool,
    pub before: u64,
    pub after: u64,
}

impl ChangeInfo {
    /// Nothing changed.
    pub fn unchanged(change: u64) -> ChangeInfo {
        ChangeInfo { atomic: true, before: change, after: change }
    }

    /// Before and after one change of ours (or none, for a no-op): atomic if nothing else
    /// moved it.
    pub fn around(before: u64, after: u64) -> ChangeInfo {
        ChangeInfo { atomic: after == before || after == before.wrapping_add(1), before, after }
    }

    pub fn encode(&self, w: &mut Writer) {
        w.put_bool(self.atomic);
        w.put_u64(self.before);
        w.put_u64(self.after);
    }
}

/// A name from a component4 for a changing operation (the same rules as LOOKUP's).
pub fn name(raw: &[u8]) -> Result<&str, Status> {
    super::ops::lookup::check_name(raw)
}

/// The entry `name` in `dir`, if there is one.
pub async fn entry<'a>(dir: &ExportNode<'a>, name: &str) -> Result<Option<ExportNode<'a>>, Status> {
    match dir.export.ns.lookup(dir.rec.ino, name).await {
        Ok(rec) => Ok(Some(dir.with_record(rec))),
        Err(engine::EngineError::NotFound { .. }) => Ok(None),
        Err(e) => Err(from_engine(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn attr(kind: Kind, mode: u32, uid: u32, gid: u32) -> Attr {
        Attr { ino: 20, kind, size: 0, mode, uid, gid, mtime: UNIX_EPOCH, change: 1, nlink: 1, etag: None }
    }

    fn caller(uid: u32, gid: u32, gids: &[u32]) -> Caller {
        Caller { uid, gid, gids: gids.to_vec() }
    }

    #[test]
    fn directory_and_file_permissions() {
        let dir = attr(Kind::Dir, 0o755, 1000, 100);
        assert_eq!(caller(1000, 1, &[]).may_change_entries(&dir), Ok(()));
        assert_eq!(caller(1001, 100, &[]).may_change_entries(&dir), Err(Status::ACCESS));
        assert_eq!(caller(0, 0, &[]).may_change_entries(&dir), Ok(()));
        let group_w = attr(Kind::Dir, 0o775, 1000, 100);
        assert_eq!(caller(1001, 5, &[100]).may_change_entries(&group_w), Ok(()));
        let no_x = attr(Kind::Dir, 0o622, 1000, 100);
        assert_eq!(caller(1001, 5, &[]).may_change_entries(&no_x), Err(Status::ACCESS));
        let file = attr(Kind::File, 0o644, 1000, 100);
        assert_eq!(caller(1000, 1, &[]).may_write(&file), Ok(()));
        assert_eq!(caller(1001, 100, &[]).may_write(&file), Err(Status::ACCESS));
        assert_eq!(caller(0, 0, &[]).may_write(&attr(Kind::File, 0o444, 1, 1)), Ok(()));
    }

    #[test]
    fn sticky_directories() {
        let tmp = attr(Kind::Dir, 0o1777, 0, 0);
        let theirs = attr(Kind::File, 0o666, 2000, 2000);
        let mine = attr(Kind::File, 0o600, 1000, 100);
        assert_eq!(caller(1000, 100, &[]).may_unlink(&tmp, &theirs), Err(Status::ACCESS));
        assert_eq!(caller(1000, 100, &[]).may_unlink(&tmp, &mine), Ok(()));
        assert_eq!(caller(0, 0, &[]).may_unlink(&tmp, &theirs), Ok(()));
        let plain = attr(Kind::Dir, 0o777, 0, 0);
        assert_eq!(caller(1000, 100, &[]).may_unlink(&plain, &theirs), Ok(()));
    }

    #[test]
    fn who_may_set_what() {
        let file = attr(Kind::File, 0o664, 1000, 100);
        let owner = caller(1000, 100, &[200]);
        let group = caller(1001, 100, &[]);
        let set = |f: fn(&mut Settable)| {
            let mut s = Settable::default();
            f(&mut s);
            s
        };
        assert_eq!(may_set(&owner, &file, &set(|s| s.mode = Some(0o600))), Ok(()));
        assert_eq!(may_set(&group, &file, &set(|s| s.mode = Some(0o600))), Err(Status::PERM));
        assert_eq!(may_set(&owner, &file, &set(|s| s.uid = Some(1001))), Err(Status::PERM));
        assert_eq!(may_set(&owner, &file, &set(|s| s.uid = Some(1000))), Ok(()), "no change");
        assert_eq!(may_set(&owner, &file, &set(|s| s.gid = Some(200))), Ok(()));
        assert_eq!(may_set(&owner, &file, &set(|s| s.gid = Some(300))), Err(Status::PERM));
        assert_eq!(may_set(&group, &file, &set(|s| s.mtime = Some(SetTime::Server))), Ok(()), "w allows now");
        let client_time = SetTime::Client(UNIX_EPOCH);
        assert_eq!(
            may_set(&group, &file, &Settable { mtime: Some(client_time), ..Settable::default() }),
            Err(Status::PERM)
        );
        let other = caller(1002, 5, &[]);
        assert_eq!(may_set(&other, &file, &set(|s| s.atime = Some(SetTime::Server))), Err(Status::ACCESS));
        assert_eq!(may_set(&caller(0, 0, &[]), &file, &set(|s| s.uid = Some(7))), Ok(()));
    }

    #[test]
    fn created_objects_belong_to_the_caller() {
        let c = caller(1000, 100, &[200]);
        let set = creation_attrs(&c, &Settable::default()).unwrap();
        assert_eq!((set.uid, set.gid), (Some(1000), Some(100)));
        let mut s = Settable { gid: Some(200), ..Settable::default() };
        assert_eq!(creation_attrs(&c, &s).unwrap().gid, Some(200));
        s.uid = Some(5);
        assert_eq!(creation_attrs(&c, &s), Err(Status::PERM));
        assert_eq!(creation_attrs(&caller(0, 0, &[]), &s).unwrap().uid, Some(5));
    }

    #[test]
    fn change_info_atomic_only_for_one_step() {
        assert!(ChangeInfo::around(5, 6).atomic);
        assert!(!ChangeInfo::around(5, 8).atomic);
        assert_eq!(ChangeInfo::unchanged(3), ChangeInfo { atomic: true, before: 3, after: 3 });
    }
}
