//! READDIR (procedure 16): names and fileids of a directory, a page at a time. The reply never
//! exceeds the client's `count` (counted over the whole reply, status included): entries that
//! do not fit come in the next call.

use crate::v3::attrs::{put_post_op_attr, Fattr3, POST_OP_ATTR_BYTES};
use crate::v3::dirlist::{self, Listed};
use crate::v3::errors::Fail;
use crate::v3::types::{decode_fh, Nfsstat3};
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

/// Reply bytes besides the entries: status, dir attributes, verifier, list end, eof.
pub const FIXED_BYTES: usize = 4 + POST_OP_ATTR_BYTES + 8 + 4 + 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub dir: &'a [u8],
    pub cookie: u64,
    pub cookieverf: &'a [u8],
    pub count: u32,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args {
            dir: decode_fh(r)?,
            cookie: r.u64("cookie")?,
            cookieverf: r.opaque_fixed("cookieverf", 8)?,
            count: r.u32("count")?,
        })
    }
}

pub struct Readdir;

struct Page {
    dir: Fattr3,
    verf: [u8; 8],
    entries: Vec<Listed>,
    eof: bool,
}

impl Procedure for Readdir {
    const NAME: &'static str = "READDIR";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        put_result(
            w,
            readdir(ctx, &args).await,
            |w, p| {
                put_post_op_attr(w, Some(&p.dir));
                w.put_opaque_fixed(&p.verf);
                for e in &p.entries {
                    w.put_bool(true);
                    w.put_u64(e.ino);
                    w.put_string(&e.name);
                    w.put_u64(e.cookie);
                }
                w.put_bool(false);
                w.put_bool(p.eof);
            },
            |w, f| put_post_op_attr(w, f.attr.as_ref()),
        );
    }
}

async fn readdir(ctx: &Ctx<'_>, args: &Args<'_>) -> std::result::Result<Page, Fail> {
    let name = Readdir::NAME;
    let t = ctx.target(name, args.dir)?;
    dirlist::check(ctx, &t, args.cookie, args.cookieverf)?;
    let budget = (args.count as usize).saturating_sub(FIXED_BYTES);
    // The smallest entry: link, fileid, a one-byte name, cookie.
    let (listed, page_eof) = dirlist::list(name, &t, args.cookie, budget / 28 + 1).await?;
    let dir = t.ns().inode(name, t.rec.ino).map(|rec| t.fattr_of(&t.ns().attr(&rec))).unwrap_or_else(|_| t.fattr());
    let total = listed.len();
    let mut used = 0;
    let mut entries = Vec::with_capacity(total);
    for e in listed {
        let size = 4 + e.dir_bytes();
        if used + size > budget {
            break;
        }
        used += size;
        entries.push(e);
    }
    if entries.is_empty() && total > 0 {
        return Err(Fail::with_attr(Nfsstat3::Toosmall, Some(dir)));
    }
    let eof = page_eof && entries.len() == total;
    Ok(Page { dir, verf: dirlist::cookie_verf(t.ns().export_id()), entries, eof })
}
