//! NFSv4 byte-range locks end to end: LOCK, LOCKT, LOCKU, RELEASE_LOCKOWNER and the lock
//! stateids' life (READ with one, TEST_STATEID, FREE_STATEID, CLOSE, lease expiry), in 4.1
//! sessions and with 4.0 seqids, through the real COMPOUND loop over a real engine, whose lock
//! manager holds the locks (checked directly too, and shared with a foreign owner standing in
//! for another protocol).
#![allow(clippy::unwrap_used)] // tests: a failure is the test failing

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use engine::locks::{HeldLock, LockKind, LockLimits, LockManager, LockOwner, LockRange, ShareBits, LEN_TO_EOF};
use engine::FileHandle;
use nfs::rpc::Auth;
use nfs::v4::fh::Fh;
use nfs::v4::ops::{self, *};
use nfs::v4::state::client::ClientId;
use nfs::v4::state::session::{ChannelAttrs, SessionId};
use nfs::v4::state::wire::{READW_LT, READ_LT, WRITEW_LT, WRITE_LT};
use nfs::v4::state::{Clock, IoAccess, State, StateConfig, Stateid};
use nfs::v4::Status;
use nfs::xdr::{Reader, Writer};

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

const LEASE: Duration = Duration::from_secs(10);

/// A server whose NFSv4 state runs on `clock`, durable in the fixture's `nfs4` directory.
fn boot(fx: &Fixture, clock: &Arc<TestClock>) -> Server {
    let dir = fx.root.path().join("nfs4");
    let state = State::open_with_clock(StateConfig { lease: LEASE, grace: LEASE, dir: Some(dir) }, clock.clone());
    fx.server_with_state(Arc::new(state.unwrap()))
}

fn user() -> Auth {
    sys(1000, 100)
}

fn args(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    f(&mut w);
    w.to_vec()
}

/// The engine handle of `path` in `/data`.
fn handle(s: &Server, path: &str) -> FileHandle {
    let ns = s.engine.export("/data").unwrap();
    let rec = futures::executor::block_on(ns.lookup_path(path)).unwrap();
    ns.handle(&rec)
}

fn fh(h: &FileHandle) -> Vec<u8> {
    h.encode().to_vec()
}

fn range(offset: u64, length: u64) -> LockRange {
    LockRange::new(offset, length).unwrap()
}

/// LOCK4denied as read from a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Denied {
    offset: u64,
    length: u64,
    locktype: u32,
    clientid: u64,
    owner: Vec<u8>,
}

fn read_denied(r: &mut Reply) -> Denied {
    Denied { offset: r.u64(), length: r.u64(), locktype: r.u32(), clientid: r.u64(), owner: r.opaque() }
}

fn read_stateid(r: &mut Reply) -> Stateid {
    let b = r.fixed(16);
    Stateid::decode(&mut Reader::new(&b)).unwrap()
}

/// OPEN4resok: the stateid (the rest checked only for its shape).
fn read_open(r: &mut Reply) -> Stateid {
    let s = read_stateid(r);
    r.fixed(20); // change_info4
    r.u32(); // rflags
    let n = r.u32() as usize;
    r.fixed(4 * n); // attrset
    if r.u32() == open::OPEN_DELEGATE_NONE_EXT {
        r.u32();
    }
    s
}

fn open_args(seqid: u32, clientid: ClientId, owner: &str, name: &str, access: u32) -> open::Args {
    open::Args {
        seqid,
        share_access: access,
        share_deny: 0,
        clientid,
        owner: owner.as_bytes().to_vec(),
        create: None,
        claim: open::Claim::Null(name.as_bytes().to_vec()),
    }
}

/// LOCK args with a new lock-owner.
#[allow(clippy::too_many_arguments)] // LOCK4args with open_to_lock_owner4 has that many
fn lock_new(
    locktype: u32,
    offset: u64,
    length: u64,
    open_seqid: u32,
    open_stateid: Stateid,
    lock_seqid: u32,
    clientid: ClientId,
    owner: &str,
) -> lock::Args {
    let locker = lock::LockerArgs::OpenToLockOwner {
        open_seqid,
        open_stateid,
        lock_seqid,
        clientid,
        owner: owner.as_bytes().to_vec(),
    };
    lock::Args { locktype, reclaim: false, offset, length, locker }
}

/// LOCK args for a known lock stateid.
fn lock_existing(locktype: u32, offset: u64, length: u64, lock_stateid: Stateid, lock_seqid: u32) -> lock::Args {
    let locker = lock::LockerArgs::ExistLockOwner { lock_stateid, lock_seqid };
    lock::Args { locktype, reclaim: false, offset, length, locker }
}

fn locku(locktype: u32, seqid: u32, lock_stateid: Stateid, offset: u64, length: u64) -> locku::Args {
    locku::Args { locktype, seqid, lock_stateid, offset, length }
}

fn lockt(locktype: u32, offset: u64, length: u64, clientid: ClientId, owner: &str) -> lockt::Args {
    lockt::Args { locktype, offset, length, clientid, owner: owner.as_bytes().to_vec() }
}

// ---------------------------------------------------------------- 4.1 client

fn asked() -> ChannelAttrs {
    ChannelAttrs {
        headerpad_bytes: 0,
        request_bytes_max: 1_049_620,
        response_bytes_max: 1_049_480,
        response_cached_bytes_max: 8192,
        operations_max: 16,
        requests_max: 8,
        rdma_ird: None,
    }
}

/// A 4.1 client with a session; its compounds go through the real COMPOUND loop.
struct Client41 {
    id: ClientId,
    session: SessionId,
    seq: u32,
}

