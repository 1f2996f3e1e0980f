#!/usr/bin/env bash
# Starts nfs-ganesha (FSAL_VFS) on loopback over a directory, from ganesha.conf.in beside this
# script, in the background; prints its pid and the libnfs URLs. For trying things by hand: perf's
# nfs-bench fills the same template itself. Stop it with `kill <pid>`.
#   perf/ganesha/start.sh EXPORT_DIR [v4|v3] [NFS_PORT] [MNT_PORT]
# v3 also serves v4 and needs rpcbind: started here (`rpcbind -w`) when none runs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export_dir="$(realpath "${1:?usage: $0 EXPORT_DIR [v4|v3] [NFS_PORT] [MNT_PORT]}")"
mode="${2:-v4}"
nfs_port="${3:-20490}"
mnt_port="${4:-20491}"
work="$(mktemp -d /tmp/ganesha.XXXXXX)"
mkdir -p "$work/state"
case "$mode" in
  v4) protocols=4 ;;
  v3)
    protocols="3, 4"
    if ! pgrep -x rpcbind >/dev/null; then
      mkdir -p /run/rpcbind
      rpcbind -w
    fi
    ;;
  *) echo "start.sh: mode is v4 or v3, not $mode" >&2; exit 2 ;;
esac
sed -e "s|@PROTOCOLS@|$protocols|g" -e "s|@NFS_PORT@|$nfs_port|g" -e "s|@MNT_PORT@|$mnt_port|g" \
  -e "s|@EXPORT_DIR@|$export_dir|g" -e "s|@STATE_DIR@|$work/state|g" "$here/ganesha.conf.in" >"$work/ganesha.conf"
ganesha.nfsd -F -f "$work/ganesha.conf" -L "$work/ganesha.log" -p "$work/ganesha.pid" &
pid=$!
for _ in $(seq 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$nfs_port") 2>/dev/null; then
    echo "ganesha pid $pid (config and log in $work)"
    echo "NFSv4: nfs://127.0.0.1/export?version=4&nfsport=$nfs_port"
    [ "$mode" = v3 ] && echo "NFSv3: nfs://127.0.0.1$export_dir?nfsport=$nfs_port&mountport=$mnt_port"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
echo "start.sh: ganesha did not start; its log:" >&2
grep -v DBUS "$work/ganesha.log" | tail -5 >&2
exit 1
