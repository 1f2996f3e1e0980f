//! ONC RPC v2 (RFC 5531) as a pure codec: record marking over TCP, the call header with
//! AUTH_NONE and AUTH_SYS credentials, and the reply header for every outcome.
//!
//! A call whose header cannot be read far enough to find its xid cannot be answered: the
//! connection is closed. Past the xid, every failure gets its reply (RPC_MISMATCH, AUTH_ERROR,
//! PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS).

use bytes::{Buf, Bytes, BytesMut};

use crate::xdr::{Reader, Writer, XdrError};

pub const RPC_VERSION: u32 = 2;
pub const MSG_CALL: u32 = 0;
pub const MSG_REPLY: u32 = 1;

pub const AUTH_NONE: u32 = 0;
pub const AUTH_SYS: u32 = 1;

/// Opaque auth bodies are at most 400 bytes (RFC 5531).
pub const AUTH_BODY_BYTES_MAX: usize = 400;
/// AUTH_SYS: machine name at most 255 bytes, at most 16 supplementary groups.
pub const MACHINE_NAME_BYTES_MAX: usize = 255;
pub const AUTH_SYS_GIDS_MAX: usize = 16;

/// The last-fragment bit of a record mark.
pub const LAST_FRAGMENT: u32 = 0x8000_0000;

/// The credential a call carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Sys(AuthSys),
}

/// AUTH_SYS (RFC 5531 appendix A).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSys {
    pub stamp: u32,
    pub machine: String,
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

impl Auth {
    pub fn flavor(&self) -> u32 {
        match self {
            Auth::None => AUTH_NONE,
            Auth::Sys(_) => AUTH_SYS,
        }
    }

    /// (uid, gid) of the caller; AUTH_NONE is nobody (65534).
    pub fn ids(&self) -> (u32, u32) {
        match self {
            Auth::None => (65534, 65534),
            Auth::Sys(s) => (s.uid, s.gid),
        }
    }
}

/// An RPC call's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallHeader {
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    pub auth: Auth,
}

/// Why a call cannot be served; each but `Unanswerable` has a reply ([`encode_rejection`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Not even an xid: close the connection.
    #[error("unanswerable message: {0}")]
    Unanswerable(XdrError),
    /// A reply, or a message type that is neither call nor reply: ignored.
    #[error("xid {xid}: not a call (message type {mtype})")]
    NotACall { xid: u32, mtype: u32 },
    #[error("xid {xid}: RPC version {vers}, only 2 is served")]
    RpcMismatch { xid: u32, vers: u32 },
    /// A credential flavor this server does not take, or a malformed one.
    #[error("xid {xid}: bad credential: {why}")]
    BadCred { xid: u32, why: String },
    #[error("xid {xid}: credential flavor {flavor} refused (AUTH_NONE and AUTH_SYS are taken)")]
    WeakAuth { xid: u32, flavor: u32 },
}

impl CallError {
    pub fn xid(&self) -> Option<u32> {
        match self {
            CallError::Unanswerable(_) => None,
            CallError::NotACall { xid, .. }
            | CallError::RpcMismatch { xid, .. }
            | CallError::BadCred { xid, .. }
            | CallError::WeakAuth { xid, .. } => Some(*xid),
        }
    }
}

/// Decodes a call's header; returns it and the procedure's arguments.
pub fn decode_call(record: &[u8]) -> Result<(CallHeader, &[u8]), CallError> {
    let mut r = Reader::new(record);
    let xid = r.u32("xid").map_err(CallError::Unanswerable)?;
    let mtype = r.u32("msg_type").map_err(CallError::Unanswerable)?;
    if mtype != MSG_CALL {
        return Err(CallError::NotACall { xid, mtype });
    }
    let bad = |e: XdrError| CallError::BadCred { xid, why: e.to_string() };
    let rpcvers = r.u32("rpcvers").map_err(bad)?;
    if rpcvers != RPC_VERSION {
        return Err(CallError::RpcMismatch { xid, vers: rpcvers });
    }
    let prog = r.u32("prog").map_err(bad)?;
    let vers = r.u32("vers").map_err(bad)?;
    let proc_ = r.u32("proc").map_err(bad)?;
    let flavor = r.u32("cred flavor").map_err(bad)?;
    let body = r.opaque("cred body", AUTH_BODY_BYTES_MAX).map_err(bad)?;
    let auth = match flavor {
        AUTH_NONE => Auth::None,
        AUTH_SYS => Auth::Sys(decode_auth_sys(body).map_err(bad)?),
        other => return Err(CallError::WeakAuth { xid, flavor: other }),
    };
    // The verifier: any flavor's body is skipped (AUTH_NONE and AUTH_SYS send none).
    r.u32("verf flavor").map_err(bad)?;
    r.opaque("verf body", AUTH_BODY_BYTES_MAX).map_err(bad)?;
    Ok((CallHeader { xid, prog, vers, proc_, auth }, r.rest()))
}

