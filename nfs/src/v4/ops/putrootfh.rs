//! PUTROOTFH (RFC 8881 section 18.21): the root of the pseudo-filesystem, or, when the only
//! export is at `/`, that export's root directory.

use crate::v4::fh::Fh;
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub fn decode(_r: &mut Reader<'_>) -> xdr::Result<()> {
    Ok(())
}

/// The root file handle (also PUTPUBFH's). Whether the client may reach an export at `/` is
/// checked where the handle is used, as for every export handle.
pub fn root(cx: &Compound<'_>) -> Result<Fh, Status> {
    let Some(export_id) = cx.server.pseudo.root_export() else { return Ok(Fh::Pseudo(0)) };
    let e = cx.server.exports.by_id(export_id).ok_or(Status::SERVERFAULT)?;
    let rec = e.ns.inode("nfs4 putrootfh", e.ns.root_ino()).map_err(|e| from_engine(&e))?;
    Ok(Fh::Export(e.ns.handle(&rec)))
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    decode(r).map_err(|_| Status::BADXDR)?;
    cx.current = Some(root(cx)?);
    Ok(())
}
