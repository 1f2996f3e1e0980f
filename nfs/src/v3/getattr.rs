//! GETATTR (procedure 1): an object's attributes, revalidated against the bucket when older
//! than the export's listing TTL (the client's close-to-open check sees a changed object).

use crate::v3::attrs::Fattr3;
use crate::v3::errors::{engine_fail, Fail};
use crate::v3::types::decode_fh;
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

pub struct Getattr;

impl Procedure for Getattr {
    const NAME: &'static str = "GETATTR";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        put_result(w, getattr(ctx, &args).await, |w, a| a.encode(w), |_, _| {});
    }
}

async fn getattr(ctx: &Ctx<'_>, args: &Args<'_>) -> std::result::Result<Fattr3, Fail> {
    let t = ctx.target(Getattr::NAME, args.object)?;
    let attr = t.ns().getattr(t.rec.ino).await.map_err(|e| engine_fail(Getattr::NAME, &e, None))?;
    Ok(t.fattr_of(&attr))
}
