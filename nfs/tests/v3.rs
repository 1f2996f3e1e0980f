//! NFSv3, MOUNT and the portmapper over a real engine: a local-directory bucket, a file-backed
//! block cache, calls encoded here and served by `RpcServer::serve` (no transport), and, when
//! Debian's libnfs-utils is installed, `nfs-ls` / `nfs-cat` against a small blocking TCP server.
#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use blockstore::{DeviceSpec, FormatOptions, Store, StoreConfig};
use bytes::BytesMut;
use engine::object::store::{ObjectStoreConfig, StoreClient};
use engine::{BucketSpec, Engine, EngineConfig, ExportSpec};
use nfs::export::{ExportPolicy, Exports};
use nfs::mount::Mount;
use nfs::portmap::Portmap;
use nfs::rpc::{
    decode_reply, encode_call, record_mark, AcceptStat, Auth, AuthSys, CallHeader, RecordDecoder, ReplyHeader,
};
use nfs::service::{ConnInfo, RpcServer};
use nfs::v3::types::{proc_, Nfsstat3};
use nfs::v3::Nfs3;
use nfs::xdr::{Reader, Writer};
use proptest::prelude::*;

const MIB: usize = 1 << 20;
const BIG_BYTES: usize = 5 * MIB + 4321;
const MANY_FILES: usize = 3000;
const OWNER: u32 = 1000;
/// Listing TTL of /ro: changes in the bucket show after it.
const RO_TTL: Duration = Duration::from_millis(300);

const NFS: u32 = 100_003;
const MOUNT: u32 = 100_005;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7) ^ ((i >> 12) as u8)).collect()
}

/// An engine over a local-directory bucket, and the three programs over it.
struct Fixture {
    _dir: tempfile::TempDir,
    exports: Exports,
    server: RpcServer,
}

/// NFS, MOUNT and a portmapper that sends clients to `nfs_port`.
fn programs(exports: &Exports, nfs_port: u16, portmap_port: u16) -> RpcServer {
    RpcServer::new()
        .with(Arc::new(Nfs3::new(exports.clone())))
        .with(Arc::new(Mount::new(exports.clone())))
        .with(Arc::new(Portmap::for_ports(nfs_port, nfs_port, portmap_port)))
}

fn make_bucket(root: &Path) {
    std::fs::create_dir_all(root.join("many")).unwrap();
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello world\n").unwrap();
    std::fs::write(root.join("big.bin"), pattern(BIG_BYTES)).unwrap();
    std::fs::write(root.join("sub/inner.txt"), b"inner").unwrap();
    for i in 0..MANY_FILES {
        std::fs::write(root.join(format!("many/f{i:04}")), i.to_string()).unwrap();
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    make_bucket(&bucket);
    let cache = dir.path().join("cache.img");
    std::fs::File::create(&cache).unwrap().set_len(256 * MIB as u64).unwrap();
    let spec = DeviceSpec::File { path: cache.clone(), iopoll: false };
    blockstore::format(&spec, &FormatOptions { segment_bytes: 16 * MIB as u64, shard_count: 1 }).unwrap();
    let store = Store::open(&spec, StoreConfig::default()).unwrap();
    let client = StoreClient::new(&ObjectStoreConfig::Local { root: bucket }).unwrap();
    let buckets = vec![BucketSpec { name: "b".into(), client: Arc::new(client), gets_in_flight_max: 8 }];
    // /data: read-write, files 0640 owned by OWNER, root squashed. /ro: read-only, root not
    // squashed, short listing TTL. /private: only 10.0.0.0/8.
    let mut data = ExportSpec::new("/data", "b");
    (data.file_mode, data.uid, data.gid) = (0o640, OWNER, OWNER);
    let mut ro = ExportSpec::new("/ro", "b");
    (ro.file_mode, ro.uid, ro.gid) = (0o640, OWNER, OWNER);
    ro.listing_ttl = RO_TTL;
    let private = ExportSpec::new("/private", "b");
    let config = EngineConfig { backfill_threads: 1, recent_bytes_max: 16 * MIB as u64, ..EngineConfig::default() };
    let engine = Engine::new(config, store, &dir.path().join("meta"), buckets, vec![data, ro, private]).unwrap();
    let mut ro_policy = ExportPolicy::loopback("/ro");
    (ro_policy.read_only, ro_policy.root_squash) = (true, false);
    let private_policy = ExportPolicy {
        path: "/private".into(),
        clients: vec!["10.0.0.0/8".parse().unwrap()],
        read_only: false,
        root_squash: true,
    };
    let exports =
        Exports::new(Arc::new(engine), vec![ExportPolicy::loopback("/data"), ro_policy, private_policy]).unwrap();
    let server = programs(&exports, 2049, 111);
    Fixture { _dir: dir, exports, server }
}

fn sys(uid: u32) -> Auth {
    Auth::Sys(AuthSys { stamp: 1, machine: "test".into(), uid, gid: uid, gids: vec![] })
}

/// A client talking to `RpcServer::serve` directly.
struct Client<'a> {
    server: &'a RpcServer,
    conn: ConnInfo,
    auth: Auth,
    xid: Cell<u32>,
}

