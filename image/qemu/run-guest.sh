#!/usr/bin/env bash
# image/qemu/run-guest.sh — boot a throwaway Linux guest (QEMU, TCG) and run one shell script in it.
#
# Usage:
#   run-guest.sh [--nvme RAW_IMAGE_FILE] [--nvme-poll-queues N] [--share HOST_DIR]
#                [--host-root] [--timeout SECONDS] [--mem MB] [--smp N] [--verbose]
#                -- GUEST_SHELL_SCRIPT_FILE
#
#   --nvme FILE           attach FILE (raw image) as an emulated NVMe controller
#                         (-device nvme,serial=bucketfs0): guest sees /dev/nvme0n1 and /dev/ng0n1.
#   --nvme-poll-queues N  load the guest nvme module with poll_queues=N (needed for IOPOLL).
#   --share DIR           export host DIR read-only over 9p (mount_tag=host), mounted at /host.
#   --host-root           also export the host's / read-only (mount_tag=hostroot) at /hostroot;
#                         the guest command `hostchroot CMD...` runs a host (glibc, dynamically
#                         linked) program chrooted there, with /dev, /proc, /sys, fresh tmpfs
#                         /tmp and /run, and the --share dir at /run/host. Host paths (e.g. the
#                         repo's target/ dir) are visible read-only at their own paths.
#   --timeout SECONDS     kill QEMU and fail (exit 124) after this long (default 600).
#   --mem MB              guest memory (default 1024).   --smp N  guest vCPUs (default 2).
#   --verbose             show the kernel's boot log and module loading (default: quiet).
#
# The guest: Debian's 6.1 kernel (fetched by install.sh, which this script runs first) and an
# initramfs of busybox-static plus modules (nvme, virtio_net, 9p, sunrpc/lockd/nfs/nfsv3/nfsv4,
# overlay, loop; extra ones by name in $BUCKETFS_QEMU_MODULES), insmod'ed in the dependency order
# modules.dep gives. /init mounts proc, sysfs, devtmpfs, devpts and tmpfs on /tmp, brings up
# eth0 as 10.0.2.15/24 with default route via 10.0.2.2 (QEMU user networking: 10.0.2.2 is the
# host's 127.0.0.1), then runs the script with busybox /bin/sh in /tmp, stdin /dev/null.
# Guest env: BUCKETFS_GUEST=1, BUCKETFS_SHARE=/host (if --share), BUCKETFS_NVME=/dev/nvme0n1 and
# BUCKETFS_NG=/dev/ng0n1 (if --nvme).
#
# Output: the guest console (serial) streams to stdout. Exit status: the script's exit status,
# 124 on timeout, 125 if the guest ended without reporting one (panic, QEMU failure), 2 on bad usage.
#
# Host binaries: build them static, e.g.
#   RUSTFLAGS="-C target-feature=+crt-static" cargo build --target x86_64-unknown-linux-gnu
# then --share the directory holding them (see README.md), or use --host-root + hostchroot.
#
# Env: BUCKETFS_QEMU_DIR (cache, default /var/cache/bucketfs-qemu), BUCKETFS_QEMU_MODULES (extra
# module names), BUCKETFS_QEMU_EXTRA_ARGS (extra QEMU arguments, word-split),
# BUCKETFS_QEMU_BZIMAGE=1 (boot the compressed bzImage instead of the extracted vmlinux), TMPDIR.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF=$HERE/$(basename "${BASH_SOURCE[0]}")
QDIR=${BUCKETFS_QEMU_DIR:-/var/cache/bucketfs-qemu}
export BUCKETFS_QEMU_DIR=$QDIR

die() { echo "run-guest: $*" >&2; exit 2; }
usage() { sed -n '2,40p' "$SELF" >&2; exit 2; }

