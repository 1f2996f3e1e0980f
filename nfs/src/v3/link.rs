//! LINK (procedure 15): refused until the write path exists ([`refuse`]); there are no hard
//! links in a bucket (FSINFO says so).

use crate::v3::attrs::{put_post_op_attr, put_wcc_data};
use crate::v3::refuse::refuse;
use crate::v3::types::{decode_fh, DirOpArgs};
use crate::v3::{Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub file: &'a [u8],
    pub link: DirOpArgs<'a>,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { file: decode_fh(r)?, link: DirOpArgs::decode(r)? })
    }
}

pub struct Link;

impl Procedure for Link {
    const NAME: &'static str = "LINK";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        let r = refuse(ctx, Self::NAME, &[args.file, args.link.dir]);
        w.put_u32(r.stat.code());
        put_post_op_attr(w, r.attr(0)); // file_attributes
        put_wcc_data(w, r.attr(1)); // linkdir_wcc
    }
}
