//! NFSv4 operations: numbers, which minor version has them, and the dispatch table. One file per
//! operation: `decode` reads its arguments (also used by the fuzz target), `op` runs it and writes
//! its results (after the status, which the COMPOUND loop writes).
//!
//! The write path is served on the engine's write API: OPEN with create, WRITE, COMMIT, CREATE
//! (directories, symbolic links), REMOVE, RENAME, SETATTR, and in 4.2 ALLOCATE and DEALLOCATE;
//! every changing operation answers NFS4ERR_ROFS on a read-only export (and in the
//! pseudo-filesystem) before anything else (`v4/change.rs`). LINK is NFS4ERR_NOTSUPP (one object
//! per file cannot have two names). Byte-range locks (LOCK, LOCKT, LOCKU, RELEASE_LOCKOWNER) are
//! served from the engine's lock manager. Not served: OPENATTR, pNFS, delegations, server-side
//! copy, WRITE_SAME, CLONE: NFS4ERR_NOTSUPP.

pub mod access;
pub mod allocate;
pub mod backchannel_ctl;
pub mod bind_conn_to_session;
pub mod close;
pub mod commit;
pub mod create;
pub mod create_session;
pub mod deallocate;
pub mod delegpurge;
pub mod delegreturn;
pub mod destroy_clientid;
pub mod destroy_session;
pub mod exchange_id;
pub mod free_stateid;
pub mod getattr;
pub mod getfh;
pub mod link;
pub mod lock;
pub mod lockt;
pub mod locku;
pub mod lookup;
pub mod lookupp;
pub mod nverify;
pub mod open;
pub mod open_confirm;
pub mod open_downgrade;
pub mod putfh;
pub mod putpubfh;
pub mod putrootfh;
pub mod read;
pub mod read_plus;
pub mod readdir;
pub mod readlink;
pub mod reclaim_complete;
pub mod release_lockowner;
pub mod remove;
pub mod rename;
pub mod renew;
pub mod restorefh;
pub mod savefh;
pub mod secinfo;
pub mod secinfo_no_name;
pub mod seek;
pub mod sequence;
pub mod setattr;
pub mod setclientid;
pub mod setclientid_confirm;
pub mod test_stateid;
pub mod verify;
pub mod write;

use crate::xdr::{self, Reader, Writer};

use super::{Compound, Status};

pub const ACCESS: u32 = 3;
pub const CLOSE: u32 = 4;
pub const COMMIT: u32 = 5;
pub const CREATE: u32 = 6;
pub const DELEGPURGE: u32 = 7;
pub const DELEGRETURN: u32 = 8;
pub const GETATTR: u32 = 9;
pub const GETFH: u32 = 10;
pub const LINK: u32 = 11;
pub const LOCK: u32 = 12;
pub const LOCKT: u32 = 13;
pub const LOCKU: u32 = 14;
pub const LOOKUP: u32 = 15;
pub const LOOKUPP: u32 = 16;
pub const NVERIFY: u32 = 17;
pub const OPEN: u32 = 18;
pub const OPENATTR: u32 = 19;
pub const OPEN_CONFIRM: u32 = 20;
pub const OPEN_DOWNGRADE: u32 = 21;
pub const PUTFH: u32 = 22;
pub const PUTPUBFH: u32 = 23;
pub const PUTROOTFH: u32 = 24;
pub const READ: u32 = 25;
pub const READDIR: u32 = 26;
pub const READLINK: u32 = 27;
pub const REMOVE: u32 = 28;
pub const RENAME: u32 = 29;
pub const RENEW: u32 = 30;
pub const RESTOREFH: u32 = 31;
pub const SAVEFH: u32 = 32;
pub const SECINFO: u32 = 33;
pub const SETATTR: u32 = 34;
pub const SETCLIENTID: u32 = 35;
pub const SETCLIENTID_CONFIRM: u32 = 36;
pub const VERIFY: u32 = 37;
pub const WRITE: u32 = 38;
pub const RELEASE_LOCKOWNER: u32 = 39;
pub const BACKCHANNEL_CTL: u32 = 40;
pub const BIND_CONN_TO_SESSION: u32 = 41;
pub const EXCHANGE_ID: u32 = 42;
pub const CREATE_SESSION: u32 = 43;
pub const DESTROY_SESSION: u32 = 44;
pub const FREE_STATEID: u32 = 45;
pub const GET_DIR_DELEGATION: u32 = 46;
pub const GETDEVICEINFO: u32 = 47;
pub const GETDEVICELIST: u32 = 48;
pub const LAYOUTCOMMIT: u32 = 49;
pub const LAYOUTGET: u32 = 50;
pub const LAYOUTRETURN: u32 = 51;
pub const SECINFO_NO_NAME: u32 = 52;
pub const SEQUENCE: u32 = 53;
pub const SET_SSV: u32 = 54;
pub const TEST_STATEID: u32 = 55;
pub const WANT_DELEGATION: u32 = 56;
pub const DESTROY_CLIENTID: u32 = 57;
pub const RECLAIM_COMPLETE: u32 = 58;
pub const ALLOCATE: u32 = 59;
pub const COPY: u32 = 60;
pub const COPY_NOTIFY: u32 = 61;
pub const DEALLOCATE: u32 = 62;
pub const IO_ADVISE: u32 = 63;
pub const LAYOUTERROR: u32 = 64;
pub const LAYOUTSTATS: u32 = 65;
pub const OFFLOAD_CANCEL: u32 = 66;
pub const OFFLOAD_STATUS: u32 = 67;
pub const READ_PLUS: u32 = 68;
pub const SEEK: u32 = 69;
pub const WRITE_SAME: u32 = 70;
pub const CLONE: u32 = 71;
pub const OP_ILLEGAL: u32 = 10044;

