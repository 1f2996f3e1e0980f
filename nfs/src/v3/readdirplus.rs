//! READDIRPLUS (procedure 17): READDIR with each entry's attributes and handle. The reply never
//! exceeds `maxcount` (whole reply, status included); the entries' names, fileids and cookies
//! stay within `dircount` except that the first entry is always sent when it fits `maxcount`
//! (clients send small dircounts; a reply without entries would stall them).

use engine::FileHandle;

use crate::v3::attrs::{put_post_op_attr, put_post_op_fh, Fattr3, POST_OP_ATTR_BYTES, POST_OP_FH_BYTES};
use crate::v3::dirlist::{self, Listed};
use crate::v3::errors::Fail;
use crate::v3::readdir::FIXED_BYTES;
use crate::v3::types::{decode_fh, Nfsstat3};
use crate::v3::{put_result, Ctx, Procedure, Target};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub dir: &'a [u8],
    pub cookie: u64,
    pub cookieverf: &'a [u8],
    pub dircount: u32,
    pub maxcount: u32,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args {
            dir: decode_fh(r)?,
            cookie: r.u64("cookie")?,
            cookieverf: r.opaque_fixed("cookieverf", 8)?,
            dircount: r.u32("dircount")?,
            maxcount: r.u32("maxcount")?,
        })
    }
}

pub struct Readdirplus;

struct Plus {
    entry: Listed,
    attr: Option<Fattr3>,
    fh: Option<FileHandle>,
}

impl Plus {
    fn bytes(&self) -> usize {
        4 + self.entry.dir_bytes()
            + if self.attr.is_some() { POST_OP_ATTR_BYTES } else { 4 }
            + if self.fh.is_some() { POST_OP_FH_BYTES } else { 4 }
    }
}

struct Page {
    dir: Fattr3,
    verf: [u8; 8],
    entries: Vec<Plus>,
    eof: bool,
}

impl Procedure for Readdirplus {
    const NAME: &'static str = "READDIRPLUS";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        put_result(
            w,
            readdirplus(ctx, &args).await,
            |w, p| {
                put_post_op_attr(w, Some(&p.dir));
                w.put_opaque_fixed(&p.verf);
                for e in &p.entries {
                    w.put_bool(true);
                    w.put_u64(e.entry.ino);
                    w.put_string(&e.entry.name);
                    w.put_u64(e.entry.cookie);
                    put_post_op_attr(w, e.attr.as_ref());
                    put_post_op_fh(w, e.fh.as_ref());
                }
                w.put_bool(false);
                w.put_bool(p.eof);
            },
            |w, f| put_post_op_attr(w, f.attr.as_ref()),
        );
    }
}

/// An entry with its attributes and handle (none if it vanished meanwhile).
fn plus(t: &Target<'_>, entry: Listed) -> Plus {
    match t.ns().inode(Readdirplus::NAME, entry.ino) {
        Ok(rec) => Plus { attr: Some(t.fattr_of(&t.ns().attr(&rec))), fh: Some(t.ns().handle(&rec)), entry },
        Err(_) => Plus { entry, attr: None, fh: None },
    }
}

async fn readdirplus(ctx: &Ctx<'_>, args: &Args<'_>) -> std::result::Result<Page, Fail> {
    let name = Readdirplus::NAME;
    let t = ctx.target(name, args.dir)?;
    dirlist::check(ctx, &t, args.cookie, args.cookieverf)?;
    let budget = (args.maxcount as usize).saturating_sub(FIXED_BYTES);
    let dir_budget = args.dircount as usize;
    let smallest = 4 + 24 + POST_OP_ATTR_BYTES + POST_OP_FH_BYTES;
    let wanted = (budget / smallest).min(dir_budget / 24) + 1;
    let (listed, page_eof) = dirlist::list(name, &t, args.cookie, wanted).await?;
    let dir = t.ns().inode(name, t.rec.ino).map(|rec| t.fattr_of(&t.ns().attr(&rec))).unwrap_or_else(|_| t.fattr());
    let total = listed.len();
    let (mut used, mut dir_used) = (0, 0);
    let mut entries = Vec::with_capacity(total);
    for e in listed {
        let p = plus(&t, e);
        let size = p.bytes();
        let dir_size = p.entry.dir_bytes();
        if used + size > budget || (!entries.is_empty() && dir_used + dir_size > dir_budget) {
            break;
        }
        used += size;
        dir_used += dir_size;
        entries.push(p);
    }
    if entries.is_empty() && total > 0 {
        return Err(Fail::with_attr(Nfsstat3::Toosmall, Some(dir)));
    }
    let eof = page_eof && entries.len() == total;
    Ok(Page { dir, verf: dirlist::cookie_verf(t.ns().export_id()), entries, eof })
}