impl<'a> Client<'a> {
    fn new(f: &'a Fixture, peer: &str, auth: Auth) -> Client<'a> {
        let peer: SocketAddr = peer.parse().unwrap();
        let local: SocketAddr = "127.0.0.1:2049".parse().unwrap();
        Client { server: &f.server, conn: ConnInfo { id: 1, peer, local, core: 0 }, auth, xid: Cell::new(1) }
    }

    /// One call; the accept status and the results.
    fn call(&self, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> (AcceptStat, Vec<u8>) {
        let xid = self.xid.get();
        self.xid.set(xid + 1);
        let mut w = Writer::new();
        encode_call(&mut w, &CallHeader { xid, prog, vers, proc_, auth: self.auth.clone() });
        let mut record = w.to_vec();
        record.extend_from_slice(args);
        let reply = futures::executor::block_on(self.server.serve(&self.conn, &record)).unwrap().to_vec();
        let (h, rest) = decode_reply(&reply).unwrap();
        match h {
            ReplyHeader::Accepted { xid: x, stat } => {
                assert_eq!(x, xid);
                (stat, rest.to_vec())
            }
            other => panic!("rejected: {other:?}"),
        }
    }

    fn nfs(&self, proc_: u32, args: &[u8]) -> Vec<u8> {
        let (stat, res) = self.call(NFS, 3, proc_, args);
        assert_eq!(stat, AcceptStat::Success, "NFS proc {proc_}");
        res
    }

    fn mnt(&self, path: &str) -> (u32, Vec<u8>) {
        let (stat, res) = self.call(MOUNT, 3, 1, &args(|w| w.put_string(path)));
        assert_eq!(stat, AcceptStat::Success);
        let mut r = Reader::new(&res);
        let status = r.u32("status").unwrap();
        if status != 0 {
            return (status, Vec::new());
        }
        let fh = r.opaque("fh", 64).unwrap().to_vec();
        let n = r.u32("flavors").unwrap();
        let flavors: Vec<u32> = (0..n).map(|_| r.u32("flavor").unwrap()).collect();
        assert_eq!(flavors, [1, 0]);
        (0, fh)
    }

    fn root(&self, path: &str) -> Vec<u8> {
        let (status, fh) = self.mnt(path);
        assert_eq!(status, 0, "MNT {path}");
        fh
    }

    fn lookup(&self, dir: &[u8], name: &str) -> Result<(Vec<u8>, Attr), u32> {
        let res = self.nfs(
            proc_::LOOKUP,
            &args(|w| {
                w.put_opaque(dir);
                w.put_string(name);
            }),
        );
        let mut r = Reader::new(&res);
        let status = r.u32("status").unwrap();
        if status != 0 {
            return Err(status);
        }
        let fh = r.opaque("fh", 64).unwrap().to_vec();
        let attr = post_op_attr(&mut r).unwrap();
        assert!(post_op_attr(&mut r).is_some(), "dir attributes");
        Ok((fh, attr))
    }

    fn path(&self, root: &[u8], path: &str) -> Vec<u8> {
        let mut fh = root.to_vec();
        for name in path.split('/') {
            fh = self.lookup(&fh, name).unwrap().0;
        }
        fh
    }

    fn status_of(&self, proc_: u32, args: &[u8]) -> u32 {
        let res = self.nfs(proc_, args);
        Reader::new(&res).u32("status").unwrap()
    }

    /// READ: (data, eof), or the status.
    fn read(&self, fh: &[u8], offset: u64, count: u32) -> Result<(Vec<u8>, bool), u32> {
        let res = self.nfs(
            proc_::READ,
            &args(|w| {
                w.put_opaque(fh);
                w.put_u64(offset);
                w.put_u32(count);
            }),
        );
        let mut r = Reader::new(&res);
        let status = r.u32("status").unwrap();
        if status != 0 {
            return Err(status);
        }
        post_op_attr(&mut r).unwrap();
        let n = r.u32("count").unwrap();
        let eof = r.bool("eof").unwrap();
        let data = r.opaque("data", usize::MAX).unwrap().to_vec();
        assert_eq!(data.len(), n as usize);
        assert_eq!(r.remaining(), 0);
        Ok((data, eof))
    }

    fn access(&self, fh: &[u8], want: u32) -> u32 {
        let res = self.nfs(
            proc_::ACCESS,
            &args(|w| {
                w.put_opaque(fh);
                w.put_u32(want);
            }),
        );
        let mut r = Reader::new(&res);
        assert_eq!(r.u32("status").unwrap(), 0);
        post_op_attr(&mut r).unwrap();
        r.u32("access").unwrap()
    }
}

fn args(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    f(&mut w);
    w.to_vec()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Attr {
    ftype: u32,
    mode: u32,
    uid: u32,
    size: u64,
    fsid: u64,
    fileid: u64,
}

fn post_op_attr(r: &mut Reader<'_>) -> Option<Attr> {
    if !r.bool("attributes_follow").unwrap() {
        return None;
    }
    let ftype = r.u32("type").unwrap();
    let mode = r.u32("mode").unwrap();
    let _nlink = r.u32("nlink").unwrap();
    let uid = r.u32("uid").unwrap();
    let _gid = r.u32("gid").unwrap();
    let size = r.u64("size").unwrap();
    let _used = r.u64("used").unwrap();
    let _rdev = r.u64("rdev").unwrap();
    let fsid = r.u64("fsid").unwrap();
    let fileid = r.u64("fileid").unwrap();
    for _ in 0..3 {
        r.u64("time").unwrap();
    }
    Some(Attr { ftype, mode, uid, size, fsid, fileid })
}

fn getattr(c: &Client<'_>, fh: &[u8]) -> Result<Attr, u32> {
    let res = c.nfs(proc_::GETATTR, &args(|w| w.put_opaque(fh)));
    let mut r = Reader::new(&res);
    match r.u32("status").unwrap() {
        0 => {
            // fattr3 is post_op_attr without the flag: put one in front.
            let mut v = 1u32.to_be_bytes().to_vec();
            v.extend_from_slice(r.rest());
            Ok(post_op_attr(&mut Reader::new(&v)).unwrap())
        }
        s => Err(s),
    }
}

#[test]
fn mount_lookup_getattr() {
    let f = fixture();
    let c = Client::new(&f, "127.0.0.1:800", sys(OWNER));
    let root = c.root("/data");
    assert_eq!(root.len(), 29);
    assert_eq!(c.root("/data/"), root);
    let (hello, attr) = c.lookup(&root, "hello.txt").unwrap();
    assert_eq!((attr.ftype, attr.size, attr.mode, attr.uid), (1, 12, 0o640, OWNER));
    let got = getattr(&c, &hello).unwrap();
    assert_eq!((got.size, got.fileid, got.ftype), (12, attr.fileid, 1));
    let root_attr = getattr(&c, &root).unwrap();
    assert_eq!((root_attr.ftype, root_attr.mode), (2, 0o755));
    assert_eq!(root_attr.fsid, attr.fsid);
    // `.` and `..` at the root are the root.
    assert_eq!(c.lookup(&root, ".").unwrap().0, root);
    assert_eq!(c.lookup(&root, "..").unwrap().0, root);
    let sub = c.lookup(&root, "sub").unwrap().0;
    assert_eq!(c.lookup(&sub, "..").unwrap().0, root);
    // MNT of a directory below the export is that directory.
    assert_eq!(c.root("/data/sub"), sub);
    assert_eq!(c.lookup(&sub, "inner.txt").unwrap().1.size, 5);
    // Failures.
    assert_eq!(c.lookup(&root, "missing").unwrap_err(), Nfsstat3::Noent.code());
    assert_eq!(c.lookup(&hello, "x").unwrap_err(), Nfsstat3::Notdir.code());
    assert_eq!(c.lookup(&root, &"n".repeat(300)).unwrap_err(), Nfsstat3::Nametoolong.code());
    assert_eq!(c.mnt("/nope").0, 2);
    assert_eq!(c.mnt("/data/missing").0, 2);
    assert_eq!(c.mnt("/data/hello.txt").0, 20);
    assert_eq!(c.mnt("/dat").0, 2);
    // Exports in different export namespaces are different filesystems.
    let ro = c.root("/ro");
    assert_ne!(getattr(&c, &ro).unwrap().fsid, root_attr.fsid);
    // READLINK: nothing is a link.
    assert_eq!(c.status_of(proc_::READLINK, &args(|w| w.put_opaque(&hello))), Nfsstat3::Inval.code());
}

#[test]
fn read_matches_file() {
    let f = fixture();
    let c = Client::new(&f, "127.0.0.1:800", sys(OWNER));
    let root = c.root("/data");
    let (big, attr) = c.lookup(&root, "big.bin").unwrap();
    assert_eq!(attr.size, BIG_BYTES as u64);
    let want = pattern(BIG_BYTES);
    for (offset, count) in [(0, 4096), (MIB - 3, 10_000), (4 * MIB + 100, 65_536), (123, 1), (MIB, MIB)] {
        let (data, eof) = c.read(&big, offset as u64, count as u32).unwrap();
        assert_eq!(data, want[offset..offset + count], "offset {offset}");
        assert!(!eof);
    }
    // The tail: short, with eof; at and past the end: nothing, eof.
    let (data, eof) = c.read(&big, (BIG_BYTES - 10) as u64, 4096).unwrap();
    assert_eq!((&data[..], eof), (&want[BIG_BYTES - 10..], true));
    assert_eq!(c.read(&big, BIG_BYTES as u64, 4096).unwrap(), (vec![], true));
    assert_eq!(c.read(&big, u64::MAX, 4096).unwrap(), (vec![], true));
    // A count above rtmax is clamped to 1 MiB.
    let (data, _) = c.read(&big, 0, 3 * MIB as u32).unwrap();
    assert_eq!(data.len(), MIB);
    // The whole file, sequentially.
    let mut all = Vec::new();
    loop {
        let (data, eof) = c.read(&big, all.len() as u64, MIB as u32).unwrap();
        all.extend_from_slice(&data);
        if eof {
            break;
        }
    }
    assert!(all == want, "whole file differs");
    // Odd lengths are padded on the wire (the reader above checks the record ends exactly).
    let (hello, _) = c.lookup(&root, "hello.txt").unwrap();
    assert_eq!(c.read(&hello, 0, 100).unwrap(), (b"hello world\n".to_vec(), true));
    assert_eq!(c.read(&hello, 6, 3).unwrap(), (b"wor".to_vec(), false));
    assert_eq!(c.read(&root, 0, 10).unwrap_err(), Nfsstat3::Isdir.code());
}

/// Reads a whole directory with READDIR (`plus == false`) or READDIRPLUS, `count` bytes a
/// call; checks each reply fits; returns (name, fileid, handle) in order.
fn list_all(c: &Client<'_>, dir: &[u8], plus: bool, count: u32) -> Vec<(String, u64, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let (mut cookie, mut verf) = (0u64, [0u8; 8]);
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls < 10_000, "no progress");
        let res = c.nfs(
            if plus { proc_::READDIRPLUS } else { proc_::READDIR },
            &args(|w| {
                w.put_opaque(dir);
                w.put_u64(cookie);
                w.put_opaque_fixed(&verf);
                if plus {
                    w.put_u32(count / 4);
                }
                w.put_u32(count);
            }),
        );
        assert!(res.len() <= count as usize, "reply of {} bytes for count {count}", res.len());
        let mut r = Reader::new(&res);
        assert_eq!(r.u32("status").unwrap(), 0);
        post_op_attr(&mut r).unwrap();
        verf.copy_from_slice(r.opaque_fixed("verf", 8).unwrap());
        let mut n = 0;
        while r.bool("entry follows").unwrap() {
            let fileid = r.u64("fileid").unwrap();
            let name = r.string("name", 255).unwrap().to_string();
            cookie = r.u64("cookie").unwrap();
            let mut fh = None;
            if plus {
                let attr = post_op_attr(&mut r).unwrap();
                assert_eq!(attr.fileid, fileid);
                if r.bool("handle follows").unwrap() {
                    fh = Some(r.opaque("fh", 64).unwrap().to_vec());
                }
            }
            out.push((name, fileid, fh));
            n += 1;
        }
        let eof = r.bool("eof").unwrap();
        assert_eq!(r.remaining(), 0);
        if eof {
            return out;
        }
        assert!(n > 0, "a reply without entries and without eof");
    }
}

#[test]
fn readdir_pages_over_3000_entries() {
    let f = fixture();
    let c = Client::new(&f, "127.0.0.1:800", sys(OWNER));
    let root = c.root("/data");
    let many = c.lookup(&root, "many").unwrap().0;
    let mut expected: Vec<String> = (0..MANY_FILES).map(|i| format!("f{i:04}")).collect();
    expected.push(".".into());
    expected.push("..".into());
    expected.sort();
    for (plus, count) in [(false, 512), (false, 8192), (true, 1024), (true, 32_768)] {
        let listed = list_all(&c, &many, plus, count);
        let mut names: Vec<String> = listed.iter().map(|e| e.0.clone()).collect();
        names.sort();
        assert_eq!(names, expected, "plus {plus} count {count}");
        if plus {
            // Handles and fileids agree with LOOKUP.
            for (name, fileid, fh) in listed.iter().filter(|e| e.0.starts_with('f')).step_by(397) {
                let (lfh, attr) = c.lookup(&many, name).unwrap();
                assert_eq!((fh.as_ref().unwrap(), *fileid), (&lfh, attr.fileid));
            }
        }
    }
    // A count too small for one entry.
    let res = c.nfs(
        proc_::READDIR,
        &args(|w| {
            w.put_opaque(&many);
            w.put_u64(0);
            w.put_opaque_fixed(&[0; 8]);
            w.put_u32(100);
        }),
    );
    assert_eq!(Reader::new(&res).u32("status").unwrap(), Nfsstat3::Toosmall.code());
    // A cookie with a foreign verifier.
    let res = c.nfs(
        proc_::READDIR,
        &args(|w| {
            w.put_opaque(&many);
            w.put_u64(100);
            w.put_opaque_fixed(b"xxxxxxxx");
            w.put_u32(4096);
        }),
    );
    assert_eq!(Reader::new(&res).u32("status").unwrap(), Nfsstat3::BadCookie.code());
    // READDIR of a file.
    let hello = c.lookup(&root, "hello.txt").unwrap().0;
    let res = c.nfs(
        proc_::READDIR,
        &args(|w| {
            w.put_opaque(&hello);
            w.put_u64(0);
            w.put_opaque_fixed(&[0; 8]);
            w.put_u32(4096);
        }),
    );
    assert_eq!(Reader::new(&res).u32("status").unwrap(), Nfsstat3::Notdir.code());
}

#[test]
fn export_access_denied_outside_client_list() {
    let f = fixture();
    let local = Client::new(&f, "127.0.0.1:800", sys(OWNER));
    let root = local.root("/data");
    let outsider = Client::new(&f, "192.168.7.7:800", sys(OWNER));
    assert_eq!(outsider.mnt("/data").0, 13);
    assert_eq!(getattr(&outsider, &root).unwrap_err(), Nfsstat3::Acces.code());
    assert_eq!(outsider.read(&local.path(&root, "hello.txt"), 0, 10).unwrap_err(), Nfsstat3::Acces.code());
    // /private takes 10.0.0.0/8 only.
    assert_eq!(local.mnt("/private").0, 13);
    let inside = Client::new(&f, "10.1.2.3:800", sys(OWNER));
    let private = inside.root("/private");
    assert!(getattr(&inside, &private).is_ok());
    assert_eq!(getattr(&local, &private).unwrap_err(), Nfsstat3::Acces.code());
    // EXPORT lists every export with its client ranges.
    let (stat, res) = local.call(MOUNT, 3, 5, &[]);
    assert_eq!(stat, AcceptStat::Success);
    let mut r = Reader::new(&res);
    let mut exports = Vec::new();
    while r.bool("export follows").unwrap() {
        let dir = r.string("dir", 1024).unwrap().to_string();
        let mut groups = Vec::new();
        while r.bool("group follows").unwrap() {
            groups.push(r.string("group", 255).unwrap().to_string());
        }
        exports.push((dir, groups));
    }
    exports.sort();
    assert_eq!(exports.len(), 3);
    assert_eq!(exports[1], ("/private".to_string(), vec!["10.0.0.0/8".to_string()]));
    // DUMP shows the mounts handed out; UMNTALL forgets the caller's.
    let dump = |c: &Client<'_>| {
        let (_, res) = c.call(MOUNT, 3, 2, &[]);
        let mut r = Reader::new(&res);
        let mut out = Vec::new();
        while r.bool("more").unwrap() {
            out.push((r.string("host", 255).unwrap().to_string(), r.string("dir", 1024).unwrap().to_string()));
        }
        out
    };
    assert!(dump(&local).contains(&("10.1.2.3".to_string(), "/private".to_string())));
    assert!(dump(&local).contains(&("127.0.0.1".to_string(), "/data".to_string())));
    let (stat, _) = local.call(MOUNT, 3, 4, &[]);
    assert_eq!(stat, AcceptStat::Success);
    assert_eq!(dump(&local), vec![("10.1.2.3".to_string(), "/private".to_string())]);
}