/// Whether `opnum` is an operation of minor version `minor`.
pub fn is_valid(minor: u32, opnum: u32) -> bool {
    match minor {
        0 => (ACCESS..=RELEASE_LOCKOWNER).contains(&opnum),
        1 => (ACCESS..=RECLAIM_COMPLETE).contains(&opnum),
        _ => (ACCESS..=CLONE).contains(&opnum),
    }
}

/// Operations of NFSv4.0 that NFSv4.1 removed (RFC 8881 section 18: "MUST NOT be used").
fn removed_in_4_1(opnum: u32) -> bool {
    matches!(opnum, OPEN_CONFIRM | RENEW | SETCLIENTID | SETCLIENTID_CONFIRM | RELEASE_LOCKOWNER)
}

/// Runs one operation.
pub async fn dispatch(cx: &mut Compound<'_>, opnum: u32, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    if !is_valid(cx.minor, opnum) {
        return Err(Status::OP_ILLEGAL);
    }
    if cx.minor >= 1 && removed_in_4_1(opnum) {
        return Err(Status::NOTSUPP);
    }
    match opnum {
        ACCESS => access::op(cx, r, w).await,
        CLOSE => close::op(cx, r, w).await,
        COMMIT => commit::op(cx, r, w).await,
        CREATE => create::op(cx, r, w).await,
        DELEGPURGE => delegpurge::op(cx, r, w).await,
        DELEGRETURN => delegreturn::op(cx, r, w).await,
        GETATTR => getattr::op(cx, r, w).await,
        GETFH => getfh::op(cx, r, w).await,
        LINK => link::op(cx, r, w).await,
        LOCK => lock::op(cx, r, w).await,
        LOCKT => lockt::op(cx, r, w).await,
        LOCKU => locku::op(cx, r, w).await,
        LOOKUP => lookup::op(cx, r, w).await,
        LOOKUPP => lookupp::op(cx, r, w).await,
        NVERIFY => nverify::op(cx, r, w).await,
        OPEN => open::op(cx, r, w).await,
        OPEN_CONFIRM => open_confirm::op(cx, r, w).await,
        OPEN_DOWNGRADE => open_downgrade::op(cx, r, w).await,
        PUTFH => putfh::op(cx, r, w).await,
        PUTPUBFH => putpubfh::op(cx, r, w).await,
        PUTROOTFH => putrootfh::op(cx, r, w).await,
        READ => read::op(cx, r, w).await,
        READDIR => readdir::op(cx, r, w).await,
        READLINK => readlink::op(cx, r, w).await,
        REMOVE => remove::op(cx, r, w).await,
        RENAME => rename::op(cx, r, w).await,
        RENEW => renew::op(cx, r, w).await,
        RESTOREFH => restorefh::op(cx, r, w).await,
        SAVEFH => savefh::op(cx, r, w).await,
        SECINFO => secinfo::op(cx, r, w).await,
        SETATTR => setattr::op(cx, r, w).await,
        SETCLIENTID => setclientid::op(cx, r, w).await,
        SETCLIENTID_CONFIRM => setclientid_confirm::op(cx, r, w).await,
        VERIFY => verify::op(cx, r, w).await,
        WRITE => write::op(cx, r, w).await,
        RELEASE_LOCKOWNER => release_lockowner::op(cx, r, w).await,
        BACKCHANNEL_CTL => backchannel_ctl::op(cx, r, w).await,
        BIND_CONN_TO_SESSION => bind_conn_to_session::op(cx, r, w).await,
        EXCHANGE_ID => exchange_id::op(cx, r, w).await,
        CREATE_SESSION => create_session::op(cx, r, w).await,
        DESTROY_SESSION => destroy_session::op(cx, r, w).await,
        FREE_STATEID => free_stateid::op(cx, r, w).await,
        SECINFO_NO_NAME => secinfo_no_name::op(cx, r, w).await,
        SEQUENCE => sequence::op(cx, r, w).await,
        TEST_STATEID => test_stateid::op(cx, r, w).await,
        DESTROY_CLIENTID => destroy_clientid::op(cx, r, w).await,
        RECLAIM_COMPLETE => reclaim_complete::op(cx, r, w).await,
        ALLOCATE => allocate::op(cx, r, w).await,
        DEALLOCATE => deallocate::op(cx, r, w).await,
        READ_PLUS => read_plus::op(cx, r, w).await,
        SEEK => seek::op(cx, r, w).await,
        OPENATTR | GET_DIR_DELEGATION | GETDEVICEINFO | GETDEVICELIST | LAYOUTCOMMIT | LAYOUTGET | LAYOUTRETURN
        | SET_SSV | WANT_DELEGATION | COPY | COPY_NOTIFY | IO_ADVISE | LAYOUTERROR | LAYOUTSTATS | OFFLOAD_CANCEL
        | OFFLOAD_STATUS | WRITE_SAME | CLONE => not_served(cx, opnum),
        _ => Err(Status::OP_ILLEGAL),
    }
}

