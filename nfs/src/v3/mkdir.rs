//! MKDIR (procedure 9): a directory, owned by its creator ([`crate::v3::dirop`]); an existing
//! name is NFS3ERR_EXIST. In the bucket it becomes a `dir/` marker object when published.

use engine::meta::Kind;

use crate::v3::create::Made;
use crate::v3::dirop::NameUse;
use crate::v3::errors::WccFail;
use crate::v3::types::{DirOpArgs, Sattr3};
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub where_: DirOpArgs<'a>,
    pub attributes: Sattr3,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { where_: DirOpArgs::decode(r)?, attributes: Sattr3::decode(r)? })
    }
}

pub struct Mkdir;

impl Procedure for Mkdir {
    const NAME: &'static str = "MKDIR";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        put_result(w, mkdir(ctx, &args).await, Made::encode, |w, f| f.wcc.encode(w));
    }
}

async fn mkdir(ctx: &Ctx<'_>, args: &Args<'_>) -> std::result::Result<Made, WccFail> {
    let dc = ctx.dir_to_change(Mkdir::NAME, &args.where_, NameUse::Make)?;
    let mut set = dc.new_attrs(Kind::Dir, &args.attributes)?;
    set.size = None; // a directory has no size to set
    let engine = ctx.engine();
    let created = engine.mkdir(&dc.dir.fh, dc.name, &set).await.map_err(|e| dc.fail(&e))?;
    Ok(Made { created, export_id: dc.dir.ns().export_id(), dir_wcc: dc.wcc() })
}
