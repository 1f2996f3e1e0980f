"""Shared by the write-path tests' Python programs (nfswrite.py, nfscrash.py).

They run in the QEMU guest through `hostchroot python3` (the host's python3, chrooted to the
host root shared read-only over 9p), against the kernel NFS client's mounts, and on the host
against the server's export directory or bucket. Standard library only.

Manifest: the expected tree, one entry a line, tab-separated, paths relative to the root:
  d  PATH                               a directory
  f  PATH  SIZE  MD5  [CHUNK_MD5S]      a regular file; CHUNK_MD5S: comma-separated md5 of
                                        every CHUNK-byte piece (files larger than one chunk),
                                        so a mismatch can be located
  l  PATH  TARGET                       a symbolic link
"""
import errno
import hashlib
import os
import stat
import sys

CHUNK = 4096


class Fail(Exception):
    """A check failed: the message says where (path, offset) and what (expected vs got)."""


def log(msg):
    print(msg, flush=True)


def hexbytes(b, n=16):
    b = bytes(b[:n])
    return b.hex() + ("…" if n < len(b) else "")


def first_diff(want, got):
    """Offset of the first differing byte of two byte strings (or the shorter length)."""
    n = min(len(want), len(got))
    lo = 0
    step = 1 << 16
    while lo < n:  # find the first differing block quickly, then the byte
        hi = min(n, lo + step)
        if want[lo:hi] != got[lo:hi]:
            for i in range(lo, hi):
                if want[i] != got[i]:
                    return i
        lo = hi
    return n


def expect_bytes(path, want, got, base=0):
    """Raise Fail naming path, offset and expected vs got bytes if got != want."""
    if want == got:
        return
    i = first_diff(want, got)
    if i == min(len(want), len(got)) and len(want) != len(got):
        raise Fail(f"{path}: size {len(got)}, expected {len(want)} (first {i} bytes agree)")
    raise Fail(f"{path}: offset {base + i}: expected {hexbytes(want[i:])} got {hexbytes(got[i:])}")


def read_file(path, direct=False):
    flags = os.O_RDONLY | (os.O_DIRECT if direct else 0)
    fd = os.open(path, flags)
    try:
        parts = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            parts.append(b)
        return b"".join(parts)
    finally:
        os.close(fd)


def drop_caches():
    """Make the next reads go to the server (clean pages only: fsync or close first)."""
    os.sync()
    if os.environ.get("NFSTEST_NO_DROP_CACHES"):  # trying the programs on a local directory
        return
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as e:  # not root / no /proc: reads may come from the page cache
        log(f"note: cannot drop caches ({e})")


def chunk_md5s(data):
    if len(data) <= CHUNK:
        return ""
    return ",".join(hashlib.md5(data[i:i + CHUNK]).hexdigest() for i in range(0, len(data), CHUNK))


class Manifest:
    """Collects expected entries; appends them to FILE (several programs add to one manifest)."""

    def __init__(self, path, rel):
        self.path, self.rel = path, rel.strip("/")
        self.entries = []

    def _p(self, p):
        return f"{self.rel}/{p}" if self.rel else p

    def dir(self, p):
        self.entries.append(("d", self._p(p)))

    def file(self, p, data):
        self.entries.append(("f", self._p(p), str(len(data)), hashlib.md5(data).hexdigest(), chunk_md5s(data)))

    def file_md5(self, p, size, md5, chunks=""):
        self.entries.append(("f", self._p(p), str(size), md5, chunks))

    def link(self, p, target):
        self.entries.append(("l", self._p(p), target))

    def flush(self):
        if self.path:
            with open(self.path, "a") as f:
                for e in self.entries:
                    f.write("\t".join(e).rstrip("\t") + "\n")
                f.flush()
                os.fsync(f.fileno())
        self.entries = []


def load_manifest(path):
    want = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "d" and len(parts) == 2:
                want[parts[1]] = ("d",)
            elif parts[0] == "f" and len(parts) in (4, 5):
                want[parts[1]] = ("f", int(parts[2]), parts[3], parts[4].split(",") if len(parts) == 5 else [])
            elif parts[0] == "l" and len(parts) == 3:
                want[parts[1]] = ("l", parts[2])
            else:
                raise Fail(f"{path}:{n}: bad manifest line {line!r}")
    # parents of every entry are directories too
    for p in list(want):
        while "/" in p:
            p = p.rsplit("/", 1)[0]
            want.setdefault(p, ("d",))
    return want


