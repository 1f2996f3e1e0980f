//! NFSv4.1 sessions (RFC 8881 sections 2.10, 18.36, 18.37, 18.34, 18.46): channel attributes
//! negotiated by CREATE_SESSION, the fore channel's slot table, SEQUENCE's rules and the reply
//! cache.
//!
//! Reply cache: every slot keeps the whole COMPOUND4res of its last request if that fits in
//! ca_maxresponsesize_cached (memory per session at most slots × that), else it remembers that
//! the reply was not cached (a retransmission gets NFS4ERR_RETRY_UNCACHED_REP). A hash of the
//! request's operations after SEQUENCE tells a retransmission from a false retry.
//!
//! No back channel: CREATE_SESSION never sets CREATE_SESSION4_FLAG_CONN_BACK_CHAN, so the client
//! knows callbacks are not available (no delegations are ever granted), and SEQUENCE does not
//! report SEQ4_STATUS_CB_PATH_DOWN (the Linux client answers that flag with
//! BIND_CONN_TO_SESSION after every SEQUENCE).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::client::ClientId;
use super::{SeqSlot, State, Status, Tables};
use crate::v4::COMPOUND_OPS_MAX;
use crate::xdr::Writer;

pub const SESSION_ID_BYTES: usize = 16;
pub type SessionId = [u8; SESSION_ID_BYTES];

/// Fore channel slots at most.
pub const SLOTS_MAX: u32 = 64;
/// Largest request and reply a session accepts: a 1 MiB READ or WRITE with room to spare, up
/// to the transport's record limit.
pub const CHANNEL_BYTES_MAX: u32 = 4 << 20;
/// Largest reply kept in a slot's reply cache.
pub const CACHED_BYTES_MAX: u32 = 64 << 10;
/// Sessions per client at most.
pub const SESSIONS_PER_CLIENT_MAX: usize = 16;
/// Connections remembered per session.
pub const CONNS_PER_SESSION_MAX: usize = 64;
/// A retransmission of a request still running gets NFS4ERR_DELAY for this long; after that
/// (the first attempt's future was dropped, say) RETRY_UNCACHED_REP.
pub const IN_PROGRESS_MAX: Duration = Duration::from_secs(30);

/// channel_attrs4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelAttrs {
    pub headerpad_bytes: u32,
    pub request_bytes_max: u32,
    pub response_bytes_max: u32,
    pub response_cached_bytes_max: u32,
    pub operations_max: u32,
    pub requests_max: u32,
    pub rdma_ird: Option<u32>,
}

impl ChannelAttrs {
    /// What the server grants for the fore channel when the client asks for `asked`.
    pub fn negotiate_fore(asked: &ChannelAttrs) -> ChannelAttrs {
        ChannelAttrs {
            headerpad_bytes: 0,
            request_bytes_max: asked.request_bytes_max.min(CHANNEL_BYTES_MAX),
            response_bytes_max: asked.response_bytes_max.min(CHANNEL_BYTES_MAX),
            response_cached_bytes_max: asked.response_cached_bytes_max.min(CACHED_BYTES_MAX),
            operations_max: asked.operations_max.min(COMPOUND_OPS_MAX as u32),
            requests_max: asked.requests_max.clamp(1, SLOTS_MAX),
            rdma_ird: None,
        }
    }

    /// The back channel: accepted as asked (no callbacks are made), no RDMA.
    pub fn negotiate_back(asked: &ChannelAttrs) -> ChannelAttrs {
        ChannelAttrs { headerpad_bytes: 0, rdma_ird: None, ..*asked }
    }
}

/// What CREATE_SESSION answers (also kept for its replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSessionOk {
    pub session: SessionId,
    pub sequence: u32,
    pub flags: u32,
    pub fore: ChannelAttrs,
    pub back: ChannelAttrs,
}

/// A fore channel slot.
#[derive(Debug, Clone, Default)]
pub struct Slot {
    /// The last sequenceid seen (0: never used).
    pub seqid: u32,
    pub state: SlotState,
}

#[derive(Debug, Clone, Default)]
pub enum SlotState {
    #[default]
    Fresh,
    InUse {
        since: Instant,
        request_hash: u64,
    },
    Done {
        request_hash: u64,
        reply: Option<Bytes>,
    },
}

