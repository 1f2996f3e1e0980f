//! PATHCONF (procedure 20): one link per file, 255-byte names, long names refused rather than
//! truncated, case preserved and significant.

use crate::v3::attrs::put_post_op_attr;
use crate::v3::errors::Fail;
use crate::v3::types::{decode_fh, NAME_BYTES_MAX};
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub object: &'a [u8],
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { object: decode_fh(r)? })
    }
}

pub struct Pathconf;

impl Procedure for Pathconf {
    const NAME: &'static str = "PATHCONF";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        let result = ctx.target(Self::NAME, args.object).map(|t| t.fattr());
        put_result(
            w,
            result,
            |w, attr| {
                put_post_op_attr(w, Some(&attr));
                w.put_u32(1); // linkmax
                w.put_u32(NAME_BYTES_MAX as u32); // name_max
                w.put_bool(true); // no_trunc
                w.put_bool(true); // chown_restricted
                w.put_bool(false); // case_insensitive
                w.put_bool(true); // case_preserving
            },
            |w, f: Fail| put_post_op_attr(w, f.attr.as_ref()),
        );
    }
}
