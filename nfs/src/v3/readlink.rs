//! READLINK (procedure 5): there are no symbolic links in a bucket, so every handle that
//! resolves is NFS3ERR_INVAL (the answer for a handle that is not a link).

use crate::v3::attrs::put_post_op_attr;
use crate::v3::errors::Fail;
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
        let result: std::result::Result<(), Fail> = match ctx.target(Self::NAME, args.symlink) {
            Ok(t) => Err(Fail::with_attr(Nfsstat3::Inval, Some(t.fattr()))),
            Err(f) => Err(f),
        };
        put_result(w, result, |_, ()| {}, |w, f| put_post_op_attr(w, f.attr.as_ref()));
    }
}
