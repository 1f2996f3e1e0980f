//! The NFSv3 write path over a real engine: a local-directory bucket, a file-backed block
//! cache, the engine's write-back running, calls encoded here and served by `RpcServer::serve`
//! (no transport, no tokio context on the calling thread, as on the server's cores). Each test
//! ends, where it changed something, by publishing everything and checking the bucket holds
//! exactly the files expected with the bytes expected: the whole chain from WRITE to object.
#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blockstore::{DeviceSpec, FormatOptions, Store, StoreConfig};
use engine::object::store::{ObjectStoreConfig, StoreClient};
use engine::{BucketSpec, Engine, EngineConfig, ExportSpec, WriteConfig};
use nfs::export::{ExportPolicy, Exports};
use nfs::mount::Mount;
use nfs::rpc::{decode_reply, encode_call, AcceptStat, Auth, AuthSys, CallHeader, ReplyHeader};
use nfs::service::{ConnInfo, RpcServer};
use nfs::v3::types::{proc_, Nfsstat3};
use nfs::v3::Nfs3;
use nfs::xdr::{Reader, Writer};

const MIB: usize = 1 << 20;
const OWNER: u32 = 1000;
const OTHER: u32 = 2000;
const NFS: u32 = 100_003;
const MOUNT: u32 = 100_005;

const UNSTABLE: u32 = 0;
const DATA_SYNC: u32 = 1;
const FILE_SYNC: u32 = 2;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ ((i >> 11) as u8)).collect()
}

/// An engine with its write-back over a local-directory bucket, and NFSv3 + MOUNT over it.
///
/// Bucket: `data/keep.txt` (`keep\n`), `data/old.txt` (`old contents\n`), `data/sub/in.txt`
/// (`inner\n`), `ro/r.txt` (`read only\n`). Exports: `/data` (prefix `data/`, read-write, root
/// squashed, owner OWNER, files 0644, directories 0755) and `/ro` (prefix `ro/`, read-only).
struct Fixture {
    dir: tempfile::TempDir,
    engine: Arc<Engine>,
    server: RpcServer,
}

struct Options {
    cache_bytes: u64,
    segment_bytes: u64,
    write: WriteConfig,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            cache_bytes: 256 * MIB as u64,
            segment_bytes: 16 * MIB as u64,
            write: WriteConfig {
                upload_delay_after_close: Duration::from_millis(50),
                upload_delay_idle: Duration::from_millis(300),
                part_bytes: 5 * MIB as u64,
                retry_delay: Duration::from_millis(50),
                retry_delay_max: Duration::from_millis(400),
                dirty_wait: Duration::from_secs(2),
                ..WriteConfig::default()
            },
        }
    }
}

fn fixture() -> Fixture {
    fixture_with(Options::default())
}

fn fixture_with(o: Options) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    for (key, body) in [
        ("data/keep.txt", &b"keep\n"[..]),
        ("data/old.txt", b"old contents\n"),
        ("data/sub/in.txt", b"inner\n"),
        ("ro/r.txt", b"read only\n"),
    ] {
        let p = bucket.join(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    let cache = dir.path().join("cache.img");
    std::fs::File::create(&cache).unwrap().set_len(o.cache_bytes).unwrap();
    let spec = DeviceSpec::File { path: cache, iopoll: false };
    blockstore::format(&spec, &FormatOptions { segment_bytes: o.segment_bytes, shard_count: 1 }).unwrap();
    let store = Store::open(&spec, StoreConfig::default()).unwrap();
    let client = StoreClient::new(&ObjectStoreConfig::Local { root: bucket }).unwrap();
    let buckets = vec![BucketSpec { name: "b".into(), client: Arc::new(client), gets_in_flight_max: 8 }];
    let mut data = ExportSpec::new("/data", "b");
    data.prefix = "data".into();
    (data.file_mode, data.dir_mode, data.uid, data.gid) = (0o644, 0o755, OWNER, OWNER);
    let mut ro = ExportSpec::new("/ro", "b");
    ro.prefix = "ro".into();
    let config = EngineConfig { backfill_threads: 2, write: o.write, ..EngineConfig::default() };
    let engine = Arc::new(Engine::new(config, store, &dir.path().join("meta"), buckets, vec![data, ro]).unwrap());
    engine.start_write_back().unwrap();
    let mut ro_policy = ExportPolicy::loopback("/ro");
    ro_policy.read_only = true;
    let exports = Exports::new(engine.clone(), vec![ExportPolicy::loopback("/data"), ro_policy]).unwrap();
    let server = RpcServer::new().with(Arc::new(Nfs3::new(exports.clone()))).with(Arc::new(Mount::new(exports)));
    Fixture { dir, engine, server }
}

impl Fixture {
    fn bucket(&self) -> PathBuf {
        self.dir.path().join("bucket")
    }

    /// Publishes everything changed (on the engine's runtime, as the server does).
    fn publish(&self) {
        let rt = self.engine.runtime().unwrap().clone();
        assert!(
            rt.block_on(self.engine.publish_all(Duration::from_secs(30))),
            "publish did not finish: {:?}",
            self.engine.write_stats()
        );
    }

    /// Every regular file under the bucket's `prefix/`, by key below it, with its bytes.
    fn objects(&self, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        let root = self.bucket().join(prefix);
        let mut out = BTreeMap::new();
        collect(&root, &root, &mut out);
        out
    }

    fn client(&self, uid: u32) -> Client<'_> {
        self.client_with(uid, uid, vec![])
    }

    fn client_with(&self, uid: u32, gid: u32, gids: Vec<u32>) -> Client<'_> {
        let auth = Auth::Sys(AuthSys { stamp: 1, machine: "test".into(), uid, gid, gids });
        let peer: SocketAddr = "127.0.0.1:800".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:2049".parse().unwrap();
        Client { server: &self.server, conn: ConnInfo { id: 1, peer, local, core: 0 }, auth, xid: Cell::new(1) }
    }
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(root, &p, out);
        } else {
            let key = p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            out.insert(key, std::fs::read(&p).unwrap());
        }
    }
}

fn expect(files: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
    files.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect()
}

