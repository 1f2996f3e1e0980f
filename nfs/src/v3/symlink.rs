//! SYMLINK (procedure 10): a symbolic link, owned by its creator ([`crate::v3::dirop`]). The
//! target is kept as given (it is not resolved here: the client follows links); it must be
//! UTF-8, non-empty and without NUL (else NFS3ERR_INVAL). In the bucket it becomes an object
//! whose body is the target (as s3fs writes links).

use engine::meta::Kind;

use crate::v3::create::Made;
use crate::v3::dirop::NameUse;
use crate::v3::errors::WccFail;
use crate::v3::types::{DirOpArgs, Nfsstat3, Sattr3, PATH_BYTES_MAX};
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub where_: DirOpArgs<'a>,
    pub attributes: Sattr3,
    pub path: &'a [u8],
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args {
            where_: DirOpArgs::decode(r)?,
            attributes: Sattr3::decode(r)?,
            path: r.opaque("nfspath3", PATH_BYTES_MAX)?,
        })
    }
}

pub struct Symlink;

impl Procedure for Symlink {
    const NAME: &'static str = "SYMLINK";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        put_result(w, symlink(ctx, &args).await, Made::encode, |w, f| f.wcc.encode(w));
    }
}

async fn symlink(ctx: &Ctx<'_>, args: &Args<'_>) -> std::result::Result<Made, WccFail> {
    let dc = ctx.dir_to_change(Symlink::NAME, &args.where_, NameUse::Make)?;
    let Ok(target) = std::str::from_utf8(args.path) else {
        return Err(dc.refuse(Nfsstat3::Inval));
    };
    let mut set = dc.new_attrs(Kind::Symlink, &args.attributes)?;
    set.size = None;
    let engine = ctx.engine();
    let created = engine.symlink(&dc.dir.fh, dc.name, target, &set).await.map_err(|e| dc.fail(&e))?;
    Ok(Made { created, export_id: dc.dir.ns().export_id(), dir_wcc: dc.wcc() })
}
