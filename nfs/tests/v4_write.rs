//! The NFSv4 write path end to end, in-process: the real engine (file-backed blockstore,
//! metadata store, write-back) over a local-directory bucket, the NFSv4 server in front, each
//! COMPOUND through the RPC server. A 4.1 session creates, writes, commits, truncates, changes
//! attributes, makes directories and links, removes and renames; then everything is published
//! and the bucket directory must hold exactly the expected objects and bytes. A 4.0 client
//! (SETCLIENTID, OPEN_CONFIRM, what libnfs speaks) creates and writes a file too; ALLOCATE and
//! DEALLOCATE run in a 4.2 session. Read-only exports and the pseudo-filesystem refuse changes.
#![allow(clippy::unwrap_used)] // tests: a failure is the test failing

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use nfs::rpc::Auth;
use nfs::v4::attrs::{self, Bitmap};
use nfs::v4::ops::{self, allocate, close, commit, create, exchange_id, open, rename, setattr, write};
use nfs::v4::settable::{self, SetTime, Settable};
use nfs::v4::state::client::ClientId;
use nfs::v4::state::session::{ChannelAttrs, SessionId};
use nfs::v4::state::Stateid;
use nfs::v4::Status;
use nfs::xdr::{Reader, Writer};

// ---------------------------------------------------------------- client side

fn args(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    f(&mut w);
    w.to_vec()
}

fn user() -> Auth {
    sys(1000, 100)
}

/// An NFSv4.1 (or 4.2) client with a session, one slot.
struct Client {
    minor: u32,
    id: ClientId,
    session: SessionId,
    seq: u32,
    auth: Auth,
}

fn channel(slots: u32) -> ChannelAttrs {
    ChannelAttrs {
        headerpad_bytes: 0,
        request_bytes_max: 1_049_620,
        response_bytes_max: 1_049_480,
        response_cached_bytes_max: 64 * 1024,
        operations_max: 16,
        requests_max: slots,
        rdma_ird: None,
    }
}

impl Client {
    fn mount(s: &Server, minor: u32, owner: &str) -> Client {
        let auth = user();
        let xid = exchange_id::Args {
            verifier: [7; 8],
            owner: owner.as_bytes().to_vec(),
            flags: 0,
            protect: exchange_id::StateProtect::None,
            impl_id: None,
        };
        let mut r = s.call(&loopback(), &auth, &Ops::new(minor).raw(ops::EXCHANGE_ID, args(|w| xid.encode(w))));
        r.ok(ops::EXCHANGE_ID);
        let (id, seq) = r.read(|r| (ClientId(r.u64("clientid").unwrap()), r.u32("sequenceid").unwrap()));
        let cs = ops::create_session::Args {
            clientid: id,
            sequence: seq,
            flags: 0,
            fore: channel(1),
            back: channel(1),
            cb_program: 0x4000_0000,
            sec_parms: vec![nfs::v4::state::wire::CbSec::None],
        };
        let mut r = s.call(&loopback(), &auth, &Ops::new(minor).raw(ops::CREATE_SESSION, args(|w| cs.encode(w))));
        r.ok(ops::CREATE_SESSION);
        let session: SessionId = r.read(|r| r.opaque_fixed("sessionid", 16).unwrap().try_into().unwrap());
        Client { minor, id, session, seq: 0, auth }
    }

    /// Ops beginning with this client's next SEQUENCE.
    fn ops(&mut self) -> Ops {
        self.seq += 1;
        let a =
            ops::sequence::Args { session: self.session, seqid: self.seq, slot: 0, highest_slot: 0, cache_this: true };
        Ops::new(self.minor).raw(ops::SEQUENCE, args(|w| ops::sequence::encode(&a, w)))
    }

    /// Runs a COMPOUND that began with [`Client::ops`]; the reply after SEQUENCE's result.
    fn run(&self, s: &Server, ops: Ops) -> Reply {
        let mut r = s.call(&loopback(), &self.auth, &ops);
        r.ok(ops::SEQUENCE);
        r.read(|r| r.skip("SEQUENCE4resok", 36).unwrap());
        r
    }

    /// The handle of `path` (from the root).
    fn fh(&mut self, s: &Server, path: &str) -> Vec<u8> {
        let ops = self.ops().walk(path).getfh();
        let mut r = self.run(s, ops);
        r.walked(path);
        r.getfh()
    }

    fn open_args(&self, owner: &str, name: &str, access: u32, create: Option<open::CreateHow>) -> open::Args {
        open::Args {
            seqid: 0,
            share_access: access,
            share_deny: 0,
            clientid: self.id,
            owner: owner.as_bytes().to_vec(),
            create,
            claim: open::Claim::Null(name.as_bytes().to_vec()),
        }
    }

    /// OPEN in `dir`, then GETFH: the result (or the OPEN's error).
    fn open(&mut self, s: &Server, dir: &[u8], a: &open::Args) -> Result<(Opened, Vec<u8>), Status> {
        let ops = self.ops().putfh(dir).raw(ops::OPEN, args(|w| a.encode(w))).getfh();
        let mut r = self.run(s, ops);
        r.ok(ops::PUTFH);
        match r.op(ops::OPEN) {
            Status::OK => {
                let o = opened(&mut r);
                Ok((o, r.getfh()))
            }
            st => Err(st),
        }
    }

    fn close(&mut self, s: &Server, fh: &[u8], stateid: Stateid) {
        let ops = self.ops().putfh(fh).raw(ops::CLOSE, args(|w| close::Args { seqid: 0, stateid }.encode(w)));
        let mut r = self.run(s, ops);
        r.ok(ops::PUTFH);
        r.ok(ops::CLOSE);
    }

    /// WRITE: (count, committed, verifier) or the error.
    fn write(
        &mut self,
        s: &Server,
        fh: &[u8],
        stateid: Stateid,
        offset: u64,
        data: &[u8],
        stable: u32,
    ) -> Result<(u32, u32, [u8; 8]), Status> {
        let a = write::Args { stateid, offset, stable, data };
        let ops = self.ops().putfh(fh).raw(ops::WRITE, args(|w| a.encode(w)));
        let mut r = self.run(s, ops);
        r.ok(ops::PUTFH);
        match r.op(ops::WRITE) {
            Status::OK => Ok(r.read(|r| {
                (
                    r.u32("count").unwrap(),
                    r.u32("committed").unwrap(),
                    r.opaque_fixed("verf", 8).unwrap().try_into().unwrap(),
                )
            })),
            st => Err(st),
        }
    }

