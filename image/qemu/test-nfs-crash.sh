#!/usr/bin/env bash
# The server is SIGKILLed during a write load with fsyncs, restarted on the same state, and the
# Linux kernel NFS client (QEMU guest, hard mount, still mounted) must find every acknowledged
# write intact and nothing but old or new data elsewhere.
#
# In the guest, two writers (image/qemu/guest/nfscrash.py through `hostchroot python3`) write
# seeded records into 4 files each at known offsets, fsync every 10 writes, and append what fsync
# acknowledged to logs on a writable 9p share (host-visible, so they survive the crash):
#   survivor  runs through the crash: the client recovers (NFSv4.1/4.2: new session, grace,
#             reclaim of its opens) and the writer finishes; its files must hold exactly its final
#             state;
#   victim    is SIGKILLed by the guest the moment the host reports the crash, so it dies with
#             writes in flight: each acknowledged write (or a later one) must be there in full,
#             every other byte old or new content of its slot, never garbage (nfscrash.py).
# The host counts acks in the victim's log, SIGKILLs the server after a random number of them
# (plus a random delay under 0.5 s), keeps it down --down seconds, restarts it on the same state
# directory/cache and tells the guest. The guest then syncs, drops its page cache and verifies
# through the recovered mount, unmounts, mounts afresh and verifies again, and writes what it read
# (md5s) to a manifest; the host runs the same verifier on the server's own tree (ganesha: the
# export directory; bucketfs: the bucket, once uploads settle) and compares it with the manifest.
#
#   image/qemu/test-nfs-crash.sh [--server ganesha|bucketfs] [--vers 4.2|4.1] [--crashes 1]
#                                [--down 2] [--ops 2000] [--seed N] [--timeout SECS] [--keep]
# ganesha runs with Graceless = false (grace 15 s, lease 10 s) and its recovery directory kept
# across the restart, so the client really reclaims; bucketfs must log a grace period and its end
# by reclaim (as test-nfs-client.sh checks). Env: BUCKETFS_BIN. Not in scripts/test.sh yet.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=image/qemu/nfs-servers.sh
. "$here/nfs-servers.sh"

server=ganesha vers=4.2 crashes=1 down=2 ops=2000 seed=$((RANDOM * 32768 + RANDOM)) timeout=1200 keep=0
files=4 fsync_every=10
usage() { sed -n '2,30p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --server) server=${2:?}; shift 2 ;;
    --vers) vers=${2:?}; shift 2 ;;
    --crashes) crashes=${2:?}; shift 2 ;;
    --down) down=${2:?}; shift 2 ;;
    --ops) ops=${2:?}; shift 2 ;;
    --seed) seed=${2:?}; shift 2 ;;
    --timeout) timeout=${2:?}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
case $server in ganesha|bucketfs) ;; *) echo "--server is ganesha or bucketfs" >&2; exit 2 ;; esac
case $vers in 4.1|4.2) ;; *) echo "--vers is 4.1 or 4.2 (the crash test needs NFSv4.1+ sessions and reclaim)" >&2; exit 2 ;; esac
[[ $crashes =~ ^[1-9]$ && $ops =~ ^[0-9]+$ && $ops -ge 400 ]] || { echo "--crashes 1..9, --ops >= 400" >&2; exit 2; }

