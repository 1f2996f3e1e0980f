//! MKNOD (procedure 11): device files, FIFOs and sockets are NFS3ERR_NOTSUPP (an object
//! store has nothing to keep them as); a regular file, directory or link type is
//! NFS3ERR_BADTYPE, as RFC 1813 says (CREATE, MKDIR and SYMLINK make those). The directory is
//! checked first like any directory change (NFS3ERR_ROFS on a read-only export).

use crate::v3::dirop::NameUse;
use crate::v3::errors::WccFail;
use crate::v3::types::{DirOpArgs, Nfsstat3, Sattr3, NF3BLK, NF3CHR, NF3DIR, NF3FIFO, NF3LNK, NF3REG, NF3SOCK};
use crate::v3::{put_result, Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer, XdrError};

/// mknoddata3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MknodData {
    Chr {
        attributes: Sattr3,
        major: u32,
        minor: u32,
    },
    Blk {
        attributes: Sattr3,
        major: u32,
        minor: u32,
    },
    Sock(Sattr3),
    Fifo(Sattr3),
    /// A regular file, directory or link: no data (the server answers NFS3ERR_BADTYPE).
    Other(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub where_: DirOpArgs<'a>,
    pub what: MknodData,
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        let where_ = DirOpArgs::decode(r)?;
        let at = r.position();
        let what = match r.u32("ftype3")? {
            NF3CHR => MknodData::Chr {
                attributes: Sattr3::decode(r)?,
                major: r.u32("specdata1")?,
                minor: r.u32("specdata2")?,
            },
            NF3BLK => MknodData::Blk {
                attributes: Sattr3::decode(r)?,
                major: r.u32("specdata1")?,
                minor: r.u32("specdata2")?,
            },
            NF3SOCK => MknodData::Sock(Sattr3::decode(r)?),
            NF3FIFO => MknodData::Fifo(Sattr3::decode(r)?),
            t @ (NF3REG | NF3DIR | NF3LNK) => MknodData::Other(t),
            _ => return Err(XdrError { what: "ftype3", at, why: "not an ftype3 value" }),
        };
        Ok(Args { where_, what })
    }
}

pub struct Mknod;

impl Procedure for Mknod {
    const NAME: &'static str = "MKNOD";
    type Args<'a> = Args<'a>;

    fn decode<'a>(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Args::decode(r)
    }

    async fn run<'a>(ctx: &Ctx<'_>, args: Self::Args<'a>, w: &mut Writer) {
        put_result(w, mknod(ctx, &args), |_, ()| {}, |w, f| f.wcc.encode(w));
    }
}

fn mknod(ctx: &Ctx<'_>, args: &Args<'_>) -> std::result::Result<(), WccFail> {
    let dc = ctx.dir_to_change(Mknod::NAME, &args.where_, NameUse::Make)?;
    let stat = match args.what {
        MknodData::Other(_) => Nfsstat3::Badtype,
        MknodData::Chr { .. } | MknodData::Blk { .. } | MknodData::Sock(_) | MknodData::Fifo(_) => {
            tracing::debug!(what = ?args.what, "MKNOD refused: device files, FIFOs and sockets cannot be objects");
            Nfsstat3::Notsupp
        }
    };
    Err(dc.refuse(stat))
}