    fn commit(&mut self, s: &Server, fh: &[u8]) -> [u8; 8] {
        let ops = self.ops().putfh(fh).raw(ops::COMMIT, args(|w| commit::Args { offset: 0, count: 0 }.encode(w)));
        let mut r = self.run(s, ops);
        r.ok(ops::PUTFH);
        r.ok(ops::COMMIT);
        r.read(|r| r.opaque_fixed("verf", 8).unwrap().try_into().unwrap())
    }

    /// The whole file through READ with `stateid`.
    fn read_all(&mut self, s: &Server, fh: &[u8], stateid: Stateid) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let ops = self.ops().putfh(fh).read_with(stateid_bytes(stateid), out.len() as u64, 1 << 20);
            let mut r = self.run(s, ops);
            r.ok(ops::PUTFH);
            let (eof, data) = r.read_data();
            out.extend_from_slice(&data);
            if eof || data.is_empty() {
                return out;
            }
        }
    }

    fn attrs(&mut self, s: &Server, fh: &[u8]) -> Attrs {
        let ops = self.ops().putfh(fh).getattr(&ATTRS);
        let mut r = self.run(s, ops);
        r.ok(ops::PUTFH);
        parse_attrs(&r.getattr())
    }

    /// SETATTR: (status, attrsset).
    fn setattr(&mut self, s: &Server, fh: &[u8], stateid: Stateid, mask: Bitmap, vals: &[u8]) -> (Status, Bitmap) {
        let a = setattr::Args { stateid, attrs: attrs::Fattr { mask, mask_beyond: false, vals } };
        let ops = self.ops().putfh(fh).raw(ops::SETATTR, args(|w| a.encode(w)));
        let mut r = self.run(s, ops);
        r.ok(ops::PUTFH);
        let st = r.op(ops::SETATTR);
        let set = r.read(|r| Bitmap::decode(r).unwrap().0);
        r.done();
        (st, set)
    }

    fn set(&mut self, s: &Server, fh: &[u8], stateid: Stateid, st: &Settable) -> (Status, Bitmap) {
        self.setattr(s, fh, stateid, st.mask, &settable::values(st))
    }

    /// CREATE in `dir`: (change_info, attrset, the new handle) or the error.
    fn create(
        &mut self,
        s: &Server,
        dir: &[u8],
        objtype: create::ObjType<'_>,
        name: &str,
        st: &Settable,
    ) -> Result<(Cinfo, Bitmap, Vec<u8>), Status> {
        let vals = settable::values(st);
        let a = create::Args {
            objtype,
            name: name.as_bytes(),
            attrs: attrs::Fattr { mask: st.mask, mask_beyond: false, vals: &vals },
        };
        let ops = self.ops().putfh(dir).raw(ops::CREATE, args(|w| a.encode(w))).getfh();
        let mut r = self.run(s, ops);
        r.ok(ops::PUTFH);
        match r.op(ops::CREATE) {
            Status::OK => {
                let c = r.read(cinfo);
                let set = r.read(|r| Bitmap::decode(r).unwrap().0);
                Ok((c, set, r.getfh()))
            }
            st => Err(st),
        }
    }

    fn remove(&mut self, s: &Server, dir: &[u8], name: &str) -> Result<Cinfo, Status> {
        let ops = self.ops().putfh(dir).raw(ops::REMOVE, args(|w| w.put_string(name)));
        let mut r = self.run(s, ops);
        r.ok(ops::PUTFH);
        match r.op(ops::REMOVE) {
            Status::OK => Ok(r.read(cinfo)),
            st => Err(st),
        }
    }

    fn rename(&mut self, s: &Server, from: &[u8], old: &str, to: &[u8], new: &str) -> Result<(Cinfo, Cinfo), Status> {
        let a = rename::Args { oldname: old.as_bytes(), newname: new.as_bytes() };
        let ops = self.ops().putfh(from).savefh().putfh(to).raw(ops::RENAME, args(|w| a.encode(w)));
        let mut r = self.run(s, ops);
        r.ok(ops::PUTFH);
        r.ok(ops::SAVEFH);
        r.ok(ops::PUTFH);
        match r.op(ops::RENAME) {
            Status::OK => Ok((r.read(cinfo), r.read(cinfo))),
            st => Err(st),
        }
    }

    /// The status of the last operation of `ops` after PUTFH(fh).
    fn status(&mut self, s: &Server, fh: &[u8], op: u32, body: Vec<u8>) -> Status {
        let ops = self.ops().putfh(fh).raw(op, body);
        let mut r = self.run(s, ops);
        r.ok(ops::PUTFH);
        r.op(op)
    }
}

/// OPEN4resok.
#[derive(Debug)]
struct Opened {
    stateid: Stateid,
    cinfo: Cinfo,
    rflags: u32,
    attrset: Bitmap,
}

type Cinfo = (bool, u64, u64);

fn cinfo(r: &mut Reader<'_>) -> Cinfo {
    (r.bool("atomic").unwrap(), r.u64("before").unwrap(), r.u64("after").unwrap())
}

fn opened(r: &mut Reply) -> Opened {
    r.read(|r| {
        let stateid = Stateid::decode(r).unwrap();
        let cinfo = cinfo(r);
        let rflags = r.u32("rflags").unwrap();
        let attrset = Bitmap::decode(r).unwrap().0;
        if r.u32("delegation").unwrap() == open::OPEN_DELEGATE_NONE_EXT {
            r.u32("why").unwrap();
        }
        Opened { stateid, cinfo, rflags, attrset }
    })
}

fn stateid_bytes(s: Stateid) -> [u8; 16] {
    let mut w = Writer::new();
    s.encode(&mut w);
    w.to_vec().try_into().unwrap()
}

