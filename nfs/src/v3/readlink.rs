//! READLINK (procedure 5): a symbolic link's target (made here, or an object another tool
//! wrote as a link). Anything else is NFS3ERR_INVAL. Allowed on read-only exports; no
//! permission is needed beyond reaching the export (as on a local filesystem).

use engine::meta::Kind;

use crate::v3::attrs::{put_post_op_attr, Fattr3};
use crate::v3::errors::{engine_fail, Fail};
use crate::v3::types::{decode_fh, Nfsstat3};
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub symlink: &'a [u8],
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { symlink: decode_fh(r)? })
    }
}

pub struct Readlink;

impl Procedure for Readlink {
    const NAME: &'static str = "READLINK";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        put_result(
            w,
            readlink(ctx, &args).await,
            |w, (attr, target): (Fattr3, String)| {
                put_post_op_attr(w, Some(&attr));
                w.put_string(&target);
            },
            |w, f| put_post_op_attr(w, f.attr.as_ref()),
        );
    }
}

async fn readlink(ctx: &Ctx<'_>, args: &Args<'_>) -> std::result::Result<(Fattr3, String), Fail> {
    let name = Readlink::NAME;
    let t = ctx.target(name, args.symlink)?;
    let attr = t.fattr();
    if t.rec.kind != Kind::Symlink {
        return Err(Fail::with_attr(Nfsstat3::Inval, Some(attr)));
    }
    let engine = ctx.engine();
    let target = engine.readlink(&t.fh).await.map_err(|e| engine_fail(name, &e, Some(attr.clone())))?;
    Ok((attr, target))
}
