//! DESTROY_CLIENTID (RFC 8881 section 18.50): NFS4ERR_CLIENTID_BUSY while the client has
//! sessions or opens.

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
    cx.state().destroy_clientid(args.clientid)
}
