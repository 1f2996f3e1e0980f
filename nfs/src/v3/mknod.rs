//! MKNOD (procedure 11): refused until the write path exists ([`refuse`]).

use crate::v3::attrs::put_wcc_data;
use crate::v3::refuse::refuse;
use crate::v3::types::{DirOpArgs, Sattr3, NF3BLK, NF3CHR, NF3DIR, NF3FIFO, NF3LNK, NF3REG, NF3SOCK};
use crate::v3::{Ctx, Procedure};
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
        let r = refuse(ctx, Self::NAME, &[args.where_.dir]);
        w.put_u32(r.stat.code());
        put_wcc_data(w, r.attr(0));
    }
}
