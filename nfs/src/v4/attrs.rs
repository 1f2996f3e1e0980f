//! NFSv4 file attributes (RFC 8881 section 5, RFC 7862 section 12): bitmap4, and fattr4
//! encoded from an [`Object`] (an export inode's engine attributes, or a synthetic pseudo
//! directory).
//!
//! Served: every REQUIRED attribute and the RECOMMENDED ones the Linux client asks for (see
//! [`supported`]); a requested attribute that is not served is left out of the reply's bitmap.
//! Choices:
//! - `owner` / `owner_group` are numeric strings (`"1000"`): the Linux client takes them as
//!   they are when id mapping is off (`nfs4_disable_idmapping`, the default for AUTH_SYS).
//! - `fsid`: major = the engine export id, minor 0; the pseudo-filesystem has its own
//!   ([`PSEUDO_FSID_MAJOR`]), so the client sees each export as a mount point below it.
//! - `fileid`: the inode number; pseudo directory `n` is `n + 1`. An export root's
//!   `mounted_on_fileid` is a pseudo-filesystem fileid of its own ([`mounted_on_export`]).
//! - Object storage has no capacity: `space_*` and `files_*` report fixed large values.
//! - `change`: the engine's change counter (bumped whenever the object or its attributes
//!   change); pseudo directories never change.
//! - `time_metadata` is the modification time: the engine keeps no change time.
//! - Settable attributes (SETATTR, createattrs) are decoded in settable.rs.
//!
//! VERIFY / NVERIFY compare the client's attribute values with the encoding of ours, byte for
//! byte (every served attribute has one canonical XDR form).

use std::time::{SystemTime, UNIX_EPOCH};

use engine::meta::Kind;
use engine::{Attr, FileHandle, Namespace};

use super::fh::Fh;
use super::Status;
use crate::xdr::{self, Reader, Writer};

pub const SUPPORTED_ATTRS: u32 = 0;
pub const TYPE: u32 = 1;
pub const FH_EXPIRE_TYPE: u32 = 2;
pub const CHANGE: u32 = 3;
pub const SIZE: u32 = 4;
pub const LINK_SUPPORT: u32 = 5;
pub const SYMLINK_SUPPORT: u32 = 6;
pub const NAMED_ATTR: u32 = 7;
pub const FSID: u32 = 8;
pub const UNIQUE_HANDLES: u32 = 9;
pub const LEASE_TIME: u32 = 10;
pub const RDATTR_ERROR: u32 = 11;
pub const ACLSUPPORT: u32 = 13;
pub const CANSETTIME: u32 = 15;
pub const CASE_INSENSITIVE: u32 = 16;
pub const CASE_PRESERVING: u32 = 17;
pub const CHOWN_RESTRICTED: u32 = 18;
pub const FILEHANDLE: u32 = 19;
pub const FILEID: u32 = 20;
pub const FILES_AVAIL: u32 = 21;
pub const FILES_FREE: u32 = 22;
pub const FILES_TOTAL: u32 = 23;
pub const HOMOGENEOUS: u32 = 26;
pub const MAXFILESIZE: u32 = 27;
pub const MAXLINK: u32 = 28;
pub const MAXNAME: u32 = 29;
pub const MAXREAD: u32 = 30;
pub const MAXWRITE: u32 = 31;
pub const MODE: u32 = 33;
pub const NO_TRUNC: u32 = 34;
pub const NUMLINKS: u32 = 35;
pub const OWNER: u32 = 36;
pub const OWNER_GROUP: u32 = 37;
pub const RAWDEV: u32 = 41;
pub const SPACE_AVAIL: u32 = 42;
pub const SPACE_FREE: u32 = 43;
pub const SPACE_TOTAL: u32 = 44;
pub const SPACE_USED: u32 = 45;
pub const TIME_ACCESS: u32 = 47;
pub const TIME_ACCESS_SET: u32 = 48;
pub const TIME_DELTA: u32 = 51;
pub const TIME_METADATA: u32 = 52;
pub const TIME_MODIFY: u32 = 53;
pub const TIME_MODIFY_SET: u32 = 54;
pub const MOUNTED_ON_FILEID: u32 = 55;
pub const FS_LAYOUT_TYPE: u32 = 62;
pub const SUPPATTR_EXCLCREAT: u32 = 75;
pub const FS_CHARSET_CAP: u32 = 76;

