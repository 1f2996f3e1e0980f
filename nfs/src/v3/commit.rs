//! COMMIT (procedure 21): refused until the write path exists ([`refuse`]).

use crate::v3::attrs::put_wcc_data;
use crate::v3::refuse::refuse;
use crate::v3::types::decode_fh;
use crate::v3::{Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub file: &'a [u8],
    pub offset: u64,
    pub count: u32,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { file: decode_fh(r)?, offset: r.u64("offset")?, count: r.u32("count")? })
    }
}

pub struct Commit;

impl Procedure for Commit {
    const NAME: &'static str = "COMMIT";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        let r = refuse(ctx, Self::NAME, &[args.file]);
        w.put_u32(r.stat.code());
        put_wcc_data(w, r.attr(0));
    }
}
