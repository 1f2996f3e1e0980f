//! NFSv4 state end to end: clients, sessions and the slot reply cache, opens and stateids,
//! leases, restart and grace, against a real engine (file-backed blockstore, metadata store)
//! over a local-directory bucket.
//!
//! Session and client operations go through `RpcServer::serve` (the real COMPOUND loop).
//! Compounds that need a current file handle go through [`Server::run`], which mirrors the
//! COMPOUND loop (SEQUENCE, its replay and the reply cache included) and serves PUTFH itself,
//! so these tests do not depend on the file operations of the other half of the work.
#![allow(clippy::unwrap_used)] // tests: a failure is the test failing

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blockstore::{DeviceSpec, FormatOptions, Store, StoreConfig};
use engine::object::store::{ObjectStoreConfig, StoreClient};
use engine::{BucketSpec, Engine, EngineConfig, ExportSpec, FileHandle};
use nfs::export::{ExportPolicy, Exports};
use nfs::rpc::{decode_reply, encode_call, AcceptStat, Auth, AuthSys, CallHeader, ReplyHeader};
use nfs::service::{ConnInfo, RpcServer};
use nfs::v4::fh::Fh;
use nfs::v4::ops::{self, *};
use nfs::v4::state::client::ClientId;
use nfs::v4::state::session::{ChannelAttrs, SessionId};
use nfs::v4::state::{Clock, IoAccess, ShareAccess, State, StateConfig, Stateid};
use nfs::v4::{Compound, Nfs4, Status};
use nfs::xdr::{Reader, Writer};
use proptest::prelude::*;

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------- fixture

/// A clock the tests move.
struct TestClock(Mutex<Instant>);

impl TestClock {
    fn new() -> Arc<TestClock> {
        Arc::new(TestClock(Mutex::new(Instant::now())))
    }
    fn advance(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}

impl Clock for TestClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

/// Bucket `data/` with `a.txt`, `b.txt`, `dir/c.txt`, `ro/r.txt`; exports `/data` (read-write)
/// and `/ro` (read-only); the engine; the NFSv4 state directory. Files in `/data` belong to
/// uid 1000 (the tests' user), those in `/ro` to root.
struct Fixture {
    root: tempfile::TempDir,
    exports: Exports,
    engine: Arc<Engine>,
}

impl Fixture {
    fn new() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let bucket = root.path().join("bucket");
        for (key, body) in [("data/a.txt", "aaaa"), ("data/b.txt", "bbbb"), ("data/dir/c.txt", "cc"), ("ro/r.txt", "r")]
        {
            let p = bucket.join(key);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        let cache = root.path().join("cache.img");
        std::fs::File::create(&cache).unwrap().set_len(64 * MIB as u64).unwrap();
        blockstore::format(&device(&cache), &FormatOptions { segment_bytes: 16 * MIB as u64, shard_count: 1 }).unwrap();
        let store = Store::open(&device(&cache), StoreConfig::default()).unwrap();
        let client = StoreClient::new(&ObjectStoreConfig::Local { root: bucket }).unwrap();
        let buckets = vec![BucketSpec { name: "b".into(), client: Arc::new(client), gets_in_flight_max: 8 }];
        let mut data = ExportSpec::new("/data", "b");
        data.prefix = "data".into();
        (data.uid, data.gid) = (1000, 1000); // the tests' user owns the files (mode 0644)
        let mut ro = ExportSpec::new("/ro", "b");
        ro.prefix = "ro".into();
        let config = EngineConfig { backfill_threads: 1, ..EngineConfig::default() };
        let engine = Arc::new(Engine::new(config, store, &root.path().join("meta"), buckets, vec![data, ro]).unwrap());
        let everyone: Vec<_> = ["0.0.0.0/0", "::/0"].iter().map(|c| c.parse().unwrap()).collect();
        let policies = vec![
            ExportPolicy { path: "/data".into(), clients: everyone.clone(), read_only: false, root_squash: true },
            ExportPolicy { path: "/ro".into(), clients: everyone, read_only: true, root_squash: true },
        ];
        let exports = Exports::new(engine.clone(), policies).unwrap();
        Fixture { root, exports, engine }
    }

    fn state_dir(&self) -> PathBuf {
        self.root.path().join("nfs4-state")
    }

    /// A server "boot": a new `State` (durable in the fixture's state directory).
    fn boot(&self, lease: Duration, clock: &Arc<TestClock>) -> Server {
        let config = StateConfig { lease, grace: lease, dir: Some(self.state_dir()) };
        let state = Arc::new(State::open_with_clock(config, clock.clone()).unwrap());
        let nfs4 = Arc::new(Nfs4::new(self.exports.clone(), state.clone()));
        Server { rpc: RpcServer::new().with(nfs4.clone()), nfs4, state }
    }

    /// The handle of `path` in export `export`.
    fn handle(&self, export: &str, path: &str) -> FileHandle {
        let ns = self.engine.export(export).unwrap();
        let rec = futures::executor::block_on(ns.lookup_path(path)).unwrap();
        ns.handle(&rec)
    }
}

fn device(path: &Path) -> DeviceSpec {
    DeviceSpec::File { path: path.to_path_buf(), iopoll: false }
}

fn conn() -> ConnInfo {
    let a: SocketAddr = "127.0.0.1:900".parse().unwrap();
    ConnInfo { id: 1, peer: a, local: "127.0.0.1:2049".parse().unwrap(), core: 0 }
}

fn user() -> Auth {
    Auth::Sys(AuthSys { stamp: 1, machine: "t".into(), uid: 1000, gid: 1000, gids: vec![] })
}

struct Server {
    rpc: RpcServer,
    nfs4: Arc<Nfs4>,
    state: Arc<State>,
}

impl Server {
    /// One COMPOUND through the RPC server: the reply's COMPOUND4res bytes.
    fn call_bytes(&self, ops: &Ops) -> Vec<u8> {
        let mut w = Writer::new();
        encode_call(&mut w, &CallHeader { xid: 9, prog: 100_003, vers: 4, proc_: 1, auth: user() });
        let mut record = w.to_vec();
        record.extend_from_slice(&ops.encode());
        let reply = futures::executor::block_on(self.rpc.serve(&conn(), &record)).unwrap().to_vec();
        let (h, rest) = decode_reply(&reply).unwrap();
        assert_eq!(h, ReplyHeader::Accepted { xid: 9, stat: AcceptStat::Success });
        rest.to_vec()
    }

    fn call(&self, ops: &Ops) -> Reply {
        Reply::new(self.call_bytes(ops))
    }

