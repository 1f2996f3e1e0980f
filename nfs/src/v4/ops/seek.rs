//! SEEK (RFC 7862 section 15.11). Objects have no holes: data is everywhere below the size,
//! and the only hole is the virtual one at the end of the file.

use super::read::file_for_io;
use crate::v4::state::Stateid;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer, XdrError};

/// data_content4.
pub const NFS4_CONTENT_DATA: u32 = 0;
pub const NFS4_CONTENT_HOLE: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub stateid: Stateid,
    pub offset: u64,
    pub what: u32,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    let stateid = Stateid::decode(r)?;
    let offset = r.u64("seek offset")?;
    let at = r.position();
    let what = r.u32("data_content4")?;
    if what != NFS4_CONTENT_DATA && what != NFS4_CONTENT_HOLE {
        return Err(XdrError { what: "data_content4", at, why: "neither DATA nor HOLE" });
    }
    Ok(Args { stateid, offset, what })
}

/// (sr_eof, sr_offset) for a file of `size` bytes, or NFS4ERR_NXIO at or past its end.
pub fn seek(size: u64, offset: u64, what: u32) -> Result<(bool, u64), Status> {
    if offset >= size {
        return Err(Status::NXIO);
    }
    Ok(if what == NFS4_CONTENT_DATA { (false, offset) } else { (true, size) })
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(|_| Status::BADXDR)?;
    let n = file_for_io(cx, args.stateid)?;
    let size = n.fresh_attr().await?.size;
    let (eof, offset) = seek(size, args.offset, args.what)?;
    w.put_bool(eof);
    w.put_u64(offset);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_and_hole() {
        assert_eq!(seek(100, 0, NFS4_CONTENT_DATA), Ok((false, 0)));
        assert_eq!(seek(100, 99, NFS4_CONTENT_DATA), Ok((false, 99)));
        assert_eq!(seek(100, 100, NFS4_CONTENT_DATA), Err(Status::NXIO));
        assert_eq!(seek(100, 5, NFS4_CONTENT_HOLE), Ok((true, 100)));
        assert_eq!(seek(100, 100, NFS4_CONTENT_HOLE), Err(Status::NXIO));
        assert_eq!(seek(0, 0, NFS4_CONTENT_HOLE), Err(Status::NXIO));
    }
}
