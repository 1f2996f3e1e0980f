//! RESTOREFH (RFC 8881 section 18.27): the saved handle (and stateid) back; none saved is
//! NFS4ERR_RESTOREFH.

use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode(_r: &mut Reader<'_>) -> xdr::Result<()> {
    Ok(())
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    decode(r).map_err(|_| Status::BADXDR)?;
    cx.current = Some(cx.saved.ok_or(Status::RESTOREFH)?);
    cx.current_stateid = cx.saved_stateid;
    Ok(())
}
