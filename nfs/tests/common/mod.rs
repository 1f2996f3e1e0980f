//! Shared set-up of the NFSv4 tests: a real engine (file-backed blockstore, metadata store)
//! over a local-directory bucket with known files, the NFSv4 server in front of it, and a small
//! COMPOUND encoder and reply reader.
//!
//! Bucket layout (key → content):
//! - `data/big.bin`: [`BIG_BYTES`] of [`pattern`]
//! - `data/small.txt`: `hello, world\n`
//! - `data/many/f00000` … `f02999`: the file's own name ([`Fixture::with_many_files`] only)
//! - `data/d1/d2/d3/leaf.txt`: `leaf\n`
//! - `ro/readme.txt`: `read only\n`
//!
//! Exports: `/data` (prefix `data/`, read-write, root squashed, everyone, owner uid/gid
//! 1000/100) and `/a/b/ro` (prefix `ro/`, read-only, no root squash, loopback only: a client
//! in 192.0.2.0/24 is denied).
#![allow(clippy::unwrap_used, dead_code)] // test setup: a failure is the test failing

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use blockstore::{DeviceSpec, FormatOptions, Store, StoreConfig};
use engine::object::store::{ObjectStoreConfig, StoreClient};
use engine::{BucketSpec, Engine, EngineConfig, ExportSpec};
use nfs::export::{ExportPolicy, Exports};
use nfs::rpc::{decode_reply, encode_call, AcceptStat, Auth, AuthSys, CallHeader, ReplyHeader};
use nfs::service::{ConnInfo, RpcServer};
use nfs::v4::state::{State, StateConfig};
use nfs::v4::{ops, Compound, Nfs4, Status};
use nfs::xdr::{Reader, Writer};

pub const MIB: usize = 1 << 20;
pub const BIG_BYTES: usize = 5 * MIB + 123;
pub const MANY_FILES: usize = 3000;

/// Attribute numbers (RFC 8881 section 5.8).
pub mod fattr {
    pub use nfs::v4::attrs::*;
}

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31) ^ ((i >> 12) as u8) ^ ((i >> 20) as u8)).collect()
}

/// Directories that outlive one server: bucket, cache device, metadata.
pub struct Fixture {
    pub root: tempfile::TempDir,
}

impl Fixture {
    /// Everything but `data/many` (creating 3000 files takes seconds on a slow disk).
    pub fn new() -> Fixture {
        Fixture::build(0)
    }

    /// With `data/many`.
    pub fn with_many_files() -> Fixture {
        Fixture::build(MANY_FILES)
    }