/// What one operation answered: its status and a reader at its result.
struct Answer {
    status: Status,
    reply: Reply,
}

impl Client41 {
    fn mount(s: &Server, owner: &str) -> Client41 {
        let ex = exchange_id::Args {
            verifier: [1; 8],
            owner: owner.as_bytes().to_vec(),
            flags: 0,
            protect: exchange_id::StateProtect::None,
            impl_id: None,
        };
        let mut r = s.call(&loopback(), &user(), &Ops::new(1).raw(EXCHANGE_ID, args(|w| ex.encode(w))));
        r.ok(EXCHANGE_ID);
        let (id, seq) = (ClientId(r.u64()), r.u32());
        let cs = create_session::Args {
            clientid: id,
            sequence: seq,
            flags: 0,
            fore: asked(),
            back: asked(),
            cb_program: 0x4000_0000,
            sec_parms: vec![nfs::v4::state::wire::CbSec::None],
        };
        let mut r = s.call(&loopback(), &user(), &Ops::new(1).raw(CREATE_SESSION, args(|w| cs.encode(w))));
        r.ok(CREATE_SESSION);
        let session: SessionId = r.fixed(16).try_into().unwrap();
        Client41 { id, session, seq: 0 }
    }

    /// SEQUENCE on slot 0, then `ops`; the reply positioned after SEQUENCE's result.
    fn call(&mut self, s: &Server, ops: Vec<(u32, Vec<u8>)>) -> Reply {
        self.seq += 1;
        let a = sequence::Args { session: self.session, seqid: self.seq, slot: 0, highest_slot: 0, cache_this: true };
        let mut o = Ops::new(1).raw(SEQUENCE, args(|w| sequence::encode(&a, w)));
        for (op, b) in ops {
            o = o.raw(op, b);
        }
        let mut r = s.call(&loopback(), &user(), &o);
        r.ok(SEQUENCE);
        r.fixed(36);
        r
    }

    /// PUTFH `file` then one operation: its answer.
    fn on(&mut self, s: &Server, file: &FileHandle, op: u32, a: Vec<u8>) -> Answer {
        let mut reply = self.call(s, vec![(PUTFH, args(|w| w.put_opaque(&fh(file)))), (op, a)]);
        reply.ok(PUTFH);
        let status = reply.op(op);
        Answer { status, reply }
    }

    /// OPEN of `name` in `/data` by `owner`.
    fn open(&mut self, s: &Server, owner: &str, name: &str, access: u32) -> Stateid {
        let a = open_args(0, self.id, owner, name, access);
        let mut x = self.on(s, &handle(s, ""), OPEN, args(|w| a.encode(w)));
        assert_eq!(x.status, Status::OK, "OPEN {name}");
        read_open(&mut x.reply)
    }

    fn lock(&mut self, s: &Server, file: &FileHandle, a: &lock::Args) -> Result<Stateid, (Status, Option<Denied>)> {
        let mut x = self.on(s, file, LOCK, args(|w| a.encode(w)));
        match x.status {
            Status::OK => Ok(read_stateid(&mut x.reply)),
            Status::DENIED => Err((Status::DENIED, Some(read_denied(&mut x.reply)))),
            st => Err((st, None)),
        }
    }

    fn locku(&mut self, s: &Server, file: &FileHandle, a: &locku::Args) -> Result<Stateid, Status> {
        let mut x = self.on(s, file, LOCKU, args(|w| a.encode(w)));
        match x.status {
            Status::OK => Ok(read_stateid(&mut x.reply)),
            st => Err(st),
        }
    }

    fn lockt(&mut self, s: &Server, file: &FileHandle, a: &lockt::Args) -> Result<(), (Status, Option<Denied>)> {
        let mut x = self.on(s, file, LOCKT, args(|w| a.encode(w)));
        match x.status {
            Status::OK => Ok(()),
            Status::DENIED => Err((Status::DENIED, Some(read_denied(&mut x.reply)))),
            st => Err((st, None)),
        }
    }

    fn test_stateid(&mut self, s: &Server, sid: Stateid) -> Status {
        let a = test_stateid::Args { stateids: vec![sid] };
        let mut r = self.call(s, vec![(TEST_STATEID, args(|w| a.encode(w)))]);
        r.ok(TEST_STATEID);
        assert_eq!(r.u32(), 1);
        Status(r.u32())
    }

    fn free_stateid(&mut self, s: &Server, sid: Stateid) -> Status {
        let a = free_stateid::Args { stateid: sid };
        let mut r = self.call(s, vec![(FREE_STATEID, args(|w| a.encode(w)))]);
        r.op(FREE_STATEID)
    }

    fn close(&mut self, s: &Server, file: &FileHandle, sid: Stateid) -> Status {
        let a = close::Args { seqid: 0, stateid: sid };
        self.on(s, file, CLOSE, args(|w| a.encode(w))).status
    }
}

/// The locks the engine holds on `file`: (owner bytes, offset, length, kind).
fn engine_locks(s: &Server, file: &FileHandle) -> Vec<(Vec<u8>, u64, u64, LockKind)> {
    s.engine
        .locks()
        .locks_of(file.ino)
        .into_iter()
        .map(|h| (h.owner.owner, h.range.offset(), h.range.length(), h.kind))
        .collect()
}

// ---------------------------------------------------------------- 4.1

