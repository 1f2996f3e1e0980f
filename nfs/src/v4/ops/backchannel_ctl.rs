//! BACKCHANNEL_CTL (RFC 8881 section 18.33): accepted; no callbacks are made.

use crate::v4::state::badxdr;
use crate::v4::state::wire::{self, CbSec};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub cb_program: u32,
    pub sec_parms: Vec<CbSec>,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args { cb_program: r.u32("bca_cb_program")?, sec_parms: wire::cb_sec_parms(r)? })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        w.put_u32(self.cb_program);
        wire::put_cb_sec_parms(w, &self.sec_parms);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    tracing::debug!(peer = %cx.conn.peer, cb_program = args.cb_program, "BACKCHANNEL_CTL accepted (no callbacks)");
    Ok(())
}