fn args(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    f(&mut w);
    w.to_vec()
}

/// The attributes of a reply (fattr3), the fields the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attr {
    ftype: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    fileid: u64,
    mtime: (u32, u32),
    ctime: (u32, u32),
}

fn fattr3(r: &mut Reader<'_>) -> Attr {
    let ftype = r.u32("type").unwrap();
    let mode = r.u32("mode").unwrap();
    let _nlink = r.u32("nlink").unwrap();
    let uid = r.u32("uid").unwrap();
    let gid = r.u32("gid").unwrap();
    let size = r.u64("size").unwrap();
    let _used = r.u64("used").unwrap();
    let _rdev = r.u64("rdev").unwrap();
    let _fsid = r.u64("fsid").unwrap();
    let fileid = r.u64("fileid").unwrap();
    let mut t = || (r.u32("s").unwrap(), r.u32("ns").unwrap());
    let (_atime, mtime, ctime) = (t(), t(), t());
    Attr { ftype, mode, uid, gid, size, fileid, mtime, ctime }
}

fn post_op_attr(r: &mut Reader<'_>) -> Option<Attr> {
    r.bool("attributes_follow").unwrap().then(|| fattr3(r))
}

/// pre_op_attr: (size, mtime, ctime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WccAttr {
    size: u64,
    mtime: (u32, u32),
    ctime: (u32, u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Wcc {
    before: Option<WccAttr>,
    after: Option<Attr>,
}

fn wcc_data(r: &mut Reader<'_>) -> Wcc {
    let before = r.bool("pre_op_attr").unwrap().then(|| WccAttr {
        size: r.u64("size").unwrap(),
        mtime: (r.u32("s").unwrap(), r.u32("ns").unwrap()),
        ctime: (r.u32("s").unwrap(), r.u32("ns").unwrap()),
    });
    Wcc { before, after: post_op_attr(r) }
}

/// What CREATE, MKDIR and SYMLINK return.
#[derive(Debug)]
struct Made {
    fh: Vec<u8>,
    attr: Attr,
    dir: Wcc,
}

#[derive(Debug)]
struct Written {
    wcc: Wcc,
    count: u32,
    committed: u32,
    verf: [u8; 8],
}

/// sattr3 fields to set.
#[derive(Debug, Clone, Copy, Default)]
struct Sattr {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    /// None: don't change; Some(None): server time; Some(Some((s, ns))): client time.
    mtime: Option<Option<(u32, u32)>>,
    atime: Option<Option<(u32, u32)>>,
}

impl Sattr {
    fn mode(mode: u32) -> Sattr {
        Sattr { mode: Some(mode), ..Sattr::default() }
    }

    fn size(size: u64) -> Sattr {
        Sattr { size: Some(size), ..Sattr::default() }
    }

    fn encode(&self, w: &mut Writer) {
        let opt32 = |w: &mut Writer, v: Option<u32>| match v {
            Some(v) => {
                w.put_bool(true);
                w.put_u32(v);
            }
            None => w.put_bool(false),
        };
        opt32(w, self.mode);
        opt32(w, self.uid);
        opt32(w, self.gid);
        match self.size {
            Some(v) => {
                w.put_bool(true);
                w.put_u64(v);
            }
            None => w.put_bool(false),
        }
        for t in [self.atime, self.mtime] {
            match t {
                None => w.put_u32(0),
                Some(None) => w.put_u32(1),
                Some(Some((s, ns))) => {
                    w.put_u32(2);
                    w.put_u32(s);
                    w.put_u32(ns);
                }
            }
        }
    }
}

/// createhow3.
enum How {
    Unchecked(Sattr),
    Guarded(Sattr),
    Exclusive([u8; 8]),
}

/// A client talking to `RpcServer::serve` directly, blocking on each call.
struct Client<'a> {
    server: &'a RpcServer,
    conn: ConnInfo,
    auth: Auth,
    xid: Cell<u32>,
}

type Res<T> = Result<T, (u32, Vec<u8>)>;

