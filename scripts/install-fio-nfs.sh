#!/usr/bin/env bash
# Builds fio with its `nfs` engine (libnfs) and installs it as /opt/bucketfs-test/fio-nfs/bin/fio,
# beside the system fio (Debian's fio is built without libnfs). The source is Debian's own fio
# source package, fetched with `apt-get source` through a private apt state (a deb-src line for
# this release; the system's apt configuration is left alone), built with `./configure && make`.
# Quick no-op when the binary is there and has the engine. Prints the binary's path on stdout.
set -euo pipefail
prefix=/opt/bucketfs-test/fio-nfs
fio="$prefix/bin/fio"
log() { echo "install-fio-nfs: $*" >&2; }
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -y -qq "$@"; }
has_nfs_engine() { [ -x "$fio" ] && "$fio" --enghelp=nfs 2>/dev/null | grep -q nfs_url; }

if has_nfs_engine; then
  echo "$fio"
  exit 0
fi

# Build dependencies: libnfs-dev is what turns the engine on (configure asks pkg-config for libnfs).
build_deps=(libnfs-dev gcc make pkg-config dpkg-dev zlib1g-dev libaio-dev xz-utils)
missing=()
for pkg in "${build_deps[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt packages: ${missing[*]}"
  apt_get update >/dev/null
  DEBIAN_FRONTEND=noninteractive apt_get install "${missing[@]}" >/dev/null
fi

# The source of the fio the system would install, from the same release.
fio_version() { apt-cache show --no-all-versions fio 2>/dev/null | sed -n 's/^Version: //p' | head -1; }
version="$(fio_version)"
if [ -z "$version" ]; then
  apt_get update >/dev/null
  version="$(fio_version)"
fi
[ -n "$version" ] || { log "apt knows no fio package"; exit 1; }
codename="$(. /etc/os-release && echo "${VERSION_CODENAME:?}")"
work="$(mktemp -d /tmp/fio-nfs-build.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/src"
{
  echo "deb-src http://deb.debian.org/debian $codename main"
  echo "deb-src http://deb.debian.org/debian $codename-updates main"
  echo "deb-src http://deb.debian.org/debian-security $codename-security main"
} >"$work/sources.list"
private_apt=(
  -o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/none"
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root"
)
log "fetching Debian's fio $version source"
apt-get -qq "${private_apt[@]}" update >/dev/null
(cd "$work/src" && apt-get -qq "${private_apt[@]}" source "fio=$version" >/dev/null)
srcdir="$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'fio-*' | head -1)"
[ -n "$srcdir" ] || { log "apt-get source fio=$version unpacked nothing"; exit 1; }

log "building $(basename "$srcdir") with the nfs engine"
(cd "$srcdir" && ./configure --disable-native >"$work/configure.log" 2>&1) \
  || { cat "$work/configure.log" >&2; log "configure failed"; exit 1; }
grep -Eq '^NFS engine +yes' "$work/configure.log" \
  || { grep -i nfs "$work/configure.log" >&2; log "configure did not enable the NFS engine"; exit 1; }
make -C "$srcdir" -j"$(nproc)" fio >"$work/make.log" 2>&1 || { tail -40 "$work/make.log" >&2; log "make failed"; exit 1; }
install -D -m 0755 "$srcdir/fio" "$fio"
has_nfs_engine || { log "$fio --enghelp=nfs does not list the nfs engine"; exit 1; }
echo "$fio"
