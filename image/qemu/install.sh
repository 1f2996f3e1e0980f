#!/usr/bin/env bash
# image/qemu/install.sh — install everything the QEMU guest harness (run-guest.sh) needs.
#
# Idempotent; a fast no-op once done. Needs root (apt-get) unless everything is already in place.
#
#   * adds a bookworm-backports apt source if none is configured;
#   * installs qemu-system-x86 from bookworm-backports (matches the preinstalled qemu-utils 10.0;
#     the plain bookworm qemu-system-x86 conflicts with it), busybox-static, cpio, kmod (depmod),
#     xz-utils, zstd;
#   * downloads the Debian guest kernel from bookworm-backports (linux-image-6.12.<N>+deb12-amd64,
#     as named by `apt-cache depends -t bookworm-backports linux-image-amd64`), unpacks it with
#     `dpkg -x` into the cache directory (never installs it on the host) and runs `depmod -b` on it.
#     Not bookworm's 6.1: its NVMe passthrough IOPOLL polls a bio that completion may already have
#     freed and panicked the guest in bio_poll (Linux 6.5 polls the request instead), and the
#     passthrough IOPOLL path must be exercised.
#
# Cache directory: ${BUCKETFS_QEMU_DIR:-/var/cache/bucketfs-qemu}. Layout:
#   $DIR/kernel/<pkg>/boot/vmlinuz-<kver>, .../boot/vmlinux-<kver> (decompressed, for PVH boot),
#   $DIR/kernel/<pkg>/lib/modules/<kver>/...
#   $DIR/kernel.env   (KVER=, KERNEL_ROOT=, VMLINUZ=, MODDIR=) — written last; its presence = done.
#
# Options:  --refresh   re-resolve the kernel version (apt-get update) even if one is cached.
# Env:      BUCKETFS_QEMU_DIR (cache dir), APT_LOCK_TIMEOUT (seconds, default 600).
set -euo pipefail

QDIR=${BUCKETFS_QEMU_DIR:-/var/cache/bucketfs-qemu}
LOCK_TIMEOUT=${APT_LOCK_TIMEOUT:-600}
REFRESH=0
for a in "$@"; do
  case $a in
    --refresh) REFRESH=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument: $a" >&2; exit 2 ;;
  esac
done

log() { echo "install.sh: $*" >&2; }
APT=(apt-get -o DPkg::Lock::Timeout="$LOCK_TIMEOUT" -o Acquire::Retries=3)
export DEBIAN_FRONTEND=noninteractive

have_tools() {
  command -v qemu-system-x86_64 >/dev/null 2>&1 &&
    [ -x /bin/busybox ] && dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' &&
    command -v cpio >/dev/null 2>&1 && command -v xz >/dev/null 2>&1 && command -v zstd >/dev/null 2>&1 &&
    { command -v depmod >/dev/null 2>&1 || [ -x /sbin/depmod ]; }
}
# The kernel line the cache must hold; a cached kernel of another line is replaced.
KLINE_WANTED=bookworm-backports-6.12
have_kernel() {
  [ -f "$QDIR/kernel.env" ] || return 1
  # shellcheck disable=SC1091
  ( . "$QDIR/kernel.env" && [ "${KLINE:-}" = "$KLINE_WANTED" ] && [ -f "$VMLINUZ" ] && [ -f "$MODDIR/modules.dep" ] &&
    { [ -f "$KERNEL_ROOT/boot/vmlinux-$KVER" ] || [ -f "$KERNEL_ROOT/boot/.no-vmlinux" ]; } )
}
# Decompress the bzImage's payload (Debian 6.12: zstd; 6.1: xz) to an ELF vmlinux. QEMU boots
# that directly through its PVH entry point (CONFIG_PVH=y), skipping the in-guest decompression
# that costs about 5 s under TCG. On failure run-guest.sh falls back to the bzImage.
extract_vmlinux() {  # extract_vmlinux VMLINUZ OUT
  local off
  rm -f "$2.tmp"
  # the decompressors complain about the bytes after the stream; what they decoded is complete
  off=$(LC_ALL=C grep -abo $'\x28\xb5\x2f\xfd' "$1" | head -n1 | cut -d: -f1 || true)
  if [ -n "$off" ]; then
    tail -c +$((off + 1)) "$1" | zstd -dcq 2>/dev/null > "$2.tmp" || true
  fi
  if ! { [ -s "$2.tmp" ] && head -c 4 "$2.tmp" | grep -q 'ELF'; }; then
    off=$(LC_ALL=C grep -abo $'\xfd\x37\x7a\x58\x5a\x00' "$1" | head -n1 | cut -d: -f1 || true)
    if [ -n "$off" ]; then
      tail -c +$((off + 1)) "$1" | xz -dc 2>/dev/null > "$2.tmp" || true
    fi
  fi
  if [ -s "$2.tmp" ] && head -c 4 "$2.tmp" | grep -q 'ELF'; then
    mv "$2.tmp" "$2"
  else
    rm -f "$2.tmp"; touch "$(dirname "$2")/.no-vmlinux"
    log "could not extract an ELF vmlinux from $1; run-guest.sh will boot the bzImage (slower)"
  fi
}