impl Client<'_> {
    fn call(&self, prog: u32, proc_: u32, args: &[u8]) -> (AcceptStat, Vec<u8>) {
        let xid = self.xid.get();
        self.xid.set(xid + 1);
        let mut w = Writer::new();
        encode_call(&mut w, &CallHeader { xid, prog, vers: 3, proc_, auth: self.auth.clone() });
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

    /// An NFS call: Ok(body after the status) or Err((status, body)).
    fn nfs(&self, proc_: u32, args: &[u8]) -> Res<Vec<u8>> {
        let (stat, res) = self.call(NFS, proc_, args);
        assert_eq!(stat, AcceptStat::Success, "NFS proc {proc_}");
        let mut r = Reader::new(&res);
        let status = r.u32("status").unwrap();
        let body = r.rest().to_vec();
        if status == 0 {
            Ok(body)
        } else {
            Err((status, body))
        }
    }

    fn root(&self, path: &str) -> Vec<u8> {
        let (stat, res) = self.call(MOUNT, 1, &args(|w| w.put_string(path)));
        assert_eq!(stat, AcceptStat::Success);
        let mut r = Reader::new(&res);
        assert_eq!(r.u32("status").unwrap(), 0, "MNT {path}");
        r.opaque("fh", 64).unwrap().to_vec()
    }

    fn lookup(&self, dir: &[u8], name: &str) -> Result<(Vec<u8>, Attr), u32> {
        let body = self
            .nfs(
                proc_::LOOKUP,
                &args(|w| {
                    w.put_opaque(dir);
                    w.put_string(name);
                }),
            )
            .map_err(|e| e.0)?;
        let mut r = Reader::new(&body);
        let fh = r.opaque("fh", 64).unwrap().to_vec();
        Ok((fh, post_op_attr(&mut r).unwrap()))
    }

    fn getattr(&self, fh: &[u8]) -> Attr {
        let body = self.nfs(proc_::GETATTR, &args(|w| w.put_opaque(fh))).unwrap();
        fattr3(&mut Reader::new(&body))
    }

    fn read_all(&self, fh: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let body = self
                .nfs(
                    proc_::READ,
                    &args(|w| {
                        w.put_opaque(fh);
                        w.put_u64(out.len() as u64);
                        w.put_u32(MIB as u32);
                    }),
                )
                .unwrap();
            let mut r = Reader::new(&body);
            post_op_attr(&mut r);
            let _count = r.u32("count").unwrap();
            let eof = r.bool("eof").unwrap();
            out.extend_from_slice(r.opaque("data", usize::MAX).unwrap());
            if eof {
                return out;
            }
        }
    }

    fn write(&self, fh: &[u8], offset: u64, data: &[u8], stable: u32) -> Res<Written> {
        let body = self.nfs(
            proc_::WRITE,
            &args(|w| {
                w.put_opaque(fh);
                w.put_u64(offset);
                w.put_u32(data.len() as u32);
                w.put_u32(stable);
                w.put_opaque(data);
            }),
        )?;
        let mut r = Reader::new(&body);
        let wcc = wcc_data(&mut r);
        let count = r.u32("count").unwrap();
        let committed = r.u32("committed").unwrap();
        let verf = r.opaque_fixed("verf", 8).unwrap().try_into().unwrap();
        assert_eq!(r.remaining(), 0);
        Ok(Written { wcc, count, committed, verf })
    }

    fn commit(&self, fh: &[u8]) -> Res<(Wcc, [u8; 8])> {
        let body = self.nfs(
            proc_::COMMIT,
            &args(|w| {
                w.put_opaque(fh);
                w.put_u64(0);
                w.put_u32(0);
            }),
        )?;
        let mut r = Reader::new(&body);
        let wcc = wcc_data(&mut r);
        let verf = r.opaque_fixed("verf", 8).unwrap().try_into().unwrap();
        Ok((wcc, verf))
    }

    fn made(body: Res<Vec<u8>>) -> Res<Made> {
        let body = body?;
        let mut r = Reader::new(&body);
        assert!(r.bool("handle follows").unwrap());
        let fh = r.opaque("fh", 64).unwrap().to_vec();
        let attr = post_op_attr(&mut r).unwrap();
        let dir = wcc_data(&mut r);
        assert_eq!(r.remaining(), 0);
        Ok(Made { fh, attr, dir })
    }

    fn create(&self, dir: &[u8], name: &str, how: How) -> Res<Made> {
        Self::made(self.nfs(
            proc_::CREATE,
            &args(|w| {
                w.put_opaque(dir);
                w.put_string(name);
                match how {
                    How::Unchecked(s) => {
                        w.put_u32(0);
                        s.encode(w);
                    }
                    How::Guarded(s) => {
                        w.put_u32(1);
                        s.encode(w);
                    }
                    How::Exclusive(v) => {
                        w.put_u32(2);
                        w.put_opaque_fixed(&v);
                    }
                }
            }),
        ))
    }

    /// A new file with `data`, written FILE_SYNC.
    fn new_file(&self, dir: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
        let fh = self.create(dir, name, How::Guarded(Sattr::mode(0o644))).unwrap().fh;
        if !data.is_empty() {
            assert_eq!(self.write(&fh, 0, data, FILE_SYNC).unwrap().count as usize, data.len());
        }
        fh
    }

    fn mkdir(&self, dir: &[u8], name: &str, mode: u32) -> Res<Made> {
        Self::made(self.nfs(
            proc_::MKDIR,
            &args(|w| {
                w.put_opaque(dir);
                w.put_string(name);
                Sattr::mode(mode).encode(w);
            }),
        ))
    }

    fn symlink(&self, dir: &[u8], name: &str, target: &[u8]) -> Res<Made> {
        Self::made(self.nfs(
            proc_::SYMLINK,
            &args(|w| {
                w.put_opaque(dir);
                w.put_string(name);
                Sattr::default().encode(w);
                w.put_opaque(target);
            }),
        ))
    }

    fn readlink(&self, fh: &[u8]) -> Res<String> {
        let body = self.nfs(proc_::READLINK, &args(|w| w.put_opaque(fh)))?;
        let mut r = Reader::new(&body);
        assert_eq!(post_op_attr(&mut r).unwrap().ftype, 5);
        Ok(r.string("path", 4096).unwrap().to_string())
    }

    fn dirop(&self, proc_: u32, dir: &[u8], name: &str) -> Res<Wcc> {
        let body = self.nfs(
            proc_,
            &args(|w| {
                w.put_opaque(dir);
                w.put_string(name);
            }),
        )?;
        Ok(wcc_data(&mut Reader::new(&body)))
    }

    fn remove(&self, dir: &[u8], name: &str) -> Res<Wcc> {
        self.dirop(proc_::REMOVE, dir, name)
    }

    fn rmdir(&self, dir: &[u8], name: &str) -> Res<Wcc> {
        self.dirop(proc_::RMDIR, dir, name)
    }

    fn rename(&self, from: &[u8], from_name: &str, to: &[u8], to_name: &str) -> Res<(Wcc, Wcc)> {
        let body = self.nfs(
            proc_::RENAME,
            &args(|w| {
                w.put_opaque(from);
                w.put_string(from_name);
                w.put_opaque(to);
                w.put_string(to_name);
            }),
        )?;
        let mut r = Reader::new(&body);
        Ok((wcc_data(&mut r), wcc_data(&mut r)))
    }

    fn setattr(&self, fh: &[u8], set: Sattr, guard: Option<(u32, u32)>) -> Res<Wcc> {
        let body = self.nfs(
            proc_::SETATTR,
            &args(|w| {
                w.put_opaque(fh);
                set.encode(w);
                match guard {
                    Some((s, ns)) => {
                        w.put_bool(true);
                        w.put_u32(s);
                        w.put_u32(ns);
                    }
                    None => w.put_bool(false),
                }
            }),
        )?;
        Ok(wcc_data(&mut Reader::new(&body)))
    }
}

/// The status of a failed call.
fn status<T: std::fmt::Debug>(r: Res<T>) -> u32 {
    r.unwrap_err().0
}

