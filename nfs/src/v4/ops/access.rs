//! ACCESS (RFC 8881 section 18.1): which of the asked access bits the caller has, from the
//! mode bits against its credentials after root squash (node.rs). MODIFY, EXTEND and DELETE
//! only on exports this client may write; pseudo directories allow READ and LOOKUP.

use crate::v4::node::{self, ACCESS4_ALL};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<u32> {
    r.u32("access4")
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let want = decode(r).map_err(|_| Status::BADXDR)?;
    let at = node::current(cx)?;
    let supported = want & ACCESS4_ALL;
    w.put_u32(supported);
    w.put_u32(node::permitted(cx, &at, supported));
    Ok(())
}
