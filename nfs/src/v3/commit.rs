//! COMMIT (procedure 21): makes everything written to the file durable (the engine commits the
//! whole file: `offset` and `count` only narrow what the client needs) and returns the file's
//! write verifier ([`crate::v3::verifier`]); a verifier other than the one its WRITEs got tells the client to send its
//! unstable data again. Needs write permission (or ownership), as WRITE.

use engine::meta::Kind;

use crate::v3::errors::{engine_fail, Wcc, WccFail};
use crate::v3::perm::may_write_data;
use crate::v3::types::{decode_fh, Nfsstat3};
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub file: &'a [u8],
    pub offset: u64,
    pub count: u32,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { file: decode_fh(r)?, offset: r.u64("offset")?, count: r.u32("count")? })
    }
}

pub struct Commit;

impl Procedure for Commit {
    const NAME: &'static str = "COMMIT";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        put_result(
            w,
            commit(ctx, &args).await,
            |w, (wcc, verifier): (Wcc, u64)| {
                wcc.encode(w);
                w.put_opaque_fixed(&verifier.to_be_bytes());
            },
            |w, f| f.wcc.encode(w),
        );
    }
}

async fn commit(ctx: &Ctx<'_>, args: &Args<'_>) -> std::result::Result<(Wcc, u64), WccFail> {
    let name = Commit::NAME;
    let t = ctx.target_to_change(name, args.file)?;
    let attr = t.attr();
    let before = t.fattr_of(&attr);
    let refuse = |stat| WccFail::new(stat, None, Some(before.clone()));
    match attr.kind {
        Kind::File => {}
        Kind::Dir => return Err(refuse(Nfsstat3::Isdir)),
        Kind::Symlink => return Err(refuse(Nfsstat3::Inval)),
    }
    if !may_write_data(&ctx.creds(t.export), &attr) {
        return Err(refuse(Nfsstat3::Acces));
    }
    let engine = ctx.engine();
    engine.commit(&t.fh).await.map_err(|e| {
        let f = engine_fail(name, &e, t.fattr_now(name));
        WccFail::new(f.stat, Some(&before), f.attr)
    })?;
    Ok((Wcc { before: Some(before), after: t.fattr_now(name) }, t.verifier(ctx.nfs)))
}