/// Words of a bitmap4 this server keeps (attributes 0..96); later words are read and ignored.
pub const BITMAP_WORDS: usize = 3;
/// Words of a bitmap4 accepted at most.
pub const BITMAP_WORDS_MAX: usize = 8;

/// The largest file (S3's object size limit, 5 TiB).
pub const MAXFILESIZE_BYTES: u64 = 5 << 40;
/// READ and WRITE sizes offered (maxread / maxwrite); READ counts are clamped to it.
pub const IO_BYTES_MAX: u32 = 1 << 20;
pub const NAME_BYTES_MAX: u32 = 255;
/// Object storage has no capacity: what `space_*` and `files_*` report.
pub const SPACE_TOTAL_BYTES: u64 = 1 << 50;
pub const FILES_TOTAL_COUNT: u64 = 1 << 32;
/// fsid major of the pseudo-filesystem (beyond every engine export id, which are u32).
pub const PSEUDO_FSID_MAJOR: u64 = 1 << 32;
/// Base of the pseudo-filesystem fileids an export root is mounted on.
pub const MOUNTED_ON_EXPORT_BASE: u64 = 1 << 40;

/// nfs_ftype4.
pub const NF4REG: u32 = 1;
pub const NF4LNK: u32 = 5;
pub const NF4DIR: u32 = 2;
/// FH4_PERSISTENT: handles never expire.
pub const FH4_PERSISTENT: u32 = 0;
/// FSCHARSET_CAP4_ALLOWS_ONLY_UTF8.
pub const FSCHARSET_CAP4_ALLOWS_ONLY_UTF8: u32 = 2;

/// A bitmap4 of attribute numbers below `32 * BITMAP_WORDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bitmap(pub [u32; BITMAP_WORDS]);

impl Bitmap {
    pub fn of(attrs: &[u32]) -> Bitmap {
        let mut b = Bitmap::default();
        for &a in attrs {
            b.set(a);
        }
        b
    }

    pub fn set(&mut self, attr: u32) {
        if let Some(w) = self.0.get_mut((attr / 32) as usize) {
            *w |= 1 << (attr % 32);
        }
    }

    pub fn has(&self, attr: u32) -> bool {
        self.0.get((attr / 32) as usize).is_some_and(|w| w & (1 << (attr % 32)) != 0)
    }

    pub fn and(&self, other: &Bitmap) -> Bitmap {
        Bitmap([self.0[0] & other.0[0], self.0[1] & other.0[1], self.0[2] & other.0[2]])
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// Attribute numbers set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..(32 * BITMAP_WORDS as u32)).filter(|a| self.has(*a))
    }

    /// Decodes a bitmap4; returns it and whether bits beyond the kept words were set.
    pub fn decode(r: &mut Reader<'_>) -> xdr::Result<(Bitmap, bool)> {
        let n = r.array_len("bitmap4", BITMAP_WORDS_MAX, 4)?;
        let mut b = Bitmap::default();
        let mut beyond = false;
        for i in 0..n {
            let word = r.u32("bitmap4 word")?;
            match b.0.get_mut(i) {
                Some(w) => *w = word,
                None => beyond |= word != 0,
            }
        }
        Ok((b, beyond))
    }

    /// Encodes without trailing zero words.
    pub fn encode(&self, w: &mut Writer) {
        let n = self.0.iter().rposition(|w| *w != 0).map_or(0, |i| i + 1);
        w.put_u32(n as u32);
        for word in &self.0[..n] {
            w.put_u32(*word);
        }
    }
}