#[test]
fn access_follows_mode_root_squash_and_export() {
    let f = fixture();
    let owner = Client::new(&f, "127.0.0.1:800", sys(OWNER));
    let root_user = Client::new(&f, "127.0.0.1:801", sys(0));
    let all = 0x3f;
    let data = owner.root("/data");
    let hello = owner.path(&data, "hello.txt");
    // The owner reads and writes (0640; the export is read-write): modify, extend; no execute.
    assert_eq!(owner.access(&hello, all), 0x01 | 0x04 | 0x08);
    assert_eq!(owner.access(&hello, 0x01), 0x01);
    // Root on /data is squashed to nobody: "other" has no bits on 0640.
    assert_eq!(root_user.access(&hello, all), 0);
    assert_eq!(root_user.read(&hello, 0, 5).unwrap_err(), Nfsstat3::Acces.code());
    // Directories (0755): read and lookup for anyone; modify, extend and delete (entries) for
    // the owner.
    assert_eq!(root_user.access(&data, all), 0x01 | 0x02);
    assert_eq!(owner.access(&data, all), 0x01 | 0x02 | 0x04 | 0x08 | 0x10);
    // /ro does not squash root, and is read-only.
    let ro = root_user.root("/ro");
    let ro_hello = root_user.path(&ro, "hello.txt");
    assert_eq!(root_user.access(&ro_hello, all), 0x01);
    assert_eq!(root_user.read(&ro_hello, 0, 5).unwrap().0, b"hello");
    // Modifying procedures: ROFS on /ro; on /data the mode bits decide (v3_write.rs has more).
    let write = |fh: &[u8]| {
        args(|w| {
            w.put_opaque(fh);
            w.put_u64(0);
            w.put_u32(3);
            w.put_u32(2);
            w.put_opaque(b"abc");
        })
    };
    assert_eq!(owner.status_of(proc_::WRITE, &write(&ro_hello)), Nfsstat3::Rofs.code());
    assert_eq!(root_user.status_of(proc_::WRITE, &write(&hello)), Nfsstat3::Acces.code());
    let remove = |dir: &[u8]| {
        args(|w| {
            w.put_opaque(dir);
            w.put_string("hello.txt");
        })
    };
    assert_eq!(owner.status_of(proc_::REMOVE, &remove(&ro)), Nfsstat3::Rofs.code());
    assert_eq!(root_user.status_of(proc_::REMOVE, &remove(&data)), Nfsstat3::Acces.code());
    let rename = args(|w| {
        w.put_opaque(&data);
        w.put_string("a");
        w.put_opaque(&data);
        w.put_string("b");
    });
    let res = owner.nfs(proc_::RENAME, &rename);
    let mut r = Reader::new(&res);
    assert_eq!(r.u32("status").unwrap(), Nfsstat3::Noent.code());
    for _ in 0..2 {
        assert!(r.bool("pre_op_attr").unwrap());
        r.opaque_fixed("wcc_attr", 24).unwrap();
        assert!(post_op_attr(&mut r).is_some());
    }
    assert_eq!(r.remaining(), 0);
    // FSSTAT: a bucket's worth of space, of which what the cache can hold unpublished is
    // available; nothing available on a read-only export.
    let fsstat = |fh: &[u8]| {
        let res = owner.nfs(proc_::FSSTAT, &args(|w| w.put_opaque(fh)));
        let mut r = Reader::new(&res);
        assert_eq!(r.u32("status").unwrap(), 0);
        post_op_attr(&mut r).unwrap();
        let v: Vec<u64> = (0..6).map(|_| r.u64("n").unwrap()).collect();
        v
    };
    let space = fsstat(&data);
    assert_eq!((space[0], space[1]), (1 << 50, 1 << 50));
    assert!(space[2] > 100 * MIB as u64 && space[2] < 256 * MIB as u64, "available {}", space[2]);
    assert_eq!(fsstat(&ro)[2], 0);
}

