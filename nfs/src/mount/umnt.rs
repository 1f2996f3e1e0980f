//! UMNT (procedure 3): forgets the caller's mount of a path. No results.

use crate::mount::{decode_path, Mount};
use crate::service::Call;
use crate::xdr::{Reader, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub dirpath: &'a [u8],
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { dirpath: decode_path(r)? })
    }
}

pub fn serve(mount: &Mount, call: &Call<'_>) -> Result<()> {
    let args = Args::decode(&mut Reader::new(call.args))?;
    let path = String::from_utf8_lossy(args.dirpath).into_owned();
    tracing::debug!(peer = %call.conn.peer, path, "unmounted");
    mount.mounts().remove(&(call.conn.peer.ip().to_string(), path));
    Ok(())
}
