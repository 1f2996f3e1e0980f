#!/usr/bin/env python3
"""The writer and the verifier of image/qemu/test-nfs-crash.sh (server SIGKILLed mid-load).

A writer follows a schedule fixed by (seed, role): OPS record writes, each one pwrite of a
whole record into slot S of file F (slot S spans [S*RECORD, (S+1)*RECORD); RECORD is not a
multiple of the page size, so records share pages). Every write of a slot carries the next
generation G of that slot; the content of (F, S, G) is a 32-byte tag (b"BFSCRASH", role, F, S,
G) then bytes drawn from Random(seed, role, F, S, G), so any 512-byte piece of a file says which
write it came from. Every FSYNC_EVERY writes the writer fsyncs every file and, once fsync has
returned, appends "ack F I" to its log (I = index of the last write issued, so every write to F
up to I is durable). The log lives on the host-visible 9p share, so it survives the crash and
the host can count acks to pick the moment of the kill.

  nfscrash.py write DIR --role survivor|victim --log LOG [--seed S] [--files 4] [--slots 48]
                        [--record 50152] [--ops 2000] [--fsync-every 10]
  nfscrash.py verify DIR --role R --log LOG [same schedule options] [--manifest M --rel REL]

verify checks each file of the role against the log:
  * a slot whose last acknowledged write is generation D must hold generation >= D in full
    (the fsync returned: that write, or a later one, must be there; an older generation, zeros,
    or a short file there is a LOST DURABLE WRITE);
  * any other byte must be old or new content: every 512-byte piece (aligned in the file) must
    be the same piece of some generation >= D of its slot (or zeros / past EOF where nothing was
    durable), byte by byte at worst; anything else is GARBAGE;
  * nothing past the end of the last slot the schedule ever writes.
A writer whose log ends with "done" (it finished: its last fsync returned) must have left
exactly its final state.
"""
import argparse
import os
import random
import struct
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the sources (the host runs these too)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfstest_common import Fail, Manifest, hexbytes, log  # noqa: E402

PIECE = 512
ROLES = {"survivor": 1, "victim": 2}


class Schedule:
    def __init__(self, a):
        self.a = a
        self.role = ROLES[a.role]
        rng = random.Random(f"crash:{a.seed}:{a.role}")
        self.ops = []  # (file, slot, gen)
        gen = {}
        for _ in range(a.ops):
            f, s = rng.randrange(a.files), rng.randrange(a.slots)
            gen[(f, s)] = gen.get((f, s), 0) + 1
            self.ops.append((f, s, gen[(f, s)]))
        self._cache = {}

    def path(self, f):
        return f"{self.a.dir}/{self.a.role}-{f}.dat"

    def content(self, f, s, g):
        key = (f, s, g)
        c = self._cache.get(key)
        if c is None:
            r = random.Random(f"crash:{self.a.seed}:{self.role}:{f}:{s}:{g}")
            tag = struct.pack("<8sIIII", b"BFSCRASH", self.role, f, s, g).ljust(32, b"\0")
            c = tag + r.randbytes(self.a.record - 32)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = c
        return c


def write(a):
    sch = Schedule(a)
    os.makedirs(a.dir, exist_ok=True)
    fds = [os.open(sch.path(f), os.O_RDWR | os.O_CREAT, 0o644) for f in range(a.files)]
    logf = open(a.log, "a", buffering=1)
    logf.write(f"start pid {os.getpid()} time {time.time():.3f}\n")
    t0 = time.time()
    for i, (f, s, g) in enumerate(sch.ops):
        b = sch.content(f, s, g)
        if os.pwrite(fds[f], b, s * a.record) != len(b):
            raise Fail(f"{sch.path(f)}: short pwrite at {s * a.record}")
        if (i + 1) % a.fsync_every == 0 or i + 1 == len(sch.ops):
            for ff in range(a.files):
                os.fsync(fds[ff])
                logf.write(f"ack {ff} {i}\n")
    for fd in fds:
        os.close(fd)
    logf.write(f"done time {time.time():.3f}\n")
    logf.close()
    log(f"   {a.role}: {len(sch.ops)} writes of {a.record} bytes to {a.files} files, fsync every "
        f"{a.fsync_every}: done in {time.time() - t0:.1f} s")


def read_log(path):
    durable, done, nacks = {}, False, 0
    with open(path) as f:
        for n, line in enumerate(f, 1):
            w = line.split()
            if not w:
                continue
            if w[0] == "ack" and len(w) == 3:
                durable[int(w[1])] = max(durable.get(int(w[1]), -1), int(w[2]))
                nacks += 1
            elif w[0] == "done":
                done = True
            elif w[0] != "start":
                raise Fail(f"{path}:{n}: unreadable log line {line!r}")
    return durable, done, nacks


