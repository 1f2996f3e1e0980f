//! NFSv4 file operations against a real engine over a local-directory bucket (tests/common):
//! the pseudo-filesystem, LOOKUP/LOOKUPP, attributes, READDIR paging, READ at several offsets,
//! handles across a restart, export access and root squash, malformed arguments, SEEK and
//! READ_PLUS.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::fattr::*;
use common::*;
use nfs::rpc::Auth;
use nfs::v4::ops;
use nfs::v4::Status;

fn export_id(s: &Server, name: &str) -> u32 {
    s.engine.export(name).unwrap().export_id()
}

/// The engine's record of `path` below export `name`.
fn record(s: &Server, name: &str, path: &str) -> std::sync::Arc<engine::meta::InodeRecord> {
    futures::executor::block_on(s.engine.export(name).unwrap().lookup_path(path)).unwrap()
}

#[test]
fn pseudo_root_lists_exports_and_lookup_walks_to_a_file() {
    let f = Fixture::new();
    let s = f.server();
    let attrs = [TYPE, FSID, FILEID, MOUNTED_ON_FILEID, RDATTR_ERROR];
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putrootfh().readdir(0, 0, 4096, &attrs));
    assert_eq!(r.status, 0);
    r.ok(ops::PUTROOTFH);
    let dir = r.readdir();
    assert!(dir.eof);
    let names: Vec<_> = dir.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a", "data"]);
    for e in &dir.entries {
        assert!(e.cookie > 2, "cookies 1 and 2 are reserved");
        let mut v = e.attrs.reader();
        assert_eq!(v.u32("type").unwrap(), NF4DIR);
        // Values come in attribute number order.
        let fsid = (v.u64("major").unwrap(), v.u64("minor").unwrap());
        assert_eq!(v.u32("rdattr_error").unwrap(), 0);
        let fileid = v.u64("fileid").unwrap();
        let mounted_on = v.u64("mounted_on").unwrap();
        if e.name == "data" {
            let id = export_id(&s, "/data");
            assert_eq!(fsid, (u64::from(id), 0), "an export is a file system of its own");
            assert_eq!(fileid, s.engine.export("/data").unwrap().root_ino());
            assert_eq!(mounted_on, mounted_on_export(id));
        } else {
            assert_eq!(fsid, (PSEUDO_FSID_MAJOR, 0));
            assert_eq!(fileid, mounted_on);
        }
    }

    // Walk down to a file and read its attributes.
    let ops = Ops::new(0).walk("/data/d1/d2/d3/leaf.txt").getfh().getattr(&[
        TYPE,
        CHANGE,
        SIZE,
        FSID,
        FILEID,
        MODE,
        NUMLINKS,
        OWNER,
        OWNER_GROUP,
        TIME_MODIFY,
        MOUNTED_ON_FILEID,
    ]);
    let mut r = s.call(&loopback(), &sys(1000, 100), &ops);
    assert_eq!(r.status, 0);
    r.walked("/data/d1/d2/d3/leaf.txt");
    let fh = r.getfh();
    let a = r.getattr();
    r.done();
    let leaf = record(&s, "/data", "d1/d2/d3/leaf.txt");
    let mut v = a.reader();
    assert_eq!(v.u32("type").unwrap(), NF4REG);
    let change = v.u64("change").unwrap();
    assert_eq!(change, leaf.change);
    assert_eq!(v.u64("size").unwrap(), 5);
    assert_eq!(v.u64("fsid major").unwrap(), u64::from(export_id(&s, "/data")));
    assert_eq!(v.u64("fsid minor").unwrap(), 0);
    assert_eq!(v.u64("fileid").unwrap(), leaf.ino);
    assert_eq!(v.u32("mode").unwrap(), 0o644);
    assert_eq!(v.u32("numlinks").unwrap(), 1);
    assert_eq!(v.string("owner", 64).unwrap(), "1000");
    assert_eq!(v.string("group", 64).unwrap(), "100");
    let mtime = std::fs::metadata(f.bucket().join("data/d1/d2/d3/leaf.txt")).unwrap().modified().unwrap();
    let secs = mtime.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(v.i64("mtime s").unwrap() as u64, secs);
    v.u32("mtime ns").unwrap();
    assert_eq!(v.u64("mounted_on_fileid").unwrap(), leaf.ino);
    assert_eq!(v.remaining(), 0);
    assert_eq!(
        nfs::v4::fh::Fh::decode(&fh),
        Some(nfs::v4::fh::Fh::Export(s.engine.export("/data").unwrap().handle(&leaf)))
    );

    // The change attribute is stable while nothing changes.
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putfh(&fh).getattr(&[CHANGE]));
    r.ok(ops::PUTFH);
    assert_eq!(r.getattr().reader().u64("change").unwrap(), change);

    // The read-only export sits two pseudo directories down.
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/a/b/ro/readme.txt").read(0, 100));
    assert_eq!(r.status, 0);
    r.walked("/a/b/ro/readme.txt");
    assert_eq!(r.read_data(), (true, b"read only\n".to_vec()));
}