const ATTRS: [u32; 9] = [
    attrs::TYPE,
    attrs::CHANGE,
    attrs::SIZE,
    attrs::MODE,
    attrs::NUMLINKS,
    attrs::OWNER,
    attrs::OWNER_GROUP,
    attrs::TIME_METADATA,
    attrs::TIME_MODIFY,
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Attrs {
    kind: u32,
    change: u64,
    size: u64,
    mode: u32,
    nlink: u32,
    owner: String,
    group: String,
    ctime: (i64, u32),
    mtime: (i64, u32),
}

fn parse_attrs(f: &Fattr) -> Attrs {
    assert_eq!(f.mask, Bitmap::of(&ATTRS), "every attribute asked is served");
    let mut r = f.reader();
    let time = |r: &mut Reader<'_>| (r.i64("s").unwrap(), r.u32("ns").unwrap());
    let a = Attrs {
        kind: r.u32("type").unwrap(),
        change: r.u64("change").unwrap(),
        size: r.u64("size").unwrap(),
        mode: r.u32("mode").unwrap(),
        nlink: r.u32("numlinks").unwrap(),
        owner: r.string("owner", 64).unwrap().to_string(),
        group: r.string("group", 64).unwrap().to_string(),
        ctime: time(&mut r),
        mtime: time(&mut r),
    };
    assert_eq!(r.remaining(), 0);
    a
}

fn with_mode(mode: u32) -> Settable {
    Settable { mask: Bitmap::of(&[attrs::MODE]), mode: Some(mode), ..Settable::default() }
}

fn unchecked(st: &Settable) -> open::CreateHow {
    open::CreateHow::Unchecked(open_fattr(st))
}

fn open_fattr(st: &Settable) -> open::Fattr {
    let n = st.mask.0.iter().rposition(|w| *w != 0).map_or(0, |i| i + 1);
    open::Fattr { mask: st.mask.0[..n].to_vec(), vals: settable::values(st) }
}

const RW: u32 = 3;
const READ: u32 = 1;

/// Every file under `dir`, by path relative to it.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn publish(s: &Server) {
    let e = s.engine.clone();
    let done = s.engine.runtime().unwrap().block_on(e.publish_all(Duration::from_secs(30)));
    assert!(done, "publish did not finish: {:?}", s.engine.write_stats());
}

// ---------------------------------------------------------------- tests

