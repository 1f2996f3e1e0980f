//! SEQUENCE (RFC 8881 section 18.46): the session and slot of this compound, exactly-once
//! semantics through the slot's reply cache, and lease renewal. See
//! [`crate::v4::state::session`] for the rules.

use std::hash::{DefaultHasher, Hasher};

use crate::v4::ops::destroy_session::session_id;
use crate::v4::state::badxdr;
use crate::v4::state::session::{SequenceOutcome, SequenceReq};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub type Args = SequenceReq;

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(SequenceReq {
        session: session_id(r, "sa_sessionid")?,
        seqid: r.u32("sa_sequenceid")?,
        slot: r.u32("sa_slotid")?,
        highest_slot: r.u32("sa_highest_slotid")?,
        cache_this: r.bool("sa_cachethis")?,
    })
}

pub fn encode(a: &Args, w: &mut Writer) {
    w.put_opaque_fixed(&a.session);
    w.put_u32(a.seqid);
    w.put_u32(a.slot);
    w.put_u32(a.highest_slot);
    w.put_bool(a.cache_this);
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    // The rest of the compound identifies the request: a retransmission carries the same.
    let mut h = DefaultHasher::new();
    h.write(r.rest());
    match cx.state().sequence(&args, h.finish())? {
        SequenceOutcome::Replay(reply) => {
            let mut out = Writer::new();
            out.put_shared(reply);
            cx.replay = Some(out);
            Ok(())
        }
        SequenceOutcome::Run { slot, highest_slot, target_highest_slot, status_flags } => {
            w.put_opaque_fixed(&args.session);
            w.put_u32(args.seqid);
            w.put_u32(args.slot);
            w.put_u32(highest_slot);
            w.put_u32(target_highest_slot);
            w.put_u32(status_flags);
            cx.seq = Some(slot);
            Ok(())
        }
    }
}
