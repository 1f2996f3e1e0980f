//! LOOKUP (procedure 3): a name in a directory. `.` and `..` are the directory and its parent
//! (the export root is its own parent). Needs search (execute) permission on the directory.

use engine::FileHandle;

use crate::v3::attrs::{put_post_op_attr, Fattr3};
use crate::v3::errors::{engine_fail, Fail};
use crate::v3::perm::{granted, MAY_EXECUTE};
use crate::v3::types::{DirOpArgs, Nfsstat3, NAME_BYTES_MAX};
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub what: DirOpArgs<'a>,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { what: DirOpArgs::decode(r)? })
    }
}

pub struct Lookup;

struct Found {
    fh: FileHandle,
    obj: Fattr3,
    dir: Fattr3,
}

impl Procedure for Lookup {
    const NAME: &'static str = "LOOKUP";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        put_result(
            w,
            lookup(ctx, &args).await,
            |w, f| {
                w.put_opaque(&f.fh.encode());
                put_post_op_attr(w, Some(&f.obj));
                put_post_op_attr(w, Some(&f.dir));
            },
            |w, f| put_post_op_attr(w, f.attr.as_ref()),
        );
    }
}

/// A file name as the engine takes it, or why it names nothing here.
pub fn check_name(name: &[u8]) -> std::result::Result<&str, Nfsstat3> {
    if name.len() > NAME_BYTES_MAX {
        return Err(Nfsstat3::Nametoolong);
    }
    // Bucket keys are UTF-8: any other name cannot exist.
    std::str::from_utf8(name).map_err(|_| Nfsstat3::Noent)
}

async fn lookup(ctx: &Ctx<'_>, args: &Args<'_>) -> std::result::Result<Found, Fail> {
    let dir = ctx.target(Lookup::NAME, args.what.dir)?;
    let dir_attr = dir.ns().attr(&dir.rec);
    let dir_fattr = dir.fattr_of(&dir_attr);
    let name = check_name(args.what.name).map_err(|s| Fail::with_attr(s, Some(dir_fattr.clone())))?;
    if dir.rec.kind != engine::meta::Kind::Dir {
        return Err(Fail::with_attr(Nfsstat3::Notdir, Some(dir_fattr)));
    }
    if granted(&ctx.creds(dir.export), &dir_attr) & MAY_EXECUTE == 0 {
        return Err(Fail::with_attr(Nfsstat3::Acces, Some(dir_fattr)));
    }
    let rec =
        dir.ns().lookup(dir.rec.ino, name).await.map_err(|e| engine_fail(Lookup::NAME, &e, Some(dir_fattr.clone())))?;
    let obj = dir.fattr_of(&dir.ns().attr(&rec));
    Ok(Found { fh: dir.ns().handle(&rec), obj, dir: dir_fattr })
}