fn decode_auth_sys(body: &[u8]) -> crate::xdr::Result<AuthSys> {
    let mut r = Reader::new(body);
    let stamp = r.u32("auth_sys stamp")?;
    let machine = String::from_utf8_lossy(r.opaque("auth_sys machine", MACHINE_NAME_BYTES_MAX)?).into_owned();
    let uid = r.u32("auth_sys uid")?;
    let gid = r.u32("auth_sys gid")?;
    let n = r.array_len("auth_sys gids", AUTH_SYS_GIDS_MAX, 4)?;
    let mut gids = Vec::with_capacity(n);
    for _ in 0..n {
        gids.push(r.u32("auth_sys gid")?);
    }
    Ok(AuthSys { stamp, machine, uid, gid, gids })
}

/// Encodes a call header (clients: tests, fuzz seeds, benchmarks).
pub fn encode_call(w: &mut Writer, h: &CallHeader) {
    w.put_u32(h.xid);
    w.put_u32(MSG_CALL);
    w.put_u32(RPC_VERSION);
    w.put_u32(h.prog);
    w.put_u32(h.vers);
    w.put_u32(h.proc_);
    match &h.auth {
        Auth::None => {
            w.put_u32(AUTH_NONE);
            w.put_u32(0);
        }
        Auth::Sys(s) => {
            let mut b = Writer::new();
            b.put_u32(s.stamp);
            b.put_string(&s.machine);
            b.put_u32(s.uid);
            b.put_u32(s.gid);
            b.put_u32(s.gids.len() as u32);
            for g in &s.gids {
                b.put_u32(*g);
            }
            w.put_u32(AUTH_SYS);
            w.put_opaque(&b.to_vec());
        }
    }
    w.put_u32(AUTH_NONE);
    w.put_u32(0);
}

/// accept_stat of an accepted reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptStat {
    Success,
    ProgUnavail,
    ProgMismatch { low: u32, high: u32 },
    ProcUnavail,
    GarbageArgs,
    SystemErr,
}

/// auth_stat values used here.
pub const AUTH_BADCRED: u32 = 1;
pub const AUTH_TOOWEAK: u32 = 5;

fn reply_head(w: &mut Writer, xid: u32) {
    w.put_u32(xid);
    w.put_u32(MSG_REPLY);
}

/// Starts an accepted reply; for `Success` the procedure's results follow.
pub fn encode_accepted(w: &mut Writer, xid: u32, stat: AcceptStat) {
    reply_head(w, xid);
    w.put_u32(0); // MSG_ACCEPTED
    w.put_u32(AUTH_NONE); // verifier
    w.put_u32(0);
    match stat {
        AcceptStat::Success => w.put_u32(0),
        AcceptStat::ProgUnavail => w.put_u32(1),
        AcceptStat::ProgMismatch { low, high } => {
            w.put_u32(2);
            w.put_u32(low);
            w.put_u32(high);
        }
        AcceptStat::ProcUnavail => w.put_u32(3),
        AcceptStat::GarbageArgs => w.put_u32(4),
        AcceptStat::SystemErr => w.put_u32(5),
    }
}

