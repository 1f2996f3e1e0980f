//! Listening sockets (one per core and address, `SO_REUSEPORT`) and core pinning.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;

use rustix::net::{self, sockopt, AddressFamily, SocketFlags, SocketType};
use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

/// Pending connections the kernel queues per socket.
const BACKLOG: i32 = 1024;

/// One core's listening sockets, each with its bound address.
pub(crate) type CoreSockets = Vec<(OwnedFd, SocketAddr)>;

/// Binds every address once per core: the first socket of an address binds it as given (port 0
/// picks a port), the others bind the address it got. Returns the bound addresses and each
/// core's sockets.
pub(crate) fn bind_all(addrs: &[SocketAddr], cores: usize) -> io::Result<(Vec<SocketAddr>, Vec<CoreSockets>)> {
    let mut bound = Vec::with_capacity(addrs.len());
    let mut per_core: Vec<CoreSockets> = (0..cores).map(|_| Vec::new()).collect();
    for addr in addrs {
        let first = listener(addr).map_err(|e| io::Error::new(e.kind(), format!("listening on {addr}: {e}")))?;
        let first = TcpListener::from(first);
        let actual = first.local_addr()?;
        bound.push(actual);
        for (core, sockets) in per_core.iter_mut().enumerate() {
            let fd = if core == 0 {
                OwnedFd::from(first.try_clone()?)
            } else {
                listener(&actual).map_err(|e| {
                    io::Error::new(e.kind(), format!("listening on {actual} (core {core}, SO_REUSEPORT): {e}"))
                })?
            };
            sockets.push((fd, actual));
        }
    }
    Ok((bound, per_core))
}

fn listener(addr: &SocketAddr) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd = net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_reuseport(&fd, true)?;
    net::bind(&fd, addr)?;
    net::listen(&fd, BACKLOG)?;
    Ok(fd)
}

/// The CPUs this process may run on, in order.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "reading the CPU affinity failed; core threads run unpinned");
            Vec::new()
        }
    }
}

/// Pins the calling thread to `cpu`.
pub(crate) fn pin_to(cpu: usize) -> io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).map_err(io::Error::from)
}