#[test]
fn two_clients_conflict_and_the_denial_names_the_holder() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = boot(&fx, &clock);
    let f = handle(&s, "small.txt");
    let mut a = Client41::mount(&s, "host-a");
    let mut b = Client41::mount(&s, "host-b");
    let oa = a.open(&s, "oo-a", "small.txt", 3);
    let ob = b.open(&s, "oo-b", "small.txt", 3);
    let la = a.lock(&s, &f, &lock_new(WRITE_LT, 0, 100, 0, oa, 0, a.id, "lo-a")).unwrap();
    assert_eq!(la.seqid, 1, "first lock stateid seqid");
    assert_ne!(la.other, oa.other);
    let want = Denied { offset: 0, length: 100, locktype: WRITE_LT, clientid: a.id.0, owner: b"lo-a".to_vec() };
    let denied = b.lock(&s, &f, &lock_new(READ_LT, 50, 10, 0, ob, 0, b.id, "lo-b")).unwrap_err();
    assert_eq!(denied, (Status::DENIED, Some(want.clone())));
    // The blocking type is a hint only: the same answer at once.
    let denied = b.lock(&s, &f, &lock_new(WRITEW_LT, 99, LEN_TO_EOF, 0, ob, 0, b.id, "lo-b")).unwrap_err();
    assert_eq!(denied, (Status::DENIED, Some(want.clone())));
    assert_eq!(b.lockt(&s, &f, &lockt(READ_LT, 0, 1, b.id, "lo-b")), Err((Status::DENIED, Some(want.clone()))));
    assert_eq!(b.lockt(&s, &f, &lockt(READ_LT, 100, LEN_TO_EOF, b.id, "lo-b")), Ok(()));
    assert_eq!(a.lockt(&s, &f, &lockt(WRITE_LT, 0, 200, a.id, "lo-a")), Ok(()), "its own lock");
    assert_eq!(
        a.lockt(&s, &f, &lockt(WRITE_LT, 0, 200, a.id, "other-owner")),
        Err((Status::DENIED, Some(want))),
        "another owner of the same client"
    );
    // The lock is the engine's.
    assert_eq!(engine_locks(&s, &f), [(b"lo-a".to_vec(), 0, 100, LockKind::Exclusive)]);
    // Unlock, then b gets it; the lock stateid's seqid moves on.
    let la = a.locku(&s, &f, &locku(WRITE_LT, 0, la, 0, 100)).unwrap();
    assert_eq!(la.seqid, 2);
    let lb = b.lock(&s, &f, &lock_new(READ_LT, 50, 10, 0, ob, 0, b.id, "lo-b")).unwrap();
    // a may share it, not write over it.
    let la = a.lock(&s, &f, &lock_existing(READ_LT, 0, 60, la, 0)).unwrap();
    assert_eq!(la.seqid, 3);
    let denied = a.lock(&s, &f, &lock_existing(WRITE_LT, 55, 1, la, 0)).unwrap_err();
    assert_eq!(denied.1.unwrap().owner, b"lo-b");
    assert_eq!(
        engine_locks(&s, &f),
        [(b"lo-a".to_vec(), 0, 60, LockKind::Shared), (b"lo-b".to_vec(), 50, 10, LockKind::Shared)]
    );
    assert_eq!(lb.seqid, 1);
}

#[test]
fn one_owner_splits_merges_upgrades_and_downgrades() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = boot(&fx, &clock);
    let f = handle(&s, "big.bin");
    let mut a = Client41::mount(&s, "host-a");
    let mut b = Client41::mount(&s, "host-b");
    let oa = a.open(&s, "oo", "big.bin", 3);
    let ob = b.open(&s, "oo", "big.bin", 3);
    let l = a.lock(&s, &f, &lock_new(WRITE_LT, 0, 100, 0, oa, 0, a.id, "lo")).unwrap();
    // A partial unlock splits; another client fits in the hole.
    let l = a.locku(&s, &f, &locku(READ_LT, 0, l, 40, 20)).unwrap();
    let x = LockKind::Exclusive;
    assert_eq!(engine_locks(&s, &f), [(b"lo".to_vec(), 0, 40, x), (b"lo".to_vec(), 60, 40, x)]);
    let lb = b.lock(&s, &f, &lock_new(WRITE_LT, 40, 20, 0, ob, 0, b.id, "lo")).unwrap();
    // Adjacent ranges of one kind merge, also to the end of file; "current stateid" (seqid 0).
    let l = a.lock(&s, &f, &lock_existing(WRITE_LT, 100, LEN_TO_EOF, Stateid { seqid: 0, ..l }, 0)).unwrap();
    assert_eq!(engine_locks(&s, &f)[2], (b"lo".to_vec(), 60, LEN_TO_EOF, x));
    // Downgrade part, upgrade it back.
    let l = a.lock(&s, &f, &lock_existing(READ_LT, 10, 10, l, 0)).unwrap();
    assert_eq!(engine_locks(&s, &f).len(), 5);
    assert!(b.lockt(&s, &f, &lockt(READ_LT, 10, 10, b.id, "x")).is_ok(), "read over a read lock");
    assert!(b.lockt(&s, &f, &lockt(READ_LT, 9, 2, b.id, "x")).is_err());
    let l = a.lock(&s, &f, &lock_existing(WRITE_LT, 10, 10, l, 0)).unwrap();
    assert_eq!(engine_locks(&s, &f).len(), 3);
    // An old seqid, a seqid from the future, a stateid of the wrong file.
    let old = Stateid { seqid: l.seqid - 1, ..l };
    assert_eq!(a.lock(&s, &f, &lock_existing(READ_LT, 0, 1, old, 0)).unwrap_err().0, Status::OLD_STATEID);
    let future = Stateid { seqid: l.seqid + 1, ..l };
    assert_eq!(a.lock(&s, &f, &lock_existing(READ_LT, 0, 1, future, 0)).unwrap_err().0, Status::BAD_STATEID);
    let other_file = handle(&s, "small.txt");
    assert_eq!(a.lock(&s, &other_file, &lock_existing(READ_LT, 0, 1, l, 0)).unwrap_err().0, Status::BAD_STATEID);
    assert_eq!(a.lock(&s, &f, &lock_existing(READ_LT, 0, 1, lb, 0)).unwrap_err().0, Status::BAD_STATEID, "b's");
    // Unlock everything, in pieces, including bytes never locked.
    let l = a.locku(&s, &f, &locku(WRITE_LT, 0, l, 0, 1000)).unwrap();
    a.locku(&s, &f, &locku(WRITE_LT, 0, l, 0, LEN_TO_EOF)).unwrap();
    assert_eq!(engine_locks(&s, &f), [(b"lo".to_vec(), 40, 20, x)]);
}