/// The reply to a call rejected by [`decode_call`]; `None` when there is nothing to answer.
pub fn encode_rejection(e: &CallError) -> Option<Writer> {
    let mut w = Writer::new();
    match e {
        CallError::Unanswerable(_) | CallError::NotACall { .. } => return None,
        CallError::RpcMismatch { xid, .. } => {
            reply_head(&mut w, *xid);
            w.put_u32(1); // MSG_DENIED
            w.put_u32(0); // RPC_MISMATCH
            w.put_u32(RPC_VERSION);
            w.put_u32(RPC_VERSION);
        }
        CallError::BadCred { xid, .. } | CallError::WeakAuth { xid, .. } => {
            reply_head(&mut w, *xid);
            w.put_u32(1); // MSG_DENIED
            w.put_u32(1); // AUTH_ERROR
            w.put_u32(if matches!(e, CallError::WeakAuth { .. }) { AUTH_TOOWEAK } else { AUTH_BADCRED });
        }
    }
    Some(w)
}

/// A decoded reply header (clients and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyHeader {
    Accepted { xid: u32, stat: AcceptStat },
    RpcMismatch { xid: u32 },
    AuthError { xid: u32, stat: u32 },
}

/// Decodes a reply header; returns it and the results that follow.
pub fn decode_reply(msg: &[u8]) -> crate::xdr::Result<(ReplyHeader, &[u8])> {
    let mut r = Reader::new(msg);
    let xid = r.u32("xid")?;
    if r.u32("msg_type")? != MSG_REPLY {
        return Err(r.error("msg_type", "not a reply"));
    }
    let h = match r.u32("reply_stat")? {
        0 => {
            r.u32("verf flavor")?;
            r.opaque("verf body", AUTH_BODY_BYTES_MAX)?;
            let stat = match r.u32("accept_stat")? {
                0 => AcceptStat::Success,
                1 => AcceptStat::ProgUnavail,
                2 => AcceptStat::ProgMismatch { low: r.u32("low")?, high: r.u32("high")? },
                3 => AcceptStat::ProcUnavail,
                4 => AcceptStat::GarbageArgs,
                _ => AcceptStat::SystemErr,
            };
            ReplyHeader::Accepted { xid, stat }
        }
        _ => match r.u32("reject_stat")? {
            0 => ReplyHeader::RpcMismatch { xid },
            _ => ReplyHeader::AuthError { xid, stat: r.u32("auth_stat")? },
        },
    };
    Ok((h, r.rest()))
}

/// Why a byte stream is not a valid sequence of records: the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record of {bytes} bytes exceeds the limit of {max} bytes")]
    TooLong { bytes: usize, max: usize },
}

/// Reassembles RPC records from a TCP byte stream (RFC 5531 section 11). A one-fragment
/// record (what every client sends) is handed out as a slice of the input, without a copy.
#[derive(Debug)]
pub struct RecordDecoder {
    record_bytes_max: usize,
    /// Fragments of a record not yet complete.
    partial: BytesMut,
}

impl RecordDecoder {
    pub fn new(record_bytes_max: usize) -> RecordDecoder {
        RecordDecoder { record_bytes_max, partial: BytesMut::new() }
    }

    /// Takes the next complete record out of `input`, if there is one. Bytes of an incomplete
    /// fragment are left in `input`.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<Bytes>, RecordError> {
        loop {
            let Some(head) = input.get(..4) else { return Ok(None) };
            let mark = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            let len = (mark & !LAST_FRAGMENT) as usize;
            let total = self.partial.len() + len;
            if total > self.record_bytes_max {
                return Err(RecordError::TooLong { bytes: total, max: self.record_bytes_max });
            }
            if input.len() < 4 + len {
                return Ok(None);
            }
            input.advance(4);
            let frag = input.split_to(len);
            if mark & LAST_FRAGMENT == 0 {
                self.partial.extend_from_slice(&frag);
                continue;
            }
            if self.partial.is_empty() {
                return Ok(Some(frag.freeze()));
            }
            self.partial.extend_from_slice(&frag);
            return Ok(Some(std::mem::take(&mut self.partial).freeze()));
        }
    }

    /// How many more bytes the record being read needs at least (for sizing reads).
    pub fn bytes_wanted(&self, input: &[u8]) -> usize {
        match input.get(..4) {
            Some(h) => {
                let len = (u32::from_be_bytes([h[0], h[1], h[2], h[3]]) & !LAST_FRAGMENT) as usize;
                (4 + len).saturating_sub(input.len())
            }
            None => 4 - input.len(),
        }
    }
}

