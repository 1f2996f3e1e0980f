//! Async ring operations. Each future owns the buffers the kernel reads or writes until the
//! completion comes back; dropped earlier, it parks them in the ring and cancels the operation.

use std::future::Future;
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use io_uring::{opcode, squeue, types};

use super::executor::current_core;
use super::IOVECS_MAX;

/// Buffers an operation keeps alive while it is in flight.
trait OpBufs: 'static {
    /// The entry went to the kernel: from now on the kernel owns what it was given.
    fn submitted(&mut self) {}
}

impl OpBufs for () {}
impl OpBufs for BytesMut {}
impl OpBufs for Box<types::Timespec> {}
impl<B: GatherBufs> OpBufs for (B, Vec<libc::iovec>, Box<libc::msghdr>) {}

/// A descriptor to close: closed here unless the close was submitted.
struct Closing(Option<OwnedFd>);

impl OpBufs for Closing {
    fn submitted(&mut self) {
        if let Some(fd) = self.0.take() {
            // The kernel closes it now.
            let _ = fd.into_raw_fd();
        }
    }
}

enum State {
    /// Not yet queued (the entry waits for a slot).
    New(squeue::Entry),
    /// In flight as this slot.
    InFlight(usize),
    Finished,
}

/// One operation: its entry, then its slot, and its buffers throughout.
struct Op<B: OpBufs> {
    state: State,
    bufs: Option<B>,
}

// An `Op` holds no pointer into itself (buffers are on the heap), so moving it is fine.
impl<B: OpBufs> Unpin for Op<B> {}

impl<B: OpBufs> Op<B> {
    /// `entry` may point only into `bufs`' heap memory or memory that outlives the operation.
    fn new(entry: squeue::Entry, bufs: B) -> Op<B> {
        Op { state: State::New(entry), bufs: Some(bufs) }
    }
}

fn no_reactor() -> io::Error {
    io::Error::other("ring operation outside a reactor thread")
}

impl<B: OpBufs> Future for Op<B> {
    /// The operation's result (a count or a descriptor) and its buffers back.
    type Output = (io::Result<u32>, Option<B>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(core) = current_core() else {
            this.state = State::Finished;
            return Poll::Ready((Err(no_reactor()), this.bufs.take()));
        };
        let mut ring = core.ring.borrow_mut();
        match std::mem::replace(&mut this.state, State::Finished) {
            State::New(entry) => {
                match ring.submit_op(entry, cx.waker()) {
                    Ok(key) => {
                        this.state = State::InFlight(key);
                        if let Some(b) = this.bufs.as_mut() {
                            b.submitted();
                        }
                    }
                    Err(entry) => this.state = State::New(entry),
                }
                Poll::Pending
            }
            State::InFlight(key) => match ring.poll_op(key, cx.waker()) {
                Some(res) => {
                    let res = if res < 0 { Err(io::Error::from_raw_os_error(-res)) } else { Ok(res as u32) };
                    Poll::Ready((res, this.bufs.take()))
                }
                None => {
                    this.state = State::InFlight(key);
                    Poll::Pending
                }
            },
            State::Finished => Poll::Ready((Err(io::Error::other("operation polled after completion")), None)),
        }
    }
}

impl<B: OpBufs> Drop for Op<B> {
    fn drop(&mut self) {
        let State::InFlight(key) = self.state else { return };
        let Some(bufs) = self.bufs.take() else { return };
        match current_core() {
            Some(core) => {
                let back = core.ring.borrow_mut().abandon(key, Box::new(bufs));
                drop(back);
            }
            // No ring to park them in: never free memory the kernel may still use.
            None => std::mem::forget(bufs),
        }
    }
}

