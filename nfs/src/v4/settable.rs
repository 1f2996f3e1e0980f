//! fattr4 as clients send it to change attributes: SETATTR's `obj_attributes`, OPEN's and
//! CREATE's `createattrs` (RFC 8881 sections 5.6, 5.7, 18.30).
//!
//! Settable here: `size`, `mode`, `owner`, `owner_group`, `time_access_set` (accepted, not kept:
//! object storage has no access time) and `time_modify_set` (server or client time). Owners are
//! numeric strings (`"1000"`, what the Linux client sends with AUTH_SYS and id mapping off) or
//! `"1000@domain"`; anything else is NFS4ERR_BADOWNER. Other attributes: NFS4ERR_INVAL for
//! those that exist but only ever read (`type`, `change`, ...), NFS4ERR_ATTRNOTSUPP for the rest
//! (`acl`, `archive`, `time_create`, ...).
//!
//! A pure codec: decoded and checked here, applied by the operations.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::attrs::{self, Bitmap};
use super::Status;
use crate::xdr::{Reader, Writer};

/// time_how4.
pub const SET_TO_SERVER_TIME4: u32 = 0;
pub const SET_TO_CLIENT_TIME4: u32 = 1;

/// Longest owner string accepted.
pub const OWNER_BYTES_MAX: usize = 1024;

/// Attributes a client may set.
pub fn settable() -> Bitmap {
    Bitmap::of(&[
        attrs::SIZE,
        attrs::MODE,
        attrs::OWNER,
        attrs::OWNER_GROUP,
        attrs::TIME_ACCESS_SET,
        attrs::TIME_MODIFY_SET,
    ])
}

/// settime4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    Server,
    Client(SystemTime),
}

/// Decoded attribute changes; `mask` says which attributes were sent (the `attrsset` of a
/// reply that applied them all).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settable {
    pub mask: Bitmap,
    pub size: Option<u64>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
}

impl Settable {
    pub fn is_empty(&self) -> bool {
        self.mask.is_empty()
    }

    /// The engine's form. Access times are not kept; `mtime` server time is `Some(None)`.
    pub fn engine(&self) -> engine::SetAttrs {
        engine::SetAttrs {
            size: self.size,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime: self.mtime.map(|t| match t {
                SetTime::Server => None,
                SetTime::Client(t) => Some(t),
            }),
        }
    }
}

/// Decodes fattr4's values for `mask` (attributes in ascending order, as RFC 8881 section 5
/// lays them out). `mask_beyond`: bits set past the words this server keeps.
pub fn decode(mask: &Bitmap, mask_beyond: bool, vals: &[u8]) -> Result<Settable, Status> {
    let unknown = mask_beyond || mask.and(&settable()) != *mask;
    if unknown {
        // Attributes that exist but are never set here: read-only ones are INVAL.
        let supported = attrs::supported(2);
        let read_only = mask.iter().any(|a| supported.has(a) && !settable().has(a));
        return Err(if read_only && !mask_beyond && mask.iter().all(|a| supported.has(a)) {
            Status::INVAL
        } else {
            Status::ATTRNOTSUPP
        });
    }
    let mut r = Reader::new(vals);
    let mut out = Settable { mask: *mask, ..Settable::default() };
    let bad = |_| Status::BADXDR;
    for a in mask.iter() {
        match a {
            attrs::SIZE => out.size = Some(r.u64("size").map_err(bad)?),
            attrs::MODE => {
                let mode = r.u32("mode").map_err(bad)?;
                if mode & !0o7777 != 0 {
                    return Err(Status::INVAL);
                }
                out.mode = Some(mode);
            }
            attrs::OWNER => out.uid = Some(parse_owner(r.opaque("owner", OWNER_BYTES_MAX).map_err(bad)?)?),
            attrs::OWNER_GROUP => out.gid = Some(parse_owner(r.opaque("owner_group", OWNER_BYTES_MAX).map_err(bad)?)?),
            attrs::TIME_ACCESS_SET => out.atime = Some(decode_settime(&mut r)?),
            attrs::TIME_MODIFY_SET => out.mtime = Some(decode_settime(&mut r)?),
            _ => return Err(Status::ATTRNOTSUPP),
        }
    }
    if r.remaining() != 0 {
        return Err(Status::BADXDR);
    }
    Ok(out)
}

/// An owner or group as a numeric id: `"1000"` or `"1000@domain"`.
pub fn parse_owner(b: &[u8]) -> Result<u32, Status> {
    let s = std::str::from_utf8(b).map_err(|_| Status::BADOWNER)?;
    let id = s.split_once('@').map_or(s, |(id, _)| id);
    if id.is_empty() || !id.bytes().all(|c| c.is_ascii_digit()) {
        return Err(Status::BADOWNER);
    }
    id.parse::<u32>().map_err(|_| Status::BADOWNER)
}

fn decode_settime(r: &mut Reader<'_>) -> Result<SetTime, Status> {
    match r.u32("time_how4").map_err(|_| Status::BADXDR)? {
        SET_TO_SERVER_TIME4 => Ok(SetTime::Server),
        SET_TO_CLIENT_TIME4 => {
            let secs = r.i64("nfstime4 seconds").map_err(|_| Status::BADXDR)?;
            let nanos = r.u32("nfstime4 nseconds").map_err(|_| Status::BADXDR)?;
            if nanos >= 1_000_000_000 {
                return Err(Status::INVAL);
            }
            let t = if secs >= 0 {
                UNIX_EPOCH.checked_add(Duration::new(secs.unsigned_abs(), nanos))
            } else {
                UNIX_EPOCH
                    .checked_sub(Duration::from_secs(secs.unsigned_abs()))
                    .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
            };
            t.map(SetTime::Client).ok_or(Status::INVAL)
        }
        _ => Err(Status::BADXDR),
    }
}