    fn build(many: usize) -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let bucket = root.path().join("bucket");
        let put = |key: &str, content: &[u8]| {
            let p = bucket.join(key);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        };
        put("data/big.bin", &pattern(BIG_BYTES));
        put("data/small.txt", b"hello, world\n");
        for i in 0..many {
            let name = format!("f{i:05}");
            put(&format!("data/many/{name}"), name.as_bytes());
        }
        put("data/d1/d2/d3/leaf.txt", b"leaf\n");
        put("ro/readme.txt", b"read only\n");
        let cache = root.path().join("cache.img");
        std::fs::File::create(&cache).unwrap().set_len(256 * MIB as u64).unwrap();
        blockstore::format(&device(&cache), &FormatOptions { segment_bytes: 16 * MIB as u64, shard_count: 1 }).unwrap();
        Fixture { root }
    }

    pub fn bucket(&self) -> PathBuf {
        self.root.path().join("bucket")
    }

    /// A fresh engine and server over the same directories (a restart when built again).
    pub fn server(&self) -> Server {
        self.server_with(false)
    }

    /// The bucket's `data/` as the only export, at `/` (the NFSv4 root itself).
    pub fn root_server(&self) -> Server {
        self.server_with(true)
    }

    /// A fresh engine and server whose NFSv4 state is `state` (a test clock, a state directory).
    pub fn server_with_state(&self, state: Arc<State>) -> Server {
        self.server_built(false, state)
    }

    fn server_with(&self, at_root: bool) -> Server {
        let state = Arc::new(State::new(StateConfig {
            lease: Duration::from_secs(90),
            grace: Duration::from_secs(90),
            dir: None,
        }));
        self.server_built(at_root, state)
    }

    fn server_built(&self, at_root: bool, state: Arc<State>) -> Server {
        let store = Store::open(&device(&self.root.path().join("cache.img")), StoreConfig::default()).unwrap();
        let client = StoreClient::new(&ObjectStoreConfig::Local { root: self.bucket() }).unwrap();
        let buckets = vec![BucketSpec { name: "b".into(), client: Arc::new(client), gets_in_flight_max: 8 }];
        let mut data = ExportSpec::new("/data", "b");
        data.prefix = "data".into();
        data.uid = 1000;
        data.gid = 100;
        let mut ro = ExportSpec::new("/a/b/ro", "b");
        ro.prefix = "ro".into();
        ro.read_only = true;
        let config = EngineConfig { backfill_threads: 1, ..EngineConfig::default() };
        let everyone: Vec<_> = ["0.0.0.0/0", "::/0"].iter().map(|c| c.parse().unwrap()).collect();
        let (specs, policies) = if at_root {
            data.name = "/".into();
            let policy = ExportPolicy { path: "/".into(), clients: everyone, read_only: false, root_squash: true };
            (vec![data], vec![policy])
        } else {
            let policies = vec![
                ExportPolicy { path: "/data".into(), clients: everyone, read_only: false, root_squash: true },
                ExportPolicy { root_squash: false, read_only: true, ..ExportPolicy::loopback("/a/b/ro") },
            ];
            (vec![data, ro], policies)
        };
        let engine = Arc::new(Engine::new(config, store, &self.root.path().join("meta"), buckets, specs).unwrap());
        let exports = Exports::new(engine.clone(), policies).unwrap();
        let nfs4 = Arc::new(Nfs4::new(exports, state));
        let rpc = RpcServer::new().with(nfs4.clone());
        Server { rpc, nfs4, engine }
    }
}

fn device(path: &Path) -> DeviceSpec {
    DeviceSpec::File { path: path.to_path_buf(), iopoll: false }
}

pub fn conn(peer: &str) -> ConnInfo {
    let peer: SocketAddr = peer.parse().unwrap();
    ConnInfo { id: 1, peer, local: "127.0.0.1:2049".parse().unwrap(), core: 0 }
}

pub fn loopback() -> ConnInfo {
    conn("127.0.0.1:800")
}

pub fn sys(uid: u32, gid: u32) -> Auth {
    Auth::Sys(AuthSys { stamp: 1, machine: "test".into(), uid, gid, gids: vec![] })
}

pub struct Server {
    pub rpc: RpcServer,
    pub nfs4: Arc<Nfs4>,
    pub engine: Arc<Engine>,
}

impl Server {
    /// One COMPOUND as a client sends it: an RPC record through the RPC server.
    pub fn call(&self, conn: &ConnInfo, auth: &Auth, ops: &Ops) -> Reply {
        let mut w = Writer::new();
        encode_call(&mut w, &CallHeader { xid: 7, prog: 100_003, vers: 4, proc_: 1, auth: auth.clone() });
        let mut record = w.to_vec();
        record.extend_from_slice(&ops.encode());
        let reply = futures::executor::block_on(self.rpc.serve(conn, &record)).unwrap().to_vec();
        let (h, rest) = decode_reply(&reply).unwrap();
        assert_eq!(h, ReplyHeader::Accepted { xid: 7, stat: AcceptStat::Success });
        Reply::compound(rest.to_vec())
    }

