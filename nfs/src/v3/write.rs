//! WRITE (procedure 7): bytes into a file through the engine's write path. UNSTABLE data may
//! stay in memory until COMMIT; DATA_SYNC and FILE_SYNC are durable on return and answered
//! FILE_SYNC (the engine keeps data and size together). The reply carries the file's write
//! verifier ([`crate::v3::verifier`]) and its wcc_data. Needs write permission (or ownership) on the file; `count`
//! beyond the data sent is NFS3ERR_INVAL, a shorter `count` writes that many bytes.

use engine::meta::Kind;
use engine::Stability;

use crate::v3::attrs::Fattr3;
use crate::v3::errors::{engine_fail, Wcc, WccFail};
use crate::v3::fsinfo::FILE_BYTES_MAX;
use crate::v3::perm::may_write_data;
use crate::v3::types::{decode_fh, Nfsstat3, WRITE_BYTES_MAX};
use crate::v3::{put_result, Ctx, Procedure, Target};
use crate::xdr::{Reader, Result, Writer, XdrError};

/// stable_how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StableHow {
    Unstable = 0,
    DataSync = 1,
    FileSync = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub file: &'a [u8],
    pub offset: u64,
    pub count: u32,
    pub stable: StableHow,
    pub data: &'a [u8],
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        let file = decode_fh(r)?;
        let offset = r.u64("offset")?;
        let count = r.u32("count")?;
        let at = r.position();
        let stable = match r.u32("stable_how")? {
            0 => StableHow::Unstable,
            1 => StableHow::DataSync,
            2 => StableHow::FileSync,
            _ => return Err(XdrError { what: "stable_how", at, why: "not a stable_how value" }),
        };
        let data = r.opaque("data", WRITE_BYTES_MAX)?;
        Ok(Args { file, offset, count, stable, data })
    }
}

pub struct Write;

impl Procedure for Write {
    const NAME: &'static str = "WRITE";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        put_result(
            w,
            write(ctx, &args).await,
            |w, done| {
                done.wcc.encode(w);
                w.put_u32(done.count);
                w.put_u32(done.committed as u32);
                w.put_opaque_fixed(&done.verifier.to_be_bytes());
            },
            |w, f| f.wcc.encode(w),
        );
    }
}

impl StableHow {
    fn of(s: Stability) -> StableHow {
        match s {
            Stability::Unstable => StableHow::Unstable,
            Stability::DataSync => StableHow::DataSync,
            Stability::FileSync => StableHow::FileSync,
        }
    }

    fn stability(self) -> Stability {
        match self {
            StableHow::Unstable => Stability::Unstable,
            StableHow::DataSync => Stability::DataSync,
            StableHow::FileSync => Stability::FileSync,
        }
    }
}

struct Written {
    wcc: Wcc,
    count: u32,
    committed: StableHow,
    verifier: u64,
}

/// The regular file `fh` names, if the caller may write its data (WRITE, COMMIT): the target
/// and its attributes before the change.
pub(crate) fn file_to_write<'a>(
    ctx: &Ctx<'a>,
    name: &'static str,
    fh: &[u8],
) -> std::result::Result<(Target<'a>, Fattr3), WccFail> {
    let t = ctx.target_to_change(name, fh)?;
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
    Ok((t, before))
}

async fn write(ctx: &Ctx<'_>, args: &Args<'_>) -> std::result::Result<Written, WccFail> {
    let name = Write::NAME;
    let (t, before) = file_to_write(ctx, name, args.file)?;
    let refuse = |stat| WccFail::new(stat, None, Some(before.clone()));
    let Some(data) = args.data.get(..args.count as usize) else {
        tracing::debug!(count = args.count, sent = args.data.len(), "WRITE count beyond the data sent");
        return Err(refuse(Nfsstat3::Inval));
    };
    if args.offset.saturating_add(data.len() as u64) > FILE_BYTES_MAX {
        return Err(refuse(Nfsstat3::Fbig));
    }
    let engine = ctx.engine();
    let done = engine.write(&t.fh, args.offset, data, args.stable.stability()).await.map_err(|e| {
        let f = engine_fail(name, &e, t.fattr_now(name));
        WccFail::new(f.stat, Some(&before), f.attr)
    })?;
    Ok(Written {
        wcc: Wcc { before: Some(before), after: t.fattr_now(name) },
        count: u32::try_from(done.count).unwrap_or(args.count),
        committed: StableHow::of(done.stability),
        verifier: t.verifier(ctx.nfs),
    })
}
