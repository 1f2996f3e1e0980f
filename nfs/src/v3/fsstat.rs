//! FSSTAT (procedure 18): space and file counts. A bucket has no size limit, so totals and
//! free figures are a fixed large value (1 PiB of space, 2^40 files). What a client may write
//! now is bounded by the cache, though: data not yet uploaded must fit in the cache's room for
//! unsaved data (each shard's `unsaved_limit_bytes`), so the bytes available (`abytes`, df's
//! "Avail") are that room less what is dirty or pinned now. On a read-only export nothing is
//! available.

use crate::v3::attrs::{put_post_op_attr, Fattr3};
use crate::v3::errors::Fail;
use crate::v3::types::decode_fh;
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

/// Reported total and free bytes.
pub const SPACE_BYTES: u64 = 1 << 50;
/// Reported total and free file slots.
pub const FILES: u64 = 1 << 40;

/// Bytes that may still be written before uploads must make room: per shard, the room for
/// unsaved data less what is unsaved now (the whole space when the cache cannot say).
pub fn writable_bytes(engine: &engine::Engine) -> u64 {
    match engine.store().stats() {
        Ok(shards) => shards
            .iter()
            .map(|s| s.unsaved_limit_bytes.saturating_sub(s.dirty_bytes + s.pinned_bytes))
            .sum::<u64>()
            .min(SPACE_BYTES),
        Err(e) => {
            tracing::debug!(error = %e, "FSSTAT: no cache figures");
            SPACE_BYTES
        }
    }
}

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
        let result = ctx.target(Self::NAME, args.fsroot).map(|t| {
            let avail = if t.access.may_write() { writable_bytes(ctx.engine()) } else { 0 };
            (t.fattr(), avail)
        });
        put_result(w, result, put_ok, |w, f: Fail| put_post_op_attr(w, f.attr.as_ref()));
    }
}

fn put_ok(w: &mut Writer, (attr, avail_bytes): (Fattr3, u64)) {
    put_post_op_attr(w, Some(&attr));
    let avail_files = if avail_bytes > 0 { FILES } else { 0 };
    w.put_u64(SPACE_BYTES); // tbytes
    w.put_u64(SPACE_BYTES); // fbytes
    w.put_u64(avail_bytes); // abytes
    w.put_u64(FILES); // tfiles
    w.put_u64(FILES); // ffiles
    w.put_u64(avail_files); // afiles
    w.put_u32(0); // invarsec: may change at any time
}