    /// One COMPOUND through a mirror of the COMPOUND loop that serves PUTFH itself (see the
    /// file's header): same reply layout, same SEQUENCE replay and reply caching.
    fn run(&self, ops: &Ops) -> Reply {
        let (conn, auth) = (conn(), user());
        let mut cx = Compound {
            server: &self.nfs4,
            conn: &conn,
            auth: &auth,
            minor: ops.minor,
            op_index: 0,
            current: None,
            saved: None,
            current_stateid: None,
            saved_stateid: None,
            seq: None,
            replay: None,
        };
        let mut w = Writer::new();
        let (mut status, mut n) = (Status::OK, 0u32);
        let mut results = Writer::new();
        for (i, (opnum, args)) in ops.ops.iter().enumerate() {
            cx.op_index = i;
            let mut r = Reader::new(args);
            let mut res = Writer::new();
            let st = if *opnum == PUTFH {
                let fh = Fh::decode(r.opaque("fh", 128).unwrap()).unwrap();
                cx.current = Some(fh);
                Ok(())
            } else {
                futures::executor::block_on(ops::dispatch(&mut cx, *opnum, &mut r, &mut res))
            };
            if let Some(replay) = cx.replay.take() {
                return Reply::new(replay.to_vec());
            }
            results.put_u32(*opnum);
            n += 1;
            match st {
                Ok(()) => {
                    results.put_u32(0);
                    results.append(res);
                }
                Err(st) => {
                    results.put_u32(st.0);
                    status = st;
                    break;
                }
            }
        }
        w.put_u32(status.0);
        w.put_opaque(b"");
        w.put_u32(n);
        w.append(results);
        if let Some(seq) = cx.seq.take() {
            self.state.finish_compound(&seq, &w);
        }
        Reply::new(w.to_vec())
    }
}

// ---------------------------------------------------------------- compounds

struct Ops {
    minor: u32,
    ops: Vec<(u32, Vec<u8>)>,
}

impl Ops {
    fn new(minor: u32) -> Ops {
        Ops { minor, ops: Vec::new() }
    }

    fn op(mut self, opnum: u32, f: impl FnOnce(&mut Writer)) -> Ops {
        let mut w = Writer::new();
        f(&mut w);
        self.ops.push((opnum, w.to_vec()));
        self
    }

    fn putfh(self, fh: &FileHandle) -> Ops {
        self.op(PUTFH, |w| w.put_opaque(&fh.encode()))
    }

    fn sequence(self, session: SessionId, slot: u32, seqid: u32) -> Ops {
        let a = sequence::Args { session, seqid, slot, highest_slot: slot, cache_this: true };
        self.op(SEQUENCE, |w| sequence::encode(&a, w))
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.put_opaque(b"");
        w.put_u32(self.minor);
        w.put_u32(self.ops.len() as u32);
        let mut v = w.to_vec();
        for (opnum, args) in &self.ops {
            v.extend_from_slice(&opnum.to_be_bytes());
            v.extend_from_slice(args);
        }
        v
    }
}

/// A COMPOUND4res being read.
struct Reply {
    data: Vec<u8>,
    pos: usize,
    status: u32,
}

impl Reply {
    fn new(data: Vec<u8>) -> Reply {
        let mut r = Reader::new(&data);
        let status = r.u32("status").unwrap();
        r.opaque("tag", 1024).unwrap();
        r.u32("count").unwrap();
        let pos = r.position();
        Reply { data, pos, status }
    }

    fn read<T>(&mut self, f: impl FnOnce(&mut Reader<'_>) -> T) -> T {
        let mut r = Reader::new(&self.data[self.pos..]);
        let out = f(&mut r);
        self.pos += r.position();
        out
    }

    /// The next result's status (its opnum checked).
    fn op(&mut self, opnum: u32) -> Status {
        let (got, st) = self.read(|r| (r.u32("op").unwrap(), r.u32("status").unwrap()));
        assert_eq!(got, opnum, "result of op {opnum} expected");
        Status(st)
    }

    fn ok(&mut self, opnum: u32) {
        assert_eq!(self.op(opnum), Status::OK, "op {opnum}");
    }

    fn u32(&mut self) -> u32 {
        self.read(|r| r.u32("u32").unwrap())
    }

    fn u64(&mut self) -> u64 {
        self.read(|r| r.u64("u64").unwrap())
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        self.read(|r| r.opaque_fixed("fixed", n).unwrap().to_vec())
    }

    fn opaque(&mut self) -> Vec<u8> {
        self.read(|r| r.opaque("opaque", 4096).unwrap().to_vec())
    }

    fn stateid(&mut self) -> Stateid {
        self.read(|r| Stateid::decode(r).unwrap())
    }

    fn channel(&mut self) -> ChannelAttrs {
        self.read(|r| nfs::v4::state::wire::channel_attrs(r).unwrap())
    }

    /// EXCHANGE_ID4resok: (clientid, sequenceid, flags, server owner).
    fn exchange_id(&mut self) -> (ClientId, u32, u32, Vec<u8>) {
        let (id, seq, flags) = (ClientId(self.u64()), self.u32(), self.u32());
        assert_eq!(self.u32(), 0, "SP4_NONE");
        self.u64();
        let owner = self.opaque();
        assert_eq!(self.opaque(), owner, "scope = owner");
        assert_eq!(self.u32(), 1);
        self.opaque();
        self.opaque();
        self.u64();
        self.u32();
        (id, seq, flags, owner)
    }

    /// OPEN4resok: (stateid, rflags, delegation type, why).
    fn open(&mut self) -> (Stateid, u32, u32, Option<u32>) {
        let s = self.stateid();
        let atomic = self.u32();
        let (before, after) = (self.u64(), self.u64());
        assert_eq!((atomic, before), (1, after), "change_info: nothing changed");
        let rflags = self.u32();
        assert_eq!(self.u32(), 0, "attrset empty");
        let deleg = self.u32();
        let why = (deleg == open::OPEN_DELEGATE_NONE_EXT).then(|| self.u32());
        (s, rflags, deleg, why)
    }
}

// ---------------------------------------------------------------- client helpers

fn exchange_id_args(owner: &str, verifier: u8) -> exchange_id::Args {
    exchange_id::Args {
        verifier: [verifier; 8],
        owner: owner.as_bytes().to_vec(),
        flags: 0,
        protect: exchange_id::StateProtect::None,
        impl_id: None,
    }
}

fn asked(slots: u32, cached: u32) -> ChannelAttrs {
    ChannelAttrs {
        headerpad_bytes: 0,
        request_bytes_max: 1_049_620,
        response_bytes_max: 1_049_480,
        response_cached_bytes_max: cached,
        operations_max: 8,
        requests_max: slots,
        rdma_ird: None,
    }
}

fn create_session_args(clientid: ClientId, sequence: u32, slots: u32, cached: u32) -> create_session::Args {
    create_session::Args {
        clientid,
        sequence,
        flags: create_session::CREATE_SESSION4_FLAG_CONN_BACK_CHAN,
        fore: asked(slots, cached),
        back: asked(1, 4096),
        cb_program: 0x4000_0000,
        sec_parms: vec![nfs::v4::state::wire::CbSec::None],
    }
}

/// A 4.1 client with a session.
struct Client41 {
    id: ClientId,
    session: SessionId,
    seq: u32,
}

impl Client41 {
    fn mount(s: &Server, owner: &str, verifier: u8) -> Client41 {
        let mut r = s.call(&Ops::new(1).op(EXCHANGE_ID, |w| exchange_id_args(owner, verifier).encode(w)));
        r.ok(EXCHANGE_ID);
        let (id, seq, _, _) = r.exchange_id();
        let mut r = s.call(&Ops::new(1).op(CREATE_SESSION, |w| create_session_args(id, seq, 16, 8192).encode(w)));
        r.ok(CREATE_SESSION);
        let session: SessionId = r.bytes(16).try_into().unwrap();
        Client41 { id, session, seq: 0 }
    }

