//! SECINFO (RFC 8881 section 18.29, RFC 7530 section 16.31): the flavors for a name in the
//! current directory — AUTH_SYS, then AUTH_NONE — after checking the name exists. NFSv4.1 and
//! later consume the current handle; NFSv4.0 keeps it.

use super::lookup;
use crate::rpc::{AUTH_NONE, AUTH_SYS};
use crate::v4::node;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode<'a>(r: &mut Reader<'a>) -> xdr::Result<&'a [u8]> {
    lookup::decode(r)
}

/// SECINFO4resok: the flavors served, preferred first.
pub fn encode_flavors(w: &mut Writer) {
    w.put_u32(2);
    w.put_u32(AUTH_SYS);
    w.put_u32(AUTH_NONE);
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let raw = decode(r).map_err(|_| Status::BADXDR)?;
    let dir = node::current(cx)?;
    if !dir.is_dir() {
        return Err(Status::NOTDIR);
    }
    let name = lookup::check_name(raw)?;
    lookup::lookup(cx, &dir, name).await?;
    encode_flavors(w);
    if cx.minor >= 1 {
        cx.current = None;
    }
    Ok(())
}
