//! MNT (procedure 1): the root handle of the export at a path, or of a directory below an
//! export (`/data/sub`). MNT3ERR_NOENT for a path under no export or naming nothing,
//! MNT3ERR_ACCES for a client outside the export's client list, MNT3ERR_NOTDIR for a file.

use engine::meta::Kind;
use engine::{EngineError, FileHandle};

use crate::export::{Access, NfsExport};
use crate::mount::{decode_path, Mount, MountStat, MOUNTS_MAX};
use crate::rpc::{AUTH_NONE, AUTH_SYS};
use crate::service::Call;
use crate::xdr::{Reader, Result, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    pub dirpath: &'a [u8],
}

impl<'a> Args<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Args<'a>> {
        Ok(Args { dirpath: decode_path(r)? })
    }
}

pub async fn serve(mount: &Mount, call: &Call<'_>, w: &mut Writer) -> Result<()> {
    let args = Args::decode(&mut Reader::new(call.args))?;
    match mnt(mount, call, args.dirpath).await {
        Ok(fh) => {
            w.put_u32(MountStat::Ok as u32);
            w.put_opaque(&fh.encode());
            w.put_u32(2);
            w.put_u32(AUTH_SYS);
            w.put_u32(AUTH_NONE);
        }
        Err(stat) => w.put_u32(stat as u32),
    }
    Ok(())
}

/// The export a path is in (the longest export path that is the path or a parent of it), and
/// the rest of the path below it.
pub fn export_of<'e, 'p>(mount: &'e Mount, path: &'p str) -> Option<(&'e NfsExport, &'p str)> {
    mount
        .exports()
        .iter()
        .filter_map(|e| {
            let rest = path.strip_prefix(e.policy.path.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((e, rest))
        })
        .max_by_key(|(e, _)| e.policy.path.len())
}

async fn mnt(mount: &Mount, call: &Call<'_>, dirpath: &[u8]) -> std::result::Result<FileHandle, MountStat> {
    let peer = call.conn.peer.ip();
    let path = std::str::from_utf8(dirpath).map_err(|_| MountStat::Noent)?;
    let (export, rest) = export_of(mount, path).ok_or(MountStat::Noent)?;
    if export.access(peer) == Access::Denied {
        tracing::info!(%peer, path, "MOUNT refused: client not in the export's client list");
        return Err(MountStat::Acces);
    }
    let rec = export.ns.lookup_path(rest).await.map_err(|e| {
        let stat = match e {
            EngineError::NotFound { .. } | EngineError::Invalid { .. } => MountStat::Noent,
            EngineError::NotADirectory { .. } => MountStat::Notdir,
            _ => MountStat::Io,
        };
        tracing::debug!(%peer, path, error = %e, ?stat, "MOUNT failed");
        stat
    })?;
    if rec.kind != Kind::Dir {
        return Err(MountStat::Notdir);
    }
    let mut mounts = mount.mounts();
    if mounts.len() < MOUNTS_MAX {
        mounts.insert((peer.to_string(), path.to_string()));
    }
    tracing::debug!(%peer, path, "mounted");
    Ok(export.ns.handle(&rec))
}
