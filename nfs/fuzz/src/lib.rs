//! Helpers shared by the fuzz targets (src/bin/*.rs) and the seed corpus generator
//! (examples/seed_corpus.rs): a trivial RPC program, a blocking runner for the server's
//! futures, and the checks every reply must pass.
//!
//! Targets assert invariants, not just "does not panic": a reply the server produces must decode
//! as a reply to the same xid, and a call that decodes must be answered.

use std::net::SocketAddr;

use futures::future::LocalBoxFuture;
use nfs::rpc::{self, AcceptStat, ReplyHeader};
use nfs::service::{Call, ConnInfo, Program};
use nfs::xdr::Writer;

/// The program number of [`Echo`] (in the range RFC 5531 leaves to users).
pub const ECHO_PROGRAM: u32 = 0x2000_0001;
/// [`Echo`] serves versions 1 to 2.
pub const ECHO_VERSIONS: (u32, u32) = (1, 2);
/// Echo's procedures: 0 = null, 1 = echo the arguments as an opaque, 2 = decode one opaque
/// argument of at most 64 bytes (GARBAGE_ARGS when it does not decode); others PROC_UNAVAIL.
pub const ECHO_PROC_NULL: u32 = 0;
pub const ECHO_PROC_ECHO: u32 = 1;
pub const ECHO_PROC_OPAQUE: u32 = 2;

/// A trivial program: enough for the server's dispatch paths (success, results, each error).
pub struct Echo;

impl Program for Echo {
    fn number(&self) -> u32 {
        ECHO_PROGRAM
    }

    fn versions(&self) -> (u32, u32) {
        ECHO_VERSIONS
    }

    fn call<'a>(&'a self, call: Call<'a>, w: &'a mut Writer) -> LocalBoxFuture<'a, Result<(), AcceptStat>> {
        Box::pin(async move {
            match call.header.proc_ {
                ECHO_PROC_NULL => Ok(()),
                ECHO_PROC_ECHO => {
                    w.put_opaque(call.args);
                    Ok(())
                }
                ECHO_PROC_OPAQUE => {
                    let mut r = nfs::xdr::Reader::new(call.args);
                    let b = r.opaque("echo arg", 64).map_err(|_| AcceptStat::GarbageArgs)?;
                    w.put_opaque(b);
                    Ok(())
                }
                _ => Err(AcceptStat::ProcUnavail),
            }
        })
    }
}

/// The connection every fuzzed call comes in on.
pub fn conn() -> ConnInfo {
    let peer = SocketAddr::from(([127, 0, 0, 1], 700));
    let local = SocketAddr::from(([127, 0, 0, 1], 2049));
    ConnInfo { id: 1, peer, local, core: 0 }
}

/// Runs one of the server's futures to completion. They never wait on I/O here (no engine), so
/// a simple executor suffices.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// The xid of a record, if it has one.
pub fn xid_of(record: &[u8]) -> Option<u32> {
    let head = record.get(..4)?;
    Some(u32::from_be_bytes([head[0], head[1], head[2], head[3]]))
}

/// Checks that `reply` (the encoded reply to `record`) decodes as a reply to the same xid, and
/// returns its header and results. Panics (a fuzz finding) when it does not.
pub fn check_reply<'a>(record: &[u8], reply: &'a [u8]) -> (ReplyHeader, &'a [u8]) {
    let (header, results) = match rpc::decode_reply(reply) {
        Ok(ok) => ok,
        Err(e) => panic!("the server's reply does not decode: {e}; reply {reply:02x?}"),
    };
    let xid = match header {
        ReplyHeader::Accepted { xid, .. } | ReplyHeader::RpcMismatch { xid } | ReplyHeader::AuthError { xid, .. } => {
            xid
        }
    };
    assert_eq!(Some(xid), xid_of(record), "the reply's xid is not the call's");
    (header, results)
}