#[test]
fn supported_attrs_and_fs_attributes() {
    let f = Fixture::new();
    let s = f.server();
    let ask = [SUPPORTED_ATTRS, FH_EXPIRE_TYPE, LINK_SUPPORT, LEASE_TIME, MAXNAME, MAXREAD, FILEHANDLE];
    for minor in [0u32, 1] {
        let mut r = s.direct(&loopback(), &Auth::None, &Ops::new(minor).walk("/data").getfh().getattr(&ask));
        r.walked("/data");
        let fh = r.getfh();
        let a = r.getattr();
        assert_eq!(a.mask, Bitmap::of(&ask));
        let mut v = a.reader();
        let (sup, _) = Bitmap::decode(&mut v).unwrap();
        assert_eq!(sup, supported(minor));
        assert_eq!(sup.has(SUPPATTR_EXCLCREAT), minor >= 1);
        assert_eq!(v.u32("fh_expire_type").unwrap(), FH4_PERSISTENT);
        assert!(!v.bool("link_support").unwrap());
        assert_eq!(v.u32("lease").unwrap(), 90);
        assert_eq!(v.opaque("filehandle", 128).unwrap(), &fh[..]);
        assert_eq!(v.u32("maxname").unwrap(), 255);
        assert_eq!(v.u64("maxread").unwrap(), 1 << 20);
        assert_eq!(v.remaining(), 0);
    }
    // A write-only attribute cannot be asked for.
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putrootfh().getattr(&[SIZE, TIME_MODIFY_SET]));
    r.ok(ops::PUTROOTFH);
    assert_eq!(r.op(ops::GETATTR), Status::INVAL);
    // The pseudo root: a read-only directory.
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putrootfh().getattr(&[TYPE, MODE, FILEID]));
    r.ok(ops::PUTROOTFH);
    let a = r.getattr();
    let mut v = a.reader();
    assert_eq!(v.u32("type").unwrap(), NF4DIR);
    assert_eq!(v.u64("fileid").unwrap(), pseudo_fileid(0));
    assert_eq!(v.u32("mode").unwrap(), 0o555);
}

