//! NFSv4.0, 4.1 and 4.2 (RFC 7530, 8881, 7862): program 100003 version 4, NULL and COMPOUND.
//!
//! COMPOUND decodes and runs one operation at a time against a [`Compound`] (current and saved
//! file handles, the session slot SEQUENCE chose); each operation is one file under [`ops`],
//! reached through the dispatch table there. Client, session and stateid state lives in
//! [`state::State`], shared by every core behind its own locks. Runs on the connection's core.

pub mod attrs;
pub mod change;
pub mod fh;
pub mod node;
pub mod ops;
pub mod pseudo;
pub mod settable;
pub mod state;
pub mod status;

use std::sync::Arc;

use futures::future::LocalBoxFuture;

use crate::export::{Access, Exports, NfsExport};
use crate::rpc::{AcceptStat, Auth};
use crate::service::{Call, ConnInfo, Program};
use crate::xdr::{Reader, Writer, XdrError};
use fh::Fh;
use pseudo::PseudoFs;
use state::{SeqSlot, State, Stateid};
pub use status::Status;

pub const NFS_PROGRAM: u32 = 100_003;
pub const MINOR_VERSION_MAX: u32 = 2;
/// Operations in one COMPOUND at most (also what CREATE_SESSION offers as ca_maxoperations).
pub const COMPOUND_OPS_MAX: usize = 64;
/// The longest tag echoed back.
pub const TAG_BYTES_MAX: usize = 1024;

/// The NFSv4 server.
pub struct Nfs4 {
    pub exports: Exports,
    pub pseudo: PseudoFs,
    pub state: Arc<State>,
}

impl Nfs4 {
    /// The server over `exports`; `state` keeps its share reservations and byte-range locks in
    /// the engine's lock manager from now on (shared with the other protocols).
    pub fn new(exports: Exports, state: Arc<State>) -> Nfs4 {
        let pseudo = PseudoFs::new(&exports);
        state.use_lock_manager(exports.engine().locks().clone());
        Nfs4 { exports, pseudo, state }
    }

    /// Runs one COMPOUND; writes COMPOUND4res.
    pub async fn compound(&self, conn: &ConnInfo, auth: &Auth, args: &[u8], w: &mut Writer) -> Result<(), XdrError> {
        let mut r = Reader::new(args);
        let tag = r.opaque("compound tag", TAG_BYTES_MAX)?;
        let minor = r.u32("minorversion")?;
        let nops = r.u32("compound op count")? as usize;
        let status_slot = w.reserve_u32();
        w.put_opaque(tag);
        let count_slot = w.reserve_u32();
        if minor > MINOR_VERSION_MAX {
            w.set_u32(status_slot, Status::MINOR_VERS_MISMATCH.0);
            return Ok(());
        }
        let mut cx = Compound::new(self, conn, auth, minor);
        let mut status = Status::OK;
        let mut done = 0u32;
        for i in 0..nops {
            if i >= COMPOUND_OPS_MAX {
                // The op that goes over the limit fails; the others never run.
                w.put_u32(ops::OP_ILLEGAL);
                status = if minor == 0 { Status::RESOURCE } else { Status::TOO_MANY_OPS };
                w.put_u32(status.0);
                done += 1;
                break;
            }
            let opnum = match r.u32("op number") {
                Ok(n) => n,
                Err(_) => {
                    w.put_u32(ops::OP_ILLEGAL);
                    status = Status::BADXDR;
                    w.put_u32(status.0);
                    done += 1;
                    break;
                }
            };
            cx.op_index = i;
            let st = match cx.session_rules(i, nops, opnum) {
                Err(st) => Err((st, None)),
                Ok(()) => {
                    let mut res = Writer::new();
                    let st = ops::dispatch(&mut cx, opnum, &mut r, &mut res).await;
                    if let Some(reply) = cx.replay.take() {
                        // SEQUENCE found a retransmission: the cached reply, verbatim.
                        *w = reply;
                        return Ok(());
                    }
                    match st {
                        // LOCK and LOCKT's NFS4ERR_DENIED carries LOCK4denied after the status.
                        Err(Status::DENIED) => Err((Status::DENIED, Some(res))),
                        // SETATTR4res carries attrsset after any status.
                        Err(st) if opnum == ops::SETATTR => Err((st, Some(res))),
                        Err(st) => Err((st, None)),
                        Ok(()) => Ok(res),
                    }
                }
            };
            w.put_u32(if ops::is_valid(minor, opnum) { opnum } else { ops::OP_ILLEGAL });
            done += 1;
            match st {
                Ok(res) => {
                    w.put_u32(Status::OK.0);
                    w.append(res);
                }
                Err((st, body)) => {
                    status = st;
                    w.put_u32(st.0);
                    if let Some(body) = body {
                        w.append(body);
                    }
                    break;
                }
            }
        }
        w.set_u32(status_slot, status.0);
        w.set_u32(count_slot, done);
        if let Some(seq) = cx.seq.take() {
            self.state.finish_compound(&seq, w);
        }
        self.release_expired_opens().await;
        Ok(())
    }

