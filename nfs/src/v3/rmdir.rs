//! RMDIR (procedure 13): refused until the write path exists ([`refuse`]).

use crate::v3::attrs::put_wcc_data;
use crate::v3::refuse::refuse;
use crate::v3::types::DirOpArgs;
use crate::v3::{Ctx, Procedure};
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
        let r = refuse(ctx, Self::NAME, &[args.object.dir]);
        w.put_u32(r.stat.code());
        put_wcc_data(w, r.attr(0));
    }
}
