//! RMDIR (procedure 13): an empty directory (not empty: NFS3ERR_NOTEMPTY; not a directory:
//! NFS3ERR_NOTDIR). Checks as REMOVE ([`crate::v3::remove::remove_entry`]).

use crate::v3::dirop::NameUse;
use crate::v3::remove::remove_entry;
use crate::v3::types::DirOpArgs;
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

pub struct Rmdir;

impl Procedure for Rmdir {
    const NAME: &'static str = "RMDIR";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        let result = match ctx.dir_to_change(Self::NAME, &args.object, NameUse::Find) {
            Ok(dc) => remove_entry(ctx, &dc, true).await,
            Err(f) => Err(f),
        };
        put_result(w, result, |w, wcc| wcc.encode(w), |w, f| f.wcc.encode(w));
    }
}
