//! COMMIT (procedure 21): makes everything written to the file durable (the engine commits the
//! whole file: `offset` and `count` only narrow what the client needs) and returns the file's
//! write verifier ([`crate::v3::verifier`]); a verifier other than the one its WRITEs got tells the client to send its
//! unstable data again. Needs write permission (or ownership), as WRITE.

use crate::v3::errors::{engine_fail, Wcc, WccFail};
use crate::v3::types::decode_fh;
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
    let (t, before) = crate::v3::write::file_to_write(ctx, name, args.file)?;
    let engine = ctx.engine();
    engine.commit(&t.fh).await.map_err(|e| {
        let f = engine_fail(name, &e, t.fattr_now(name));
        WccFail::new(f.stat, Some(&before), f.attr)
    })?;
    Ok((Wcc { before: Some(before), after: t.fattr_now(name) }, t.verifier(ctx.nfs)))
}
