# shellcheck shell=bash
# image/qemu/nfs-servers.sh — sourced by test-nfs-write.sh and test-nfs-crash.sh: the server
# under test (nfs-ganesha now, bucketfs once its write path lands) on loopback, as the QEMU guest's
# kernel client sees it at 10.0.2.2, plus the writable 9p share the guest reports through.
#
# The caller sets: here (image/qemu), repo, work (a private temp dir), server (ganesha|bucketfs),
# and calls, in order: srv_prepare [v3] [grace] -> srv_start -> ... -> srv_cleanup (from its
# EXIT trap). After srv_prepare:
#   NFS_PORT, MOUNT_PORT     what the guest mounts (NFSv3 and NFSv4.0/4.1; MOUNT for v3)
#   NFS_PORT42               what the guest mounts for NFSv4.2 (ganesha: the READ_PLUS proxy)
#   EXPORT_V4, EXPORT_V3     the paths to mount
#   TREE_DIR, TREE_FLAVOR    where the host finds the written tree (ganesha: the export
#                            directory; bucketfs: the local-directory bucket) and how to compare it
#   SERVER_LOG               the server's log
# Also: srv_kill9 (SIGKILL, as a crash), srv_stop (graceful), wait_for_bucket_settled,
# guest_out_share_args DIR (QEMU arguments for a writable 9p share with mount_tag=out).

srv_pid="" proxy_pid="" rpcbind_pid=""

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

port_open() { python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" "$1" 2>/dev/null; }

# srv_prepare [v3] [grace]: v3 — also serve NFSv3 (ganesha then needs rpcbind); grace — a crash
# test: ganesha keeps NFSv4 client records and holds a grace period after a restart so clients
# reclaim their state, as bucketfs does (ganesha's benchmark config is Graceless).
srv_prepare() {
  local want_v3=0 want_grace=0 a
  for a in "$@"; do
    case $a in v3) want_v3=1 ;; grace) want_grace=1 ;; *) echo "srv_prepare: unknown option $a" >&2; return 2 ;; esac
  done
  NFS_PORT=$(free_port); MOUNT_PORT=$(free_port)
  SERVER_LOG=$work/server.log
  : > "$SERVER_LOG"
  case $server in
    ganesha) ganesha_prepare "$want_v3" "$want_grace" ;;
    bucketfs) bucketfs_prepare ;;
    *) echo "unknown server '$server' (ganesha or bucketfs)" >&2; return 2 ;;
  esac
}

srv_start() {
  case $server in ganesha) ganesha_start ;; bucketfs) bucketfs_start ;; esac
}

# SIGKILL the server (not the READ_PLUS proxy: that stands for the network in front of it).
srv_kill9() {
  [ -n "$srv_pid" ] || return 0
  kill -9 "$srv_pid" 2>/dev/null || true
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=""
}

srv_stop() {
  [ -n "$srv_pid" ] || return 0
  kill -TERM "$srv_pid" 2>/dev/null || true
  local i
  for i in $(seq 100); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$srv_pid" 2>/dev/null && { echo "   (server did not stop on SIGTERM in 10 s; SIGKILL)"; kill -9 "$srv_pid" 2>/dev/null || true; }
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=""
}

srv_cleanup() {
  srv_stop || true
  if [ -n "$proxy_pid" ]; then kill -TERM "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; proxy_pid=""; fi
  if [ -n "$rpcbind_pid" ]; then kill -TERM "$rpcbind_pid" 2>/dev/null || true; wait "$rpcbind_pid" 2>/dev/null || true; rpcbind_pid=""; fi
}

srv_log_tail() { grep -v -E 'DBUS|SetComponentLogLevel|krb5|gssd|keytab|RADOS' "$SERVER_LOG" | tail -"${1:-30}"; }

guest_out_share_args() { echo "-virtfs local,path=$1,mount_tag=out,security_model=none"; }

# ---- nfs-ganesha (FSAL_VFS over a local directory), from perf/ganesha/ganesha.conf.in ----------
ganesha_prepare() {
  local want_v3=$1 want_grace=$2 protocols=4
  command -v ganesha.nfsd >/dev/null || { echo "ganesha.nfsd not installed (apt-get install nfs-ganesha nfs-ganesha-vfs)" >&2; return 1; }
  TREE_DIR=$work/export TREE_FLAVOR=posix
  mkdir -p "$TREE_DIR" "$work/ganesha-state"
  EXPORT_V4=/export EXPORT_V3=$TREE_DIR
  if [ "$want_v3" = 1 ]; then
    protocols="3, 4"
    # ganesha registers NFSv3 and MOUNT with rpcbind or refuses to start; the guest itself is
    # told the ports and never asks rpcbind.
    if ! pgrep -x rpcbind >/dev/null; then
      command -v rpcbind >/dev/null || { echo "NFSv3 on ganesha needs rpcbind (apt-get install rpcbind)" >&2; return 1; }
      mkdir -p /run/rpcbind
      rpcbind -f -w & rpcbind_pid=$!
      sleep 0.3
    fi
  fi
  local nfsv4_extra="Only_Numeric_Owners = true;" log="LOG { Default_Log_Level = WARN; }"
  if [ "$want_grace" = 1 ]; then
    nfsv4_extra="$nfsv4_extra Graceless = false; Lease_Lifetime = 10; Grace_Period = 15;"
    # grace starts/ends and client records at EVENT level, to show the restart's recovery
    log="LOG { Default_Log_Level = WARN; COMPONENTS { STATE = EVENT; CLIENTID = EVENT; } }"
  fi
  sed -e "s|@PROTOCOLS@|$protocols|g" -e "s|@NFS_PORT@|$NFS_PORT|g" -e "s|@MNT_PORT@|$MOUNT_PORT|g" \
      -e "s|@EXPORT_DIR@|$TREE_DIR|g" -e "s|@STATE_DIR@|$work/ganesha-state|g" \
      -e "s|^  Graceless = true;|  $nfsv4_extra|" -e "s|^LOG { Default_Log_Level = WARN; }|$log|" \
      "$repo/perf/ganesha/ganesha.conf.in" > "$work/ganesha.conf"
  grep -q "Only_Numeric_Owners" "$work/ganesha.conf" || { echo "perf/ganesha/ganesha.conf.in changed: no 'Graceless = true;' line to adapt" >&2; return 1; }
  # Linux >= 6.6 reads NFSv4.2 with READ_PLUS, which ganesha < 6.2 answers wrongly (EIO in the
  # client): NFSv4.2 goes through a proxy that turns READ_PLUS into READ (readplus-proxy.py).
  NFS_PORT42=$(free_port)
  python3 "$here/readplus-proxy.py" "$NFS_PORT42" "$NFS_PORT" 2>>"$work/proxy.log" &
  proxy_pid=$!
  local i
  for i in $(seq 50); do grep -q listening "$work/proxy.log" 2>/dev/null && break; sleep 0.1; done
  grep -q listening "$work/proxy.log" || { cat "$work/proxy.log"; echo "the READ_PLUS proxy did not start" >&2; return 1; }
}

