//! NFSv4.0 OPEN (state work) then READ (files work) with the open stateid, then CLOSE.
//! Needs the state work merged: move it from tests/pending/ to tests/ then (it was run on a
//! trial merge of both branches).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use nfs::v4::ops;
use nfs::v4::Status;
use nfs::xdr::{Reader, Writer};

fn args(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    f(&mut w);
    w.to_vec()
}

#[test]
fn open_read_close_v4_0() {
    let f = Fixture::new();
    let s = f.server();
    let auth = sys(1000, 100);
    let c = loopback();
    let mut r = s.call(
        &c,
        &auth,
        &Ops::new(0).raw(
            ops::SETCLIENTID,
            args(|w| {
                w.put_opaque_fixed(&[1; 8]);
                w.put_opaque(b"client-1");
                w.put_u32(0x4000_0000);
                w.put_string("tcp");
                w.put_string("127.0.0.1.3.4");
                w.put_u32(1);
            }),
        ),
    );
    r.ok(ops::SETCLIENTID);
    let (clientid, confirm) = {
        let rest = r.rest();
        let mut rd = Reader::new(&rest);
        (rd.u64("clientid").unwrap(), rd.opaque_fixed("confirm", 8).unwrap().to_vec())
    };
    let mut r = s.call(
        &c,
        &auth,
        &Ops::new(0).raw(
            ops::SETCLIENTID_CONFIRM,
            args(|w| {
                w.put_u64(clientid);
                w.put_opaque_fixed(&confirm);
            }),
        ),
    );
    r.ok(ops::SETCLIENTID_CONFIRM);
    let open = args(|w| {
        w.put_u32(1); // seqid
        w.put_u32(1); // share access READ
        w.put_u32(0); // deny none
        w.put_u64(clientid);
        w.put_opaque(b"owner-1");
        w.put_u32(0); // NOCREATE
        w.put_u32(0); // CLAIM_NULL
        w.put_string("big.bin");
    });
    let mut r = s.call(&c, &auth, &Ops::new(0).walk("/data").raw(ops::OPEN, open).getfh());
    assert_eq!(r.status, 0, "OPEN");
    r.walked("/data");
    r.ok(ops::OPEN);
    let rest = r.rest();
    let mut rd = Reader::new(&rest);
    let mut stateid = [0u8; 16];
    stateid.copy_from_slice(rd.opaque_fixed("stateid", 16).unwrap());
    rd.bool("atomic").unwrap();
    rd.u64("before").unwrap();
    rd.u64("after").unwrap();
    let rflags = rd.u32("rflags").unwrap();
    let mut rr = s.call(&c, &auth, &Ops::new(0).walk("/data/big.bin").getfh());
    rr.walked("/data/big.bin");
    let fh = rr.getfh();
    if rflags & 2 != 0 {
        let mut r = s.call(
            &c,
            &auth,
            &Ops::new(0).putfh(&fh).raw(
                ops::OPEN_CONFIRM,
                args(|w| {
                    w.put_opaque_fixed(&stateid);
                    w.put_u32(2);
                }),
            ),
        );
        r.ok(ops::PUTFH);
        r.ok(ops::OPEN_CONFIRM);
        let rest = r.rest();
        stateid.copy_from_slice(&rest[..16]);
    }
    let mut r = s.call(&c, &auth, &Ops::new(0).putfh(&fh).read_with(stateid, 4096, 1000));
    r.ok(ops::PUTFH);
    let (_, data) = r.read_data();
    assert!(data[..] == pattern(BIG_BYTES)[4096..5096]);
    // The open stateid is of that file only.
    let mut r = s.call(&c, &auth, &Ops::new(0).walk("/data/small.txt").read_with(stateid, 0, 10));
    r.walked("/data/small.txt");
    let st = r.op(ops::READ);
    assert_ne!(st, Status::OK);
    eprintln!("other file with this stateid: {st:?}");
    let mut r = s.call(
        &c,
        &auth,
        &Ops::new(0).putfh(&fh).raw(
            ops::CLOSE,
            args(|w| {
                w.put_u32(3);
                w.put_opaque_fixed(&stateid);
            }),
        ),
    );
    r.ok(ops::PUTFH);
    r.ok(ops::CLOSE);
    let mut r = s.call(&c, &auth, &Ops::new(0).putfh(&fh).read_with(stateid, 0, 10));
    r.ok(ops::PUTFH);
    let st = r.op(ops::READ);
    eprintln!("after CLOSE: {st:?}");
    assert_ne!(st, Status::OK);
}
