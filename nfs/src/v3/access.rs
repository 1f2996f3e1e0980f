//! ACCESS (procedure 4): which of the asked rights the caller has, from the mode bits for the
//! caller after root squash, as the procedures themselves check them: read and execute (lookup
//! on a directory); on a read-write export, modify and extend with write permission on a file,
//! and modify, extend and delete with write and search permission on a directory. A read-only
//! export grants none of the changing rights. (fio's nfs engine opens files read-write: run it
//! as a caller who may write, e.g. root on an export without root squash.)

use engine::meta::Kind;

use crate::v3::attrs::{put_post_op_attr, Fattr3};
use crate::v3::errors::Fail;
use crate::v3::perm::{granted, may_change_entries, MAY_EXECUTE, MAY_READ, MAY_WRITE};
use crate::v3::types::{
    decode_fh, ACCESS3_DELETE, ACCESS3_EXECUTE, ACCESS3_EXTEND, ACCESS3_LOOKUP, ACCESS3_MODIFY, ACCESS3_READ,
};
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub object: &'a [u8],
    pub access: u32,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { object: decode_fh(r)?, access: r.u32("access")? })
    }
}

/// The procedure (named so as not to clash with the export's `Access`).
pub struct AccessProc;

impl Procedure for AccessProc {
    const NAME: &'static str = "ACCESS";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        put_result(
            w,
            access(ctx, &args),
            |w, (attr, bits)| {
                put_post_op_attr(w, Some(&attr));
                w.put_u32(bits);
            },
            |w, f| put_post_op_attr(w, f.attr.as_ref()),
        );
    }
}

fn access(ctx: &Ctx<'_>, args: &Args<'_>) -> std::result::Result<(Fattr3, u32), Fail> {
    let t = ctx.target(AccessProc::NAME, args.object)?;
    let attr = t.ns().attr(&t.rec);
    let creds = ctx.creds(t.export);
    let may = granted(&creds, &attr);
    let mut bits = 0;
    if may & MAY_READ != 0 {
        bits |= ACCESS3_READ;
    }
    if may & MAY_EXECUTE != 0 {
        bits |= if attr.kind == Kind::Dir { ACCESS3_LOOKUP } else { ACCESS3_EXECUTE };
    }
    if t.access.may_write() {
        match attr.kind {
            Kind::Dir if may_change_entries(&creds, &attr) => bits |= ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE,
            Kind::File if may & MAY_WRITE != 0 => bits |= ACCESS3_MODIFY | ACCESS3_EXTEND,
            _ => {}
        }
    }
    Ok((t.fattr_of(&attr), bits & args.access))
}