    /// Ops beginning with this client's next SEQUENCE on slot 0.
    fn ops(&mut self) -> Ops {
        self.seq += 1;
        Ops::new(1).sequence(self.session, 0, self.seq)
    }

    fn open(
        &mut self,
        s: &Server,
        dir: &FileHandle,
        owner: &str,
        name: &str,
        access: u32,
        deny: u32,
    ) -> (Status, Option<Stateid>) {
        let args = open_args(0, owner, self.id, name, access, deny);
        let mut r = s.run(&self.ops().putfh(dir).op(OPEN, |w| args.encode(w)));
        r.ok(SEQUENCE);
        r.read(|r| r.skip("seq", 36).unwrap());
        r.ok(PUTFH);
        match r.op(OPEN) {
            Status::OK => (Status::OK, Some(r.open().0)),
            st => (st, None),
        }
    }
}

fn open_args(seqid: u32, owner: &str, clientid: ClientId, name: &str, access: u32, deny: u32) -> open::Args {
    open::Args {
        seqid,
        share_access: access,
        share_deny: deny,
        clientid,
        owner: owner.as_bytes().to_vec(),
        create: None,
        claim: open::Claim::Null(name.as_bytes().to_vec()),
    }
}

fn lease() -> Duration {
    Duration::from_secs(10)
}

// ---------------------------------------------------------------- tests

#[test]
fn exchange_id_and_create_session_rules() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = fx.boot(lease(), &clock);
    let mut r = s.call(&Ops::new(1).op(EXCHANGE_ID, |w| exchange_id_args("host-a", 1).encode(w)));
    r.ok(EXCHANGE_ID);
    let (id, seq, flags, owner) = r.exchange_id();
    assert_eq!(flags, exchange_id::EXCHGID4_FLAG_USE_NON_PNFS, "not confirmed yet, no pNFS");
    assert_eq!(owner, s.state.server_owner());
    // Misordered csa_sequence, then the right one.
    let r = s.call(&Ops::new(1).op(CREATE_SESSION, |w| create_session_args(id, seq + 3, 100, u32::MAX).encode(w)));
    assert_eq!(r.status, Status::SEQ_MISORDERED.0);
    let mut r = s.call(&Ops::new(1).op(CREATE_SESSION, |w| create_session_args(id, seq, 100, u32::MAX).encode(w)));
    r.ok(CREATE_SESSION);
    let session = r.bytes(16);
    assert_eq!((r.u32(), r.u32()), (seq, 0), "csr_sequence, no flags (no back channel, not persistent)");
    let fore = r.channel();
    assert_eq!(fore.requests_max, 64, "slots bounded");
    assert_eq!(fore.response_cached_bytes_max, 64 << 10);
    assert_eq!((fore.request_bytes_max, fore.operations_max), (1_049_620, 8), "what was asked, when it fits");
    // A retransmitted CREATE_SESSION gets the same session; a new one needs seq + 1.
    let mut r = s.call(&Ops::new(1).op(CREATE_SESSION, |w| create_session_args(id, seq, 100, u32::MAX).encode(w)));
    r.ok(CREATE_SESSION);
    assert_eq!(r.bytes(16), session);
    let mut r = s.call(&Ops::new(1).op(CREATE_SESSION, |w| create_session_args(id, seq + 1, 4, 1024).encode(w)));
    r.ok(CREATE_SESSION);
    assert_ne!(r.bytes(16), session);
    // The same owner and verifier again: same clientid, now confirmed.
    let mut r = s.call(&Ops::new(1).op(EXCHANGE_ID, |w| exchange_id_args("host-a", 1).encode(w)));
    r.ok(EXCHANGE_ID);
    let (id2, seq2, flags, _) = r.exchange_id();
    assert_eq!((id2, seq2), (id, seq + 2));
    assert_ne!(flags & exchange_id::EXCHGID4_FLAG_CONFIRMED_R, 0);
    // State protection other than SP4_NONE, unknown flags, unknown clientid.
    let mut mach = exchange_id_args("host-b", 1);
    mach.protect = exchange_id::StateProtect::MachCred { enforce: vec![1 << 10], allow: vec![] };
    assert_eq!(s.call(&Ops::new(1).op(EXCHANGE_ID, |w| mach.encode(w))).status, Status::NOTSUPP.0);
    let mut bad = exchange_id_args("host-b", 1);
    bad.flags = 0x0800_0000;
    assert_eq!(s.call(&Ops::new(1).op(EXCHANGE_ID, |w| bad.encode(w))).status, Status::INVAL.0);
    let unknown = ClientId(id.0 + 1000);
    let r = s.call(&Ops::new(1).op(CREATE_SESSION, |w| create_session_args(unknown, 1, 1, 1).encode(w)));
    assert_eq!(r.status, Status::STALE_CLIENTID.0);
    // DESTROY_CLIENTID: busy with sessions; after DESTROY_SESSION of both, gone.
    let r = s.call(&Ops::new(1).op(DESTROY_CLIENTID, |w| w.put_u64(id.0)));
    assert_eq!(r.status, Status::CLIENTID_BUSY.0);
}

#[test]
fn sequence_slots_and_reply_cache() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = fx.boot(lease(), &clock);
    let c = Client41::mount(&s, "host-a", 1);
    let rc = |o: Ops| o.op(RECLAIM_COMPLETE, |w| w.put_bool(false));
    let first = s.call_bytes(&rc(Ops::new(1).sequence(c.session, 0, 1)));
    let mut r = Reply::new(first.clone());
    r.ok(SEQUENCE);
    assert_eq!(r.bytes(16), c.session);
    assert_eq!((r.u32(), r.u32(), r.u32(), r.u32(), r.u32()), (1, 0, 15, 15, 0), "seqid slot highest target flags");
    r.ok(RECLAIM_COMPLETE);
    // The retransmission gets the very same bytes (RECLAIM_COMPLETE did not run again: it
    // would answer COMPLETE_ALREADY).
    assert_eq!(s.call_bytes(&rc(Ops::new(1).sequence(c.session, 0, 1))), first);
    let mut r = s.call(&rc(Ops::new(1).sequence(c.session, 0, 2)));
    r.ok(SEQUENCE);
    r.read(|r| r.skip("seq", 36).unwrap());
    assert_eq!(r.op(RECLAIM_COMPLETE), Status::COMPLETE_ALREADY);
    // Same seqid, different request: a false retry. Misordered, bad slot, fresh slot at 0.
    assert_eq!(s.call(&Ops::new(1).sequence(c.session, 0, 2)).status, Status::SEQ_FALSE_RETRY.0);
    assert_eq!(s.call(&Ops::new(1).sequence(c.session, 0, 4)).status, Status::SEQ_MISORDERED.0);
    assert_eq!(s.call(&Ops::new(1).sequence(c.session, 16, 1)).status, Status::BADSLOT.0);
    assert_eq!(s.call(&Ops::new(1).sequence(c.session, 3, 0)).status, Status::SEQ_MISORDERED.0);
    s.call(&Ops::new(1).sequence(c.session, 3, 1)).ok(SEQUENCE);
    assert_eq!(s.call(&Ops::new(1).sequence([7; 16], 0, 1)).status, Status::BADSESSION.0);
    // SEQUENCE must come first; other ops outside a session are refused.
    let r = s.call(&Ops::new(1).op(RECLAIM_COMPLETE, |w| w.put_bool(false)));
    assert_eq!(r.status, Status::OP_NOT_IN_SESSION.0);
}

