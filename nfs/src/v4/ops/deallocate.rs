//! DEALLOCATE (RFC 7862 section 15.4, NFSv4.2): punches a hole — `[offset, offset + length)`
//! reads as zeros afterwards, the size does not change (a range past the end changes nothing
//! there). Checks as WRITE (write.rs `file_for_change`); arguments as ALLOCATE's. Durable on
//! return.

pub use crate::v4::ops::allocate::decode;
use crate::v4::ops::allocate::Args;
use crate::v4::ops::write::file_for_change;
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{Reader, Writer};

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    let args: Args = decode(r).map_err(|_| Status::BADXDR)?;
    let n = file_for_change(cx, args.stateid)?;
    args.end()?;
    let engine = cx.server.exports.engine();
    engine.deallocate(&n.fh, args.offset, args.length).await.map_err(|e| from_engine(&e))?;
    tracing::debug!(peer = %cx.conn.peer, ino = n.fh.ino, offset = args.offset, length = args.length, "DEALLOCATE");
    Ok(())
}
