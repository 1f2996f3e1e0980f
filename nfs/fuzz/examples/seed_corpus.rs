//! Writes the checked-in seed corpus (corpus/<target>/<name>): a few valid encoded calls and
//! near misses, made with the crate's own encoders (in nfs4_compound only the lock*
//! compounds; the other seeds there were written by hand). Run from nfs/fuzz:
//!   cargo run --example seed_corpus
//! It rewrites the files it owns and leaves others alone; commit what changed.

use std::path::Path;

use nfs::rpc::{self, Auth, AuthSys, CallHeader};
use nfs::xdr::Writer;
use nfs_fuzz::{ECHO_PROC_ECHO, ECHO_PROC_NULL, ECHO_PROC_OPAQUE, ECHO_PROGRAM};

const NFS_PROGRAM: u32 = 100_003;
const MOUNT_PROGRAM: u32 = 100_005;
const PORTMAP_PROGRAM: u32 = 100_000;

fn auth_sys() -> Auth {
    Auth::Sys(AuthSys {
        stamp: 0x5eed,
        machine: "client.example".into(),
        uid: 1000,
        gid: 1000,
        gids: vec![1000, 27, 100],
    })
}

/// A call: its header, then `args` (already XDR-encoded).
fn call(xid: u32, prog: u32, vers: u32, proc_: u32, auth: Auth, args: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    rpc::encode_call(&mut w, &CallHeader { xid, prog, vers, proc_, auth });
    let mut v = w.to_vec();
    v.extend_from_slice(args);
    v
}

fn xdr(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    f(&mut w);
    w.to_vec()
}

/// Calls worth starting from, by name.
fn calls() -> Vec<(&'static str, Vec<u8>)> {
    let fh = [0x42u8; 29];
    // Plausible argument shapes: a file handle; a directory handle and a name; a COMPOUND4args
    // with a tag, minor version and no operations; a MOUNT dirpath; a portmapper GETPORT.
    let fh_args = xdr(|w| w.put_opaque(&fh));
    let lookup_args = xdr(|w| {
        w.put_opaque(&fh);
        w.put_string("file-0001.dat");
    });
    let compound_args = xdr(|w| {
        w.put_string("seed");
        w.put_u32(0);
        w.put_u32(0);
    });
    let mount_args = xdr(|w| w.put_string("/export"));
    let getport_args = xdr(|w| {
        for v in [NFS_PROGRAM, 3, 6, 0] {
            w.put_u32(v);
        }
    });
    let mut bad_version = call(7, NFS_PROGRAM, 3, 0, Auth::None, &[]);
    bad_version[8..12].copy_from_slice(&3u32.to_be_bytes()); // rpcvers 3
    let mut gss = call(8, NFS_PROGRAM, 4, 1, Auth::None, &compound_args);
    gss[24..28].copy_from_slice(&6u32.to_be_bytes()); // cred flavor RPCSEC_GSS
    let mut reply = call(9, NFS_PROGRAM, 3, 0, Auth::None, &[]);
    reply[4..8].copy_from_slice(&1u32.to_be_bytes()); // a reply, not a call
    vec![
        ("nfs3_null_auth_none", call(1, NFS_PROGRAM, 3, 0, Auth::None, &[])),
        ("nfs3_getattr_auth_sys", call(2, NFS_PROGRAM, 3, 1, auth_sys(), &fh_args)),
        ("nfs3_lookup_auth_sys", call(3, NFS_PROGRAM, 3, 3, auth_sys(), &lookup_args)),
        ("nfs4_compound_empty", call(4, NFS_PROGRAM, 4, 1, auth_sys(), &compound_args)),
        ("mount3_mnt", call(5, MOUNT_PROGRAM, 3, 1, auth_sys(), &mount_args)),
        ("portmap_getport", call(6, PORTMAP_PROGRAM, 2, 3, Auth::None, &getport_args)),
        ("rpc_version_3", bad_version),
        ("cred_rpcsec_gss", gss),
        ("reply_not_call", reply),
    ]
}

/// Calls to the fuzz crate's Echo program (rpc_server with the program present).
fn echo_calls() -> Vec<(&'static str, Vec<u8>)> {
    let payload = xdr(|w| w.put_opaque(b"hello, echo"));
    vec![
        ("echo_null", call(20, ECHO_PROGRAM, 1, ECHO_PROC_NULL, Auth::None, &[])),
        ("echo_echo", call(21, ECHO_PROGRAM, 2, ECHO_PROC_ECHO, auth_sys(), b"any bytes")),
        ("echo_opaque", call(22, ECHO_PROGRAM, 1, ECHO_PROC_OPAQUE, Auth::None, &payload)),
        ("echo_opaque_garbage", call(23, ECHO_PROGRAM, 1, ECHO_PROC_OPAQUE, Auth::None, &[0, 0, 1])),
        ("echo_bad_version", call(24, ECHO_PROGRAM, 9, ECHO_PROC_NULL, Auth::None, &[])),
        ("echo_bad_proc", call(25, ECHO_PROGRAM, 1, 77, Auth::None, &[])),
    ]
}

