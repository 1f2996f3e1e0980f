//! EXCHANGE_ID (RFC 8881 section 18.35): a client record by owner and verifier.
//!
//! SP4_NONE only: SP4_MACH_CRED answers NFS4ERR_NOTSUPP (the Linux client then retries with
//! SP4_NONE), SP4_SSV NFS4ERR_ENCR_ALG_UNSUPP. The server is never a pNFS server
//! (EXCHGID4_FLAG_USE_NON_PNFS); server_owner and server_scope come from the state's persisted
//! server id, so they stay the same across restarts.

use crate::v4::state::client::ExchangeIdOk;
use crate::v4::state::{badxdr, wire, OPAQUE_BYTES_MAX};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub const EXCHGID4_FLAG_SUPP_MOVED_REFER: u32 = 0x0000_0001;
pub const EXCHGID4_FLAG_SUPP_MOVED_MIGR: u32 = 0x0000_0002;
pub const EXCHGID4_FLAG_BIND_PRINC_STATEID: u32 = 0x0000_0100;
pub const EXCHGID4_FLAG_USE_NON_PNFS: u32 = 0x0001_0000;
pub const EXCHGID4_FLAG_USE_PNFS_MDS: u32 = 0x0002_0000;
pub const EXCHGID4_FLAG_USE_PNFS_DS: u32 = 0x0004_0000;
pub const EXCHGID4_FLAG_UPD_CONFIRMED_REC_A: u32 = 0x4000_0000;
pub const EXCHGID4_FLAG_CONFIRMED_R: u32 = 0x8000_0000;
/// Flags a client may send.
pub const EXCHGID4_FLAG_MASK_A: u32 = 0x4007_0103;
/// NFS4ERR_ENCR_ALG_UNSUPP.
pub const ENCR_ALG_UNSUPP: Status = Status(10079);
/// Longest implementation id strings accepted.
pub const IMPL_ID_BYTES_MAX: usize = 1024;
/// sec_oid4 entries accepted in an SSV request.
pub const OIDS_MAX: usize = 16;

/// state_protect4_a.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateProtect {
    None,
    MachCred {
        enforce: Vec<u32>,
        allow: Vec<u32>,
    },
    Ssv {
        enforce: Vec<u32>,
        allow: Vec<u32>,
        hash_algs: Vec<Vec<u8>>,
        encr_algs: Vec<Vec<u8>>,
        window: u32,
        handles: u32,
    },
}

/// nfs_impl_id4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImplId {
    pub domain: Vec<u8>,
    pub name: Vec<u8>,
    pub date_s: i64,
    pub date_ns: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub verifier: [u8; 8],
    pub owner: Vec<u8>,
    pub flags: u32,
    pub protect: StateProtect,
    pub impl_id: Option<ImplId>,
}

fn oids(r: &mut Reader<'_>, what: &'static str) -> xdr::Result<Vec<Vec<u8>>> {
    let n = r.array_len(what, OIDS_MAX, 4)?;
    (0..n).map(|_| r.opaque(what, OPAQUE_BYTES_MAX).map(<[u8]>::to_vec)).collect()
}

fn put_oids(w: &mut Writer, v: &[Vec<u8>]) {
    w.put_u32(v.len() as u32);
    for o in v {
        w.put_opaque(o);
    }
}

fn impl_id(r: &mut Reader<'_>) -> xdr::Result<ImplId> {
    Ok(ImplId {
        domain: r.opaque("nii_domain", IMPL_ID_BYTES_MAX)?.to_vec(),
        name: r.opaque("nii_name", IMPL_ID_BYTES_MAX)?.to_vec(),
        date_s: r.i64("nii_date seconds")?,
        date_ns: r.u32("nii_date nseconds")?,
    })
}

