//! VERIFY (RFC 8881 section 18.31): NFS4ERR_NOT_SAME unless the given attribute values are
//! the current handle's (compared as encoded, attrs.rs).

use crate::v4::attrs::{self, Fattr};
use crate::v4::node;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode<'a>(r: &mut Reader<'a>) -> xdr::Result<Fattr<'a>> {
    attrs::decode_fattr(r)
}

/// Whether the given attributes are the current handle's (VERIFY and NVERIFY).
pub async fn same(cx: &Compound<'_>, f: &Fattr<'_>) -> Result<bool, Status> {
    let at = node::current(cx)?;
    let obj = node::object(&at).await?;
    attrs::same(&obj, f, &node::attr_context(cx))
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    let f = decode(r).map_err(|_| Status::BADXDR)?;
    if same(cx, &f).await? {
        Ok(())
    } else {
        Err(Status::NOT_SAME)
    }
}