#[test]
fn write_path_over_a_4_1_session() {
    let f = Fixture::new();
    let s = f.server();
    s.engine.start_write_back().unwrap();
    let mut c = Client::mount(&s, 1, "writer-41");
    let root = c.fh(&s, "/data");
    let root_before = c.attrs(&s, &root);

    // OPEN GUARDED4 creates; again → EXIST.
    let guarded = open::CreateHow::Guarded(open_fattr(&with_mode(0o640)));
    let (o, file) = c.open(&s, &root, &c.open_args("o1", "new.txt", RW, Some(guarded.clone()))).unwrap();
    assert_eq!(o.attrset, Bitmap::of(&[attrs::MODE]));
    let (atomic, before, after) = o.cinfo;
    assert!(atomic && after == before + 1, "{:?}", o.cinfo);
    assert_eq!(o.rflags & open::OPEN4_RESULT_CONFIRM, 0, "4.1 owners need no confirm");
    assert_eq!(c.open(&s, &root, &c.open_args("o2", "new.txt", RW, Some(guarded))).unwrap_err(), Status::EXIST);
    let a = c.attrs(&s, &file);
    assert_eq!((a.kind, a.size, a.mode, a.nlink), (attrs::NF4REG, 0, 0o640, 1));
    assert_eq!((a.owner.as_str(), a.group.as_str()), ("1000", "100"), "the creator owns it");
    let root_now = c.attrs(&s, &root);
    assert!(root_now.change > root_before.change, "directory change moves");
    assert!(root_now.mtime >= root_before.mtime);

    // WRITE unstable in pieces (a partial block, whole blocks, a tail), COMMIT, read back.
    let data = pattern(3 * MIB + 4321);
    let cuts = [0usize, 1000, MIB, 2 * MIB, 2 * MIB + 17, 3 * MIB, data.len()];
    let mut verifs = Vec::new();
    for w in cuts.windows(2).rev() {
        let (count, committed, verf) =
            c.write(&s, &file, o.stateid, w[0] as u64, &data[w[0]..w[1]], write::UNSTABLE4).unwrap();
        assert_eq!(count as usize, w[1] - w[0]);
        assert_eq!(committed, write::UNSTABLE4);
        verifs.push(verf);
    }
    assert!(verifs.windows(2).all(|v| v[0] == v[1]));
    assert_eq!(c.commit(&s, &file), verifs[0], "COMMIT's verifier is WRITE's");
    let a1 = c.attrs(&s, &file);
    assert_eq!(a1.size, data.len() as u64);
    assert!(a1.change > a.change);
    assert!(a1.mtime >= a.mtime && a1.ctime >= a.ctime);
    assert_eq!(c.read_all(&s, &file, o.stateid), data);
    // A FILE_SYNC write is durable on return.
    let (_, committed, _) = c.write(&s, &file, o.stateid, 5, b"XYZ", write::FILE_SYNC4).unwrap();
    assert_eq!(committed, write::FILE_SYNC4);
    let mut expect_new = data.clone();
    expect_new[5..8].copy_from_slice(b"XYZ");
    c.close(&s, &file, o.stateid);
    // The stateid is gone after CLOSE; a forged one never was.
    assert_eq!(c.write(&s, &file, o.stateid, 0, b"x", write::UNSTABLE4).unwrap_err(), Status::BAD_STATEID);
    let forged = Stateid { seqid: 1, other: [9; 12] };
    assert_eq!(c.write(&s, &file, forged, 0, b"x", write::UNSTABLE4).unwrap_err(), Status::BAD_STATEID);
    assert_eq!(c.write(&s, &file, Stateid::BYPASS, 0, b"x", write::UNSTABLE4).unwrap_err(), Status::BAD_STATEID);

    // A read-only open cannot write; the anonymous stateid can (with w permission).
    let (ro, _) = c.open(&s, &root, &c.open_args("o3", "new.txt", READ, None)).unwrap();
    assert_eq!(c.write(&s, &file, ro.stateid, 0, b"x", write::UNSTABLE4).unwrap_err(), Status::OPENMODE);
    c.close(&s, &file, ro.stateid);
    let (_, _, _) = c.write(&s, &file, Stateid::ANONYMOUS, 1, b"ab", write::DATA_SYNC4).unwrap();
    expect_new[1..3].copy_from_slice(b"ab");

    // UNCHECKED4 on an existing file with size 0 truncates (and sets nothing else).
    let trunc = Settable {
        mask: Bitmap::of(&[attrs::SIZE, attrs::MODE]),
        size: Some(0),
        mode: Some(0o600),
        ..Settable::default()
    };
    let (t, tfile) = c.open(&s, &root, &c.open_args("o4", "small.txt", RW, Some(unchecked(&trunc)))).unwrap();
    assert_eq!(t.attrset, Bitmap::of(&[attrs::SIZE]));
    assert_eq!((t.cinfo.1, t.cinfo.2), (t.cinfo.2, t.cinfo.2), "nothing created");
    let ta = c.attrs(&s, &tfile);
    assert_eq!((ta.size, ta.mode), (0, 0o644));
    c.write(&s, &tfile, t.stateid, 0, b"short\n", write::UNSTABLE4).unwrap();
    c.close(&s, &tfile, t.stateid);
    // UNCHECKED4 creates a missing file (with its attributes).
    let (u, ufile) =
        c.open(&s, &root, &c.open_args("o4", "unchecked.txt", RW, Some(unchecked(&with_mode(0o600))))).unwrap();
    assert_eq!(u.attrset, Bitmap::of(&[attrs::MODE]));
    assert_eq!(c.attrs(&s, &ufile).mode, 0o600);
    c.write(&s, &ufile, u.stateid, 0, b"u", write::UNSTABLE4).unwrap();
    c.close(&s, &ufile, u.stateid);

    // EXCLUSIVE4_1: created with its attributes; the same verifier again is the same file.
    let excl = |v: u8| open::CreateHow::Exclusive41([v; 8], open_fattr(&with_mode(0o604)));
    let (e1, efile) = c.open(&s, &root, &c.open_args("o5", "excl.bin", RW, Some(excl(1)))).unwrap();
    assert_eq!(e1.attrset, Bitmap::of(&[attrs::MODE]));
    assert_eq!(c.attrs(&s, &efile).mode, 0o604);
    let (e2, efile2) = c.open(&s, &root, &c.open_args("o5", "excl.bin", RW, Some(excl(1)))).unwrap();
    assert_eq!(efile2, efile, "a retransmission opens the file it made");
    assert_eq!(e2.stateid.other, e1.stateid.other, "the owner's open, upgraded");
    assert_eq!(c.open(&s, &root, &c.open_args("o6", "excl.bin", RW, Some(excl(2)))).unwrap_err(), Status::EXIST);
    c.write(&s, &efile, e2.stateid, 0, b"exclusive", write::UNSTABLE4).unwrap();
    c.close(&s, &efile, e2.stateid);

    // SETATTR: truncate (with an open stateid), mode, owner, times; refusals carry attrsset.
    let (so, sfile) = c.open(&s, &root, &c.open_args("o7", "excl.bin", RW, None)).unwrap();
    let size3 = Settable { mask: Bitmap::of(&[attrs::SIZE]), size: Some(3), ..Settable::default() };
    assert_eq!(c.set(&s, &sfile, so.stateid, &size3), (Status::OK, Bitmap::of(&[attrs::SIZE])));
    assert_eq!(c.read_all(&s, &sfile, so.stateid), b"exc");
    c.close(&s, &sfile, so.stateid);
    assert_eq!(c.set(&s, &sfile, so.stateid, &size3).0, Status::BAD_STATEID, "a closed stateid for a size change");
    let t0 = UNIX_EPOCH + Duration::new(1_600_000_000, 0);
    let chattrs = Settable {
        mask: Bitmap::of(&[
            attrs::MODE,
            attrs::OWNER,
            attrs::OWNER_GROUP,
            attrs::TIME_ACCESS_SET,
            attrs::TIME_MODIFY_SET,
        ]),
        mode: Some(0o640),
        uid: Some(1000),
        gid: Some(100),
        atime: Some(SetTime::Server),
        mtime: Some(SetTime::Client(t0)),
        ..Settable::default()
    };
    let before = c.attrs(&s, &sfile);
    assert_eq!(c.set(&s, &sfile, Stateid::ANONYMOUS, &chattrs), (Status::OK, chattrs.mask));
    let after = c.attrs(&s, &sfile);
    assert_eq!((after.mode, after.mtime), (0o640, (1_600_000_000, 0)));
    assert!(after.change > before.change);
    // "1000@domain" is accepted; a name or another uid is not.
    let mut w = Writer::new();
    w.put_string("1000@localdomain");
    assert_eq!(c.setattr(&s, &sfile, Stateid::ANONYMOUS, Bitmap::of(&[attrs::OWNER]), &w.to_vec()).0, Status::OK);
    let mut w = Writer::new();
    w.put_string("alice@localdomain");
    assert_eq!(
        c.setattr(&s, &sfile, Stateid::ANONYMOUS, Bitmap::of(&[attrs::OWNER]), &w.to_vec()),
        (Status::BADOWNER, Bitmap::default())
    );
    let chown = Settable { mask: Bitmap::of(&[attrs::OWNER]), uid: Some(1001), ..Settable::default() };
    assert_eq!(c.set(&s, &sfile, Stateid::ANONYMOUS, &chown).0, Status::PERM);
    assert_eq!(c.setattr(&s, &sfile, Stateid::ANONYMOUS, Bitmap::of(&[12]), &[]).0, Status::ATTRNOTSUPP, "acl");
    assert_eq!(c.setattr(&s, &sfile, Stateid::ANONYMOUS, Bitmap::of(&[attrs::TYPE]), &[0, 0, 0, 1]).0, Status::INVAL);
    let now =
        Settable { mask: Bitmap::of(&[attrs::TIME_MODIFY_SET]), mtime: Some(SetTime::Server), ..Settable::default() };
    assert_eq!(c.set(&s, &sfile, Stateid::ANONYMOUS, &now).0, Status::OK);
    let touched = c.attrs(&s, &sfile);
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((touched.mtime.0 - wall).abs() < 60, "server time: {:?}", touched.mtime);
    // supported_attrs advertises what SETATTR takes; suppattr_exclcreat too.
    let ops = c.ops().putfh(&root).getattr(&[attrs::SUPPORTED_ATTRS, attrs::SUPPATTR_EXCLCREAT]);
    let mut r = c.run(&s, ops);
    r.ok(ops::PUTFH);
    let fa = r.getattr();
    let mut rd = fa.reader();
    let supported = Bitmap::decode(&mut rd).unwrap().0;
    let exclcreat = Bitmap::decode(&mut rd).unwrap().0;
    assert_eq!(supported.and(&settable::settable()), settable::settable());
    assert_eq!(exclcreat, settable::settable());

    // CREATE: a directory, a symbolic link (READLINK, type), refused types.
    let (dc, dset, sub) =
        c.create(&s, &root, create::ObjType::Other(create::NF4DIR), "sub", &with_mode(0o750)).unwrap();
    assert!(dc.0 && dc.2 == dc.1 + 1, "{dc:?}");
    assert_eq!(dset, Bitmap::of(&[attrs::MODE]));
    let da = c.attrs(&s, &sub);
    assert_eq!((da.kind, da.mode, da.owner.as_str()), (attrs::NF4DIR, 0o750, "1000"));
    assert_eq!(
        c.create(&s, &root, create::ObjType::Other(create::NF4DIR), "sub", &Settable::default()).unwrap_err(),
        Status::EXIST
    );
    let (_, _, link) = c.create(&s, &root, create::ObjType::Link(b"new.txt"), "keep.ln", &Settable::default()).unwrap();
    let ops = c.ops().putfh(&link).readlink();
    let mut r = c.run(&s, ops);
    r.ok(ops::PUTFH);
    r.ok(ops::READLINK);
    assert_eq!(r.read(|r| r.string("link", 4096).unwrap().to_string()), "new.txt");
    let la = c.attrs(&s, &link);
    assert_eq!((la.kind, la.size), (attrs::NF4LNK, 7));
    c.create(&s, &root, create::ObjType::Link(b"/nowhere"), "gone.ln", &Settable::default()).unwrap();
    assert_eq!(c.status(&s, &file, ops::READLINK, vec![]), Status::WRONG_TYPE);
    assert_eq!(c.status(&s, &root, ops::READLINK, vec![]), Status::ISDIR);
    assert_eq!(c.open(&s, &root, &c.open_args("o8", "keep.ln", READ, None)).unwrap_err(), Status::SYMLINK);
    let reg = create::ObjType::Other(create::NF4REG);
    assert_eq!(c.create(&s, &root, reg, "r", &Settable::default()).unwrap_err(), Status::BADTYPE);
    let fifo = create::ObjType::Other(create::NF4FIFO);
    assert_eq!(c.create(&s, &root, fifo, "p", &Settable::default()).unwrap_err(), Status::NOTSUPP);
    let dev = create::ObjType::Device { kind: create::NF4CHR, major: 1, minor: 3 };
    assert_eq!(c.create(&s, &root, dev, "null", &Settable::default()).unwrap_err(), Status::NOTSUPP);
    let sized = Settable { mask: Bitmap::of(&[attrs::SIZE]), size: Some(1), ..Settable::default() };
    assert_eq!(c.create(&s, &root, create::ObjType::Other(create::NF4DIR), "x", &sized).unwrap_err(), Status::INVAL);

    // A file inside the new directory; REMOVE of the non-empty directory → NOTEMPTY.
    let (i, ifile) =
        c.open(&s, &sub, &c.open_args("o9", "inner.txt", RW, Some(unchecked(&Settable::default())))).unwrap();
    c.write(&s, &ifile, i.stateid, 0, b"inner\n", write::UNSTABLE4).unwrap();
    c.close(&s, &ifile, i.stateid);
    assert_eq!(c.remove(&s, &root, "sub").unwrap_err(), Status::NOTEMPTY);
    c.create(&s, &root, create::ObjType::Other(create::NF4DIR), "empty", &Settable::default()).unwrap();
    let rc = c.remove(&s, &root, "empty").unwrap();
    assert!(rc.0 && rc.2 == rc.1 + 1);
    c.remove(&s, &root, "gone.ln").unwrap();
    assert_eq!(c.remove(&s, &root, "gone.ln").unwrap_err(), Status::NOENT);
    assert_eq!(c.remove(&s, &root, "..").unwrap_err(), Status::BADNAME);

    // RENAME a file over another, then a directory with a file under it.
    for (name, body) in [("a.txt", &b"aaaa"[..]), ("b.txt", &b"bb"[..])] {
        let (o, f) = c.open(&s, &root, &c.open_args("o10", name, RW, Some(unchecked(&Settable::default())))).unwrap();
        c.write(&s, &f, o.stateid, 0, body, write::FILE_SYNC4).unwrap();
        c.close(&s, &f, o.stateid);
    }
    let (src, dst) = c.rename(&s, &root, "a.txt", &root, "b.txt").unwrap();
    assert_eq!(src, dst, "one directory: the same change_info twice");
    assert!(src.0 && src.2 == src.1 + 1);
    let ops = c.ops().putfh(&root).lookup("a.txt");
    let mut r = c.run(&s, ops);
    r.ok(ops::PUTFH);
    assert_eq!(r.op(ops::LOOKUP), Status::NOENT);
    let b = c.fh(&s, "/data/b.txt");
    assert_eq!(c.read_all(&s, &b, Stateid::ANONYMOUS), b"aaaa");
    let other = c.fh(&s, "/data/d1");
    let (src, dst) = c.rename(&s, &root, "sub", &other, "moved").unwrap();
    assert!(src.2 > src.1 && dst.2 > dst.1);
    let inner = c.fh(&s, "/data/d1/moved/inner.txt");
    assert_eq!(c.read_all(&s, &inner, Stateid::ANONYMOUS), b"inner\n");
    assert_eq!(c.rename(&s, &root, "missing", &root, "x").unwrap_err(), Status::NOENT);
    assert_eq!(c.rename(&s, &root, "d1", &root, "new.txt").unwrap_err(), Status::NOTDIR);
    let ro_root = c.fh(&s, "/a/b/ro");
    assert_eq!(c.rename(&s, &root, "b.txt", &ro_root, "b.txt").unwrap_err(), Status::ROFS);

    // LINK: never (one object per file).
    let ops = c.ops().putfh(&file).savefh().putfh(&root).raw(ops::LINK, args(|w| w.put_string("hard")));
    let mut r = c.run(&s, ops);
    r.ok_n(ops::PUTFH, 1);
    r.ok(ops::SAVEFH);
    r.ok(ops::PUTFH);
    assert_eq!(r.op(ops::LINK), Status::NOTSUPP);

    // Read-only export and pseudo-filesystem: every change is ROFS.
    let ro_file = c.fh(&s, "/a/b/ro/readme.txt");
    assert_eq!(
        c.open(&s, &ro_root, &c.open_args("o11", "n.txt", RW, Some(unchecked(&Settable::default())))).unwrap_err(),
        Status::ROFS
    );
    assert_eq!(c.open(&s, &ro_root, &c.open_args("o11", "readme.txt", RW, None)).unwrap_err(), Status::ROFS);
    assert_eq!(
        c.create(&s, &ro_root, create::ObjType::Other(create::NF4DIR), "d", &Settable::default()).unwrap_err(),
        Status::ROFS
    );
    assert_eq!(c.remove(&s, &ro_root, "readme.txt").unwrap_err(), Status::ROFS);
    assert_eq!(c.rename(&s, &ro_root, "readme.txt", &ro_root, "x").unwrap_err(), Status::ROFS);
    assert_eq!(c.write(&s, &ro_file, Stateid::ANONYMOUS, 0, b"x", write::FILE_SYNC4).unwrap_err(), Status::ROFS);
    assert_eq!(c.set(&s, &ro_file, Stateid::ANONYMOUS, &with_mode(0o600)).0, Status::ROFS);
    let ops = c.ops().putrootfh().getfh();
    let mut r = c.run(&s, ops);
    r.ok(ops::PUTROOTFH);
    let pseudo = r.getfh();
    assert_eq!(
        c.create(&s, &pseudo, create::ObjType::Other(create::NF4DIR), "d", &Settable::default()).unwrap_err(),
        Status::ROFS
    );
    assert_eq!(c.remove(&s, &pseudo, "data").unwrap_err(), Status::ROFS);
    assert_eq!(
        c.open(&s, &pseudo, &c.open_args("o11", "n.txt", RW, Some(unchecked(&Settable::default())))).unwrap_err(),
        Status::ROFS
    );
    assert_eq!(c.set(&s, &pseudo, Stateid::ANONYMOUS, &with_mode(0o700)).0, Status::ROFS);

    // Permissions: another user may not create here nor write a 0644 file; root is squashed.
    let mut other_user = Client::mount(&s, 1, "other-41");
    other_user.auth = sys(2000, 2000);
    let o = other_user.open_args("x", "theirs.txt", RW, Some(unchecked(&Settable::default())));
    assert_eq!(other_user.open(&s, &root, &o).unwrap_err(), Status::ACCESS);
    assert_eq!(other_user.write(&s, &b, Stateid::ANONYMOUS, 0, b"x", write::UNSTABLE4).unwrap_err(), Status::ACCESS);
    assert_eq!(other_user.remove(&s, &root, "b.txt").unwrap_err(), Status::ACCESS);
    assert_eq!(other_user.set(&s, &b, Stateid::ANONYMOUS, &with_mode(0o777)).0, Status::PERM);
    other_user.auth = sys(0, 0);
    assert_eq!(other_user.open(&s, &root, &o).unwrap_err(), Status::ACCESS, "root squashed to nobody");

    // READDIR's attributes agree with GETATTR's after the changes.
    let ops = c.ops().putfh(&root).readdir(0, 0, 64 * 1024, &ATTRS);
    let mut r = c.run(&s, ops);
    r.ok(ops::PUTFH);
    let listed: BTreeMap<String, Attrs> =
        r.readdir().entries.iter().map(|e| (e.name.clone(), parse_attrs(&e.attrs))).collect();
    for name in ["new.txt", "keep.ln", "b.txt", "excl.bin", "d1"] {
        let fh = c.fh(&s, &format!("/data/{name}"));
        assert_eq!(listed[name], c.attrs(&s, &fh), "{name}");
    }
    assert_eq!(listed["keep.ln"].kind, attrs::NF4LNK);
    assert_eq!(listed["new.txt"].size, data.len() as u64);
    assert!(!listed.contains_key("a.txt") && !listed.contains_key("sub"), "renamed away");

    // Everything reaches the bucket, and nothing else.
    publish(&s);
    let got = files_under(&f.bucket());
    let expected: BTreeMap<String, Vec<u8>> = [
        ("data/big.bin", pattern(BIG_BYTES)),
        ("data/small.txt", b"short\n".to_vec()),
        ("data/new.txt", expect_new),
        ("data/unchecked.txt", b"u".to_vec()),
        ("data/excl.bin", b"exc".to_vec()),
        ("data/b.txt", b"aaaa".to_vec()),
        ("data/keep.ln", b"new.txt".to_vec()),
        ("data/d1/d2/d3/leaf.txt", b"leaf\n".to_vec()),
        ("data/d1/moved/inner.txt", b"inner\n".to_vec()),
        ("ro/readme.txt", b"read only\n".to_vec()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&got), names(&expected));
    for (k, v) in &expected {
        assert!(got[k] == *v, "{k}: {} bytes in the bucket, {} expected", got[k].len(), v.len());
    }
}