#[test]
fn read_at_offsets_and_zero_copy() {
    let f = Fixture::new();
    let s = f.server();
    let want = pattern(BIG_BYTES);
    let size = BIG_BYTES as u64;
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/data/big.bin").getfh());
    r.walked("/data/big.bin");
    let fh = r.getfh();
    let cases: [(u64, u32, usize, bool); 6] = [
        (0, 4096, 4096, false),
        (MIB as u64 - 7, 100_000, 100_000, false),
        (3 * MIB as u64 + 5, MIB as u32, MIB, false),
        (size - 10, 100, 10, true),
        (size, 100, 0, true),
        // Clamped to 1 MiB.
        (MIB as u64, 4 * MIB as u32, MIB, false),
    ];
    for (offset, count, len, eof) in cases {
        let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putfh(&fh).read(offset, count));
        r.ok(ops::PUTFH);
        let (got_eof, data) = r.read_data();
        assert_eq!((got_eof, data.len()), (eof, len), "read at {offset} count {count}");
        assert!(data[..] == want[offset as usize..offset as usize + len], "bytes at {offset}");
    }
    // The payload goes into the reply as the cache's own buffers.
    let ops = Ops::new(0).putfh(&fh).read(0, 256 * 1024);
    let mut w = nfs::xdr::Writer::new();
    futures::executor::block_on(s.nfs4.compound(&loopback(), &Auth::None, &ops.encode(), &mut w)).unwrap();
    let parts = w.into_parts();
    assert!(parts.iter().any(|p| matches!(p, nfs::xdr::Part::Data(_))), "READ data is spliced, not copied");

    // Directories, pseudo directories and unknown stateids are refused.
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/data").read(0, 10));
    r.walked("/data");
    assert_eq!(r.op(ops::READ), Status::ISDIR);
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putrootfh().read(0, 10));
    r.ok(ops::PUTROOTFH);
    assert_eq!(r.op(ops::READ), Status::ISDIR);
    let mut forged = [0u8; 16];
    forged[4] = 9;
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putfh(&fh).read_with(forged, 0, 10));
    r.ok(ops::PUTFH);
    let st = r.op(ops::READ);
    assert!(st == Status::BAD_STATEID || st == Status::STALE_STATEID, "unknown stateid: {st:?}");
    // READ-bypass stateid.
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putfh(&fh).read_with([0xff; 16], 8, 8));
    r.ok(ops::PUTFH);
    assert_eq!(r.read_data().1, want[8..16]);
}

#[test]
fn handle_survives_restart() {
    let f = Fixture::new();
    let (fh, fileid) = {
        let s = f.server();
        let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/data/big.bin").getfh().getattr(&[FILEID]));
        r.walked("/data/big.bin");
        let fh = r.getfh();
        let fileid = r.getattr().reader().u64("fileid").unwrap();
        (fh, fileid)
    };
    let s = f.server();
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putfh(&fh).read(2 * MIB as u64, 1000).getattr(&[FILEID]));
    assert_eq!(r.status, 0);
    r.ok(ops::PUTFH);
    let (_, data) = r.read_data();
    assert!(data[..] == pattern(BIG_BYTES)[2 * MIB..2 * MIB + 1000]);
    assert_eq!(r.getattr().reader().u64("fileid").unwrap(), fileid);
}

#[test]
fn stale_and_bad_handles() {
    let f = Fixture::new();
    let s = f.server();
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/data/small.txt").getfh());
    r.walked("/data/small.txt");
    let fh = r.getfh();
    let putfh = |h: &[u8]| {
        let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putfh(h).getattr(&[SIZE]));
        r.op(ops::PUTFH)
    };
    assert_eq!(putfh(&fh), Status::OK);
    // Another generation of the same inode: replaced since.
    let mut other = fh.clone();
    other[28] ^= 1;
    assert_eq!(putfh(&other), Status::STALE);
    // An export that does not exist.
    let mut other = fh.clone();
    other[12] ^= 0x40;
    assert_eq!(putfh(&other), Status::STALE);
    // A pseudo node that does not exist.
    assert_eq!(putfh(&[0xF5, 0, 0, 1, 0]), Status::STALE);
    // Not a handle of ours.
    assert_eq!(putfh(&[1, 2, 3]), Status::BADHANDLE);
    assert_eq!(putfh(&fh[..28]), Status::BADHANDLE);
}