    /// Tells the engine of opens that went away without a CLOSE (a lease ran out, a client
    /// was destroyed) while this COMPOUND ran, so their files get published.
    async fn release_expired_opens(&self) {
        for file in self.state.take_released() {
            if let Err(e) = self.exports.engine().closed(&file).await {
                tracing::warn!(ino = file.ino, error = %e, "engine not told of an expired open");
            }
        }
    }
}

impl Program for Nfs4 {
    fn number(&self) -> u32 {
        NFS_PROGRAM
    }

    fn versions(&self) -> (u32, u32) {
        (4, 4)
    }

    fn call<'a>(&'a self, call: Call<'a>, w: &'a mut Writer) -> LocalBoxFuture<'a, Result<(), AcceptStat>> {
        Box::pin(async move {
            match call.header.proc_ {
                0 => Ok(()),
                1 => self.compound(call.conn, &call.header.auth, call.args, w).await.map_err(|e| {
                    tracing::debug!(peer = %call.conn.peer, error = %e, "COMPOUND arguments do not decode");
                    AcceptStat::GarbageArgs
                }),
                _ => Err(AcceptStat::ProcUnavail),
            }
        })
    }
}

/// Decodes a COMPOUND's arguments completely (every operation), for fuzzing: never panics.
pub fn decode_compound(args: &[u8]) -> Result<(), XdrError> {
    let mut r = Reader::new(args);
    r.opaque("compound tag", TAG_BYTES_MAX)?;
    let minor = r.u32("minorversion")?;
    let n = r.array_len("compound ops", COMPOUND_OPS_MAX, 4)?;
    for _ in 0..n {
        let opnum = r.u32("op number")?;
        ops::decode_args(minor, opnum, &mut r)?;
    }
    Ok(())
}

/// One COMPOUND in progress.
pub struct Compound<'a> {
    pub server: &'a Nfs4,
    pub conn: &'a ConnInfo,
    pub auth: &'a Auth,
    pub minor: u32,
    pub op_index: usize,
    pub current: Option<Fh>,
    pub saved: Option<Fh>,
    /// NFSv4.1 "current stateid" (RFC 8881 section 16.2.3.1.2).
    pub current_stateid: Option<Stateid>,
    pub saved_stateid: Option<Stateid>,
    /// Set by SEQUENCE: the slot this compound's reply is cached in.
    pub seq: Option<SeqSlot>,
    /// Set by SEQUENCE on a retransmission: the whole reply to send instead.
    pub replay: Option<Writer>,
}

impl<'a> Compound<'a> {
    pub fn new(server: &'a Nfs4, conn: &'a ConnInfo, auth: &'a Auth, minor: u32) -> Compound<'a> {
        Compound {
            server,
            conn,
            auth,
            minor,
            op_index: 0,
            current: None,
            saved: None,
            current_stateid: None,
            saved_stateid: None,
            seq: None,
            replay: None,
        }
    }

    /// NFSv4.1 session rules: SEQUENCE first, or one of the operations allowed outside a session.
    fn session_rules(&self, i: usize, nops: usize, opnum: u32) -> Result<(), Status> {
        if self.minor == 0 {
            return Ok(());
        }
        let sessionless = matches!(
            opnum,
            ops::EXCHANGE_ID
                | ops::CREATE_SESSION
                | ops::DESTROY_SESSION
                | ops::DESTROY_CLIENTID
                | ops::BIND_CONN_TO_SESSION
        );
        match (i, opnum) {
            (0, ops::SEQUENCE) => Ok(()),
            (0, _) if sessionless => {
                if nops > 1 && opnum != ops::EXCHANGE_ID && opnum != ops::CREATE_SESSION {
                    Err(Status::NOT_ONLY_OP)
                } else {
                    Ok(())
                }
            }
            (0, _) if ops::is_valid(self.minor, opnum) => Err(Status::OP_NOT_IN_SESSION),
            (_, ops::SEQUENCE) => Err(Status::SEQUENCE_POS),
            _ => Ok(()),
        }
    }

    /// The current file handle (NFS4ERR_NOFILEHANDLE without one).
    pub fn current(&self) -> Result<Fh, Status> {
        self.current.ok_or(Status::NOFILEHANDLE)
    }

    /// The export an engine handle belongs to, if this client may reach it.
    pub fn export(&self, export_id: u32) -> Result<(&'a NfsExport, Access), Status> {
        let e = self.server.exports.by_id(export_id).ok_or(Status::STALE)?;
        match e.access(self.conn.peer.ip()) {
            Access::Denied => Err(Status::ACCESS),
            a => Ok((e, a)),
        }
    }

    /// The caller's (uid, gid) on an export, after root squash.
    pub fn creds(&self, e: &NfsExport) -> (u32, u32) {
        e.creds(self.auth)
    }
}
