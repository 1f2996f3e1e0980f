#!/usr/bin/env python3
"""The write-path checks of image/qemu/test-nfs-write.sh, run in the QEMU guest on a kernel NFS
mount (through `hostchroot python3`). Every check keeps a model of what it wrote and compares
what it reads back with it (after dropping the page cache, so reads go to the server), and
appends the expected final files to a manifest that the host compares with the server's tree.

  nfswrite.py checkpoint DIR --manifest M --rel REL [--mib 64] [--rounds 4] [--seed S]
  nfswrite.py locks DIR DIR2                  (DIR2: the same directory through a second
                                               mount with nosharecache, i.e. server-side locks)
  nfswrite.py data DIR --manifest M --rel REL [--seed S]
  nfswrite.py namespace DIR --manifest M --rel REL --server ganesha|bucketfs
  nfswrite.py compare ROOT MANIFEST [posix|bucket]
Exit status 0 when every check passed; 1 with "FAIL: path: offset N: expected .. got .." else.
"""
import argparse
import errno
import fcntl
import hashlib
import json
import os
import random
import stat
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the sources (the host runs these too)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfstest_common import (Fail, Manifest, drop_caches, errname, expect_bytes, hexbytes, log,  # noqa: E402
                            main_compare, read_file)

MIB = 1 << 20

# ---------------------------------------------------------------- checkpoint ---------------------
# A round's file: a 4 KiB header, N 1 MiB chunks, a 4 KiB trailer.
#   header:  b"BFSCKPT1" round(u64) chunks(u64) seed(u64), zero padded
#   chunk i: b"BFSCHUNK" round(u64) i(u64) seed(u64) + the round's 1 MiB random block[32:]
#   trailer: b"BFSCKEND" round(u64) chunks(u64) md5-of-header-and-chunks (16 bytes), zero padded
# so a reader that mixes two rounds sees a header/trailer/chunk tag of another round. The writer
# writes the trailer last: a reader reading trailer then header catches any in-place rewrite.
HDR = 4096


def ckpt_header(seed, rnd, chunks):
    return struct.pack("<8sQQQ", b"BFSCKPT1", rnd, chunks, seed).ljust(HDR, b"\0")


class Round:
    def __init__(self, seed, rnd, chunks):
        self.seed, self.rnd, self.chunks = seed, rnd, chunks
        self.block = random.Random(f"ckpt:{seed}:{rnd}").randbytes(MIB)
        self.header = ckpt_header(seed, rnd, chunks)
        h = hashlib.md5(self.header)
        for i in range(chunks):
            h.update(self.chunk(i))
        self.trailer = struct.pack("<8sQQ16s", b"BFSCKEND", rnd, chunks, h.digest()).ljust(HDR, b"\0")
        self.md5 = None

    def chunk(self, i):
        return struct.pack("<8sQQQ", b"BFSCHUNK", self.rnd, i, self.seed) + self.block[32:]

    def size(self):
        return 2 * HDR + self.chunks * MIB

    def content(self):
        return self.header + b"".join(self.chunk(i) for i in range(self.chunks)) + self.trailer


