//! DELEGPURGE (RFC 8881 section 18.5): only for servers that support CLAIM_DELEGATE_PREV,
//! which this one does not: NFS4ERR_NOTSUPP.

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
    decode(r).map_err(badxdr)?;
    let _ = cx;
    Err(Status::NOTSUPP)
}
