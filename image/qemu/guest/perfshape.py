#!/usr/bin/env python3
"""perf/run's workloads through the Linux kernel NFS client (run in the QEMU guest by
image/qemu/perf-kernel.sh, through `hostchroot python3`).

  perfshape.py ROOT MANIFEST OUT [--random-seconds S] [--ckpt-mib M] [--ckpt-rounds N]

ROOT is the mounted export, MANIFEST the dataset's JSON (written by the host: shards, large
files, small files, listing entries, each with size and md5), OUT where the results go (JSON).
Phases, each preceded by dropping the guest's page, dentry and inode caches so the server
answers: epochs 1-3 of the shards (4 readers, 1 MiB reads, shuffled, md5 checked), random
4 KiB and 128 KiB O_DIRECT reads in the large files (4 threads, time-based), small files cold
and warm (open + read + close, md5 checked), listing cold and warm (scandir + lstat), and
checkpoint rounds (1 MiB writes, fsync, rename over ckpt; the result checked).

Around each phase it prints `PERFSHAPE begin|end N NAME` on the console and waits for the host's
acknowledgement file OUTDIR/ack-N-begin|end: the host counts the server's requests to the
bucket between the two. Any wrong byte or I/O error fails the program (exit 1).
"""
import hashlib
import json
import mmap
import os
import random
import sys
import threading
import time

JOBS = 4
MIB = 1 << 20


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


class Sync:
    """Console markers and the host's acknowledgements."""

    def __init__(self, outdir):
        self.outdir = outdir
        self.n = 0

    def mark(self, what, name):
        print(f"PERFSHAPE {what} {self.n} {name}", flush=True)
        ack = os.path.join(self.outdir, f"ack-{self.n}-{what}")
        deadline = time.time() + 300
        while not os.path.exists(ack):
            if time.time() > deadline:
                raise SystemExit(f"GUEST-FAIL: no acknowledgement {ack} from the host")
            time.sleep(0.05)


def pct(samples, q):
    if not samples:
        return 0.0
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def lat(samples_s):
    ms = [x * 1e3 for x in samples_s]
    return {"p50_ms": pct(ms, 0.5), "p99_ms": pct(ms, 0.99), "p999_ms": pct(ms, 0.999)}