free_mib=$(df -Pm /var/tmp | awk 'NR == 2 {print $4}')
[ "$free_mib" -ge 256 ] || { echo "only $free_mib MiB free in /var/tmp; this test needs 256 MiB (the export/bucket holds ~20 MiB)" >&2; exit 1; }
work="$(mktemp -d /var/tmp/bucketfs-nfs-crash.XXXXXX)"
guest_pid=""
cleanup() {
  if [ -n "$guest_pid" ] && kill -0 "$guest_pid" 2>/dev/null; then kill -TERM "$guest_pid" 2>/dev/null || true; wait "$guest_pid" 2>/dev/null || true; fi
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

# Kill points: crash c of N after a random number of the victim's acks, spread over the first
# ~60% of its run (the victim dies at the first crash; later ones count the survivor's acks).
total_acks=$(( (ops / fsync_every) * files ))
RANDOM=$((seed % 32768))
kill_at=()
for c in $(seq "$crashes"); do
  lo=$(( total_acks * (c - 1) * 60 / (100 * crashes) + total_acks / 20 ))
  hi=$(( total_acks * c * 60 / (100 * crashes) ))
  kill_at+=($(( lo + RANDOM % (hi - lo + 1) )))
done
echo "== server: $server, NFSv$vers, seed $seed, $ops writes per writer, crash after acks: ${kill_at[*]} of $total_acks"

srv_prepare grace
srv_start
echo "== $server listening on 127.0.0.1:$NFS_PORT (v4.2 via $NFS_PORT42); tree: $TREE_DIR"
port=$NFS_PORT; [ "$vers" = 4.2 ] && port=$NFS_PORT42

cat > "$work/guest.sh" <<GUEST
H=10.0.2.2
PORT=$port
VERS=$vers
EXPORT_V4=$EXPORT_V4
PY="hostchroot python3 -u /tmp/out/guest/nfscrash.py"
OPTS="--seed $seed --ops $ops --files $files --fsync-every $fsync_every"
TIMEOUT=$timeout
GUEST
cat >> "$work/guest.sh" <<'GUEST'
fail() { echo "GUEST-FAIL: $*"; exit 1; }
step() { echo "== guest: $*"; }
hostchroot true
O=/hostroot/tmp/out
mkdir -p $O
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out $O || fail "mounting the writable 9p share"
M=/hostroot/tmp/m
mkdir -p $M
# a hard mount (the default): I/O waits through the outage and resumes after recovery
mount -t nfs4 -o vers=$VERS,port=$PORT,addr=$H "$H:$EXPORT_V4" $M || fail "mount vers=$VERS"
grep " $M " /proc/mounts
mkdir -p $M/crash || fail "mkdir crash"
step "starting the survivor and the victim writers"
$PY write /tmp/m/crash --role survivor --log /tmp/out/ack-survivor.log $OPTS > /tmp/survivor.out 2>&1 &
S=$!
$PY write /tmp/m/crash --role victim --log /tmp/out/ack-victim.log $OPTS > /tmp/victim.out 2>&1 &
V=$!
echo "BUCKETFS-CRASH-WRITERS-STARTED"
i=0
while [ ! -e $O/crashed-1 ]; do
  kill -0 $V 2>/dev/null || { cat /tmp/victim.out; fail "the victim finished before the crash (no interrupted writer to check)"; }
  usleep 100000; i=$((i + 1)); [ $i -lt $((TIMEOUT * 10)) ] || fail "the host never crashed the server"
done
kill -9 $V
step "server crashed: victim writer SIGKILLed (pid $V); the survivor waits for recovery"
wait $V 2>/dev/null
t0=$(date +%s)
while kill -0 $S 2>/dev/null; do
  sleep 1
  [ $(( $(date +%s) - t0 )) -lt $TIMEOUT ] || fail "the survivor did not finish within $TIMEOUT s after the crash"
done
wait $S || { cat /tmp/survivor.out; fail "the survivor writer failed (I/O error through the crash?)"; }
cat /tmp/survivor.out
step "survivor finished $(( $(date +%s) - t0 )) s after the crash; sync, drop caches, verify through the recovered mount"
sync
echo 3 > /proc/sys/vm/drop_caches
for r in survivor victim; do
  $PY verify /tmp/m/crash --role $r --log /tmp/out/ack-$r.log $OPTS || fail "$r: verification through the recovered mount"
done
umount $M || fail "umount"
step "fresh mount: verify again and write the manifest of what was read"
mount -t nfs4 -o vers=$VERS,port=$PORT,addr=$H "$H:$EXPORT_V4" $M || fail "remount"
: > $O/manifest.tsv
for r in survivor victim; do
  $PY verify /tmp/m/crash --role $r --log /tmp/out/ack-$r.log $OPTS --manifest /tmp/out/manifest.tsv --rel crash ||
    fail "$r: verification through a fresh mount"
done
umount $M || fail "umount"
sync
echo "== all guest crash checks passed"
GUEST

echo "== booting the guest; console follows"
BUCKETFS_QEMU_EXTRA_ARGS="$(guest_out_share_args "$out")" \
  timeout -k 10 $((timeout + 120)) bash "$here/run-guest.sh" --host-root --timeout "$timeout" --mem 1024 -- "$work/guest.sh" \
  > >(sed -u 's/\r$//' | tee "$work/console.log") 2>&1 &
guest_pid=$!

acks() { local n; n=$(grep -c '^ack ' "$1" 2>/dev/null) || true; echo "${n:-0}"; }
for c in $(seq "$crashes"); do
  want=${kill_at[$((c - 1))]}
  log=$out/ack-victim.log; [ "$c" -gt 1 ] && log=$out/ack-survivor.log
  while [ "$(acks "$log")" -lt "$want" ]; do
    kill -0 "$guest_pid" 2>/dev/null || { wait "$guest_pid" || true; echo "== $server log (tail)"; srv_log_tail 20
      echo "FAILED: the guest ended before crash $c (after $(acks "$log") acks; see GUEST-FAIL above)"; exit 1; }
    grep -q '^done' "$log" 2>/dev/null && { echo "FAILED: the writer finished before crash $c; lower the kill point or raise --ops"; exit 1; }
    sleep 0.05
  done
  sleep "0.$((RANDOM % 5))$((RANDOM % 10))"
  echo "== host: crash $c: SIGKILL $server after $(acks "$out/ack-victim.log") victim / $(acks "$out/ack-survivor.log") survivor acks"
  srv_kill9
  echo "== server killed $(date +%T.%N | cut -c1-12)" >> "$SERVER_LOG"
  touch "$out/crashed-$c"
  sleep "$down"
  echo "== host: restarting $server on the same state (down ${down} s)"
  srv_start
  touch "$out/restarted-$c"
done

set +e
wait "$guest_pid"
status=$?
set -e
guest_pid=""
if [ "$status" != 0 ]; then
  echo "== $server log (tail)"; srv_log_tail 40
  echo "FAILED: the guest's crash checks failed (guest status $status; seed $seed; see GUEST-FAIL/FAIL above)"
  exit 1
fi

case $server in
  bucketfs)
    # As in test-nfs-client.sh: the restart must go through a grace period that the client's
    # reclaim ends.
    grep -q "NFSv4 grace period begins" "$SERVER_LOG" || { srv_log_tail 30; echo "FAILED: no grace period after the restart"; exit 1; }
    grep -q "NFSv4 grace period over: every client reclaimed" "$SERVER_LOG" || { srv_log_tail 30; echo "FAILED: the client did not reclaim its state"; exit 1; }
    ;;
  ganesha)
    grep -i -E "grace|reclaim" "$SERVER_LOG" | sed 's/^.*\] /   ganesha: /' | tail -4 || true
    # the restarted ganesha held a grace period that the client's RECLAIM_COMPLETE ended
    grep -q "check grace:reclaim complete([1-9]" "$SERVER_LOG" ||
      { echo "FAILED: ganesha saw no reclaim after the restart (is the recovery directory kept?)"; exit 1; }
    ;;
esac

echo "== host: waiting for the $server tree to settle"
wait_for_bucket_settled 600 || { echo "FAILED: the bucket did not settle"; exit 1; }
echo "== host: verifying $TREE_DIR/crash against the ack logs, and comparing it with the guest's manifest"
for r in survivor victim; do
  python3 "$here/guest/nfscrash.py" verify "$TREE_DIR/crash" --role "$r" --log "$out/ack-$r.log" \
    --seed "$seed" --ops "$ops" --files "$files" --fsync-every "$fsync_every" ||
    { echo "FAILED: the server's tree fails the $r check (seed $seed)"; exit 1; }
done
python3 "$here/guest/nfstest_common.py" compare "$TREE_DIR" "$out/manifest.tsv" "$TREE_FLAVOR" ||
  { echo "FAILED: the server's tree differs from what the guest read after the remount (seed $seed)"; exit 1; }
srv_stop
echo "== crash test passed against $server (NFSv$vers, $crashes crash(es), seed $seed, $((SECONDS - t_start)) s)"
