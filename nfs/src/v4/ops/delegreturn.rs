//! DELEGRETURN (RFC 8881 section 18.6): no delegation is ever granted, so every stateid is
//! unknown: NFS4ERR_BAD_STATEID (NFS4ERR_STALE_STATEID in 4.0 for one from before a restart).

use crate::v4::state::{badxdr, OtherParts, Stateid};
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
    cx.current()?;
    let stale = !stateid.is_special() && OtherParts::decode(&stateid.other).epoch < cx.state().epoch();
    Err(if cx.minor == 0 && stale { Status::STALE_STATEID } else { Status::BAD_STATEID })
}