#[test]
fn allocate_and_deallocate_in_4_2() {
    let f = Fixture::new();
    let s = f.server();
    s.engine.start_write_back().unwrap();
    let mut c = Client::mount(&s, 2, "writer-42");
    let root = c.fh(&s, "/data");
    let (o, file) =
        c.open(&s, &root, &c.open_args("o", "sparse.bin", RW, Some(unchecked(&Settable::default())))).unwrap();
    c.write(&s, &file, o.stateid, 0, &[0xAB; 10_000], write::UNSTABLE4).unwrap();
    let alloc = |c: &mut Client, op: u32, offset: u64, length: u64| {
        let a = allocate::Args { stateid: o.stateid, offset, length };
        c.status(&s, &file, op, args(|w| a.encode(w)))
    };
    assert_eq!(alloc(&mut c, ops::ALLOCATE, 8_000, 12_000), Status::OK);
    assert_eq!(c.attrs(&s, &file).size, 20_000, "ALLOCATE extends");
    assert_eq!(alloc(&mut c, ops::ALLOCATE, 0, 100), Status::OK);
    assert_eq!(c.attrs(&s, &file).size, 20_000, "within the file: nothing changes");
    assert_eq!(alloc(&mut c, ops::DEALLOCATE, 1_000, 2_000), Status::OK);
    assert_eq!(alloc(&mut c, ops::DEALLOCATE, 0, 0), Status::INVAL);
    assert_eq!(alloc(&mut c, ops::ALLOCATE, u64::MAX - 1, 10), Status::FBIG);
    let mut expect = vec![0xAB; 10_000];
    expect[1_000..3_000].fill(0);
    expect.resize(20_000, 0);
    assert_eq!(c.read_all(&s, &file, o.stateid), expect);
    // Not in 4.1.
    let mut c41 = Client::mount(&s, 1, "writer-41");
    let a = allocate::Args { stateid: Stateid::ANONYMOUS, offset: 0, length: 1 };
    let ops = c41.ops().putfh(&file).raw(ops::ALLOCATE, args(|w| a.encode(w)));
    let mut r = s.call(&loopback(), &user(), &ops);
    r.ok(ops::SEQUENCE);
    r.read(|r| r.skip("SEQUENCE4resok", 36).unwrap());
    r.ok(ops::PUTFH);
    let st = r.read(|r| (r.u32("op").unwrap(), r.u32("status").unwrap()));
    assert_eq!(st, (ops::OP_ILLEGAL, Status::OP_ILLEGAL.0));
    c.close(&s, &file, o.stateid);
    publish(&s);
    assert_eq!(std::fs::read(f.bucket().join("data/sparse.bin")).unwrap(), expect);
}

