//! CLOSE (RFC 8881 section 18.2): releases an open stateid and its share reservation. 4.0:
//! open-owner seqid rules, answers the stateid with seqid + 1; 4.1: the invalid special stateid.
//! Then tells the engine the open is gone (`Engine::closed`: a file changed here is published
//! soon after its last close); a retransmitted CLOSE does not tell it twice.

use engine::FileHandle;

use crate::v4::ops::open::{owner_of, seqid_begin, seqid_end, Begin};
use crate::v4::state::{badxdr, export_handle, Stateid};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub seqid: u32,
    pub stateid: Stateid,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args { seqid: r.u32("close seqid")?, stateid: Stateid::decode(r)? })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        w.put_u32(self.seqid);
        self.stateid.encode(w);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    let stateid = cx.resolve_stateid(args.stateid)?;
    let file = export_handle(&cx.current()?).ok_or(Status::BAD_STATEID)?;
    let minor = cx.minor;
    if minor >= 1 {
        let next = cx.state().with_tables(|t, now, lease| t.close(minor, &stateid, &file, now, lease))?;
        cx.current_stateid = Some(next);
        next.encode(w);
        closed(cx, &file).await;
        return Ok(());
    }
    let key = owner_of(cx, &stateid)?;
    if let Begin::Replayed(out) = seqid_begin(cx, &key, args.seqid, false, w)? {
        return out;
    }
    let mut res = Writer::new();
    let out =
        cx.state().with_tables(|t, now, lease| t.close(0, &stateid, &file, now, lease)).map(|s| s.encode(&mut res));
    seqid_end(cx, &key, args.seqid, &out, &res, None);
    if out.is_ok() {
        closed(cx, &file).await;
    }
    out.map(|()| w.append(res))
}

/// Tells the engine an open of `file` is gone. Its failure (the export went away) fails nothing.
pub(crate) async fn closed(cx: &Compound<'_>, file: &FileHandle) {
    if let Err(e) = cx.server.exports.engine().closed(file).await {
        tracing::warn!(ino = file.ino, error = %e, "engine not told of a close");
    }
}