#[test]
fn replies_too_large_to_cache_are_remembered_as_uncached() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = fx.boot(lease(), &clock);
    let mut r = s.call(&Ops::new(1).op(EXCHANGE_ID, |w| exchange_id_args("small-cache", 1).encode(w)));
    r.ok(EXCHANGE_ID);
    let (id, seq, _, _) = r.exchange_id();
    let mut r = s.call(&Ops::new(1).op(CREATE_SESSION, |w| create_session_args(id, seq, 2, 128).encode(w)));
    r.ok(CREATE_SESSION);
    let session: SessionId = r.bytes(16).try_into().unwrap();
    let test = |n: usize| {
        let a = test_stateid::Args { stateids: vec![Stateid { seqid: 1, other: [3; 12] }; n] };
        move |w: &mut Writer| a.encode(w)
    };
    // 2 stateids: a small reply, cached; 40: about 220 bytes, not cached.
    let small = s.call_bytes(&Ops::new(1).sequence(session, 1, 1).op(TEST_STATEID, test(2)));
    assert_eq!(s.call_bytes(&Ops::new(1).sequence(session, 1, 1).op(TEST_STATEID, test(2))), small);
    let mut r = s.call(&Ops::new(1).sequence(session, 0, 1).op(TEST_STATEID, test(40)));
    r.ok(SEQUENCE);
    r.read(|r| r.skip("seq", 36).unwrap());
    r.ok(TEST_STATEID);
    assert_eq!(r.u32(), 40);
    assert_eq!(r.u32(), Status::BAD_STATEID.0);
    let again = s.call(&Ops::new(1).sequence(session, 0, 1).op(TEST_STATEID, test(40)));
    assert_eq!(again.status, Status::RETRY_UNCACHED_REP.0);
    s.call(&Ops::new(1).sequence(session, 0, 2)).ok(SEQUENCE);
}

#[test]
fn open_close_and_stateid_seqids() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = fx.boot(lease(), &clock);
    let mut c = Client41::mount(&s, "host-a", 1);
    let root = fx.handle("/data", "");
    let a = fx.handle("/data", "a.txt");
    let b = fx.handle("/data", "b.txt");
    let (st, sid) = c.open(&s, &root, "owner-1", "a.txt", 1, 0);
    assert_eq!(st, Status::OK);
    let sid = sid.unwrap();
    assert_eq!(sid.seqid, 1);
    let check = |sid: &Stateid, fh: &FileHandle, io| s.state.check_stateid(1, sid, &Fh::Export(*fh), io);
    assert_eq!(check(&sid, &a, IoAccess::Read), Ok(()));
    assert_eq!(check(&sid, &b, IoAccess::Read), Err(Status::BAD_STATEID), "another file");
    assert_eq!(check(&sid, &a, IoAccess::Write), Err(Status::OPENMODE), "opened for read");
    assert_eq!(check(&Stateid::ANONYMOUS, &a, IoAccess::Read), Ok(()));
    assert_eq!(check(&Stateid::BYPASS, &a, IoAccess::Read), Ok(()));
    assert_eq!(check(&Stateid::BYPASS, &a, IoAccess::Write), Err(Status::BAD_STATEID));
    // Opened again by the same owner: the same stateid, upgraded, seqid 2.
    let (_, up) = c.open(&s, &root, "owner-1", "a.txt", 3, 0);
    let up = up.unwrap();
    assert_eq!((up.other, up.seqid), (sid.other, 2));
    assert_eq!(check(&sid, &a, IoAccess::Read), Err(Status::OLD_STATEID));
    assert_eq!(check(&Stateid { seqid: 3, ..up }, &a, IoAccess::Read), Err(Status::BAD_STATEID));
    assert_eq!(check(&Stateid { seqid: 0, ..up }, &a, IoAccess::Write), Ok(()), "seqid 0: current");
    // OPEN_DOWNGRADE to READ (WRITE-only from READ would not be within).
    let dg =
        |sid: Stateid, access| open_downgrade::Args { stateid: sid, seqid: 0, share_access: access, share_deny: 0 };
    let mut r = s.run(&c.ops().putfh(&a).op(OPEN_DOWNGRADE, |w| dg(up, 1).encode(w)));
    r.ok(SEQUENCE);
    r.read(|r| r.skip("seq", 36).unwrap());
    r.ok(PUTFH);
    r.ok(OPEN_DOWNGRADE);
    let down = r.stateid();
    assert_eq!(down.seqid, 3);
    assert_eq!(check(&down, &a, IoAccess::Write), Err(Status::OPENMODE));
    let r = s.run(&c.ops().putfh(&a).op(OPEN_DOWNGRADE, |w| dg(down, 2).encode(w)));
    assert_eq!(r.status, Status::INVAL.0);
    // CLOSE: an old seqid is refused; the "current stateid" works after OPEN in one compound.
    let close = |sid: Stateid| close::Args { seqid: 0, stateid: sid };
    let r = s.run(&c.ops().putfh(&a).op(CLOSE, |w| close(up).encode(w)));
    assert_eq!(r.status, Status::OLD_STATEID.0);
    let mut r = s.run(&c.ops().putfh(&a).op(CLOSE, |w| close(down).encode(w)));
    r.ok(SEQUENCE);
    r.read(|r| r.skip("seq", 36).unwrap());
    r.ok(PUTFH);
    r.ok(CLOSE);
    assert_eq!(r.stateid(), Stateid::INVALID);
    assert_eq!(check(&down, &a, IoAccess::Read), Err(Status::BAD_STATEID), "closed");
    let open_b = open_args(0, "owner-1", c.id, "b.txt", 1, 0);
    let mut r =
        s.run(&c.ops().putfh(&root).op(OPEN, |w| open_b.encode(w)).op(CLOSE, |w| close(Stateid::CURRENT).encode(w)));
    assert_eq!(r.status, 0);
    r.ok(SEQUENCE);
    r.read(|r| r.skip("seq", 36).unwrap());
    r.ok(PUTFH);
    r.ok(OPEN);
    r.open();
    r.ok(CLOSE);
}