#[test]
fn create_and_write_over_4_0() {
    let f = Fixture::new();
    let s = f.server();
    s.engine.start_write_back().unwrap();
    let (c, auth) = (loopback(), user());
    let mut r = s.call(
        &c,
        &auth,
        &Ops::new(0).raw(
            ops::SETCLIENTID,
            args(|w| {
                w.put_opaque_fixed(&[1; 8]);
                w.put_opaque(b"client-40");
                w.put_u32(0x4000_0000);
                w.put_string("tcp");
                w.put_string("127.0.0.1.3.4");
                w.put_u32(1);
            }),
        ),
    );
    r.ok(ops::SETCLIENTID);
    let (clientid, confirm) = r.read(|r| (r.u64("clientid").unwrap(), r.opaque_fixed("confirm", 8).unwrap().to_vec()));
    let mut r = s.call(
        &c,
        &auth,
        &Ops::new(0).raw(
            ops::SETCLIENTID_CONFIRM,
            args(|w| {
                w.put_u64(clientid);
                w.put_opaque_fixed(&confirm);
            }),
        ),
    );
    r.ok(ops::SETCLIENTID_CONFIRM);
    let open_args = |seqid: u32, name: &str, create: open::CreateHow| open::Args {
        seqid,
        share_access: RW,
        share_deny: 0,
        clientid: ClientId(clientid),
        owner: b"owner-40".to_vec(),
        create: Some(create),
        claim: open::Claim::Null(name.as_bytes().to_vec()),
    };
    // OPEN UNCHECKED4 creates; the new owner confirms.
    let a = open_args(1, "libnfs.txt", unchecked(&with_mode(0o644)));
    let mut r = s.call(&c, &auth, &Ops::new(0).walk("/data").raw(ops::OPEN, args(|w| a.encode(w))).getfh());
    r.walked("/data");
    r.ok(ops::OPEN);
    let o = opened(&mut r);
    let file = r.getfh();
    assert!(o.cinfo.2 > o.cinfo.1);
    assert_ne!(o.rflags & open::OPEN4_RESULT_CONFIRM, 0);
    let mut r = s.call(
        &c,
        &auth,
        &Ops::new(0).putfh(&file).raw(
            ops::OPEN_CONFIRM,
            args(|w| {
                o.stateid.encode(w);
                w.put_u32(2);
            }),
        ),
    );
    r.ok(ops::PUTFH);
    r.ok(ops::OPEN_CONFIRM);
    let stateid = r.read(|r| Stateid::decode(r).unwrap());
    // WRITE (FILE_SYNC, as libnfs sends), COMMIT, READ, CLOSE.
    let body = pattern(200_000);
    let wa = write::Args { stateid, offset: 0, stable: write::FILE_SYNC4, data: &body };
    let ca = commit::Args { offset: 0, count: 0 };
    let mut r = s.call(
        &c,
        &auth,
        &Ops::new(0).putfh(&file).raw(ops::WRITE, args(|w| wa.encode(w))).raw(ops::COMMIT, args(|w| ca.encode(w))),
    );
    r.ok(ops::PUTFH);
    r.ok(ops::WRITE);
    let (count, committed, verf) =
        r.read(|r| (r.u32("count").unwrap(), r.u32("committed").unwrap(), r.opaque_fixed("verf", 8).unwrap().to_vec()));
    assert_eq!((count as usize, committed), (body.len(), write::FILE_SYNC4));
    r.ok(ops::COMMIT);
    assert_eq!(r.read(|r| r.opaque_fixed("verf", 8).unwrap().to_vec()), verf);
    let mut r = s.call(&c, &auth, &Ops::new(0).putfh(&file).read_with(stateid_bytes(stateid), 0, 1 << 20));
    r.ok(ops::PUTFH);
    assert_eq!(r.read_data(), (true, body.clone()));
    // EXCLUSIVE4: created; a retransmission (a new seqid, the same verifier) opens it.
    let ex = open_args(3, "excl40", open::CreateHow::Exclusive([5; 8]));
    let mut r = s.call(&c, &auth, &Ops::new(0).walk("/data").raw(ops::OPEN, args(|w| ex.encode(w))).getfh());
    r.walked("/data");
    r.ok(ops::OPEN);
    let e1 = opened(&mut r);
    assert_eq!(e1.attrset, Bitmap::default(), "EXCLUSIVE4 sets nothing: the client's SETATTR follows");
    let efh = r.getfh();
    let ex = open_args(4, "excl40", open::CreateHow::Exclusive([5; 8]));
    let mut r = s.call(&c, &auth, &Ops::new(0).walk("/data").raw(ops::OPEN, args(|w| ex.encode(w))).getfh());
    r.walked("/data");
    r.ok(ops::OPEN);
    opened(&mut r);
    assert_eq!(r.getfh(), efh);
    let ex = open_args(5, "excl40", open::CreateHow::Exclusive([6; 8]));
    let mut r = s.call(&c, &auth, &Ops::new(0).walk("/data").raw(ops::OPEN, args(|w| ex.encode(w))));
    r.walked("/data");
    assert_eq!(r.op(ops::OPEN), Status::EXIST);
    // EXCLUSIVE4_1 does not exist in 4.0.
    let ex = open_args(6, "x41", open::CreateHow::Exclusive41([5; 8], open::Fattr::default()));
    let mut r = s.call(&c, &auth, &Ops::new(0).walk("/data").raw(ops::OPEN, args(|w| ex.encode(w))));
    r.walked("/data");
    assert_eq!(r.op(ops::OPEN), Status::BADXDR);
    let cl = close::Args { seqid: 6, stateid }; // BADXDR did not use seqid 6
    let mut r = s.call(&c, &auth, &Ops::new(0).putfh(&file).raw(ops::CLOSE, args(|w| cl.encode(w))));
    r.ok(ops::PUTFH);
    r.ok(ops::CLOSE);
    publish(&s);
    assert_eq!(std::fs::read(f.bucket().join("data/libnfs.txt")).unwrap(), body);
    assert_eq!(std::fs::read(f.bucket().join("data/excl40")).unwrap(), b"");
}

