//! The TCP transport on real loopback sockets: pipelining, completion order, limits, broken
//! input, cross-thread wakes, zero-copy replies, shutdown. `perf_*` (ignored) compares it with
//! a blocking thread-per-connection server: `cargo test --release -p nfs --test transport --
//! --ignored --nocapture`.
#![allow(clippy::unwrap_used)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use engine::ReadChunk;
use futures::future::LocalBoxFuture;
use nfs::rpc::{self, AcceptStat, Auth, CallHeader, RecordDecoder, ReplyHeader, LAST_FRAGMENT};
use nfs::service::{Call, ConnInfo, Program, RpcServer, Service};
use nfs::transport::{Transport, TransportConfig};
use nfs::xdr::{Reader, Writer};

const PROG: u32 = 400_100;
const NULL: u32 = 0;
const ECHO: u32 = 1;
/// Replies after the given milliseconds, woken by another thread.
const SLOW: u32 = 2;
/// Replies with a `Part::Data` of `Fetched` pieces (count, length) made from a pattern.
const FETCHED: u32 = 3;
/// Waits until the test opens the gate; counts calls inside at once.
const GATE: u32 = 4;
/// Replies with `n` bytes of a shared buffer, spliced in without a copy.
const BIG: u32 = 5;
/// A bug in the program.
const PANIC: u32 = 6;

#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    waiting: Mutex<Vec<futures::channel::oneshot::Sender<()>>>,
    inside: AtomicUsize,
    inside_max: AtomicUsize,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        for tx in self.waiting.lock().unwrap().drain(..) {
            let _ = tx.send(());
        }
    }
}

struct TestProg {
    gate: Arc<Gate>,
    big: Bytes,
}

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (seed.wrapping_mul(31).wrapping_add(j * 7) % 251) as u8).collect()
}

impl Program for TestProg {
    fn number(&self) -> u32 {
        PROG
    }
    fn versions(&self) -> (u32, u32) {
        (1, 1)
    }
    fn call<'a>(&'a self, call: Call<'a>, w: &'a mut Writer) -> LocalBoxFuture<'a, Result<(), AcceptStat>> {
        Box::pin(async move {
            let mut r = Reader::new(call.args);
            match call.header.proc_ {
                NULL => Ok(()),
                ECHO => {
                    w.put_opaque(call.args);
                    Ok(())
                }
                SLOW => {
                    let ms = r.u32("ms").map_err(|_| AcceptStat::GarbageArgs)?;
                    let (tx, rx) = futures::channel::oneshot::channel();
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(u64::from(ms)));
                        let _ = tx.send(std::thread::current().id());
                    });
                    let waker_thread = rx.await.map_err(|_| AcceptStat::SystemErr)?;
                    assert_ne!(waker_thread, std::thread::current().id());
                    w.put_u32(ms);
                    Ok(())
                }
                FETCHED => {
                    let n = r.u32("n").map_err(|_| AcceptStat::GarbageArgs)? as usize;
                    let len = r.u32("len").map_err(|_| AcceptStat::GarbageArgs)? as usize;
                    let pieces = (0..n).map(|i| Bytes::from(pattern(i, len + i))).collect();
                    let second = vec![Bytes::from(pattern(99, 3)), Bytes::from(pattern(98, 5))];
                    w.put_u32(0xfeed);
                    w.put_data(vec![ReadChunk::Fetched(pieces), ReadChunk::Fetched(second)]);
                    w.put_u32(0xbeef);
                    Ok(())
                }
                GATE => {
                    let now = self.gate.inside.fetch_add(1, Ordering::SeqCst) + 1;
                    self.gate.inside_max.fetch_max(now, Ordering::SeqCst);
                    let rx = {
                        let open = self.gate.open.lock().unwrap();
                        if *open {
                            None
                        } else {
                            let (tx, rx) = futures::channel::oneshot::channel();
                            self.gate.waiting.lock().unwrap().push(tx);
                            Some(rx)
                        }
                    };
                    if let Some(rx) = rx {
                        let _ = rx.await;
                    }
                    self.gate.inside.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }
                BIG => {
                    let n = (r.u32("n").map_err(|_| AcceptStat::GarbageArgs)? as usize).min(self.big.len());
                    w.put_data(vec![ReadChunk::Fetched(vec![self.big.slice(..n)])]);
                    Ok(())
                }
                PANIC => panic!("test program asked to panic"),
                _ => Err(AcceptStat::ProcUnavail),
            }
        })
    }
}

