//! SETATTR (procedure 2): size (truncate or extend), mode, owner, group and mtime (the
//! server's time or the client's); atime is accepted and ignored (objects have none). With a
//! guard, the change happens only if the object's ctime is the one the client names, else
//! NFS3ERR_NOT_SYNC. Permissions as chmod, chown, truncate and utimes ([`may_set`]). Durable on
//! return (the engine commits the record).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engine::meta::Kind;
use engine::SetAttrs;

use crate::v3::errors::{engine_fail, Wcc, WccFail};
use crate::v3::perm::{chmod_mode, may_set};
use crate::v3::types::{decode_fh, NfsTime, Nfsstat3, Sattr3, SetTime};
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub object: &'a [u8],
    pub new_attributes: Sattr3,
    /// Apply only if the object's ctime is this.
    pub guard: Option<NfsTime>,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args {
            object: decode_fh(r)?,
            new_attributes: Sattr3::decode(r)?,
            guard: r.optional("sattrguard3", NfsTime::decode)?,
        })
    }
}

pub struct Setattr;

impl Procedure for Setattr {
    const NAME: &'static str = "SETATTR";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        put_result(w, setattr(ctx, &args).await, |w, wcc| wcc.encode(w), |w, f| f.wcc.encode(w));
    }
}

/// An nfstime3 as a time.
pub fn system_time(t: NfsTime) -> SystemTime {
    UNIX_EPOCH + Duration::new(u64::from(t.seconds), t.nseconds)
}

/// The engine's attribute changes for a sattr3 (atime has no place to go).
pub fn set_attrs(sattr: &Sattr3) -> SetAttrs {
    SetAttrs {
        size: sattr.size,
        mode: sattr.mode.map(|m| m & 0o7777),
        uid: sattr.uid,
        gid: sattr.gid,
        mtime: match sattr.mtime {
            SetTime::DontChange => None,
            SetTime::ServerTime => Some(None),
            SetTime::ClientTime(t) => Some(Some(system_time(t))),
        },
    }
}

async fn setattr(ctx: &Ctx<'_>, args: &Args<'_>) -> std::result::Result<Wcc, WccFail> {
    let name = Setattr::NAME;
    let t = ctx.target_to_change(name, args.object)?;
    let attr = t.attr();
    let before = t.fattr_of(&attr);
    let refuse = |stat| WccFail::new(stat, Some(&before), Some(before.clone()));
    if let Some(guard) = args.guard {
        if (guard.seconds, guard.nseconds) != before.ctime() {
            tracing::debug!(ino = attr.ino, ?guard, ctime = ?before.ctime(), "SETATTR guard does not match");
            return Err(refuse(Nfsstat3::NotSync));
        }
    }
    let sattr = &args.new_attributes;
    if sattr.size.is_some() {
        match attr.kind {
            Kind::File => {}
            Kind::Dir => return Err(refuse(Nfsstat3::Isdir)),
            Kind::Symlink => return Err(refuse(Nfsstat3::Inval)),
        }
    }
    let creds = ctx.creds(t.export);
    if let Err(stat) = may_set(&creds, &attr, sattr) {
        tracing::debug!(uid = creds.uid, ino = attr.ino, ?stat, "SETATTR refused");
        return Err(refuse(stat));
    }
    let mut set = set_attrs(sattr);
    set.mode = set.mode.map(|m| chmod_mode(&creds, &attr, m));
    let engine = ctx.engine();
    let after = engine.setattr(&t.fh, &set).await.map_err(|e| {
        let f = engine_fail(name, &e, t.fattr_now(name));
        WccFail::new(f.stat, Some(&before), f.attr)
    })?;
    Ok(Wcc { before: Some(before), after: Some(t.fattr_of(&after)) })
}
