//! CREATE (procedure 8): refused until the write path exists ([`refuse`]).

use crate::v3::attrs::put_wcc_data;
use crate::v3::refuse::refuse;
use crate::v3::types::{DirOpArgs, Sattr3};
use crate::v3::{Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer, XdrError};

/// createhow3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateHow<'a> {
    Unchecked(Sattr3),
    Guarded(Sattr3),
    /// The client's verifier (8 bytes).
    Exclusive(&'a [u8]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub where_: DirOpArgs<'a>,
    pub how: CreateHow<'a>,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        let where_ = DirOpArgs::decode(r)?;
        let at = r.position();
        let how = match r.u32("createmode3")? {
            0 => CreateHow::Unchecked(Sattr3::decode(r)?),
            1 => CreateHow::Guarded(Sattr3::decode(r)?),
            2 => CreateHow::Exclusive(r.opaque_fixed("createverf3", 8)?),
            _ => return Err(XdrError { what: "createmode3", at, why: "not a createmode3 value" }),
        };
        Ok(Args { where_, how })
    }
}

pub struct Create;

impl Procedure for Create {
    const NAME: &'static str = "CREATE";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        let r = refuse(ctx, Self::NAME, &[args.where_.dir]);
        w.put_u32(r.stat.code());
        put_wcc_data(w, r.attr(0));
    }
}
