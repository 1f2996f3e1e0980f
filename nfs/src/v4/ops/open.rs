//! OPEN (RFC 8881 section 18.16, RFC 7530 section 16.16): an open stateid for a file, with
//! share reservations.
//!
//! Claims: CLAIM_NULL (a name in the current directory; the current file handle becomes the
//! file), CLAIM_FH (4.1: the current file handle), CLAIM_PREVIOUS (reclaim after a restart,
//! during the grace period, by a client of the previous boot); the delegation claims answer
//! NFS4ERR_NOTSUPP (no delegations are ever granted). During grace, CLAIM_NULL and CLAIM_FH
//! answer NFS4ERR_GRACE.
//!
//! Decisions, until the write path exists:
//! - OPEN4_CREATE: an existing file with UNCHECKED4 and no size in the attributes is a plain
//!   open; GUARDED4 or EXCLUSIVE* of an existing file → NFS4ERR_EXIST; anything that would
//!   create or truncate → NFS4ERR_ROFS on a read-only export, else NFS4ERR_NOTSUPP.
//! - WRITE access is granted on a read-write export (fio opens O_RDWR without writing); on a
//!   read-only export it answers NFS4ERR_ROFS.
//! - Permissions: the file's mode against the caller's uid/gids (after root squash); read is
//!   allowed with the r or the x bit (a client reads to execute), write needs w.
//! - Directories → NFS4ERR_ISDIR (pseudo-filesystem directories too), missing → NFS4ERR_NOENT.
//!
//! Results: the stateid, change_info of the directory (before = after: nothing changed),
//! rflags OPEN4_RESULT_LOCKTYPE_POSIX (+ OPEN4_RESULT_CONFIRM for a new 4.0 open-owner), no
//! attributes set, no delegation (4.1 with "want" bits: OPEN_DELEGATE_NONE_EXT with
//! WND4_NOT_WANTED, WND4_CANCELLED or WND4_NOT_SUPP_FTYPE).

use engine::namespace::invalid_name;
use engine::{EngineError, FileHandle};

use crate::export::Access;
use crate::rpc::Auth;
use crate::v4::fh::Fh;
use crate::v4::pseudo::PseudoEntry;
use crate::v4::state::client::ClientId;
use crate::v4::state::open::{OpenOwnerKey, OpenReq, SeqidCheck, ShareAccess};
use crate::v4::state::{badxdr, wire, Stateid, OPAQUE_BYTES_MAX};
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

pub const OPEN4_NOCREATE: u32 = 0;
pub const OPEN4_CREATE: u32 = 1;

pub const UNCHECKED4: u32 = 0;
pub const GUARDED4: u32 = 1;
pub const EXCLUSIVE4: u32 = 2;
pub const EXCLUSIVE4_1: u32 = 3;

pub const CLAIM_NULL: u32 = 0;
pub const CLAIM_PREVIOUS: u32 = 1;
pub const CLAIM_DELEGATE_CUR: u32 = 2;
pub const CLAIM_DELEGATE_PREV: u32 = 3;
pub const CLAIM_FH: u32 = 4;
pub const CLAIM_DELEG_PREV_FH: u32 = 5;
pub const CLAIM_DELEG_CUR_FH: u32 = 6;

pub const OPEN4_SHARE_ACCESS_WANT_DELEG_MASK: u32 = 0xFF00;
pub const OPEN4_SHARE_ACCESS_WANT_NO_PREFERENCE: u32 = 0x0000;
pub const OPEN4_SHARE_ACCESS_WANT_NO_DELEG: u32 = 0x0400;
pub const OPEN4_SHARE_ACCESS_WANT_CANCEL: u32 = 0x0500;
pub const OPEN4_SHARE_ACCESS_WANT_SIGNAL_DELEG_WHEN_RESRC_AVAIL: u32 = 0x10000;
pub const OPEN4_SHARE_ACCESS_WANT_PUSH_DELEG_WHEN_UNCONTENDED: u32 = 0x20000;

pub const OPEN4_RESULT_CONFIRM: u32 = 0x2;
pub const OPEN4_RESULT_LOCKTYPE_POSIX: u32 = 0x4;