#[test]
fn write_commit_and_read_back() {
    let f = fixture();
    let c = f.client(OWNER);
    let root = c.root("/data");
    let made = c.create(&root, "new.bin", How::Guarded(Sattr::mode(0o640))).unwrap();
    assert_eq!((made.attr.ftype, made.attr.size, made.attr.mode, made.attr.uid), (1, 0, 0o640, OWNER));
    let verifier = f.engine.write_verifier().to_be_bytes();
    // Out of order, in odd sizes: a whole MiB block, partial blocks, a tail.
    let data = pattern(3 * MIB + 12_345, 1);
    let cuts = [0, 1000, MIB, MIB + 17, 2 * MIB + 1, 3 * MIB, data.len()];
    let mut size_before = 0;
    for w in cuts.windows(2).rev() {
        let (from, to) = (w[0], w[1]);
        let done = c.write(&made.fh, from as u64, &data[from..to], UNSTABLE).unwrap();
        assert_eq!(done.count as usize, to - from);
        assert_eq!(done.committed, UNSTABLE);
        assert_eq!(done.verf, verifier, "the verifier is the engine's, stable within a run");
        // wcc_data: the size before the write and after it.
        assert_eq!(done.wcc.before.unwrap().size, size_before);
        let after = done.wcc.after.unwrap();
        size_before = after.size;
        assert_eq!(after.size, data.len() as u64);
    }
    let (wcc, verf) = c.commit(&made.fh).unwrap();
    assert_eq!(verf, verifier);
    assert_eq!(wcc.after.unwrap().size, data.len() as u64);
    assert!(c.read_all(&made.fh) == data, "read back differs");
    // DATA_SYNC and FILE_SYNC come back FILE_SYNC.
    for stable in [DATA_SYNC, FILE_SYNC] {
        let done = c.write(&made.fh, 5, b"XY", stable).unwrap();
        assert_eq!((done.count, done.committed, done.verf), (2, FILE_SYNC, verifier));
    }
    let mut want = data.clone();
    want[5..7].copy_from_slice(b"XY");
    // An overwrite of a file from the bucket, and an append to it.
    let (old, _) = c.lookup(&root, "old.txt").unwrap();
    c.write(&old, 0, b"OLD", UNSTABLE).unwrap();
    c.write(&old, 13, b"more\n", UNSTABLE).unwrap();
    assert_eq!(c.read_all(&old), b"OLD contents\nmore\n");
    // A count beyond the data is INVAL; a shorter count writes that many bytes.
    let res = c.nfs(
        proc_::WRITE,
        &args(|w| {
            w.put_opaque(&old);
            w.put_u64(0);
            w.put_u32(10);
            w.put_u32(UNSTABLE);
            w.put_opaque(b"abc");
        }),
    );
    assert_eq!(status(res), Nfsstat3::Inval.code());
    let res = c.nfs(
        proc_::WRITE,
        &args(|w| {
            w.put_opaque(&old);
            w.put_u64(0);
            w.put_u32(1);
            w.put_u32(UNSTABLE);
            w.put_opaque(b"abc");
        }),
    );
    assert!(res.is_ok());
    assert_eq!(c.read_all(&old), b"aLD contents\nmore\n");
    // Writing a directory, or past the largest file.
    assert_eq!(status(c.write(&root, 0, b"x", UNSTABLE)), Nfsstat3::Isdir.code());
    assert_eq!(status(c.write(&old, i64::MAX as u64, b"x", UNSTABLE)), Nfsstat3::Fbig.code());
    c.commit(&old).unwrap();
    // The whole chain: the bucket holds exactly the files, byte for byte.
    f.publish();
    assert_eq!(
        f.objects("data"),
        expect(&[
            ("keep.txt", b"keep\n"),
            ("old.txt", b"aLD contents\nmore\n"),
            ("sub/in.txt", b"inner\n"),
            ("new.bin", &want),
        ])
    );
}

#[test]
fn create_modes() {
    let f = fixture();
    let c = f.client(OWNER);
    let root = c.root("/data");
    // GUARDED on an existing name.
    assert_eq!(status(c.create(&root, "keep.txt", How::Guarded(Sattr::default()))), Nfsstat3::Exist.code());
    // UNCHECKED on an existing name opens it; size 0 truncates it.
    let opened = c.create(&root, "old.txt", How::Unchecked(Sattr::default())).unwrap();
    assert_eq!(opened.attr.size, 13);
    let truncated = c.create(&root, "old.txt", How::Unchecked(Sattr::size(0))).unwrap();
    assert_eq!((truncated.fh, truncated.attr.size), (opened.fh, 0));
    // UNCHECKED of a new name makes it, with its attributes, owned by the caller.
    let other = f.client(OTHER);
    let made = c.create(&root, "u.txt", How::Unchecked(Sattr::mode(0o600))).unwrap();
    assert_eq!((made.attr.mode, made.attr.uid, made.attr.gid), (0o600, OWNER, OWNER));
    // The directory's wcc_data: before and after the entry was made.
    let before = made.dir.before.unwrap();
    let after = made.dir.after.unwrap();
    assert_eq!(after.ftype, 2);
    assert!(after.mtime >= before.mtime);
    // EXCLUSIVE: made once; the same verifier again (a retransmission) is the same file; another
    // verifier is EXIST. Then the client sets the attributes.
    let verf = *b"verifier";
    let ex = c.create(&root, "ex.txt", How::Exclusive(verf)).unwrap();
    let again = c.create(&root, "ex.txt", How::Exclusive(verf)).unwrap();
    assert_eq!(again.fh, ex.fh);
    assert_eq!(status(c.create(&root, "ex.txt", How::Exclusive(*b"another!"))), Nfsstat3::Exist.code());
    let set = Sattr { mode: Some(0o604), mtime: Some(Some((1_600_000_000, 7))), ..Sattr::default() };
    let wcc = c.setattr(&ex.fh, set, None).unwrap();
    let after = wcc.after.unwrap();
    assert_eq!((after.mode, after.mtime, after.uid), (0o604, (1_600_000_000, 7), OWNER));
    assert_eq!(c.getattr(&ex.fh).mode, 0o604);
    c.write(&ex.fh, 0, b"exclusive\n", FILE_SYNC).unwrap();
    // Names: too long, not UTF-8, a file as the directory.
    assert_eq!(status(c.create(&root, &"n".repeat(256), How::Guarded(Sattr::default()))), Nfsstat3::Nametoolong.code());
    let res = c.nfs(
        proc_::CREATE,
        &args(|w| {
            w.put_opaque(&root);
            w.put_opaque(b"\xff\xfe");
            w.put_u32(1);
            Sattr::default().encode(w);
        }),
    );
    assert_eq!(status(res), Nfsstat3::Inval.code());
    assert_eq!(status(c.create(&made.fh, "x", How::Guarded(Sattr::default()))), Nfsstat3::Notdir.code());
    // Someone else's file: UNCHECKED with a size needs write permission on it.
    assert_eq!(status(other.create(&root, "u.txt", How::Unchecked(Sattr::size(0)))), Nfsstat3::Acces.code());
    // A create with a size makes a file of that size (zeros).
    let sized = c.create(&root, "sized.bin", How::Guarded(Sattr::size(10))).unwrap();
    assert_eq!(sized.attr.size, 10);
    f.publish();
    assert_eq!(
        f.objects("data"),
        expect(&[
            ("keep.txt", b"keep\n"),
            ("old.txt", b""),
            ("sub/in.txt", b"inner\n"),
            ("u.txt", b""),
            ("ex.txt", b"exclusive\n"),
            ("sized.bin", &[0; 10]),
        ])
    );
}

