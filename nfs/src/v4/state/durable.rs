//! The durable client records: which clients held state before a restart (so they may reclaim
//! it during the grace period), the boot epoch (so stale ids are recognised) and the server id
//! (so server_owner and server_scope stay the same).
//!
//! One small file, `nfs4-clients`, in the state directory, XDR-encoded, rewritten whole and
//! atomically: write a temporary file, fsync it, rename it over the old one, fsync the directory.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::xdr::{Reader, Writer};

use super::OPAQUE_BYTES_MAX;

pub const FILE_NAME: &str = "nfs4-clients";
const TMP_NAME: &str = "nfs4-clients.tmp";
const MAGIC: u32 = 0x4246_5334; // "BFS4"
const VERSION: u32 = 1;
const TRAILER: u32 = 0x454E_4421; // "END!"
/// Records at most in a file we read back.
pub const RECORDS_MAX: usize = 1 << 20;

/// A client that held state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// co_ownerid (4.1) or nfs_client_id4.id (4.0).
    pub owner: Vec<u8>,
    /// 0 for a SETCLIENTID client, the minor version for an EXCHANGE_ID one.
    pub minor: u32,
    /// The client said RECLAIM_COMPLETE in that boot (4.1).
    pub reclaim_complete: bool,
}

impl Record {
    /// Whether this client may reclaim after the restart. A 4.1 client that had not finished
    /// reclaiming when the server went down again may not (RFC 8881 section 8.4.3, edge
    /// condition 1); a 4.0 client has no way to say so and always may.
    pub fn may_reclaim(&self) -> bool {
        self.minor == 0 || self.reclaim_complete
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub epoch: u32,
    pub server_id: u64,
    pub records: Vec<Record>,
}

pub fn encode(f: &File) -> Vec<u8> {
    let mut w = Writer::new();
    w.put_u32(MAGIC);
    w.put_u32(VERSION);
    w.put_u32(f.epoch);
    w.put_u64(f.server_id);
    w.put_u32(u32::try_from(f.records.len()).unwrap_or(u32::MAX));
    for r in &f.records {
        w.put_opaque(&r.owner);
        w.put_u32(r.minor);
        w.put_bool(r.reclaim_complete);
    }
    w.put_u32(TRAILER);
    w.to_vec()
}

pub fn decode(b: &[u8]) -> crate::xdr::Result<File> {
    let mut r = Reader::new(b);
    if r.u32("records magic")? != MAGIC {
        return Err(r.error("records magic", "not a bucketfs NFSv4 client records file"));
    }
    if r.u32("records version")? != VERSION {
        return Err(r.error("records version", "unknown version"));
    }
    let epoch = r.u32("records epoch")?;
    let server_id = r.u64("records server id")?;
    let n = r.array_len("records", RECORDS_MAX, 12)?;
    let mut records = Vec::with_capacity(n);
    for _ in 0..n {
        let owner = r.opaque("record owner", OPAQUE_BYTES_MAX)?.to_vec();
        let minor = r.u32("record minor")?;
        let reclaim_complete = r.bool("record reclaim complete")?;
        records.push(Record { owner, minor, reclaim_complete });
    }
    if r.u32("records trailer")? != TRAILER || r.remaining() != 0 {
        return Err(r.error("records trailer", "file does not end where it should"));
    }
    Ok(File { epoch, server_id, records })
}

/// Reads the records file; `None` if there is none yet.
pub fn load(dir: &Path) -> io::Result<Option<File>> {
    let path = dir.join(FILE_NAME);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io::Error::new(e.kind(), format!("reading {}: {e}", path.display()))),
    };
    decode(&bytes).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
}

/// Replaces the records file atomically and durably.
pub fn store(dir: &Path, f: &File) -> io::Result<()> {
    let tmp = dir.join(TMP_NAME);
    let path = dir.join(FILE_NAME);
    let ctx = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what} {}: {e}", tmp.display()));
    let mut file = fs::File::create(&tmp).map_err(|e| ctx("creating", e))?;
    file.write_all(&encode(f)).map_err(|e| ctx("writing", e))?;
    file.sync_all().map_err(|e| ctx("syncing", e))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| ctx("renaming", e))?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| ctx("syncing the directory of", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> File {
        File {
            epoch: 1_700_000_000,
            server_id: 0x0123_4567_89AB_CDEF,
            records: vec![
                Record { owner: b"Linux NFSv4.2 host-a".to_vec(), minor: 2, reclaim_complete: true },
                Record { owner: b"libnfs".to_vec(), minor: 0, reclaim_complete: false },
            ],
        }
    }

    #[test]
    fn store_then_load() {
        let dir = std::env::temp_dir().join(format!("bucketfs-nfs4-durable-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(load(&dir).unwrap(), None);
        store(&dir, &sample()).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(sample()));
        let mut next = sample();
        next.records.pop();
        store(&dir, &next).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(next));
        assert!(!dir.join(TMP_NAME).exists());
        fs::write(dir.join(FILE_NAME), &encode(&sample())[..20]).unwrap();
        assert_eq!(load(&dir).unwrap_err().kind(), io::ErrorKind::InvalidData);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reclaim_eligibility() {
        let f = sample();
        assert!(f.records[0].may_reclaim() && f.records[1].may_reclaim());
        assert!(!Record { owner: vec![1], minor: 1, reclaim_complete: false }.may_reclaim());
    }

    proptest! {
        #[test]
        fn truncated_or_garbage_never_panics(cut in 0usize..80, junk in proptest::collection::vec(any::<u8>(), 0..64)) {
            let b = encode(&sample());
            prop_assert!(decode(&b[..cut.min(b.len() - 1)]).is_err());
            let _ = decode(&junk);
        }
    }
}
