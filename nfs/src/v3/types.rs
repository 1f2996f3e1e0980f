//! NFSv3 (RFC 1813) constants and the argument types several procedures share, with their
//! decoders. Pure codec: no engine, no I/O.

use crate::xdr::{Reader, Result};

pub const PROGRAM: u32 = 100_003;
pub const VERSION: u32 = 3;

/// Largest file handle on the wire (NFS3_FHSIZE).
pub const FH_BYTES_MAX: usize = 64;
/// Longest name or path taken off the wire (longer is GARBAGE_ARGS); names longer than
/// [`NAME_BYTES_MAX`] but within this get NFS3ERR_NAMETOOLONG.
pub const PATH_BYTES_MAX: usize = 4096;
/// Longest file name served (NAME_MAX; the engine's limit).
pub const NAME_BYTES_MAX: usize = engine::namespace::NAME_BYTES_MAX;
/// Largest WRITE payload taken off the wire (= wtmax).
pub const WRITE_BYTES_MAX: usize = 1 << 20;
/// Largest READ answered (rtmax); larger counts are clamped.
pub const READ_BYTES_MAX: u32 = 1 << 20;
/// Preferred READDIR size (dtpref).
pub const DIR_BYTES_PREF: u32 = 64 << 10;

/// Procedure numbers.
pub mod proc_ {
    pub const NULL: u32 = 0;
    pub const GETATTR: u32 = 1;
    pub const SETATTR: u32 = 2;
    pub const LOOKUP: u32 = 3;
    pub const ACCESS: u32 = 4;
    pub const READLINK: u32 = 5;
    pub const READ: u32 = 6;
    pub const WRITE: u32 = 7;
    pub const CREATE: u32 = 8;
    pub const MKDIR: u32 = 9;
    pub const SYMLINK: u32 = 10;
    pub const MKNOD: u32 = 11;
    pub const REMOVE: u32 = 12;
    pub const RMDIR: u32 = 13;
    pub const RENAME: u32 = 14;
    pub const LINK: u32 = 15;
    pub const READDIR: u32 = 16;
    pub const READDIRPLUS: u32 = 17;
    pub const FSSTAT: u32 = 18;
    pub const FSINFO: u32 = 19;
    pub const PATHCONF: u32 = 20;
    pub const COMMIT: u32 = 21;
}

/// nfsstat3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Nfsstat3 {
    Ok = 0,
    Perm = 1,
    Noent = 2,
    Io = 5,
    Nxio = 6,
    Acces = 13,
    Exist = 17,
    Xdev = 18,
    Nodev = 19,
    Notdir = 20,
    Isdir = 21,
    Inval = 22,
    Fbig = 27,
    Nospc = 28,
    Rofs = 30,
    Mlink = 31,
    Nametoolong = 63,
    Notempty = 66,
    Dquot = 69,
    Stale = 70,
    Remote = 71,
    Badhandle = 10001,
    NotSync = 10002,
    BadCookie = 10003,
    Notsupp = 10004,
    Toosmall = 10005,
    Serverfault = 10006,
    Badtype = 10007,
    Jukebox = 10008,
}

impl Nfsstat3 {
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// ftype3.
pub const NF3REG: u32 = 1;
pub const NF3DIR: u32 = 2;
pub const NF3BLK: u32 = 3;
pub const NF3CHR: u32 = 4;
pub const NF3LNK: u32 = 5;
pub const NF3SOCK: u32 = 6;
pub const NF3FIFO: u32 = 7;

/// ACCESS bits.
pub const ACCESS3_READ: u32 = 0x01;
pub const ACCESS3_LOOKUP: u32 = 0x02;
pub const ACCESS3_MODIFY: u32 = 0x04;
pub const ACCESS3_EXTEND: u32 = 0x08;
pub const ACCESS3_DELETE: u32 = 0x10;
pub const ACCESS3_EXECUTE: u32 = 0x20;

/// FSINFO properties.
pub const FSF3_LINK: u32 = 0x01;
pub const FSF3_SYMLINK: u32 = 0x02;
pub const FSF3_HOMOGENEOUS: u32 = 0x08;
pub const FSF3_CANSETTIME: u32 = 0x10;

/// A file handle as the client sent it (not yet checked).
pub fn decode_fh<'a>(r: &mut Reader<'a>) -> Result<&'a [u8]> {
    r.opaque("nfs_fh3", FH_BYTES_MAX)
}

/// A file name as sent: bytes (a name that is not UTF-8 names nothing in a bucket, which is
/// for the procedure to say, not the decoder).
pub fn decode_name<'a>(r: &mut Reader<'a>) -> Result<&'a [u8]> {
    r.opaque("filename3", PATH_BYTES_MAX)
}

/// diropargs3: a directory and a name in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirOpArgs<'a> {
    pub dir: &'a [u8],
    pub name: &'a [u8],
}

impl<'a> DirOpArgs<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<DirOpArgs<'a>> {
        Ok(DirOpArgs { dir: decode_fh(r)?, name: decode_name(r)? })
    }
}

/// nfstime3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NfsTime {
    pub seconds: u32,
    pub nseconds: u32,
}

impl NfsTime {
    pub fn decode(r: &mut Reader<'_>) -> Result<NfsTime> {
        Ok(NfsTime { seconds: r.u32("nfstime3 seconds")?, nseconds: r.u32("nfstime3 nseconds")? })
    }
}

/// set_atime / set_mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    DontChange,
    ServerTime,
    ClientTime(NfsTime),
}

impl SetTime {
    pub fn decode(r: &mut Reader<'_>) -> Result<SetTime> {
        let at = r.position();
        match r.u32("time_how")? {
            0 => Ok(SetTime::DontChange),
            1 => Ok(SetTime::ServerTime),
            2 => Ok(SetTime::ClientTime(NfsTime::decode(r)?)),
            _ => Err(crate::xdr::XdrError { what: "time_how", at, why: "not a time_how value" }),
        }
    }
}

/// sattr3: the attributes a client asks to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sattr3 {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: SetTime,
    pub mtime: SetTime,
}

impl Sattr3 {
    pub fn decode(r: &mut Reader<'_>) -> Result<Sattr3> {
        Ok(Sattr3 {
            mode: r.optional("set_mode3", |r| r.u32("mode"))?,
            uid: r.optional("set_uid3", |r| r.u32("uid"))?,
            gid: r.optional("set_gid3", |r| r.u32("gid"))?,
            size: r.optional("set_size3", |r| r.u64("size"))?,
            atime: SetTime::decode(r)?,
            mtime: SetTime::decode(r)?,
        })
    }
}
