//! OPEN (RFC 8881 section 18.16, RFC 7530 section 16.16): an open stateid for a file, with
//! share reservations.
//!
//! Claims: CLAIM_NULL (a name in the current directory; the current file handle becomes the
//! file), CLAIM_FH (4.1: the current file handle), CLAIM_PREVIOUS (reclaim after a restart,
//! during the grace period, by a client of the previous boot); the delegation claims answer
//! NFS4ERR_NOTSUPP (no delegations are ever granted). During grace, CLAIM_NULL and CLAIM_FH
//! answer NFS4ERR_GRACE.
//!
//! Creating (OPEN4_CREATE, CLAIM_NULL):
//! - UNCHECKED4: a missing file is created with `createattrs`; an existing one is opened, its
//!   attributes untouched except that size 0 truncates it (which needs write access in the
//!   open: NFS4ERR_INVAL otherwise), once the open is granted.
//! - GUARDED4: an existing name is NFS4ERR_EXIST.
//! - EXCLUSIVE4 (verifier only) and EXCLUSIVE4_1 (verifier + `createattrs`, 4.1): the engine
//!   keeps the verifier with the file, so a retransmission with the same verifier opens the
//!   file it made; another verifier is NFS4ERR_EXIST. `suppattr_exclcreat` is every settable
//!   attribute (the verifier is not kept in one).
//! - Creating needs `wx` on the directory (change.rs); the file belongs to the caller after
//!   root squash; on a read-only export (or in the pseudo-filesystem) it is NFS4ERR_ROFS. The
//!   creator's open needs no permission on the file (a file created 0444 opens for writing, as
//!   with open(2)).
//! - Results: the directory's change_info (before and after the create; atomic when only this
//!   create changed it) and `attrset`, the attributes applied.
//!
//! Opening:
//! - WRITE access is granted on a read-write export (fio opens O_RDWR without writing); on a
//!   read-only export it answers NFS4ERR_ROFS.
//! - Permissions: the file's mode against the caller's uid/gids (after root squash); read is
//!   allowed with the r or the x bit (a client reads to execute), write needs w.
//! - Directories → NFS4ERR_ISDIR (pseudo-filesystem directories too), symbolic links →
//!   NFS4ERR_SYMLINK, missing → NFS4ERR_NOENT.
//! - A new open stateid (not an upgrade of the owner's open of the file) tells the engine the
//!   file is open (`Engine::opened`; CLOSE and lease expiry say `closed`): the publisher
//!   uploads a file soon after its last close.
//!
//! Results: the stateid, change_info of the directory (before = after when nothing was
//! created), rflags OPEN4_RESULT_LOCKTYPE_POSIX (+ OPEN4_RESULT_CONFIRM for a new 4.0
//! open-owner), no delegation (4.1 with "want" bits: OPEN_DELEGATE_NONE_EXT with
//! WND4_NOT_WANTED, WND4_CANCELLED or WND4_NOT_SUPP_FTYPE).

use engine::namespace::invalid_name;
use engine::{CreateMode, FileHandle};