#[test]
fn mkdir_rmdir_remove_rename() {
    let f = fixture();
    let c = f.client(OWNER);
    let root = c.root("/data");
    let d = c.mkdir(&root, "d", 0o750).unwrap();
    assert_eq!((d.attr.ftype, d.attr.mode, d.attr.uid), (2, 0o750, OWNER));
    assert_eq!(status(c.mkdir(&root, "d", 0o755)), Nfsstat3::Exist.code());
    assert_eq!(status(c.mkdir(&root, "keep.txt", 0o755)), Nfsstat3::Exist.code());
    let inner = c.new_file(&d.fh, "f.txt", b"in d\n");
    // Not empty; not a directory; a directory for REMOVE.
    assert_eq!(status(c.rmdir(&root, "d")), Nfsstat3::Notempty.code());
    assert_eq!(status(c.rmdir(&root, "keep.txt")), Nfsstat3::Notdir.code());
    assert_eq!(status(c.remove(&root, "d")), Nfsstat3::Isdir.code());
    assert_eq!(status(c.remove(&root, "missing")), Nfsstat3::Noent.code());
    // REMOVE: the directory's wcc_data shows the change.
    let wcc = c.remove(&d.fh, "f.txt").unwrap();
    assert!(wcc.before.is_some() && wcc.after.is_some());
    assert_eq!(c.lookup(&d.fh, "f.txt").unwrap_err(), Nfsstat3::Noent.code());
    assert_eq!(status(c.nfs(proc_::GETATTR, &args(|w| w.put_opaque(&inner)))), Nfsstat3::Stale.code());
    c.rmdir(&root, "d").unwrap();
    assert_eq!(c.lookup(&root, "d").unwrap_err(), Nfsstat3::Noent.code());
    // A bucket file removed.
    c.remove(&root, "keep.txt").unwrap();
    // RENAME over a file: the destination's content is the source's; both directories' wcc.
    c.new_file(&root, "a.txt", b"from a\n");
    let (from, to) = c.rename(&root, "a.txt", &root, "old.txt").unwrap();
    for wcc in [&from, &to] {
        assert!(wcc.before.is_some());
        assert_eq!(wcc.after.as_ref().unwrap().ftype, 2);
    }
    assert_eq!(c.lookup(&root, "a.txt").unwrap_err(), Nfsstat3::Noent.code());
    let (moved, _) = c.lookup(&root, "old.txt").unwrap();
    assert_eq!(c.read_all(&moved), b"from a\n");
    // Across directories, with each directory's wcc; a bucket file renamed.
    let sub = c.lookup(&root, "sub").unwrap().0;
    let (from, to) = c.rename(&sub, "in.txt", &root, "was-inner.txt").unwrap();
    assert_ne!(from.after.unwrap().fileid, to.after.unwrap().fileid);
    // A directory into itself; a directory over a file; a missing source; another export.
    let e = c.mkdir(&root, "e", 0o755).unwrap();
    assert_eq!(status(c.rename(&root, "e", &e.fh, "inside")), Nfsstat3::Inval.code());
    assert_eq!(status(c.rename(&root, "e", &root, "old.txt")), Nfsstat3::Notdir.code());
    assert_eq!(status(c.rename(&root, "nope", &root, "x")), Nfsstat3::Noent.code());
    let ro = c.root("/ro");
    assert_eq!(status(c.rename(&root, "old.txt", &ro, "x")), Nfsstat3::Rofs.code());
    // A directory renamed with its contents.
    c.new_file(&e.fh, "deep.txt", b"deep\n");
    c.rename(&root, "e", &sub, "e2").unwrap();
    let e2 = c.lookup(&sub, "e2").unwrap().0;
    assert_eq!(c.read_all(&c.lookup(&e2, "deep.txt").unwrap().0), b"deep\n");
    f.publish();
    assert_eq!(
        f.objects("data"),
        expect(&[("old.txt", b"from a\n"), ("was-inner.txt", b"inner\n"), ("sub/e2/deep.txt", b"deep\n")])
    );
}

