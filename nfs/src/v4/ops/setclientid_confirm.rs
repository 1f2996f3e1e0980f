//! SETCLIENTID_CONFIRM (RFC 7530 section 16.34, NFSv4.0): confirms the record SETCLIENTID
//! made (dropping an older incarnation of the same client with its state).

use crate::v4::state::client::ClientId;
use crate::v4::state::{badxdr, wire};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub clientid: ClientId,
    pub verifier: [u8; 8],
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args { clientid: wire::clientid(r)?, verifier: wire::verifier(r, "setclientid_confirm")? })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        w.put_u64(self.clientid.0);
        w.put_opaque_fixed(&self.verifier);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    cx.state().setclientid_confirm(args.clientid, args.verifier)
}
