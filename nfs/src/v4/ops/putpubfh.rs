//! PUTPUBFH (RFC 8881 section 18.20): the public file handle is the root handle (PUTROOTFH).

use super::putrootfh;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode(_r: &mut Reader<'_>) -> xdr::Result<()> {
    Ok(())
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    decode(r).map_err(|_| Status::BADXDR)?;
    cx.current = Some(putrootfh::root(cx)?);
    Ok(())
}
