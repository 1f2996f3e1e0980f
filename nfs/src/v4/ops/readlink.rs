//! READLINK (RFC 8881 section 18.24): there are no symbolic links (yet), so the current handle
//! is never one: NFS4ERR_INVAL (RFC 8881: READLINK of a non-link).

use crate::v4::node;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode(_r: &mut Reader<'_>) -> xdr::Result<()> {
    Ok(())
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    decode(r).map_err(|_| Status::BADXDR)?;
    node::current(cx)?;
    Err(Status::INVAL)
}
