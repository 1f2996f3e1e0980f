//! GETATTR (RFC 8881 section 18.7): the served attributes of the request (attrs.rs), with the
//! engine's attributes revalidated as the export's listing TTL says.

use crate::v4::attrs::{self, Bitmap};
use crate::v4::node;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Bitmap> {
    Bitmap::decode(r).map(|(b, _)| b)
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let mask = decode(r).map_err(|_| Status::BADXDR)?;
    attrs::check_request(&mask)?;
    let at = node::current(cx)?;
    let obj = node::object(&at).await?;
    attrs::encode(&obj, &mask, &node::attr_context(cx), Status::OK, w);
    Ok(())
}
