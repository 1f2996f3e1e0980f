//! RENAME (procedure 14): moves an entry, replacing a file at the destination (or an empty
//! directory, for a directory), atomically in the namespace; the bucket follows (a copy and a
//! delete for an object it has, nothing for a file not yet uploaded). Both directories are
//! checked as every directory change ([`crate::v3::dirop`]), with the sticky-bit rule for the
//! entry moved and the entry replaced; moving a directory to another parent also needs write
//! permission on it (its `..` changes). Across exports: NFS3ERR_XDEV. The reply has the wcc_data
//! of both directories.

use engine::meta::Kind;

use crate::v3::dirop::{DirChange, NameUse};
use crate::v3::errors::{engine_fail, Failure, Wcc, WccFail};
use crate::v3::perm::{granted, sticky_allows, MAY_WRITE};
use crate::v3::types::{DirOpArgs, Nfsstat3};
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub from: DirOpArgs<'a>,
    pub to: DirOpArgs<'a>,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { from: DirOpArgs::decode(r)?, to: DirOpArgs::decode(r)? })
    }
}

pub struct Rename;

/// A failed rename: its status and both directories' wcc_data.
struct RenameFail {
    stat: Nfsstat3,
    from: Wcc,
    to: Wcc,
}

impl Failure for RenameFail {
    fn stat(&self) -> Nfsstat3 {
        self.stat
    }
}

impl Procedure for Rename {
    const NAME: &'static str = "RENAME";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        let encode = |w: &mut Writer, (from, to): (Wcc, Wcc)| {
            from.encode(w); // fromdir_wcc
            to.encode(w); // todir_wcc
        };
        put_result(w, rename(ctx, &args).await, encode, |w, f| encode(w, (f.from, f.to)));
    }
}

async fn rename(ctx: &Ctx<'_>, args: &Args<'_>) -> std::result::Result<(Wcc, Wcc), RenameFail> {
    let name = Rename::NAME;
    // Both directories are checked (and their attributes captured) before anything changes;
    // a failure of one still reports the other as found.
    let from = ctx.dir_to_change(name, &args.from, NameUse::Find);
    let to = ctx.dir_to_change(name, &args.to, NameUse::Make);
    let found = |dc: &std::result::Result<DirChange<'_, '_>, WccFail>| match dc {
        Ok(dc) => Wcc::unchanged(Some(dc.before.clone())),
        Err(f) => (*f.wcc).clone(),
    };
    let (from, to) = match (from, to) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(f), to) => return Err(RenameFail { stat: f.stat, from: *f.wcc, to: found(&to) }),
        (from, Err(f)) => return Err(RenameFail { stat: f.stat, from: found(&from), to: *f.wcc }),
    };
    let refuse = |stat| RenameFail {
        stat,
        from: Wcc::unchanged(Some(from.before.clone())),
        to: Wcc::unchanged(Some(to.before.clone())),
    };
    let fail_after = |stat| RenameFail { stat, from: from.wcc(), to: to.wcc() };
    if from.dir.ns().export_id() != to.dir.ns().export_id() {
        return Err(refuse(Nfsstat3::Xdev));
    }
    let moved = from.existing().await.map_err(|f| fail_after(f.stat))?;
    let replaced = to.existing().await.map_err(|f| fail_after(f.stat))?;
    if let Some(entry) = &moved {
        if !sticky_allows(&from.creds, &from.attr, entry) {
            return Err(refuse(Nfsstat3::Acces));
        }
        let new_parent = from.attr.ino != to.attr.ino;
        if entry.kind == Kind::Dir && new_parent && granted(&from.creds, entry) & MAY_WRITE == 0 {
            tracing::debug!(uid = from.creds.uid, ino = entry.ino, "moving a directory needs write permission on it");
            return Err(refuse(Nfsstat3::Acces));
        }
    }
    if let Some(entry) = &replaced {
        if moved.as_ref().is_none_or(|m| m.ino != entry.ino) && !sticky_allows(&to.creds, &to.attr, entry) {
            return Err(refuse(Nfsstat3::Acces));
        }
    }
    let engine = ctx.engine();
    engine
        .rename(&from.dir.fh, from.name, &to.dir.fh, to.name)
        .await
        .map_err(|e| fail_after(engine_fail(name, &e, None).stat))?;
    Ok((from.wcc(), to.wcc()))
}