# ---- fast path -------------------------------------------------------------------------------
if [ "$REFRESH" = 0 ] && have_tools && have_kernel; then
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  log "must run as root to install packages (or pre-populate $QDIR)"; exit 1
fi

T0=$(date +%s)
APT_UPDATED=0
apt_update() {
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    "${APT[@]}" update -qq
    APT_UPDATED=1
  fi
}

# ---- bookworm-backports apt source -------------------------------------------------------------
has_backports_source() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    grep -Eqs '^[^#]*bookworm-backports' "$f" && return 0
  done
  return 1
}
if ! has_backports_source; then
  log "adding bookworm-backports apt source"
  cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt_update
fi

# ---- host packages ----------------------------------------------------------------------------
if ! have_tools; then
  # Lists may be missing entirely on a fresh machine (or lack backports).
  if ! apt-cache policy qemu-system-x86 2>/dev/null | grep -q bookworm-backports; then apt_update; fi
  log "installing qemu-system-x86 (bookworm-backports), busybox-static, cpio, kmod, xz-utils, zstd"
  # --no-install-recommends: we need neither the GUI nor the extra firmware; bios (seabios) is a
  # hard dependency. The virtio NIC is created with romfile= so ipxe ROMs are not needed.
  "${APT[@]}" install -y -q --no-install-recommends -t bookworm-backports \
    qemu-system-x86 busybox-static cpio kmod xz-utils zstd
fi
have_tools || { log "tools still missing after install"; exit 1; }

# ---- guest kernel -----------------------------------------------------------------------------
if [ "$REFRESH" = 0 ] && [ -f "$QDIR/kernel.env" ] && ! have_kernel; then
  # kernel cached by an older install.sh, without the extracted vmlinux
  # shellcheck disable=SC1091
  ( . "$QDIR/kernel.env"; [ -f "$VMLINUZ" ] && extract_vmlinux "$VMLINUZ" "$KERNEL_ROOT/boot/vmlinux-$KVER" ) || true
fi
if [ "$REFRESH" = 1 ] || ! have_kernel; then
  [ "$REFRESH" = 1 ] && apt_update
  resolve_pkg() {
    apt-cache depends -t bookworm-backports linux-image-amd64 2>/dev/null |
      sed -n 's/^ *Depends: \(linux-image-6\.12\.[0-9]*+deb12-amd64\)$/\1/p' | head -n1
  }
  PKG=$(resolve_pkg || true)
  if [ -z "$PKG" ]; then apt_update; PKG=$(resolve_pkg || true); fi
  [ -n "$PKG" ] || { log "cannot resolve the kernel package from 'apt-cache depends -t bookworm-backports linux-image-amd64'"; exit 1; }
  KVER=${PKG#linux-image-}
  ROOT=$QDIR/kernel/$PKG
  log "guest kernel: $PKG -> $ROOT"
  mkdir -p "$QDIR/kernel"
  TMP=$(mktemp -d "$QDIR/kernel/.dl.XXXXXX"); chmod 755 "$TMP"; chown _apt "$TMP" 2>/dev/null || true  # apt downloads as _apt
  trap 'rm -rf "$TMP"' EXIT
  ( cd "$TMP" && "${APT[@]}" download -q "$PKG" ) || { apt_update; ( cd "$TMP" && "${APT[@]}" download -q "$PKG" ); }
  DEB=$(ls "$TMP"/*.deb)
  mkdir -p "$TMP/root"
  dpkg -x "$DEB" "$TMP/root"
  # The package ships modules under /lib/modules (bookworm) or /usr/lib/modules (usrmerged).
  if [ -d "$TMP/root/lib/modules/$KVER" ]; then MODREL=lib/modules/$KVER
  elif [ -d "$TMP/root/usr/lib/modules/$KVER" ]; then MODREL=usr/lib/modules/$KVER
  else log "no modules directory for $KVER in $DEB"; exit 1; fi
  DEPMOD=$(command -v depmod || echo /sbin/depmod)
  if [ "$MODREL" = "lib/modules/$KVER" ]; then
    "$DEPMOD" -b "$TMP/root" "$KVER"
  else
    "$DEPMOD" -b "$TMP/root/usr" "$KVER"
  fi
  [ -f "$TMP/root/boot/vmlinuz-$KVER" ] || { log "no vmlinuz in $DEB"; exit 1; }
  extract_vmlinux "$TMP/root/boot/vmlinuz-$KVER" "$TMP/root/boot/vmlinux-$KVER"
  rm -rf "$ROOT"
  mv "$TMP/root" "$ROOT"
  rm -rf "$TMP"; trap - EXIT
  cat > "$QDIR/kernel.env.tmp" <<EOF
KLINE=$KLINE_WANTED
KPKG=$PKG
KVER=$KVER
KERNEL_ROOT=$ROOT
VMLINUZ=$ROOT/boot/vmlinuz-$KVER
MODDIR=$ROOT/$MODREL
EOF
  mv "$QDIR/kernel.env.tmp" "$QDIR/kernel.env"
  # kernels of other lines or versions are no longer used
  for old in "$QDIR"/kernel/linux-image-*; do
    [ "$old" = "$ROOT" ] || rm -rf "$old"
  done
fi

log "done in $(( $(date +%s) - T0 )) s ($(qemu-system-x86_64 --version | head -n1); $(. "$QDIR/kernel.env"; echo "kernel $KVER"))"