/// Attributes this server returns for minor version `minor`.
pub fn supported(minor: u32) -> Bitmap {
    let mut b = Bitmap::of(&[
        SUPPORTED_ATTRS,
        TYPE,
        FH_EXPIRE_TYPE,
        CHANGE,
        SIZE,
        LINK_SUPPORT,
        SYMLINK_SUPPORT,
        NAMED_ATTR,
        FSID,
        UNIQUE_HANDLES,
        LEASE_TIME,
        RDATTR_ERROR,
        ACLSUPPORT,
        CANSETTIME,
        CASE_INSENSITIVE,
        CASE_PRESERVING,
        CHOWN_RESTRICTED,
        FILEHANDLE,
        FILEID,
        FILES_AVAIL,
        FILES_FREE,
        FILES_TOTAL,
        HOMOGENEOUS,
        MAXFILESIZE,
        MAXLINK,
        MAXNAME,
        MAXREAD,
        MAXWRITE,
        MODE,
        NO_TRUNC,
        NUMLINKS,
        OWNER,
        OWNER_GROUP,
        RAWDEV,
        SPACE_AVAIL,
        SPACE_FREE,
        SPACE_TOTAL,
        SPACE_USED,
        TIME_ACCESS,
        TIME_ACCESS_SET,
        TIME_DELTA,
        TIME_METADATA,
        TIME_MODIFY,
        TIME_MODIFY_SET,
        MOUNTED_ON_FILEID,
    ]);
    if minor >= 1 {
        b.set(FS_LAYOUT_TYPE);
        b.set(SUPPATTR_EXCLCREAT);
        b.set(FS_CHARSET_CAP);
    }
    b
}

/// Attributes that can only be set (never returned, though `supported_attrs` lists them, as SETATTR
/// takes them): asking for them is NFS4ERR_INVAL (GETATTR, READDIR, VERIFY).
pub fn write_only() -> Bitmap {
    Bitmap::of(&[TIME_ACCESS_SET, TIME_MODIFY_SET])
}

/// What attributes are encoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub fh: Fh,
    pub kind: Kind,
    pub fileid: u64,
    pub mounted_on_fileid: u64,
    pub fsid: (u64, u64),
    pub size: u64,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    pub change: u64,
}

/// The fileid of pseudo directory `node`.
pub fn pseudo_fileid(node: u32) -> u64 {
    u64::from(node) + 1
}

/// The pseudo-filesystem fileid export `export_id`'s root is mounted on.
pub fn mounted_on_export(export_id: u32) -> u64 {
    MOUNTED_ON_EXPORT_BASE + u64::from(export_id)
}

impl Object {
    /// A pseudo-filesystem directory: read-only for everyone, never changing.
    pub fn pseudo(node: u32) -> Object {
        let fileid = pseudo_fileid(node);
        Object {
            fh: Fh::Pseudo(node),
            kind: Kind::Dir,
            fileid,
            mounted_on_fileid: fileid,
            fsid: (PSEUDO_FSID_MAJOR, 0),
            size: 4096,
            mode: 0o555,
            nlink: 2,
            uid: 0,
            gid: 0,
            mtime: UNIX_EPOCH,
            change: 1,
        }
    }

    /// An inode of an export.
    pub fn export(ns: &Namespace, fh: FileHandle, attr: &Attr) -> Object {
        let export_id = ns.export_id();
        let mounted_on_fileid = if attr.ino == ns.root_ino() { mounted_on_export(export_id) } else { attr.ino };
        Object {
            fh: Fh::Export(fh),
            kind: attr.kind,
            fileid: attr.ino,
            mounted_on_fileid,
            fsid: (u64::from(export_id), 0),
            size: attr.size,
            mode: attr.mode & 0o7777,
            nlink: attr.nlink,
            uid: attr.uid,
            gid: attr.gid,
            mtime: attr.mtime,
            change: attr.change,
        }
    }
}

/// What attribute values depend on besides the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    pub minor: u32,
    pub lease_seconds: u32,
}

