//! The call header codec: `decode_call` on arbitrary bytes never panics; a call that decodes
//! re-encodes (`encode_call`) to one that decodes to the same header and arguments; a call that
//! does not decode gets exactly the rejection its error calls for (`encode_rejection`), as a reply
//! to its xid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nfs::rpc::{self, Auth, CallError, ReplyHeader, AUTH_BADCRED, AUTH_TOOWEAK, MACHINE_NAME_BYTES_MAX};
use nfs::xdr::Writer;
use nfs_fuzz::{check_reply, xid_of};

fuzz_target!(|record: &[u8]| {
    match rpc::decode_call(record) {
        Ok((header, args)) => {
            // A machine name that was not UTF-8 comes back longer (U+FFFD is 3 bytes) and may no
            // longer fit: only names that still fit can round-trip.
            let name_fits = match &header.auth {
                Auth::Sys(s) => s.machine.len() <= MACHINE_NAME_BYTES_MAX,
                Auth::None => true,
            };
            if name_fits {
                let mut w = Writer::new();
                rpc::encode_call(&mut w, &header);
                let mut again = w.to_vec();
                again.extend_from_slice(args);
                match rpc::decode_call(&again) {
                    Ok((header2, args2)) => {
                        assert_eq!(header2, header, "header changed in a round trip");
                        assert_eq!(args2, args, "arguments changed in a round trip");
                    }
                    Err(e) => panic!("a re-encoded call does not decode: {e}"),
                }
            }
        }
        Err(e) => {
            if record.len() >= 8 {
                assert!(!matches!(e, CallError::Unanswerable(_)), "xid and type present, yet unanswerable: {e}");
                assert_eq!(e.xid(), xid_of(record));
            }
            let reply = rpc::encode_rejection(&e).map(|w| w.to_vec());
            match (&e, reply) {
                (CallError::Unanswerable(_) | CallError::NotACall { .. }, None) => {}
                (CallError::Unanswerable(_) | CallError::NotACall { .. }, Some(r)) => {
                    panic!("{e}: answered with {r:02x?}")
                }
                (_, None) => panic!("{e}: not answered"),
                (_, Some(r)) => {
                    let (header, _) = check_reply(record, &r);
                    let xid = e.xid().unwrap_or_default();
                    let expected = match e {
                        CallError::RpcMismatch { .. } => ReplyHeader::RpcMismatch { xid },
                        CallError::WeakAuth { .. } => ReplyHeader::AuthError { xid, stat: AUTH_TOOWEAK },
                        _ => ReplyHeader::AuthError { xid, stat: AUTH_BADCRED },
                    };
                    assert_eq!(header, expected, "{e}");
                }
            }
        }
    }
});
