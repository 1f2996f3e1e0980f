//! RENEW (RFC 7530 section 16.29, NFSv4.0): renews the client's lease (STALE_CLIENTID for an
//! unknown or old client, EXPIRED once the lease ran out).

use crate::v4::state::client::ClientId;
use crate::v4::state::{badxdr, wire};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub clientid: ClientId,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args { clientid: wire::clientid(r)? })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        w.put_u64(self.clientid.0);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    cx.state().renew(args.clientid)
}