/// Accepts a connection on a listening socket (`SOCK_CLOEXEC`).
pub async fn accept(listener: RawFd) -> io::Result<OwnedFd> {
    let entry = opcode::Accept::new(types::Fd(listener), std::ptr::null_mut(), std::ptr::null_mut())
        .flags(libc::SOCK_CLOEXEC)
        .build();
    let fd = Op::new(entry, ()).await.0?;
    // SAFETY: accept returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Receives into `buf`'s spare capacity (which must not be empty); returns the byte count
/// (0 at end of stream) and the buffer, grown by what was received.
pub async fn recv(fd: RawFd, mut buf: BytesMut) -> (io::Result<usize>, BytesMut) {
    let spare = buf.spare_capacity_mut();
    let len = u32::try_from(spare.len()).unwrap_or(u32::MAX);
    if len == 0 {
        return (Err(io::Error::new(io::ErrorKind::InvalidInput, "recv into a full buffer")), buf);
    }
    let entry = opcode::Recv::new(types::Fd(fd), spare.as_mut_ptr().cast(), len).build();
    match Op::new(entry, buf).await {
        (res, Some(mut buf)) => {
            if let Ok(n) = res {
                let n = (n as usize).min(len as usize);
                // SAFETY: the kernel wrote `n` (≤ `len`) bytes at the start of the spare capacity.
                unsafe { buf.set_len(buf.len() + n) };
            }
            (res.map(|n| n as usize), buf)
        }
        (res, None) => (res.map(|n| n as usize), BytesMut::new()),
    }
}

/// Buffers a gathering send reads from.
///
/// # Safety
/// The memory the iovecs point to must stay valid and unchanged while `self` lives, wherever
/// `self` is moved (heap memory owned by `self`, or memory that outlives it).
pub unsafe trait GatherBufs: 'static {
    /// Total bytes.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends iovecs for the bytes from offset `skip` on, at most `max` of them.
    fn gather(&self, skip: usize, out: &mut Vec<libc::iovec>, max: usize);
}

/// Sends `bufs` from offset `skip` on with one `sendmsg` (`MSG_NOSIGNAL | MSG_WAITALL`),
/// straight from the buffers (at most [`IOVECS_MAX`] pieces). Returns the bytes sent (fewer
/// when the pieces were cut at [`IOVECS_MAX`] or the send was interrupted: call again with
/// `skip` advanced) and the buffers.
pub async fn sendmsg<B: GatherBufs>(fd: RawFd, bufs: B, skip: usize) -> (io::Result<usize>, B) {
    let mut iov = Vec::with_capacity(16);
    bufs.gather(skip, &mut iov, IOVECS_MAX);
    if iov.is_empty() {
        return (Ok(0), bufs);
    }
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    // MSG_WAITALL: on a stream socket the kernel keeps sending what is left after a partial
    // send (as the socket drains) instead of completing early, saving a round trip per
    // socket-buffer-full of a large reply.
    let flags = (libc::MSG_NOSIGNAL | libc::MSG_WAITALL) as u32;
    let entry = opcode::SendMsg::new(types::Fd(fd), &*msg).flags(flags).build();
    match Op::new(entry, (bufs, iov, msg)).await {
        (res, Some((bufs, _, _))) => (res.map(|n| n as usize), bufs),
        // The op always gives its buffers back once it has run.
        (_, None) => unreachable_bufs(),
    }
}

#[cold]
fn unreachable_bufs() -> ! {
    // `Op` returns `None` only when polled after completion, which `.await` never does.
    panic!("ring operation lost its buffers")
}

/// Closes a descriptor through the ring.
pub async fn close(fd: OwnedFd) -> io::Result<()> {
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let entry = opcode::Close::new(types::Fd(raw)).build();
    Op::new(entry, Closing(Some(fd))).await.0.map(|_| ())
}

/// Waits `duration` (an io_uring timeout).
pub async fn sleep(duration: Duration) {
    let ts = Box::new(types::Timespec::from(duration));
    let entry = opcode::Timeout::new(&*ts).build();
    // The result is -ETIME when the time is up; a cancellation ends the wait early too.
    let _ = Op::new(entry, ts).await;
}