#[test]
fn open_outcomes() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = fx.boot(lease(), &clock);
    let mut c = Client41::mount(&s, "host-a", 1);
    let root = fx.handle("/data", "");
    let ro_root = fx.handle("/ro", "");
    assert_eq!(c.open(&s, &root, "o", "missing", 1, 0).0, Status::NOENT);
    assert_eq!(c.open(&s, &root, "o", "dir", 1, 0).0, Status::ISDIR);
    assert_eq!(c.open(&s, &root, "o", "a.txt", 0, 0).0, Status::INVAL, "no access");
    assert_eq!(c.open(&s, &root, "o", "a.txt", 1, 4).0, Status::INVAL, "bad deny");
    assert_eq!(c.open(&s, &root, "o", "..", 1, 0).0, Status::BADNAME);
    assert_eq!(c.open(&s, &ro_root, "o", "r.txt", 3, 0).0, Status::ROFS);
    assert_eq!(c.open(&s, &ro_root, "o", "r.txt", 1, 0).0, Status::OK);
    let run_open = |c: &mut Client41, dir: &FileHandle, args: &open::Args| {
        let mut r = s.run(&c.ops().putfh(dir).op(OPEN, |w| args.encode(w)));
        r.ok(SEQUENCE);
        r.read(|r| r.skip("seq", 36).unwrap());
        r.ok(PUTFH);
        match r.op(OPEN) {
            Status::OK => Ok(r.open()),
            st => Err(st),
        }
    };
    // OPEN4_CREATE: existing + UNCHECKED4 is a plain open; GUARDED4 → EXIST (creating files:
    // tests/v4_write.rs).
    let mut create = open_args(0, "o", c.id, "a.txt", 1, 0);
    create.create = Some(open::CreateHow::Unchecked(open::Fattr::default()));
    assert!(run_open(&mut c, &root, &create).is_ok());
    create.create = Some(open::CreateHow::Guarded(open::Fattr::default()));
    assert_eq!(run_open(&mut c, &root, &create).unwrap_err(), Status::EXIST);
    create.create = Some(open::CreateHow::Unchecked(open::Fattr { mask: vec![1 << 4], vals: vec![0; 8] }));
    assert_eq!(run_open(&mut c, &root, &create).unwrap_err(), Status::INVAL, "truncate without write access");
    // CLAIM_FH on the file; delegation "want" bits.
    let a = fx.handle("/data", "a.txt");
    let mut by_fh = open_args(0, "o2", c.id, "", 1 | open::OPEN4_SHARE_ACCESS_WANT_NO_DELEG, 0);
    by_fh.claim = open::Claim::Fh;
    let (sid, rflags, deleg, why) = run_open(&mut c, &a, &by_fh).unwrap();
    assert_eq!(sid.seqid, 1);
    assert_eq!(rflags, open::OPEN4_RESULT_LOCKTYPE_POSIX);
    assert_eq!((deleg, why), (open::OPEN_DELEGATE_NONE_EXT, Some(open::WND4_NOT_WANTED)));
    by_fh.share_access = 1 | 0x0100; // WANT_READ_DELEG
    assert_eq!(run_open(&mut c, &a, &by_fh).unwrap().3, Some(open::WND4_NOT_SUPP_FTYPE));
    by_fh.share_access = 1;
    assert_eq!(run_open(&mut c, &a, &by_fh).unwrap().2, open::OPEN_DELEGATE_NONE);
    assert_eq!(run_open(&mut c, &root, &by_fh).unwrap_err(), Status::ISDIR);
    let mut deleg_cur = by_fh.clone();
    deleg_cur.claim = open::Claim::DelegCurFh(sid);
    assert_eq!(run_open(&mut c, &a, &deleg_cur).unwrap_err(), Status::NOTSUPP);
    // No delegations exist to return.
    let r = s.run(&c.ops().putfh(&a).op(DELEGRETURN, |w| sid.encode(w)));
    assert_eq!(r.status, Status::BAD_STATEID.0);
}

#[test]
fn share_reservations_conflict_between_owners() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = fx.boot(lease(), &clock);
    let mut c = Client41::mount(&s, "host-a", 1);
    let mut d = Client41::mount(&s, "host-b", 1);
    let root = fx.handle("/data", "");
    // Owner 1 reads and denies writers.
    assert_eq!(c.open(&s, &root, "one", "a.txt", 1, 2).0, Status::OK);
    assert_eq!(c.open(&s, &root, "two", "a.txt", 2, 0).0, Status::SHARE_DENIED, "write while denied");
    assert_eq!(d.open(&s, &root, "x", "a.txt", 3, 0).0, Status::SHARE_DENIED, "another client too");
    assert_eq!(c.open(&s, &root, "two", "a.txt", 1, 1).0, Status::SHARE_DENIED, "deny read while read");
    assert_eq!(d.open(&s, &root, "x", "a.txt", 1, 0).0, Status::OK, "plain read");
    assert_eq!(c.open(&s, &root, "one", "a.txt", 3, 0).0, Status::OK, "same owner upgrades");
    assert_eq!(c.open(&s, &root, "two", "b.txt", 2, 3).0, Status::OK, "another file");
}

#[test]
fn test_stateid_and_free_stateid() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = fx.boot(lease(), &clock);
    let mut c = Client41::mount(&s, "host-a", 1);
    let mut d = Client41::mount(&s, "host-b", 1);
    let root = fx.handle("/data", "");
    let mine = c.open(&s, &root, "o", "a.txt", 1, 0).1.unwrap();
    let theirs = d.open(&s, &root, "o", "b.txt", 1, 0).1.unwrap();
    let stale = Stateid { seqid: 1, other: [0x10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9] };
    let ids = vec![mine, Stateid { seqid: 0, ..mine }, Stateid { seqid: 2, ..mine }, theirs, stale, Stateid::BYPASS];
    let a = test_stateid::Args { stateids: ids };
    let mut r = s.call(&c.ops().op(TEST_STATEID, |w| a.encode(w)));
    r.ok(SEQUENCE);
    r.read(|r| r.skip("seq", 36).unwrap());
    r.ok(TEST_STATEID);
    assert_eq!(r.u32(), 6);
    let codes: Vec<Status> = (0..6).map(|_| Status(r.u32())).collect();
    let b = Status::BAD_STATEID;
    assert_eq!(codes, [Status::OK, Status::OK, b, b, b, b]);
    let free = |sid: Stateid| free_stateid::Args { stateid: sid };
    assert_eq!(s.call(&c.ops().op(FREE_STATEID, |w| free(mine).encode(w))).status, Status::LOCKS_HELD.0);
    assert_eq!(s.call(&c.ops().op(FREE_STATEID, |w| free(theirs).encode(w))).status, Status::BAD_STATEID.0);
    assert_eq!(s.call(&c.ops().op(FREE_STATEID, |w| free(stale).encode(w))).status, Status::BAD_STATEID.0);
}

/// A 4.0 compound (no SEQUENCE).
fn v40() -> Ops {
    Ops::new(0)
}