#[test]
fn fsinfo_and_pathconf() {
    let f = fixture();
    let c = Client::new(&f, "127.0.0.1:800", sys(OWNER));
    let root = c.root("/data");
    let res = c.nfs(proc_::FSINFO, &args(|w| w.put_opaque(&root)));
    let mut r = Reader::new(&res);
    assert_eq!(r.u32("status").unwrap(), 0);
    post_op_attr(&mut r).unwrap();
    let sizes: Vec<u32> = (0..7).map(|_| r.u32("size").unwrap()).collect();
    assert_eq!(sizes, [MIB as u32, MIB as u32, 4096, MIB as u32, MIB as u32, 4096, 65_536]);
    assert_eq!(r.u64("maxfilesize").unwrap(), i64::MAX as u64);
    assert_eq!((r.u32("s").unwrap(), r.u32("ns").unwrap()), (0, 1));
    // Symbolic links, homogeneous, times settable; no hard links.
    assert_eq!(r.u32("properties").unwrap(), 0x02 | 0x08 | 0x10);
    assert_eq!(r.remaining(), 0);
    let res = c.nfs(proc_::PATHCONF, &args(|w| w.put_opaque(&root)));
    let mut r = Reader::new(&res);
    assert_eq!(r.u32("status").unwrap(), 0);
    post_op_attr(&mut r).unwrap();
    assert_eq!((r.u32("linkmax").unwrap(), r.u32("name_max").unwrap()), (1, 255));
    assert_eq!(r.remaining(), 4 * 4);
    assert_eq!(c.nfs(proc_::NULL, &[]), Vec::<u8>::new());
}