/// The RPC server plus counters of what the transport told the service.
struct TestService {
    rpc: RpcServer,
    closed: AtomicUsize,
    gate: Arc<Gate>,
}

impl TestService {
    fn new() -> Arc<TestService> {
        let gate = Arc::new(Gate::default());
        let prog = TestProg { gate: gate.clone(), big: Bytes::from(pattern(5, 4 << 20)) };
        Arc::new(TestService { rpc: RpcServer::new().with(Arc::new(prog)), closed: AtomicUsize::new(0), gate })
    }
}

impl Service for TestService {
    fn handle<'a>(&'a self, conn: &'a ConnInfo, record: Bytes) -> LocalBoxFuture<'a, Option<Writer>> {
        Box::pin(async move { self.rpc.serve(conn, &record).await })
    }
    fn closed(&self, _conn: &ConnInfo) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

fn start(cores: usize, tweak: impl FnOnce(&mut TransportConfig)) -> (Transport, Arc<TestService>) {
    let service = TestService::new();
    let mut config =
        TransportConfig { listeners: vec!["127.0.0.1:0".parse().unwrap()], cores, ..TransportConfig::default() };
    tweak(&mut config);
    let t = Transport::start(config, service.clone()).unwrap();
    (t, service)
}

fn call_record(xid: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    rpc::encode_call(&mut w, &CallHeader { xid, prog: PROG, vers: 1, proc_, auth: Auth::None });
    let mut v = w.to_vec();
    v.extend_from_slice(args);
    v
}

fn u32s(vals: &[u32]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_be_bytes()).collect()
}

