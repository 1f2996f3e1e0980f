//! SAVEFH (RFC 8881 section 18.28): the current handle (and NFSv4.1 current stateid) saved.

use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode(_r: &mut Reader<'_>) -> xdr::Result<()> {
    Ok(())
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    decode(r).map_err(|_| Status::BADXDR)?;
    cx.saved = Some(cx.current()?);
    cx.saved_stateid = cx.current_stateid;
    Ok(())
}