#[test]
fn bad_and_stale_handles() {
    let f = fixture();
    let c = Client::new(&f, "127.0.0.1:800", sys(OWNER));
    let root = c.root("/data");
    let hello = c.path(&root, "hello.txt");
    // Another generation of the same inode: the file was replaced.
    let mut replaced = hello.clone();
    replaced[28] ^= 1;
    assert_eq!(getattr(&c, &replaced).unwrap_err(), Nfsstat3::Stale.code());
    // Another store.
    let mut other_store = hello.clone();
    other_store[1] ^= 1;
    assert_eq!(getattr(&c, &other_store).unwrap_err(), Nfsstat3::Stale.code());
    // An export id nobody has.
    let mut no_export = hello.clone();
    no_export[9..13].copy_from_slice(&999u32.to_be_bytes());
    assert_eq!(getattr(&c, &no_export).unwrap_err(), Nfsstat3::Stale.code());
    // An inode that never existed.
    let mut no_inode = hello.clone();
    no_inode[13..21].copy_from_slice(&(1u64 << 60).to_be_bytes());
    assert_eq!(c.read(&no_inode, 0, 1).unwrap_err(), Nfsstat3::Stale.code());
    // Not one of our handles at all.
    assert_eq!(getattr(&c, &hello[..28]).unwrap_err(), Nfsstat3::Badhandle.code());
    assert_eq!(getattr(&c, &[]).unwrap_err(), Nfsstat3::Badhandle.code());
    let mut version = hello.clone();
    version[0] = 9;
    assert_eq!(getattr(&c, &version).unwrap_err(), Nfsstat3::Badhandle.code());
}