pub const OPEN_DELEGATE_NONE: u32 = 0;
pub const OPEN_DELEGATE_NONE_EXT: u32 = 3;
pub const WND4_NOT_WANTED: u32 = 0;
pub const WND4_NOT_SUPP_FTYPE: u32 = 3;
pub const WND4_CANCELLED: u32 = 7;

/// FATTR4_SIZE's bit (word 0).
const FATTR4_SIZE_BIT: u32 = 1 << 4;
/// Attribute values accepted in createattrs.
pub const CREATE_ATTRS_BYTES_MAX: usize = 4096;
/// Longest name component (NFS4ERR_NAMETOOLONG beyond).
pub const NAME_BYTES_MAX: usize = 255;
/// Longest component decoded.
pub const COMPONENT_BYTES_MAX: usize = 1024;

/// fattr4, kept encoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fattr {
    pub mask: Vec<u32>,
    pub vals: Vec<u8>,
}

impl Fattr {
    fn decode(r: &mut Reader<'_>) -> xdr::Result<Fattr> {
        Ok(Fattr {
            mask: wire::bitmap(r, "createattrs mask")?,
            vals: r.opaque("createattrs values", CREATE_ATTRS_BYTES_MAX)?.to_vec(),
        })
    }

    fn encode(&self, w: &mut Writer) {
        wire::put_bitmap(w, &self.mask);
        w.put_opaque(&self.vals);
    }

    fn sets_size(&self) -> bool {
        self.mask.first().is_some_and(|m| m & FATTR4_SIZE_BIT != 0)
    }
}

/// createhow4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateHow {
    Unchecked(Fattr),
    Guarded(Fattr),
    Exclusive([u8; 8]),
    Exclusive41([u8; 8], Fattr),
}

/// open_claim4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Null(Vec<u8>),
    Previous(u32),
    DelegateCur(Stateid, Vec<u8>),
    DelegatePrev(Vec<u8>),
    Fh,
    DelegPrevFh,
    DelegCurFh(Stateid),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub seqid: u32,
    pub share_access: u32,
    pub share_deny: u32,
    pub clientid: ClientId,
    pub owner: Vec<u8>,
    pub create: Option<CreateHow>,
    pub claim: Claim,
}

fn component(r: &mut Reader<'_>, what: &'static str) -> xdr::Result<Vec<u8>> {
    r.opaque(what, COMPONENT_BYTES_MAX).map(<[u8]>::to_vec)
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    let seqid = r.u32("open seqid")?;
    let share_access = r.u32("share_access")?;
    let share_deny = r.u32("share_deny")?;
    let clientid = wire::clientid(r)?;
    let owner = r.opaque("open owner", OPAQUE_BYTES_MAX)?.to_vec();
    let create = match r.u32("opentype")? {
        OPEN4_NOCREATE => None,
        OPEN4_CREATE => Some(match r.u32("createmode")? {
            UNCHECKED4 => CreateHow::Unchecked(Fattr::decode(r)?),
            GUARDED4 => CreateHow::Guarded(Fattr::decode(r)?),
            EXCLUSIVE4 => CreateHow::Exclusive(wire::verifier(r, "createverf")?),
            EXCLUSIVE4_1 => {
                let v = wire::verifier(r, "cva_verf")?;
                CreateHow::Exclusive41(v, Fattr::decode(r)?)
            }
            _ => return Err(r.error("createmode", "unknown create mode")),
        }),
        _ => return Err(r.error("opentype", "unknown open type")),
    };
    let claim = match r.u32("open claim type")? {
        CLAIM_NULL => Claim::Null(component(r, "open file")?),
        CLAIM_PREVIOUS => Claim::Previous(r.u32("delegate_type")?),
        CLAIM_DELEGATE_CUR => {
            let s = Stateid::decode(r)?;
            Claim::DelegateCur(s, component(r, "open file")?)
        }
        CLAIM_DELEGATE_PREV => Claim::DelegatePrev(component(r, "file_delegate_prev")?),
        CLAIM_FH => Claim::Fh,
        CLAIM_DELEG_PREV_FH => Claim::DelegPrevFh,
        CLAIM_DELEG_CUR_FH => Claim::DelegCurFh(Stateid::decode(r)?),
        _ => return Err(r.error("open claim type", "unknown claim")),
    };
    Ok(Args { seqid, share_access, share_deny, clientid, owner, create, claim })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        w.put_u32(self.seqid);
        w.put_u32(self.share_access);
        w.put_u32(self.share_deny);
        w.put_u64(self.clientid.0);
        w.put_opaque(&self.owner);
        match &self.create {
            None => w.put_u32(OPEN4_NOCREATE),
            Some(how) => {
                w.put_u32(OPEN4_CREATE);
                match how {
                    CreateHow::Unchecked(a) => {
                        w.put_u32(UNCHECKED4);
                        a.encode(w);
                    }
                    CreateHow::Guarded(a) => {
                        w.put_u32(GUARDED4);
                        a.encode(w);
                    }
                    CreateHow::Exclusive(v) => {
                        w.put_u32(EXCLUSIVE4);
                        w.put_opaque_fixed(v);
                    }
                    CreateHow::Exclusive41(v, a) => {
                        w.put_u32(EXCLUSIVE4_1);
                        w.put_opaque_fixed(v);
                        a.encode(w);
                    }
                }
            }
        }
        match &self.claim {
            Claim::Null(name) => {
                w.put_u32(CLAIM_NULL);
                w.put_opaque(name);
            }
            Claim::Previous(d) => {
                w.put_u32(CLAIM_PREVIOUS);
                w.put_u32(*d);
            }
            Claim::DelegateCur(s, name) => {
                w.put_u32(CLAIM_DELEGATE_CUR);
                s.encode(w);
                w.put_opaque(name);
            }
            Claim::DelegatePrev(name) => {
                w.put_u32(CLAIM_DELEGATE_PREV);
                w.put_opaque(name);
            }
            Claim::Fh => w.put_u32(CLAIM_FH),
            Claim::DelegPrevFh => w.put_u32(CLAIM_DELEG_PREV_FH),
            Claim::DelegCurFh(s) => {
                w.put_u32(CLAIM_DELEG_CUR_FH);
                s.encode(w);
            }
        }
    }
}