#[test]
fn v40_client_open_confirm_close_and_replays() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = fx.boot(lease(), &clock);
    let sc = setclientid::Args {
        verifier: [1; 8],
        id: b"libnfs-client".to_vec(),
        cb_program: 0,
        cb_netid: b"tcp".to_vec(),
        cb_addr: b"127.0.0.1.0.0".to_vec(),
        callback_ident: 1,
    };
    let mut r = s.call(&v40().op(SETCLIENTID, |w| sc.encode(w)));
    r.ok(SETCLIENTID);
    let (id, confirm) = (ClientId(r.u64()), r.bytes(8));
    let renew = |id: ClientId| s.call(&v40().op(RENEW, |w| w.put_u64(id.0))).status;
    assert_eq!(renew(id), Status::STALE_CLIENTID.0, "not confirmed yet");
    let conf = |v: &[u8]| {
        let a = setclientid_confirm::Args { clientid: id, verifier: v.try_into().unwrap() };
        s.call(&v40().op(SETCLIENTID_CONFIRM, |w| a.encode(w))).status
    };
    assert_eq!(conf(&[9; 8]), Status::STALE_CLIENTID.0);
    assert_eq!(conf(&confirm), 0);
    assert_eq!(conf(&confirm), 0, "a retransmitted confirmation");
    assert_eq!(renew(id), 0);
    let root = fx.handle("/data", "");
    let a = fx.handle("/data", "a.txt");
    // OPEN by a new owner asks for OPEN_CONFIRM; its stateid is not usable before.
    let open = open_args(7, "owner", id, "a.txt", 1, 0);
    let first = s.run(&v40().putfh(&root).op(OPEN, |w| open.encode(w)));
    let mut r = Reply::new(first.data.clone());
    r.ok(PUTFH);
    r.ok(OPEN);
    let (sid, rflags, deleg, _) = r.open();
    assert_eq!(rflags, open::OPEN4_RESULT_LOCKTYPE_POSIX | open::OPEN4_RESULT_CONFIRM);
    assert_eq!(deleg, open::OPEN_DELEGATE_NONE);
    let check = |sid: &Stateid| s.state.check_stateid(0, sid, &Fh::Export(a), IoAccess::Read);
    assert_eq!(check(&sid), Err(Status::BAD_STATEID));
    let oc = |seqid| open_confirm::Args { stateid: sid, seqid };
    assert_eq!(s.run(&v40().putfh(&a).op(OPEN_CONFIRM, |w| oc(9).encode(w))).status, Status::BAD_SEQID.0);
    let confirmed = s.run(&v40().putfh(&a).op(OPEN_CONFIRM, |w| oc(8).encode(w)));
    let mut r = Reply::new(confirmed.data.clone());
    r.ok(PUTFH);
    r.ok(OPEN_CONFIRM);
    let sid2 = r.stateid();
    assert_eq!((sid2.other, sid2.seqid), (sid.other, 2));
    assert_eq!(check(&sid2), Ok(()));
    assert_eq!(check(&sid), Err(Status::OLD_STATEID));
    // The retransmitted OPEN_CONFIRM gets the same reply; an older seqid is refused.
    assert_eq!(s.run(&v40().putfh(&a).op(OPEN_CONFIRM, |w| oc(8).encode(w))).data, confirmed.data);
    assert_eq!(s.run(&v40().putfh(&a).op(OPEN_CONFIRM, |w| oc(7).encode(w))).status, Status::BAD_SEQID.0);
    // A failed OPEN still uses up its seqid (NOENT is seqid-mutating).
    let missing = open_args(9, "owner", id, "missing", 1, 0);
    assert_eq!(s.run(&v40().putfh(&root).op(OPEN, |w| missing.encode(w))).status, Status::NOENT.0);
    let close = |seqid| close::Args { seqid, stateid: sid2 };
    let closed = s.run(&v40().putfh(&a).op(CLOSE, |w| close(10).encode(w)));
    let mut r = Reply::new(closed.data.clone());
    r.ok(PUTFH);
    r.ok(CLOSE);
    assert_eq!(r.stateid().seqid, 3);
    assert_eq!(s.run(&v40().putfh(&a).op(CLOSE, |w| close(10).encode(w))).data, closed.data, "CLOSE replayed");
    assert_eq!(check(&sid2), Err(Status::BAD_STATEID));
    let rl = release_lockowner::Args { clientid: id, owner: b"lo".to_vec() };
    assert_eq!(s.call(&v40().op(RELEASE_LOCKOWNER, |w| rl.encode(w))).status, 0);
    // 4.1-only operations are not 4.0 ones, and 4.0-only ones are refused in 4.1.
    assert_eq!(s.call(&v40().op(SEQUENCE, |w| w.put_u32(0))).status, Status::OP_ILLEGAL.0);
    let r = s.call(&Ops::new(1).op(SETCLIENTID, |w| sc.encode(w)));
    assert_eq!(r.status, Status::OP_NOT_IN_SESSION.0);
    // The client reboots: a new verifier makes a new clientid; confirming it drops the old.
    let sc2 = setclientid::Args { verifier: [2; 8], ..sc.clone() };
    let mut r = s.call(&v40().op(SETCLIENTID, |w| sc2.encode(w)));
    r.ok(SETCLIENTID);
    let (id2, confirm2) = (ClientId(r.u64()), r.bytes(8));
    assert_ne!(id2, id);
    assert_eq!(renew(id), 0, "old record lives until the new one is confirmed");
    let a2 = setclientid_confirm::Args { clientid: id2, verifier: confirm2.try_into().unwrap() };
    assert_eq!(s.call(&v40().op(SETCLIENTID_CONFIRM, |w| a2.encode(w))).status, 0);
    assert_eq!(renew(id), Status::STALE_CLIENTID.0);
    assert_eq!(renew(id2), 0);
}

#[test]
fn leases_expire() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = fx.boot(lease(), &clock);
    let root = fx.handle("/data", "");
    let a = fx.handle("/data", "a.txt");
    // 4.1: the session and its opens go with the lease.
    let mut c = Client41::mount(&s, "host-a", 1);
    let sid = c.open(&s, &root, "o", "a.txt", 1, 3).1.unwrap();
    let mut d = Client41::mount(&s, "host-b", 1);
    assert_eq!(d.open(&s, &root, "o", "a.txt", 1, 0).0, Status::SHARE_DENIED);
    clock.advance(Duration::from_secs(6));
    s.call(&c.ops()).ok(SEQUENCE); // renews
    s.call(&d.ops()).ok(SEQUENCE);
    clock.advance(Duration::from_secs(6));
    assert_eq!(s.state.check_stateid(1, &sid, &Fh::Export(a), IoAccess::Read), Ok(()), "renewed 6 s ago");
    s.call(&d.ops()).ok(SEQUENCE);
    clock.advance(Duration::from_secs(6));
    // c last renewed 12 s ago: d's conflicting open expires it.
    assert_eq!(d.open(&s, &root, "o", "a.txt", 1, 0).0, Status::OK);
    assert_eq!(s.state.check_stateid(1, &sid, &Fh::Export(a), IoAccess::Read), Err(Status::EXPIRED));
    assert_eq!(s.call(&c.ops()).status, Status::BADSESSION.0);
    let r = s.call(&Ops::new(1).op(CREATE_SESSION, |w| create_session_args(c.id, 2, 1, 1).encode(w)));
    assert_eq!(r.status, Status::STALE_CLIENTID.0);
    // The same client comes back: a new clientid.
    let c2 = Client41::mount(&s, "host-a", 1);
    assert_ne!(c2.id, c.id);
    // 4.0: RENEW after the lease → EXPIRED.
    let sc = setclientid::Args {
        verifier: [1; 8],
        id: b"v40".to_vec(),
        cb_program: 0,
        cb_netid: vec![],
        cb_addr: vec![],
        callback_ident: 0,
    };
    let mut r = s.call(&v40().op(SETCLIENTID, |w| sc.encode(w)));
    r.ok(SETCLIENTID);
    let (id, confirm) = (r.u64(), r.bytes(8));
    let a2 = setclientid_confirm::Args { clientid: ClientId(id), verifier: confirm.try_into().unwrap() };
    assert_eq!(s.call(&v40().op(SETCLIENTID_CONFIRM, |w| a2.encode(w))).status, 0);
    clock.advance(Duration::from_secs(11));
    assert_eq!(s.call(&v40().op(RENEW, |w| w.put_u64(id))).status, Status::EXPIRED.0);
}