#[test]
fn removed_object_makes_its_handle_stale() {
    let f = fixture();
    let c = Client::new(&f, "127.0.0.1:800", sys(OWNER));
    let ro = c.root("/ro");
    let sub = c.path(&ro, "sub");
    let inner = c.path(&sub, "inner.txt");
    assert_eq!(c.read(&inner, 0, 100).unwrap(), (b"inner".to_vec(), true));
    std::fs::remove_file(f._dir.path().join("bucket/sub/inner.txt")).unwrap();
    std::thread::sleep(RO_TTL + Duration::from_millis(100));
    // GETATTR revalidates with a HEAD: gone, so the handle is stale from then on.
    assert_eq!(getattr(&c, &inner).unwrap_err(), Nfsstat3::Stale.code());
    assert_eq!(c.read(&inner, 0, 100).unwrap_err(), Nfsstat3::Stale.code());
    assert_eq!(c.lookup(&sub, "inner.txt").unwrap_err(), Nfsstat3::Noent.code());
}

#[test]
fn garbage_and_unknown_procedures() {
    let f = fixture();
    let c = Client::new(&f, "127.0.0.1:800", sys(OWNER));
    let root = c.root("/data");
    let read = args(|w| {
        w.put_opaque(&root);
        w.put_u64(0);
        w.put_u32(10);
    });
    assert_eq!(c.call(NFS, 3, proc_::READ, &read[..read.len() - 2]).0, AcceptStat::GarbageArgs);
    assert_eq!(c.call(NFS, 3, proc_::GETATTR, &[0, 0, 1, 0]).0, AcceptStat::GarbageArgs);
    let bad_write = args(|w| {
        w.put_opaque(&root);
        w.put_u64(0);
        w.put_u32(3);
        w.put_u32(7); // stable_how
        w.put_opaque(b"abc");
    });
    assert_eq!(c.call(NFS, 3, proc_::WRITE, &bad_write).0, AcceptStat::GarbageArgs);
    assert_eq!(c.call(NFS, 3, 22, &[]).0, AcceptStat::ProcUnavail);
    assert_eq!(c.call(NFS, 2, 0, &[]).0, AcceptStat::ProgMismatch { low: 3, high: 3 });
    assert_eq!(c.call(MOUNT, 3, 1, &[0, 0, 0, 9, 1]).0, AcceptStat::GarbageArgs);
    assert_eq!(c.call(MOUNT, 3, 6, &[]).0, AcceptStat::ProcUnavail);
    assert_eq!(c.call(MOUNT, 1, 1, &args(|w| w.put_string("/data"))).0, AcceptStat::ProcUnavail);
    assert_eq!(c.call(MOUNT, 1, 5, &[]).0, AcceptStat::Success);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random arguments, alone or after a valid handle, for every procedure of every program:
    /// an accepted reply (never a panic), and GARBAGE_ARGS exactly when the decoder refuses.
    #[test]
    fn random_args_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..200),
        with_handle in any::<bool>(),
    ) {
        let f = shared_fixture();
        let c = Client::new(f, "127.0.0.1:800", sys(OWNER));
        let root = c.root("/data");
        let mut a = Vec::new();
        if with_handle {
            a = args(|w| w.put_opaque(&root));
        }
        a.extend_from_slice(&tail);
        for p in 0..23 {
            let (stat, _) = c.call(NFS, 3, p, &a);
            let decodes = nfs::v3::decode_args(p, &a).is_ok();
            match p {
                22 => prop_assert_eq!(stat, AcceptStat::ProcUnavail),
                _ if decodes => prop_assert_eq!(stat, AcceptStat::Success),
                _ => prop_assert_eq!(stat, AcceptStat::GarbageArgs),
            }
        }
        for p in 0..7 {
            let (stat, _) = c.call(MOUNT, 3, p, &a);
            prop_assert_eq!(stat == AcceptStat::GarbageArgs, p < 6 && nfs::mount::decode_args(p, &a).is_err());
        }
        for p in 0..6 {
            let (stat, _) = c.call(100_000, 2, p, &a);
            prop_assert_eq!(stat == AcceptStat::GarbageArgs, p < 5 && nfs::portmap::decode_args(p, &a).is_err());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The procedures that change things, with a well-formed beginning (a directory's or a
    /// file's handle, a short name), then small words (likely discriminants, flags and
    /// lengths: deeper into sattr3, createhow3, stable_how, ftype3), then random bytes: an
    /// accepted reply with a status, or GARBAGE_ARGS exactly when the decoder refuses, and
    /// never a panic, whatever the procedure goes on to do with it.
    #[test]
    fn random_args_into_write_procedures_never_panic(
        proc_idx in 0usize..12,
        on_file in any::<bool>(),
        name in "[a-z.]{1,3}",
        words in proptest::collection::vec(0u32..3, 0..14),
        tail in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let f = shared_fixture();
        let c = Client::new(f, "127.0.0.1:800", sys(OWNER));
        // Looked up once: a random SETATTR may take the owner's search permission away.
        let (root, hello) = shared_handles();
        let fh = if on_file { hello.clone() } else { root.clone() };
        let procs = [
            proc_::SETATTR, proc_::WRITE, proc_::CREATE, proc_::MKDIR, proc_::SYMLINK, proc_::MKNOD,
            proc_::REMOVE, proc_::RMDIR, proc_::RENAME, proc_::LINK, proc_::COMMIT, proc_::READLINK,
        ];
        let p = procs[proc_idx];
        let mut a = args(|w| {
            w.put_opaque(&fh);
            w.put_string(&name);
            for x in &words {
                w.put_u32(*x);
            }
        });
        a.extend_from_slice(&tail);
        let (stat, res) = c.call(NFS, 3, p, &a);
        if nfs::v3::decode_args(p, &a).is_ok() {
            prop_assert_eq!(stat, AcceptStat::Success);
            prop_assert!(res.len() >= 4, "a reply without a status");
        } else {
            prop_assert_eq!(stat, AcceptStat::GarbageArgs);
        }
    }
}

/// One fixture for every proptest case (building one takes a while).
fn shared_fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(fixture)
}

/// The shared fixture's /data root and /data/hello.txt handles.
fn shared_handles() -> &'static (Vec<u8>, Vec<u8>) {
    static H: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        let c = Client::new(shared_fixture(), "127.0.0.1:800", sys(OWNER));
        let root = c.root("/data");
        let hello = c.path(&root, "hello.txt");
        (root, hello)
    })
}