#[test]
fn readdir_pages_through_3000_entries() {
    let f = Fixture::with_many_files();
    let s = f.server();
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/data/many").getfh());
    r.walked("/data/many");
    let dir = r.getfh();
    let attrs = [TYPE, FILEID, MOUNTED_ON_FILEID, RDATTR_ERROR, SIZE];
    let maxcount = 1500;
    let pass = || {
        let mut seen = Vec::new();
        let mut cookie = 0;
        let mut calls = 0;
        loop {
            let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putfh(&dir).readdir(cookie, 0, maxcount, &attrs));
            r.ok(ops::PUTFH);
            let page = r.readdir();
            calls += 1;
            assert!(page.resok_bytes <= maxcount as usize, "resok {} > maxcount", page.resok_bytes);
            assert!(!page.entries.is_empty() || page.eof);
            for e in &page.entries {
                let mut v = e.attrs.reader();
                assert_eq!(v.u32("type").unwrap(), NF4REG);
                assert_eq!(v.u64("size").unwrap(), e.name.len() as u64);
                assert_eq!(v.u32("rdattr_error").unwrap(), 0);
                let fileid = v.u64("fileid").unwrap();
                assert_eq!(v.u64("mounted_on").unwrap(), fileid);
                assert!(e.cookie > 2);
                seen.push((e.name.clone(), e.cookie));
            }
            if page.eof {
                break;
            }
            cookie = page.entries.last().unwrap().cookie;
        }
        (seen, calls)
    };
    let (first, calls) = pass();
    assert!(calls > 20, "small pages: {calls} calls");
    let mut names: Vec<_> = first.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    let want: Vec<_> = (0..MANY_FILES).map(|i| format!("f{i:05}")).collect();
    assert_eq!(names, want, "every name exactly once");
    let (second, _) = pass();
    assert_eq!(first, second, "cookies are stable across passes");

    // One large page takes several engine batches and still lists each entry once.
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putfh(&dir).readdir(0, 0, 1 << 20, &[FILEID]));
    r.ok(ops::PUTFH);
    let page = r.readdir();
    assert!(page.eof);
    let all: Vec<_> = page.entries.iter().map(|e| (e.name.clone(), e.cookie)).collect();
    assert_eq!(all, first);

    // Resuming from a cookie in the middle continues right after that entry.
    let (_, mid) = first[1500].clone();
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putfh(&dir).readdir(mid, 0, 4000, &[]));
    r.ok(ops::PUTFH);
    let page = r.readdir();
    assert_eq!(page.entries[0].name, first[1501].0);

    // dircount counts cookie and name bytes: 20 per "fNNNNN" entry.
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putfh(&dir).readdir(0, 64, 100_000, &attrs));
    r.ok(ops::PUTFH);
    assert_eq!(r.readdir().entries.len(), 3);
    // Not even one entry fits.
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putfh(&dir).readdir(0, 0, 40, &attrs));
    r.ok(ops::PUTFH);
    assert_eq!(r.op(ops::READDIR), Status::TOOSMALL);
    // Reserved cookies.
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putfh(&dir).readdir(1, 0, 4000, &attrs));
    r.ok(ops::PUTFH);
    assert_eq!(r.op(ops::READDIR), Status::BAD_COOKIE);
    // READDIR of a file.
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/data/small.txt").readdir(0, 0, 4000, &attrs));
    r.walked("/data/small.txt");
    assert_eq!(r.op(ops::READDIR), Status::NOTDIR);
}

#[test]
fn readdir_of_a_nested_export_directory() {
    let f = Fixture::new();
    let s = f.server();
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/data").readdir(0, 0, 8192, &[TYPE, FILEID]));
    r.walked("/data");
    let page = r.readdir();
    assert!(page.eof);
    let kinds: HashMap<_, _> =
        page.entries.iter().map(|e| (e.name.clone(), e.attrs.reader().u32("type").unwrap())).collect();
    let want =
        HashMap::from([("big.bin".to_string(), NF4REG), ("small.txt".to_string(), NF4REG), ("d1".to_string(), NF4DIR)]);
    assert_eq!(kinds, want);
    // /a lists b, /a/b lists ro.
    for (path, child) in [("/a", "b"), ("/a/b", "ro")] {
        let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk(path).readdir(0, 0, 8192, &[TYPE]));
        r.walked(path);
        let names: Vec<_> = r.readdir().entries.into_iter().map(|e| e.name).collect();
        assert_eq!(names, [child]);
    }
}

