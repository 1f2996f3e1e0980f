//! SECINFO_NO_NAME (RFC 8881 section 18.45): the flavors for the current handle
//! (SECINFO_STYLE4_CURRENT_FH) or its parent (SECINFO_STYLE4_PARENT). Consumes the current
//! handle.

use super::{lookupp, secinfo};
use crate::v4::node;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub const SECINFO_STYLE4_CURRENT_FH: u32 = 0;
pub const SECINFO_STYLE4_PARENT: u32 = 1;

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<u32> {
    let at = r.position();
    match r.u32("secinfo_style4")? {
        s @ (SECINFO_STYLE4_CURRENT_FH | SECINFO_STYLE4_PARENT) => Ok(s),
        _ => Err(xdr::XdrError { what: "secinfo_style4", at, why: "not a secinfo style" }),
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let style = decode(r).map_err(|_| Status::BADXDR)?;
    let at = node::current(cx)?;
    if style == SECINFO_STYLE4_PARENT {
        lookupp::parent(cx, &at)?;
    }
    secinfo::encode_flavors(w);
    cx.current = None;
    Ok(())
}
