//! What every procedure that changes a directory's entries (CREATE, MKDIR, SYMLINK, MKNOD,
//! REMOVE, RMDIR, RENAME) checks first, in this order: the handle (as [`Ctx::target`]), a
//! read-only export (NFS3ERR_ROFS), a directory (NFS3ERR_NOTDIR), the name (longer than
//! NAME_MAX: NFS3ERR_NAMETOOLONG; not UTF-8: nothing in a bucket can have it), and write and
//! search permission on the directory (NFS3ERR_ACCES). The directory's attributes are captured
//! here, before the change, for the reply's wcc_data.
//!
//! A new entry belongs to its creator (after root squash) unless the attributes say otherwise,
//! which only root may (or the creator naming itself or one of its groups); its group is the
//! directory's when the directory has the set-group-id bit, and a new directory inherits that
//! bit, as on a local filesystem.

use engine::meta::Kind;
use engine::{Attr, EngineError, SetAttrs};

use crate::v3::attrs::Fattr3;
use crate::v3::errors::{engine_fail, Wcc, WccFail};
use crate::v3::lookup::check_name;
use crate::v3::perm::{may_change_entries, Creds};
use crate::v3::setattr::set_attrs;
use crate::v3::types::{DirOpArgs, Nfsstat3, Sattr3};
use crate::v3::{Ctx, Target};

/// A directory about to change, and the name the call names in it.
pub struct DirChange<'t, 'n> {
    pub dir: Target<'t>,
    /// The directory's attributes before the change.
    pub attr: Attr,
    pub before: Fattr3,
    pub name: &'n str,
    pub creds: Creds,
    proc_: &'static str,
}

/// Whether the name is one to make (a name that is not UTF-8 cannot be made: NFS3ERR_INVAL) or
/// one to find (it cannot exist: NFS3ERR_NOENT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameUse {
    Make,
    Find,
}

impl<'t> Ctx<'t> {
    /// The checks of the module docs; failures carry the directory's attributes.
    pub fn dir_to_change<'n>(
        &self,
        proc_: &'static str,
        args: &DirOpArgs<'n>,
        name_use: NameUse,
    ) -> Result<DirChange<'t, 'n>, WccFail> {
        let dir = self.target_to_change(proc_, args.dir)?;
        let attr = dir.attr();
        let before = dir.fattr_of(&attr);
        let refuse = |stat| WccFail::new(stat, None, Some(before.clone()));
        if attr.kind != Kind::Dir {
            return Err(refuse(Nfsstat3::Notdir));
        }
        let name = match check_name(args.name) {
            Ok(name) => name,
            Err(Nfsstat3::Noent) if name_use == NameUse::Make => return Err(refuse(Nfsstat3::Inval)),
            Err(stat) => return Err(refuse(stat)),
        };
        let creds = self.creds(dir.export);
        if !may_change_entries(&creds, &attr) {
            tracing::debug!(proc_, uid = creds.uid, dir = attr.ino, "no write and search permission on the directory");
            return Err(refuse(Nfsstat3::Acces));
        }
        Ok(DirChange { dir, attr, before, name, creds, proc_ })
    }
}

impl DirChange<'_, '_> {
    /// The directory's wcc_data now (after the change, or after a failed attempt).
    pub fn wcc(&self) -> Wcc {
        Wcc { before: Some(self.before.clone()), after: self.dir.fattr_now(self.proc_) }
    }

    /// A failure found before anything changed.
    pub fn refuse(&self, stat: Nfsstat3) -> WccFail {
        WccFail::new(stat, None, Some(self.before.clone()))
    }

    /// An engine failure of the change (mapped and logged).
    pub fn fail(&self, e: &EngineError) -> WccFail {
        let f = engine_fail(self.proc_, e, None);
        WccFail { stat: f.stat, wcc: Box::new(self.wcc()) }
    }

    /// The attributes of a new entry of `kind` from the client's sattr3 (see the module docs).
    pub fn new_attrs(&self, kind: Kind, sattr: &Sattr3) -> Result<SetAttrs, WccFail> {
        let creds = &self.creds;
        if !creds.is_root() {
            let other_uid = sattr.uid.is_some_and(|uid| uid != creds.uid);
            let other_gid = sattr.gid.is_some_and(|gid| !creds.in_group(gid));
            if other_uid || other_gid {
                return Err(self.refuse(Nfsstat3::Perm));
            }
        }
        let setgid_dir = self.attr.mode & 0o2000 != 0;
        let mut set = set_attrs(sattr);
        set.uid = Some(sattr.uid.unwrap_or(creds.uid));
        set.gid = Some(sattr.gid.unwrap_or(if setgid_dir { self.attr.gid } else { creds.gid }));
        if kind == Kind::Dir && setgid_dir {
            set.mode = set.mode.map(|m| m | 0o2000);
        }
        Ok(set)
    }

    /// The entry the name names now, if any (for checks on the entry before the change).
    pub async fn existing(&self) -> Result<Option<Attr>, WccFail> {
        match self.dir.ns().lookup(self.dir.rec.ino, self.name).await {
            Ok(rec) => Ok(Some(self.dir.ns().attr(&rec))),
            Err(EngineError::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.fail(&e)),
        }
    }
}