#[test]
fn lookupp_climbs_out_of_an_export_into_the_pseudo_fs() {
    let f = Fixture::new();
    let s = f.server();
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/a/b").getfh());
    r.walked("/a/b");
    let pseudo_b = r.getfh();
    let mut r =
        s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/a/b/ro").lookupp().getfh().lookupp().lookupp().getfh());
    assert_eq!(r.status, 0);
    r.walked("/a/b/ro");
    r.ok(ops::LOOKUPP);
    assert_eq!(r.getfh(), pseudo_b);
    r.ok_n(ops::LOOKUPP, 2);
    assert_eq!(r.getfh(), [0xF5, 0, 0, 0, 0], "the pseudo root");
    // Inside an export: up to the parent directory.
    let d2 = record(&s, "/data", "d1/d2");
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/data/d1/d2/d3").lookupp().getattr(&[FILEID]));
    r.walked("/data/d1/d2/d3");
    r.ok(ops::LOOKUPP);
    assert_eq!(r.getattr().reader().u64("fileid").unwrap(), d2.ino);
    // The pseudo root has no parent; a file is no directory.
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putrootfh().lookupp());
    r.ok(ops::PUTROOTFH);
    assert_eq!(r.op(ops::LOOKUPP), Status::NOENT);
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/data/small.txt").lookupp());
    r.walked("/data/small.txt");
    assert_eq!(r.op(ops::LOOKUPP), Status::NOTDIR);
}

#[test]
fn lookup_names_and_errors() {
    let f = Fixture::new();
    let s = f.server();
    let long = vec![b'x'; 256];
    let cases: [(&[u8], Status); 6] = [
        (b"", Status::INVAL),
        (b".", Status::BADNAME),
        (b"..", Status::BADNAME),
        (&long, Status::NAMETOOLONG),
        (&[0xc3, 0x28], Status::INVAL),
        (b"missing", Status::NOENT),
    ];
    for (name, want) in cases {
        for dir in ["/", "/data"] {
            let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk(dir).lookup_raw(name));
            r.walked(dir);
            assert_eq!(r.op(ops::LOOKUP), want, "{name:?} in {dir}");
        }
    }
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/data/small.txt").lookup("x"));
    r.walked("/data/small.txt");
    assert_eq!(r.op(ops::LOOKUP), Status::NOTDIR);
    // No current handle.
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).lookup("data"));
    assert_eq!(r.op(ops::LOOKUP), Status::NOFILEHANDLE);
    // Truncated arguments: a name of 10 bytes with 3 present.
    let mut r = s.call(
        &loopback(),
        &Auth::None,
        &Ops::new(0).putrootfh().raw(ops::LOOKUP, vec![0, 0, 0, 10, b'd', b'a', b't']),
    );
    r.ok(ops::PUTROOTFH);
    assert_eq!(r.op(ops::LOOKUP), Status::BADXDR);
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/data/small.txt").raw(ops::READ, vec![0; 20]));
    r.walked("/data/small.txt");
    assert_eq!(r.op(ops::READ), Status::BADXDR);
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putrootfh().raw(ops::GETATTR, vec![0, 0, 0, 2, 0]));
    r.ok(ops::PUTROOTFH);
    assert_eq!(r.op(ops::GETATTR), Status::BADXDR);
    // No symlinks.
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/data/small.txt").readlink());
    r.walked("/data/small.txt");
    assert_eq!(r.op(ops::READLINK), Status::INVAL);
}

