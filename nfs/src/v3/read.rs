//! READ (procedure 6): bytes of a file, from the engine's cache buffers straight into the
//! reply ([`Writer::put_data`]: the payload is not copied). The count is clamped to rtmax.

use engine::meta::Kind;
use engine::ReadChunk;

use crate::v3::attrs::{put_post_op_attr, Fattr3};
use crate::v3::errors::{engine_fail, Fail};
use crate::v3::perm::may_read_data;
use crate::v3::types::{decode_fh, Nfsstat3, READ_BYTES_MAX};
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub file: &'a [u8],
    pub offset: u64,
    pub count: u32,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { file: decode_fh(r)?, offset: r.u64("offset")?, count: r.u32("count")? })
    }
}

pub struct Read;

struct Data {
    attr: Option<Fattr3>,
    count: u32,
    eof: bool,
    chunks: Vec<ReadChunk>,
}

impl Procedure for Read {
    const NAME: &'static str = "READ";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        put_result(
            w,
            read(ctx, &args).await,
            |w, d| {
                put_post_op_attr(w, d.attr.as_ref());
                w.put_u32(d.count);
                w.put_bool(d.eof);
                w.put_data(d.chunks);
            },
            |w, f| put_post_op_attr(w, f.attr.as_ref()),
        );
    }
}

async fn read(ctx: &Ctx<'_>, args: &Args<'_>) -> std::result::Result<Data, Fail> {
    let name = Read::NAME;
    let t = ctx.target(name, args.file)?;
    let attr = t.ns().attr(&t.rec);
    if t.rec.kind == Kind::Dir {
        return Err(Fail::with_attr(Nfsstat3::Isdir, Some(t.fattr_of(&attr))));
    }
    if !may_read_data(&ctx.creds(t.export), &attr) {
        return Err(Fail::with_attr(Nfsstat3::Acces, Some(t.fattr_of(&attr))));
    }
    let count = args.count.min(READ_BYTES_MAX);
    let engine = ctx.nfs.exports().engine();
    let reply = engine
        .read(&t.fh, args.offset, u64::from(count))
        .await
        .map_err(|e| engine_fail(name, &e, Some(t.fattr_of(&attr))))?;
    // The read may have learnt a new size or version of the object.
    let after = t.ns().resolve(name, &t.fh).ok().map(|rec| t.fattr_of(&t.ns().attr(&rec)));
    let n = reply.len();
    debug_assert!(n <= count as usize);
    Ok(Data { attr: after, count: u32::try_from(n).unwrap_or(count), eof: reply.eof, chunks: reply.chunks })
}
