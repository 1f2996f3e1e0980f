//! FREE_STATEID (RFC 8881 section 18.38): forgets a stateid that no longer holds anything (an
//! expired open); a live open answers NFS4ERR_LOCKS_HELD.

use crate::v4::state::{badxdr, Stateid};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub stateid: Stateid,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args { stateid: Stateid::decode(r)? })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        self.stateid.encode(w);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    let stateid = cx.resolve_stateid(args.stateid)?;
    let client = cx.seq.as_ref().map(|s| s.client).ok_or(Status::OP_NOT_IN_SESSION)?;
    cx.state().with_tables(|t, _, _| t.free_stateid(client, &stateid))
}
