//! RELEASE_LOCKOWNER (RFC 7530 section 16.37, NFSv4.0): the client is done with a lock-owner.
//! The clientid is checked and its lease renewed; a lock-owner that still holds locks (on any
//! file) answers NFS4ERR_LOCKS_HELD and stays; otherwise it is forgotten with its lock
//! stateids (an unknown lock-owner is fine).

use crate::v4::state::client::ClientId;
use crate::v4::state::lock::LockOwnerKey;
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
    cx.state().renew(args.clientid)?;
    let key = LockOwnerKey { client: args.clientid, owner: args.owner };
    cx.state().with_tables(|t, _, _| t.release_lockowner(&key))
}
