//! WRITE (RFC 8881 section 18.32): data into a file through the engine's write path.
//!
//! Checks, in order: the current handle is a file (NFS4ERR_ISDIR for a directory, NFS4ERR_INVAL
//! for a symbolic link), of a writable export (NFS4ERR_ROFS), the stateid allows writing (an
//! open stateid with write access, else NFS4ERR_OPENMODE; the anonymous stateid; the READ
//! bypass stateid is NFS4ERR_BAD_STATEID), and with the anonymous stateid the caller's `w`
//! permission. At most `maxwrite` (1 MiB) per call (more is NFS4ERR_INVAL); past the largest
//! file size NFS4ERR_FBIG.
//!
//! `stable_how4` maps to the engine's stability; the reply says what was achieved (FILE_SYNC4 for
//! DATA_SYNC4 and FILE_SYNC4, which the engine makes durable together) and the write verifier,
//! which changes when the server restarts so the client sends uncommitted data again. The
//! data is a slice of the request record, handed to the engine without a copy.

use engine::meta::Kind;
use engine::Stability;

use crate::v4::attrs::{IO_BYTES_MAX, MAXFILESIZE_BYTES};
use crate::v4::change::{self, Caller};
use crate::v4::fh::Fh;
use crate::v4::node::ExportNode;
use crate::v4::state::{IoAccess, Stateid};
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

/// stable_how4.
pub const UNSTABLE4: u32 = 0;
pub const DATA_SYNC4: u32 = 1;
pub const FILE_SYNC4: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub stateid: Stateid,
    pub offset: u64,
    pub stable: u32,
    pub data: &'a [u8],
}

/// The data is any length the record holds; more than `maxwrite` is refused by the operation.
pub fn decode<'a>(r: &mut Reader<'a>) -> xdr::Result<Args<'a>> {
    let stateid = Stateid::decode(r)?;
    let offset = r.u64("write offset")?;
    let stable = r.u32("stable_how4")?;
    if stable > FILE_SYNC4 {
        return Err(r.error("stable_how4", "unknown value"));
    }
    let data = r.opaque("write data", usize::MAX)?;
    Ok(Args { stateid, offset, stable, data })
}

impl Args<'_> {
    pub fn encode(&self, w: &mut Writer) {
        self.stateid.encode(w);
        w.put_u64(self.offset);
        w.put_u32(self.stable);
        w.put_opaque(self.data);
    }
}

pub fn stability(stable: u32) -> Stability {
    match stable {
        UNSTABLE4 => Stability::Unstable,
        DATA_SYNC4 => Stability::DataSync,
        _ => Stability::FileSync,
    }
}

pub fn stable_how(s: Stability) -> u32 {
    match s {
        Stability::Unstable => UNSTABLE4,
        Stability::DataSync => DATA_SYNC4,
        Stability::FileSync => FILE_SYNC4,
    }
}

/// The current handle as a file the caller may change with `stateid`: a regular file of a
/// writable export, the stateid good for writing, and `w` permission unless the stateid is an
/// open's (WRITE, SETATTR of the size, ALLOCATE, DEALLOCATE).
pub fn file_for_change<'a>(cx: &Compound<'a>, stateid: Stateid) -> Result<ExportNode<'a>, Status> {
    let n = change::writable(cx, cx.current()?)?;
    match n.rec.kind {
        Kind::File => {}
        Kind::Dir => return Err(Status::ISDIR),
        Kind::Symlink => return Err(Status::INVAL),
    }
    let stateid = cx.resolve_stateid(stateid)?;
    cx.server.state.check_stateid(cx.minor, &stateid, &Fh::Export(n.fh), IoAccess::Write)?;
    if stateid.is_special() {
        Caller::of(cx, &n).may_write(&n.attr())?;
    }
    Ok(n)
}

/// 8 bytes of the engine's write verifier.
pub fn verifier_bytes(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(|_| Status::BADXDR)?;
    let n = file_for_change(cx, args.stateid)?;
    if args.data.len() > IO_BYTES_MAX as usize {
        return Err(Status::INVAL);
    }
    let end = args.offset.checked_add(args.data.len() as u64).ok_or(Status::FBIG)?;
    if end > MAXFILESIZE_BYTES {
        return Err(Status::FBIG);
    }
    let engine = cx.server.exports.engine();
    let asked = stability(args.stable);
    let (count, committed, verifier) = if args.data.is_empty() {
        // Nothing to write (and no change of mtime); a stable one still makes earlier data durable.
        let verifier = match asked {
            Stability::Unstable => engine.write_verifier(),
            _ => engine.commit(&n.fh).await.map_err(|e| from_engine(&e))?,
        };
        (0, asked, verifier)
    } else {
        let out = engine.write(&n.fh, args.offset, args.data, asked).await.map_err(|e| from_engine(&e))?;
        (out.count, out.stability, out.verifier)
    };
    tracing::trace!(ino = n.fh.ino, offset = args.offset, count, stable = args.stable, "WRITE");
    w.put_u32(u32::try_from(count).unwrap_or(u32::MAX));
    w.put_u32(stable_how(committed));
    w.put_opaque_fixed(&verifier_bytes(verifier));
    Ok(())
}
