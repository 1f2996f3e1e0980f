#!/usr/bin/env bash
# The Linux kernel NFS client against `bucketfs serve`: boots a QEMU guest (TCG) whose kernel
# mounts the host's bucketfs over NFSv4.1, NFSv4.2 (nconnect=2) and NFSv3, lists a directory of
# thousands of files, reads files and compares their checksums with the bucket's, reads one
# through mmap, and then (NFSv4.2) restarts the server under the mounted client while it holds an open file: the
# client must keep reading through the same handle and open state afterwards.
#
# Host side: a local-directory bucket with the files, `bucketfs serve --config` on free loopback
# ports (the guest reaches them at 10.0.2.2). The guest prints a marker when it wants the
# restart; this script watches the console for it, restarts the server and tells the guest
# through the 9p share. Needs image/qemu/install.sh (scripts/install-test-deps.sh runs it).
#   BUCKETFS_BIN   the bucketfs binary (default: target/release/bucketfs, built if missing)
#   NFS_TEST_FILES number of small files in the big directory (default 3000)
set -euo pipefail
shopt -s lastpipe   # the console watcher below runs in this shell, so it can restart the server
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d /var/tmp/bucketfs-nfs-client.XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -9 "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
files="${NFS_TEST_FILES:-3000}"

bin="${BUCKETFS_BIN:-$repo/target/release/bucketfs}"
if [ -z "${BUCKETFS_BIN:-}" ]; then
  echo "== building bucketfs (release)"
  (cd "$repo" && cargo build --release -q -p bucketfs)
fi
[ -x "$bin" ] || { echo "no bucketfs binary at $bin"; exit 1; }

echo "== bucket: $files small files, a 40 MiB file, nested directories"
bucket="$work/bucket"
mkdir -p "$bucket/many" "$bucket/nested/a/b" "$work/share"
python3 - "$bucket" "$files" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)
for i in range(n):
    with open(f"{root}/many/f{i:05d}.txt", "wb") as f:
        f.write(f"file {i}\n".encode() * rnd.randint(1, 300))
with open(f"{root}/big.bin", "wb") as f:
    for i in range(40):
        f.write(rnd.randbytes(1 << 20))
with open(f"{root}/nested/a/b/deep.txt", "wb") as f:
    f.write(b"deep\n" * 1000)
PY
# Checksums the guest compares against: the big file, the deep one and every 100th small file.
( cd "$bucket" && { md5sum big.bin nested/a/b/deep.txt; for i in $(seq 0 100 $((files - 1))); do md5sum "many/$(printf 'f%05d.txt' "$i")"; done; } ) > "$work/share/md5.txt"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nfs_port=$(free_port); mount_port=$(free_port); admin_port=$(free_port)
cat > "$work/bucketfs.toml" <<EOF
[cache]
device = "$work/cache.img"
size = "1GiB"
metadata_dir = "$work/meta"

[admin]
listen = "127.0.0.1:$admin_port"

[nfs]
listen = "127.0.0.1:$nfs_port"
mount_listen = "127.0.0.1:$mount_port"
lease = "10s"
grace = "10s"

[[bucket]]
name = "local"
kind = "local"
path = "$bucket"

[[export]]
path = "/data"
bucket = "local"
EOF

start_server() {
  RUST_LOG=warn,nfs=info "$bin" serve --config "$work/bucketfs.toml" >>"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    if grep -q "bucketfs: nfs listening" "$work/server.log" 2>/dev/null && python3 -c "import socket; socket.create_connection(('127.0.0.1', $nfs_port), 1)" 2>/dev/null; then
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "server exited"; exit 1; }
    sleep 0.2
  done
  cat "$work/server.log"; echo "server did not start listening"; exit 1
}
echo "== starting bucketfs (NFS $nfs_port, MOUNT $mount_port)"
start_server