#[test]
fn access_follows_mode_bits_root_squash_and_export_policy() {
    let f = Fixture::new();
    let s = f.server();
    const R: u32 = 0x01;
    const L: u32 = 0x02;
    const M: u32 = 0x04;
    const E: u32 = 0x08;
    const D: u32 = 0x10;
    const X: u32 = 0x20;
    const ALL: u32 = R | L | M | E | D | X;
    let access = |path: &str, auth: &Auth| {
        let mut r = s.call(&loopback(), auth, &Ops::new(0).walk(path).access(ALL | 0x100));
        r.walked(path);
        let (supported, granted) = r.access();
        assert_eq!(supported, ALL, "unknown bits are not supported");
        granted
    };
    // /data files are 0644 owned by 1000:100, directories 0755.
    assert_eq!(access("/data/small.txt", &sys(1000, 100)), R | M | E);
    assert_eq!(access("/data/small.txt", &sys(2000, 100)), R);
    assert_eq!(access("/data/d1", &sys(1000, 100)), R | L | M | E | D);
    // Root is squashed on /data: nobody, "other" bits.
    assert_eq!(access("/data/small.txt", &sys(0, 0)), R);
    assert_eq!(access("/data/d1", &sys(0, 0)), R | L);
    // Root is not squashed on /a/b/ro (files owned by root), but the export is read-only.
    assert_eq!(access("/a/b/ro/readme.txt", &sys(0, 0)), R);
    assert_eq!(access("/a/b/ro", &sys(0, 0)), R | L);
    // Pseudo directories.
    assert_eq!(access("/a", &sys(1000, 100)), R | L);
    assert_eq!(access("/", &Auth::None), R | L);
}

#[test]
fn a_client_outside_the_export_list_is_denied() {
    let f = Fixture::new();
    let s = f.server();
    let outsider = conn("192.0.2.7:700");
    let mut r = s.call(&outsider, &Auth::None, &Ops::new(0).walk("/a/b").lookup("ro"));
    r.walked("/a/b");
    assert_eq!(r.op(ops::LOOKUP), Status::ACCESS);
    // The pseudo directory does not list it.
    let mut r = s.call(&outsider, &Auth::None, &Ops::new(0).walk("/a/b").readdir(0, 0, 4000, &[TYPE]));
    r.walked("/a/b");
    let page = r.readdir();
    assert!(page.eof && page.entries.is_empty());
    // A handle learned elsewhere is refused at use.
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/a/b/ro/readme.txt").getfh());
    r.walked("/a/b/ro/readme.txt");
    let fh = r.getfh();
    let mut r = s.call(&outsider, &Auth::None, &Ops::new(0).putfh(&fh).getattr(&[SIZE]));
    r.ok(ops::PUTFH);
    assert_eq!(r.op(ops::GETATTR), Status::ACCESS);
    let mut r = s.call(&outsider, &Auth::None, &Ops::new(0).putfh(&fh).read(0, 10));
    r.ok(ops::PUTFH);
    assert_eq!(r.op(ops::READ), Status::ACCESS);
    // /data lets everyone in.
    let mut r = s.call(&outsider, &Auth::None, &Ops::new(0).walk("/data/small.txt").read(0, 100));
    r.walked("/data/small.txt");
    assert_eq!(r.read_data(), (true, b"hello, world\n".to_vec()));
}

