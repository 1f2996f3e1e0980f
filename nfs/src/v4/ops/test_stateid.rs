//! TEST_STATEID (RFC 8881 section 18.48): the status of each stateid for this session's client
//! (NFS4_OK, BAD_STATEID, OLD_STATEID, EXPIRED).

use crate::v4::state::{badxdr, Stateid};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

/// Stateids tested in one call at most (the compound's size bounds it anyway).
pub const STATEIDS_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub stateids: Vec<Stateid>,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    let n = r.array_len("ts_stateids", STATEIDS_MAX, 16)?;
    Ok(Args { stateids: (0..n).map(|_| Stateid::decode(r)).collect::<xdr::Result<_>>()? })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        w.put_u32(self.stateids.len() as u32);
        for s in &self.stateids {
            s.encode(w);
        }
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    let client = cx.seq.as_ref().map(|s| s.client).ok_or(Status::OP_NOT_IN_SESSION)?;
    let codes: Vec<Status> = cx
        .state()
        .with_tables(|t, now, lease| args.stateids.iter().map(|s| t.test_stateid(client, s, now, lease)).collect());
    w.put_u32(codes.len() as u32);
    for c in codes {
        w.put_u32(c.0);
    }
    Ok(())
}