#[test]
fn setattr_size_mode_times_and_guard() {
    let f = fixture();
    let c = f.client(OWNER);
    let root = c.root("/data");
    let fh = c.new_file(&root, "s.txt", b"0123456789");
    // Truncate, then extend with zeros.
    let wcc = c.setattr(&fh, Sattr::size(4), None).unwrap();
    assert_eq!((wcc.before.unwrap().size, wcc.after.unwrap().size), (10, 4));
    assert_eq!(c.read_all(&fh), b"0123");
    c.setattr(&fh, Sattr::size(6), None).unwrap();
    assert_eq!(c.read_all(&fh), b"0123\0\0");
    // Mode; owner and group to what they are; atime is accepted (and ignored).
    let set = Sattr { mode: Some(0o600), uid: Some(OWNER), gid: Some(OWNER), atime: Some(None), ..Sattr::default() };
    assert_eq!(c.setattr(&fh, set, None).unwrap().after.unwrap().mode, 0o600);
    // mtime: the client's time, then the server's.
    let wcc = c.setattr(&fh, Sattr { mtime: Some(Some((1_500_000_000, 42))), ..Sattr::default() }, None).unwrap();
    assert_eq!(wcc.after.unwrap().mtime, (1_500_000_000, 42));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32;
    let wcc = c.setattr(&fh, Sattr { mtime: Some(None), ..Sattr::default() }, None).unwrap();
    assert!(wcc.after.unwrap().mtime.0 >= now);
    // The guard: the ctime the client knows, or NOT_SYNC.
    let ctime = c.getattr(&fh).ctime;
    let stale = (ctime.0 - 1, ctime.1);
    let err = c.setattr(&fh, Sattr::mode(0o644), Some(stale)).unwrap_err();
    assert_eq!(err.0, Nfsstat3::NotSync.code());
    assert_eq!(c.getattr(&fh).mode, 0o600);
    c.setattr(&fh, Sattr::mode(0o644), Some(ctime)).unwrap();
    assert_eq!(c.getattr(&fh).mode, 0o644);
    // A directory has no size to set; its mode may change.
    assert_eq!(status(c.setattr(&root, Sattr::size(0), None)), Nfsstat3::Isdir.code());
    let sub = c.lookup(&root, "sub").unwrap().0;
    assert_eq!(c.setattr(&sub, Sattr::mode(0o700), None).unwrap().after.unwrap().mode, 0o700);
    // Not the owner: chmod and chown are PERM, truncate without write permission ACCES.
    let other = f.client(OTHER);
    assert_eq!(status(other.setattr(&fh, Sattr::mode(0o777), None)), Nfsstat3::Perm.code());
    assert_eq!(status(other.setattr(&fh, Sattr { uid: Some(OTHER), ..Sattr::default() }, None)), Nfsstat3::Perm.code());
    assert_eq!(status(other.setattr(&fh, Sattr::size(0), None)), Nfsstat3::Acces.code());
    assert_eq!(status(c.setattr(&fh, Sattr { uid: Some(OTHER), ..Sattr::default() }, None)), Nfsstat3::Perm.code());
    // A group the owner is in is fine.
    let member = f.client_with(OWNER, OWNER, vec![77]);
    assert_eq!(member.setattr(&fh, Sattr { gid: Some(77), ..Sattr::default() }, None).unwrap().after.unwrap().gid, 77);
    f.publish();
    let objects = f.objects("data");
    assert_eq!(objects.get("s.txt").map(Vec::as_slice), Some(&b"0123\0\0"[..]));
    assert_eq!(objects.len(), 4);
}

#[test]
fn symlink_readlink_link_mknod() {
    let f = fixture();
    let c = f.client(OWNER);
    let root = c.root("/data");
    let l = c.symlink(&root, "l", b"sub/in.txt").unwrap();
    assert_eq!((l.attr.ftype, l.attr.size, l.attr.uid), (5, 10, OWNER));
    assert_eq!(c.readlink(&l.fh).unwrap(), "sub/in.txt");
    let (found, attr) = c.lookup(&root, "l").unwrap();
    assert_eq!((found, attr.ftype), (l.fh.clone(), 5));
    assert_eq!(status(c.symlink(&root, "l", b"x")), Nfsstat3::Exist.code());
    assert_eq!(status(c.symlink(&root, "bad", b"\xff")), Nfsstat3::Inval.code());
    assert_eq!(status(c.symlink(&root, "empty", b"")), Nfsstat3::Inval.code());
    let keep = c.lookup(&root, "keep.txt").unwrap().0;
    assert_eq!(status(c.readlink(&keep)), Nfsstat3::Inval.code());
    // LINK: no hard links; the reply still carries the file's and the directory's attributes.
    let res = c.nfs(
        proc_::LINK,
        &args(|w| {
            w.put_opaque(&keep);
            w.put_opaque(&root);
            w.put_string("hard");
        }),
    );
    let (stat, body) = res.unwrap_err();
    assert_eq!(stat, Nfsstat3::Notsupp.code());
    let mut r = Reader::new(&body);
    assert_eq!(post_op_attr(&mut r).unwrap().ftype, 1);
    assert_eq!(wcc_data(&mut r).after.unwrap().ftype, 2);
    assert_eq!(r.remaining(), 0);
    // MKNOD: devices, FIFOs and sockets are NOTSUPP; regular files, directories and links are
    // BADTYPE.
    let mknod = |ftype: u32| {
        c.nfs(
            proc_::MKNOD,
            &args(|w| {
                w.put_opaque(&root);
                w.put_string("node");
                w.put_u32(ftype);
                match ftype {
                    3 | 4 => {
                        Sattr::default().encode(w);
                        w.put_u32(1);
                        w.put_u32(2);
                    }
                    6 | 7 => Sattr::default().encode(w),
                    _ => {}
                }
            }),
        )
    };
    for t in [3, 4, 6, 7] {
        assert_eq!(status(mknod(t)), Nfsstat3::Notsupp.code(), "ftype {t}");
    }
    for t in [1, 2, 5] {
        assert_eq!(status(mknod(t)), Nfsstat3::Badtype.code(), "ftype {t}");
    }
    assert_eq!(c.lookup(&root, "node").unwrap_err(), Nfsstat3::Noent.code());
    // A symlink is published as an object whose body is its target.
    f.publish();
    assert_eq!(
        f.objects("data"),
        expect(&[
            ("keep.txt", b"keep\n"),
            ("old.txt", b"old contents\n"),
            ("sub/in.txt", b"inner\n"),
            ("l", b"sub/in.txt")
        ])
    );
}

