//! The seam between the transport and the protocols: the transport hands complete RPC records
//! to a [`Service`] and sends back what it returns; [`RpcServer`] decodes the call header and
//! dispatches to the [`Program`] (NFS, MOUNT, portmapper) the call names.
//!
//! Futures here are not `Send`: each runs on the core whose connection received the call.
//! State shared between cores (NFSv4 clients and sessions) lives behind the programs' own locks.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::LocalBoxFuture;

use crate::rpc::{self, AcceptStat, CallHeader};
use crate::xdr::Writer;

/// The connection a call came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Unique for the life of the process.
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The core (reactor) serving the connection.
    pub core: usize,
}

/// One call: its header and its still-encoded arguments.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub conn: &'a ConnInfo,
    pub header: &'a CallHeader,
    pub args: &'a [u8],
}

/// An RPC program (one number, a range of versions).
pub trait Program: Send + Sync {
    fn number(&self) -> u32;
    /// Lowest and highest version served.
    fn versions(&self) -> (u32, u32);
    /// Serves one call of a version in range, writing its results to `w`. An `Err` replaces
    /// the results with that status (GARBAGE_ARGS for arguments that do not decode,
    /// PROC_UNAVAIL for an unknown procedure).
    fn call<'a>(&'a self, call: Call<'a>, w: &'a mut Writer) -> LocalBoxFuture<'a, Result<(), AcceptStat>>;
}

/// What a transport serves.
pub trait Service: Send + Sync + 'static {
    /// Serves one record; `None` means send nothing (a reply, or a message too broken to
    /// answer).
    fn handle<'a>(&'a self, conn: &'a ConnInfo, record: Bytes) -> LocalBoxFuture<'a, Option<Writer>>;

    /// The connection closed.
    fn closed(&self, _conn: &ConnInfo) {}
}

/// Dispatches calls to programs by number.
#[derive(Clone, Default)]
pub struct RpcServer {
    programs: Vec<Arc<dyn Program>>,
}

impl RpcServer {
    pub fn new() -> RpcServer {
        RpcServer::default()
    }

    pub fn with(mut self, program: Arc<dyn Program>) -> RpcServer {
        self.programs.push(program);
        self
    }

    /// Serves one record (also usable without a transport: tests, fuzzing).
    pub async fn serve(&self, conn: &ConnInfo, record: &[u8]) -> Option<Writer> {
        let (header, args) = match rpc::decode_call(record) {
            Ok(ok) => ok,
            Err(e) => {
                tracing::debug!(peer = %conn.peer, error = %e, "call refused");
                return rpc::encode_rejection(&e);
            }
        };
        let mut w = Writer::new();
        // One program number may be served by several programs, each for its versions (NFSv3
        // and NFSv4 are both program 100003).
        let mut same_number = self.programs.iter().filter(|p| p.number() == header.prog).peekable();
        if same_number.peek().is_none() {
            rpc::encode_accepted(&mut w, header.xid, AcceptStat::ProgUnavail);
            return Some(w);
        }
        let (mut low, mut high) = (u32::MAX, 0);
        let mut found = None;
        for p in same_number {
            let (l, h) = p.versions();
            (low, high) = (low.min(l), high.max(h));
            if (l..=h).contains(&header.vers) {
                found = Some(p);
            }
        }
        let Some(program) = found else {
            rpc::encode_accepted(&mut w, header.xid, AcceptStat::ProgMismatch { low, high });
            return Some(w);
        };
        let mut results = Writer::new();
        let call = Call { conn, header: &header, args };
        match program.call(call, &mut results).await {
            Ok(()) => {
                rpc::encode_accepted(&mut w, header.xid, AcceptStat::Success);
                w.append(results);
            }
            Err(stat) => {
                tracing::debug!(peer = %conn.peer, xid = header.xid, prog = header.prog, proc_ = header.proc_, ?stat, "call failed");
                rpc::encode_accepted(&mut w, header.xid, stat);
            }
        }
        Some(w)
    }
}

impl Service for RpcServer {
    fn handle<'a>(&'a self, conn: &'a ConnInfo, record: Bytes) -> LocalBoxFuture<'a, Option<Writer>> {
        Box::pin(async move { self.serve(conn, &record).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{decode_reply, encode_call, Auth, ReplyHeader};

    struct Echo;
    impl Program for Echo {
        fn number(&self) -> u32 {
            400_000
        }
        fn versions(&self) -> (u32, u32) {
            (1, 2)
        }
        fn call<'a>(&'a self, call: Call<'a>, w: &'a mut Writer) -> LocalBoxFuture<'a, Result<(), AcceptStat>> {
            Box::pin(async move {
                match call.header.proc_ {
                    0 => Ok(()),
                    1 => {
                        w.put_opaque(call.args);
                        Ok(())
                    }
                    _ => Err(AcceptStat::ProcUnavail),
                }
            })
        }
    }

    fn conn() -> ConnInfo {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        ConnInfo { id: 1, peer: a, local: a, core: 0 }
    }

    fn call(prog: u32, vers: u32, proc_: u32) -> Vec<u8> {
        let mut w = Writer::new();
        encode_call(&mut w, &CallHeader { xid: 3, prog, vers, proc_, auth: Auth::None });
        w.put_u32(5);
        w.to_vec()
    }

    #[test]
    fn dispatch_outcomes() {
        let s = RpcServer::new().with(Arc::new(Echo));
        let run = |rec: Vec<u8>| futures::executor::block_on(s.serve(&conn(), &rec)).unwrap().to_vec();
        let v = run(call(400_000, 1, 1));
        let (h, rest) = decode_reply(&v).unwrap();
        assert_eq!(h, ReplyHeader::Accepted { xid: 3, stat: AcceptStat::Success });
        assert_eq!(rest, [0, 0, 0, 4, 0, 0, 0, 5]);
        let stat = |v: &[u8]| match decode_reply(v).unwrap().0 {
            ReplyHeader::Accepted { stat, .. } => stat,
            other => panic!("{other:?}"),
        };
        assert_eq!(stat(&run(call(1, 1, 1))), AcceptStat::ProgUnavail);
        assert_eq!(stat(&run(call(400_000, 3, 1))), AcceptStat::ProgMismatch { low: 1, high: 2 });
        assert_eq!(stat(&run(call(400_000, 2, 9))), AcceptStat::ProcUnavail);
        let two = RpcServer::new().with(Arc::new(Echo)).with(Arc::new(EchoV4));
        let run2 = |rec: Vec<u8>| futures::executor::block_on(two.serve(&conn(), &rec)).unwrap().to_vec();
        assert_eq!(stat(&run2(call(400_000, 4, 0))), AcceptStat::Success);
        assert_eq!(stat(&run2(call(400_000, 4, 1))), AcceptStat::ProcUnavail);
        assert_eq!(stat(&run2(call(400_000, 5, 0))), AcceptStat::ProgMismatch { low: 1, high: 4 });
    }

    struct EchoV4;
    impl Program for EchoV4 {
        fn number(&self) -> u32 {
            400_000
        }
        fn versions(&self) -> (u32, u32) {
            (4, 4)
        }
        fn call<'a>(&'a self, call: Call<'a>, _w: &'a mut Writer) -> LocalBoxFuture<'a, Result<(), AcceptStat>> {
            Box::pin(async move {
                if call.header.proc_ == 0 {
                    Ok(())
                } else {
                    Err(AcceptStat::ProcUnavail)
                }
            })
        }
    }
}