/// nfstime4: seconds (signed) and nanoseconds.
pub fn put_time(w: &mut Writer, t: SystemTime) {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (i64::try_from(d.as_secs()).unwrap_or(i64::MAX), d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, 1_000_000_000 - n),
            }
        }
    };
    w.put_i64(secs);
    w.put_u32(nanos);
}

/// Encodes one served attribute's value.
fn put_value(attr: u32, o: &Object, cx: &Context, rdattr_error: Status, w: &mut Writer) {
    match attr {
        SUPPORTED_ATTRS => supported(cx.minor).encode(w),
        TYPE => w.put_u32(match o.kind {
            Kind::Dir => NF4DIR,
            Kind::File => NF4REG,
            Kind::Symlink => NF4LNK,
        }),
        FH_EXPIRE_TYPE => w.put_u32(FH4_PERSISTENT),
        CHANGE => w.put_u64(o.change),
        SIZE => w.put_u64(o.size),
        LINK_SUPPORT | SYMLINK_SUPPORT | NAMED_ATTR | CASE_INSENSITIVE => w.put_bool(false),
        UNIQUE_HANDLES | CANSETTIME | CASE_PRESERVING | CHOWN_RESTRICTED | HOMOGENEOUS | NO_TRUNC => w.put_bool(true),
        FSID => {
            w.put_u64(o.fsid.0);
            w.put_u64(o.fsid.1);
        }
        LEASE_TIME => w.put_u32(cx.lease_seconds),
        RDATTR_ERROR => w.put_u32(rdattr_error.0),
        ACLSUPPORT => w.put_u32(0),
        FILEHANDLE => w.put_opaque(&o.fh.encode()),
        FILEID => w.put_u64(o.fileid),
        FILES_AVAIL | FILES_FREE | FILES_TOTAL => w.put_u64(FILES_TOTAL_COUNT),
        MAXFILESIZE => w.put_u64(MAXFILESIZE_BYTES),
        MAXLINK => w.put_u32(1),
        MAXNAME => w.put_u32(NAME_BYTES_MAX),
        MAXREAD | MAXWRITE => w.put_u64(u64::from(IO_BYTES_MAX)),
        MODE => w.put_u32(o.mode),
        NUMLINKS => w.put_u32(o.nlink),
        OWNER => w.put_string(&o.uid.to_string()),
        OWNER_GROUP => w.put_string(&o.gid.to_string()),
        RAWDEV => {
            w.put_u32(0);
            w.put_u32(0);
        }
        SPACE_AVAIL | SPACE_FREE | SPACE_TOTAL => w.put_u64(SPACE_TOTAL_BYTES),
        SPACE_USED => w.put_u64(o.size),
        TIME_ACCESS | TIME_METADATA | TIME_MODIFY => put_time(w, o.mtime),
        // Object storage keeps whole seconds (S3 Last-Modified).
        TIME_DELTA => {
            w.put_i64(1);
            w.put_u32(0);
        }
        MOUNTED_ON_FILEID => w.put_u64(o.mounted_on_fileid),
        FS_LAYOUT_TYPE => w.put_u32(0),
        // EXCLUSIVE4_1 keeps its verifier apart from the attributes: all settable ones go.
        SUPPATTR_EXCLCREAT => super::settable::settable().encode(w),
        FS_CHARSET_CAP => w.put_u32(FSCHARSET_CAP4_ALLOWS_ONLY_UTF8),
        _ => {}
    }
}

/// Encodes the values of the served attributes in `mask` (ascending), and which were served.
pub fn values(o: &Object, mask: &Bitmap, cx: &Context, rdattr_error: Status) -> (Bitmap, Vec<u8>) {
    let (supported, write_only) = (supported(cx.minor), write_only());
    let readable = Bitmap(std::array::from_fn(|i| supported.0[i] & !write_only.0[i]));
    let served = mask.and(&readable);
    let mut w = Writer::new();
    for attr in served.iter() {
        put_value(attr, o, cx, rdattr_error, &mut w);
    }
    (served, w.to_vec())
}

