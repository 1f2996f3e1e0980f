//! One core's share of the transport: its acceptors and its connections (reader, call tasks,
//! writer). Everything here runs on the core's thread.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::{select, Either};
use futures::FutureExt;
use slab::Slab;

use super::stats::CoreCounters;
use super::TransportConfig;
use crate::reactor::{self, spawn_local, GatherBufs, Notify, Signal, Task};
use crate::rpc::{record_mark, RecordDecoder, LAST_FRAGMENT};
use crate::service::{ConnInfo, Service};
use crate::xdr::{Part, Writer};

/// Receive buffer growth step (and least free space asked of a receive).
const RECV_BYTES: usize = 64 << 10;
/// Least free space a receive is given.
const RECV_BYTES_MIN: usize = 4 << 10;
/// Most replies gathered into one `sendmsg` batch, and most bytes.
const BATCH_REPLIES_MAX: usize = 256;
const BATCH_BYTES_MAX: usize = 8 << 20;
/// Pause after an accept failure that will not clear at once (out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// What a core thread is started with.
pub(crate) struct CoreSetup {
    pub core: usize,
    pub config: TransportConfig,
    pub service: Arc<dyn Service>,
    pub counters: Arc<[CoreCounters]>,
    pub stop: Arc<Signal>,
}

/// A core's transport state.
struct CoreCtx {
    core: usize,
    config: TransportConfig,
    service: Arc<dyn Service>,
    counters: Arc<[CoreCounters]>,
    /// Connection tasks (dropping one cancels it).
    conns: RefCell<Slab<Task<()>>>,
}

impl CoreCtx {
    fn counters(&self) -> &CoreCounters {
        // `counters` has one entry per core, `core` is below that by construction.
        &self.counters[self.core]
    }
}

/// Serves a core's listeners until the transport stops, then cancels every connection.
pub(crate) async fn serve_core(setup: CoreSetup, listeners: super::listen::CoreSockets) {
    let ctx = Rc::new(CoreCtx {
        core: setup.core,
        config: setup.config,
        service: setup.service,
        counters: setup.counters,
        conns: RefCell::new(Slab::new()),
    });
    let acceptors: Vec<Task<()>> =
        listeners.into_iter().map(|(fd, addr)| spawn_local(accept_loop(ctx.clone(), fd, addr))).collect();
    setup.stop.wait().await;
    drop(acceptors);
    let conns = std::mem::take(&mut *ctx.conns.borrow_mut());
    tracing::debug!(core = ctx.core, connections = conns.len(), "transport stops");
    // Dropping the handles cancels the connections; the reactor drops their futures (which
    // shut the sockets down and tell the service) before it goes away.
    drop(conns);
}

