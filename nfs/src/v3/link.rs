//! LINK (procedure 15): NFS3ERR_NOTSUPP (NFS3ERR_ROFS on a read-only export): each file is
//! one object in the bucket, and two keys cannot share one object's content, so there are no
//! hard links (FSINFO does not advertise FSF3_LINK, PATHCONF says linkmax 1).

use crate::v3::attrs::{put_post_op_attr, Fattr3};
use crate::v3::errors::{Fail, Wcc};
use crate::v3::types::{decode_fh, DirOpArgs, Nfsstat3};
use crate::v3::{Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub file: &'a [u8],
    pub link: DirOpArgs<'a>,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { file: decode_fh(r)?, link: DirOpArgs::decode(r)? })
    }
}

pub struct Link;

impl Procedure for Link {
    const NAME: &'static str = "LINK";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        let (stat, file, dir) = link(ctx, &args);
        w.put_u32(stat.code());
        put_post_op_attr(w, file.as_ref()); // file_attributes
        Wcc::unchanged(dir).encode(w); // linkdir_wcc
    }
}

/// The status, and the attributes of the file and of the directory as found.
fn link(ctx: &Ctx<'_>, args: &Args<'_>) -> (Nfsstat3, Option<Fattr3>, Option<Fattr3>) {
    let name = Link::NAME;
    let file = ctx.target_to_change(name, args.file);
    let dir = ctx.target_to_change(name, args.link.dir);
    let attr_of = |r: &std::result::Result<crate::v3::Target<'_>, Fail>| match r {
        Ok(t) => Some(t.fattr()),
        Err(f) => f.attr.clone(),
    };
    let (file_attr, dir_attr) = (attr_of(&file), attr_of(&dir));
    let stat = match (&file, &dir) {
        (Err(f), _) | (_, Err(f)) => f.stat,
        (Ok(t), Ok(_)) => match ctx.engine().link(&t.fh) {
            Err(e) => {
                tracing::debug!(error = %e, "LINK refused: hard links are not supported (one object per file)");
                crate::v3::errors::status_of(&e)
            }
            Ok(()) => {
                // The engine has no hard links; should it ever say yes, nothing was made here.
                tracing::warn!("LINK: the engine accepted a hard link the NFS server cannot make");
                Nfsstat3::Notsupp
            }
        },
    };
    (stat, file_attr, dir_attr)
}