def ckpt_writer(args):
    """Rounds of: write ckpt.tmp in 1 MiB writes, fsync, rename over ckpt."""
    d = args.dir
    for rnd in range(1, args.rounds + 1):
        r = Round(args.seed, rnd, args.mib)
        t0 = time.time()
        fd = os.open(f"{d}/ckpt.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, r.header)
        for i in range(r.chunks):
            b = r.chunk(i)
            if os.write(fd, b) != len(b):
                raise Fail(f"{d}/ckpt.tmp: short write of chunk {i}")
        os.write(fd, r.trailer)
        os.fsync(fd)
        os.close(fd)
        os.rename(f"{d}/ckpt.tmp", f"{d}/ckpt")
        log(f"   writer: round {rnd} written, fsynced, renamed over ckpt ({time.time() - t0:.1f} s)")


def ckpt_read_once(path, seed, rounds_cache, direct, rng):
    """Read ckpt once; check it is one complete round; return the round number.

    The trailer is read first, then the header, then the chunks in random order: a file being
    rewritten in place (or a name that points at a half-written file) shows a trailer, header
    or chunk of another round at once, whatever the relative speed of reader and writer."""
    flags = os.O_RDONLY | (os.O_DIRECT if direct else 0)
    fd = os.open(path, flags)
    try:
        size = os.fstat(fd).st_size
        if size < 2 * HDR:
            raise Fail(f"{path}: size {size}: shorter than a header and a trailer (a torn or truncated file)")
        tail = os.pread(fd, HDR, size - HDR)
        head = os.pread(fd, HDR, 0)
        magic, rnd, chunks, s = struct.unpack_from("<8sQQQ", head)
        if magic != b"BFSCKPT1" or s != seed:
            raise Fail(f"{path}: offset 0: not a checkpoint header: got {hexbytes(head, 32)}")
        r = rounds_cache.get(rnd) or rounds_cache.setdefault(rnd, Round(seed, rnd, chunks))
        expect_bytes(path, r.header, head)
        if size != r.size():
            raise Fail(f"{path}: size {size}, but the header (round {rnd}) says {r.size()}: a torn file")
        if tail[:8] == b"BFSCKEND" and len(tail) >= 24:
            _, r3, _ = struct.unpack_from("<8sQQ", tail)
            if r3 != rnd:
                raise Fail(f"{path}: torn read: header says round {rnd}, trailer says round {r3}")
        expect_bytes(path, r.trailer, tail, size - HDR)
        order = list(range(chunks))
        rng.shuffle(order)
        for i in order:
            off = HDR + i * MIB
            b = os.pread(fd, MIB, off)
            want = r.chunk(i)
            if b != want:
                if len(b) >= 32 and b[:8] == b"BFSCHUNK":
                    _, r2, i2, _ = struct.unpack_from("<8sQQQ", b)
                    if (r2, i2) != (rnd, i):
                        raise Fail(f"{path}: torn read: header says round {rnd}, but the chunk at offset "
                                   f"{off} is chunk {i2} of round {r2}")
                expect_bytes(path, want, b, off)
        return rnd
    finally:
        os.close(fd)


def checkpoint(args):
    d = args.dir
    os.makedirs(d, exist_ok=True)
    path = f"{d}/ckpt"
    log(f"== checkpoint: {args.rounds} rounds of {args.mib} MiB (write ckpt.tmp, fsync, rename) "
        f"while another process reads ckpt in a loop")
    writer = subprocess.Popen([sys.executable, "-u", __file__, "ckpt-writer", d, "--mib", str(args.mib),
                               "--rounds", str(args.rounds), "--seed", str(args.seed)])
    cache, seen, last, reads, direct, no_direct = {}, {}, 0, 0, False, False
    rng = random.Random(f"reader:{args.seed}")
    t0 = time.time()
    try:
        while True:
            done = writer.poll() is not None
            if not os.path.exists(path):
                if done:
                    break
                time.sleep(0.05)
                continue
            try:
                rnd = ckpt_read_once(path, args.seed, cache, direct, rng)
            except FileNotFoundError:
                raise Fail(f"{path}: vanished between exists() and open() (rename must be atomic)")
            except OSError as e:
                if not (direct and e.errno == errno.EINVAL):
                    raise
                log("note: O_DIRECT reads refused (EINVAL: not NFS?); reading through the page cache only")
                no_direct = True
                direct = False
                continue
            if rnd < last:
                raise Fail(f"{path}: read round {rnd} after having read round {last} (went back in time)")
            last = rnd
            seen[rnd] = seen.get(rnd, 0) + 1
            reads += 1
            direct = not direct and not no_direct
            if done:
                break
            if time.time() - t0 > args.timeout:
                raise Fail(f"checkpoint: writer still running after {args.timeout} s")
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()
    if writer.returncode != 0:
        raise Fail(f"checkpoint writer exited {writer.returncode}")
    if last != args.rounds:
        raise Fail(f"{path}: the last read saw round {last}, expected the final round {args.rounds}")
    if os.path.exists(f"{d}/ckpt.tmp"):
        raise Fail(f"{d}/ckpt.tmp still exists after the last rename")
    drop_caches()
    final = Round(args.seed, args.rounds, args.mib).content()
    expect_bytes(path, final, read_file(path))
    concurrent = sum(n for r, n in seen.items() if r < args.rounds)
    log(f"ok: checkpoint: {reads} complete reads (rounds seen: {dict(sorted(seen.items()))}), "
        f"{concurrent} of them while the writer was still writing, none torn ({time.time() - t0:.1f} s)")
    if concurrent == 0:
        raise Fail("checkpoint: no read overlapped the writer; the test proved nothing (use more --mib/--rounds)")
    m = Manifest(args.manifest, args.rel)
    m.file("ckpt", final)
    m.flush()


# ---------------------------------------------------------------- locks --------------------------
FLOCK_FMT = "@hhqqi"  # struct flock on x86_64 (l_type, l_whence, l_start, l_len, l_pid) + padding
FLOCK_SIZE = 32
LOCK_TYPES = {"rd": fcntl.F_RDLCK, "wr": fcntl.F_WRLCK, "un": fcntl.F_UNLCK}
TYPE_NAMES = {v: k for k, v in LOCK_TYPES.items()}


def pack_flock(typ, start, length):
    return struct.pack(FLOCK_FMT, LOCK_TYPES[typ], os.SEEK_SET, start, length, 0).ljust(FLOCK_SIZE, b"\0")


class Locker:
    """Lock operations on named open files; the same code runs in the test and in its peer."""

    def __init__(self):
        self.fds = {}

    def do(self, cmd):
        op = cmd["op"]
        try:
            if op == "open":
                self.fds[cmd["name"]] = os.open(cmd["path"], os.O_RDWR | os.O_CREAT, 0o644)
                return {"ok": True}
            if op == "close":
                os.close(self.fds.pop(cmd["name"]))
                return {"ok": True}
            fd = self.fds[cmd["name"]]
            t0 = time.time()
            if op == "flock":
                flags = {"ex": fcntl.LOCK_EX, "sh": fcntl.LOCK_SH, "un": fcntl.LOCK_UN}[cmd["how"]]
                fcntl.flock(fd, flags | (0 if cmd.get("block") else fcntl.LOCK_NB))
                return {"ok": True, "secs": time.time() - t0}
            if op in ("setlk", "setlkw"):
                c = fcntl.F_SETLKW if op == "setlkw" else fcntl.F_SETLK
                fcntl.fcntl(fd, c, pack_flock(cmd["type"], cmd["start"], cmd["len"]))
                return {"ok": True, "secs": time.time() - t0}
            if op == "getlk":
                res = fcntl.fcntl(fd, fcntl.F_GETLK, pack_flock(cmd["type"], cmd["start"], cmd["len"]))
                typ, _, start, length, pid = struct.unpack_from(FLOCK_FMT, res)
                return {"ok": True, "type": TYPE_NAMES.get(typ, typ), "start": start, "len": length, "pid": pid}
            raise ValueError(op)
        except OSError as e:
            return {"ok": False, "errno": e.errno, "err": errname(e.errno)}


def lock_peer(_args):
    """The second process: reads JSON commands on stdin, answers each with one JSON line."""
    lk = Locker()
    print(json.dumps({"pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "exit":
            break
        print(json.dumps(lk.do(cmd)), flush=True)


class Peer:
    def __init__(self):
        self.p = subprocess.Popen([sys.executable, "-u", __file__, "lock-peer"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.pid = json.loads(self.p.stdout.readline())["pid"]

    def send(self, **cmd):
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()

    def recv(self):
        line = self.p.stdout.readline()
        if not line:
            raise Fail("lock peer process died")
        return json.loads(line)

    def do(self, **cmd):
        self.send(**cmd)
        return self.recv()

    def close(self):
        try:
            self.send(op="exit")
        except (BrokenPipeError, ValueError):
            pass
        self.p.wait(timeout=30)


WOULDBLOCK = (errno.EAGAIN, errno.EACCES)  # F_SETLK reports a conflict as either (POSIX)


def expect_ok(what, r):
    if not r["ok"]:
        raise Fail(f"locks: {what}: failed with {r['err']}, expected success")
    return r


def expect_conflict(what, r):
    if r["ok"]:
        raise Fail(f"locks: {what}: succeeded, expected EWOULDBLOCK/EAGAIN (the other process holds a conflicting lock)")
    if r["errno"] not in WOULDBLOCK:
        raise Fail(f"locks: {what}: failed with {r['err']}, expected EWOULDBLOCK/EAGAIN")


def lock_suite(d, peer_dir, label, same_mount):
    """A (this process) and B (the peer) lock the same files; B opens them through peer_dir."""
    a, b = Locker(), Peer()
    me = os.getpid()
    try:
        # flock: whole-file, exclusive vs shared (the client turns these into NFSv4 byte-range locks)
        for n in ("f1", "f2"):
            expect_ok(f"A open {d}/flock.lck", a.do({"op": "open", "name": n, "path": f"{d}/flock.lck"}))
            expect_ok(f"B open {peer_dir}/flock.lck", b.do(op="open", name=n, path=f"{peer_dir}/flock.lck"))
        expect_ok("A flock EX", a.do({"op": "flock", "name": "f1", "how": "ex"}))
        expect_conflict("B flock EX|NB while A holds EX", b.do(op="flock", name="f1", how="ex"))
        expect_conflict("B flock SH|NB while A holds EX", b.do(op="flock", name="f1", how="sh"))
        expect_ok("A flock UN", a.do({"op": "flock", "name": "f1", "how": "un"}))
        expect_ok("B flock EX|NB after A unlocked", b.do(op="flock", name="f1", how="ex"))
        expect_conflict("A flock SH|NB while B holds EX", a.do({"op": "flock", "name": "f1", "how": "sh"}))
        expect_ok("B flock UN", b.do(op="flock", name="f1", how="un"))
        expect_ok("A flock SH", a.do({"op": "flock", "name": "f1", "how": "sh"}))
        expect_ok("B flock SH|NB while A holds SH (shared locks coexist)", b.do(op="flock", name="f1", how="sh"))
        expect_conflict("A flock EX|NB on a second open file while both hold SH",
                        a.do({"op": "flock", "name": "f2", "how": "ex"}))
        expect_ok("B flock UN", b.do(op="flock", name="f1", how="un"))
        expect_ok("A flock EX (upgrade after B left)", a.do({"op": "flock", "name": "f1", "how": "ex"}))
        # blocking: B waits for A's lock, A releases it 1.5 s later
        b.send(op="flock", name="f1", how="ex", block=True)
        time.sleep(1.5)
        expect_ok("A flock UN", a.do({"op": "flock", "name": "f1", "how": "un"}))
        r = expect_ok("B blocking flock EX", b.recv())
        if r["secs"] < 1.0:
            raise Fail(f"locks: B's blocking flock returned after {r['secs']:.2f} s, before A unlocked")
        expect_ok("B flock UN", b.do(op="flock", name="f1", how="un"))
        log(f"ok: locks ({label}): flock EX/SH conflicts, shared coexistence, unlock hand-over, "
            f"blocking wait ({r['secs']:.1f} s)")

        # fcntl byte-range locks
        expect_ok("A open", a.do({"op": "open", "name": "r", "path": f"{d}/range.lck"}))
        expect_ok("B open", b.do(op="open", name="r", path=f"{peer_dir}/range.lck"))
        A = lambda **c: a.do(dict(c, name="r"))  # noqa: E731
        B = lambda **c: b.do(**dict(c, name="r"))  # noqa: E731
        expect_ok("A F_SETLK WR [0,100)", A(op="setlk", type="wr", start=0, len=100))
        expect_conflict("B F_SETLK WR [50,150) overlapping A's [0,100)", B(op="setlk", type="wr", start=50, len=100))
        expect_conflict("B F_SETLK RD [99,100) overlapping A's write lock", B(op="setlk", type="rd", start=99, len=1))
        expect_ok("B F_SETLK WR [100,200) next to A's [0,100)", B(op="setlk", type="wr", start=100, len=100))

        def getlk(who, name, want_type, start, length, holder_pid, req):
            r = expect_ok(f"{name} F_GETLK {req}", who(op="getlk", type=req[0], start=req[1], len=req[2]))
            got = (r["type"], r["start"], r["len"])
            if got != (want_type, start, length):
                raise Fail(f"locks: {name} F_GETLK {req}: reports {got}, expected {(want_type, start, length)}")
            # The Linux client answers F_GETLK from its own lock list when the holder is local (with
            # its pid); from the server's LOCKT when the lock came through another mount (pid 0).
            ok_pids = (holder_pid,) if same_mount else (holder_pid, 0)
            if r["pid"] not in ok_pids:
                raise Fail(f"locks: {name} F_GETLK {req}: reports pid {r['pid']}, expected {ok_pids}")
            return r

        getlk(B, "B", "wr", 0, 100, me, ("wr", 0, 10))
        getlk(A, "A", "wr", 100, 100, b.pid, ("wr", 150, 10))
        r = expect_ok("B F_GETLK WR [500,510)", B(op="getlk", type="wr", start=500, len=10))
        if r["type"] != "un":
            raise Fail(f"locks: B F_GETLK WR [500,510) (nobody holds it): reports {r}, expected F_UNLCK")
        expect_ok("A F_SETLK RD [300,400)", A(op="setlk", type="rd", start=300, len=100))
        expect_ok("B F_SETLK RD [350,450) (read locks share)", B(op="setlk", type="rd", start=350, len=100))
        expect_conflict("B F_SETLK WR [350,360) over A's read lock", B(op="setlk", type="wr", start=350, len=10))
        expect_conflict("A F_SETLK WR [420,430) over B's read lock", A(op="setlk", type="wr", start=420, len=10))
        getlk(B, "B", "rd", 300, 100, me, ("wr", 310, 5))
        expect_ok("A F_SETLK UN [0,100)", A(op="setlk", type="un", start=0, len=100))
        expect_ok("B F_SETLK WR [0,100) after A unlocked it", B(op="setlk", type="wr", start=0, len=100))
        expect_ok("A F_SETLK WR [1000,EOF) (len 0: to the end)", A(op="setlk", type="wr", start=1000, len=0))
        expect_conflict("B F_SETLK WR at 1 GiB (inside A's lock to EOF)", B(op="setlk", type="wr", start=1 << 30, len=10))
        # blocking F_SETLKW: B waits for [1005,1006), A unlocks everything from 1000 after 1.5 s
        b.send(op="setlkw", name="r", type="wr", start=1005, len=1)
        time.sleep(1.5)
        expect_ok("A F_SETLK UN [1000,EOF)", A(op="setlk", type="un", start=1000, len=0))
        r = expect_ok("B F_SETLKW WR [1005,1006)", b.recv())
        if r["secs"] < 1.0:
            raise Fail(f"locks: B's F_SETLKW returned after {r['secs']:.2f} s, before A unlocked")
        # closing any descriptor of a file drops the process's POSIX locks on it
        expect_ok("B close", B(op="close"))
        expect_ok("A F_SETLK WR [0,2000) after B closed its file", A(op="setlk", type="wr", start=0, len=2000))
        a.do({"op": "close", "name": "r"})
        for n in ("f1", "f2"):
            a.do({"op": "close", "name": n})
            b.do(op="close", name=n)
        log(f"ok: locks ({label}): F_SETLK overlap conflicts, adjacent ranges coexist, read locks share, "
            f"F_GETLK reports holder and range, lock to EOF, F_SETLKW waits ({r['secs']:.1f} s), close releases")
    finally:
        b.close()


def locks(args):
    log("== locks: flock and fcntl byte-range locks from two processes")
    os.makedirs(args.dir, exist_ok=True)
    lock_suite(args.dir, args.dir, "two processes, one mount", True)
    if args.dir2:
        lock_suite(args.dir, args.dir2, "two processes, two mounts (conflicts decided by the server)", False)
    for n in ("flock.lck", "range.lck"):
        os.unlink(f"{args.dir}/{n}")
    os.rmdir(args.dir)


# ---------------------------------------------------------------- data ---------------------------
def check_file(path, model, what):
    drop_caches()
    expect_bytes(f"{path} ({what})", bytes(model), read_file(path))


def check_stat_size(path, size, what):
    st = os.stat(path)
    if st.st_size != size:
        raise Fail(f"{path}: st_size {st.st_size} after {what}, expected {size}")
    return st


def data(args):
    d = args.dir
    os.makedirs(d, exist_ok=True)
    rng = random.Random(f"data:{args.seed}")
    m = Manifest(args.manifest, args.rel)

    log("== data: ftruncate down and up, truncate by path")
    p = f"{d}/trunc.bin"
    model = bytearray(rng.randbytes(MIB))
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, model)
    os.fsync(fd)
    st0 = os.fstat(fd)
    time.sleep(1.1)
    os.ftruncate(fd, 300_001)
    del model[300_001:]
    st1 = check_stat_size(p, 300_001, "ftruncate down")
    if st1.st_mtime_ns <= st0.st_mtime_ns:
        raise Fail(f"{p}: mtime did not move on ftruncate ({st0.st_mtime_ns} -> {st1.st_mtime_ns})")
    os.ftruncate(fd, 2 * MIB + 5)
    model.extend(bytes(2 * MIB + 5 - len(model)))
    check_stat_size(p, 2 * MIB + 5, "ftruncate up")
    os.pwrite(fd, b"tail", 2 * MIB + 1)
    model[2 * MIB + 1:2 * MIB + 5] = b"tail"
    os.fsync(fd)
    os.close(fd)
    check_file(p, model, "after ftruncate down to 300001 and up to 2 MiB + 5: the extension reads as zeros")
    os.truncate(p, 1_000_000)
    del model[1_000_000:]
    check_stat_size(p, 1_000_000, "truncate(path)")
    check_file(p, model, "after truncate(path, 1000000)")
    m.file("trunc.bin", model)
    log("ok: truncate: sizes, zero-filled extension, contents, mtime")

    log("== data: O_APPEND")
    p = f"{d}/append.log"
    model = bytearray()
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for i in range(300):
        rec = f"record {i:05d} ".encode() + rng.randbytes(rng.choice((1, 50, 1000, 4095, 4096, 9000)))
        if i % 50 == 25:
            os.lseek(fd, 0, os.SEEK_SET)  # O_APPEND writes at the end whatever the offset
        if os.write(fd, rec) != len(rec):
            raise Fail(f"{p}: short append of record {i}")
        model += rec
        if i % 100 == 99:
            os.fsync(fd)
            check_stat_size(p, len(model), f"{i + 1} appends")
    os.close(fd)
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)  # a second open appends after the first's data
    os.write(fd, b"second open\n")
    model += b"second open\n"
    os.close(fd)
    check_stat_size(p, len(model), "appends")
    check_file(p, model, "after 301 O_APPEND writes")
    m.file("append.log", model)
    log(f"ok: append: {len(model)} bytes in order")

    log("== data: random-offset pwrite (buffered and O_DIRECT) against a model")
    p = f"{d}/random.bin"
    model = bytearray(rng.randbytes(3 * MIB))
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, model)
    dfd = os.open(p, os.O_RDWR | os.O_DIRECT)
    ndirect = 0
    sizes = (1, 7, 512, 4096, 4097, 65536, 100_000, MIB)
    nops = 400
    for i in range(nops):
        n = rng.choice(sizes)
        off = rng.randrange(0, 5 * MIB)  # beyond the end too: the gap reads as zeros
        buf = rng.randbytes(n)
        use = dfd if i % 10 == 3 and dfd is not None else fd
        try:
            written = os.pwrite(use, buf, off)
        except OSError as e:
            if use != dfd or e.errno != errno.EINVAL:
                raise
            log("note: O_DIRECT writes refused (EINVAL: not NFS?); buffered writes only")
            os.close(dfd)
            dfd = None
            written = os.pwrite(fd, buf, off)
        if written != n:
            raise Fail(f"{p}: short pwrite of {n} at {off}")
        ndirect += use == dfd
        if off > len(model):
            model.extend(bytes(off - len(model)))
        model[off:off + n] = buf
        if i % 100 == 99:
            os.fsync(fd)
            check_stat_size(p, len(model), f"{i + 1} pwrites")
            check_file(p, model, f"after {i + 1} random pwrites")
    if dfd is not None:
        os.close(dfd)
    st0 = os.fstat(fd)
    time.sleep(1.1)
    os.pwrite(fd, b"moved", len(model))
    model += b"moved"
    os.fsync(fd)
    st1 = os.fstat(fd)
    os.close(fd)
    if st1.st_size != len(model) or st1.st_mtime_ns <= st0.st_mtime_ns or st1.st_ctime_ns <= st0.st_ctime_ns:
        raise Fail(f"{p}: after an extending write size/mtime/ctime {st0.st_size}/{st0.st_mtime_ns}/{st0.st_ctime_ns}"
                   f" -> {st1.st_size}/{st1.st_mtime_ns}/{st1.st_ctime_ns}; expected size {len(model)}, both times later")
    drop_caches()
    st2 = os.stat(p)
    if (st2.st_size, st2.st_mtime_ns) != (st1.st_size, st1.st_mtime_ns):
        raise Fail(f"{p}: the server's size/mtime {st2.st_size}/{st2.st_mtime_ns} differ from the client's "
                   f"{st1.st_size}/{st1.st_mtime_ns} after fsync")
    check_file(p, model, "final")
    m.file("random.bin", model)
    log(f"ok: random writes: {nops} pwrites ({ndirect} with O_DIRECT), size {len(model)}, stat size/mtime/ctime move")

    log("== data: sparse file")
    p = f"{d}/sparse.bin"
    hole = 16 * MIB
    tail = rng.randbytes(4096)
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.pwrite(fd, tail, hole)
    os.fsync(fd)
    os.close(fd)
    drop_caches()
    st = check_stat_size(p, hole + 4096, "a write at 16 MiB into an empty file")
    fd = os.open(p, os.O_RDONLY)
    for off in (0, 4096, 8 * MIB + 123, hole - 4096):
        got = os.pread(fd, 4096, off)
        expect_bytes(f"{p} (hole)", bytes(4096), got, off)
    expect_bytes(p, tail, os.pread(fd, 8192, hole), hole)
    os.close(fd)
    m.file("sparse.bin", bytes(hole) + tail)
    log(f"ok: sparse: the hole reads as zeros, size {st.st_size}, {st.st_blocks * 512} bytes allocated")

    log("== data: setattr (chmod, utime)")
    p = f"{d}/trunc.bin"
    os.chmod(p, 0o600)
    os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_000))
    drop_caches()
    st = os.stat(p)
    if stat.S_IMODE(st.st_mode) != 0o600:
        raise Fail(f"{p}: mode {oct(stat.S_IMODE(st.st_mode))} after chmod 0600")
    if abs(st.st_mtime_ns - 1_600_000_000_123_456_000) >= 1_000_000_000:
        raise Fail(f"{p}: mtime {st.st_mtime_ns} after utime to 1600000000.123456")
    os.chmod(p, 0o644)
    log(f"ok: setattr: mode 0600 and an explicit mtime are kept (mtime {st.st_mtime_ns} ns)")
    m.flush()


# ---------------------------------------------------------------- namespace ----------------------
def expect_errno(what, fn, allowed):
    try:
        fn()
    except OSError as e:
        if e.errno in allowed:
            return e.errno
        raise Fail(f"{what}: failed with {errname(e.errno)} ({e.strerror}), expected "
                   f"{'/'.join(errname(a) for a in allowed)}")
    raise Fail(f"{what}: succeeded, expected {'/'.join(errname(a) for a in allowed)}")


def namespace(args):
    d = args.dir
    log("== namespace: mkdir -p, create, rename a directory with files, rename over a file, remove, links")
    rng = random.Random(f"ns:{args.seed}")
    files = {}  # relative path -> content (the model)

    def create(rel, n):
        b = rng.randbytes(n)
        with open(f"{d}/{rel}", "wb") as f:
            f.write(b)
        files[rel] = b

    os.makedirs(f"{d}/tree/a/b/c/d")
    os.makedirs(f"{d}/tree/a/b/c/d", exist_ok=True)  # mkdir -p on an existing tree
    for rel in ("tree/a/f1", "tree/a/b/f2", "tree/a/b/c/f3", "tree/a/b/c/d/f4"):
        create(rel, rng.randrange(1, 200_000))
    os.mkdir(f"{d}/tree/a/b/many")
    for i in range(40):
        create(f"tree/a/b/many/m{i:02d}", rng.randrange(0, 5000))
    expect_errno("mkdir of an existing directory", lambda: os.mkdir(f"{d}/tree/a"), (errno.EEXIST,))
    expect_errno("create with O_EXCL over an existing file",
                 lambda: os.open(f"{d}/tree/a/f1", os.O_CREAT | os.O_EXCL | os.O_WRONLY), (errno.EEXIST,))

    # rename a whole directory (with a subtree of 44 files) within its parent, then across parents
    os.rename(f"{d}/tree/a/b", f"{d}/tree/a/b2")
    files = {k.replace("tree/a/b/", "tree/a/b2/", 1): v for k, v in files.items()}
    os.mkdir(f"{d}/tree/x")
    os.rename(f"{d}/tree/a/b2", f"{d}/tree/x/moved")
    files = {k.replace("tree/a/b2/", "tree/x/moved/", 1): v for k, v in files.items()}
    drop_caches()
    for gone in ("tree/a/b", "tree/a/b2", "tree/a/b2/f2"):
        if os.path.lexists(f"{d}/{gone}"):
            raise Fail(f"{d}/{gone}: still exists after the directory was renamed away")
    for rel, b in files.items():
        expect_bytes(f"{d}/{rel}", b, read_file(f"{d}/{rel}"))
    if sorted(os.listdir(f"{d}/tree/x/moved/many")) != [f"m{i:02d}" for i in range(40)]:
        raise Fail(f"{d}/tree/x/moved/many lists {sorted(os.listdir(f'{d}/tree/x/moved/many'))}")
    log("ok: namespace: a directory with 44 files under it renamed twice; every file readable at its new path")

    # rename over an existing file; over an empty directory; refused over a non-empty one
    create("tree/a/src", 12345)
    os.rename(f"{d}/tree/a/src", f"{d}/tree/a/f1")
    files["tree/a/f1"] = files.pop("tree/a/src")
    os.mkdir(f"{d}/tree/e1")
    os.mkdir(f"{d}/tree/e2")
    os.rename(f"{d}/tree/e1", f"{d}/tree/e2")
    expect_errno("rename a directory over a non-empty one",
                 lambda: os.rename(f"{d}/tree/e2", f"{d}/tree/x"), (errno.ENOTEMPTY, errno.EEXIST))
    expect_errno("rename a missing file", lambda: os.rename(f"{d}/tree/nope", f"{d}/tree/nope2"), (errno.ENOENT,))
    drop_caches()
    expect_bytes(f"{d}/tree/a/f1", files["tree/a/f1"], read_file(f"{d}/tree/a/f1"))
    for gone in ("tree/a/src", "tree/e1"):
        if os.path.lexists(f"{d}/{gone}"):
            raise Fail(f"{d}/{gone}: still exists after being renamed")
    log("ok: namespace: rename over a file replaces it, over an empty directory replaces it, "
        "over a non-empty one fails")

    # remove files and directories
    for i in range(0, 40, 2):
        os.unlink(f"{d}/tree/x/moved/many/m{i:02d}")
        del files[f"tree/x/moved/many/m{i:02d}"]
    expect_errno("rmdir of a non-empty directory", lambda: os.rmdir(f"{d}/tree/x/moved/many"), (errno.ENOTEMPTY, errno.EEXIST))
    os.unlink(f"{d}/tree/x/moved/c/d/f4")
    del files["tree/x/moved/c/d/f4"]
    os.rmdir(f"{d}/tree/x/moved/c/d")
    expect_errno("unlink of a missing file", lambda: os.unlink(f"{d}/tree/x/moved/c/d"), (errno.ENOENT,))
    expect_errno("rmdir of a file", lambda: os.rmdir(f"{d}/tree/a/f1"), (errno.ENOTDIR,))
    os.mkdir(f"{d}/tree/empty")  # stays, empty
    drop_caches()
    if sorted(os.listdir(f"{d}/tree/x/moved/many")) != [f"m{i:02d}" for i in range(1, 40, 2)]:
        raise Fail(f"{d}/tree/x/moved/many lists {sorted(os.listdir(f'{d}/tree/x/moved/many'))} after removing the even ones")
    if sorted(os.listdir(f"{d}/tree/x/moved/c")) != ["f3"]:
        raise Fail(f"{d}/tree/x/moved/c lists {os.listdir(f'{d}/tree/x/moved/c')}, expected ['f3']")
    log("ok: namespace: unlink, rmdir of an empty directory, ENOTEMPTY/ENOENT/ENOTDIR where due")

    # hard links: ganesha (a POSIX filesystem) allows them; bucketfs must refuse them clearly
    src, dst = f"{d}/tree/x/moved/f2", f"{d}/tree/hardlink"
    if args.server == "bucketfs":
        e = expect_errno("ln (hard link) on bucketfs", lambda: os.link(src, dst), (errno.EPERM, errno.EOPNOTSUPP, 524))
        if os.path.lexists(dst):
            raise Fail(f"{dst}: exists although link() failed")
        log(f"ok: namespace: hard link refused with {errname(e)}")
    else:
        os.link(src, dst)
        files["tree/hardlink"] = files["tree/x/moved/f2"]
        if os.stat(src).st_nlink != 2:
            raise Fail(f"{src}: st_nlink {os.stat(src).st_nlink} after link(), expected 2")
        log("ok: namespace: hard link created, st_nlink 2")

    # symlinks
    os.symlink("x/moved/f2", f"{d}/tree/sl")
    os.symlink("no/such/target", f"{d}/tree/dangling")
    links = {"tree/sl": "x/moved/f2", "tree/dangling": "no/such/target"}
    drop_caches()
    for rel, target in links.items():
        got = os.readlink(f"{d}/{rel}")
        if got != target:
            raise Fail(f"{d}/{rel}: readlink gives {got!r}, expected {target!r}")
        if not stat.S_ISLNK(os.lstat(f"{d}/{rel}").st_mode):
            raise Fail(f"{d}/{rel}: lstat does not report a symlink")
    expect_bytes(f"{d}/tree/sl (through the symlink)", files["tree/x/moved/f2"], read_file(f"{d}/tree/sl"))
    expect_errno("open through a dangling symlink", lambda: open(f"{d}/tree/dangling", "rb"), (errno.ENOENT,))
    log("ok: namespace: symlink create, readlink, lstat, open through it")

    m = Manifest(args.manifest, args.rel)
    for rel, b in files.items():
        m.file(rel, b)
    for rel, t in links.items():
        m.link(rel, t)
    for rel in ("tree", "tree/a", "tree/x", "tree/x/moved", "tree/x/moved/c", "tree/x/moved/many",
                "tree/e2", "tree/empty"):
        m.dir(rel)
    m.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("dir", nargs="?")
    ap.add_argument("dir2", nargs="?")
    ap.add_argument("--manifest", default="")
    ap.add_argument("--rel", default="")
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--server", default="ganesha")
    args, rest = ap.parse_known_args()
    if args.cmd == "compare":
        return main_compare(sys.argv[2:])
    fn = {"checkpoint": checkpoint, "ckpt-writer": ckpt_writer, "locks": locks, "lock-peer": lock_peer,
          "data": data, "namespace": namespace}.get(args.cmd)
    if fn is None or rest:
        ap.error(f"unknown command or arguments: {args.cmd} {rest}")
    try:
        fn(args)
    except Fail as e:
        log(f"FAIL: {e}")
        return 1
    except OSError as e:
        log(f"FAIL: {args.cmd}: unexpected error {errname(e.errno)}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