    /// Runs operations straight through the dispatch table, without the COMPOUND loop's
    /// session rules (NFSv4.2 operations before SEQUENCE is served). Same reply layout.
    pub fn direct(&self, conn: &ConnInfo, auth: &Auth, ops: &Ops) -> Reply {
        let mut cx = Compound::new(&self.nfs4, conn, auth, ops.minor);
        let mut out = Writer::new();
        let mut status = Status::OK;
        let mut n = 0;
        for (i, (opnum, args)) in ops.ops.iter().enumerate() {
            cx.op_index = i;
            let mut r = Reader::new(args);
            let mut res = Writer::new();
            let st = futures::executor::block_on(ops::dispatch(&mut cx, *opnum, &mut r, &mut res));
            out.put_u32(*opnum);
            n += 1;
            match st {
                Ok(()) => {
                    out.put_u32(0);
                    out.append(res);
                }
                Err(st) => {
                    out.put_u32(st.0);
                    status = st;
                    break;
                }
            }
        }
        Reply { status: status.0, results: n, data: out.to_vec(), pos: 0 }
    }
}

/// A COMPOUND's operations.
pub struct Ops {
    pub minor: u32,
    pub ops: Vec<(u32, Vec<u8>)>,
}

pub const ANONYMOUS: [u8; 16] = [0; 16];

impl Ops {
    pub fn new(minor: u32) -> Ops {
        Ops { minor, ops: Vec::new() }
    }

    pub fn raw(mut self, op: u32, args: Vec<u8>) -> Ops {
        self.ops.push((op, args));
        self
    }

    fn with(self, op: u32, f: impl FnOnce(&mut Writer)) -> Ops {
        let mut w = Writer::new();
        f(&mut w);
        self.raw(op, w.to_vec())
    }

    pub fn putrootfh(self) -> Ops {
        self.raw(ops::PUTROOTFH, vec![])
    }
    pub fn putpubfh(self) -> Ops {
        self.raw(ops::PUTPUBFH, vec![])
    }
    pub fn putfh(self, fh: &[u8]) -> Ops {
        self.with(ops::PUTFH, |w| w.put_opaque(fh))
    }
    pub fn getfh(self) -> Ops {
        self.raw(ops::GETFH, vec![])
    }
    pub fn savefh(self) -> Ops {
        self.raw(ops::SAVEFH, vec![])
    }
    pub fn restorefh(self) -> Ops {
        self.raw(ops::RESTOREFH, vec![])
    }
    pub fn lookup(self, name: &str) -> Ops {
        self.lookup_raw(name.as_bytes())
    }
    pub fn lookup_raw(self, name: &[u8]) -> Ops {
        self.with(ops::LOOKUP, |w| w.put_opaque(name))
    }
    /// PUTROOTFH then LOOKUP of each component of `path`.
    pub fn walk(self, path: &str) -> Ops {
        path.split('/').filter(|c| !c.is_empty()).fold(self.putrootfh(), |o, c| o.lookup(c))
    }
    pub fn lookupp(self) -> Ops {
        self.raw(ops::LOOKUPP, vec![])
    }
    pub fn getattr(self, attrs: &[u32]) -> Ops {
        self.with(ops::GETATTR, |w| fattr::Bitmap::of(attrs).encode(w))
    }
    pub fn verify(self, op: u32, attrs: &[u32], vals: &[u8]) -> Ops {
        self.with(op, |w| {
            fattr::Bitmap::of(attrs).encode(w);
            w.put_opaque(vals);
        })
    }
    pub fn access(self, bits: u32) -> Ops {
        self.with(ops::ACCESS, |w| w.put_u32(bits))
    }
    pub fn readdir(self, cookie: u64, dircount: u32, maxcount: u32, attrs: &[u32]) -> Ops {
        self.with(ops::READDIR, |w| {
            w.put_u64(cookie);
            w.put_opaque_fixed(&[0; 8]);
            w.put_u32(dircount);
            w.put_u32(maxcount);
            fattr::Bitmap::of(attrs).encode(w);
        })
    }
    pub fn read_with(self, stateid: [u8; 16], offset: u64, count: u32) -> Ops {
        self.with(ops::READ, |w| {
            w.put_opaque_fixed(&stateid);
            w.put_u64(offset);
            w.put_u32(count);
        })
    }
    pub fn read(self, offset: u64, count: u32) -> Ops {
        self.read_with(ANONYMOUS, offset, count)
    }
    pub fn read_plus(self, offset: u64, count: u32) -> Ops {
        self.with(ops::READ_PLUS, |w| {
            w.put_opaque_fixed(&ANONYMOUS);
            w.put_u64(offset);
            w.put_u32(count);
        })
    }
    pub fn seek(self, offset: u64, what: u32) -> Ops {
        self.with(ops::SEEK, |w| {
            w.put_opaque_fixed(&ANONYMOUS);
            w.put_u64(offset);
            w.put_u32(what);
        })
    }
    pub fn secinfo(self, name: &str) -> Ops {
        self.with(ops::SECINFO, |w| w.put_string(name))
    }
    pub fn secinfo_no_name(self, style: u32) -> Ops {
        self.with(ops::SECINFO_NO_NAME, |w| w.put_u32(style))
    }
    pub fn readlink(self) -> Ops {
        self.raw(ops::READLINK, vec![])
    }