fn put_impl_id(w: &mut Writer, i: &ImplId) {
    w.put_opaque(&i.domain);
    w.put_opaque(&i.name);
    w.put_i64(i.date_s);
    w.put_u32(i.date_ns);
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    let verifier = wire::verifier(r, "co_verifier")?;
    let owner = r.opaque("co_ownerid", OPAQUE_BYTES_MAX)?.to_vec();
    let flags = r.u32("eia_flags")?;
    let protect = match r.u32("spa_how")? {
        0 => StateProtect::None,
        1 => StateProtect::MachCred {
            enforce: wire::bitmap(r, "spo_must_enforce")?,
            allow: wire::bitmap(r, "spo_must_allow")?,
        },
        2 => StateProtect::Ssv {
            enforce: wire::bitmap(r, "spo_must_enforce")?,
            allow: wire::bitmap(r, "spo_must_allow")?,
            hash_algs: oids(r, "ssp_hash_algs")?,
            encr_algs: oids(r, "ssp_encr_algs")?,
            window: r.u32("ssp_window")?,
            handles: r.u32("ssp_num_gss_handles")?,
        },
        _ => return Err(r.error("spa_how", "unknown state protection")),
    };
    let impl_id = match r.array_len("eia_client_impl_id", 1, 20)? {
        0 => None,
        _ => Some(impl_id(r)?),
    };
    Ok(Args { verifier, owner, flags, protect, impl_id })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        w.put_opaque_fixed(&self.verifier);
        w.put_opaque(&self.owner);
        w.put_u32(self.flags);
        match &self.protect {
            StateProtect::None => w.put_u32(0),
            StateProtect::MachCred { enforce, allow } => {
                w.put_u32(1);
                wire::put_bitmap(w, enforce);
                wire::put_bitmap(w, allow);
            }
            StateProtect::Ssv { enforce, allow, hash_algs, encr_algs, window, handles } => {
                w.put_u32(2);
                wire::put_bitmap(w, enforce);
                wire::put_bitmap(w, allow);
                put_oids(w, hash_algs);
                put_oids(w, encr_algs);
                w.put_u32(*window);
                w.put_u32(*handles);
            }
        }
        match &self.impl_id {
            None => w.put_u32(0),
            Some(i) => {
                w.put_u32(1);
                put_impl_id(w, i);
            }
        }
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    if args.flags & !EXCHGID4_FLAG_MASK_A != 0 {
        return Err(Status::INVAL);
    }
    match args.protect {
        StateProtect::None => {}
        StateProtect::MachCred { .. } => return Err(Status::NOTSUPP),
        StateProtect::Ssv { .. } => return Err(ENCR_ALG_UNSUPP),
    }
    let update = args.flags & EXCHGID4_FLAG_UPD_CONFIRMED_REC_A != 0;
    let state = cx.state();
    let ok = state.exchange_id(&args.owner, args.verifier, cx.minor, update)?;
    tracing::debug!(peer = %cx.conn.peer, clientid = ok.clientid.0, confirmed = ok.confirmed, "EXCHANGE_ID");
    encode_resok(w, &ok, &state.server_owner());
    Ok(())
}

/// EXCHANGE_ID4resok.
pub fn encode_resok(w: &mut Writer, ok: &ExchangeIdOk, server_owner: &[u8]) {
    w.put_u64(ok.clientid.0);
    w.put_u32(ok.sequenceid);
    let confirmed = if ok.confirmed { EXCHGID4_FLAG_CONFIRMED_R } else { 0 };
    w.put_u32(EXCHGID4_FLAG_USE_NON_PNFS | confirmed);
    w.put_u32(0); // SP4_NONE
    w.put_u64(0); // so_minor_id
    w.put_opaque(server_owner); // so_major_id
    w.put_opaque(server_owner); // eir_server_scope
    w.put_u32(1);
    put_impl_id(
        w,
        &ImplId {
            domain: b"bucketfs".to_vec(),
            name: format!("bucketfs {}", env!("CARGO_PKG_VERSION")).into_bytes(),
            date_s: 0,
            date_ns: 0,
        },
    );
}