/// A blocking TCP server: a thread per connection, records in, replies out.
fn serve_tcp(server: RpcServer, listener: TcpListener) {
    std::thread::spawn(move || {
        for (id, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let server = server.clone();
            std::thread::spawn(move || serve_conn(&server, stream, id as u64));
        }
    });
}

fn serve_conn(server: &RpcServer, mut stream: TcpStream, id: u64) {
    let conn = ConnInfo { id, peer: stream.peer_addr().unwrap(), local: stream.local_addr().unwrap(), core: 0 };
    let mut decoder = RecordDecoder::new(4 * MIB);
    let mut input = BytesMut::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => input.extend_from_slice(&buf[..n]),
        }
        while let Ok(Some(record)) = decoder.decode(&mut input) {
            let Some(reply) = futures::executor::block_on(server.serve(&conn, &record)) else { continue };
            let mut out = Vec::with_capacity(reply.len() + 4);
            out.extend_from_slice(&record_mark(reply.len()));
            for part in reply.into_parts() {
                for piece in part.pieces() {
                    out.extend_from_slice(piece);
                }
            }
            if stream.write_all(&out).is_err() {
                return;
            }
        }
    }
}

fn run_tool(tool: &str, url: &str) -> std::process::Output {
    std::process::Command::new("timeout").args(["60", tool, url]).output().unwrap()
}