/// COMPOUND4args for `nfs4_compound` (the files it owns there): the lock operations, 4.0
/// (open_to_lock_owner4, exist_lock_owner4, LOCKT, LOCKU, RELEASE_LOCKOWNER) and 4.1 (after
/// SEQUENCE, a blocking type, a range to the end of file).
fn lock_compounds() -> Vec<(&'static str, Vec<u8>)> {
    use nfs::v4::ops::{lock, lockt, locku, release_lockowner, sequence};
    use nfs::v4::ops::{LOCK, LOCKT, LOCKU, PUTFH, RELEASE_LOCKOWNER, SEQUENCE};
    use nfs::v4::state::client::ClientId;
    use nfs::v4::state::wire::{READ_LT, WRITEW_LT, WRITE_LT};
    use nfs::v4::state::Stateid;
    let compound = |minor: u32, ops: Vec<(u32, Vec<u8>)>| {
        xdr(|w| {
            w.put_string("seed");
            w.put_u32(minor);
            w.put_u32(ops.len() as u32);
            for (op, args) in &ops {
                w.put_u32(*op);
                w.put_opaque_fixed(args);
            }
        })
    };
    let putfh = (PUTFH, xdr(|w| w.put_opaque(&[0x42u8; 29])));
    let open = Stateid { seqid: 2, other: [7; 12] };
    let held = Stateid { seqid: 1, other: [8; 12] };
    let owner = b"lock-owner-1".to_vec();
    let new_owner = lock::LockerArgs::OpenToLockOwner {
        open_seqid: 3,
        open_stateid: open,
        lock_seqid: 0,
        clientid: ClientId(0x6000_0000_0000_0001),
        owner: owner.clone(),
    };
    let lock_new = lock::Args { locktype: WRITE_LT, reclaim: false, offset: 0, length: 4096, locker: new_owner };
    let existing = lock::LockerArgs::ExistLockOwner { lock_stateid: held, lock_seqid: 1 };
    let lock_more = lock::Args { locktype: READ_LT, reclaim: false, offset: 8192, length: 100, locker: existing };
    let test = lockt::Args { locktype: READ_LT, offset: 0, length: u64::MAX, clientid: ClientId(5), owner };
    let unlock = locku::Args { locktype: WRITE_LT, seqid: 2, lock_stateid: held, offset: 0, length: 4096 };
    let release = release_lockowner::Args { clientid: ClientId(5), owner: b"lock-owner-1".to_vec() };
    let v40 = compound(
        0,
        vec![
            putfh.clone(),
            (LOCK, xdr(|w| lock_new.encode(w))),
            (LOCK, xdr(|w| lock_more.encode(w))),
            (LOCKT, xdr(|w| test.encode(w))),
            (LOCKU, xdr(|w| unlock.encode(w))),
            (RELEASE_LOCKOWNER, xdr(|w| release.encode(w))),
        ],
    );
    let seq = sequence::Args { session: [3; 16], seqid: 1, slot: 0, highest_slot: 0, cache_this: false };
    let blocking = lock::Args { locktype: WRITEW_LT, length: u64::MAX, ..lock_new.clone() };
    let v41 = compound(
        1,
        vec![
            (SEQUENCE, xdr(|w| sequence::encode(&seq, w))),
            putfh,
            (LOCK, xdr(|w| blocking.encode(w))),
            (LOCKU, xdr(|w| unlock.encode(w))),
        ],
    );
    vec![("lock40", v40), ("lock41", v41)]
}

/// A one-fragment record.
fn record(body: &[u8]) -> Vec<u8> {
    let mut v = rpc::record_mark(body.len()).to_vec();
    v.extend_from_slice(body);
    v
}

/// A record cut into fragments of at most `fragment_bytes` (all but the last without the
/// last-fragment bit).
fn fragments(body: &[u8], fragment_bytes: usize) -> Vec<u8> {
    let mut v = Vec::new();
    let pieces: Vec<&[u8]> = body.chunks(fragment_bytes).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let mut mark = piece.len() as u32;
        if i + 1 == pieces.len() {
            mark |= rpc::LAST_FRAGMENT;
        }
        v.extend_from_slice(&mark.to_be_bytes());
        v.extend_from_slice(piece);
    }
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let calls = calls();
    for (name, bytes) in &calls {
        write(&corpus.join("rpc_call"), name, bytes)?;
        write(&corpus.join("rpc_server"), &format!("bare_{name}"), &[[0u8].as_slice(), bytes].concat())?;
    }
    for (name, bytes) in lock_compounds() {
        write(&corpus.join("nfs4_compound"), name, &bytes)?;
    }
    for (name, bytes) in echo_calls() {
        write(&corpus.join("rpc_server"), name, &[[1u8].as_slice(), &bytes].concat())?;
    }
    // record_marking: limit (u16, big-endian), chunk seed, stream.
    let stream_head = |limit: u16, chunk_seed: u8| {
        let mut v = limit.to_be_bytes().to_vec();
        v.push(chunk_seed);
        v
    };
    let (one, two) = (&calls[1].1, &calls[3].1);
    let mut stream = stream_head(4096, 7);
    stream.extend(record(one));
    stream.extend(fragments(two, 12));
    stream.extend(record(&[]));
    write(&corpus.join("record_marking"), "three_records", &stream)?;
    let mut too_long = stream_head(64, 255);
    too_long.extend(record(one));
    too_long.extend(fragments(two, 40));
    write(&corpus.join("record_marking"), "too_long", &too_long)?;
    let mut partial = stream_head(1024, 0);
    partial.extend(record(one));
    partial.extend_from_slice(&record(two)[..10]);
    write(&corpus.join("record_marking"), "trailing_partial", &partial)?;
    println!("seed corpus written under {}", corpus.display());
    Ok(())
}
