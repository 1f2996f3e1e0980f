//! What READDIR and READDIRPLUS share: the directory's entries after a cookie, with `.` and
//! `..` first, and the cookie verifier.
//!
//! Cookies: `.` is 1, `..` is 2, every other entry's cookie is its inode number (the engine's
//! readdir cookie, always >= 16): stable across calls, changes and restarts, so the verifier is
//! a constant per export and a cookie never goes bad. A client may send the verifier back or
//! zeros.

use crate::v3::errors::{engine_fail, Fail};
use crate::v3::perm::{granted, MAY_READ};
use crate::v3::types::Nfsstat3;
use crate::v3::{Ctx, Target};
use crate::xdr::pad_bytes;

pub const COOKIE_DOT: u64 = 1;
pub const COOKIE_DOTDOT: u64 = 2;
/// Most entries asked of the engine for one reply.
pub const ENTRIES_MAX: usize = 4096;

/// One entry to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// The fileid: the inode number.
    pub ino: u64,
    pub cookie: u64,
}

impl Listed {
    /// Encoded size of the entry3 fields (fileid, name, cookie), without the list link.
    pub fn dir_bytes(&self) -> usize {
        8 + 4 + self.name.len() + pad_bytes(self.name.len()) + 8
    }
}

/// The cookie verifier of an export's directories.
pub fn cookie_verf(export_id: u32) -> [u8; 8] {
    let mut v = *b"bfs\0\0\0\0\0";
    v[4..].copy_from_slice(&export_id.to_be_bytes());
    v
}

/// Checks the directory may be listed from `cookie` with `verf` by this caller.
pub fn check(ctx: &Ctx<'_>, t: &Target<'_>, cookie: u64, verf: &[u8]) -> Result<(), Fail> {
    let attr = t.ns().attr(&t.rec);
    if t.rec.kind != engine::meta::Kind::Dir {
        return Err(Fail::with_attr(Nfsstat3::Notdir, Some(t.fattr_of(&attr))));
    }
    if cookie != 0 && verf != cookie_verf(t.ns().export_id()) && verf != [0u8; 8] {
        return Err(Fail::with_attr(Nfsstat3::BadCookie, Some(t.fattr_of(&attr))));
    }
    if granted(&ctx.creds(t.export), &attr) & MAY_READ == 0 {
        return Err(Fail::with_attr(Nfsstat3::Acces, Some(t.fattr_of(&attr))));
    }
    Ok(())
}

/// Up to `entries_max` entries after `cookie`, and whether they reach the end.
pub async fn list(
    proc_: &'static str,
    t: &Target<'_>,
    cookie: u64,
    entries_max: usize,
) -> Result<(Vec<Listed>, bool), Fail> {
    let ns = t.ns();
    let engine_cookie = if cookie <= COOKIE_DOTDOT { 0 } else { cookie };
    let page = ns
        .readdir(t.rec.ino, engine_cookie, entries_max.clamp(1, ENTRIES_MAX))
        .await
        .map_err(|e| engine_fail(proc_, &e, Some(t.fattr())))?;
    let mut out = Vec::with_capacity(page.entries.len() + 2);
    if cookie == 0 {
        out.push(Listed { name: ".".into(), ino: t.rec.ino, cookie: COOKIE_DOT });
    }
    if cookie <= COOKIE_DOT {
        let parent = if t.rec.ino == ns.root_ino() { t.rec.ino } else { t.rec.parent };
        out.push(Listed { name: "..".into(), ino: parent, cookie: COOKIE_DOTDOT });
    }
    out.extend(page.entries.into_iter().map(|e| Listed { name: e.name, ino: e.ino, cookie: e.cookie }));
    Ok((out, page.eof))
}
