//! NFSv4 file handles: an engine handle (29 bytes, persistent across restarts), or a directory
//! of the pseudo-filesystem (5 bytes: tag + node id; rebuilt identically from the same export list).

use engine::FileHandle;

/// The first byte of a pseudo-filesystem handle; engine handles start with their own version byte.
pub const PSEUDO_TAG: u8 = 0xF5;
/// nfs_fh4 is at most 128 bytes (NFS4_FHSIZE).
pub const FH_BYTES_MAX: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fh {
    Pseudo(u32),
    Export(FileHandle),
}

impl Fh {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Fh::Pseudo(id) => {
                let mut v = vec![PSEUDO_TAG];
                v.extend_from_slice(&id.to_be_bytes());
                v
            }
            Fh::Export(fh) => fh.encode().to_vec(),
        }
    }

    /// `None` for bytes that are no handle of ours (NFS4ERR_BADHANDLE).
    pub fn decode(b: &[u8]) -> Option<Fh> {
        if b.len() == 5 && b.first() == Some(&PSEUDO_TAG) {
            let id = u32::from_be_bytes([b[1], b[2], b[3], b[4]]);
            return Some(Fh::Pseudo(id));
        }
        FileHandle::decode(b).map(Fh::Export)
    }
}
