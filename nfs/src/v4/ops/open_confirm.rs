//! OPEN_CONFIRM (RFC 7530 section 16.18, NFSv4.0 only): confirms a new open-owner's first
//! open; the stateid comes back with seqid + 1.

use crate::v4::ops::open::{owner_of, seqid_begin, seqid_end, Begin};
use crate::v4::state::{badxdr, export_handle, Stateid};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub stateid: Stateid,
    pub seqid: u32,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args { stateid: Stateid::decode(r)?, seqid: r.u32("open_confirm seqid")? })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        self.stateid.encode(w);
        w.put_u32(self.seqid);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    let file = export_handle(&cx.current()?).ok_or(Status::BAD_STATEID)?;
    let key = owner_of(cx, &args.stateid)?;
    if let Begin::Replayed(out) = seqid_begin(cx, &key, args.seqid, false, w)? {
        return out;
    }
    let mut res = Writer::new();
    let out = cx
        .state()
        .with_tables(|t, now, lease| t.open_confirm(&args.stateid, &file, now, lease))
        .map(|s| s.encode(&mut res));
    seqid_end(cx, &key, args.seqid, &out, &res, None);
    out.map(|()| w.append(res))
}