NVME="" POLLQ="" SHARE="" HOSTROOT=0 TIMEOUT=600 MEM=1024 SMP=2 VERBOSE=0 SCRIPT=""
while [ $# -gt 0 ]; do
  case $1 in
    --nvme) [ $# -ge 2 ] || usage; NVME=$2; shift 2 ;;
    --nvme-poll-queues) [ $# -ge 2 ] || usage; POLLQ=$2; shift 2 ;;
    --share) [ $# -ge 2 ] || usage; SHARE=$2; shift 2 ;;
    --host-root) HOSTROOT=1; shift ;;
    --timeout) [ $# -ge 2 ] || usage; TIMEOUT=$2; shift 2 ;;
    --mem) [ $# -ge 2 ] || usage; MEM=$2; shift 2 ;;
    --smp) [ $# -ge 2 ] || usage; SMP=$2; shift 2 ;;
    --verbose) VERBOSE=1; shift ;;
    -h|--help) usage ;;
    --) shift; [ $# -eq 1 ] || usage; SCRIPT=$1; shift ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[ -n "$SCRIPT" ] || usage
[ -f "$SCRIPT" ] || die "guest script not found: $SCRIPT"
[[ $TIMEOUT =~ ^[0-9]+$ && $MEM =~ ^[0-9]+$ && $SMP =~ ^[0-9]+$ ]] || die "--timeout/--mem/--smp take integers"
[ -z "$POLLQ" ] || [[ $POLLQ =~ ^[0-9]+$ ]] || die "--nvme-poll-queues takes an integer"
if [ -n "$NVME" ]; then [ -f "$NVME" ] || die "nvme image not found: $NVME"; NVME=$(realpath "$NVME"); fi
if [ -n "$SHARE" ]; then [ -d "$SHARE" ] || die "share dir not found: $SHARE"; SHARE=$(realpath "$SHARE"); fi
for p in "$NVME" "$SHARE"; do [[ $p != *,* ]] || die "paths with commas are not supported by QEMU options: $p"; done

"$HERE/install.sh"
# shellcheck disable=SC1091
. "$QDIR/kernel.env"

# ---- initramfs (cached by content of this script, kernel, module list and busybox) -------------
MODULES="virtio_pci virtio_net 9pnet_virtio 9p nvme sunrpc grace lockd nfs nfsv3 nfsv4 overlay loop ${BUCKETFS_QEMU_MODULES:-}"

# Print the modules' paths (relative to $MODDIR) in load order: every dependency before its user.
# Hard dependencies come from modules.dep; soft ones ("softdep ext4 pre: crypto-crc32c") from
# modules.softdep, with names resolved through exact entries of modules.alias.
module_order() {
  local -A dep=() pre=() post=() seen=()
  local line mod deps m rest w
  while IFS= read -r line; do
    mod=${line%%:*}; deps=${line#*:}
    m=${mod##*/}; m=${m%%.ko*}; m=${m//-/_}
    dep[$m]="$mod:$deps"
  done < "$MODDIR/modules.dep"
  if [ -f "$MODDIR/modules.softdep" ]; then
    local -a words
    while read -r -a words; do
      [ "${words[0]:-}" = softdep ] && [ ${#words[@]} -ge 3 ] || continue
      m=${words[1]//-/_}; rest=pre
      for w in "${words[@]:2}"; do
        case $w in
          pre:) rest=pre ;; post:) rest=post ;;
          *) if [ $rest = pre ]; then pre[$m]+=" $w"; else post[$m]+=" $w"; fi ;;
        esac
      done
    done < "$MODDIR/modules.softdep"
  fi
  visit() {
    local name=${1//-/_} ent path d dn a
    [ -z "${seen[$name]:-}" ] || return 0
    seen[$name]=1
    ent=${dep[$name]:-}
    if [ -z "$ent" ]; then
      # not a module name: an alias (e.g. crypto-crc32c), built in, or unknown
      local targets
      targets=$(awk -v a="$1" '$1 == "alias" && $2 == a { print $3 }' "$MODDIR/modules.alias")
      if [ -n "$targets" ]; then for a in $targets; do visit "$a"; done; return 0; fi
      grep -q "/${1}.ko" "$MODDIR/modules.builtin" 2>/dev/null ||
        echo "run-guest: module '$1' not found (built in?) — skipped" >&2
      return 0
    fi
    path=${ent%%:*}
    for d in ${pre[$name]:-}; do visit "$d"; done
    for d in ${ent#*:}; do dn=${d##*/}; dn=${dn%%.ko*}; visit "$dn"; done
    echo "$path"
    for d in ${post[$name]:-}; do visit "$d"; done
  }
  for m in "$@"; do visit "$m"; done
}

build_initramfs() {
  local out=$1 st
  st=$(mktemp -d "$QDIR/initramfs/.build.XXXXXX")
  mkdir -p "$st"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,mnt,host,hostroot,etc/bucketfs,root,var/log}
  cp /bin/busybox "$st/bin/busybox"
  local a
  for a in $(/bin/busybox --list-full); do
    [ -e "$st/$a" ] || ln -s /bin/busybox "$st/$a"
  done
  mknod -m 600 "$st/dev/console" c 5 1 2>/dev/null || true
  mknod -m 666 "$st/dev/null" c 1 3 2>/dev/null || true
  local order; order=$(module_order $MODULES)
  local m loaded=()
  for m in $order; do
    mkdir -p "$st/lib/modules/$KVER/$(dirname "$m")"
    # Compressed modules (Debian 6.12 ships .ko.xz) go in decompressed: busybox insmod hands the
    # bytes to init_module as they are.
    case $m in
      *.ko.xz) xz -dc "$MODDIR/$m" > "$st/lib/modules/$KVER/${m%.xz}"; m=${m%.xz} ;;
      *.ko.zst) zstd -dcq "$MODDIR/$m" > "$st/lib/modules/$KVER/${m%.zst}"; m=${m%.zst} ;;
      *) cp "$MODDIR/$m" "$st/lib/modules/$KVER/$m" ;;
    esac
    loaded+=("$m")
  done
  cp "$MODDIR"/modules.builtin "$MODDIR"/modules.builtin.modinfo "$MODDIR"/modules.order "$st/lib/modules/$KVER/" 2>/dev/null || true
  depmod -b "$st" "$KVER" 2>/dev/null || /sbin/depmod -b "$st" "$KVER"
  printf '%s\n' "${loaded[@]}" > "$st/etc/bucketfs/modules"
  echo "$KVER" > "$st/etc/bucketfs/kver"
  echo 'root:x:0:0:root:/root:/bin/sh' > "$st/etc/passwd"
  echo 'root:x:0:' > "$st/etc/group"
  printf '127.0.0.1 localhost\n10.0.2.15 guest\n10.0.2.2 host\n' > "$st/etc/hosts"
  echo 'nameserver 10.0.2.3' > "$st/etc/resolv.conf"
  write_init > "$st/init"; chmod 755 "$st/init"
  write_hostchroot > "$st/bin/hostchroot"; chmod 755 "$st/bin/hostchroot"
  ( cd "$st" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) > "$out.tmp.$$"
  mv "$out.tmp.$$" "$out"
  rm -rf "$st"
}

write_init() {
  cat <<'INIT'
#!/bin/sh
# bucketfs guest /init (generated by image/qemu/run-guest.sh)
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run 2>/dev/null || true
. /etc/bucketfs/run.env
say() { [ "$VERBOSE" = 1 ] && echo "init: $*"; return 0; }
finish() {
  sync
  echo "BUCKETFS-GUEST-EXIT $NONCE $1"
  poweroff -f
  sleep 10; reboot -f
}
KVER=$(cat /etc/bucketfs/kver)
[ "$VERBOSE" = 1 ] || echo 1 > /proc/sys/kernel/printk
while read -r m; do
  name=${m##*/}; name=${name%.ko}
  args=
  [ "$name" = nvme ] && [ -n "$NVME_POLL_QUEUES" ] && args="poll_queues=$NVME_POLL_QUEUES"
  say "insmod $name $args"
  insmod "/lib/modules/$KVER/$m" $args || echo "init: insmod $m failed"
done < /etc/bucketfs/modules

wait_for() {  # wait_for PATH SECONDS
  i=0
  while [ ! -e "$1" ] && [ $i -lt $(($2 * 10)) ]; do usleep 100000; i=$((i + 1)); done
  [ -e "$1" ]
}

ip link set lo up
if wait_for /sys/class/net/eth0 20; then
  ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && ip route add default via 10.0.2.2 ||
    echo "init: network setup failed"
else
  echo "init: no eth0"
fi
hostname guest

if [ "$SHARE" = 1 ]; then
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose host /host ||
    { echo "init: mounting the 9p share failed"; finish 125; }
  export BUCKETFS_SHARE=/host
fi
if [ "$HOSTROOT" = 1 ]; then
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /hostroot ||
    { echo "init: mounting the 9p host root failed"; finish 125; }
fi
if [ "$NVME" = 1 ]; then
  wait_for /dev/nvme0n1 30 && wait_for /dev/ng0n1 10 || { echo "init: NVMe namespace did not appear"; ls -l /dev/nvme* /dev/ng* 2>&1; }
  export BUCKETFS_NVME=/dev/nvme0n1 BUCKETFS_NG=/dev/ng0n1
fi
export BUCKETFS_GUEST=1
say "running the guest script"
cd /tmp || true
/bin/sh /etc/bucketfs/script.sh </dev/null
finish $?
INIT
}

write_hostchroot() {
  cat <<'HC'
#!/bin/sh
# hostchroot CMD [ARGS...]: run a host program (dynamically linked against the host's glibc)
# inside a chroot of the host's root, shared read-only at /hostroot (run-guest.sh --host-root).
[ -d /hostroot/usr ] || { echo "hostchroot: host root not shared (use run-guest.sh --host-root)" >&2; exit 126; }
if [ ! -e /run/hostchroot.ready ]; then
  for d in dev proc sys; do mount --rbind /$d /hostroot/$d || exit 126; done
  mount -t tmpfs -o mode=1777 tmpfs /hostroot/tmp || exit 126
  mount -t tmpfs -o mode=755 tmpfs /hostroot/run || exit 126
  if grep -q ' /host 9p ' /proc/mounts; then mkdir -p /hostroot/run/host && mount --bind /host /hostroot/run/host; fi
  touch /run/hostchroot.ready
fi
exec chroot /hostroot "$@"
HC
}

mkdir -p "$QDIR/initramfs"
KEY=$( { cat "$SELF"; echo "$KVER $KERNEL_ROOT $MODULES"; stat -c '%s %Y' /bin/busybox; } | sha256sum | cut -c1-16)
BASE=$QDIR/initramfs/base-$KEY.cpio
if [ ! -f "$BASE" ]; then
  echo "run-guest: building initramfs $BASE" >&2
  build_initramfs "$BASE"
  # keep the cache small: drop initramfs images of other keys older than a day
  find "$QDIR/initramfs" -maxdepth 1 -name 'base-*.cpio' ! -name "base-$KEY.cpio" -mtime +1 -delete 2>/dev/null || true
fi

# ---- per-run archive: the script and settings, appended to the cached base ----------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bucketfs-guest.XXXXXX")
QEMU_PID=""
cleanup() {
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then kill -9 "$QEMU_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "run-guest: interrupted" >&2; exit 130' INT TERM HUP

NONCE=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$WORK/run/etc/bucketfs"
cp "$SCRIPT" "$WORK/run/etc/bucketfs/script.sh"
cat > "$WORK/run/etc/bucketfs/run.env" <<EOF
NONCE=$NONCE
VERBOSE=$VERBOSE
NVME=$([ -n "$NVME" ] && echo 1 || echo 0)
NVME_POLL_QUEUES=$POLLQ
SHARE=$([ -n "$SHARE" ] && echo 1 || echo 0)
HOSTROOT=$HOSTROOT
EOF
( cd "$WORK/run" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) > "$WORK/run.cpio"
cat "$BASE" "$WORK/run.cpio" > "$WORK/initrd"

# Prefer the decompressed ELF vmlinux (PVH boot, ~5 s faster under TCG) that install.sh extracts.
KERNEL=$KERNEL_ROOT/boot/vmlinux-$KVER
if [ "${BUCKETFS_QEMU_BZIMAGE:-0}" = 1 ] || [ ! -f "$KERNEL" ]; then KERNEL=$VMLINUZ; fi
APPEND="console=ttyS0,115200 panic=-1 oops=panic rdinit=/init nokaslr tsc=reliable"
[ "$VERBOSE" = 1 ] || APPEND="$APPEND quiet loglevel=1"
QEMU=(qemu-system-x86_64 -nodefaults -no-user-config -machine q35 -accel "tcg,thread=multi" -cpu max
  -smp "$SMP" -m "$MEM" -display none -monitor none -serial stdio -no-reboot
  -kernel "$KERNEL" -initrd "$WORK/initrd" -append "$APPEND"
  -netdev "user,id=n0" -device "virtio-net-pci,netdev=n0,romfile="
  -pidfile "$WORK/qemu.pid")
if [ -n "$NVME" ]; then
  QEMU+=(-drive "file=$NVME,if=none,id=nvm0,format=raw" -device "nvme,serial=bucketfs0,drive=nvm0")
fi
if [ -n "$SHARE" ]; then
  QEMU+=(-virtfs "local,path=$SHARE,mount_tag=host,readonly=on,security_model=none,multidevs=remap")
fi
if [ "$HOSTROOT" = 1 ]; then
  QEMU+=(-virtfs "local,path=/,mount_tag=hostroot,readonly=on,security_model=none,multidevs=remap")
fi
# shellcheck disable=SC2206
[ -z "${BUCKETFS_QEMU_EXTRA_ARGS:-}" ] || QEMU+=(${BUCKETFS_QEMU_EXTRA_ARGS})

T0=$(date +%s%N)
# QEMU's console goes through tee (stdout + log); the exit status of the pipeline's first stage
# is recorded in a file. `timeout` kills QEMU (TERM, then KILL 5 s later) when time is up.
( set +e; timeout -k 5 "$TIMEOUT" "${QEMU[@]}" </dev/null 2>&1; echo $? > "$WORK/qemu.rc" ) |
  tee "$WORK/console.log" &
PIPE=$!
# remember QEMU's pid for cleanup on interruption
for _ in $(seq 50); do [ -s "$WORK/qemu.pid" ] && break; sleep 0.1; done
QEMU_PID=$(cat "$WORK/qemu.pid" 2>/dev/null || true)
wait "$PIPE" || true
QRC=$(cat "$WORK/qemu.rc" 2>/dev/null || echo 255)
ELAPSED=$(( ($(date +%s%N) - T0) / 1000000 )); ELAPSED="$((ELAPSED / 1000)).$(printf %03d $((ELAPSED % 1000)))"

GRC=$(tr -d '\r' < "$WORK/console.log" | sed -n "s/^BUCKETFS-GUEST-EXIT $NONCE \([0-9]*\)\$/\1/p" | tail -n1)
if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
  echo "run-guest: TIMEOUT: guest did not finish within ${TIMEOUT} s; QEMU killed" >&2
  exit 124
fi
if [ -z "$GRC" ]; then
  echo "run-guest: guest ended without reporting an exit status (qemu exit $QRC, ${ELAPSED} s)" >&2
  exit 125
fi
echo "run-guest: guest script exited $GRC (${ELAPSED} s)" >&2
exit "$GRC"