#[test]
fn ranges_modes_and_types() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = boot(&fx, &clock);
    let f = handle(&s, "small.txt");
    let mut a = Client41::mount(&s, "host-a");
    let ro = a.open(&s, "reader", "small.txt", 1);
    let id = a.id;
    let bad = |a: &mut Client41, args: lock::Args| a.lock(&s, &f, &args).unwrap_err().0;
    assert_eq!(bad(&mut a, lock_new(READ_LT, 0, 0, 0, ro, 0, id, "lo")), Status::INVAL, "length 0");
    assert_eq!(bad(&mut a, lock_new(READ_LT, 10, u64::MAX - 9, 0, ro, 0, id, "lo")), Status::INVAL, "past 2^64-1");
    assert_eq!(bad(&mut a, lock_new(WRITE_LT, 0, 1, 0, ro, 0, id, "lo")), Status::OPENMODE, "write under read open");
    // The largest ranges are fine: up to 2^64-1 exactly, and to EOF from the last offset.
    let l = a.lock(&s, &f, &lock_new(READ_LT, 10, u64::MAX - 10, 0, ro, 0, a.id, "lo")).unwrap();
    let l = a.lock(&s, &f, &lock_existing(READ_LT, u64::MAX, LEN_TO_EOF, l, 0)).unwrap();
    assert_eq!(engine_locks(&s, &f), [(b"lo".to_vec(), 10, LEN_TO_EOF, LockKind::Shared)]);
    assert_eq!(a.locku(&s, &f, &locku(READ_LT, 0, l, 5, 0)), Err(Status::INVAL));
    // A write-only open does not allow read locks.
    let wo = a.open(&s, "writer", "small.txt", 2);
    assert_eq!(bad(&mut a, lock_new(READW_LT, 0, 1, 0, wo, 0, id, "lo2")), Status::OPENMODE);
    // Not a file; not a lock type; a stateid that is no open or lock stateid.
    let dir = handle(&s, "d1");
    assert_eq!(a.lock(&s, &dir, &lock_new(READ_LT, 0, 1, 0, ro, 0, a.id, "lo")).unwrap_err().0, Status::ISDIR);
    let mut raw = args(|w| lock_new(READ_LT, 0, 1, 0, ro, 0, a.id, "lo").encode(w));
    raw[3] = 9;
    assert_eq!(a.on(&s, &f, LOCK, raw).status, Status::BADXDR);
    let forged = Stateid { seqid: 1, other: [9; 12] };
    assert_eq!(bad(&mut a, lock_existing(READ_LT, 0, 1, forged, 0)), Status::BAD_STATEID);
    assert_eq!(bad(&mut a, lock_new(READ_LT, 0, 1, 0, l, 0, id, "lo")), Status::BAD_STATEID, "a lock stateid as open");
    assert_eq!(bad(&mut a, lock_existing(READ_LT, 0, 1, ro, 0)), Status::BAD_STATEID, "an open stateid as lock");
    let dg = lockt(READ_LT, 0, 0, a.id, "x");
    assert_eq!(a.lockt(&s, &f, &dg), Err((Status::INVAL, None)));
    assert_eq!(a.lockt(&s, &dir, &lockt(READ_LT, 0, 1, a.id, "x")), Err((Status::ISDIR, None)));
    // RELEASE_LOCKOWNER is 4.0 only.
    let rl = release_lockowner::Args { clientid: a.id, owner: b"lo".to_vec() };
    let mut r = a.call(&s, vec![(RELEASE_LOCKOWNER, args(|w| rl.encode(w)))]);
    assert_eq!(r.op(RELEASE_LOCKOWNER), Status::NOTSUPP);
}

