//! SETCLIENTID (RFC 7530 section 16.33, NFSv4.0): a client record by id and verifier, and the
//! verifier SETCLIENTID_CONFIRM must present. The callback address is accepted and never used
//! (no delegations).

use crate::v4::state::{badxdr, wire, OPAQUE_BYTES_MAX};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

/// Longest r_netid / r_addr accepted.
pub const NETADDR_BYTES_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub verifier: [u8; 8],
    pub id: Vec<u8>,
    pub cb_program: u32,
    pub cb_netid: Vec<u8>,
    pub cb_addr: Vec<u8>,
    pub callback_ident: u32,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args {
        verifier: wire::verifier(r, "client verifier")?,
        id: r.opaque("client id", OPAQUE_BYTES_MAX)?.to_vec(),
        cb_program: r.u32("cb_program")?,
        cb_netid: r.opaque("r_netid", NETADDR_BYTES_MAX)?.to_vec(),
        cb_addr: r.opaque("r_addr", NETADDR_BYTES_MAX)?.to_vec(),
        callback_ident: r.u32("callback_ident")?,
    })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        w.put_opaque_fixed(&self.verifier);
        w.put_opaque(&self.id);
        w.put_u32(self.cb_program);
        w.put_opaque(&self.cb_netid);
        w.put_opaque(&self.cb_addr);
        w.put_u32(self.callback_ident);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    let (id, confirm) = cx.state().setclientid(&args.id, args.verifier)?;
    tracing::debug!(peer = %cx.conn.peer, clientid = id.0, "SETCLIENTID");
    w.put_u64(id.0);
    w.put_opaque_fixed(&confirm);
    Ok(())
}
