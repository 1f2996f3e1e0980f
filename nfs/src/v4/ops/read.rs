//! READ (RFC 8881 section 18.22): at most 1 MiB from the engine, the payload spliced into the
//! reply from the cache's buffers (no copy). The stateid is checked by the state layer; the
//! caller's mode-bit permission (read or execute) is checked here. Also the I/O preamble of
//! SEEK and READ_PLUS ([`file_for_io`]).

use crate::v4::attrs::IO_BYTES_MAX;
use crate::v4::fh::Fh;
use crate::v4::node::{self, ExportNode, Node, ACCESS4_EXECUTE, ACCESS4_READ};
use crate::v4::state::IoAccess;
use crate::v4::state::Stateid;
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub stateid: Stateid,
    pub offset: u64,
    pub count: u32,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args { stateid: Stateid::decode(r)?, offset: r.u64("read offset")?, count: r.u32("read count")? })
}

/// The current handle as a file this caller may read with `stateid`: a directory is
/// NFS4ERR_ISDIR, a bad stateid what the state layer says, no permission NFS4ERR_ACCESS.
pub fn file_for_io<'a>(cx: &Compound<'a>, stateid: Stateid) -> Result<ExportNode<'a>, Status> {
    let at = node::current(cx)?;
    let n = match &at {
        Node::Export(n) if !at.is_dir() => n.clone(),
        _ => return Err(Status::ISDIR),
    };
    let stateid = cx.resolve_stateid(stateid)?;
    cx.server.state.check_stateid(cx.minor, &stateid, &Fh::Export(n.fh), IoAccess::Read)?;
    if node::permitted(cx, &at, ACCESS4_READ | ACCESS4_EXECUTE) == 0 {
        return Err(Status::ACCESS);
    }
    Ok(n)
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(|_| Status::BADXDR)?;
    let n = file_for_io(cx, args.stateid)?;
    let count = args.count.min(IO_BYTES_MAX);
    let engine = cx.server.exports.engine();
    let reply = engine.read(&n.fh, args.offset, u64::from(count)).await.map_err(|e| from_engine(&e))?;
    w.put_bool(reply.eof);
    w.put_data(reply.chunks);
    Ok(())
}