/// Encodes fattr4 with the served attributes of `mask`.
pub fn encode(o: &Object, mask: &Bitmap, cx: &Context, rdattr_error: Status, w: &mut Writer) {
    let (served, vals) = values(o, mask, cx, rdattr_error);
    served.encode(w);
    w.put_opaque(&vals);
}

/// Encodes fattr4 for a READDIR entry whose attributes could not be had: rdattr_error only
/// (when asked for).
pub fn encode_error(mask: &Bitmap, error: Status, w: &mut Writer) {
    let mut served = Bitmap::default();
    let mut vals = Writer::new();
    if mask.has(RDATTR_ERROR) {
        served.set(RDATTR_ERROR);
        vals.put_u32(error.0);
    }
    served.encode(w);
    w.put_opaque(&vals.to_vec());
}

/// The attributes a GETATTR may ask for: write-only ones are NFS4ERR_INVAL.
pub fn check_request(mask: &Bitmap) -> Result<(), Status> {
    if mask.and(&write_only()).is_empty() {
        Ok(())
    } else {
        Err(Status::INVAL)
    }
}

/// fattr4 as VERIFY / NVERIFY send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fattr<'a> {
    pub mask: Bitmap,
    /// Bits set beyond the attributes this server knows.
    pub mask_beyond: bool,
    pub vals: &'a [u8],
}

/// Attribute values are at most this long in a request.
pub const FATTR_BYTES_MAX: usize = 64 * 1024;

pub fn decode_fattr<'a>(r: &mut Reader<'a>) -> xdr::Result<Fattr<'a>> {
    let (mask, mask_beyond) = Bitmap::decode(r)?;
    let vals = r.opaque("fattr4 attr_vals", FATTR_BYTES_MAX)?;
    Ok(Fattr { mask, mask_beyond, vals })
}

