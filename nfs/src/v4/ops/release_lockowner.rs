//! RELEASE_LOCKOWNER (RFC 7530 section 16.37, NFSv4.0): no byte-range locks exist yet, so
//! there is nothing to release; the clientid is checked and the lease renewed.

use crate::v4::state::client::ClientId;
use crate::v4::state::{badxdr, wire, OPAQUE_BYTES_MAX};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub clientid: ClientId,
    pub owner: Vec<u8>,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args { clientid: wire::clientid(r)?, owner: r.opaque("lock owner", OPAQUE_BYTES_MAX)?.to_vec() })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        w.put_u64(self.clientid.0);
        w.put_opaque(&self.owner);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    cx.state().renew(args.clientid)
}