/// 4.0 open-owner seqid handling before a seqid-mutating operation.
pub(crate) enum Begin {
    Run,
    /// A retransmission: the last reply was written to `w` (and the current file handle set).
    Replayed(Result<(), Status>),
}

pub(crate) fn seqid_begin(
    cx: &mut Compound<'_>,
    key: &OpenOwnerKey,
    seqid: u32,
    opening: bool,
    w: &mut Writer,
) -> Result<Begin, Status> {
    match cx.state().with_tables(|t, _, _| t.owner_seqid_check(key, seqid, opening))? {
        SeqidCheck::Run => Ok(Begin::Run),
        SeqidCheck::Replay(last) => {
            tracing::debug!(peer = %cx.conn.peer, seqid, "NFSv4.0 open-owner retransmission: last reply replayed");
            if let Some(f) = last.file {
                cx.current = Some(Fh::Export(f));
            }
            w.put_opaque_fixed(&last.resok);
            Ok(Begin::Replayed(if last.status == Status::OK { Ok(()) } else { Err(last.status) }))
        }
    }
}

/// 4.0 open-owner seqid handling after the operation ran.
pub(crate) fn seqid_end(
    cx: &Compound<'_>,
    key: &OpenOwnerKey,
    seqid: u32,
    out: &Result<(), Status>,
    res: &Writer,
    file: Option<FileHandle>,
) {
    let status = out.err().unwrap_or(Status::OK);
    let resok = if out.is_ok() { res.to_vec() } else { Vec::new() };
    cx.state().with_tables(|t, _, _| t.owner_seqid_done(key, seqid, status, resok, file));
}

/// The open-owner of a stateid (4.0 seqid operations find their owner this way).
pub(crate) fn owner_of(cx: &Compound<'_>, stateid: &Stateid) -> Result<OpenOwnerKey, Status> {
    cx.state().with_tables(|t, _, _| t.find_open(0, stateid).map(|o| o.owner.clone()))
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    let client = if cx.minor == 0 {
        let id = args.clientid;
        cx.state().renew(id)?;
        id
    } else {
        // 4.1: the session's client, whatever the owner says.
        cx.seq.as_ref().map(|s| s.client).ok_or(Status::OP_NOT_IN_SESSION)?
    };
    let key = OpenOwnerKey { client, owner: args.owner.clone() };
    if cx.minor == 0 {
        if let Begin::Replayed(out) = seqid_begin(cx, &key, args.seqid, true, w)? {
            return out;
        }
    }
    let mut res = Writer::new();
    let out = run(cx, &args, &key, &mut res).await;
    if cx.minor == 0 {
        let file = out.as_ref().ok().copied();
        seqid_end(cx, &key, args.seqid, &out.map(drop), &res, file);
    }
    out.map(|_| w.append(res))
}

