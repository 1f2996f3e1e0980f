//! Export policy: which engine export appears where in the NFS namespace, who may reach it,
//! whether it is writable, and how root is squashed. Shared by NFSv3/MOUNT and NFSv4.
//!
//! Pure values, read from any core.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use engine::{Engine, Namespace};

use crate::cidr::Cidr;
use crate::rpc::Auth;

/// uid/gid a squashed root (or AUTH_NONE) becomes.
pub const NOBODY: u32 = 65534;

/// One export's NFS policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPolicy {
    /// Path in the NFS namespace (`/data`); also the engine export's name. An export at `/` is
    /// the only one, and is itself the NFSv4 root (no pseudo-filesystem).
    pub path: String,
    /// Client address ranges allowed to reach the export.
    pub clients: Vec<Cidr>,
    pub read_only: bool,
    /// Map uid 0 to [`NOBODY`].
    pub root_squash: bool,
}

impl ExportPolicy {
    /// Everyone on loopback, read-write, root squashed.
    pub fn loopback(path: &str) -> ExportPolicy {
        let clients = ["127.0.0.0/8", "::1/128"].iter().filter_map(|c| c.parse().ok()).collect();
        ExportPolicy { path: path.to_string(), clients, read_only: false, root_squash: true }
    }
}

/// What a client may do on an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Not in the export's client list: NFS3ERR_ACCES / NFS4ERR_ACCESS (MOUNT: MNT3ERR_ACCES).
    Denied,
    ReadOnly,
    ReadWrite,
}

impl Access {
    pub fn may_read(self) -> bool {
        self != Access::Denied
    }

    pub fn may_write(self) -> bool {
        self == Access::ReadWrite
    }
}

/// An export as the NFS servers see it.
#[derive(Clone)]
pub struct NfsExport {
    pub policy: ExportPolicy,
    pub ns: Arc<Namespace>,
}

impl NfsExport {
    /// What `peer` may do here.
    pub fn access(&self, peer: IpAddr) -> Access {
        if !self.policy.clients.iter().any(|c| c.contains(peer)) {
            Access::Denied
        } else if self.policy.read_only || self.ns.spec().read_only {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        }
    }

    /// The caller's (uid, gid) after root squash.
    pub fn creds(&self, auth: &Auth) -> (u32, u32) {
        match auth.ids() {
            (0, _) if self.policy.root_squash => (NOBODY, NOBODY),
            ids => ids,
        }
    }
}

/// Every export, with the engine that serves them.
#[derive(Clone)]
pub struct Exports {
    engine: Arc<Engine>,
    /// By engine export id (the id inside every file handle).
    by_id: BTreeMap<u32, NfsExport>,
}

impl Exports {
    /// Pairs each policy with the engine export of the same path.
    pub fn new(engine: Arc<Engine>, policies: Vec<ExportPolicy>) -> Result<Exports, String> {
        let mut by_id = BTreeMap::new();
        let count = policies.len();
        for policy in policies {
            let root = policy.path == "/";
            if !policy.path.starts_with('/') || (!root && policy.path.ends_with('/')) {
                return Err(format!("export path {:?} must be absolute, without a trailing '/'", policy.path));
            }
            if root && count > 1 {
                return Err("an export at \"/\" must be the only export".to_string());
            }
            let ns = engine
                .export(&policy.path)
                .ok_or_else(|| format!("export {:?} has no engine export of that name", policy.path))?
                .clone();
            by_id.insert(ns.export_id(), NfsExport { policy, ns });
        }
        Ok(Exports { engine, by_id })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The export a file handle's export id names.
    pub fn by_id(&self, export_id: u32) -> Option<&NfsExport> {
        self.by_id.get(&export_id)
    }

    /// The export at exactly this path.
    pub fn by_path(&self, path: &str) -> Option<&NfsExport> {
        let trimmed = path.trim_end_matches('/');
        let path = if trimmed.is_empty() { "/" } else { trimmed };
        self.by_id.values().find(|e| e.policy.path == path)
    }

    pub fn iter(&self) -> impl Iterator<Item = &NfsExport> {
        self.by_id.values()
    }
}