#[test]
fn restart_grace_and_reclaim() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let a = fx.handle("/data", "a.txt");
    let root = fx.handle("/data", "");
    let (old, old_sid, owner) = {
        let s = fx.boot(lease(), &clock);
        assert!(!s.state.in_grace(), "first boot: nobody to wait for");
        let mut c = Client41::mount(&s, "host-a", 1);
        s.call(&c.ops().op(RECLAIM_COMPLETE, |w| w.put_bool(false))).ok(SEQUENCE);
        let sid = c.open(&s, &root, "o", "a.txt", 1, 0).1.unwrap();
        // A client that never finished reclaiming (4.1 without RECLAIM_COMPLETE) may not
        // reclaim after the restart.
        Client41::mount(&s, "host-late", 1);
        (c, sid, s.state.server_owner())
    };
    let s = fx.boot(lease(), &clock);
    assert_eq!(s.state.server_owner(), owner, "server owner and scope survive the restart");
    assert!(s.state.in_grace());
    let mut old_c = old;
    assert_eq!(s.call(&old_c.ops()).status, Status::BADSESSION.0);
    let r = s.call(&Ops::new(1).op(CREATE_SESSION, |w| create_session_args(old_c.id, 2, 1, 1).encode(w)));
    assert_eq!(r.status, Status::STALE_CLIENTID.0);
    assert_eq!(s.state.check_stateid(1, &old_sid, &Fh::Export(a), IoAccess::Read), Err(Status::BAD_STATEID));
    assert_eq!(s.state.check_stateid(0, &old_sid, &Fh::Export(a), IoAccess::Read), Err(Status::STALE_STATEID));
    let future = Stateid { seqid: 1, other: [0xFF, 0xFF, 0xFF, 0xFE, 1, 0, 0, 0, 0, 0, 0, 1] };
    assert_eq!(s.state.check_stateid(0, &future, &Fh::Export(a), IoAccess::Read), Err(Status::BAD_STATEID), "forged");
    // The client comes back (same owner, same verifier: it did not reboot).
    let mut c = Client41::mount(&s, "host-a", 1);
    assert_eq!(c.open(&s, &root, "o", "a.txt", 1, 0).0, Status::GRACE);
    let mut reclaim = open_args(0, "o", c.id, "", 1, 0);
    reclaim.claim = open::Claim::Previous(open::OPEN_DELEGATE_NONE);
    let run = |c: &mut Client41, args: &open::Args| {
        let mut r = s.run(&c.ops().putfh(&a).op(OPEN, |w| args.encode(w)));
        r.ok(SEQUENCE);
        r.read(|r| r.skip("seq", 36).unwrap());
        r.ok(PUTFH);
        r.op(OPEN)
    };
    assert_eq!(run(&mut c, &reclaim), Status::OK);
    let mut newcomer = Client41::mount(&s, "host-new", 1);
    assert_eq!(run(&mut newcomer, &reclaim), Status::RECLAIM_BAD);
    let mut late = Client41::mount(&s, "host-late", 1);
    assert_eq!(run(&mut late, &reclaim), Status::RECLAIM_BAD);
    // Every client that may reclaim said RECLAIM_COMPLETE: grace is over.
    s.call(&c.ops().op(RECLAIM_COMPLETE, |w| w.put_bool(false))).ok(SEQUENCE);
    assert!(!s.state.in_grace());
    assert_eq!(run(&mut c, &reclaim), Status::NO_GRACE);
    assert_eq!(c.open(&s, &root, "o2", "b.txt", 1, 0).0, Status::OK);
    // Third boot: grace again (host-a reclaimed, so it may again), ending at its timeout.
    drop(s);
    let s = fx.boot(lease(), &clock);
    assert!(s.state.in_grace());
    let mut c = Client41::mount(&s, "host-a", 1);
    assert_eq!(c.open(&s, &root, "o", "a.txt", 1, 0).0, Status::GRACE);
    clock.advance(lease() + Duration::from_secs(1));
    assert!(!s.state.in_grace());
    let _ = s.call(&c.ops()); // the lease ran out with the grace period: BADSESSION
    let mut c = Client41::mount(&s, "host-a", 2);
    assert_eq!(c.open(&s, &root, "o", "a.txt", 1, 0).0, Status::OK);
}

