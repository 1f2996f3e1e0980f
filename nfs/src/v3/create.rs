//! CREATE (procedure 8): a regular file. UNCHECKED makes the file or, if it exists, applies
//! the attributes to it as SETATTR would (size 0 truncates; the caller needs the permissions
//! SETATTR needs; a name that is not a regular file is NFS3ERR_EXIST); GUARDED fails with NFS3ERR_EXIST if the name exists; EXCLUSIVE keeps the
//! client's verifier with the file, so a retransmission of the same CREATE finds its own file
//! and succeeds, and any other is NFS3ERR_EXIST (the client then sets the attributes with
//! SETATTR). Needs write and search permission on the directory ([`crate::v3::dirop`]).

use engine::meta::Kind;
use engine::{CreateMode, Created, EngineError};

use crate::v3::attrs::{put_post_op_attr, put_post_op_fh};
use crate::v3::dirop::{DirChange, NameUse};
use crate::v3::errors::{Wcc, WccFail};
use crate::v3::perm::{chmod_mode, may_set};
use crate::v3::setattr::set_attrs;
use crate::v3::types::{DirOpArgs, Nfsstat3, Sattr3, SetTime};
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer, XdrError};

/// createhow3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateHow<'a> {
    Unchecked(Sattr3),
    Guarded(Sattr3),
    /// The client's verifier (8 bytes).
    Exclusive(&'a [u8]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub where_: DirOpArgs<'a>,
    pub how: CreateHow<'a>,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        let where_ = DirOpArgs::decode(r)?;
        let at = r.position();
        let how = match r.u32("createmode3")? {
            0 => CreateHow::Unchecked(Sattr3::decode(r)?),
            1 => CreateHow::Guarded(Sattr3::decode(r)?),
            2 => CreateHow::Exclusive(r.opaque_fixed("createverf3", 8)?),
            _ => return Err(XdrError { what: "createmode3", at, why: "not a createmode3 value" }),
        };
        Ok(Args { where_, how })
    }
}

pub struct Create;

impl Procedure for Create {
    const NAME: &'static str = "CREATE";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        put_result(w, create(ctx, &args).await, Made::encode, |w, f| f.wcc.encode(w));
    }
}

/// A new (or found) entry: CREATE3resok, MKDIR3resok and SYMLINK3resok alike.
pub struct Made {
    pub created: Created,
    pub export_id: u32,
    pub dir_wcc: Wcc,
}

impl Made {
    pub fn encode(w: &mut Writer, m: Made) {
        put_post_op_fh(w, Some(&m.created.fh));
        put_post_op_attr(w, Some(&crate::v3::attrs::Fattr3::new(&m.created.attr, m.export_id)));
        m.dir_wcc.encode(w);
    }
}

/// Attributes that change nothing.
pub const NO_ATTRS: Sattr3 =
    Sattr3 { mode: None, uid: None, gid: None, size: None, atime: SetTime::DontChange, mtime: SetTime::DontChange };

async fn create(ctx: &Ctx<'_>, args: &Args<'_>) -> std::result::Result<Made, WccFail> {
    let dc = ctx.dir_to_change(Create::NAME, &args.where_, NameUse::Make)?;
    let (mode, sattr) = match args.how {
        CreateHow::Unchecked(s) => (CreateMode::Unchecked, s),
        CreateHow::Guarded(s) => (CreateMode::Guarded, s),
        CreateHow::Exclusive(verf) => {
            let mut v = [0u8; 8];
            v.copy_from_slice(verf);
            (CreateMode::Exclusive(u64::from_be_bytes(v)), NO_ATTRS)
        }
    };
    if mode == CreateMode::Unchecked {
        if dc.existing().await?.is_none() {
            // A new file, made as GUARDED would: if someone makes the name meanwhile, it is
            // opened below (and not given this caller's ownership).
            match make(ctx, &dc, CreateMode::Guarded, &sattr).await {
                Err(f) if f.stat == Nfsstat3::Exist => {}
                done => return done,
            }
        }
        return open_existing(ctx, &dc, &sattr).await;
    }
    make(ctx, &dc, mode, &sattr).await
}

/// Makes a new file owned by the caller.
async fn make(
    ctx: &Ctx<'_>,
    dc: &DirChange<'_, '_>,
    mode: CreateMode,
    sattr: &Sattr3,
) -> std::result::Result<Made, WccFail> {
    let set = dc.new_attrs(Kind::File, sattr)?;
    let engine = ctx.engine();
    let created = engine.create(&dc.dir.fh, dc.name, mode, &set).await.map_err(|e| dc.fail(&e))?;
    Ok(Made { created, export_id: dc.dir.ns().export_id(), dir_wcc: dc.wcc() })
}

/// UNCHECKED on an existing name: the file, with the attributes applied as SETATTR would.
async fn open_existing(ctx: &Ctx<'_>, dc: &DirChange<'_, '_>, sattr: &Sattr3) -> std::result::Result<Made, WccFail> {
    let Some(attr) = dc.existing().await? else {
        // Removed again meanwhile.
        return Err(dc.fail(&EngineError::NotFound { op: "create", path: dc.name.to_string() }));
    };
    if attr.kind != Kind::File {
        // As knfsd: only a regular file is opened by a create.
        return Err(dc.refuse(Nfsstat3::Exist));
    }
    if let Err(stat) = may_set(&dc.creds, &attr, sattr) {
        tracing::debug!(uid = dc.creds.uid, ino = attr.ino, ?stat, "CREATE of an existing file: attributes refused");
        return Err(dc.refuse(stat));
    }
    let mut set = set_attrs(sattr);
    set.mode = set.mode.map(|m| chmod_mode(&dc.creds, &attr, m));
    let engine = ctx.engine();
    let created = engine.create(&dc.dir.fh, dc.name, CreateMode::Unchecked, &set).await.map_err(|e| dc.fail(&e))?;
    Ok(Made { created, export_id: dc.dir.ns().export_id(), dir_wcc: dc.wcc() })
}