#[test]
fn read_only_export_refuses_every_change() {
    let f = fixture();
    let c = f.client(0); // root, not squashed on /ro: only the export says no
    let ro = c.root("/ro");
    let (r, _) = c.lookup(&ro, "r.txt").unwrap();
    let rofs = Nfsstat3::Rofs.code();
    assert_eq!(status(c.write(&r, 0, b"x", FILE_SYNC)), rofs);
    assert_eq!(status(c.commit(&r)), rofs);
    assert_eq!(status(c.setattr(&r, Sattr::mode(0o600), None)), rofs);
    assert_eq!(status(c.create(&ro, "n", How::Guarded(Sattr::default()))), rofs);
    assert_eq!(status(c.create(&ro, "n", How::Exclusive([1; 8]))), rofs);
    assert_eq!(status(c.mkdir(&ro, "n", 0o755)), rofs);
    assert_eq!(status(c.symlink(&ro, "n", b"t")), rofs);
    assert_eq!(status(c.remove(&ro, "r.txt")), rofs);
    assert_eq!(status(c.rmdir(&ro, "r.txt")), rofs);
    assert_eq!(status(c.rename(&ro, "r.txt", &ro, "s.txt")), rofs);
    let link = c.nfs(
        proc_::LINK,
        &args(|w| {
            w.put_opaque(&r);
            w.put_opaque(&ro);
            w.put_string("hard");
        }),
    );
    assert_eq!(status(link), rofs);
    let mknod = c.nfs(
        proc_::MKNOD,
        &args(|w| {
            w.put_opaque(&ro);
            w.put_string("fifo");
            w.put_u32(7);
            Sattr::default().encode(w);
        }),
    );
    assert_eq!(status(mknod), rofs);
    // ROFS comes before anything else: even a missing name or a file as directory.
    assert_eq!(status(c.remove(&ro, "missing")), rofs);
    assert_eq!(status(c.create(&r, "n", How::Guarded(Sattr::default()))), rofs);
    // The failure still carries the object's attributes (wcc_data after).
    let (_, body) = c.write(&r, 0, b"x", UNSTABLE).unwrap_err();
    assert_eq!(wcc_data(&mut Reader::new(&body)).after.unwrap().size, 10);
    // Reads still work, and nothing changed in the bucket.
    assert_eq!(c.read_all(&r), b"read only\n");
    f.publish();
    assert_eq!(f.objects("ro"), expect(&[("r.txt", b"read only\n")]));
}

#[test]
fn permissions_root_squash_and_sticky_directories() {
    let f = fixture();
    let owner = f.client(OWNER);
    let squashed = f.client(0); // nobody on /data
    let other = f.client(OTHER);
    let root = owner.root("/data");
    let acces = Nfsstat3::Acces.code();
    // The export root is OWNER's, 0755: nobody else may change its entries.
    for c in [&squashed, &other] {
        assert_eq!(status(c.create(&root, "n", How::Guarded(Sattr::default()))), acces);
        assert_eq!(status(c.mkdir(&root, "n", 0o755)), acces);
        assert_eq!(status(c.symlink(&root, "n", b"t")), acces);
        assert_eq!(status(c.remove(&root, "keep.txt")), acces);
        assert_eq!(status(c.rename(&root, "keep.txt", &root, "k")), acces);
    }
    // Files are 0644: others may not write them.
    let keep = owner.lookup(&root, "keep.txt").unwrap().0;
    assert_eq!(status(other.write(&keep, 0, b"x", FILE_SYNC)), acces);
    assert_eq!(status(squashed.write(&keep, 0, b"x", FILE_SYNC)), acces);
    assert_eq!(status(other.commit(&keep)), acces);
    // The owner writes a file it made read-only (as through the descriptor that created it).
    let ro_file = owner.create(&root, "ro-file", How::Guarded(Sattr::mode(0o444))).unwrap().fh;
    owner.write(&ro_file, 0, b"mine\n", FILE_SYNC).unwrap();
    // A directory open to everyone, sticky: others make their own files, remove only those.
    let tmp = owner.mkdir(&root, "tmp", 0o1777).unwrap();
    assert_eq!(tmp.attr.mode, 0o1777);
    let made = other.create(&tmp.fh, "theirs", How::Guarded(Sattr::mode(0o666))).unwrap();
    assert_eq!((made.attr.uid, made.attr.gid), (OTHER, OTHER));
    other.write(&made.fh, 0, b"theirs\n", FILE_SYNC).unwrap();
    let nobody = squashed.create(&tmp.fh, "nobodys", How::Guarded(Sattr::default())).unwrap();
    assert_eq!(nobody.attr.uid, 65534, "root squashed to nobody");
    assert_eq!(status(squashed.remove(&tmp.fh, "theirs")), acces);
    assert_eq!(status(squashed.rename(&tmp.fh, "theirs", &tmp.fh, "mine")), acces);
    // ... though the file itself is writable by all (0666).
    squashed.write(&made.fh, 7, b"+\n", FILE_SYNC).unwrap();
    assert_eq!(status(other.remove(&tmp.fh, "nobodys")), acces);
    squashed.remove(&tmp.fh, "nobodys").unwrap(); // its own
    owner.remove(&tmp.fh, "theirs").unwrap(); // the directory's owner may
                                              // Creating with someone else's uid, or a group one is not in: PERM.
    assert_eq!(
        status(other.create(&tmp.fh, "x", How::Guarded(Sattr { uid: Some(OWNER), ..Sattr::default() }))),
        Nfsstat3::Perm.code()
    );
    assert_eq!(
        status(other.create(&tmp.fh, "x", How::Guarded(Sattr { gid: Some(5), ..Sattr::default() }))),
        Nfsstat3::Perm.code()
    );
    f.publish();
    assert_eq!(
        f.objects("data"),
        expect(&[
            ("keep.txt", b"keep\n"),
            ("old.txt", b"old contents\n"),
            ("sub/in.txt", b"inner\n"),
            ("ro-file", b"mine\n")
        ])
    );
}