#[test]
fn verify_nverify_savefh_restorefh_secinfo() {
    let f = Fixture::new();
    let s = f.server();
    let size13 = 13u64.to_be_bytes();
    let size14 = 14u64.to_be_bytes();
    let run = |ops: Ops| s.call(&loopback(), &Auth::None, &ops);
    let mut r = run(Ops::new(0).walk("/data/small.txt").verify(ops::VERIFY, &[SIZE], &size13).getfh());
    assert_eq!(r.status, 0);
    let mut r2 = run(Ops::new(0).walk("/data/small.txt").verify(ops::VERIFY, &[SIZE], &size14));
    r2.walked("/data/small.txt");
    assert_eq!(r2.op(ops::VERIFY), Status::NOT_SAME);
    let mut r2 = run(Ops::new(0).walk("/data/small.txt").verify(ops::NVERIFY, &[SIZE], &size13));
    r2.walked("/data/small.txt");
    assert_eq!(r2.op(ops::NVERIFY), Status::SAME);
    let mut r2 = run(Ops::new(0).walk("/data/small.txt").verify(ops::NVERIFY, &[SIZE], &size14));
    r2.walked("/data/small.txt");
    r2.ok(ops::NVERIFY);
    let mut r2 = run(Ops::new(0).walk("/data/small.txt").verify(ops::VERIFY, &[RDATTR_ERROR], &[0; 4]));
    r2.walked("/data/small.txt");
    assert_eq!(r2.op(ops::VERIFY), Status::INVAL);
    r.walked("/data/small.txt");
    r.ok(ops::VERIFY);
    let file = r.getfh();

    // SAVEFH / RESTOREFH.
    let mut r = run(Ops::new(0).restorefh());
    assert_eq!(r.op(ops::RESTOREFH), Status::RESTOREFH);
    let mut r = run(Ops::new(0).walk("/data/small.txt").savefh().putrootfh().restorefh().getfh());
    r.walked("/data/small.txt");
    r.ok(ops::SAVEFH);
    r.ok(ops::PUTROOTFH);
    r.ok(ops::RESTOREFH);
    assert_eq!(r.getfh(), file);

    // SECINFO checks the name; NFSv4.1 consumes the current handle, NFSv4.0 keeps it.
    let mut r = s.direct(&loopback(), &Auth::None, &Ops::new(1).putrootfh().secinfo("data").getfh());
    r.ok(ops::PUTROOTFH);
    assert_eq!(r.secinfo(ops::SECINFO), [1, 0]);
    assert_eq!(r.op(ops::GETFH), Status::NOFILEHANDLE);
    let mut r = run(Ops::new(0).putrootfh().secinfo("data").getfh());
    r.ok(ops::PUTROOTFH);
    assert_eq!(r.secinfo(ops::SECINFO), [1, 0]);
    assert_eq!(r.getfh(), [0xF5, 0, 0, 0, 0]);
    let mut r = run(Ops::new(0).putrootfh().secinfo("nope"));
    r.ok(ops::PUTROOTFH);
    assert_eq!(r.op(ops::SECINFO), Status::NOENT);
    // SECINFO_NO_NAME (4.1): current handle or its parent.
    let mut r = s.direct(&loopback(), &Auth::None, &Ops::new(1).walk("/data").secinfo_no_name(1).getfh());
    r.walked("/data");
    assert_eq!(r.secinfo(ops::SECINFO_NO_NAME), [1, 0]);
    assert_eq!(r.op(ops::GETFH), Status::NOFILEHANDLE);
    let mut r = s.direct(&loopback(), &Auth::None, &Ops::new(1).putrootfh().secinfo_no_name(1));
    r.ok(ops::PUTROOTFH);
    assert_eq!(r.op(ops::SECINFO_NO_NAME), Status::NOENT);
    let mut r = s.direct(&loopback(), &Auth::None, &Ops::new(1).putpubfh().secinfo_no_name(0));
    r.ok(ops::PUTPUBFH);
    assert_eq!(r.secinfo(ops::SECINFO_NO_NAME), [1, 0]);
}

