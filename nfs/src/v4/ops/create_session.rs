//! CREATE_SESSION (RFC 8881 section 18.36): confirms the client record on its first use and
//! creates a session with the channel attributes the server grants (see
//! [`ChannelAttrs::negotiate_fore`]). csa_sequence is checked against the client's
//! CREATE_SESSION slot; a retransmission gets the same session back. No back channel: the
//! reply never sets CREATE_SESSION4_FLAG_CONN_BACK_CHAN (nor PERSIST: the reply cache lives in
//! memory).

use crate::v4::state::badxdr;
use crate::v4::state::client::ClientId;
use crate::v4::state::session::{ChannelAttrs, CreateSessionOk};
use crate::v4::state::wire::{self, CbSec};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub const CREATE_SESSION4_FLAG_PERSIST: u32 = 0x1;
pub const CREATE_SESSION4_FLAG_CONN_BACK_CHAN: u32 = 0x2;
pub const CREATE_SESSION4_FLAG_CONN_RDMA: u32 = 0x4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub clientid: ClientId,
    pub sequence: u32,
    pub flags: u32,
    pub fore: ChannelAttrs,
    pub back: ChannelAttrs,
    pub cb_program: u32,
    pub sec_parms: Vec<CbSec>,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args {
        clientid: wire::clientid(r)?,
        sequence: r.u32("csa_sequence")?,
        flags: r.u32("csa_flags")?,
        fore: wire::channel_attrs(r)?,
        back: wire::channel_attrs(r)?,
        cb_program: r.u32("csa_cb_program")?,
        sec_parms: wire::cb_sec_parms(r)?,
    })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        w.put_u64(self.clientid.0);
        w.put_u32(self.sequence);
        w.put_u32(self.flags);
        wire::put_channel_attrs(w, &self.fore);
        wire::put_channel_attrs(w, &self.back);
        w.put_u32(self.cb_program);
        wire::put_cb_sec_parms(w, &self.sec_parms);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    let known = CREATE_SESSION4_FLAG_PERSIST | CREATE_SESSION4_FLAG_CONN_BACK_CHAN | CREATE_SESSION4_FLAG_CONN_RDMA;
    if args.flags & !known != 0 {
        return Err(Status::INVAL);
    }
    let ok = cx.state().create_session(args.clientid, args.sequence, &args.fore, &args.back, cx.conn.id)?;
    encode_resok(w, &ok);
    Ok(())
}

/// CREATE_SESSION4resok.
pub fn encode_resok(w: &mut Writer, ok: &CreateSessionOk) {
    w.put_opaque_fixed(&ok.session);
    w.put_u32(ok.sequence);
    w.put_u32(ok.flags);
    wire::put_channel_attrs(w, &ok.fore);
    wire::put_channel_attrs(w, &ok.back);
}