use crate::export::Access;
use crate::rpc::Auth;
use crate::v4::attrs::{self, Bitmap};
use crate::v4::change::{self, Caller, ChangeInfo};
use crate::v4::fh::Fh;
use crate::v4::node::{self, ExportNode, Node};
use crate::v4::pseudo::PseudoEntry;
use crate::v4::settable::{self, Settable};
use crate::v4::state::client::ClientId;
use crate::v4::state::open::{OpenOwnerKey, OpenReq, OpenStatus, SeqidCheck, ShareAccess};
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

    /// The mask as a bitmap, and whether bits beyond the words kept were set.
    fn bitmap(&self) -> (Bitmap, bool) {
        let mut b = Bitmap::default();
        for (i, word) in self.mask.iter().enumerate() {
            if let Some(w) = b.0.get_mut(i) {
                *w = *word;
            }
        }
        let beyond = self.mask.iter().skip(b.0.len()).any(|w| *w != 0);
        (b, beyond)
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

/// The file an OPEN is about, its attributes, the change_info and `attrset` to answer.
struct Target {
    file: FileHandle,
    attr: engine::Attr,
    cinfo: ChangeInfo,
    attrset: Bitmap,
    /// Made by this OPEN (or its retransmission): no permission check on the file.
    created: bool,
    /// UNCHECKED4 with size 0 on an existing file: truncate once the open is granted.
    truncate: bool,
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
    if cx.minor == 0 && matches!(args.create, Some(CreateHow::Exclusive41(..))) {
        // NFSv4.0 has no EXCLUSIVE4_1.
        return Err(Status::BADXDR);
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
        Claim::Null(name) => by_name(cx, current, name, args.create.as_ref(), access).await?,
        _ => by_handle(cx, current)?,
    };
    let (e, export_access) = cx.export(target.file.export)?;
    if access.write() && !export_access.may_write() {
        return Err(Status::ROFS);
    }
    let (uid, gid) = cx.creds(e);
    if !target.created && !permitted(&target.attr, uid, gid, cx.auth, access) {
        return Err(Status::ACCESS);
    }
    let req = OpenReq { minor: cx.minor, owner: key.clone(), file: target.file, access, deny };
    let (ok, new_open) = state.with_tables(|t, now, lease| {
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
        // An upgrade of the owner's open of this file is not another open for the engine.
        let held = t.opens.owners.get(&req.owner).and_then(|o| o.opens.get(&req.file));
        let live = held.and_then(|o| t.opens.by_other.get(o)).is_some_and(|o| o.status == OpenStatus::Live);
        t.open(&req, now, lease).map(|ok| (ok, !live))
    })?;
    let engine = cx.server.exports.engine();
    if new_open {
        engine.opened(&target.file);
    }
    if target.truncate {
        // After the share reservation is granted (a denied OPEN truncates nothing). Should this
        // fail, the open stays granted and goes at CLOSE or lease expiry.
        let size0 = engine::SetAttrs { size: Some(0), ..engine::SetAttrs::default() };
        engine.setattr(&target.file, &size0).await.map_err(|e| from_engine(&e))?;
    }
    tracing::debug!(
        peer = %cx.conn.peer, ino = target.file.ino, access = access.0, deny = deny.0, reclaim,
        created = target.created, truncate = target.truncate, "OPEN"
    );
    cx.current = Some(Fh::Export(target.file));
    cx.current_stateid = Some(ok.stateid);
    ok.stateid.encode(w);
    target.cinfo.encode(w);
    w.put_u32(OPEN4_RESULT_LOCKTYPE_POSIX | if ok.confirm { OPEN4_RESULT_CONFIRM } else { 0 });
    target.attrset.encode(w);
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

/// What a create asks of the engine, with its attributes decoded.
fn create_request(how: &CreateHow) -> Result<(CreateMode, Settable), Status> {
    let decode = |a: &Fattr| {
        let (mask, beyond) = a.bitmap();
        settable::decode(&mask, beyond, &a.vals)
    };
    Ok(match how {
        CreateHow::Unchecked(a) => (CreateMode::Unchecked, decode(a)?),
        CreateHow::Guarded(a) => (CreateMode::Guarded, decode(a)?),
        CreateHow::Exclusive(v) => (CreateMode::Exclusive(u64::from_be_bytes(*v)), Settable::default()),
        // suppattr_exclcreat is every settable attribute: nothing more to refuse.
        CreateHow::Exclusive41(v, a) => (CreateMode::Exclusive(u64::from_be_bytes(*v)), decode(a)?),
    })
}

/// CLAIM_NULL: the name in the current directory, created if asked (and allowed).
async fn by_name(
    cx: &Compound<'_>,
    dir: Fh,
    name: &[u8],
    create: Option<&CreateHow>,
    access: ShareAccess,
) -> Result<Target, Status> {
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
    let dir = match node::resolve(cx, Fh::Export(h))? {
        Node::Export(n) => n,
        Node::Pseudo(_) => return Err(Status::STALE),
    };
    if dir.rec.kind != engine::meta::Kind::Dir {
        return Err(Status::NOTDIR);
    }
    let writable = dir.access == Access::ReadWrite;
    let request = create.map(create_request).transpose()?;
    let existing = change::entry(&dir, name).await?;
    let Some(request) = request else {
        let found = existing.ok_or(Status::NOENT)?;
        return existing_target(&dir, found, false);
    };
    let (mode, s) = request;
    // UNCHECKED4 on an existing file: opened, truncated if the attributes say size 0.
    let unchecked = |found| {
        let truncate = s.size == Some(0);
        if truncate && !writable {
            Err(Status::ROFS)
        } else if truncate && !access.write() {
            Err(Status::INVAL)
        } else {
            existing_target(&dir, found, truncate)
        }
    };
    if let Some(found) = existing {
        return match mode {
            CreateMode::Unchecked => unchecked(found),
            CreateMode::Guarded => Err(Status::EXIST),
            CreateMode::Exclusive(_) if !writable => Err(Status::EXIST),
            // The engine knows whether this is a retransmission of the create (same verifier).
            CreateMode::Exclusive(_) => make(cx, &dir, name, mode, &s).await,
        };
    }
    if !writable {
        return Err(Status::ROFS);
    }
    match make(cx, &dir, name, mode, &s).await {
        // UNCHECKED4 lost a race with another create of the name: open what is there.
        Err(Status::EXIST) if mode == CreateMode::Unchecked => {
            unchecked(change::entry(&dir, name).await?.ok_or(Status::NOENT)?)
        }
        other => other,
    }
}

/// An existing entry opened by name.
fn existing_target(dir: &ExportNode<'_>, found: ExportNode<'_>, truncate: bool) -> Result<Target, Status> {
    match found.rec.kind {
        engine::meta::Kind::Dir => return Err(Status::ISDIR),
        engine::meta::Kind::Symlink => return Err(Status::SYMLINK),
        engine::meta::Kind::File => {}
    }
    let change = change::change_of(&dir.export.ns, dir.rec.ino);
    let attrset = if truncate { Bitmap::of(&[attrs::SIZE]) } else { Bitmap::default() };
    Ok(Target {
        file: found.fh,
        attr: found.attr(),
        cinfo: ChangeInfo::unchanged(change),
        attrset,
        created: false,
        truncate,
    })
}

/// Creates the file through the engine (UNCHECKED4 is asked as GUARDED4, so attributes never
/// land on a file that appeared meanwhile: the caller opens that one instead).
async fn make(
    cx: &Compound<'_>,
    dir: &ExportNode<'_>,
    name: &str,
    mode: CreateMode,
    s: &Settable,
) -> Result<Target, Status> {
    let caller = Caller::of(cx, dir);
    caller.may_change_entries(&dir.attr())?;
    let set = change::creation_attrs(&caller, s)?;
    let engine_mode = if mode == CreateMode::Unchecked { CreateMode::Guarded } else { mode };
    let ns = &dir.export.ns;
    let before = change::change_of(ns, dir.rec.ino);
    let made =
        cx.server.exports.engine().create(&dir.fh, name, engine_mode, &set).await.map_err(|e| from_engine(&e))?;
    let after = change::change_of(ns, dir.rec.ino);
    if made.attr.kind != engine::meta::Kind::File {
        return Err(Status::ISDIR);
    }
    Ok(Target {
        file: made.fh,
        attr: made.attr,
        cinfo: ChangeInfo::around(before, after),
        attrset: s.mask,
        // A retransmitted exclusive create opens the file it made: the creator's open.
        created: true,
        truncate: false,
    })
}

/// CLAIM_FH and CLAIM_PREVIOUS: the current file handle.
fn by_handle(cx: &Compound<'_>, current: Fh) -> Result<Target, Status> {
    let Fh::Export(h) = current else { return Err(Status::ISDIR) };
    let (e, _) = cx.export(h.export)?;
    let ns = &e.ns;
    let rec = ns.resolve("OPEN", &h).map_err(|e| from_engine(&e))?;
    match rec.kind {
        engine::meta::Kind::Dir => return Err(Status::ISDIR),
        engine::meta::Kind::Symlink => return Err(Status::SYMLINK),
        engine::meta::Kind::File => {}
    }
    let change = ns.inode("OPEN", rec.parent).map(|p| ns.attr(&p).change).unwrap_or(0);
    Ok(Target {
        file: h,
        attr: ns.attr(&rec),
        cinfo: ChangeInfo::unchanged(change),
        attrset: Bitmap::default(),
        created: false,
        truncate: false,
    })
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
