//! NVERIFY (RFC 8881 section 18.15): NFS4ERR_SAME if the given attribute values are the
//! current handle's.

use super::verify;
use crate::v4::attrs::Fattr;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode<'a>(r: &mut Reader<'a>) -> xdr::Result<Fattr<'a>> {
    verify::decode(r)
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    let f = decode(r).map_err(|_| Status::BADXDR)?;
    if verify::same(cx, &f).await? {
        Err(Status::SAME)
    } else {
        Ok(())
    }
}