/// Encodes fattr4 for the attributes in `s`'s mask (clients' side: tests, fuzz seeds).
pub fn encode(s: &Settable, w: &mut Writer) {
    s.mask.encode(w);
    w.put_opaque(&values(s));
}

/// The attr_vals of fattr4 for the attributes in `s`'s mask.
pub fn values(s: &Settable) -> Vec<u8> {
    let mut v = Writer::new();
    for a in s.mask.iter() {
        match a {
            attrs::SIZE => v.put_u64(s.size.unwrap_or(0)),
            attrs::MODE => v.put_u32(s.mode.unwrap_or(0)),
            attrs::OWNER => v.put_string(&s.uid.unwrap_or(0).to_string()),
            attrs::OWNER_GROUP => v.put_string(&s.gid.unwrap_or(0).to_string()),
            attrs::TIME_ACCESS_SET => put_settime(&mut v, s.atime.unwrap_or(SetTime::Server)),
            attrs::TIME_MODIFY_SET => put_settime(&mut v, s.mtime.unwrap_or(SetTime::Server)),
            _ => {}
        }
    }
    v.to_vec()
}

fn put_settime(w: &mut Writer, t: SetTime) {
    match t {
        SetTime::Server => w.put_u32(SET_TO_SERVER_TIME4),
        SetTime::Client(t) => {
            w.put_u32(SET_TO_CLIENT_TIME4);
            attrs::put_time(w, t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &Settable) -> Result<Settable, Status> {
        let mut w = Writer::new();
        encode(s, &mut w);
        let v = w.to_vec();
        let mut r = Reader::new(&v);
        let (mask, beyond) = Bitmap::decode(&mut r).unwrap();
        let vals = r.opaque("vals", 4096).unwrap();
        decode(&mask, beyond, vals)
    }

    #[test]
    fn values_round_trip() {
        let s = Settable {
            mask: settable(),
            size: Some(7),
            mode: Some(0o4755),
            uid: Some(1000),
            gid: Some(100),
            atime: Some(SetTime::Server),
            mtime: Some(SetTime::Client(UNIX_EPOCH + Duration::new(1_700_000_000, 12))),
        };
        assert_eq!(round_trip(&s), Ok(s.clone()));
        let before_epoch = Settable {
            mask: Bitmap::of(&[attrs::TIME_MODIFY_SET]),
            mtime: Some(SetTime::Client(UNIX_EPOCH - Duration::new(1, 250))),
            ..Settable::default()
        };
        assert_eq!(round_trip(&before_epoch), Ok(before_epoch.clone()));
        assert_eq!(s.engine().mtime, Some(Some(UNIX_EPOCH + Duration::new(1_700_000_000, 12))));
    }

    #[test]
    fn owners() {
        assert_eq!(parse_owner(b"1000"), Ok(1000));
        assert_eq!(parse_owner(b"0@example.com"), Ok(0));
        assert_eq!(parse_owner(b"alice@example.com"), Err(Status::BADOWNER));
        assert_eq!(parse_owner(b"nobody"), Err(Status::BADOWNER));
        assert_eq!(parse_owner(b""), Err(Status::BADOWNER));
        assert_eq!(parse_owner(b"-1"), Err(Status::BADOWNER));
        assert_eq!(parse_owner(b"99999999999"), Err(Status::BADOWNER));
    }

    #[test]
    fn refusals() {
        let none: &[u8] = &[];
        assert_eq!(decode(&Bitmap::of(&[attrs::TYPE]), false, none), Err(Status::INVAL), "read-only");
        assert_eq!(decode(&Bitmap::of(&[12]), false, none), Err(Status::ATTRNOTSUPP), "acl");
        assert_eq!(decode(&Bitmap::default(), true, none), Err(Status::ATTRNOTSUPP), "beyond");
        assert_eq!(decode(&Bitmap::of(&[attrs::SIZE]), false, &[0; 4]), Err(Status::BADXDR), "short");
        assert_eq!(decode(&Bitmap::of(&[attrs::MODE]), false, &[0; 8]), Err(Status::BADXDR), "trailing");
        assert_eq!(decode(&Bitmap::of(&[attrs::MODE]), false, &[0, 1, 0, 0]), Err(Status::INVAL), "mode bits");
        let mut w = Writer::new();
        w.put_u32(SET_TO_CLIENT_TIME4);
        w.put_i64(0);
        w.put_u32(1_000_000_000);
        assert_eq!(decode(&Bitmap::of(&[attrs::TIME_MODIFY_SET]), false, &w.to_vec()), Err(Status::INVAL));
        let mut w = Writer::new();
        w.put_string("bob");
        assert_eq!(decode(&Bitmap::of(&[attrs::OWNER]), false, &w.to_vec()), Err(Status::BADOWNER));
        assert_eq!(decode(&Bitmap::default(), false, none).map(|s| s.is_empty()), Ok(true));
    }
}
