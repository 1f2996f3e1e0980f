//! STAND-IN for the agreed state API until the state work is merged: DELETE this file (and its
//! `mod` line in ops/mod.rs) then, and import `IoAccess` from `crate::v4::state` in read.rs,
//! read_plus.rs and seek.rs. Only the special stateids are known here.

use crate::v4::fh::Fh;
use crate::v4::state::{State, Stateid};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

/// What an I/O operation does with a stateid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoAccess {
    Read,
    Write,
}

impl Stateid {
    pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Stateid> {
        let seqid = r.u32("stateid seqid")?;
        let b = r.opaque_fixed("stateid other", 12)?;
        let mut other = [0u8; 12];
        other.copy_from_slice(b);
        Ok(Stateid { seqid, other })
    }

    pub fn encode(&self, w: &mut Writer) {
        w.put_u32(self.seqid);
        w.put_opaque_fixed(&self.other);
    }
}

impl State {
    /// Anonymous (all zero) and READ-bypass (all ones) stateids are allowed for reads;
    /// no other stateid is known to this stand-in.
    pub fn check_stateid(&self, _minor: u32, s: &Stateid, _fh: &Fh, access: IoAccess) -> Result<(), Status> {
        let anonymous = s.seqid == 0 && s.other == [0; 12];
        let bypass = s.seqid == u32::MAX && s.other == [0xff; 12];
        if anonymous || (bypass && access == IoAccess::Read) {
            Ok(())
        } else {
            Err(Status::BAD_STATEID)
        }
    }
}

impl Compound<'_> {
    /// The NFSv4.1 "current stateid" (seqid 1, other zero) is the compound's current stateid.
    pub fn resolve_stateid(&self, s: Stateid) -> Result<Stateid, Status> {
        if self.minor >= 1 && s.seqid == 1 && s.other == [0; 12] {
            self.current_stateid.ok_or(Status::BAD_STATEID)
        } else {
            Ok(s)
        }
    }
}
