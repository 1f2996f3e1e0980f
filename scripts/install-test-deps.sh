#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine; quick no-op when already done.
# Debian packages: fio (the side-by-side peer for the blockstore benchmark), python3 (scripts),
# curl (writes S3 objects object_store cannot address, in the object conformance tests);
# the QEMU guest (qemu-system-x86 from bookworm-backports, busybox-static, a Debian guest kernel)
# through image/qemu/install.sh; SeaweedFS (the tests' S3 server) through install-s3-server.sh.
# The Rust toolchain (cargo, clippy, rustfmt) comes with the machine.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -y -qq "$@"; }

missing=()
command -v fio >/dev/null || missing+=(fio)
command -v python3 >/dev/null || missing+=(python3)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-test-deps: apt packages: ${missing[*]}"
  apt_get update >/dev/null
  DEBIAN_FRONTEND=noninteractive apt_get install "${missing[@]}" >/dev/null
fi
for tool in cargo cargo-clippy rustfmt; do
  command -v "$tool" >/dev/null || { echo "install-test-deps: $tool missing (Rust toolchain)" >&2; exit 1; }
done
bash "$repo/image/qemu/install.sh"
weed="$(bash "$repo/scripts/install-s3-server.sh")"
echo "install-test-deps: ready (fio $(fio --version), $(qemu-system-x86_64 --version | head -1), $weed)"
