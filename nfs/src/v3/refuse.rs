//! The modifying procedures until the write path exists: after their arguments decode and
//! their handles resolve (so a bad handle still gets BADHANDLE or STALE, a client outside the
//! export ACCES), a read-only export answers NFS3ERR_ROFS and a read-write one
//! NFS3ERR_NOTSUPP.

use crate::v3::attrs::Fattr3;
use crate::v3::types::Nfsstat3;
use crate::v3::Ctx;

/// Why a modifying procedure was refused, and the attributes of the objects it named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub stat: Nfsstat3,
    /// One per handle, in the order given; `None` for a handle that did not resolve.
    pub attrs: Vec<Option<Fattr3>>,
}

impl Refusal {
    pub fn attr(&self, i: usize) -> Option<&Fattr3> {
        self.attrs.get(i).and_then(|a| a.as_ref())
    }
}

/// Refuses procedure `proc_` on the objects `fhs` name.
pub fn refuse(ctx: &Ctx<'_>, proc_: &'static str, fhs: &[&[u8]]) -> Refusal {
    let mut first_failure = None;
    let mut writable = true;
    let mut attrs = Vec::with_capacity(fhs.len());
    for fh in fhs {
        match ctx.target(proc_, fh) {
            Ok(t) => {
                writable &= t.access.may_write();
                attrs.push(Some(t.fattr()));
            }
            Err(f) => {
                first_failure.get_or_insert(f.stat);
                attrs.push(None);
            }
        }
    }
    let stat = first_failure.unwrap_or(if writable { Nfsstat3::Notsupp } else { Nfsstat3::Rofs });
    tracing::debug!(proc_, ?stat, peer = %ctx.call.conn.peer, "modifying procedure refused");
    Refusal { stat, attrs }
}