#[test]
fn lock_stateids_for_io_test_free_and_close() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = boot(&fx, &clock);
    let f = handle(&s, "small.txt");
    let mut a = Client41::mount(&s, "host-a");
    let mut b = Client41::mount(&s, "host-b");
    let ro = a.open(&s, "reader", "small.txt", 1);
    let l = a.lock(&s, &f, &lock_new(READ_LT, 0, 5, 0, ro, 0, a.id, "lo")).unwrap();
    // READ with the lock stateid.
    let read = read::Args { stateid: l, offset: 0, count: 100 };
    let mut x = a.on(
        &s,
        &f,
        READ,
        args(|w| {
            read.stateid.encode(w);
            w.put_u64(read.offset);
            w.put_u32(read.count);
        }),
    );
    assert_eq!(x.status, Status::OK);
    assert_eq!(x.reply.u32(), 1, "eof");
    assert_eq!(x.reply.opaque(), b"hello, world\n");
    let check = |sid: &Stateid, io| s.nfs4.state.check_stateid(1, sid, &Fh::Export(f), io);
    assert_eq!(check(&l, IoAccess::Read), Ok(()));
    assert_eq!(check(&l, IoAccess::Write), Err(Status::OPENMODE), "the open is read-only");
    assert_eq!(check(&l, IoAccess::Read).and(check(&Stateid { seqid: 0, ..l }, IoAccess::Read)), Ok(()));
    assert_eq!(
        s.nfs4.state.check_stateid(1, &l, &Fh::Export(handle(&s, "big.bin")), IoAccess::Read),
        Err(Status::BAD_STATEID)
    );
    // TEST_STATEID: current, old, someone else's.
    assert_eq!(a.test_stateid(&s, l), Status::OK);
    let l2 = a.lock(&s, &f, &lock_existing(READ_LT, 5, 5, l, 0)).unwrap();
    assert_eq!(a.test_stateid(&s, l), Status::OLD_STATEID);
    assert_eq!(b.test_stateid(&s, l2), Status::BAD_STATEID);
    // FREE_STATEID and CLOSE while locks are held.
    assert_eq!(a.free_stateid(&s, l2), Status::LOCKS_HELD);
    assert_eq!(b.free_stateid(&s, l2), Status::BAD_STATEID);
    assert_eq!(a.close(&s, &f, ro), Status::LOCKS_HELD);
    let l3 = a.locku(&s, &f, &locku(READ_LT, 0, l2, 0, 10)).unwrap();
    assert_eq!(a.free_stateid(&s, l3), Status::OK);
    assert_eq!(a.test_stateid(&s, l3), Status::BAD_STATEID, "freed");
    assert_eq!(a.locku(&s, &f, &locku(READ_LT, 0, l3, 0, 10)), Err(Status::BAD_STATEID));
    // A new lock stateid for the same owner, emptied, goes with CLOSE.
    let l4 = a.lock(&s, &f, &lock_new(READ_LT, 0, 5, 0, ro, 0, a.id, "lo")).unwrap();
    assert_ne!(l4.other, l3.other);
    assert_eq!(l4.seqid, 1);
    let l4 = a.locku(&s, &f, &locku(READ_LT, 0, l4, 0, 5)).unwrap();
    assert_eq!(a.close(&s, &f, ro), Status::OK);
    assert_eq!(a.test_stateid(&s, l4), Status::BAD_STATEID, "gone with its open");
    assert!(engine_locks(&s, &f).is_empty());
    assert!(s.engine.locks().shares_of(f.ino).is_empty(), "the share reservation went with CLOSE");
}

#[test]
fn lease_expiry_frees_locks_for_the_other_client() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = boot(&fx, &clock);
    let f = handle(&s, "small.txt");
    let mut a = Client41::mount(&s, "host-a");
    let mut b = Client41::mount(&s, "host-b");
    let oa = a.open(&s, "oo", "small.txt", 3);
    let ob = b.open(&s, "oo", "small.txt", 3);
    let la = a.lock(&s, &f, &lock_new(WRITE_LT, 0, LEN_TO_EOF, 0, oa, 0, a.id, "lo")).unwrap();
    assert!(b.lock(&s, &f, &lock_new(WRITE_LT, 0, 1, 0, ob, 0, b.id, "lo")).is_err());
    // b keeps its lease, a does not.
    clock.advance(Duration::from_secs(6));
    b.call(&s, vec![]);
    clock.advance(Duration::from_secs(6));
    let lb = b.lock(&s, &f, &lock_new(WRITE_LT, 0, 1, 0, ob, 0, b.id, "lo")).unwrap();
    assert_eq!(engine_locks(&s, &f), [(b"lo".to_vec(), 0, 1, LockKind::Exclusive)]);
    assert_eq!(s.engine.locks().locks_of(f.ino)[0].owner.client, b.id.0);
    assert_eq!(s.nfs4.state.check_stateid(1, &la, &Fh::Export(f), IoAccess::Read), Err(Status::EXPIRED));
    // Without a conflict, too: a third client's locks leave the engine once its lease ran out
    // and anything runs (another protocol would otherwise wait on them forever).
    let mut c = Client41::mount(&s, "host-c");
    let g = handle(&s, "big.bin");
    let oc = c.open(&s, "oo", "big.bin", 1);
    c.lock(&s, &g, &lock_new(READ_LT, 0, 1, 0, oc, 0, c.id, "lo")).unwrap();
    assert_eq!(s.engine.locks().shares_of(g.ino).len(), 1);
    for _ in 0..3 {
        clock.advance(Duration::from_secs(5));
        b.call(&s, vec![]);
    }
    assert!(s.engine.locks().locks_of(g.ino).is_empty());
    assert!(s.engine.locks().shares_of(g.ino).is_empty());
    assert_eq!(b.locku(&s, &f, &locku(WRITE_LT, 0, lb, 0, 1)).map(|s| s.seqid), Ok(2));
}