#[test]
fn op_arguments_round_trip() {
    fn rt<T: PartialEq + std::fmt::Debug>(
        v: T,
        enc: impl Fn(&T, &mut Writer),
        dec: impl Fn(&mut Reader<'_>) -> nfs::xdr::Result<T>,
    ) {
        let mut w = Writer::new();
        enc(&v, &mut w);
        let b = w.to_vec();
        let mut r = Reader::new(&b);
        assert_eq!(dec(&mut r).unwrap(), v);
        assert_eq!(r.remaining(), 0);
        // Every strict prefix fails to decode (no panic, no silent success).
        for cut in (0..b.len()).step_by(4) {
            assert!(dec(&mut Reader::new(&b[..cut])).is_err() || cut == 0 && b.is_empty());
        }
    }
    let sid = Stateid { seqid: 5, other: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] };
    let mut ex = exchange_id_args("owner", 3);
    ex.impl_id =
        Some(exchange_id::ImplId { domain: b"kernel.org".to_vec(), name: b"Linux".to_vec(), date_s: 9, date_ns: 1 });
    rt(ex.clone(), exchange_id::Args::encode, exchange_id::decode);
    ex.protect = exchange_id::StateProtect::Ssv {
        enforce: vec![1],
        allow: vec![2, 3],
        hash_algs: vec![b"oid".to_vec()],
        encr_algs: vec![],
        window: 4,
        handles: 5,
    };
    rt(ex, exchange_id::Args::encode, exchange_id::decode);
    let mut cs = create_session_args(ClientId(77), 3, 8, 99);
    cs.fore.rdma_ird = Some(3);
    cs.sec_parms.push(nfs::v4::state::wire::CbSec::Sys {
        stamp: 1,
        machine: b"m".to_vec(),
        uid: 2,
        gid: 3,
        gids: vec![4, 5],
    });
    cs.sec_parms.push(nfs::v4::state::wire::CbSec::Gss {
        service: 1,
        handle_from_server: vec![1],
        handle_from_client: vec![],
    });
    rt(cs, create_session::Args::encode, create_session::decode);
    rt(destroy_session::Args { session: [4; 16] }, destroy_session::Args::encode, destroy_session::decode);
    rt(destroy_clientid::Args { clientid: ClientId(5) }, destroy_clientid::Args::encode, destroy_clientid::decode);
    let bc = bind_conn_to_session::Args { session: [1; 16], dir: 3, use_rdma: true };
    rt(bc, bind_conn_to_session::Args::encode, bind_conn_to_session::decode);
    let bcc = backchannel_ctl::Args { cb_program: 1, sec_parms: vec![nfs::v4::state::wire::CbSec::None] };
    rt(bcc, backchannel_ctl::Args::encode, backchannel_ctl::decode);
    rt(reclaim_complete::Args { one_fs: true }, reclaim_complete::Args::encode, reclaim_complete::decode);
    let seq = sequence::Args { session: [2; 16], seqid: 3, slot: 4, highest_slot: 5, cache_this: true };
    rt(seq, sequence::encode, sequence::decode);
    let sc = setclientid::Args {
        verifier: [1; 8],
        id: b"c".to_vec(),
        cb_program: 2,
        cb_netid: b"tcp".to_vec(),
        cb_addr: b"a".to_vec(),
        callback_ident: 3,
    };
    rt(sc, setclientid::Args::encode, setclientid::decode);
    let scc = setclientid_confirm::Args { clientid: ClientId(1), verifier: [2; 8] };
    rt(scc, setclientid_confirm::Args::encode, setclientid_confirm::decode);
    rt(renew::Args { clientid: ClientId(3) }, renew::Args::encode, renew::decode);
    for claim in [
        open::Claim::Null(b"f".to_vec()),
        open::Claim::Previous(0),
        open::Claim::DelegateCur(sid, b"g".to_vec()),
        open::Claim::DelegatePrev(b"h".to_vec()),
        open::Claim::Fh,
        open::Claim::DelegPrevFh,
        open::Claim::DelegCurFh(sid),
    ] {
        for create in [
            None,
            Some(open::CreateHow::Unchecked(open::Fattr { mask: vec![16], vals: vec![0; 8] })),
            Some(open::CreateHow::Guarded(open::Fattr::default())),
            Some(open::CreateHow::Exclusive([7; 8])),
            Some(open::CreateHow::Exclusive41([8; 8], open::Fattr { mask: vec![0, 2], vals: vec![1, 2, 3, 4] })),
        ] {
            let mut a = open_args(1, "o", ClientId(2), "x", 3, 1);
            a.claim = claim.clone();
            a.create = create;
            rt(a, open::Args::encode, open::decode);
        }
    }
    rt(open_confirm::Args { stateid: sid, seqid: 2 }, open_confirm::Args::encode, open_confirm::decode);
    let od = open_downgrade::Args { stateid: sid, seqid: 1, share_access: 1, share_deny: 0 };
    rt(od, open_downgrade::Args::encode, open_downgrade::decode);
    rt(close::Args { seqid: 1, stateid: sid }, close::Args::encode, close::decode);
    rt(test_stateid::Args { stateids: vec![sid, Stateid::CURRENT] }, test_stateid::Args::encode, test_stateid::decode);
    rt(free_stateid::Args { stateid: sid }, free_stateid::Args::encode, free_stateid::decode);
    let rl = release_lockowner::Args { clientid: ClientId(1), owner: b"lo".to_vec() };
    rt(rl, release_lockowner::Args::encode, release_lockowner::decode);
    rt(delegreturn::Args { stateid: sid }, delegreturn::Args::encode, delegreturn::decode);
    rt(delegpurge::Args { clientid: ClientId(4) }, delegpurge::Args::encode, delegpurge::decode);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever follows a valid SEQUENCE, the server answers (or refuses) without panicking,
    /// and the slot stays usable.
    #[test]
    fn random_bytes_after_sequence_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..200), ops in 1u32..6) {
        let (fx, s, mut c) = shared();
        let _ = fx;
        let mut o = c.ops();
        // Op numbers in range, followed by garbage arguments.
        let mut first = true;
        for chunk in tail.chunks(tail.len() / ops as usize + 1) {
            let opnum = if first { OPEN } else { 3 + u32::from(chunk.first().copied().unwrap_or(0)) % 70 };
            first = false;
            o = o.op(opnum, |w| w.put_opaque_fixed(chunk));
        }
        let record = o.encode();
        let _ = s.call_bytes(&o);
        s.call(&c.ops()).ok(SEQUENCE);
        let _ = nfs::v4::decode_compound(&record);
    }
}

/// One server shared by the proptest cases (building an engine per case would be slow).
fn shared() -> (&'static Fixture, &'static Server, Client41) {
    use std::sync::OnceLock;
    static FX: OnceLock<(Fixture, Server)> = OnceLock::new();
    let (fx, s) = FX.get_or_init(|| {
        let fx = Fixture::new();
        let s = fx.boot(Duration::from_secs(3600), &TestClock::new());
        (fx, s)
    });
    let c = Client41::mount(s, &format!("prop-{}", rand_owner()), 1);
    (fx, s, c)
}

fn rand_owner() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn open_checks_mode_bits() {
    let attr = |mode, uid, gid| engine::Attr {
        ino: 2,
        kind: engine::meta::Kind::File,
        size: 0,
        mode,
        uid,
        gid,
        mtime: std::time::UNIX_EPOCH,
        change: 1,
        nlink: 1,
        etag: None,
    };
    let sys = |gids: Vec<u32>| Auth::Sys(AuthSys { stamp: 0, machine: "m".into(), uid: 5, gid: 5, gids });
    let (r, w, rw) = (ShareAccess(1), ShareAccess(2), ShareAccess(3));
    let permitted = open::permitted;
    assert!(permitted(&attr(0o644, 5, 9), 5, 5, &sys(vec![]), rw), "owner rw");
    assert!(!permitted(&attr(0o644, 1, 9), 5, 5, &sys(vec![]), w), "other may not write");
    assert!(permitted(&attr(0o644, 1, 9), 5, 5, &sys(vec![]), r), "other reads");
    assert!(permitted(&attr(0o661, 1, 9), 5, 5, &sys(vec![9]), rw), "supplementary group rw");
    assert!(!permitted(&attr(0o600, 1, 9), 5, 5, &sys(vec![9]), r), "no bits for group");
    assert!(permitted(&attr(0o711, 1, 9), 5, 5, &sys(vec![]), r), "execute allows reading");
    assert!(permitted(&attr(0o000, 1, 9), 0, 0, &Auth::None, rw), "root (not squashed)");
}
