//! A minimal portmapper (RFC 1833, version 2): program 100000, so clients that look up the NFS
//! and MOUNT ports (libnfs for NFSv3, `rpcinfo -p`) find them without a system rpcbind. It
//! answers from the fixed table it is given at construction: SET and UNSET are refused (false),
//! CALLIT is not served (PROC_UNAVAIL: an indirect call is an amplification tool).
//!
//! Runs on: any core; the table is immutable.

use futures::future::LocalBoxFuture;

use crate::rpc::AcceptStat;
use crate::service::{Call, Program};
use crate::xdr::{Reader, Writer, XdrError};

pub const PROGRAM: u32 = 100_000;
pub const VERSION: u32 = 2;
pub const IPPROTO_TCP: u32 = 6;
pub const IPPROTO_UDP: u32 = 17;

/// Procedure numbers.
pub mod proc_ {
    pub const NULL: u32 = 0;
    pub const SET: u32 = 1;
    pub const UNSET: u32 = 2;
    pub const GETPORT: u32 = 3;
    pub const DUMP: u32 = 4;
    pub const CALLIT: u32 = 5;
}

/// One registration: a program version on a protocol at a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub prog: u32,
    pub vers: u32,
    pub prot: u32,
    pub port: u32,
}

impl Mapping {
    pub fn decode(r: &mut Reader<'_>) -> crate::xdr::Result<Mapping> {
        Ok(Mapping { prog: r.u32("prog")?, vers: r.u32("vers")?, prot: r.u32("prot")?, port: r.u32("port")? })
    }

    pub fn encode(&self, w: &mut Writer) {
        w.put_u32(self.prog);
        w.put_u32(self.vers);
        w.put_u32(self.prot);
        w.put_u32(self.port);
    }
}

/// The portmapper program.
#[derive(Debug, Clone)]
pub struct Portmap {
    mappings: Vec<Mapping>,
}

impl Portmap {
    pub fn new(mappings: Vec<Mapping>) -> Portmap {
        Portmap { mappings }
    }

    /// NFS versions 3 and 4 at `nfs_port`, MOUNT versions 1 to 3 at `mount_port`, and the
    /// portmapper itself at `portmap_port`, all over TCP.
    pub fn for_ports(nfs_port: u16, mount_port: u16, portmap_port: u16) -> Portmap {
        let tcp = |prog, vers, port: u16| Mapping { prog, vers, prot: IPPROTO_TCP, port: u32::from(port) };
        Portmap::new(vec![
            tcp(PROGRAM, VERSION, portmap_port),
            tcp(crate::v3::types::PROGRAM, 3, nfs_port),
            tcp(crate::v3::types::PROGRAM, 4, nfs_port),
            tcp(crate::mount::PROGRAM, 1, mount_port),
            tcp(crate::mount::PROGRAM, 2, mount_port),
            tcp(crate::mount::PROGRAM, 3, mount_port),
        ])
    }

    /// The port of a program version on a protocol; 0 when it is not registered.
    pub fn getport(&self, prog: u32, vers: u32, prot: u32) -> u32 {
        self.mappings.iter().find(|m| m.prog == prog && m.vers == vers && m.prot == prot).map_or(0, |m| m.port)
    }

    pub fn mappings(&self) -> &[Mapping] {
        &self.mappings
    }
}

/// Decodes the arguments of procedure `proc_` and drops them (fuzzing, tests).
pub fn decode_args(proc_: u32, args: &[u8]) -> Result<(), XdrError> {
    let mut r = Reader::new(args);
    match proc_ {
        proc_::NULL | proc_::DUMP => Ok(()),
        proc_::SET | proc_::UNSET | proc_::GETPORT => Mapping::decode(&mut r).map(drop),
        _ => Err(XdrError { what: "procedure", at: 0, why: "no such portmapper procedure" }),
    }
}

impl Program for Portmap {
    fn number(&self) -> u32 {
        PROGRAM
    }

    fn versions(&self) -> (u32, u32) {
        (VERSION, VERSION)
    }