cat > "$work/guest.sh" <<GUEST
set -e
H=10.0.2.2
NFS_PORT=$nfs_port
MOUNT_PORT=$mount_port
FILES=$files
GUEST
cat >> "$work/guest.sh" <<'GUEST'
hostchroot true   # sets up /hostroot/tmp, where the mounts go so host programs (python3) see them
fail() { echo "GUEST-FAIL: $*"; exit 1; }
check_tree() {  # check_tree MOUNTPOINT (inside the chroot: /tmp/...)
  m=$1
  n=$(ls "/hostroot$m/many" | wc -l)
  [ "$n" = "$FILES" ] || fail "$m/many lists $n entries, expected $FILES"
  ls "/hostroot$m" | sort | tr '\n' ' ' | grep -q "big.bin many nested" || fail "$m lists: $(ls /hostroot$m)"
  (cd "/hostroot$m" && md5sum -c -s /host/md5.txt) || { (cd "/hostroot$m" && md5sum -c /host/md5.txt | grep -v ': OK$'); fail "$m: checksums differ"; }
  want=$(grep ' big.bin$' /host/md5.txt | cut -d' ' -f1)
  got=$(hostchroot python3 -c '
import hashlib, mmap, sys
with open(sys.argv[1], "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
    print(hashlib.md5(m).hexdigest())' "$m/big.bin")
  [ "$got" = "$want" ] || fail "$m: mmap read of big.bin gives $got, expected $want"
  stat -c '%s' "/hostroot$m/big.bin" | grep -qx 41943040 || fail "$m: big.bin size $(stat -c %s /hostroot$m/big.bin)"
  echo "ok: $m: $n entries listed, checksums match, mmap read matches"
}
for v in 4.1 4.2 3; do
  m=/tmp/nfs$v
  mkdir -p "/hostroot$m"
  if [ "$v" = 3 ]; then
    mount -t nfs -o vers=3,proto=tcp,port=$NFS_PORT,mountport=$MOUNT_PORT,mountproto=tcp,nolock,addr=$H $H:/data "/hostroot$m" || fail "mount vers=3"
  else
    # 4.2 with nconnect=2: two TCP connections sharing one session (spread over the server's cores).
    extra=; [ "$v" = 4.2 ] && extra=,nconnect=2
    mount -t nfs4 -o vers=$v,port=$NFS_PORT,addr=$H$extra $H:/data "/hostroot$m" || fail "mount vers=$v$extra"
  fi
  grep " /hostroot$m " /proc/mounts
  check_tree "$m"
  umount "/hostroot$m"
done

echo "== restart under a mounted NFSv4.2 client holding an open file"
m=/hostroot/tmp/restart
mkdir -p $m
mount -t nfs4 -o vers=4.2,port=$NFS_PORT,addr=$H $H:/data $m || fail "mount for restart"
exec 3< $m/big.bin
dd bs=1048576 count=8 <&3 > /tmp/part1 2>/dev/null
[ "$(stat -c %s /tmp/part1)" = 8388608 ] || fail "first 8 MiB read short"
echo "BUCKETFS-RESTART-SERVER"
i=0
while [ ! -e /host/restarted ]; do sleep 1; i=$((i + 1)); [ $i -lt 120 ] || fail "host never restarted the server"; done
echo "server restarted; reading on through the open file"
dd bs=1048576 <&3 > /tmp/part2 2>/dev/null
exec 3<&-
got=$(cat /tmp/part1 /tmp/part2 | md5sum | cut -d' ' -f1)
want=$(grep ' big.bin$' /host/md5.txt | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "read across the restart gives $got, expected $want ($(stat -c %s /tmp/part2) bytes after)"
n=$(ls $m/many | wc -l)
[ "$n" = "$FILES" ] || fail "after restart: $n entries"
(cd $m && md5sum -c -s /host/md5.txt) || fail "after restart: checksums differ"
umount $m
echo "ok: the open file, the handles and the listing survived the restart"
echo "== all kernel-client checks passed"
GUEST

echo "== booting the guest (kernel NFS client)"
set +e
bash "$here/run-guest.sh" --share "$work/share" --host-root --timeout 1200 --mem 1024 -- "$work/guest.sh" |
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case "$line" in
      *BUCKETFS-RESTART-SERVER*)
        echo "== host: restarting bucketfs (SIGTERM, then start again)"
        kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null
        start_server
        touch "$work/share/restarted"
        echo "== host: bucketfs is back"
        ;;
    esac
  done
status=${PIPESTATUS[0]}
set -e
if [ "$status" != 0 ]; then
  echo "== server log"; tail -50 "$work/server.log"
  echo "kernel NFS client test FAILED (guest status $status)"
  exit 1
fi
# The restart must have gone through NFSv4 recovery: a grace period for the client the records
# file remembered, ended early because that client reclaimed its state (RECLAIM_COMPLETE).
grep -q "NFSv4 grace period begins" "$work/server.log" || { tail -30 "$work/server.log"; echo "no grace period after the restart"; exit 1; }
grep -q "NFSv4 grace period over: every client reclaimed" "$work/server.log" || { tail -30 "$work/server.log"; echo "the client did not reclaim its state"; exit 1; }
grep "NFSv4 grace period" "$work/server.log" | sed 's/^/   server: /'
kill -TERM "$server_pid"
wait "$server_pid" || { tail -30 "$work/server.log"; echo "the server did not stop cleanly on SIGTERM"; exit 1; }
server_pid=""
echo "== kernel NFS client test passed"