#[test]
fn seek_and_read_plus() {
    let f = Fixture::new();
    let s = f.server();
    let size = BIG_BYTES as u64;
    let want = pattern(BIG_BYTES);
    let run = |ops: Ops| {
        let mut r = s.direct(&loopback(), &Auth::None, &ops);
        r.walked("/data/big.bin");
        r
    };
    let base = || Ops::new(2).walk("/data/big.bin");
    assert_eq!(run(base().seek(100, 0)).seek(), (false, 100));
    assert_eq!(run(base().seek(100, 1)).seek(), (true, size));
    assert_eq!(run(base().seek(size, 0)).op(ops::SEEK), Status::NXIO);
    assert_eq!(run(base().seek(size + 5, 1)).op(ops::SEEK), Status::NXIO);
    let (eof, segs) = run(base().read_plus(MIB as u64, 4096)).read_plus();
    assert!(!eof);
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].0, MIB as u64);
    assert!(segs[0].1[..] == want[MIB..MIB + 4096]);
    let (eof, segs) = run(base().read_plus(size - 3, 4096)).read_plus();
    assert!(eof);
    assert_eq!(segs, [(size - 3, want[BIG_BYTES - 3..].to_vec())]);
    assert_eq!(run(base().read_plus(size, 10)).read_plus(), (true, vec![]));
    // A directory cannot be sought in.
    let mut r = s.direct(&loopback(), &Auth::None, &Ops::new(2).walk("/data").seek(0, 0));
    r.walked("/data");
    assert_eq!(r.op(ops::SEEK), Status::ISDIR);
}

#[test]
fn garbage_arguments_never_panic() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let f = Fixture::new();
    let s = f.server();
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).walk("/data/big.bin").getfh());
    r.walked("/data/big.bin");
    let file = r.getfh();
    let served = [
        ops::ACCESS,
        ops::GETATTR,
        ops::GETFH,
        ops::LOOKUP,
        ops::LOOKUPP,
        ops::NVERIFY,
        ops::PUTFH,
        ops::READ,
        ops::READDIR,
        ops::READLINK,
        ops::RESTOREFH,
        ops::SAVEFH,
        ops::SECINFO,
        ops::VERIFY,
        ops::SECINFO_NO_NAME,
        ops::READ_PLUS,
        ops::SEEK,
    ];
    let op = (0..served.len(), proptest::collection::vec(any::<u8>(), 0..48));
    let mut runner = TestRunner::new(Config { cases: 300, ..Config::default() });
    runner
        .run(&(proptest::collection::vec(op, 1..6), any::<bool>()), |(list, start_at_file)| {
            let mut ops = if start_at_file { Ops::new(2).putfh(&file) } else { Ops::new(2).putrootfh() };
            for (i, args) in list {
                ops = ops.raw(served[i], args);
            }
            let reply = s.direct(&loopback(), &Auth::None, &ops);
            prop_assert!(reply.results >= 1);
            let mut ops0 = Ops::new(0);
            ops0.ops = ops.ops.iter().filter(|(op, _)| *op < ops::SECINFO_NO_NAME).cloned().collect();
            let reply = s.call(&loopback(), &Auth::None, &ops0);
            prop_assert!(reply.results <= ops0.ops.len());
            Ok(())
        })
        .unwrap();
}

#[test]
fn an_export_at_the_root_is_the_root() {
    let f = Fixture::new();
    let s = f.root_server();
    let ns = s.engine.export("/").unwrap();
    let root = ns.handle(&ns.inode("test", ns.root_ino()).unwrap());
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putrootfh().getfh().readdir(0, 0, 8192, &[TYPE]));
    r.ok(ops::PUTROOTFH);
    assert_eq!(nfs::v4::fh::Fh::decode(&r.getfh()), Some(nfs::v4::fh::Fh::Export(root)));
    let mut names: Vec<_> = r.readdir().entries.into_iter().map(|e| e.name).collect();
    names.sort();
    assert_eq!(names, ["big.bin", "d1", "small.txt"]);
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putpubfh().lookup("small.txt").read(0, 100));
    r.ok(ops::PUTPUBFH);
    r.ok(ops::LOOKUP);
    assert_eq!(r.read_data(), (true, b"hello, world\n".to_vec()));
    let mut r = s.call(&loopback(), &Auth::None, &Ops::new(0).putrootfh().lookupp());
    r.ok(ops::PUTROOTFH);
    assert_eq!(r.op(ops::LOOKUPP), Status::NOENT);
}