def verify(a):
    sch = Schedule(a)
    durable_op, done, nacks = read_log(a.log)
    R = a.record
    slot_gens = {}        # (f, s) -> [gen by op order]
    durable_gen = {}      # (f, s) -> last gen acknowledged durable
    for i, (f, s, g) in enumerate(sch.ops):
        slot_gens.setdefault((f, s), []).append(g)
        if i <= durable_op.get(f, -1):
            durable_gen[(f, s)] = g
    final = {k: v[-1] for k, v in slot_gens.items()}
    mode = "complete (the writer finished: exactly its final state)" if done else \
        "interrupted (durable writes must be there, the rest old or new)"
    stats = {"slots": 0, "durable": 0, "newer_than_durable": 0, "mixed_pieces": 0, "nothing_durable": 0}
    m = Manifest(a.manifest, a.rel) if a.manifest else None
    for f in range(a.files):
        path = sch.path(f)
        with open(path, "rb") as fh:
            data = fh.read()
        written = [s for (ff, s) in slot_gens if ff == f]
        max_end = (max(written) + 1) * R if written else 0
        durable_end = max([(s + 1) * R for (ff, s) in durable_gen if ff == f] or [0])
        if done and len(data) != max_end:
            raise Fail(f"{path}: size {len(data)}, expected {max_end} (the writer finished)")
        if len(data) < durable_end:
            raise Fail(f"{path}: LOST DURABLE WRITE: size {len(data)}, but writes up to offset {durable_end} "
                       f"were acknowledged by fsync")
        if len(data) > max_end:
            raise Fail(f"{path}: GARBAGE: size {len(data)}, but no write ever reached past {max_end}: "
                       f"bytes at offset {max_end}: {hexbytes(data[max_end:])}")
        for s in range(a.slots):
            base = s * R
            got = data[base:base + R]
            gens = slot_gens.get((f, s), [])
            d = durable_gen.get((f, s), 0)
            if done:
                cands = [final[(f, s)]] if gens else []
                zeros_ok = not gens
            else:
                cands = sorted({g for g in gens if g >= d}, reverse=True)  # newest first
                zeros_ok = d == 0
            if not gens and not got:
                continue
            stats["slots"] += 1
            stats["durable"] += d > 0
            stats["nothing_durable"] += d == 0
            if len(got) < R and not zeros_ok:
                raise Fail(f"{path}: LOST DURABLE WRITE: slot {s} at offset {base} has {len(got)} of {R} bytes "
                           f"(generation {d} was acknowledged durable)")
            check_slot(sch, path, f, s, base, got, cands, zeros_ok, d, gens, stats)
        if m is not None:
            m.file(os.path.basename(path), data)
    if m is not None:
        m.flush()
    log(f"ok: {a.role}: {mode}; log: {nacks} acks; {stats['slots']} slots checked, {stats['durable']} with an "
        f"acknowledged write (all present), {stats['newer_than_durable']} holding a newer write than the last "
        f"acknowledged one, {stats['nothing_durable']} with none acknowledged, {stats['mixed_pieces']} pieces "
        f"mixing generations byte-wise")


def check_slot(sch, path, f, s, base, got, cands, zeros_ok, d, gens, stats):
    contents = [(g, sch.content(f, s, g)) for g in cands[:1]]
    if contents and got == contents[0][1]:
        stats["newer_than_durable"] += contents[0][0] > d
        return
    contents = [(g, sch.content(f, s, g)) for g in cands]
    if zeros_ok:
        contents.append((0, bytes(sch.a.record)))
    # piece by piece, pieces aligned to PIECE in the file
    off = base
    end = base + len(got)
    newer = False
    while off < end:
        nxt = min(end, (off // PIECE + 1) * PIECE)
        a, b = off - base, nxt - base
        piece = got[a:b]
        match = [g for g, c in contents if c[a:b] == piece]
        if match:
            newer = newer or max(match) > d
        else:
            for k in range(len(piece)):  # a tear inside the piece? every byte must still be someone's
                if not any(c[a + k] == piece[k] for _, c in contents):
                    older = [g for g in gens if g < d and sch.content(f, s, g)[a:b] == piece]
                    if d > 0 and piece == bytes(len(piece)):
                        raise Fail(f"{path}: LOST DURABLE WRITE: offset {off}: slot {s} reads as zeros there, "
                                   f"but generation {d} was acknowledged durable")
                    if older:
                        raise Fail(f"{path}: LOST DURABLE WRITE: offset {off}: slot {s} holds generation "
                                   f"{older[-1]} there, but generation {d} was acknowledged durable")
                    want = ", ".join(f"gen {g}: {hexbytes(c[a + k:])}" for g, c in contents[:4])
                    raise Fail(f"{path}: GARBAGE at offset {off + k} (slot {s}, acknowledged generation {d}): "
                               f"got {hexbytes(piece[k:])}; expected one of [{want or 'nothing: never written'}]")
            stats["mixed_pieces"] += 1
        off = nxt
    stats["newer_than_durable"] += newer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=("write", "verify"))
    ap.add_argument("dir")
    ap.add_argument("--role", choices=tuple(ROLES), required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--slots", type=int, default=48)
    ap.add_argument("--record", type=int, default=50152)
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--fsync-every", type=int, default=10)
    ap.add_argument("--manifest", default="")
    ap.add_argument("--rel", default="")
    a = ap.parse_args()
    try:
        (write if a.cmd == "write" else verify)(a)
    except Fail as e:
        log(f"FAIL: {e}")
        return 1
    except OSError as e:
        log(f"FAIL: {a.cmd} {a.role}: unexpected error {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
