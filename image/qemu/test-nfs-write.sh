#!/usr/bin/env bash
# The write path through the Linux kernel NFS client: boots a QEMU guest (TCG) that mounts the
# server under test from the host and, per NFS version (4.2, 4.1, then 3 with nolock), runs
# image/qemu/guest/nfswrite.py through `hostchroot python3`:
#   checkpoint  a writer writes ckpt.tmp (64 MiB of seeded data in 1 MiB writes), fsyncs it and
#               renames it over ckpt, 4 rounds, while another process reads ckpt in a loop
#               (alternately through the page cache and O_DIRECT) and checks each read is one
#               complete round (round number and md5 in header/trailer, a tag in every chunk);
#   locks       (4.x) flock EX/SH conflicts and hand-over, fcntl byte-range F_SETLK conflicts,
#               coexistence, F_GETLK holder/range, F_SETLKW waits — two processes on one mount,
#               then through a second mount (nosharecache), where the server decides;
#   data        ftruncate down/up (zeros), truncate(path), O_APPEND, 400 random pwrites (some
#               O_DIRECT) against a model, a sparse file, size/mtime/ctime, chmod, utime;
#   namespace   (4.x) mkdir -p, rename of a directory with 44 files under it, rename over a
#               file/an empty directory, unlink/rmdir and their errors, hard link (ganesha:
#               allowed; bucketfs: must fail with EPERM/EOPNOTSUPP), symlink + readlink.
# Each check compares what it reads back (page cache dropped) with its model and adds the
# expected final files to a manifest on a writable 9p share. After unmounting, the guest mounts
# afresh and compares the whole tree with the manifest; then the host compares the server's own
# tree with it (ganesha: the export directory; bucketfs: the bucket, after its uploads settle).
#
#   image/qemu/test-nfs-write.sh [--server ganesha|bucketfs] [--versions "4.2 4.1 3"]
#                                [--ckpt-mib 64] [--rounds 4] [--seed N] [--timeout SECS] [--keep]
# Env: BUCKETFS_BIN (bucketfs binary; default target/release/bucketfs, built if missing).
# Needs image/qemu/install.sh (QEMU, guest kernel); ganesha: nfs-ganesha, nfs-ganesha-vfs, and
# rpcbind for NFSv3. Not in scripts/test.sh yet: --server bucketfs fails until the write path lands.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=image/qemu/nfs-servers.sh
. "$here/nfs-servers.sh"

server=ganesha versions="4.2 4.1 3" ckpt_mib=64 rounds=4 seed=$((RANDOM * 32768 + RANDOM)) timeout=2400 keep=0
usage() { sed -n '2,30p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --server) server=${2:?}; shift 2 ;;
    --versions) versions=${2:?}; shift 2 ;;
    --ckpt-mib) ckpt_mib=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --seed) seed=${2:?}; shift 2 ;;
    --timeout) timeout=${2:?}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
case $server in ganesha|bucketfs) ;; *) echo "--server is ganesha or bucketfs" >&2; exit 2 ;; esac
for v in $versions; do case $v in 3|4.1|4.2) ;; *) echo "--versions: 3, 4.1, 4.2 (got $v)" >&2; exit 2 ;; esac; done

free_mib=$(df -Pm /var/tmp | awk 'NR == 2 {print $4}')
[ "$free_mib" -ge 1024 ] || { echo "only $free_mib MiB free in /var/tmp; this test needs 1024 MiB (the export/bucket holds ~0.4 GiB)" >&2; exit 1; }
work="$(mktemp -d /var/tmp/bucketfs-nfs-write.XXXXXX)"
cleanup() {
  srv_cleanup
  if [ "$keep" = 1 ]; then echo "== kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM HUP
t_start=$SECONDS
out=$work/out
mkdir -p "$out"
# The guest programs go through the writable share: inside `hostchroot` the host's /tmp is a
# fresh tmpfs, so a checkout under /tmp (as CI's may be) is not visible at its own path.
cp -r "$here/guest" "$out/guest"

echo "== server: $server, NFS versions: $versions, seed $seed"
v3=""; case " $versions " in *" 3 "*) v3=v3 ;; esac
srv_prepare $v3
srv_start
echo "== $server listening on 127.0.0.1:$NFS_PORT (v4.2 via $NFS_PORT42, MOUNT $MOUNT_PORT); tree: $TREE_DIR"

