//! ALLOCATE (RFC 7862 section 15.1, NFSv4.2): makes `[offset, offset + length)` part of the file,
//! extending its size if needed (the engine reserves no space ahead: the cache takes blocks as
//! they are written, and a full cache fails those writes with NFS4ERR_NOSPC). Checks as WRITE
//! (write.rs `file_for_change`); a zero length or a range past the largest file size is
//! NFS4ERR_INVAL / NFS4ERR_FBIG. Durable on return.

use crate::v4::attrs::MAXFILESIZE_BYTES;
use crate::v4::ops::write::file_for_change;
use crate::v4::state::Stateid;
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

/// ALLOCATE4args and DEALLOCATE4args.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub stateid: Stateid,
    pub offset: u64,
    pub length: u64,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args { stateid: Stateid::decode(r)?, offset: r.u64("offset")?, length: r.u64("length")? })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        self.stateid.encode(w);
        w.put_u64(self.offset);
        w.put_u64(self.length);
    }

    /// The range's end: INVAL for an empty range, FBIG past the largest file.
    pub fn end(&self) -> Result<u64, Status> {
        if self.length == 0 {
            return Err(Status::INVAL);
        }
        let end = self.offset.checked_add(self.length).ok_or(Status::FBIG)?;
        if end > MAXFILESIZE_BYTES {
            return Err(Status::FBIG);
        }
        Ok(end)
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(|_| Status::BADXDR)?;
    let n = file_for_change(cx, args.stateid)?;
    args.end()?;
    let engine = cx.server.exports.engine();
    engine.allocate(&n.fh, args.offset, args.length).await.map_err(|e| from_engine(&e))?;
    tracing::debug!(peer = %cx.conn.peer, ino = n.fh.ino, offset = args.offset, length = args.length, "ALLOCATE");
    Ok(())
}
