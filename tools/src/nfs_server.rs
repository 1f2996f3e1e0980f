//! The NFS side of `bucketfs serve`: the export policies from the configuration, NFSv3, MOUNT
//! v3 and NFSv4.0/4.1/4.2 over the engine, on the thread-per-core transport; optionally a
//! portmapper (its own one-core transport, started once the other ports are known, so ports
//! chosen by the kernel work too).
//!
//! Threads: the transport's core threads (one reactor each); NFSv4 state is shared by them.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bucketfs::config::Config;
use engine::Engine;
use nfs::export::{ExportPolicy, Exports};
use nfs::mount::Mount;
use nfs::portmap::Portmap;
use nfs::service::RpcServer;
use nfs::transport::{Transport, TransportConfig};
use nfs::v3::Nfs3;
use nfs::v4::state::{State, StateConfig};
use nfs::v4::Nfs4;

/// Where to listen, after command-line overrides.
#[derive(Debug, Clone, Copy)]
pub struct NfsListen {
    pub nfs: SocketAddr,
    pub mount: Option<SocketAddr>,
    pub portmap: Option<SocketAddr>,
}

/// The running NFS server.
pub struct NfsServer {
    transport: Transport,
    portmap: Option<Transport>,
    pub nfs_addr: SocketAddr,
    pub mount_addr: Option<SocketAddr>,
    pub portmap_addr: Option<SocketAddr>,
    pub cores: usize,
}

impl NfsServer {
    pub fn start(config: &Config, engine: Arc<Engine>, listen: NfsListen) -> anyhow::Result<NfsServer> {
        let policies = config
            .exports
            .iter()
            .map(|e| ExportPolicy {
                path: e.path.clone(),
                clients: e.clients.clone(),
                read_only: e.read_only,
                root_squash: e.root_squash,
            })
            .collect();
        let exports =
            Exports::new(engine, policies).map_err(anyhow::Error::msg).context("setting up the NFS exports")?;
        let state_dir = config.cache.metadata_dir.join("nfs4");
        let state =
            State::open(StateConfig { lease: config.nfs.lease, grace: config.nfs.grace, dir: Some(state_dir.clone()) })
                .with_context(|| format!("opening the NFSv4 client records in {}", state_dir.display()))?;
        let rpc = RpcServer::new()
            .with(Arc::new(Nfs3::new(exports.clone())))
            .with(Arc::new(Nfs4::new(exports.clone(), Arc::new(state))))
            .with(Arc::new(Mount::new(exports)));
        let cores = match config.nfs.cores {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut listeners = vec![listen.nfs];
        listeners.extend(listen.mount);
        let transport = Transport::start(
            TransportConfig { listeners, cores, pin_cores: config.nfs.pin_cores, ..TransportConfig::default() },
            Arc::new(rpc),
        )
        .with_context(|| format!("starting the NFS server on {}", listen.nfs))?;
        let bound = transport.local_addrs().to_vec();
        let nfs_addr = bound.first().copied().unwrap_or(listen.nfs);
        let mount_addr = listen.mount.and(bound.get(1).copied());
        let (portmap, portmap_addr) = match listen.portmap {
            None => (None, None),
            Some(addr) => {
                let program = Portmap::for_ports(nfs_addr.port(), mount_addr.map_or(0, |a| a.port()), addr.port());
                let t = Transport::start(
                    TransportConfig { listeners: vec![addr], cores: 1, ..TransportConfig::default() },
                    Arc::new(RpcServer::new().with(Arc::new(program))),
                )
                .with_context(|| format!("starting the portmapper on {addr}"))?;
                let bound = t.local_addrs().first().copied().unwrap_or(addr);
                (Some(t), Some(bound))
            }
        };
        Ok(NfsServer { transport, portmap, nfs_addr, mount_addr, portmap_addr, cores })
    }

    /// One line for the log: where each program listens.
    pub fn describe(&self) -> String {
        let on_or_off = |a: Option<SocketAddr>| a.map_or("off".to_string(), |a| format!("on {a}"));
        format!(
            "nfs listening on {} (NFSv3, NFSv4.0/4.1/4.2), mount {}, portmap {}, {} cores",
            self.nfs_addr,
            on_or_off(self.mount_addr),
            on_or_off(self.portmap_addr),
            self.cores
        )
    }

    /// Stops accepting, closes connections, joins the core threads.
    pub fn shutdown(self) {
        if let Some(p) = self.portmap {
            p.shutdown();
        }
        self.transport.shutdown();
    }
}