#[test]
fn another_protocols_locks_and_share_modes_count() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = boot(&fx, &clock);
    let f = handle(&s, "small.txt");
    let locks = s.engine.locks().clone();
    // An "SMB" client (owner ids of its own) holds a write lock and denies writers.
    let smb = LockOwner::new(0xFFFF_0000_0000_0001, b"handle-7".to_vec());
    locks.lock(f.ino, &smb, range(10, 10), LockKind::Exclusive).unwrap();
    locks.open_share(f.ino, &smb, ShareBits::READ, ShareBits::WRITE).unwrap();
    let mut a = Client41::mount(&s, "host-a");
    let o = open_args(0, a.id, "oo", "small.txt", 3);
    assert_eq!(a.on(&s, &handle(&s, ""), OPEN, args(|w| o.encode(w))).status, Status::SHARE_DENIED);
    let ro = a.open(&s, "oo", "small.txt", 1);
    let denied = a.lock(&s, &f, &lock_new(READ_LT, 0, 100, 0, ro, 0, a.id, "lo")).unwrap_err();
    let want = Denied { offset: 10, length: 10, locktype: WRITE_LT, clientid: smb.client, owner: b"handle-7".to_vec() };
    assert_eq!(denied, (Status::DENIED, Some(want)));
    // And the other way round.
    let l = a.lock(&s, &f, &lock_new(READ_LT, 20, 5, 0, ro, 0, a.id, "lo")).unwrap();
    let c = locks.lock(f.ino, &smb, range(0, 30), LockKind::Exclusive).unwrap_err();
    assert!(c.to_string().contains(&format!("client {:#x}", a.id.0)), "{c}");
    assert!(locks.close_share(f.ino, &smb));
    let l = a.locku(&s, &f, &locku(READ_LT, 0, l, 0, LEN_TO_EOF)).unwrap();
    assert_eq!(
        locks.locks_of(f.ino),
        [HeldLock { owner: smb.clone(), range: range(10, 10), kind: LockKind::Exclusive }]
    );
    // A server that goes away takes its clients' locks and opens with it; the lock manager
    // (the engine's) outlives it.
    a.lock(&s, &f, &lock_existing(READ_LT, 40, 1, l, 0)).unwrap();
    assert_eq!((locks.locks_of(f.ino).len(), locks.shares_of(f.ino).len()), (2, 1));
    drop(s);
    assert_eq!(locks.locks_of(f.ino).len(), 1, "the foreign owner's lock stays");
    assert!(locks.shares_of(f.ino).is_empty());
}

#[test]
fn lock_bounds() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = boot(&fx, &clock);
    // Small bounds, in place before any state exists.
    let limits = LockLimits { ranges_max: 100, ranges_per_owner_max: 2, shares_max: 100 };
    s.nfs4.state.use_lock_manager(Arc::new(LockManager::new(limits)));
    let f = handle(&s, "big.bin");
    let mut a = Client41::mount(&s, "host-a");
    let o = a.open(&s, "oo", "big.bin", 3);
    let l = a.lock(&s, &f, &lock_new(WRITE_LT, 0, 10, 0, o, 0, a.id, "lo")).unwrap();
    let l = a.lock(&s, &f, &lock_existing(WRITE_LT, 20, 10, l, 0)).unwrap();
    // A third range: 4.1 denies, naming the requester's own request.
    let (st, denied) = a.lock(&s, &f, &lock_existing(WRITE_LT, 40, 10, l, 0)).unwrap_err();
    assert_eq!(st, Status::DENIED);
    let d = denied.unwrap();
    assert_eq!((d.offset, d.length, d.clientid, d.owner), (40, 10, a.id.0, b"lo".to_vec()));
    // Splitting one's own range: LOCK_RANGE, for LOCK and LOCKU.
    assert_eq!(a.lock(&s, &f, &lock_existing(READ_LT, 2, 2, l, 0)).unwrap_err().0, Status::LOCK_RANGE);
    assert_eq!(a.locku(&s, &f, &locku(READ_LT, 0, l, 2, 2)), Err(Status::LOCK_RANGE));
    // Filling the gap merges: fewer ranges, fine.
    let l = a.lock(&s, &f, &lock_existing(WRITE_LT, 10, 10, l, 0)).unwrap();
    assert_eq!(l.seqid, 3);
}

// ---------------------------------------------------------------- 4.0

/// A confirmed 4.0 client.
fn setclientid(s: &Server, name: &str) -> ClientId {
    let sc = setclientid::Args {
        verifier: [1; 8],
        id: name.as_bytes().to_vec(),
        cb_program: 0,
        cb_netid: b"tcp".to_vec(),
        cb_addr: b"127.0.0.1.0.0".to_vec(),
        callback_ident: 1,
    };
    let mut r = s.call(&loopback(), &user(), &Ops::new(0).raw(SETCLIENTID, args(|w| sc.encode(w))));
    r.ok(SETCLIENTID);
    let (id, confirm) = (ClientId(r.u64()), r.fixed(8));
    let c = setclientid_confirm::Args { clientid: id, verifier: confirm.try_into().unwrap() };
    let mut r = s.call(&loopback(), &user(), &Ops::new(0).raw(SETCLIENTID_CONFIRM, args(|w| c.encode(w))));
    r.ok(SETCLIENTID_CONFIRM);
    id
}

/// A 4.0 compound on `file`: PUTFH then one operation; the whole reply's bytes and the answer.
fn v40(s: &Server, file: &FileHandle, op: u32, a: Vec<u8>) -> (Vec<u8>, Answer) {
    let ops = Ops::new(0).putfh(&fh(file)).raw(op, a);
    let mut reply = s.call(&loopback(), &user(), &ops);
    let bytes = reply.rest();
    reply.ok(PUTFH);
    let status = reply.op(op);
    (bytes, Answer { status, reply })
}

/// OPEN (seqid `seqid`) + OPEN_CONFIRM (seqid + 1): the confirmed open stateid.
fn open40(s: &Server, id: ClientId, owner: &str, seqid: u32, access: u32) -> Stateid {
    let a = open_args(seqid, id, owner, "small.txt", access);
    let (_, mut x) = v40(s, &handle(s, ""), OPEN, args(|w| a.encode(w)));
    assert_eq!(x.status, Status::OK);
    let sid = read_open(&mut x.reply);
    let oc = open_confirm::Args { stateid: sid, seqid: seqid + 1 };
    let (_, mut x) = v40(s, &handle(s, "small.txt"), OPEN_CONFIRM, args(|w| oc.encode(w)));
    assert_eq!(x.status, Status::OK);
    read_stateid(&mut x.reply)
}

