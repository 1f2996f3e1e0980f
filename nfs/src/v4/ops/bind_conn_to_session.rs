//! BIND_CONN_TO_SESSION (RFC 8881 section 18.34): after a reconnect or for nconnect. The
//! connection is remembered for the fore channel; there is no back channel, so a request for
//! the back channel only is refused (NFS4ERR_INVAL) and "fore or both" gets the fore channel.

use crate::v4::ops::destroy_session::session_id;
use crate::v4::state::badxdr;
use crate::v4::state::session::SessionId;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub const CDFC4_FORE: u32 = 0x1;
pub const CDFC4_BACK: u32 = 0x2;
pub const CDFC4_FORE_OR_BOTH: u32 = 0x3;
pub const CDFC4_BACK_OR_BOTH: u32 = 0x7;
pub const CDFS4_FORE: u32 = 0x1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub session: SessionId,
    pub dir: u32,
    pub use_rdma: bool,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args {
        session: session_id(r, "bctsa_sessid")?,
        dir: r.u32("bctsa_dir")?,
        use_rdma: r.bool("bctsa_use_conn_in_rdma_mode")?,
    })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        w.put_opaque_fixed(&self.session);
        w.put_u32(self.dir);
        w.put_bool(self.use_rdma);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    match args.dir {
        CDFC4_FORE | CDFC4_FORE_OR_BOTH | CDFC4_BACK_OR_BOTH => {}
        CDFC4_BACK => return Err(Status::INVAL),
        _ => return Err(Status::INVAL),
    }
    cx.state().bind_conn(&args.session, cx.conn.id)?;
    w.put_opaque_fixed(&args.session);
    w.put_u32(CDFS4_FORE);
    w.put_bool(false);
    Ok(())
}