#[test]
fn expired_opens_are_released() {
    let f = Fixture::new();
    let s = f.server();
    s.engine.start_write_back().unwrap();
    let mut c = Client::mount(&s, 1, "short-lived");
    let root = c.fh(&s, "/data");
    let (o, _) =
        c.open(&s, &root, &c.open_args("o", "left-open.txt", RW, Some(unchecked(&Settable::default())))).unwrap();
    let (_, _) = c.open(&s, &root, &c.open_args("o", "small.txt", READ, None)).unwrap();
    assert!(s.nfs4.state.take_released().is_empty());
    s.nfs4.state.with_tables(|t, _, _| t.expire_client(c.id));
    let mut released: Vec<u64> = s.nfs4.state.take_released().iter().map(|f| f.ino).collect();
    released.sort_unstable();
    assert_eq!(released.len(), 2, "both live opens");
    assert!(s.nfs4.state.take_released().is_empty(), "once");
    let _ = o;
}

/// A file or directory made here has `posix.mtime_ns` set at creation (it wins in
/// `Namespace::attr`): writes and entry changes must move it too.
#[test]
fn mtime_moves_with_writes_to_files_made_here() {
    let f = Fixture::new();
    let s = f.server();
    s.engine.start_write_back().unwrap();
    let mut c = Client::mount(&s, 1, "mtime");
    let root = c.fh(&s, "/data");
    let (o, file) = c.open(&s, &root, &c.open_args("o", "m.txt", RW, Some(unchecked(&Settable::default())))).unwrap();
    let (_, _, dir) = c.create(&s, &root, create::ObjType::Other(create::NF4DIR), "md", &Settable::default()).unwrap();
    let (file0, dir0) = (c.attrs(&s, &file), c.attrs(&s, &dir));
    std::thread::sleep(Duration::from_millis(1100));
    c.write(&s, &file, o.stateid, 0, b"later", write::FILE_SYNC4).unwrap();
    c.create(&s, &dir, create::ObjType::Other(create::NF4DIR), "inner", &Settable::default()).unwrap();
    assert!(c.attrs(&s, &file).mtime > file0.mtime, "file mtime after WRITE");
    assert!(c.attrs(&s, &dir).mtime > dir0.mtime, "directory mtime after CREATE in it");
}

