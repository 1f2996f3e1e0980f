//! FSSTAT (procedure 18): space and file counts. A bucket has no size limit, so totals are a
//! fixed large figure (1 PiB of space, 2^40 files) with everything free; on a read-only export
//! nothing is available to the caller. The local cache's size is not reported: it bounds what
//! is cached, not what can be stored.

use crate::v3::attrs::{put_post_op_attr, Fattr3};
use crate::v3::errors::Fail;
use crate::v3::types::decode_fh;
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

/// Reported total and free bytes.
pub const SPACE_BYTES: u64 = 1 << 50;
/// Reported total and free file slots.
pub const FILES: u64 = 1 << 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub fsroot: &'a [u8],
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { fsroot: decode_fh(r)? })
    }
}

pub struct Fsstat;

impl Procedure for Fsstat {
    const NAME: &'static str = "FSSTAT";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        let result = ctx.target(Self::NAME, args.fsroot).map(|t| (t.fattr(), t.access.may_write()));
        put_result(w, result, put_ok, |w, f: Fail| put_post_op_attr(w, f.attr.as_ref()));
    }
}

fn put_ok(w: &mut Writer, (attr, writable): (Fattr3, bool)) {
    put_post_op_attr(w, Some(&attr));
    let avail = |n: u64| if writable { n } else { 0 };
    w.put_u64(SPACE_BYTES); // tbytes
    w.put_u64(SPACE_BYTES); // fbytes
    w.put_u64(avail(SPACE_BYTES)); // abytes
    w.put_u64(FILES); // tfiles
    w.put_u64(FILES); // ffiles
    w.put_u64(avail(FILES)); // afiles
    w.put_u32(0); // invarsec: may change at any time
}
