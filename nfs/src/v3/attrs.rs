//! fattr3 from the engine's attributes, and the optional attribute and handle forms replies
//! carry (post_op_attr, pre_op_attr, wcc_data, post_op_fh3).

use std::time::{SystemTime, UNIX_EPOCH};

use engine::meta::Kind;
use engine::{Attr, FileHandle};

use crate::v3::types::{NF3DIR, NF3LNK, NF3REG};
use crate::xdr::Writer;

/// Encoded size of a fattr3.
pub const FATTR3_BYTES: usize = 84;
/// Encoded size of a post_op_attr with attributes.
pub const POST_OP_ATTR_BYTES: usize = 4 + FATTR3_BYTES;
/// Encoded size of a pre_op_attr with attributes (size, mtime, ctime).
pub const PRE_OP_ATTR_BYTES: usize = 4 + 8 + 8 + 8;
/// Encoded size of a post_op_fh3 with one of our handles.
pub const POST_OP_FH_BYTES: usize = 4 + 4 + engine::namespace::HANDLE_BYTES + 3;

/// The attributes of one object as NFSv3 reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fattr3 {
    pub ftype: u32,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub used: u64,
    /// The export id: every export is its own filesystem to the client.
    pub fsid: u64,
    pub fileid: u64,
    /// Seconds and nanoseconds since the epoch; atime and ctime are the mtime (objects have
    /// neither).
    pub mtime: (u32, u32),
}

impl Fattr3 {
    pub fn new(attr: &Attr, export_id: u32) -> Fattr3 {
        Fattr3 {
            ftype: match attr.kind {
                Kind::File => NF3REG,
                Kind::Dir => NF3DIR,
                Kind::Symlink => NF3LNK,
            },
            mode: attr.mode & 0o7777,
            nlink: attr.nlink,
            uid: attr.uid,
            gid: attr.gid,
            size: attr.size,
            used: attr.size,
            fsid: u64::from(export_id),
            fileid: attr.ino,
            mtime: nfs_time(attr.mtime),
        }
    }

    /// The ctime reported: the mtime (an object has no separate change time).
    pub fn ctime(&self) -> (u32, u32) {
        self.mtime
    }

    pub fn encode(&self, w: &mut Writer) {
        w.put_u32(self.ftype);
        w.put_u32(self.mode);
        w.put_u32(self.nlink);
        w.put_u32(self.uid);
        w.put_u32(self.gid);
        w.put_u64(self.size);
        w.put_u64(self.used);
        w.put_u32(0); // rdev
        w.put_u32(0);
        w.put_u64(self.fsid);
        w.put_u64(self.fileid);
        for _ in 0..3 {
            w.put_u32(self.mtime.0);
            w.put_u32(self.mtime.1);
        }
    }
}

/// A time as nfstime3 (seconds clamped to what 32 bits hold; before 1970 is 1970).
pub fn nfs_time(t: SystemTime) -> (u32, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (u32::try_from(d.as_secs()).unwrap_or(u32::MAX), d.subsec_nanos()),
        Err(_) => (0, 0),
    }
}

/// post_op_attr.
pub fn put_post_op_attr(w: &mut Writer, attr: Option<&Fattr3>) {
    match attr {
        Some(a) => {
            w.put_bool(true);
            a.encode(w);
        }
        None => w.put_bool(false),
    }
}

/// pre_op_attr: size, mtime and ctime of an object as they were just before a change.
pub fn put_pre_op_attr(w: &mut Writer, before: Option<&Fattr3>) {
    match before {
        Some(a) => {
            w.put_bool(true);
            w.put_u64(a.size);
            w.put_u32(a.mtime.0);
            w.put_u32(a.mtime.1);
            let ctime = a.ctime();
            w.put_u32(ctime.0);
            w.put_u32(ctime.1);
        }
        None => w.put_bool(false),
    }
}

/// wcc_data: the object before the change and after it. A client whose cached attributes
/// equal `before` knows nobody else changed the object meanwhile, and takes `after` without
/// dropping its cached data.
pub fn put_wcc_data(w: &mut Writer, before: Option<&Fattr3>, after: Option<&Fattr3>) {
    put_pre_op_attr(w, before);
    put_post_op_attr(w, after);
}

/// post_op_fh3.
pub fn put_post_op_fh(w: &mut Writer, fh: Option<&FileHandle>) {
    match fh {
        Some(fh) => {
            w.put_bool(true);
            w.put_opaque(&fh.encode());
        }
        None => w.put_bool(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fattr3_layout() {
        let attr = Attr {
            ino: 77,
            kind: Kind::File,
            size: 5000,
            mode: 0o100644,
            uid: 1000,
            gid: 100,
            mtime: UNIX_EPOCH + Duration::new(1_700_000_000, 5),
            change: 3,
            nlink: 1,
            etag: None,
        };
        let mut w = Writer::new();
        Fattr3::new(&attr, 9).encode(&mut w);
        let v = w.to_vec();
        assert_eq!(v.len(), FATTR3_BYTES);
        let word = |i: usize| u32::from_be_bytes(v[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!([word(0), word(1), word(2), word(3), word(4)], [NF3REG, 0o644, 1, 1000, 100]);
        assert_eq!((word(5), word(6)), (0, 5000)); // size
        assert_eq!((word(11), word(12)), (0, 9)); // fsid
        assert_eq!((word(13), word(14)), (0, 77)); // fileid
        for t in 0..3 {
            assert_eq!((word(15 + 2 * t), word(16 + 2 * t)), (1_700_000_000, 5));
        }
        let mut w = Writer::new();
        put_post_op_fh(&mut w, Some(&FileHandle { store_id: 1, export: 2, ino: 3, generation: 4 }));
        assert_eq!(w.len(), POST_OP_FH_BYTES);
        assert_eq!(nfs_time(UNIX_EPOCH - Duration::from_secs(5)), (0, 0));
        let fattr = Fattr3::new(&attr, 9);
        let mut w = Writer::new();
        put_wcc_data(&mut w, Some(&fattr), None);
        let v = w.to_vec();
        assert_eq!(v.len(), PRE_OP_ATTR_BYTES + 4);
        let word = |i: usize| u32::from_be_bytes(v[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!(
            [word(0), word(1), word(2), word(3), word(4), word(5), word(6), word(7)],
            [1, 0, 5000, 1_700_000_000, 5, 1_700_000_000, 5, 0]
        );
    }
}
