//! DELEGRETURN (RFC 8881 section 18.6).
//! SKELETON: to be written by the state work; answers NFS4ERR_NOTSUPP until then.

use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<()> {
    Err(r.error("DELEGRETURN", "not decoded yet"))
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    decode(r).map_err(|_| Status::BADXDR)?;
    let _ = cx;
    Err(Status::NOTSUPP)
}
