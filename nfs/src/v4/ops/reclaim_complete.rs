//! RECLAIM_COMPLETE (RFC 8881 section 18.51): the client reclaimed what it held before the
//! restart. Once every client of the previous boot that may reclaim has said so, the grace
//! period ends early. rca_one_fs (a single file system, after migration) is accepted and
//! changes nothing: there is no per-filesystem reclaim tracking.

use crate::v4::state::badxdr;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub one_fs: bool,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args { one_fs: r.bool("rca_one_fs")? })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        w.put_bool(self.one_fs);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    let client = cx.seq.as_ref().map(|s| s.client).ok_or(Status::OP_NOT_IN_SESSION)?;
    if args.one_fs {
        cx.current()?;
        return Ok(());
    }
    cx.state().reclaim_complete(client)
}