ganesha_start() {
  ganesha.nfsd -F -f "$work/ganesha.conf" -L "$SERVER_LOG" -p "$work/ganesha.pid" &
  srv_pid=$!
  local i
  for i in $(seq 100); do
    port_open "$NFS_PORT" && return 0
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.1
  done
  srv_log_tail 10; echo "ganesha did not start listening on $NFS_PORT" >&2; return 1
}

# ---- bucketfs (a local-directory bucket, one read-write export) --------------------------------
# What the write path is expected to accept: `read_only = false` on the [[export]] (already a key,
# default false) and `root_squash = false` (the guest writes as root); with the write path,
# `[write] upload_after_close/upload_after_idle` short, so the bucket settles soon after the guest.
bucketfs_prepare() {
  BUCKETFS_BIN=${BUCKETFS_BIN:-$repo/target/release/bucketfs}
  if [ ! -x "$BUCKETFS_BIN" ]; then
    echo "== building bucketfs (release)"
    (cd "$repo" && cargo build --release -q -p bucketfs)
  fi
  [ -x "$BUCKETFS_BIN" ] || { echo "no bucketfs binary at $BUCKETFS_BIN" >&2; return 1; }
  TREE_DIR=$work/bucket TREE_FLAVOR=bucket
  mkdir -p "$TREE_DIR"
  EXPORT_V4=/data EXPORT_V3=/data
  NFS_PORT42=$NFS_PORT
  ADMIN_PORT=$(free_port)
  cat > "$work/bucketfs.toml" <<EOF
[cache]
device = "$work/cache.img"
size = "1GiB"
metadata_dir = "$work/meta"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[nfs]
listen = "127.0.0.1:$NFS_PORT"
mount_listen = "127.0.0.1:$MOUNT_PORT"
lease = "10s"
grace = "15s"

[[bucket]]
name = "local"
kind = "local"
path = "$TREE_DIR"

[[export]]
path = "/data"
bucket = "local"
read_only = false
root_squash = false
EOF
  # A bucketfs with the write path: upload soon after close/idle so the bucket settles quickly.
  if bucketfs_has_write_path; then
    printf '\n[write]\nupload_after_close = "1s"\nupload_after_idle = "2s"\n' >> "$work/bucketfs.toml"
  fi
}

bucketfs_start() {
  RUST_LOG=${RUST_LOG:-warn,nfs=info} "$BUCKETFS_BIN" serve --config "$work/bucketfs.toml" >>"$SERVER_LOG" 2>&1 &
  srv_pid=$!
  local i
  for i in $(seq 150); do
    if grep -q "bucketfs: nfs listening" "$SERVER_LOG" 2>/dev/null && port_open "$NFS_PORT"; then return 0; fi
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.2
  done
  srv_log_tail 30; echo "bucketfs did not start listening on $NFS_PORT" >&2; return 1
}

# ---- the bucket after the writes ------------------------------------------------------------------
# HOOK for the write path: the host may compare the bucket with what the guest wrote only once
# every write has been uploaded. For ganesha the export directory is the truth at once. For
# bucketfs: `bucketfs stats --wait-uploaded SECS` (waits until the stats' writes.pending_uploads
# and writes.pending_bucket_ops are 0; on main since the write path's engine landed). A bucketfs
# without it fails here loudly.
bucketfs_has_write_path() { "$BUCKETFS_BIN" stats --help 2>/dev/null | grep -q -- --wait-uploaded; }

wait_for_bucket_settled() {
  local timeout=${1:-300} t0=$SECONDS out
  [ "$server" = bucketfs ] || return 0
  if ! bucketfs_has_write_path; then
    echo "wait_for_bucket_settled: NOT IMPLEMENTED until the write path lands:" \
         "$BUCKETFS_BIN has no \`stats --wait-uploaded\` (writes.pending_uploads / pending_bucket_ops)" >&2
    return 1
  fi
  out=$("$BUCKETFS_BIN" stats --admin "127.0.0.1:$ADMIN_PORT" --wait-uploaded "$timeout" 2>&1) ||
    { printf '%s\n' "$out" | tail -20; echo "wait_for_bucket_settled: uploads still pending after $timeout s" >&2; return 1; }
  printf '%s\n' "$out" | grep -E '^ *(writes|uploads)' | sed 's/^/   /' || true
  echo "   bucket settled: nothing pending ($((SECONDS - t0)) s)"
}
