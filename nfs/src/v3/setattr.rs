//! SETATTR (procedure 2): refused until the write path exists ([`refuse`]).

use crate::v3::attrs::put_wcc_data;
use crate::v3::refuse::refuse;
use crate::v3::types::{decode_fh, NfsTime, Sattr3};
use crate::v3::{Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub object: &'a [u8],
    pub new_attributes: Sattr3,
    /// Apply only if the object's ctime is this.
    pub guard: Option<NfsTime>,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args {
            object: decode_fh(r)?,
            new_attributes: Sattr3::decode(r)?,
            guard: r.optional("sattrguard3", NfsTime::decode)?,
        })
    }
}

pub struct Setattr;

impl Procedure for Setattr {
    const NAME: &'static str = "SETATTR";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        let r = refuse(ctx, Self::NAME, &[args.object]);
        w.put_u32(r.stat.code());
        put_wcc_data(w, r.attr(0));
    }
}
