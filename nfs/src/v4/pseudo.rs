//! The NFSv4 pseudo-filesystem: a read-only tree of directories above the exports, so `/` lists
//! them and `/a/b` reaches an export at `/a/b` (RFC 8881 section 7). Built once from the export
//! list; node 0 is the root.

use std::collections::BTreeMap;

use crate::export::Exports;

/// A directory of the pseudo-filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PseudoNode {
    pub id: u32,
    pub parent: u32,
    /// Path from the root (`/`, `/a`, `/a/b`).
    pub path: String,
    /// Child name → pseudo node id (for directories above other exports).
    pub children: BTreeMap<String, u32>,
    /// Child name → engine export id (an export's root is entered from here).
    pub exports: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PseudoFs {
    nodes: Vec<PseudoNode>,
    /// An export at `/`: it is the root itself (PUTROOTFH gives its root directory).
    root_export: Option<u32>,
}

/// What a name in a pseudo directory leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PseudoEntry {
    Node(u32),
    Export(u32),
}

impl PseudoFs {
    pub fn new(exports: &Exports) -> PseudoFs {
        let root =
            PseudoNode { id: 0, parent: 0, path: "/".into(), children: BTreeMap::new(), exports: BTreeMap::new() };
        let mut fs = PseudoFs { nodes: vec![root], root_export: None };
        for e in exports.iter() {
            if e.policy.path == "/" {
                fs.root_export = Some(e.ns.export_id());
                continue;
            }
            let parts: Vec<&str> = e.policy.path.split('/').filter(|p| !p.is_empty()).collect();
            let Some((last, dirs)) = parts.split_last() else { continue };
            let mut at = 0u32;
            for d in dirs {
                at = fs.child_dir(at, d);
            }
            if let Some(n) = fs.nodes.get_mut(at as usize) {
                n.exports.insert((*last).to_string(), e.ns.export_id());
            }
        }
        fs
    }

    fn child_dir(&mut self, parent: u32, name: &str) -> u32 {
        if let Some(id) = self.nodes.get(parent as usize).and_then(|n| n.children.get(name)) {
            return *id;
        }
        let id = self.nodes.len() as u32;
        let path = match self.nodes.get(parent as usize) {
            Some(p) if p.path == "/" => format!("/{name}"),
            Some(p) => format!("{}/{name}", p.path),
            None => format!("/{name}"),
        };
        self.nodes.push(PseudoNode { id, parent, path, children: BTreeMap::new(), exports: BTreeMap::new() });
        if let Some(p) = self.nodes.get_mut(parent as usize) {
            p.children.insert(name.to_string(), id);
        }
        id
    }

    /// The export at `/`, if there is one: then PUTROOTFH is that export's root directory.
    pub fn root_export(&self) -> Option<u32> {
        self.root_export
    }

    pub fn node(&self, id: u32) -> Option<&PseudoNode> {
        self.nodes.get(id as usize)
    }

    pub fn lookup(&self, dir: u32, name: &str) -> Option<PseudoEntry> {
        let n = self.node(dir)?;
        if let Some(e) = n.exports.get(name) {
            return Some(PseudoEntry::Export(*e));
        }
        n.children.get(name).map(|c| PseudoEntry::Node(*c))
    }

    /// The pseudo directory an export's root sits in.
    pub fn parent_of_export(&self, export_id: u32) -> Option<u32> {
        self.nodes.iter().find(|n| n.exports.values().any(|e| *e == export_id)).map(|n| n.id)
    }

    /// Entries of a pseudo directory in a stable order: (name, entry).
    pub fn entries(&self, dir: u32) -> Vec<(String, PseudoEntry)> {
        let Some(n) = self.node(dir) else { return Vec::new() };
        let mut out: Vec<(String, PseudoEntry)> =
            n.children.iter().map(|(k, v)| (k.clone(), PseudoEntry::Node(*v))).collect();
        out.extend(n.exports.iter().map(|(k, v)| (k.clone(), PseudoEntry::Export(*v))));
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}
