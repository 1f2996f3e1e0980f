//! READ_PLUS (RFC 7862 section 15.10): READ whose result is a list of segments; objects have
//! no holes, so it is one DATA segment (the bytes spliced in without a copy), or none at the
//! end of the file.

use super::read::{self, file_for_io};
use super::seek::NFS4_CONTENT_DATA;
use crate::v4::attrs::IO_BYTES_MAX;
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<read::Args> {
    read::decode(r)
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(|_| Status::BADXDR)?;
    let n = file_for_io(cx, args.stateid)?;
    let count = args.count.min(IO_BYTES_MAX);
    let engine = cx.server.exports.engine();
    let reply = engine.read(&n.fh, args.offset, u64::from(count)).await.map_err(|e| from_engine(&e))?;
    w.put_bool(reply.eof);
    if reply.is_empty() {
        w.put_u32(0);
    } else {
        w.put_u32(1);
        w.put_u32(NFS4_CONTENT_DATA);
        w.put_u64(args.offset);
        w.put_data(reply.chunks);
    }
    Ok(())
}