/// Debian's libnfs tools against a real socket: `nfs-ls` lists, `nfs-cat` reads a multi-MiB
/// file. Needs libnfs-utils; skipped with a message without it.
#[test]
fn libnfs_tools_over_tcp() {
    if std::process::Command::new("nfs-ls").arg("--help").output().is_err() {
        eprintln!("SKIPPED: nfs-ls not found (apt-get install libnfs-utils)");
        return;
    }
    let f = fixture();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    serve_tcp(f.server.clone(), listener);
    let q = format!("?nfsport={port}&mountport={port}");
    let out = run_tool("nfs-ls", &format!("nfs://127.0.0.1/data/{q}"));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "nfs-ls: {listing} {}", String::from_utf8_lossy(&out.stderr));
    for name in ["hello.txt", "big.bin", "many", "sub"] {
        assert!(listing.lines().any(|l| l.ends_with(name)), "{name} not in:\n{listing}");
    }
    let out = run_tool("nfs-ls", &format!("nfs://127.0.0.1/data/many{q}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let names = String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(" f")).count();
    assert_eq!(names, MANY_FILES);
    // Root (what the test runs as) is squashed to nobody, and the files are 0640: refused.
    let out = run_tool("nfs-cat", &format!("nfs://127.0.0.1/data/big.bin{q}&uid=0&gid=0"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ACCESS denied"));
    // The owner reads.
    let out = run_tool("nfs-cat", &format!("nfs://127.0.0.1/data/big.bin{q}&uid={OWNER}&gid={OWNER}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == pattern(BIG_BYTES), "nfs-cat returned {} bytes, not the file", out.stdout.len());
    // A path under no export.
    let out = run_tool("nfs-ls", &format!("nfs://127.0.0.1/nope/{q}"));
    assert!(!out.status.success());
}

/// libnfs without ports in the URL asks the portmapper on port 111 for the MOUNT and NFS
/// ports. Port 111 is usually taken by the system's rpcbind: then this test is skipped; run it
/// in a network namespace of its own to exercise it
/// (`unshare -n sh -c 'ip link set lo up; cargo test -p nfs --test v3 portmapper'`).
#[test]
fn libnfs_finds_ports_through_the_portmapper() {
    if std::process::Command::new("nfs-ls").arg("--help").output().is_err() {
        eprintln!("SKIPPED: nfs-ls not found (apt-get install libnfs-utils)");
        return;
    }
    let Ok(portmap) = TcpListener::bind("127.0.0.1:111") else {
        eprintln!("SKIPPED: port 111 is in use (a system rpcbind?); run in a network namespace");
        return;
    };
    let f = fixture();
    let nfs = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = programs(&f.exports, nfs.local_addr().unwrap().port(), 111);
    serve_tcp(server.clone(), portmap);
    serve_tcp(server, nfs);
    let out = run_tool("nfs-ls", "nfs://127.0.0.1/data/sub");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("inner.txt"));
    let out = run_tool("nfs-cat", &format!("nfs://127.0.0.1/data/sub/inner.txt?uid={OWNER}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"inner");
}
