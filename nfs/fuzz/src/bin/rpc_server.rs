//! The server's dispatch (`RpcServer::serve`) on arbitrary records, with no program or with a
//! trivial one (the first input byte chooses): never panics; every call that decodes is
//! answered, with the status the dispatch calls for, as a reply to its xid; every other record
//! gets exactly `encode_rejection`'s answer; the reply's length is what it encodes to.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use nfs::rpc::{self, AcceptStat, ReplyHeader};
use nfs::service::RpcServer;
use nfs::xdr::Writer;
use nfs_fuzz::{
    block_on, check_reply, conn, Echo, ECHO_PROC_ECHO, ECHO_PROC_NULL, ECHO_PROC_OPAQUE, ECHO_PROGRAM, ECHO_VERSIONS,
};

fuzz_target!(|data: &[u8]| {
    let Some((&variant, record)) = data.split_first() else { return };
    let with_echo = variant & 1 == 1;
    let server = if with_echo { RpcServer::new().with(Arc::new(Echo)) } else { RpcServer::new() };
    let reply = block_on(server.serve(&conn(), record));
    match rpc::decode_call(record) {
        Err(e) => {
            let expected = rpc::encode_rejection(&e).map(|w| w.to_vec());
            assert_eq!(reply.map(|w| w.to_vec()), expected, "{e}");
        }
        Ok((call, args)) => {
            let Some(reply) = reply else { panic!("call {call:?} not answered") };
            let bytes = reply.to_vec();
            assert_eq!(reply.len(), bytes.len(), "Writer::len disagrees with its bytes");
            let (header, results) = check_reply(record, &bytes);
            let ReplyHeader::Accepted { stat, .. } = header else { panic!("a decoded call was denied: {header:?}") };
            let (low, high) = ECHO_VERSIONS;
            let reached_echo = with_echo && call.prog == ECHO_PROGRAM && (low..=high).contains(&call.vers);
            let expected = if !with_echo || call.prog != ECHO_PROGRAM {
                AcceptStat::ProgUnavail
            } else if !reached_echo {
                AcceptStat::ProgMismatch { low, high }
            } else {
                match call.proc_ {
                    ECHO_PROC_NULL | ECHO_PROC_ECHO => AcceptStat::Success,
                    // Success or GARBAGE_ARGS, depending on the arguments: checked below.
                    ECHO_PROC_OPAQUE => stat,
                    _ => AcceptStat::ProcUnavail,
                }
            };
            assert_eq!(stat, expected, "call {call:?}");
            if !reached_echo || stat != AcceptStat::Success {
                assert!(results.is_empty(), "results after status {stat:?}");
                return;
            }
            let mut w = Writer::new();
            match call.proc_ {
                ECHO_PROC_ECHO => w.put_opaque(args),
                ECHO_PROC_OPAQUE => {
                    let mut r = nfs::xdr::Reader::new(args);
                    let Ok(b) = r.opaque("echo arg", 64) else { panic!("success for garbage arguments") };
                    w.put_opaque(b);
                }
                _ => {}
            }
            assert_eq!(results, w.to_vec().as_slice(), "results of proc {}", call.proc_);
        }
    }
});