async fn accept_loop(ctx: Rc<CoreCtx>, listener: OwnedFd, addr: SocketAddr) {
    loop {
        match reactor::accept(listener.as_raw_fd()).await {
            Ok(fd) => start_conn(&ctx, fd),
            Err(e) => match e.raw_os_error() {
                Some(libc::ECONNABORTED | libc::EINTR | libc::EAGAIN | libc::EPROTO | libc::EPERM) => {}
                _ => {
                    tracing::warn!(core = ctx.core, %addr, error = %e, "accept failed; retrying shortly");
                    reactor::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}

fn start_conn(ctx: &Rc<CoreCtx>, fd: OwnedFd) {
    let stream = TcpStream::from(fd);
    let (peer, local) = match (stream.peer_addr(), stream.local_addr()) {
        (Ok(p), Ok(l)) => (p, l),
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!(core = ctx.core, error = %e, "connection gone before it was served");
            return;
        }
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::warn!(core = ctx.core, %peer, error = %e, "TCP_NODELAY failed");
    }
    let info = ConnInfo { id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed), peer, local, core: ctx.core };
    let counters = ctx.counters();
    CoreCounters::add(&counters.connections_open, 1);
    CoreCounters::add(&counters.connections_total, 1);
    tracing::debug!(core = ctx.core, %peer, conn = info.id, "connection accepted");
    let mut conns = ctx.conns.borrow_mut();
    let entry = conns.vacant_entry();
    let key = entry.key();
    let conn = Rc::new(Conn {
        ctx: ctx.clone(),
        info,
        fd: stream.as_raw_fd(),
        calls: RefCell::new(Slab::new()),
        calls_in_flight: Cell::new(0),
        request_bytes_in_flight: Cell::new(0),
        replies: RefCell::new(VecDeque::new()),
        reply_bytes_queued: Cell::new(0),
        reader_wake: Notify::new(),
        writer_wake: Notify::new(),
        failed: Cell::new(None),
    });
    let guard = ConnGuard { conn, key, fd: Some(OwnedFd::from(stream)) };
    entry.insert(spawn_local(serve_conn(guard)));
}

/// One connection's state, shared by its reader, writer and call tasks.
struct Conn {
    ctx: Rc<CoreCtx>,
    info: ConnInfo,
    fd: RawFd,
    /// Call tasks in flight (dropping one cancels it).
    calls: RefCell<Slab<Task<()>>>,
    calls_in_flight: Cell<usize>,
    request_bytes_in_flight: Cell<usize>,
    /// Replies in completion order, not yet taken by the writer.
    replies: RefCell<VecDeque<Writer>>,
    /// Bytes (marks included) of replies queued or being sent.
    reply_bytes_queued: Cell<usize>,
    reader_wake: Notify,
    writer_wake: Notify,
    /// Set when the connection must end (the writer returns it).
    failed: Cell<Option<&'static str>>,
}

/// Ends a connection however its task ends (returns or is cancelled): cancels its calls,
/// shuts the socket down and closes it, tells the service, forgets the connection.
struct ConnGuard {
    conn: Rc<Conn>,
    key: usize,
    fd: Option<OwnedFd>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let conn = &self.conn;
        let calls = std::mem::take(&mut *conn.calls.borrow_mut());
        drop(calls);
        conn.replies.borrow_mut().clear();
        if let Some(fd) = self.fd.take() {
            let _ = rustix::net::shutdown(&fd, rustix::net::Shutdown::Both);
            drop(fd);
        }
        conn.ctx.service.closed(&conn.info);
        CoreCounters::sub(&conn.ctx.counters().connections_open, 1);
        tracing::debug!(core = conn.ctx.core, peer = %conn.info.peer, conn = conn.info.id, "connection closed");
        let me = conn.ctx.conns.borrow_mut().try_remove(self.key);
        if let Some(me) = me {
            // This is the running task's own handle: let it finish instead of cancelling.
            me.detach();
        }
    }
}

async fn serve_conn(mut guard: ConnGuard) {
    let conn = guard.conn.clone();
    let why = {
        let reader = pin!(read_loop(&conn));
        let writer = pin!(write_loop(&conn));
        match select(reader, writer).await {
            Either::Left((why, _)) | Either::Right((why, _)) => why,
        }
    };
    match &why {
        End::Eof => tracing::debug!(peer = %conn.info.peer, conn = conn.info.id, "peer closed the connection"),
        End::Io(e) => tracing::debug!(peer = %conn.info.peer, conn = conn.info.id, error = %e, "connection failed"),
        End::Broken(e) => {
            CoreCounters::add(&conn.ctx.counters().connections_broken, 1);
            tracing::warn!(peer = %conn.info.peer, conn = conn.info.id, error = %e, "connection closed by the server");
        }
    }
    // In-flight operations on the socket end with the shutdown; the close goes through the ring.
    if let Some(fd) = guard.fd.take() {
        let _ = rustix::net::shutdown(&fd, rustix::net::Shutdown::Both);
        if let Err(e) = reactor::close(fd).await {
            tracing::debug!(peer = %conn.info.peer, error = %e, "close failed");
        }
    }
    drop(guard);
}

/// Why a connection ended.
enum End {
    Eof,
    Io(io::Error),
    Broken(String),
}

impl Conn {
    fn over_limits(&self) -> bool {
        let c = &self.ctx.config;
        self.calls_in_flight.get() >= c.calls_in_flight_max
            || self.request_bytes_in_flight.get() >= c.request_bytes_in_flight_max
            || self.reply_bytes_queued.get() >= c.reply_bytes_queued_max
    }

    fn start_call(self: &Rc<Self>, record: Bytes) {
        let len = record.len();
        self.calls_in_flight.set(self.calls_in_flight.get() + 1);
        self.request_bytes_in_flight.set(self.request_bytes_in_flight.get() + len);
        let mut calls = self.calls.borrow_mut();
        let entry = calls.vacant_entry();
        let key = entry.key();
        entry.insert(spawn_local(run_call(self.clone(), key, record)));
    }

    fn queue_reply(&self, reply: Writer) {
        let len = reply.len();
        if len >= LAST_FRAGMENT as usize {
            tracing::error!(peer = %self.info.peer, bytes = len, "reply too long for one record; dropped");
            return;
        }
        self.reply_bytes_queued.set(self.reply_bytes_queued.get() + len + 4);
        self.replies.borrow_mut().push_back(reply);
        self.writer_wake.notify();
    }
}

async fn run_call(conn: Rc<Conn>, key: usize, record: Bytes) {
    let len = record.len();
    let service = conn.ctx.service.clone();
    let handled = AssertUnwindSafe(service.handle(&conn.info, record)).catch_unwind().await;
    let reply = match handled {
        Ok(reply) => reply,
        Err(_) => {
            // A bug in a program; the call's xid is unknown here, so the client cannot be
            // answered: end this connection and keep the core serving the others.
            tracing::error!(peer = %conn.info.peer, conn = conn.info.id, "service panicked serving a call; closing the connection");
            conn.failed.set(Some("the service panicked"));
            conn.writer_wake.notify();
            None
        }
    };
    conn.calls_in_flight.set(conn.calls_in_flight.get() - 1);
    conn.request_bytes_in_flight.set(conn.request_bytes_in_flight.get() - len);
    CoreCounters::add(&conn.ctx.counters().calls, 1);
    if let Some(reply) = reply {
        conn.queue_reply(reply);
    }
    conn.reader_wake.notify();
    let me = conn.calls.borrow_mut().try_remove(key);
    if let Some(me) = me {
        me.detach();
    }
}

async fn read_loop(conn: &Rc<Conn>) -> End {
    let config = &conn.ctx.config;
    let mut decoder = RecordDecoder::new(config.record_bytes_max);
    let mut buf = BytesMut::with_capacity(RECV_BYTES);
    loop {
        while conn.over_limits() {
            conn.reader_wake.wait().await;
        }
        match decoder.decode(&mut buf) {
            Ok(Some(record)) => {
                conn.start_call(record);
                continue;
            }
            Ok(None) => {}
            Err(e) => return End::Broken(e.to_string()),
        }
        // Room for the rest of the fragment being read (so a large record lands in one
        // buffer), and at least a few KiB so small calls do not grow the buffer on every read.
        let need = decoder.bytes_wanted(&buf).min(config.record_bytes_max.saturating_add(8));
        if buf.capacity() - buf.len() < need.max(RECV_BYTES_MIN) {
            buf.reserve(need.max(RECV_BYTES));
        }
        let (res, back) = reactor::recv(conn.fd, buf).await;
        buf = back;
        match res {
            Ok(0) => return End::Eof,
            Ok(n) => CoreCounters::add(&conn.ctx.counters().bytes_in, n as u64),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) => {}
            Err(e) => return End::Io(e),
        }
    }
}

