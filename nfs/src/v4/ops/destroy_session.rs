//! DESTROY_SESSION (RFC 8881 section 18.37). The slot's reply cache goes with the session, so
//! a compound that destroys its own session is not cached.

use crate::v4::state::badxdr;
use crate::v4::state::session::{SessionId, SESSION_ID_BYTES};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub session: SessionId,
}

pub fn session_id(r: &mut Reader<'_>, what: &'static str) -> xdr::Result<SessionId> {
    let mut s = [0u8; SESSION_ID_BYTES];
    s.copy_from_slice(r.opaque_fixed(what, SESSION_ID_BYTES)?);
    Ok(s)
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args { session: session_id(r, "dsa_sessionid")? })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        w.put_opaque_fixed(&self.session);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    cx.state().destroy_session(&args.session)?;
    if cx.seq.as_ref().is_some_and(|s| s.session == args.session) {
        cx.seq = None;
    }
    Ok(())
}