/// Whether `f`'s values equal the object's (VERIFY / NVERIFY). rdattr_error and write-only
/// attributes are NFS4ERR_INVAL; attributes not served are NFS4ERR_ATTRNOTSUPP.
pub fn same(o: &Object, f: &Fattr<'_>, cx: &Context) -> Result<bool, Status> {
    if f.mask.has(RDATTR_ERROR) || !f.mask.and(&write_only()).is_empty() {
        return Err(Status::INVAL);
    }
    let supported = supported(cx.minor);
    if f.mask_beyond || f.mask.and(&supported) != f.mask {
        return Err(Status::ATTRNOTSUPP);
    }
    let (_, ours) = values(o, &f.mask, cx, Status::OK);
    Ok(ours == f.vals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn file() -> Object {
        let fh = FileHandle { store_id: 7, export: 3, ino: 42, generation: 9 };
        Object {
            fh: Fh::Export(fh),
            kind: Kind::File,
            fileid: 42,
            mounted_on_fileid: 42,
            fsid: (3, 0),
            size: 12345,
            mode: 0o640,
            nlink: 1,
            uid: 1000,
            gid: 100,
            mtime: UNIX_EPOCH + Duration::new(1_700_000_000, 5),
            change: 77,
        }
    }

    const CX: Context = Context { minor: 1, lease_seconds: 90 };

    fn decode_values(v: &[u8]) -> Reader<'_> {
        Reader::new(v)
    }

    #[test]
    fn bitmap_round_trip_and_bounds() {
        let b = Bitmap::of(&[TYPE, SIZE, MOUNTED_ON_FILEID, SUPPATTR_EXCLCREAT]);
        let mut w = Writer::new();
        b.encode(&mut w);
        let v = w.to_vec();
        assert_eq!(v.len(), 4 + 3 * 4);
        let (d, beyond) = Bitmap::decode(&mut Reader::new(&v)).unwrap();
        assert_eq!(d, b);
        assert!(!beyond);
        assert_eq!(d.iter().collect::<Vec<_>>(), vec![TYPE, SIZE, MOUNTED_ON_FILEID, SUPPATTR_EXCLCREAT]);
        // Trailing zero words are dropped.
        let mut w = Writer::new();
        Bitmap::of(&[TYPE]).encode(&mut w);
        assert_eq!(w.to_vec(), [0, 0, 0, 1, 0, 0, 0, 2]);
        // A fourth word is read and reported, a ninth refused.
        let mut w = Writer::new();
        w.put_u32(4);
        for x in [0, 0, 0, 1] {
            w.put_u32(x);
        }
        let (_, beyond) = Bitmap::decode(&mut Reader::new(&w.to_vec())).unwrap();
        assert!(beyond);
        let mut w = Writer::new();
        w.put_u32(9);
        for _ in 0..9 {
            w.put_u32(0);
        }
        assert!(Bitmap::decode(&mut Reader::new(&w.to_vec())).is_err());
    }

    #[test]
    fn values_in_attribute_order() {
        let o = file();
        let mask = Bitmap::of(&[OWNER, SIZE, TYPE, TIME_MODIFY, FILEID, 14 /* archive: not served */]);
        let (served, v) = values(&o, &mask, &CX, Status::OK);
        assert_eq!(served, Bitmap::of(&[OWNER, SIZE, TYPE, TIME_MODIFY, FILEID]));
        let mut r = decode_values(&v);
        assert_eq!(r.u32("type").unwrap(), NF4REG);
        assert_eq!(r.u64("size").unwrap(), 12345);
        assert_eq!(r.u64("fileid").unwrap(), 42);
        assert_eq!(r.string("owner", 64).unwrap(), "1000");
        assert_eq!(r.i64("secs").unwrap(), 1_700_000_000);
        assert_eq!(r.u32("nsecs").unwrap(), 5);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn minor_version_decides_the_4_1_attributes() {
        assert!(!supported(0).has(SUPPATTR_EXCLCREAT));
        assert!(supported(1).has(SUPPATTR_EXCLCREAT));
        let o = file();
        let mask = Bitmap::of(&[FS_LAYOUT_TYPE]);
        assert!(values(&o, &mask, &Context { minor: 0, lease_seconds: 90 }, Status::OK).0.is_empty());
        assert_eq!(values(&o, &mask, &CX, Status::OK).1, [0, 0, 0, 0]);
    }

    #[test]
    fn times_before_the_epoch() {
        let mut w = Writer::new();
        put_time(&mut w, UNIX_EPOCH - Duration::new(1, 250));
        let v = w.to_vec();
        let mut r = Reader::new(&v);
        assert_eq!(r.i64("s").unwrap(), -2);
        assert_eq!(r.u32("ns").unwrap(), 999_999_750);
    }

    #[test]
    fn verify_compares_encodings() {
        let o = file();
        let mask = Bitmap::of(&[SIZE, MODE]);
        let (_, ours) = values(&o, &mask, &CX, Status::OK);
        let f = Fattr { mask, mask_beyond: false, vals: &ours };
        assert_eq!(same(&o, &f, &CX), Ok(true));
        let mut other = o.clone();
        other.size += 1;
        assert_eq!(same(&other, &f, &CX), Ok(false));
        let bad = Fattr { mask: Bitmap::of(&[RDATTR_ERROR]), mask_beyond: false, vals: &[] };
        assert_eq!(same(&o, &bad, &CX), Err(Status::INVAL));
        let bad = Fattr { mask: Bitmap::of(&[TIME_MODIFY_SET]), mask_beyond: false, vals: &[] };
        assert_eq!(same(&o, &bad, &CX), Err(Status::INVAL));
        let bad = Fattr { mask: Bitmap::of(&[14]), mask_beyond: false, vals: &[] };
        assert_eq!(same(&o, &bad, &CX), Err(Status::ATTRNOTSUPP));
    }

    #[test]
    fn error_entry_carries_only_rdattr_error() {
        let mut w = Writer::new();
        encode_error(&Bitmap::of(&[TYPE, RDATTR_ERROR]), Status::STALE, &mut w);
        assert_eq!(w.to_vec(), [0, 0, 0, 1, 0, 0, 8, 0, 0, 0, 0, 4, 0, 0, 0, 70]);
    }
}