/// The record mark for a one-fragment record of `len` bytes.
pub fn record_mark(len: usize) -> [u8; 4] {
    debug_assert!(len < LAST_FRAGMENT as usize);
    (LAST_FRAGMENT | len as u32).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sys() -> Auth {
        Auth::Sys(AuthSys { stamp: 1, machine: "gpu-07".into(), uid: 1000, gid: 100, gids: vec![100, 27] })
    }

    #[test]
    fn call_round_trip() {
        let h = CallHeader { xid: 9, prog: 100003, vers: 4, proc_: 1, auth: sys() };
        let mut w = Writer::new();
        encode_call(&mut w, &h);
        w.put_u32(0xdead_beef);
        let v = w.to_vec();
        let (got, args) = decode_call(&v).unwrap();
        assert_eq!(got, h);
        assert_eq!(args, [0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn rejections_have_replies() {
        let mut w = Writer::new();
        encode_call(&mut w, &CallHeader { xid: 5, prog: 1, vers: 1, proc_: 0, auth: Auth::None });
        let mut v = w.to_vec();
        v[8..12].copy_from_slice(&3u32.to_be_bytes()); // rpcvers 3
        let e = decode_call(&v).unwrap_err();
        assert_eq!(e, CallError::RpcMismatch { xid: 5, vers: 3 });
        let reply = encode_rejection(&e).unwrap().to_vec();
        assert_eq!(decode_reply(&reply).unwrap().0, ReplyHeader::RpcMismatch { xid: 5 });

        v[8..12].copy_from_slice(&2u32.to_be_bytes());
        v[24..28].copy_from_slice(&6u32.to_be_bytes()); // RPCSEC_GSS
        let e = decode_call(&v).unwrap_err();
        let reply = encode_rejection(&e).unwrap().to_vec();
        assert_eq!(decode_reply(&reply).unwrap().0, ReplyHeader::AuthError { xid: 5, stat: AUTH_TOOWEAK });

        assert!(matches!(decode_call(&[0, 0]), Err(CallError::Unanswerable(_))));
        assert_eq!(decode_call(&[0, 0, 0, 1, 0, 0, 0, 1]).unwrap_err(), CallError::NotACall { xid: 1, mtype: 1 });
    }

    #[test]
    fn accepted_reply_round_trip() {
        for stat in [
            AcceptStat::Success,
            AcceptStat::ProgUnavail,
            AcceptStat::ProgMismatch { low: 3, high: 4 },
            AcceptStat::ProcUnavail,
            AcceptStat::GarbageArgs,
            AcceptStat::SystemErr,
        ] {
            let mut w = Writer::new();
            encode_accepted(&mut w, 77, stat);
            let v = w.to_vec();
            let (h, rest) = decode_reply(&v).unwrap();
            assert_eq!(h, ReplyHeader::Accepted { xid: 77, stat });
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn records_one_and_many_fragments() {
        let mut d = RecordDecoder::new(1 << 20);
        let mut input = BytesMut::new();
        input.extend_from_slice(&record_mark(3));
        input.extend_from_slice(b"abc");
        input.extend_from_slice(&2u32.to_be_bytes());
        input.extend_from_slice(b"de");
        input.extend_from_slice(&record_mark(1));
        assert_eq!(d.decode(&mut input).unwrap().unwrap(), &b"abc"[..]);
        assert_eq!(d.decode(&mut input).unwrap(), None);
        input.extend_from_slice(b"f");
        assert_eq!(d.decode(&mut input).unwrap().unwrap(), &b"def"[..]);
        assert!(input.is_empty());
        let mut input = BytesMut::from(&record_mark(2 << 20)[..]);
        assert!(matches!(d.decode(&mut input), Err(RecordError::TooLong { .. })));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Err(e) = decode_call(&data) {
                let _ = encode_rejection(&e);
            }
            let mut d = RecordDecoder::new(4096);
            let mut input = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = d.decode(&mut input) {}
        }
    }
}