struct Client {
    s: TcpStream,
    dec: RecordDecoder,
    buf: BytesMut,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_nodelay(true).unwrap();
        Client { s, dec: RecordDecoder::new(64 << 20), buf: BytesMut::new() }
    }

    fn send(&mut self, record: &[u8]) {
        let mut v = rpc::record_mark(record.len()).to_vec();
        v.extend_from_slice(record);
        self.s.write_all(&v).unwrap();
    }

    fn send_call(&mut self, xid: u32, proc_: u32, args: &[u8]) {
        self.send(&call_record(xid, proc_, args));
    }

    /// The next record, or the error/EOF that ended the stream.
    fn recv(&mut self) -> io::Result<Bytes> {
        loop {
            if let Some(r) = self.dec.decode(&mut self.buf).unwrap() {
                return Ok(r);
            }
            let mut chunk = [0u8; 64 << 10];
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next reply: xid and results of a successful call.
    fn reply(&mut self) -> (u32, Vec<u8>) {
        let rec = self.recv().unwrap();
        let (h, rest) = rpc::decode_reply(&rec).unwrap();
        match h {
            ReplyHeader::Accepted { xid, stat: AcceptStat::Success } => (xid, rest.to_vec()),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Whether the server closed the connection (EOF or reset) within the read timeout.
    fn closed_by_server(&mut self) -> bool {
        let mut b = [0u8; 4096];
        loop {
            match self.s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
                Err(e) => panic!("connection still open: {e}"),
            }
        }
    }
}

fn opaque(results: &[u8]) -> Vec<u8> {
    let mut r = Reader::new(results);
    r.opaque("data", usize::MAX).unwrap().to_vec()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn pipelined_calls_on_one_connection_are_all_answered() {
    let (t, _svc) = start(1, |_| {});
    let mut c = Client::connect(t.local_addrs()[0]);
    let n = 1000u32;
    // All calls written before any reply is read: pipelined, many in flight.
    let mut all = Vec::new();
    for xid in 0..n {
        let mut rec = rpc::record_mark(0).to_vec();
        let body = call_record(xid, ECHO, &xid.to_be_bytes().repeat((xid % 7) as usize + 1));
        rec = {
            rec.clear();
            rec.extend_from_slice(&rpc::record_mark(body.len()));
            rec.extend_from_slice(&body);
            rec
        };
        all.extend_from_slice(&rec);
    }
    let mut writer = c.s.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&all).unwrap());
    let mut seen = vec![false; n as usize];
    for _ in 0..n {
        let (xid, res) = c.reply();
        assert_eq!(opaque(&res), xid.to_be_bytes().repeat((xid % 7) as usize + 1));
        assert!(!std::mem::replace(&mut seen[xid as usize], true), "xid {xid} answered twice");
    }
    sender.join().unwrap();
    assert!(seen.iter().all(|s| *s));
    let total = t.stats().total();
    assert_eq!(total.calls, u64::from(n));
    assert_eq!(total.connections_total, 1);
}

#[test]
fn slow_call_does_not_hold_back_a_fast_one_and_is_woken_from_another_thread() {
    let (t, _svc) = start(1, |_| {});
    let mut c = Client::connect(t.local_addrs()[0]);
    let started = Instant::now();
    c.send_call(1, SLOW, &u32s(&[600]));
    c.send_call(2, ECHO, b"fast");
    let (xid, res) = c.reply();
    assert_eq!(xid, 2, "the fast call is answered first (completion order)");
    assert_eq!(opaque(&res), b"fast");
    assert!(started.elapsed() < Duration::from_millis(500), "fast reply took {:?}", started.elapsed());
    let (xid, res) = c.reply();
    assert_eq!(xid, 1);
    assert_eq!(res, 600u32.to_be_bytes());
    assert!(started.elapsed() >= Duration::from_millis(600));
}

#[test]
fn connections_spread_over_cores() {
    let (t, _svc) = start(2, |_| {});
    let addr = t.local_addrs()[0];
    let threads: Vec<_> = (0..24u32)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for k in 0..10 {
                    c.send_call(i * 100 + k, ECHO, &i.to_be_bytes());
                    let (xid, res) = c.reply();
                    assert_eq!(xid, i * 100 + k);
                    assert_eq!(opaque(&res), i.to_be_bytes());
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let stats = t.stats();
    assert_eq!(stats.cores.len(), 2);
    assert_eq!(stats.total().connections_total, 24);
    assert_eq!(stats.total().calls, 240);
    assert!(stats.cores.iter().all(|c| c.connections_total > 0), "one core took every connection: {stats:?}");
    wait_until("connections to close", || t.stats().total().connections_open == 0);
}

#[test]
fn large_record_works_and_a_too_long_one_closes_the_connection() {
    let (t, svc) = start(1, |_| {});
    let mut c = Client::connect(t.local_addrs()[0]);
    let big = pattern(3, 3 << 20);
    c.send_call(7, ECHO, &big);
    let (xid, res) = c.reply();
    assert_eq!(xid, 7);
    assert_eq!(opaque(&res), big);
    drop(c);

    // A record mark claiming more than the limit: closed without reading the body.
    let mut c = Client::connect(t.local_addrs()[0]);
    c.s.write_all(&rpc::record_mark((4 << 20) + (64 << 10) + 1)).unwrap();
    assert!(c.closed_by_server());
    wait_until("the broken connection to be counted", || t.stats().total().connections_broken == 1);
    // Fragments that add up to more than the limit, too.
    let mut c = Client::connect(t.local_addrs()[0]);
    let frag = vec![0u8; 3 << 20];
    for _ in 0..2 {
        c.s.write_all(&((frag.len() as u32).to_be_bytes())).unwrap();
        if c.s.write_all(&frag).is_err() {
            break;
        }
    }
    assert!(c.closed_by_server());
    wait_until("both broken connections to be counted", || t.stats().total().connections_broken == 2);
    wait_until("service told of every close", || svc.closed.load(Ordering::SeqCst) == 3);
}

#[test]
fn garbage_gets_an_error_or_a_close_never_a_panic() {
    let (t, _svc) = start(1, |_| {});
    let addr = t.local_addrs()[0];
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Framed garbage: records of random bytes; unframed garbage: random bytes on the wire.
    for round in 0..40 {
        let mut c = Client::connect(addr);
        let len = (next() % 300) as usize;
        let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 0 {
            c.send(&junk);
        } else {
            let _ = c.s.write_all(&junk);
        }
        c.s.shutdown(Shutdown::Write).unwrap();
        // Either a reply (an RPC error), or the connection closes.
        let mut sink = Vec::new();
        let _ = c.s.read_to_end(&mut sink);
    }
    // A call header with a bad RPC version gets RPC_MISMATCH, and the connection stays up.
    let mut c = Client::connect(addr);
    let mut rec = call_record(9, NULL, &[]);
    rec[8..12].copy_from_slice(&3u32.to_be_bytes());
    c.send(&rec);
    let r = c.recv().unwrap();
    assert_eq!(rpc::decode_reply(&r).unwrap().0, ReplyHeader::RpcMismatch { xid: 9 });
    c.send_call(10, ECHO, b"ok");
    assert_eq!(c.reply().0, 10);
    // The server still serves new connections.
    let mut c = Client::connect(addr);
    c.send_call(11, NULL, &[]);
    assert_eq!(c.reply().0, 11);
}

#[test]
fn multi_fragment_records() {
    let (t, _svc) = start(1, |_| {});
    let mut c = Client::connect(t.local_addrs()[0]);
    let payload = pattern(8, 10_000);
    let rec = call_record(21, ECHO, &payload);
    // Three fragments, written in small pieces with pauses so they arrive in several reads.
    let cuts = [0, 13, 5000, rec.len()];
    let mut wire = Vec::new();
    for w in cuts.windows(2) {
        let frag = &rec[w[0]..w[1]];
        let last = if w[1] == rec.len() { LAST_FRAGMENT } else { 0 };
        wire.extend_from_slice(&(last | frag.len() as u32).to_be_bytes());
        wire.extend_from_slice(frag);
    }
    for piece in wire.chunks(997) {
        c.s.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let (xid, res) = c.reply();
    assert_eq!(xid, 21);
    assert_eq!(opaque(&res), payload);
}

#[test]
fn reply_of_fetched_pieces_arrives_intact() {
    let (t, _svc) = start(1, |_| {});
    let mut c = Client::connect(t.local_addrs()[0]);
    // 1500 pieces: more than one sendmsg carries (IOVECS_MAX), so the send resumes.
    for (n, len) in [(5u32, 1000u32), (1, 3), (40, 65_537), (1500, 10)] {
        c.send_call(n, FETCHED, &u32s(&[n, len]));
        let (xid, res) = c.reply();
        assert_eq!(xid, n);
        let mut r = Reader::new(&res);
        assert_eq!(r.u32("head").unwrap(), 0xfeed);
        let data = r.opaque("data", usize::MAX).unwrap();
        let mut want = Vec::new();
        for i in 0..n as usize {
            want.extend_from_slice(&pattern(i, len as usize + i));
        }
        want.extend_from_slice(&pattern(99, 3));
        want.extend_from_slice(&pattern(98, 5));
        assert_eq!(data.len(), want.len());
        assert!(data == want.as_slice(), "fetched pieces arrived changed");
        assert_eq!(r.u32("tail").unwrap(), 0xbeef);
        assert_eq!(r.remaining(), 0);
    }
}

#[test]
fn large_replies_to_a_slow_reader_arrive_intact() {
    let (t, _svc) = start(1, |c| c.reply_bytes_queued_max = 4 << 20);
    let mut c = Client::connect(t.local_addrs()[0]);
    let sizes = [(3 << 20) + 5, 1, 0, (2 << 20) + 2, 4 << 20, 777];
    for (xid, n) in sizes.iter().enumerate() {
        c.send_call(xid as u32, BIG, &u32s(&[*n as u32]));
    }
    // Socket buffers fill up while nobody reads: the sends are cut short and resumed.
    std::thread::sleep(Duration::from_millis(300));
    let want = pattern(5, 4 << 20);
    let mut seen = vec![false; sizes.len()];
    for _ in 0..sizes.len() {
        let (xid, res) = c.reply();
        let n = sizes[xid as usize];
        let data = opaque(&res);
        assert_eq!(data.len(), n);
        assert!(data == want[..n], "reply {xid} arrived changed");
        seen[xid as usize] = true;
    }
    assert!(seen.iter().all(|s| *s));
}

#[test]
fn calls_in_flight_are_bounded_per_connection() {
    let (t, svc) = start(1, |c| c.calls_in_flight_max = 4);
    let mut c = Client::connect(t.local_addrs()[0]);
    for xid in 0..12 {
        c.send_call(xid, GATE, &[]);
    }
    wait_until("4 calls inside the gate", || svc.gate.inside.load(Ordering::SeqCst) == 4);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(svc.gate.inside.load(Ordering::SeqCst), 4, "the transport read past its in-flight limit");
    svc.gate.open();
    let mut xids: Vec<u32> = (0..12).map(|_| c.reply().0).collect();
    xids.sort_unstable();
    assert_eq!(xids, (0..12).collect::<Vec<_>>());
    assert_eq!(svc.gate.inside_max.load(Ordering::SeqCst), 4);
}

#[test]
fn peer_closing_mid_call_cancels_cleanly() {
    let (t, svc) = start(1, |_| {});
    let addr = t.local_addrs()[0];
    for i in 0..5 {
        let mut c = Client::connect(addr);
        c.send_call(i, GATE, &[]);
        c.send_call(100 + i, SLOW, &u32s(&[200]));
        wait_until("the call to start", || svc.gate.inside.load(Ordering::SeqCst) == 1);
        drop(c);
        // The gated call is cancelled: its future is dropped (it leaves the gate uncounted,
        // so the counter is reset here).
        wait_until("the service to hear of the close", || svc.closed.load(Ordering::SeqCst) == i as usize + 1);
        svc.gate.inside.store(0, Ordering::SeqCst);
    }
    // A reset (RST via SO_LINGER 0) mid-call and mid-record, on a connection being served.
    let mut c = Client::connect(addr);
    c.send_call(1, NULL, &[]);
    assert_eq!(c.reply().0, 1);
    c.send_call(2, SLOW, &u32s(&[200]));
    drop(socket_with_linger_zero(c.s));
    wait_until("the reset connection to close", || svc.closed.load(Ordering::SeqCst) == 6);
    assert_eq!(t.stats().total().connections_open, 0);
    let mut c = Client::connect(addr);
    c.send_call(1, NULL, &[]);
    assert_eq!(c.reply().0, 1);
}

fn socket_with_linger_zero(mut s: TcpStream) -> TcpStream {
    s.write_all(&rpc::record_mark(100)).unwrap();
    s.write_all(&[0u8; 50]).unwrap();
    let fd = std::os::fd::AsFd::as_fd(&s);
    rustix_linger_zero(fd);
    s
}

fn rustix_linger_zero(fd: std::os::fd::BorrowedFd<'_>) {
    use std::os::fd::AsRawFd;
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: passes a live linger struct of the right size to setsockopt.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

#[test]
fn shutdown_with_open_connections_is_prompt() {
    let (t, svc) = start(2, |_| {});
    let addr = t.local_addrs()[0];
    let mut clients: Vec<Client> = (0..6).map(|_| Client::connect(addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send_call(i as u32, NULL, &[]);
        assert_eq!(c.reply().0, i as u32);
    }
    // Calls in flight that would take long, and one blocked in the service forever.
    clients[0].send_call(50, SLOW, &u32s(&[30_000]));
    clients[1].send_call(51, GATE, &[]);
    wait_until("the gated call", || svc.gate.inside.load(Ordering::SeqCst) == 1);
    let started = Instant::now();
    t.shutdown();
    assert!(started.elapsed() < Duration::from_secs(3), "shutdown took {:?}", started.elapsed());
    for c in &mut clients {
        assert!(c.closed_by_server());
    }
    assert_eq!(svc.closed.load(Ordering::SeqCst), 6);
    assert!(TcpStream::connect(addr).is_err(), "still accepting after shutdown");
}

#[test]
fn a_panicking_call_closes_its_connection_and_the_core_serves_on() {
    let (t, svc) = start(1, |_| {});
    let addr = t.local_addrs()[0];
    let mut other = Client::connect(addr);
    other.send_call(1, NULL, &[]);
    assert_eq!(other.reply().0, 1);
    let mut c = Client::connect(addr);
    c.send_call(2, PANIC, &[]);
    assert!(c.closed_by_server());
    wait_until("the service to hear of the close", || svc.closed.load(Ordering::SeqCst) == 1);
    other.send_call(3, ECHO, b"still here");
    assert_eq!(opaque(&other.reply().1), b"still here");
    assert_eq!(t.stats().total().connections_broken, 1);
}

#[test]
fn start_refuses_a_taken_address_and_empty_configs() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let service = TestService::new();
    let config = TransportConfig { listeners: vec![taken.local_addr().unwrap()], ..TransportConfig::default() };
    let e = Transport::start(config, service.clone()).unwrap_err();
    assert!(e.to_string().contains("listening on"), "{e}");
    let e = Transport::start(TransportConfig::default(), service).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}

// ---- measurements (ignored; run in release) ----

/// A blocking server, one thread per connection, serving the same service: the baseline.
fn blocking_server(service: Arc<TestService>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let service = service.clone();
            std::thread::spawn(move || {
                s.set_nodelay(true).unwrap();
                let conn = ConnInfo { id: 0, peer: s.peer_addr().unwrap(), local: s.local_addr().unwrap(), core: 0 };
                let mut dec = RecordDecoder::new(8 << 20);
                let mut buf = BytesMut::new();
                let mut chunk = vec![0u8; 64 << 10];
                loop {
                    while let Ok(Some(rec)) = dec.decode(&mut buf) {
                        if let Some(w) = futures::executor::block_on(service.rpc.serve(&conn, &rec)) {
                            let mut out = rpc::record_mark(w.len()).to_vec();
                            out.extend_from_slice(&w.to_vec());
                            if s.write_all(&out).is_err() {
                                return;
                            }
                        }
                    }
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

/// CPU seconds this process has used (server and client threads alike).
fn cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a live, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Calls and reply bytes with `conns` connections keeping `depth` calls each in flight for
/// `secs`, and the seconds it took (the last replies drain after `secs`).
fn load(addr: SocketAddr, conns: usize, depth: usize, proc_: u32, args: Vec<u8>, secs: f64) -> (f64, f64, f64) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let args = args.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let rec = call_record(1, proc_, &args);
                let mut framed = rpc::record_mark(rec.len()).to_vec();
                framed.extend_from_slice(&rec);
                let (mut calls, mut bytes) = (0u64, 0u64);
                let batch = framed.repeat(depth);
                c.s.write_all(&batch).unwrap();
                let mut outstanding = depth;
                while outstanding > 0 {
                    let r = c.recv().unwrap();
                    bytes += r.len() as u64;
                    calls += 1;
                    outstanding -= 1;
                    if Instant::now() < deadline {
                        c.s.write_all(&framed).unwrap();
                        outstanding += 1;
                    }
                }
                (calls, bytes)
            })
        })
        .collect();
    let (mut calls, mut bytes) = (0u64, 0u64);
    for t in threads {
        let (c, b) = t.join().unwrap();
        calls += c;
        bytes += b;
    }
    (calls as f64, bytes as f64, started.elapsed().as_secs_f64())
}

#[test]
#[ignore]
fn perf_reactor_vs_blocking_threads() {
    let rounds = std::env::var("PERF_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let secs = 2.0;
    let (t, svc) = start(2, |_| {});
    let reactor_addr = t.local_addrs()[0];
    let blocking_addr = blocking_server(svc.clone());
    for round in 0..rounds {
        for (name, addr) in [("reactor", reactor_addr), ("blocking", blocking_addr)] {
            let cpu = cpu_secs();
            let (calls, _, null_secs) = load(addr, 4, 32, NULL, Vec::new(), secs);
            let null_cpu = cpu_secs() - cpu;
            let cpu = cpu_secs();
            let (_, bytes, big_secs) = load(addr, 4, 4, BIG, u32s(&[1 << 20]), secs);
            let big_cpu = cpu_secs() - cpu;
            let mib = bytes / f64::from(1 << 20);
            // Per CPU second of the whole process (client included, the same for both): on a
            // shared, loaded host this compares better than wall time.
            println!(
                "round {round} {name:8}: NULL 4x32 {:>8.0} calls/s {:>8.0} calls/cpu-s | \
                 1 MiB replies 4x4 {:>5.0} MiB/s {:>5.0} MiB/cpu-s",
                calls / null_secs,
                calls / null_cpu,
                mib / big_secs,
                mib / big_cpu,
            );
        }
    }
    println!("reactor stats: {:?}", t.stats().total());
}