/// One session.
#[derive(Debug)]
pub struct Session {
    pub id: SessionId,
    pub client: ClientId,
    pub fore: ChannelAttrs,
    pub slots: Vec<Slot>,
    pub conns: HashSet<u64>,
}

impl Session {
    /// Keeps the reply of the request in `seq`'s slot (if that request is still the slot's).
    pub fn finish(&mut self, seq: &SeqSlot, reply: &Writer) {
        let cached_max = self.fore.response_cached_bytes_max as usize;
        let Some(slot) = self.slots.get_mut(seq.slot as usize) else { return };
        let SlotState::InUse { request_hash, .. } = slot.state else { return };
        if slot.seqid != seq.seqid {
            return;
        }
        let reply = (reply.len() <= cached_max).then(|| Bytes::from(reply.to_vec()));
        slot.state = SlotState::Done { request_hash, reply };
    }
}

/// SEQUENCE4args.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceReq {
    pub session: SessionId,
    pub seqid: u32,
    pub slot: u32,
    pub highest_slot: u32,
    pub cache_this: bool,
}

/// What SEQUENCE does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceOutcome {
    /// A new request: run the compound.
    Run { slot: SeqSlot, highest_slot: u32, target_highest_slot: u32, status_flags: u32 },
    /// A retransmission: send this reply.
    Replay(Bytes),
}

impl Tables {
    fn sequence(
        &mut self,
        req: &SequenceReq,
        request_hash: u64,
        now: Instant,
        lease: Duration,
    ) -> Result<SequenceOutcome, Status> {
        let client = self.sessions.get(&req.session).ok_or(Status::BADSESSION)?.client;
        // A session whose client's lease ran out is gone with it.
        match self.clients.get(&client) {
            Some(c) if !c.lapsed(now, lease) => {}
            Some(_) => {
                self.expire_client(client);
                return Err(Status::BADSESSION);
            }
            None => {
                self.sessions.remove(&req.session);
                return Err(Status::BADSESSION);
            }
        }
        let s = self.sessions.get_mut(&req.session).ok_or(Status::BADSESSION)?;
        let nslots = s.slots.len() as u32;
        let slot = s.slots.get_mut(req.slot as usize).ok_or(Status::BADSLOT)?;
        if req.seqid == slot.seqid.wrapping_add(1) {
            slot.seqid = req.seqid;
            slot.state = SlotState::InUse { since: now, request_hash };
        } else if req.seqid == slot.seqid {
            return match &slot.state {
                SlotState::Fresh => Err(Status::SEQ_MISORDERED),
                SlotState::InUse { since, .. } if now.saturating_duration_since(*since) < IN_PROGRESS_MAX => {
                    Err(Status::DELAY)
                }
                SlotState::InUse { .. } => Err(Status::RETRY_UNCACHED_REP),
                SlotState::Done { request_hash: h, .. } if *h != request_hash => Err(Status::SEQ_FALSE_RETRY),
                SlotState::Done { reply: Some(r), .. } => Ok(SequenceOutcome::Replay(r.clone())),
                SlotState::Done { reply: None, .. } => Err(Status::RETRY_UNCACHED_REP),
            };
        } else {
            return Err(Status::SEQ_MISORDERED);
        }
        if let Some(c) = self.clients.get_mut(&client) {
            c.renewed = now;
        }
        let slot =
            SeqSlot { session: req.session, slot: req.slot, seqid: req.seqid, cache_this: req.cache_this, client };
        let highest = nslots.saturating_sub(1);
        Ok(SequenceOutcome::Run { slot, highest_slot: highest, target_highest_slot: highest, status_flags: 0 })
    }
}

impl State {
    /// SEQUENCE: `request_hash` identifies the rest of the compound (false retry detection).
    pub fn sequence(&self, req: &SequenceReq, request_hash: u64) -> Result<SequenceOutcome, Status> {
        let (now, lease) = (self.now(), self.config.lease);
        let mut t = self.lock();
        t.expiry_sweep(now, lease);
        let out = t.sequence(req, request_hash, now, lease);
        drop(t);
        self.persist_if_dirty();
        out
    }