/// The Linux client keeps its cache coherent with mtime and size: a WRITE must move the file's
/// mtime, for a file made here as for one from the bucket.
///
/// Engine bug (write path): a file made here has `posix.mtime_ns` set at creation, and
/// `Engine::write` moves only `rec.mtime_ns`, which `Namespace::attr` does not report while
/// `posix.mtime_ns` is set. Ignored until the engine moves (or clears) `posix.mtime_ns` on write.
#[test]
fn write_moves_the_mtime_of_a_file_made_here() {
    let f = fixture();
    let c = f.client(OWNER);
    let root = c.root("/data");
    let (keep, _) = c.lookup(&root, "keep.txt").unwrap();
    let made = c.create(&root, "m.txt", How::Guarded(Sattr::default())).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    for (what, fh) in [("bucket file", &keep), ("file made here", &made.fh)] {
        let before = c.getattr(fh).mtime;
        let done = c.write(fh, 0, b"x", UNSTABLE).unwrap();
        assert_eq!(done.wcc.before.unwrap().mtime, before, "{what}");
        assert!(done.wcc.after.unwrap().mtime > before, "{what}: WRITE did not move the mtime");
    }
}

/// CREATE in `dir` moves its mtime, and the wcc_data says so (before = as it was).
fn create_moves_the_mtime(c: &Client<'_>, dir: &[u8], what: &str) {
    std::thread::sleep(Duration::from_millis(20));
    let before = c.getattr(dir).mtime;
    let made = c.create(dir, "entry", How::Guarded(Sattr::default())).unwrap();
    assert_eq!(made.dir.before.unwrap().mtime, before, "{what}");
    assert!(made.dir.after.unwrap().mtime > before, "{what}: CREATE did not move the directory's mtime");
}

/// A change of entries moves the directory's mtime (the client drops its cached listing when
/// the mtime moves under it).
#[test]
fn entry_changes_move_the_directory_mtime() {
    let f = fixture();
    let c = f.client(OWNER);
    let root = c.root("/data");
    create_moves_the_mtime(&c, &root, "export root");
    let (sub, _) = c.lookup(&root, "sub").unwrap();
    create_moves_the_mtime(&c, &sub, "directory from the bucket");
}

/// The same for a directory made here.
///
/// Engine bug (write path): `make_entry` gives a new directory `posix.mtime_ns`, and
/// `touched_dir` moves only `rec.mtime_ns`, which `Namespace::attr` does not report while
/// `posix.mtime_ns` is set.
#[test]
fn entry_changes_move_the_mtime_of_a_directory_made_here() {
    let f = fixture();
    let c = f.client(OWNER);
    let root = c.root("/data");
    let d = c.mkdir(&root, "md", 0o755).unwrap();
    create_moves_the_mtime(&c, &d.fh, "directory made here");
}

/// A cache full of data not yet uploaded: a WRITE waits `dirty_wait` for uploads to make room,
/// then answers NFS3ERR_NOSPC (the calling thread has no tokio context, as on the server's
/// cores: the engine's wait must not need one); unstable data that could not be written out
/// stays in memory; once the file is published, writes go on.
#[test]
fn a_full_cache_answers_nospc_then_recovers() {
    let mut o = Options { cache_bytes: 64 * MIB as u64, segment_bytes: 8 * MIB as u64, ..Options::default() };
    o.write.dirty_wait = Duration::from_millis(500);
    o.write.upload_delay_idle = Duration::from_secs(600); // nothing is uploaded by itself
    let f = fixture_with(o);
    let c = f.client(OWNER);
    let root = c.root("/data");
    let fh = c.create(&root, "big.bin", How::Guarded(Sattr::default())).unwrap().fh;
    // A partial block (all of a 1 MiB block but its first byte) stays in memory until
    // something writes it out (here: a READ).
    let partial = c.create(&root, "partial.bin", How::Guarded(Sattr::default())).unwrap().fh;
    let partial_data = pattern(MIB - 1, 5);
    let partial_verf = c.write(&partial, 1, &partial_data, UNSTABLE).unwrap().verf;
    let block = pattern(MIB, 9);
    let mut written = 0u64;
    let stat = loop {
        match c.write(&fh, written, &block, UNSTABLE) {
            Ok(done) => written += u64::from(done.count),
            Err((stat, _)) => break stat,
        }
        assert!(written < 64 * MIB as u64, "the cache never filled");
    };
    assert_eq!(stat, Nfsstat3::Nospc.code());
    assert!(written >= 16 * MIB as u64, "only {written} bytes fitted");
    // FSSTAT says so: little or nothing available.
    let body = c.nfs(proc_::FSSTAT, &args(|w| w.put_opaque(&root))).unwrap();
    let mut r = Reader::new(&body);
    post_op_attr(&mut r);
    let (_t, _f, avail) = (r.u64("t").unwrap(), r.u64("f").unwrap(), r.u64("a").unwrap());
    assert!(avail < 8 * MIB as u64, "{avail} bytes available in a full cache");
    // READ writes out the partial block first, into the full cache: it waits (without a tokio
    // context on this thread either) while the publisher uploads what is waiting to make room;
    // it gets the room or fails with NOSPC, and either way the engine keeps the block.
    let read = c.nfs(
        proc_::READ,
        &args(|w| {
            w.put_opaque(&partial);
            w.put_u64(0);
            w.put_u32(100);
        }),
    );
    if let Err((stat, _)) = &read {
        assert_eq!(*stat, Nfsstat3::Nospc.code());
    }
    // Published, the data is clean: room again.
    c.commit(&fh).unwrap();
    f.publish();
    // The unstable data survived the failure: COMMIT vouches for it with the same verifier,
    // and it is what reaches the bucket (checked below), without the client sending it again.
    let (_, verf) = c.commit(&partial).unwrap();
    assert_eq!(verf, partial_verf, "the verifier of a run does not change");
    c.write(&fh, written, &block, FILE_SYNC).unwrap();
    written += MIB as u64;
    assert_eq!(c.getattr(&fh).size, written);
    f.publish();
    let objects = f.objects("data");
    assert_eq!(objects["partial.bin"][0], 0);
    let got = &objects["partial.bin"];
    assert!(
        got[1..] == partial_data[..],
        "partial.bin: {} bytes, want {}; first difference at {:?}",
        got.len(),
        partial_data.len() + 1,
        got[1..].iter().zip(&partial_data).position(|(a, b)| a != b)
    );
    assert_eq!(objects["big.bin"].len() as u64, written);
    assert!(objects["big.bin"].chunks(MIB).all(|b| b == block), "published bytes differ");
}