/// The file an OPEN is about, its attributes and the change_info to answer.
struct Target {
    file: FileHandle,
    attr: engine::Attr,
    cinfo: (bool, u64, u64),
}

async fn run(cx: &mut Compound<'_>, args: &Args, key: &OpenOwnerKey, w: &mut Writer) -> Result<FileHandle, Status> {
    let access = ShareAccess(args.share_access & 3);
    let want = args.share_access & !3;
    let deny = ShareAccess(args.share_deny);
    let want_ok = OPEN4_SHARE_ACCESS_WANT_DELEG_MASK
        | OPEN4_SHARE_ACCESS_WANT_SIGNAL_DELEG_WHEN_RESRC_AVAIL
        | OPEN4_SHARE_ACCESS_WANT_PUSH_DELEG_WHEN_UNCONTENDED;
    if access.0 == 0 || args.share_deny & !3 != 0 || (want != 0 && (cx.minor == 0 || want & !want_ok != 0)) {
        return Err(Status::INVAL);
    }
    let current = cx.current()?;
    let state = cx.state();
    let reclaim = match &args.claim {
        Claim::Null(_) | Claim::Fh => false,
        Claim::Previous(OPEN_DELEGATE_NONE) => true,
        Claim::Previous(_) => return Err(Status::RECLAIM_BAD),
        Claim::DelegateCur(..) | Claim::DelegatePrev(_) | Claim::DelegPrevFh | Claim::DelegCurFh(_) => {
            return Err(Status::NOTSUPP)
        }
    };
    if cx.minor == 0 && matches!(args.claim, Claim::Fh) {
        return Err(Status::BADXDR);
    }
    if !reclaim && state.in_grace() {
        return Err(Status::GRACE);
    }
    let target = match &args.claim {
        Claim::Null(name) => by_name(cx, current, name, args.create.as_ref()).await?,
        _ => by_handle(cx, current)?,
    };
    let (_, export_access) = cx.export(target.file.export)?;
    if access.write() && !export_access.may_write() {
        return Err(Status::ROFS);
    }
    let (e, _) = cx.export(target.file.export)?;
    let (uid, gid) = cx.creds(e);
    if !permitted(&target.attr, uid, gid, cx.auth, access) {
        return Err(Status::ACCESS);
    }
    let req = OpenReq { minor: cx.minor, owner: key.clone(), file: target.file, access, deny };
    let ok = state.with_tables(|t, now, lease| {
        if reclaim {
            if !t.grace.on(now) {
                return Err(Status::NO_GRACE);
            }
            let c = t.live_client(key.client, now, lease)?;
            if c.reclaim_complete {
                return Err(Status::NO_GRACE);
            }
            if !c.reclaimable {
                return Err(Status::RECLAIM_BAD);
            }
        }
        t.open(&req, now, lease)
    })?;
    tracing::debug!(peer = %cx.conn.peer, ino = target.file.ino, access = access.0, deny = deny.0, reclaim, "OPEN");
    cx.current = Some(Fh::Export(target.file));
    cx.current_stateid = Some(ok.stateid);
    ok.stateid.encode(w);
    let (atomic, before, after) = target.cinfo;
    w.put_bool(atomic);
    w.put_u64(before);
    w.put_u64(after);
    w.put_u32(OPEN4_RESULT_LOCKTYPE_POSIX | if ok.confirm { OPEN4_RESULT_CONFIRM } else { 0 });
    wire::put_bitmap(w, &[]);
    encode_delegation(w, cx.minor, want);
    Ok(target.file)
}

