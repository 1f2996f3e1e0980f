//! READDIR (RFC 8881 section 18.23).
//!
//! Cookies: 0 starts; in an export directory a cookie is the engine's (the entry's inode
//! number, stable across calls, changes and restarts, never below `INO_FIRST` = 16, so never the
//! reserved 1 and 2); in a pseudo directory it is the entry's index in name order plus 3. The
//! cookie verifier is constant (cookies never go bad), so a nonzero cookie with another
//! verifier is NFS4ERR_NOT_SAME.
//!
//! Sizes: the READDIR4resok encoding never exceeds `maxcount` (clamped to 1 MiB), nor the
//! entries' cookie and name bytes `dircount` (0: no limit; the first entry always goes in);
//! NFS4ERR_TOOSMALL when not even one entry fits.
//!
//! Attributes per entry come from the records the listing just refreshed (no HEAD per entry).
//! An entry whose record vanished meanwhile carries only `rdattr_error` when the client asked
//! for it, and fails the READDIR otherwise. Pseudo directories list their children; exports
//! this client may not reach are left out.

use engine::namespace::Namespace;

use crate::v4::attrs::{self, Bitmap, Object, IO_BYTES_MAX};
use crate::v4::node::{self, Node};
use crate::v4::pseudo::PseudoEntry;
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, pad_bytes, Reader, Writer};

/// The cookie verifier: cookies stay valid, so one value serves every directory.
pub const COOKIE_VERIFIER: [u8; 8] = [0; 8];
/// Cookies of pseudo directory entries: index + this.
pub const PSEUDO_COOKIE_BASE: u64 = 3;
/// The verifier, the end of the entry list and eof.
const RESOK_FIXED_BYTES: usize = 8 + 4 + 4;
/// Entries asked of the engine at once at most.
const ENGINE_BATCH_ENTRIES_MAX: usize = 1024;
/// An entry takes at least this much (value-follows, cookie, empty name, empty fattr4).
const ENTRY_BYTES_MIN: usize = 4 + 8 + 4 + 4 + 4;

const _: () = assert!(engine::meta::INO_FIRST > 2, "readdir cookies 1 and 2 are reserved");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub cookie: u64,
    pub cookieverf: [u8; 8],
    pub dircount: u32,
    pub maxcount: u32,
    pub attr_request: Bitmap,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    let cookie = r.u64("readdir cookie")?;
    let mut cookieverf = [0u8; 8];
    cookieverf.copy_from_slice(r.opaque_fixed("readdir cookieverf", 8)?);
    let dircount = r.u32("readdir dircount")?;
    let maxcount = r.u32("readdir maxcount")?;
    let (attr_request, _) = Bitmap::decode(r)?;
    Ok(Args { cookie, cookieverf, dircount, maxcount, attr_request })
}

/// Fills the reply with entries while they fit.
struct Page<'w> {
    w: &'w mut Writer,
    mask: Bitmap,
    cx: attrs::Context,
    maxcount_left: usize,
    /// `None`: no dircount limit.
    dircount_left: Option<usize>,
    entries: usize,
}

impl Page<'_> {
    /// Adds one entry; `false` when it does not fit (nothing is written then).
    fn push(&mut self, cookie: u64, name: &str, attrs_of: Result<Object, Status>) -> Result<bool, Status> {
        let mut e = Writer::new();
        e.put_u64(cookie);
        e.put_string(name);
        match attrs_of {
            Ok(obj) => attrs::encode(&obj, &self.mask, &self.cx, Status::OK, &mut e),
            Err(st) if self.mask.has(attrs::RDATTR_ERROR) => attrs::encode_error(&self.mask, st, &mut e),
            Err(st) => return Err(st),
        }
        let bytes = 4 + e.len();
        let dir_bytes = 8 + 4 + name.len() + pad_bytes(name.len());
        if bytes > self.maxcount_left {
            return Ok(false);
        }
        if let Some(left) = self.dircount_left {
            if dir_bytes > left && self.entries > 0 {
                return Ok(false);
            }
            self.dircount_left = Some(left.saturating_sub(dir_bytes));
        }
        self.maxcount_left -= bytes;
        self.entries += 1;
        self.w.put_bool(true);
        self.w.append(e);
        Ok(true)
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(|_| Status::BADXDR)?;
    let dir = node::current(cx)?;
    if !dir.is_dir() {
        return Err(Status::NOTDIR);
    }
    attrs::check_request(&args.attr_request)?;
    if args.cookie == 1 || args.cookie == 2 {
        return Err(Status::BAD_COOKIE);
    }
    if args.cookie != 0 && args.cookieverf != COOKIE_VERIFIER {
        return Err(Status::NOT_SAME);
    }
    let maxcount = (args.maxcount as usize).min(IO_BYTES_MAX as usize);
    if maxcount < RESOK_FIXED_BYTES {
        return Err(Status::TOOSMALL);
    }
    w.put_opaque_fixed(&COOKIE_VERIFIER);
    let mut page = Page {
        w,
        mask: args.attr_request,
        cx: node::attr_context(cx),
        maxcount_left: maxcount - RESOK_FIXED_BYTES,
        dircount_left: (args.dircount != 0).then_some(args.dircount as usize),
        entries: 0,
    };
    let eof = match &dir {
        Node::Pseudo(id) => list_pseudo(cx, *id, args.cookie, &mut page)?,
        Node::Export(n) => list_export(&n.export.ns, n.rec.ino, args.cookie, &mut page).await?,
    };
    if page.entries == 0 && !eof {
        return Err(Status::TOOSMALL);
    }
    page.w.put_bool(false);
    page.w.put_bool(eof);
    Ok(())
}

/// Entries of a pseudo directory after `cookie`; whether the end was reached.
fn list_pseudo(cx: &Compound<'_>, dir: u32, cookie: u64, page: &mut Page<'_>) -> Result<bool, Status> {
    let entries = cx.server.pseudo.entries(dir);
    for (i, (name, entry)) in entries.iter().enumerate() {
        let c = i as u64 + PSEUDO_COOKIE_BASE;
        if c <= cookie {
            continue;
        }
        let obj = match entry {
            PseudoEntry::Node(n) => Ok(Object::pseudo(*n)),
            PseudoEntry::Export(id) => match node::export_root(cx, *id) {
                Ok(Node::Export(n)) => Ok(n.object(&n.attr())),
                Ok(Node::Pseudo(_)) => continue,
                Err(Status::ACCESS) => continue,
                Err(st) => Err(st),
            },
        };
        if !page.push(c, name, obj)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Entries of an export directory after `cookie`; whether the end was reached.
async fn list_export(ns: &Namespace, dir: u64, mut cookie: u64, page: &mut Page<'_>) -> Result<bool, Status> {
    loop {
        let batch = (page.maxcount_left / ENTRY_BYTES_MIN + 1).min(ENGINE_BATCH_ENTRIES_MAX);
        let got = ns.readdir(dir, cookie, batch).await.map_err(|e| from_engine(&e))?;
        for e in &got.entries {
            let obj = ns
                .inode("nfs4 readdir", e.ino)
                .map(|rec| Object::export(ns, ns.handle(&rec), &ns.attr(&rec)))
                .map_err(|e| from_engine(&e));
            if !page.push(e.cookie, &e.name, obj)? {
                return Ok(false);
            }
            cookie = e.cookie;
        }
        if got.eof || got.entries.is_empty() {
            return Ok(true);
        }
    }
}