    /// COMPOUND4args.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.put_string("test");
        w.put_u32(self.minor);
        w.put_u32(self.ops.len() as u32);
        let mut v = w.to_vec();
        for (op, args) in &self.ops {
            v.extend_from_slice(&op.to_be_bytes());
            v.extend_from_slice(args);
        }
        v
    }
}

/// fattr4 as returned: which attributes, and their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fattr {
    pub mask: fattr::Bitmap,
    pub vals: Vec<u8>,
}

impl Fattr {
    /// A reader over the values.
    pub fn reader(&self) -> Reader<'_> {
        Reader::new(&self.vals)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub cookie: u64,
    pub name: String,
    pub attrs: Fattr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    pub verifier: [u8; 8],
    pub entries: Vec<Entry>,
    pub eof: bool,
    /// Bytes of READDIR4resok.
    pub resok_bytes: usize,
}

/// COMPOUND4res, read result by result.
pub struct Reply {
    pub status: u32,
    pub results: usize,
    data: Vec<u8>,
    pos: usize,
}

impl Reply {
    fn compound(data: Vec<u8>) -> Reply {
        let mut r = Reader::new(&data);
        let status = r.u32("status").unwrap();
        r.opaque("tag", 1024).unwrap();
        let results = r.u32("count").unwrap() as usize;
        let pos = r.position();
        Reply { status, results, data, pos }
    }

