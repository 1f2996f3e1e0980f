use std::cell::Cell;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::channel::oneshot;
use futures::future::{select, Either};

use super::*;

fn reactor(ops_in_flight_max: usize) -> Reactor {
    Reactor::new(ReactorConfig { ops_in_flight_max, ..ReactorConfig::default() }).unwrap()
}

#[test]
fn spawned_tasks_run_and_return() {
    let r = reactor(64);
    let out = r.block_on(async {
        let hits = Rc::new(Cell::new(0));
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let hits = hits.clone();
                spawn_local(async move {
                    hits.set(hits.get() + 1);
                    i * 2
                })
            })
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await;
        }
        (sum, hits.get())
    });
    assert_eq!(out, ((0..100).map(|i| i * 2).sum(), 100));
}

#[test]
fn one_reactor_per_thread() {
    let _r = reactor(8);
    assert!(Reactor::new(ReactorConfig::default()).is_err());
}

#[test]
fn wakes_from_other_threads_reach_a_sleeping_core() {
    let r = reactor(64);
    let started = Instant::now();
    let n = r.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..400u64 {
            let (tx, rx) = oneshot::channel::<u64>();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_micros(50 * (i % 20)));
                let _ = tx.send(i);
            });
            tasks.push(spawn_local(async move { rx.await.unwrap_or(u64::MAX) }));
        }
        let mut sum = 0;
        for t in tasks {
            sum += t.await;
        }
        sum
    });
    assert_eq!(n, (0..400).sum::<u64>());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn remote_spawn_runs_on_the_core_thread() {
    let r = reactor(8);
    let remote = r.remote();
    let core_thread = std::thread::current().id();
    let seen: Arc<Mutex<Option<ThreadId>>> = Arc::default();
    let seen2 = seen.clone();
    let (tx, rx) = oneshot::channel();
    let other = std::thread::spawn(move || {
        remote
            .spawn(async move {
                *seen2.lock().unwrap() = Some(std::thread::current().id());
                let _ = tx.send(());
            })
            .detach();
    });
    r.block_on(async { rx.await.unwrap() });
    other.join().unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(core_thread));
}

#[test]
fn sleep_waits_at_least_its_time() {
    let r = reactor(8);
    let started = Instant::now();
    r.block_on(sleep(Duration::from_millis(30)));
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[test]
fn operations_beyond_the_bound_wait_for_a_slot() {
    let r = reactor(2);
    let started = Instant::now();
    r.block_on(async {
        let tasks: Vec<_> = (0..8).map(|_| spawn_local(sleep(Duration::from_millis(25)))).collect();
        for t in tasks {
            t.await;
        }
    });
    // Two at a time: four rounds of 25 ms.
    assert!(started.elapsed() >= Duration::from_millis(100), "{:?}", started.elapsed());
}

/// Records on which thread it was dropped.
struct DropProbe(Arc<Mutex<Option<ThreadId>>>);

impl Drop for DropProbe {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(std::thread::current().id());
    }
}

#[test]
fn cancelled_tasks_are_dropped_on_their_core() {
    let r = reactor(8);
    let dropped: Arc<Mutex<Option<ThreadId>>> = Arc::default();
    let probe = DropProbe(dropped.clone());
    let (tx, rx) = oneshot::channel::<()>();
    // The task waits on a channel whose sender another thread holds (its waker goes there).
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(tx);
    });
    r.block_on(async {
        let task = spawn_local(async move {
            let _probe = probe;
            let _ = rx.await;
            std::future::pending::<()>().await;
        });
        sleep(Duration::from_millis(10)).await;
        drop(task);
        sleep(Duration::from_millis(10)).await;
    });
    assert_eq!(*dropped.lock().unwrap(), Some(std::thread::current().id()));
    holder.join().unwrap();
}

#[test]
fn tasks_left_at_teardown_are_dropped_on_the_core() {
    let dropped: Arc<Mutex<Option<ThreadId>>> = Arc::default();
    {
        let r = reactor(8);
        let probe = DropProbe(dropped.clone());
        r.block_on(async {
            spawn_local(async move {
                let _probe = probe;
                // Waits on the ring forever.
                sleep(Duration::from_secs(3600)).await;
            })
            .detach();
            sleep(Duration::from_millis(5)).await;
        });
        let started = Instant::now();
        drop(r);
        assert!(started.elapsed() < Duration::from_secs(1), "teardown took {:?}", started.elapsed());
    }
    assert_eq!(*dropped.lock().unwrap(), Some(std::thread::current().id()));
}

#[test]
fn socket_ops_round_trip_and_an_abandoned_recv_is_cancelled() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    let r = reactor(16);
    r.block_on(async {
        let conn = accept(l.as_raw_fd()).await.unwrap();
        let fd = conn.as_raw_fd();
        // A recv with nothing to read, given up after 20 ms: its buffer stays with the ring.
        let recv_fut = std::pin::pin!(recv(fd, BytesMut::with_capacity(1024)));
        let timer = std::pin::pin!(sleep(Duration::from_millis(20)));
        assert!(matches!(select(recv_fut, timer).await, Either::Right(_)));

        client.write_all(b"hello").unwrap();
        let mut buf = BytesMut::with_capacity(1024);
        let mut got = 0;
        // The cancelled recv may or may not have taken the bytes first; a new one must work.
        let deadline = Instant::now() + Duration::from_millis(200);
        while got == 0 && Instant::now() < deadline {
            let recv_fut = std::pin::pin!(recv(fd, buf));
            let timer = std::pin::pin!(sleep(Duration::from_millis(50)));
            match select(recv_fut, timer).await {
                Either::Left(((res, b), _)) => {
                    got = res.unwrap();
                    buf = b;
                }
                Either::Right(_) => buf = BytesMut::with_capacity(1024),
            }
        }
        if got > 0 {
            assert_eq!(&buf[..], b"hello");
        }

        struct Two(Vec<u8>, Vec<u8>);
        // SAFETY: both vectors' heap buffers are never changed while `Two` lives.
        unsafe impl GatherBufs for Two {
            fn len(&self) -> usize {
                self.0.len() + self.1.len()
            }
            fn gather(&self, skip: usize, out: &mut Vec<libc::iovec>, max: usize) {
                let mut skip = skip;
                for v in [&self.0, &self.1] {
                    if out.len() >= max {
                        return;
                    }
                    if skip >= v.len() {
                        skip -= v.len();
                        continue;
                    }
                    let rest = &v[skip..];
                    skip = 0;
                    out.push(libc::iovec { iov_base: rest.as_ptr() as *mut libc::c_void, iov_len: rest.len() });
                }
            }
        }
        let (res, two) = sendmsg(fd, Two(b"abc".to_vec(), b"defg".to_vec()), 2).await;
        assert_eq!(res.unwrap(), 5);
        assert_eq!(two.len(), 7);
        close(conn).await.unwrap();
    });
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut client, &mut got).unwrap();
    assert_eq!(got, b"cdefg");
}