#[test]
fn v40_seqids_replays_and_release_lockowner() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    let s = boot(&fx, &clock);
    let f = handle(&s, "small.txt");
    let id = setclientid(&s, "v40-a");
    let other = setclientid(&s, "v40-b");
    let open = open40(&s, id, "oo", 1, 3); // open-owner seqids 1, 2
    let lock_a = |a: &lock::Args| v40(&s, &f, LOCK, args(|w| a.encode(w)));
    // New lock-owner: open seqid 3, lock seqid 0 (the lock-owner's first).
    let first = lock_new(WRITE_LT, 0, 10, 3, open, 0, id, "lo");
    let (bytes, mut x) = lock_a(&first);
    assert_eq!(x.status, Status::OK);
    let l = read_stateid(&mut x.reply);
    assert_eq!(l.seqid, 1);
    // The retransmission gets the same reply; a wrong open seqid is refused.
    assert_eq!(lock_a(&first).0, bytes, "replayed");
    assert_eq!(lock_a(&lock_new(WRITE_LT, 0, 10, 7, open, 0, id, "lo")).1.status, Status::BAD_SEQID);
    // Existing lock-owner: lock seqid 1, then 2; an old one replays, a skipped one is refused.
    let (bytes, mut x) = lock_a(&lock_existing(WRITE_LT, 20, 10, l, 1));
    assert_eq!(x.status, Status::OK);
    let l = read_stateid(&mut x.reply);
    assert_eq!(l.seqid, 2);
    assert_eq!(lock_a(&lock_existing(WRITE_LT, 20, 10, Stateid { seqid: 1, ..l }, 1)).0, bytes);
    assert_eq!(lock_a(&lock_existing(WRITE_LT, 20, 10, l, 5)).1.status, Status::BAD_SEQID);
    // Another 4.0 client is denied; its DENIED is replayed with the body too.
    let open_b = open40(&s, other, "ob", 1, 3);
    let deny = lock_new(READ_LT, 5, 1, 3, open_b, 0, other, "lo-b");
    let (bytes, mut x) = v40(&s, &f, LOCK, args(|w| deny.encode(w)));
    assert_eq!(x.status, Status::DENIED);
    let d = read_denied(&mut x.reply);
    assert_eq!((d.offset, d.length, d.locktype, d.clientid, d.owner), (0, 10, WRITE_LT, id.0, b"lo".to_vec()));
    assert_eq!(v40(&s, &f, LOCK, args(|w| deny.encode(w))).0, bytes, "DENIED replayed");
    // DENIED moved both seqids on: b's next try carries open seqid 4 and lock seqid 1.
    let lockt_b = lockt(WRITE_LT, 10, 10, other, "lo-b");
    assert_eq!(v40(&s, &f, LOCKT, args(|w| lockt_b.encode(w))).1.status, Status::OK);
    let again = lock_new(READ_LT, 12, 1, 4, open_b, 1, other, "lo-b");
    assert_eq!(v40(&s, &f, LOCK, args(|w| again.encode(w))).1.status, Status::OK);
    // LOCKT renews the clientid: an unknown one is stale.
    let stale = lockt(WRITE_LT, 0, 1, ClientId(id.0 + 99), "x");
    assert_eq!(v40(&s, &f, LOCKT, args(|w| stale.encode(w))).1.status, Status::STALE_CLIENTID);
    // RELEASE_LOCKOWNER: held → LOCKS_HELD; after LOCKU → released, stateid gone.
    let release = |owner: &str| {
        let rl = release_lockowner::Args { clientid: id, owner: owner.as_bytes().to_vec() };
        s.call(&loopback(), &user(), &Ops::new(0).raw(RELEASE_LOCKOWNER, args(|w| rl.encode(w)))).status
    };
    assert_eq!(release("lo"), Status::LOCKS_HELD.0);
    assert_eq!(release("nobody"), 0);
    // (lock-owner seqids so far: 0 and 1; the refused 5 did not count)
    let unlock = locku(WRITE_LT, 2, l, 0, LEN_TO_EOF);
    let (bytes, mut x) = v40(&s, &f, LOCKU, args(|w| unlock.encode(w)));
    assert_eq!(x.status, Status::OK);
    let l = read_stateid(&mut x.reply);
    assert_eq!(l.seqid, 3);
    assert_eq!(v40(&s, &f, LOCKU, args(|w| unlock.encode(w))).0, bytes, "LOCKU replayed");
    assert_eq!(release("lo"), 0);
    assert_eq!(s.nfs4.state.check_stateid(0, &l, &Fh::Export(f), IoAccess::Read), Err(Status::BAD_STATEID));
    let (_, x) = v40(&s, &f, LOCK, args(|w| lock_existing(READ_LT, 0, 1, l, 4).encode(w)));
    assert_eq!(x.status, Status::BAD_STATEID);
    // A released lock-owner starts again from an open (open seqid 4, any lock seqid).
    let (_, x) = v40(&s, &f, LOCK, args(|w| lock_new(READ_LT, 0, 1, 4, open, 9, id, "lo").encode(w)));
    assert_eq!(x.status, Status::OK);
    // CLOSE with locks held: LOCKS_HELD (and the open-owner's seqid moves on).
    let (_, x) = v40(&s, &f, CLOSE, args(|w| close::Args { seqid: 5, stateid: open }.encode(w)));
    assert_eq!(x.status, Status::LOCKS_HELD);
}

// ---------------------------------------------------------------- grace