def file_md5(path):
    h = hashlib.md5()
    size = 0
    chunks = []
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            h.update(b)
            chunks.append(hashlib.md5(b).hexdigest())
            size += len(b)
    return size, h.hexdigest(), (chunks if size > CHUNK else [])


def s3fs_symlink(path):
    """A bucket object standing for a symlink (s3fs convention: body = target, mode has S_IFLNK
    in the user metadata, which the local-directory bucket keeps in user.bucketfs.meta.mode)."""
    try:
        mode = os.getxattr(path, "user.bucketfs.meta.mode").decode()
    except OSError:
        return None
    try:
        m = int(mode, 8) if mode.startswith("0") else int(mode)
    except ValueError:
        return None
    if not stat.S_ISLNK(m):
        return None
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")


def compare_tree(root, manifest_path, flavor="posix", ignore=()):
    """Compare the tree under root with the manifest; return a list of problems (empty: equal).

    flavor "posix": a filesystem (the NFS mount, ganesha's export directory): symlinks are
    symlinks. flavor "bucket": bucketfs's local-directory bucket, where a symlink may also be an
    object whose body is the target and whose mode metadata says S_IFLNK.
    """
    want = load_manifest(manifest_path)
    got = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            p = name if rel == "." else f"{rel}/{name}"
            if p.split("/", 1)[0] in ignore:
                continue
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                got[p] = ("l", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                got[p] = ("d",)
            elif stat.S_ISREG(st.st_mode):
                target = s3fs_symlink(full) if flavor == "bucket" and want.get(p, ("",))[0] == "l" else None
                got[p] = ("l", target) if target is not None else ("f", full)
            else:
                got[p] = ("?", oct(st.st_mode))
    problems = []
    for p in sorted(set(want) | set(got)):
        w, g = want.get(p), got.get(p)
        if g is None:
            problems.append(f"{p}: missing (expected {describe(w)})")
        elif w is None:
            problems.append(f"{p}: unexpected {describe_got(g)}")
        elif w[0] != g[0]:
            problems.append(f"{p}: expected {describe(w)}, found {describe_got(g)}")
        elif w[0] == "l" and w[1] != g[1]:
            problems.append(f"{p}: symlink to {g[1]!r}, expected {w[1]!r}")
        elif w[0] == "f":
            size, md5, chunks = file_md5(g[1])
            if (size, md5) != (w[1], w[2]):
                where = ""
                for i, (a, b) in enumerate(zip(w[3], chunks)):
                    if a != b:
                        with open(g[1], "rb") as f:
                            f.seek(i * CHUNK)
                            head = f.read(16)
                        where = (f"; first differing {CHUNK}-byte chunk at offset {i * CHUNK}: "
                                 f"md5 expected {a} got {b} (got bytes {head.hex()})")
                        break
                problems.append(f"{p}: size {size} md5 {md5}, expected size {w[1]} md5 {w[2]}{where}")
    return problems


def describe(w):
    if w[0] == "f":
        return f"a file of {w[1]} bytes"
    return "a directory" if w[0] == "d" else f"a symlink to {w[1]!r}"


def describe_got(g):
    if g[0] == "f":
        return f"file ({os.path.getsize(g[1])} bytes)"
    if g[0] == "d":
        return "directory"
    return f"symlink to {g[1]!r}" if g[0] == "l" else f"special file (mode {g[1]})"


def errname(e):
    return errno.errorcode.get(e, str(e))


def main_compare(argv):
    """compare ROOT MANIFEST [posix|bucket] [IGNORED_TOP_LEVEL_NAME...]"""
    root, manifest = argv[0], argv[1]
    flavor = argv[2] if len(argv) > 2 else "posix"
    problems = compare_tree(root, manifest, flavor, tuple(argv[3:]))
    n = len(load_manifest(manifest))
    if problems:
        for p in problems[:50]:
            log(f"MISMATCH: {p}")
        if len(problems) > 50:
            log(f"... and {len(problems) - 50} more")
        log(f"FAIL: the tree under {root} differs from the manifest in {len(problems)} entries")
        return 1
    log(f"ok: {root} matches the manifest ({n} entries)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "compare":
        sys.exit(main_compare(sys.argv[2:]))
    sys.exit("usage: nfstest_common.py compare ROOT MANIFEST [posix|bucket] [IGNORED...]")