async fn write_loop(conn: &Rc<Conn>) -> End {
    loop {
        loop {
            if let Some(why) = conn.failed.take() {
                return End::Broken(why.to_string());
            }
            if !conn.replies.borrow().is_empty() {
                break;
            }
            conn.writer_wake.wait().await;
        }
        let mut batch = Batch::take(&mut conn.replies.borrow_mut());
        let total = batch.len;
        let mut sent = 0;
        while sent < total {
            let (res, back) = reactor::sendmsg(conn.fd, batch, sent).await;
            batch = back;
            match res {
                Ok(0) => return End::Io(io::Error::new(io::ErrorKind::WriteZero, "sendmsg sent nothing")),
                Ok(n) => {
                    sent += n;
                    CoreCounters::add(&conn.ctx.counters().bytes_out, n as u64);
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) => {}
                Err(e) => return End::Io(e),
            }
        }
        drop(batch);
        conn.reply_bytes_queued.set(conn.reply_bytes_queued.get().saturating_sub(total));
        conn.reader_wake.notify();
    }
}

/// Replies going out in one `sendmsg` (or several, after a partial send): each one's record
/// mark and parts.
struct Batch {
    marks: Vec<[u8; 4]>,
    replies: Vec<Vec<Part>>,
    len: usize,
}

impl Batch {
    fn take(queue: &mut VecDeque<Writer>) -> Batch {
        let mut b = Batch { marks: Vec::new(), replies: Vec::new(), len: 0 };
        while let Some(w) = queue.pop_front() {
            let n = w.len();
            b.marks.push(record_mark(n));
            b.replies.push(w.into_parts());
            b.len += 4 + n;
            if b.replies.len() >= BATCH_REPLIES_MAX || b.len >= BATCH_BYTES_MAX {
                break;
            }
        }
        b
    }
}

// SAFETY: the iovecs point into `marks` (a vector not changed after `take`, so its heap buffer
// stays put when the batch moves) and into the parts: `Vec<u8>` and `Bytes` keep their bytes on
// the heap, cache buffers (`ReadBuf`) are pool slots that stay put until dropped. Nothing is
// changed or dropped while the batch lives.
unsafe impl GatherBufs for Batch {
    fn len(&self) -> usize {
        self.len
    }

    fn gather(&self, skip: usize, out: &mut Vec<libc::iovec>, max: usize) {
        let mut skip = skip;
        for (mark, parts) in self.marks.iter().zip(&self.replies) {
            let pieces = std::iter::once(&mark[..]).chain(parts.iter().flat_map(|p| p.pieces()));
            for piece in pieces {
                if out.len() >= max {
                    return;
                }
                if skip >= piece.len() {
                    skip -= piece.len();
                    continue;
                }
                let rest = piece.get(skip..).unwrap_or_default();
                skip = 0;
                out.push(libc::iovec { iov_base: rest.as_ptr() as *mut libc::c_void, iov_len: rest.len() });
            }
        }
    }
}
