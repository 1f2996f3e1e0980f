//! REMOVE (procedure 12): a file or symbolic link (a directory is NFS3ERR_ISDIR: RMDIR removes
//! those). Needs write and search permission on the directory, and the sticky-bit rule
//! ([`crate::v3::dirop`], [`sticky_allows`]). The object's delete in the bucket is queued with
//! the change; its cached blocks go at once.

use crate::v3::dirop::{DirChange, NameUse};
use crate::v3::errors::{Wcc, WccFail};
use crate::v3::perm::sticky_allows;
use crate::v3::types::{DirOpArgs, Nfsstat3};
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub object: DirOpArgs<'a>,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { object: DirOpArgs::decode(r)? })
    }
}

pub struct Remove;

impl Procedure for Remove {
    const NAME: &'static str = "REMOVE";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        let result = match ctx.dir_to_change(Self::NAME, &args.object, NameUse::Find) {
            Ok(dc) => remove_entry(ctx, &dc, false).await,
            Err(f) => Err(f),
        };
        put_result(w, result, |w, wcc| wcc.encode(w), |w, f| f.wcc.encode(w));
    }
}

/// Removes the entry `dc` names: a directory (`dir`, RMDIR) or anything else (REMOVE).
pub async fn remove_entry(ctx: &Ctx<'_>, dc: &DirChange<'_, '_>, dir: bool) -> std::result::Result<Wcc, WccFail> {
    if let Some(entry) = dc.existing().await? {
        if !sticky_allows(&dc.creds, &dc.attr, &entry) {
            tracing::debug!(uid = dc.creds.uid, ino = entry.ino, "sticky directory: not the owner");
            return Err(dc.refuse(Nfsstat3::Acces));
        }
    }
    let engine = ctx.engine();
    engine.remove(&dc.dir.fh, dc.name, Some(dir)).await.map_err(|e| dc.fail(&e))?;
    Ok(dc.wcc())
}