    fn reader(&self) -> Reader<'_> {
        Reader::new(&self.data[self.pos..])
    }

    /// Reads the next bytes of the results with `f` (results this reader has no method for).
    pub fn read<T>(&mut self, f: impl FnOnce(&mut Reader<'_>) -> T) -> T {
        let mut r = Reader::new(&self.data[self.pos..]);
        let out = f(&mut r);
        self.pos += r.position();
        out
    }

    /// The next result's status (asserting its operation).
    pub fn op(&mut self, op: u32) -> Status {
        let (got, st) = self.read(|r| (r.u32("op").unwrap(), r.u32("status").unwrap()));
        assert_eq!(got, op, "result for op {got}, expected {op}");
        Status(st)
    }

    /// The next result must be `op` with NFS4_OK.
    pub fn ok(&mut self, op: u32) {
        let st = self.op(op);
        assert_eq!(st, Status::OK, "op {op} failed");
    }

    /// Skips `n` results without bodies (PUTFH, LOOKUP, ...), each NFS4_OK.
    pub fn ok_n(&mut self, op: u32, n: usize) {
        for _ in 0..n {
            self.ok(op);
        }
    }

    /// Skips the results of [`Ops::walk`].
    pub fn walked(&mut self, path: &str) {
        self.ok(ops::PUTROOTFH);
        self.ok_n(ops::LOOKUP, path.split('/').filter(|c| !c.is_empty()).count());
    }

    pub fn getfh(&mut self) -> Vec<u8> {
        self.ok(ops::GETFH);
        self.read(|r| r.opaque("fh", 128).unwrap().to_vec())
    }

    fn fattr(r: &mut Reader<'_>) -> Fattr {
        let (mask, _) = fattr::Bitmap::decode(r).unwrap();
        let vals = r.opaque("attr vals", 1 << 20).unwrap().to_vec();
        Fattr { mask, vals }
    }

    pub fn getattr(&mut self) -> Fattr {
        self.ok(ops::GETATTR);
        self.read(Self::fattr)
    }

    pub fn access(&mut self) -> (u32, u32) {
        self.ok(ops::ACCESS);
        self.read(|r| (r.u32("supported").unwrap(), r.u32("access").unwrap()))
    }

    pub fn readdir(&mut self) -> Dir {
        self.ok(ops::READDIR);
        let start = self.pos;
        let mut dir = self.read(|r| {
            let mut verifier = [0u8; 8];
            verifier.copy_from_slice(r.opaque_fixed("verf", 8).unwrap());
            let mut entries = Vec::new();
            while r.bool("value follows").unwrap() {
                let cookie = r.u64("cookie").unwrap();
                let name = r.string("name", 1024).unwrap().to_string();
                let attrs = Self::fattr(r);
                entries.push(Entry { cookie, name, attrs });
            }
            let eof = r.bool("eof").unwrap();
            Dir { verifier, entries, eof, resok_bytes: 0 }
        });
        dir.resok_bytes = self.pos - start;
        dir
    }

    pub fn read_data(&mut self) -> (bool, Vec<u8>) {
        self.ok(ops::READ);
        self.read(|r| (r.bool("eof").unwrap(), r.opaque("data", 64 << 20).unwrap().to_vec()))
    }

    /// (eof, [(offset, bytes)]) of READ_PLUS.
    pub fn read_plus(&mut self) -> (bool, Vec<(u64, Vec<u8>)>) {
        self.ok(ops::READ_PLUS);
        self.read(|r| {
            let eof = r.bool("eof").unwrap();
            let n = r.u32("segments").unwrap();
            let segs = (0..n)
                .map(|_| {
                    assert_eq!(r.u32("content").unwrap(), 0, "only DATA segments");
                    (r.u64("offset").unwrap(), r.opaque("data", 64 << 20).unwrap().to_vec())
                })
                .collect();
            (eof, segs)
        })
    }

    pub fn seek(&mut self) -> (bool, u64) {
        self.ok(ops::SEEK);
        self.read(|r| (r.bool("eof").unwrap(), r.u64("offset").unwrap()))
    }

    pub fn secinfo(&mut self, op: u32) -> Vec<u32> {
        self.ok(op);
        self.read(|r| {
            let n = r.u32("count").unwrap();
            (0..n).map(|_| r.u32("flavor").unwrap()).collect()
        })
    }

    pub fn u32(&mut self) -> u32 {
        self.read(|r| r.u32("u32").unwrap())
    }

    pub fn u64(&mut self) -> u64 {
        self.read(|r| r.u64("u64").unwrap())
    }

    /// `n` bytes as they are (fixed-size opaque).
    pub fn fixed(&mut self, n: usize) -> Vec<u8> {
        self.read(|r| r.opaque_fixed("fixed", n).unwrap().to_vec())
    }

    /// A variable-length opaque.
    pub fn opaque(&mut self) -> Vec<u8> {
        self.read(|r| r.opaque("opaque", 1 << 20).unwrap().to_vec())
    }

    /// The unread bytes (results this reader has no method for).
    pub fn rest(&self) -> Vec<u8> {
        self.data[self.pos..].to_vec()
    }

    /// Nothing left to read.
    pub fn done(&self) {
        assert_eq!(self.reader().remaining(), 0, "unread results");
    }
}