/// Decodes one operation's arguments and drops them (fuzzing).
pub fn decode_args(minor: u32, opnum: u32, r: &mut Reader<'_>) -> xdr::Result<()> {
    if !is_valid(minor, opnum) {
        return Err(r.error("op number", "not an operation of this minor version"));
    }
    match opnum {
        ACCESS => access::decode(r).map(drop),
        CLOSE => close::decode(r).map(drop),
        COMMIT => commit::decode(r).map(drop),
        CREATE => create::decode(r).map(drop),
        DELEGPURGE => delegpurge::decode(r).map(drop),
        DELEGRETURN => delegreturn::decode(r).map(drop),
        GETATTR => getattr::decode(r).map(drop),
        GETFH => getfh::decode(r).map(drop),
        LINK => link::decode(r).map(drop),
        LOCK => lock::decode(r).map(drop),
        LOCKT => lockt::decode(r).map(drop),
        LOCKU => locku::decode(r).map(drop),
        LOOKUP => lookup::decode(r).map(drop),
        LOOKUPP => lookupp::decode(r).map(drop),
        NVERIFY => nverify::decode(r).map(drop),
        OPEN => open::decode(r).map(drop),
        OPEN_CONFIRM => open_confirm::decode(r).map(drop),
        OPEN_DOWNGRADE => open_downgrade::decode(r).map(drop),
        PUTFH => putfh::decode(r).map(drop),
        PUTPUBFH => putpubfh::decode(r).map(drop),
        PUTROOTFH => putrootfh::decode(r).map(drop),
        READ => read::decode(r).map(drop),
        READDIR => readdir::decode(r).map(drop),
        READLINK => readlink::decode(r).map(drop),
        REMOVE => remove::decode(r).map(drop),
        RENAME => rename::decode(r).map(drop),
        RENEW => renew::decode(r).map(drop),
        RESTOREFH => restorefh::decode(r).map(drop),
        SAVEFH => savefh::decode(r).map(drop),
        SECINFO => secinfo::decode(r).map(drop),
        SETATTR => setattr::decode(r).map(drop),
        SETCLIENTID => setclientid::decode(r).map(drop),
        SETCLIENTID_CONFIRM => setclientid_confirm::decode(r).map(drop),
        VERIFY => verify::decode(r).map(drop),
        WRITE => write::decode(r).map(drop),
        RELEASE_LOCKOWNER => release_lockowner::decode(r).map(drop),
        BACKCHANNEL_CTL => backchannel_ctl::decode(r).map(drop),
        BIND_CONN_TO_SESSION => bind_conn_to_session::decode(r).map(drop),
        EXCHANGE_ID => exchange_id::decode(r).map(drop),
        CREATE_SESSION => create_session::decode(r).map(drop),
        DESTROY_SESSION => destroy_session::decode(r).map(drop),
        FREE_STATEID => free_stateid::decode(r).map(drop),
        SECINFO_NO_NAME => secinfo_no_name::decode(r).map(drop),
        SEQUENCE => sequence::decode(r).map(drop),
        TEST_STATEID => test_stateid::decode(r).map(drop),
        DESTROY_CLIENTID => destroy_clientid::decode(r).map(drop),
        RECLAIM_COMPLETE => reclaim_complete::decode(r).map(drop),
        ALLOCATE => allocate::decode(r).map(drop),
        DEALLOCATE => deallocate::decode(r).map(drop),
        READ_PLUS => read_plus::decode(r).map(drop),
        SEEK => seek::decode(r).map(drop),
        _ => Err(r.error("op number", "operation not served")),
    }
}

fn not_served(cx: &Compound<'_>, opnum: u32) -> Result<(), Status> {
    tracing::debug!(peer = %cx.conn.peer, opnum, "NFSv4 operation not served yet");
    Err(Status::NOTSUPP)
}