cat > "$work/guest.sh" <<GUEST
H=10.0.2.2
NFS_PORT=$NFS_PORT
NFS_PORT42=$NFS_PORT42
MOUNT_PORT=$MOUNT_PORT
EXPORT_V4=$EXPORT_V4
EXPORT_V3=$EXPORT_V3
VERSIONS="$versions"
SERVER=$server
PY="hostchroot python3 -u /tmp/out/guest/nfswrite.py"
CKPT="--mib $ckpt_mib --rounds $rounds --seed $seed"
SEED=$seed
GUEST
cat >> "$work/guest.sh" <<'GUEST'
fail() { echo "GUEST-FAIL: $*"; exit 1; }
step() { echo "== guest: $*"; }
hostchroot true   # sets up /hostroot/tmp, where the mounts go so host programs (python3) see them
mkdir -p /hostroot/tmp/out
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out /hostroot/tmp/out || fail "mounting the writable 9p share"
MANIFEST=/tmp/out/manifest.tsv
: > /hostroot$MANIFEST
nfsmount() {  # nfsmount VERSION MOUNTPOINT [,extra-options]
  case $1 in
    3) mount -t nfs -o vers=3,proto=tcp,port=$NFS_PORT,mountport=$MOUNT_PORT,mountproto=tcp,nolock,addr=$H${3:-} "$H:$EXPORT_V3" "$2" ;;
    4.2) mount -t nfs4 -o vers=4.2,port=$NFS_PORT42,addr=$H${3:-} "$H:$EXPORT_V4" "$2" ;;
    *) mount -t nfs4 -o vers=$1,port=$NFS_PORT,addr=$H${3:-} "$H:$EXPORT_V4" "$2" ;;
  esac || fail "mount vers=$1${3:-}"
  grep " $2 " /proc/mounts
}
for v in $VERSIONS; do
  m=/tmp/m$v
  mkdir -p "/hostroot$m"
  step "NFS v$v: mount"
  nfsmount "$v" "/hostroot$m"
  mkdir -p "/hostroot$m/v$v" || fail "mkdir v$v"
  t=$(date +%s)
  $PY checkpoint "$m/v$v/ckpt" --manifest $MANIFEST --rel "v$v/ckpt" $CKPT || fail "v$v: checkpoint"
  if [ "$v" != 3 ]; then
    m2=/tmp/m$v-second
    mkdir -p "/hostroot$m2"
    nfsmount "$v" "/hostroot$m2" ,nosharecache
    mkdir -p "/hostroot$m/v$v/locks"
    $PY locks "$m/v$v/locks" "$m2/v$v/locks" || fail "v$v: locks"
    umount "/hostroot$m2" || fail "umount the second mount"
  fi
  $PY data "$m/v$v/data" --manifest $MANIFEST --rel "v$v/data" --seed $SEED || fail "v$v: data"
  if [ "$v" != 3 ]; then
    $PY namespace "$m/v$v/ns" --manifest $MANIFEST --rel "v$v/ns" --server $SERVER --seed $SEED || fail "v$v: namespace"
  fi
  step "NFS v$v: unmount (flushes)"
  umount "/hostroot$m" || fail "umount v$v"
  echo "ok: NFS v$v passed ($(( $(date +%s) - t )) s)"
done
first=${VERSIONS%% *}
step "fresh mount (v$first): the whole tree against the manifest"
mkdir -p /hostroot/tmp/fresh
nfsmount "$first" /hostroot/tmp/fresh
$PY compare /tmp/fresh $MANIFEST || fail "the tree read through a fresh mount differs from the manifest"
umount /hostroot/tmp/fresh || fail "umount fresh"
sync
echo "== all guest write-path checks passed"
GUEST

echo "== booting the guest (kernel NFS client); console follows"
t_boot=$SECONDS
set +e
BUCKETFS_QEMU_EXTRA_ARGS="$(guest_out_share_args "$out")" \
  timeout -k 10 $((timeout + 60)) bash "$here/run-guest.sh" --host-root --timeout "$timeout" --mem 1536 -- "$work/guest.sh" |
  sed -u "s/\r$//"
status=${PIPESTATUS[0]}
set -e
if [ "$status" != 0 ]; then
  echo "== $server log (tail)"; srv_log_tail 40
  echo "FAILED: the guest's write-path checks failed (guest status $status; seed $seed; see GUEST-FAIL/FAIL above)"
  exit 1
fi
echo "== guest done in $((SECONDS - t_boot)) s"

echo "== host: waiting for the $server tree to settle"
wait_for_bucket_settled 600 || { echo "FAILED: the bucket did not settle"; exit 1; }
echo "== host: comparing $TREE_DIR with the guest's manifest ($(wc -l < "$out/manifest.tsv") entries)"
python3 "$here/guest/nfstest_common.py" compare "$TREE_DIR" "$out/manifest.tsv" "$TREE_FLAVOR" ||
  { echo "FAILED: the server's tree differs from what the guest wrote (seed $seed)"; exit 1; }
srv_stop
[ -n "$proxy_pid" ] && { kill -TERM "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true; proxy_pid=""; tail -1 "$work/proxy.log" | sed 's/^/   /'; }
echo "== write-path test passed against $server (versions $versions, seed $seed, $((SECONDS - t_start)) s)"