/// open_delegation4: never a delegation.
fn encode_delegation(w: &mut Writer, minor: u32, want: u32) {
    let want_deleg = want & OPEN4_SHARE_ACCESS_WANT_DELEG_MASK;
    if minor == 0 || want == OPEN4_SHARE_ACCESS_WANT_NO_PREFERENCE {
        w.put_u32(OPEN_DELEGATE_NONE);
        return;
    }
    w.put_u32(OPEN_DELEGATE_NONE_EXT);
    w.put_u32(match want_deleg {
        OPEN4_SHARE_ACCESS_WANT_NO_DELEG => WND4_NOT_WANTED,
        OPEN4_SHARE_ACCESS_WANT_CANCEL => WND4_CANCELLED,
        _ => WND4_NOT_SUPP_FTYPE,
    });
}

/// CLAIM_NULL: the name in the current directory.
async fn by_name(cx: &Compound<'_>, dir: Fh, name: &[u8], create: Option<&CreateHow>) -> Result<Target, Status> {
    let name = std::str::from_utf8(name).map_err(|_| Status::INVAL)?;
    if name.is_empty() {
        return Err(Status::INVAL);
    }
    if name.len() > NAME_BYTES_MAX {
        return Err(Status::NAMETOOLONG);
    }
    if name == "." || name == ".." || invalid_name(name).is_some() {
        return Err(Status::BADNAME);
    }
    let h = match dir {
        Fh::Pseudo(node) => {
            // The pseudo-filesystem holds only directories (and is read-only).
            cx.server.pseudo.node(node).ok_or(Status::STALE)?;
            return match cx.server.pseudo.lookup(node, name) {
                Some(PseudoEntry::Node(_) | PseudoEntry::Export(_)) => Err(Status::ISDIR),
                None if create.is_some() => Err(Status::ROFS),
                None => Err(Status::NOENT),
            };
        }
        Fh::Export(h) => h,
    };
    let (e, access) = cx.export(h.export)?;
    let ns = &e.ns;
    let dir = ns.resolve("OPEN", &h).map_err(|e| from_engine(&e))?;
    if dir.kind != engine::meta::Kind::Dir {
        return Err(Status::NOTDIR);
    }
    let change = ns.attr(&dir).change;
    let cannot_create = if access == Access::ReadWrite { Status::NOTSUPP } else { Status::ROFS };
    let rec = match ns.lookup(dir.ino, name).await {
        Ok(rec) => rec,
        Err(EngineError::NotFound { .. }) if create.is_some() => return Err(cannot_create),
        Err(e) => return Err(from_engine(&e)),
    };
    if rec.kind == engine::meta::Kind::Dir {
        return Err(Status::ISDIR);
    }
    match create {
        None => {}
        Some(CreateHow::Unchecked(a)) if !a.sets_size() => {}
        Some(CreateHow::Unchecked(_)) => return Err(cannot_create),
        Some(CreateHow::Guarded(_) | CreateHow::Exclusive(_) | CreateHow::Exclusive41(..)) => {
            return Err(Status::EXIST)
        }
    }
    Ok(Target { file: ns.handle(&rec), attr: ns.attr(&rec), cinfo: (true, change, change) })
}

/// CLAIM_FH and CLAIM_PREVIOUS: the current file handle.
fn by_handle(cx: &Compound<'_>, current: Fh) -> Result<Target, Status> {
    let Fh::Export(h) = current else { return Err(Status::ISDIR) };
    let (e, _) = cx.export(h.export)?;
    let ns = &e.ns;
    let rec = ns.resolve("OPEN", &h).map_err(|e| from_engine(&e))?;
    if rec.kind == engine::meta::Kind::Dir {
        return Err(Status::ISDIR);
    }
    let change = ns.inode("OPEN", rec.parent).map(|p| ns.attr(&p).change).unwrap_or(0);
    Ok(Target { file: h, attr: ns.attr(&rec), cinfo: (true, change, change) })
}

/// Mode bits against the caller: read needs r or x, write needs w; root passes.
pub fn permitted(attr: &engine::Attr, uid: u32, gid: u32, auth: &Auth, access: ShareAccess) -> bool {
    if uid == 0 {
        return true;
    }
    let in_group = gid == attr.gid || matches!(auth, Auth::Sys(s) if s.gids.contains(&attr.gid));
    let bits = if uid == attr.uid {
        attr.mode >> 6
    } else if in_group {
        attr.mode >> 3
    } else {
        attr.mode
    } & 7;
    (!access.read() || bits & 0o5 != 0) && (!access.write() || bits & 0o2 != 0)
}