#[test]
fn write_op_arguments_round_trip() {
    fn rt<T: PartialEq + std::fmt::Debug>(
        v: T,
        enc: impl Fn(&T, &mut Writer),
        dec: impl for<'a> Fn(&mut Reader<'a>) -> nfs::xdr::Result<T>,
        bytes: &mut Vec<u8>,
    ) {
        let mut w = Writer::new();
        enc(&v, &mut w);
        *bytes = w.to_vec();
        let mut r = Reader::new(bytes);
        assert_eq!(dec(&mut r).unwrap(), v);
        assert_eq!(r.remaining(), 0);
        for cut in (0..bytes.len()).step_by(4) {
            assert!(dec(&mut Reader::new(&bytes[..cut])).is_err(), "a prefix of {cut} bytes decoded");
        }
    }
    let sid = Stateid { seqid: 5, other: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] };
    let mut b = Vec::new();
    let data = pattern(1001);
    let wa = write::Args { stateid: sid, offset: 77, stable: write::DATA_SYNC4, data: &data };
    let mut w = Writer::new();
    wa.encode(&mut w);
    let enc = w.to_vec();
    assert_eq!(write::decode(&mut Reader::new(&enc)).unwrap(), wa);
    let mut bad = enc.clone();
    bad[27] = 3; // stable_how4 out of range
    assert!(write::decode(&mut Reader::new(&bad)).is_err());
    rt(commit::Args { offset: 1, count: 2 }, commit::Args::encode, commit::decode, &mut b);
    rt(allocate::Args { stateid: sid, offset: 3, length: 4 }, allocate::Args::encode, allocate::decode, &mut b);
    let st = Settable {
        mask: Bitmap::of(&[attrs::MODE, attrs::OWNER]),
        mode: Some(0o755),
        uid: Some(7),
        ..Settable::default()
    };
    let vals = settable::values(&st);
    for objtype in [
        create::ObjType::Link(b"target"),
        create::ObjType::Device { kind: create::NF4BLK, major: 8, minor: 1 },
        create::ObjType::Other(create::NF4DIR),
    ] {
        let a = create::Args {
            objtype,
            name: b"n",
            attrs: attrs::Fattr { mask: st.mask, mask_beyond: false, vals: &vals },
        };
        let mut w = Writer::new();
        a.encode(&mut w);
        let enc = w.to_vec();
        assert_eq!(create::decode(&mut Reader::new(&enc)).unwrap(), a);
    }
    let sa = setattr::Args { stateid: sid, attrs: attrs::Fattr { mask: st.mask, mask_beyond: false, vals: &vals } };
    let mut w = Writer::new();
    sa.encode(&mut w);
    let enc = w.to_vec();
    let back = setattr::decode(&mut Reader::new(&enc)).unwrap();
    assert_eq!(back, sa);
    assert_eq!(settable::decode(&back.attrs.mask, false, back.attrs.vals).unwrap(), st);
    let ra = rename::Args { oldname: b"a", newname: b"bb" };
    let mut w = Writer::new();
    ra.encode(&mut w);
    let enc = w.to_vec();
    assert_eq!(rename::decode(&mut Reader::new(&enc)).unwrap(), ra);
    // The fuzz target's seeds of the write path decode whole.
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/nfs4_compound");
    for seed in ["write40", "write41", "allocate42"] {
        let bytes = std::fs::read(seeds.join(seed)).unwrap();
        nfs::v4::decode_compound(&bytes).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
    // Every write-path operation is decoded by the fuzz target's entry point.
    for op in [
        ops::WRITE,
        ops::COMMIT,
        ops::CREATE,
        ops::REMOVE,
        ops::RENAME,
        ops::LINK,
        ops::SETATTR,
        ops::ALLOCATE,
        ops::DEALLOCATE,
    ] {
        assert!(ops::decode_args(2, op, &mut Reader::new(&[])).is_err(), "op {op} decodes nothing from nothing");
    }
}
