//! FSINFO (procedure 19): transfer sizes (1 MiB reads and writes, well within the transport's
//! record limit; 64 KiB directory reads), nanosecond times the client may set (SETATTR to a
//! client time), symbolic links, no hard links (one object per file).

use crate::v3::attrs::{put_post_op_attr, Fattr3};
use crate::v3::errors::Fail;
use crate::v3::types::{
    decode_fh, DIR_BYTES_PREF, FSF3_CANSETTIME, FSF3_HOMOGENEOUS, FSF3_SYMLINK, READ_BYTES_MAX, WRITE_BYTES_MAX,
};
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

/// Largest file: what a signed 64-bit offset reaches (the object stores' own limits are lower
/// and differ; they answer for themselves).
pub const FILE_BYTES_MAX: u64 = i64::MAX as u64;
/// Preferred multiple of read and write sizes (the cache's sector).
pub const IO_MULTIPLE_BYTES: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub fsroot: &'a [u8],
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { fsroot: decode_fh(r)? })
    }
}

pub struct Fsinfo;

impl Procedure for Fsinfo {
    const NAME: &'static str = "FSINFO";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        let result = ctx.target(Self::NAME, args.fsroot).map(|t| t.fattr());
        put_result(w, result, put_ok, |w, f: Fail| put_post_op_attr(w, f.attr.as_ref()));
    }
}

fn put_ok(w: &mut Writer, attr: Fattr3) {
    put_post_op_attr(w, Some(&attr));
    let write_bytes_max = WRITE_BYTES_MAX as u32;
    w.put_u32(READ_BYTES_MAX); // rtmax
    w.put_u32(READ_BYTES_MAX); // rtpref
    w.put_u32(IO_MULTIPLE_BYTES); // rtmult
    w.put_u32(write_bytes_max); // wtmax
    w.put_u32(write_bytes_max); // wtpref
    w.put_u32(IO_MULTIPLE_BYTES); // wtmult
    w.put_u32(DIR_BYTES_PREF); // dtpref
    w.put_u64(FILE_BYTES_MAX);
    w.put_u32(0); // time_delta: 1 ns
    w.put_u32(1);
    w.put_u32(FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME);
}