def run_threads(fn, items, jobs=JOBS):
    """fn(item) over items by `jobs` threads taking the next item; first error re-raised."""
    lock = threading.Lock()
    it = iter(items)
    errors = []

    def worker():
        while True:
            with lock:
                try:
                    item = next(it)
                except StopIteration:
                    return
            try:
                fn(item)
            except BaseException as e:  # noqa: BLE001 - reported and re-raised below
                errors.append(e)
                return

    ts = [threading.Thread(target=worker) for _ in range(jobs)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def read_whole(path, size, md5, read_bytes, reads):
    h = hashlib.md5()
    got = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            t = time.perf_counter()
            b = f.read(read_bytes)
            if not b:
                break
            reads.append(time.perf_counter() - t)
            h.update(b)
            got += len(b)
    if got != size or h.hexdigest() != md5:
        raise SystemExit(f"GUEST-FAIL: {path}: {got} bytes md5 {h.hexdigest()}, expected {size} {md5}")
    return got


def epoch(root, files, seed):
    order = list(files)
    random.Random(seed).shuffle(order)
    samples = []
    total = [0]
    lock = threading.Lock()

    def one(f):
        reads = []
        n = read_whole(os.path.join(root, f["name"]), f["size"], f["md5"], MIB, reads)
        with lock:
            samples.extend(reads)
            total[0] += n

    t = time.perf_counter()
    run_threads(one, order)
    secs = time.perf_counter() - t
    return {"seconds": secs, "bytes": total[0], "mb_per_s": total[0] / secs / 1e6, **lat(samples)}


def random_reads(root, files, bs, seconds):
    stop = time.perf_counter() + seconds
    samples = []
    lock = threading.Lock()

    def worker(i):
        f = files[i % len(files)]
        fd = os.open(os.path.join(root, f["name"]), os.O_RDONLY | os.O_DIRECT)
        buf = mmap.mmap(-1, bs)  # page-aligned, as O_DIRECT wants
        rnd = random.Random(1000 + i)
        blocks = f["size"] // bs
        mine = []
        try:
            while time.perf_counter() < stop:
                off = rnd.randrange(blocks) * bs
                t = time.perf_counter()
                n = os.preadv(fd, [buf], off)
                mine.append(time.perf_counter() - t)
                if n != bs:
                    raise SystemExit(f"GUEST-FAIL: O_DIRECT read of {bs} at {off} in {f['name']} returned {n}")
        finally:
            os.close(fd)
        with lock:
            samples.extend(mine)

    t = time.perf_counter()
    run_threads(worker, range(JOBS))
    secs = time.perf_counter() - t
    return {"seconds": secs, "reads": len(samples), "iops": len(samples) / secs, **lat(samples)}


def small(root, files):
    samples = []
    lock = threading.Lock()

    def one(f):
        t = time.perf_counter()
        read_whole(os.path.join(root, f["name"]), f["size"], f["md5"], f["size"] + 1, [])
        with lock:
            samples.append(time.perf_counter() - t)

    t = time.perf_counter()
    run_threads(one, files)
    secs = time.perf_counter() - t
    return {"seconds": secs, "files": len(files), "files_per_s": len(files) / secs, **lat(samples)}


def listing(root, d, want):
    t = time.perf_counter()
    n = 0
    with os.scandir(os.path.join(root, d)) as it:
        for e in it:
            e.stat(follow_symlinks=False)
            n += 1
    secs = time.perf_counter() - t
    if n != want:
        raise SystemExit(f"GUEST-FAIL: {d} lists {n} entries, expected {want}")
    return {"seconds": secs, "entries": n, "entries_per_s": n / secs}


def ckpt_bytes(rnd_round, size):
    return random.Random(0x636B7074 + rnd_round).randbytes(size)


def checkpoint(root, d, size, rounds):
    times = []
    for r in range(rounds):
        data = ckpt_bytes(r, size)
        tmp, final = os.path.join(root, d, "ckpt.tmp"), os.path.join(root, d, "ckpt")
        t = time.perf_counter()
        with open(tmp, "wb", buffering=0) as f:
            for at in range(0, size, MIB):
                f.write(data[at:at + MIB])
            os.fsync(f.fileno())
        os.rename(tmp, final)
        times.append(time.perf_counter() - t)
    drop_caches()
    with open(final, "rb") as f:
        if hashlib.md5(f.read()).digest() != hashlib.md5(data).digest():
            raise SystemExit(f"GUEST-FAIL: {final} is not the last round's bytes")
    secs = sum(times)
    return {"seconds": secs, "rounds": rounds, "mb_per_s": size * rounds / secs / 1e6, **lat(times)}


def main():
    args = sys.argv[1:]
    root, manifest_path, out = args[0], args[1], args[2]
    opts = dict(zip(args[3::2], args[4::2]))
    random_s = float(opts.get("--random-seconds", "3"))
    ckpt_mib = int(opts.get("--ckpt-mib", "8"))
    rounds = int(opts.get("--ckpt-rounds", "2"))
    ckpt_dir = opts.get("--ckpt-dir", "ckpt")
    with open(manifest_path) as f:
        m = json.load(f)
    sync = Sync(os.path.dirname(out))
    results = {}

    def phase(name, fn):
        drop_caches()
        sync.mark("begin", name)
        r = fn()
        sync.mark("end", name)
        sync.n += 1
        results[name] = r
        print(f"perfshape: {name}: {json.dumps(r)}", flush=True)

    for n in (1, 2, 3):
        phase(f"epoch{n}", lambda n=n: epoch(root, m["shards"], 7 + n))
    phase("fill", lambda: epoch(root, m["rand"], 20))
    phase("random_4k", lambda: random_reads(root, m["rand"], 4096, random_s))
    phase("random_128k", lambda: random_reads(root, m["rand"], 128 * 1024, random_s))
    phase("small_cold", lambda: small(root, m["small"]))
    phase("small_warm", lambda: small(root, m["small"]))
    phase("list_cold", lambda: listing(root, m["list_dir"], m["list_entries"]))
    phase("list_warm", lambda: listing(root, m["list_dir"], m["list_entries"]))
    phase("checkpoint", lambda: checkpoint(root, ckpt_dir, ckpt_mib * MIB, rounds))
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print("perfshape: all phases done", flush=True)


if __name__ == "__main__":
    main()