    fn call<'a>(&'a self, call: Call<'a>, w: &'a mut Writer) -> LocalBoxFuture<'a, Result<(), AcceptStat>> {
        Box::pin(async move {
            let mapping = || {
                Mapping::decode(&mut Reader::new(call.args)).map_err(|e| {
                    tracing::debug!(peer = %call.conn.peer, error = %e, "portmapper: garbage arguments");
                    AcceptStat::GarbageArgs
                })
            };
            match call.header.proc_ {
                proc_::NULL => {}
                proc_::SET | proc_::UNSET => {
                    mapping()?;
                    w.put_bool(false);
                }
                proc_::GETPORT => {
                    let m = mapping()?;
                    w.put_u32(self.getport(m.prog, m.vers, m.prot));
                }
                proc_::DUMP => {
                    for m in &self.mappings {
                        w.put_bool(true);
                        m.encode(w);
                    }
                    w.put_bool(false);
                }
                _ => return Err(AcceptStat::ProcUnavail),
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{decode_reply, encode_call, Auth, CallHeader, ReplyHeader};
    use crate::service::{ConnInfo, RpcServer};
    use std::sync::Arc;

    fn call(proc_: u32, args: &[u32]) -> Vec<u8> {
        let mut w = Writer::new();
        encode_call(&mut w, &CallHeader { xid: 1, prog: PROGRAM, vers: 2, proc_, auth: Auth::None });
        for a in args {
            w.put_u32(*a);
        }
        w.to_vec()
    }

    fn serve(rec: &[u8]) -> (ReplyHeader, Vec<u8>) {
        let a = "127.0.0.1:9".parse().unwrap();
        let conn = ConnInfo { id: 1, peer: a, local: a, core: 0 };
        let server = RpcServer::new().with(Arc::new(Portmap::for_ports(2049, 2050, 111)));
        let reply = futures::executor::block_on(server.serve(&conn, rec)).unwrap().to_vec();
        let (h, rest) = decode_reply(&reply).unwrap();
        (h, rest.to_vec())
    }

    fn words(b: &[u8]) -> Vec<u32> {
        b.chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect()
    }

    #[test]
    fn getport_and_dump() {
        let (_, r) = serve(&call(proc_::GETPORT, &[100_003, 3, IPPROTO_TCP, 0]));
        assert_eq!(words(&r), [2049]);
        let (_, r) = serve(&call(proc_::GETPORT, &[100_005, 3, IPPROTO_TCP, 0]));
        assert_eq!(words(&r), [2050]);
        let (_, r) = serve(&call(proc_::GETPORT, &[100_003, 3, IPPROTO_UDP, 0]));
        assert_eq!(words(&r), [0]);
        let (_, r) = serve(&call(proc_::GETPORT, &[100_003, 2, IPPROTO_TCP, 0]));
        assert_eq!(words(&r), [0]);
        let (_, r) = serve(&call(proc_::DUMP, &[]));
        let w = words(&r);
        assert_eq!(w.len(), 6 * 5 + 1);
        assert_eq!(&w[..5], [1, PROGRAM, 2, IPPROTO_TCP, 111]);
        assert_eq!(w.last(), Some(&0));
        let (_, r) = serve(&call(proc_::SET, &[400_000, 1, IPPROTO_TCP, 5555]));
        assert_eq!(words(&r), [0]);
        let (h, _) = serve(&call(proc_::GETPORT, &[100_003]));
        assert_eq!(h, ReplyHeader::Accepted { xid: 1, stat: AcceptStat::GarbageArgs });
        let (h, _) = serve(&call(proc_::CALLIT, &[100_003, 3, 0, 0]));
        assert_eq!(h, ReplyHeader::Accepted { xid: 1, stat: AcceptStat::ProcUnavail });
        assert!(decode_args(proc_::GETPORT, &[0; 15]).is_err());
        assert!(decode_args(proc_::GETPORT, &[0; 16]).is_ok());
    }
}
