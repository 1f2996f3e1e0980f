//! PUTFH (RFC 8881 section 18.19). Bytes that are no handle of ours are NFS4ERR_BADHANDLE; a
//! handle of an unknown export, of a removed or replaced inode, or of a pseudo directory that
//! no longer exists is NFS4ERR_STALE. Whether this client may reach the export is checked by
//! the operations that use the handle (NFS4ERR_ACCESS).

use crate::v4::fh::{Fh, FH_BYTES_MAX};
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode<'a>(r: &mut Reader<'a>) -> xdr::Result<&'a [u8]> {
    r.opaque("nfs_fh4", FH_BYTES_MAX)
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    let bytes = decode(r).map_err(|_| Status::BADXDR)?;
    let fh = Fh::decode(bytes).ok_or(Status::BADHANDLE)?;
    match fh {
        Fh::Pseudo(id) => {
            cx.server.pseudo.node(id).ok_or(Status::STALE)?;
        }
        Fh::Export(h) => {
            let e = cx.server.exports.by_id(h.export).ok_or(Status::STALE)?;
            e.ns.resolve("nfs4 putfh", &h).map_err(|e| from_engine(&e))?;
        }
    }
    cx.current = Some(fh);
    Ok(())
}