#[test]
fn reclaims_during_grace_only() {
    let fx = Fixture::new();
    let clock = TestClock::new();
    {
        let s = boot(&fx, &clock);
        let mut a = Client41::mount(&s, "host-a");
        a.call(&s, vec![(RECLAIM_COMPLETE, args(|w| w.put_bool(false)))]);
        let f = handle(&s, "small.txt");
        let o = a.open(&s, "oo", "small.txt", 3);
        let mut reclaim = lock_new(WRITE_LT, 0, 1, 0, o, 0, a.id, "lo");
        reclaim.reclaim = true;
        assert_eq!(a.lock(&s, &f, &reclaim).unwrap_err().0, Status::NO_GRACE, "no grace on a first boot");
    }
    // Restart: grace. The client comes back, reclaims its open, then its lock.
    let s = boot(&fx, &clock);
    assert!(s.nfs4.state.in_grace());
    let f = handle(&s, "small.txt");
    let mut a = Client41::mount(&s, "host-a");
    let mut claim = open_args(0, a.id, "oo", "", 3);
    claim.claim = open::Claim::Previous(open::OPEN_DELEGATE_NONE);
    let mut x = a.on(&s, &f, OPEN, args(|w| claim.encode(w)));
    assert_eq!(x.status, Status::OK);
    let o = read_open(&mut x.reply);
    let plain = lock_new(WRITE_LT, 0, 1, 0, o, 0, a.id, "lo");
    assert_eq!(a.lock(&s, &f, &plain).unwrap_err().0, Status::GRACE);
    assert_eq!(a.lockt(&s, &f, &lockt(WRITE_LT, 0, 1, a.id, "lo")), Err((Status::GRACE, None)));
    let mut reclaim = plain.clone();
    reclaim.reclaim = true;
    let l = a.lock(&s, &f, &reclaim).unwrap();
    assert_eq!(engine_locks(&s, &f), [(b"lo".to_vec(), 0, 1, LockKind::Exclusive)]);
    // A client of no previous boot may not reclaim.
    let mut newcomer = Client41::mount(&s, "host-new");
    let theirs = open::Args { clientid: newcomer.id, ..claim.clone() };
    assert_eq!(newcomer.on(&s, &f, OPEN, args(|w| theirs.encode(w))).status, Status::RECLAIM_BAD);
    // Grace ends with host-a's RECLAIM_COMPLETE: reclaims are over, plain locks work.
    let mut r = a.call(&s, vec![(RECLAIM_COMPLETE, args(|w| w.put_bool(false)))]);
    r.ok(RECLAIM_COMPLETE);
    assert!(!s.nfs4.state.in_grace());
    let mut again = lock_existing(WRITE_LT, 5, 1, l, 0);
    again.reclaim = true;
    assert_eq!(a.lock(&s, &f, &again).unwrap_err().0, Status::NO_GRACE);
    again.reclaim = false;
    assert_eq!(a.lock(&s, &f, &again).map(|l| l.seqid), Ok(2));
}

// ---------------------------------------------------------------- codecs

#[test]
fn lock_arguments_round_trip_and_decode_in_compounds() {
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
        for cut in (0..b.len()).step_by(4) {
            assert!(dec(&mut Reader::new(&b[..cut])).is_err());
        }
    }
    let sid = Stateid { seqid: 5, other: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] };
    for t in [READ_LT, WRITE_LT, READW_LT, WRITEW_LT] {
        let mut a = lock_new(t, 1, 2, 3, sid, 4, ClientId(5), "owner");
        rt(a.clone(), lock::Args::encode, lock::decode);
        a.reclaim = true;
        rt(a, lock::Args::encode, lock::decode);
        rt(lock_existing(t, 7, LEN_TO_EOF, sid, 9), lock::Args::encode, lock::decode);
        rt(lockt(t, 0, 1, ClientId(3), "o"), lockt::Args::encode, lockt::decode);
        rt(locku(t, 2, sid, 3, 4), locku::Args::encode, locku::decode);
    }
    // A type that is none of the four does not decode.
    let bytes = args(|w| lockt(0, 0, 1, ClientId(3), "o").encode(w));
    assert!(lockt::decode(&mut Reader::new(&bytes)).is_err());
    let bytes = args(|w| locku(5, 2, sid, 3, 4).encode(w));
    assert!(locku::decode(&mut Reader::new(&bytes)).is_err());
    // The fuzz target's decoder table knows the lock operations (4.0 and 4.1).
    for minor in [0, 1] {
        let ops = Ops::new(minor)
            .raw(ops::LOCK, args(|w| lock_new(READ_LT, 1, 2, 3, sid, 4, ClientId(5), "owner").encode(w)))
            .raw(ops::LOCKT, args(|w| lockt(WRITE_LT, 0, 1, ClientId(3), "o").encode(w)))
            .raw(ops::LOCKU, args(|w| locku(READ_LT, 2, sid, 3, 4).encode(w)));
        assert_eq!(nfs::v4::decode_compound(&ops.encode()), Ok(()), "minor {minor}");
    }
    let rl = Ops::new(0).raw(ops::RELEASE_LOCKOWNER, args(|w| w.put_u64(1)));
    assert!(nfs::v4::decode_compound(&rl.encode()).is_err(), "owner missing");
    // The fuzz target's lock seeds (nfs/fuzz/examples/seed_corpus.rs) decode.
    for seed in [
        &include_bytes!("../fuzz/corpus/nfs4_compound/lock40")[..],
        include_bytes!("../fuzz/corpus/nfs4_compound/lock41"),
    ] {
        assert_eq!(nfs::v4::decode_compound(seed), Ok(()));
    }
}