    /// CREATE_SESSION (RFC 8881 section 18.36.4): csa_sequence rules, replay, confirmation.
    pub fn create_session(
        &self,
        id: ClientId,
        sequence: u32,
        fore: &ChannelAttrs,
        back: &ChannelAttrs,
        conn: u64,
    ) -> Result<CreateSessionOk, Status> {
        let (now, lease) = (self.now(), self.config.lease);
        let mut t = self.lock();
        if !t.is_this_boot(id) {
            return Err(Status::STALE_CLIENTID);
        }
        let c = t.clients.get(&id).filter(|c| c.minor != 0).ok_or(Status::STALE_CLIENTID)?;
        if c.lapsed(now, lease) {
            t.expire_client(id);
            drop(t);
            self.persist_if_dirty();
            return Err(Status::STALE_CLIENTID);
        }
        if c.confirmed {
            if let Some((last, ok)) = &c.cs_last {
                if *last == sequence {
                    return Ok(ok.clone());
                }
            }
        }
        if sequence != c.cs_seq {
            return Err(Status::SEQ_MISORDERED);
        }
        if c.sessions.len() >= SESSIONS_PER_CLIENT_MAX {
            return Err(Status::NOSPC);
        }
        let fore = ChannelAttrs::negotiate_fore(fore);
        let back = ChannelAttrs::negotiate_back(back);
        let mut session: SessionId = rand::random();
        while t.sessions.contains_key(&session) {
            session = rand::random();
        }
        let ok = CreateSessionOk { session, sequence, flags: 0, fore, back };
        let slots = vec![Slot::default(); fore.requests_max as usize];
        let conns = HashSet::from([conn]);
        t.sessions.insert(session, Session { id: session, client: id, fore, slots, conns });
        if !t.clients.get(&id).is_some_and(|c| c.confirmed) {
            t.confirm_client(id, now);
        }
        if let Some(c) = t.clients.get_mut(&id) {
            c.sessions.push(session);
            c.cs_last = Some((sequence, ok.clone()));
            c.cs_seq = sequence.wrapping_add(1);
            c.renewed = now;
        }
        tracing::debug!(clientid = id.0, slots = fore.requests_max, "NFSv4.1 session created");
        drop(t);
        self.persist_if_dirty();
        Ok(ok)
    }

    /// DESTROY_SESSION.
    pub fn destroy_session(&self, session: &SessionId) -> Result<(), Status> {
        let mut t = self.lock();
        let s = t.sessions.remove(session).ok_or(Status::BADSESSION)?;
        if let Some(c) = t.clients.get_mut(&s.client) {
            c.sessions.retain(|x| x != session);
        }
        Ok(())
    }

    /// BIND_CONN_TO_SESSION: remembers the connection (fore channel only).
    pub fn bind_conn(&self, session: &SessionId, conn: u64) -> Result<(), Status> {
        let (now, lease) = (self.now(), self.config.lease);
        let mut t = self.lock();
        let client = t.sessions.get(session).ok_or(Status::BADSESSION)?.client;
        if t.live_client(client, now, lease).is_err() {
            drop(t);
            self.persist_if_dirty();
            return Err(Status::BADSESSION);
        }
        let s = t.sessions.get_mut(session).ok_or(Status::BADSESSION)?;
        if s.conns.len() < CONNS_PER_SESSION_MAX {
            s.conns.insert(conn);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fore_channel_is_bounded() {
        let asked = ChannelAttrs {
            headerpad_bytes: 64,
            request_bytes_max: u32::MAX,
            response_bytes_max: 1_049_620,
            response_cached_bytes_max: u32::MAX,
            operations_max: 1000,
            requests_max: 0,
            rdma_ird: Some(4),
        };
        let got = ChannelAttrs::negotiate_fore(&asked);
        assert_eq!(got.request_bytes_max, CHANNEL_BYTES_MAX);
        assert_eq!(got.response_bytes_max, 1_049_620);
        assert_eq!(got.response_cached_bytes_max, CACHED_BYTES_MAX);
        assert_eq!(got.operations_max, COMPOUND_OPS_MAX as u32);
        assert_eq!((got.requests_max, got.headerpad_bytes, got.rdma_ird), (1, 0, None));
        let many = ChannelAttrs { requests_max: 1000, ..asked };
        assert_eq!(ChannelAttrs::negotiate_fore(&many).requests_max, SLOTS_MAX);
    }
}
