//! WRITE (procedure 7): refused until the write path exists ([`refuse`]).

use crate::v3::attrs::put_wcc_data;
use crate::v3::refuse::refuse;
use crate::v3::types::{decode_fh, WRITE_BYTES_MAX};
use crate::v3::{Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer, XdrError};

/// stable_how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StableHow {
    Unstable,
    DataSync,
    FileSync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub file: &'a [u8],
    pub offset: u64,
    pub count: u32,
    pub stable: StableHow,
    pub data: &'a [u8],
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        let file = decode_fh(r)?;
        let offset = r.u64("offset")?;
        let count = r.u32("count")?;
        let at = r.position();
        let stable = match r.u32("stable_how")? {
            0 => StableHow::Unstable,
            1 => StableHow::DataSync,
            2 => StableHow::FileSync,
            _ => return Err(XdrError { what: "stable_how", at, why: "not a stable_how value" }),
        };
        let data = r.opaque("data", WRITE_BYTES_MAX)?;
        Ok(Args { file, offset, count, stable, data })
    }
}

pub struct Write;

impl Procedure for Write {
    const NAME: &'static str = "WRITE";
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
