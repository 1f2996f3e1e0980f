#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine; quick no-op when already done.
# Debian packages: fio (the side-by-side peer for the blockstore benchmark), python3 (scripts),
# curl (writes S3 objects object_store cannot address, in the object conformance tests);
# the NFS peers and clients: libnfs-utils (nfs-ls, nfs-cat, nfs-cp), libnfs-dev (fio's nfs engine),
# nfs-ganesha + nfs-ganesha-vfs (the side-by-side NFS server), rpcbind (for an NFSv3 ganesha);
# fio with the nfs engine through install-fio-nfs.sh (/opt/bucketfs-test/fio-nfs/bin/fio);
# the QEMU guest (qemu-system-x86 from bookworm-backports, busybox-static, a Debian guest kernel)
# through image/qemu/install.sh; SeaweedFS (the tests' S3 server) through install-s3-server.sh;
# cargo-fuzz (and a nightly toolchain, which it needs) for scripts/fuzz.sh; perf/run's peers
# (rclone, s3fs) and gnuplot through install-perf-deps.sh.
# The Rust toolchain (cargo, clippy, rustfmt) comes with the machine.
# Each step prints how long it took (stderr), so CI logs show where the time goes.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -y -qq "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
step() { step_name="$1"; step_started_ms=$(now_ms); }
step_done() {
  local ms=$(($(now_ms) - step_started_ms))
  printf 'install-test-deps: %-30s %4d.%d s\n' "$step_name" $((ms / 1000)) $((ms % 1000 / 100)) >&2
}
cargo_fuzz_version=0.13.2

step "apt packages"
missing=()
command -v fio >/dev/null || missing+=(fio)
command -v python3 >/dev/null || missing+=(python3)
command -v curl >/dev/null || missing+=(curl)
command -v nfs-ls >/dev/null || missing+=(libnfs-utils)
dpkg-query -W -f='${Status}' libnfs-dev 2>/dev/null | grep -q "ok installed" || missing+=(libnfs-dev)
command -v ganesha.nfsd >/dev/null || missing+=(nfs-ganesha)
[ -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ] || missing+=(nfs-ganesha-vfs)
command -v rpcbind >/dev/null || [ -x /usr/sbin/rpcbind ] || [ -x /sbin/rpcbind ] || missing+=(rpcbind)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-test-deps: apt packages: ${missing[*]}" >&2
  apt_get update >/dev/null
  # rpcbind and ganesha ship services; nothing is started in CI's VM (no systemd), and tests start
  # their own ganesha with their own configuration.
  DEBIAN_FRONTEND=noninteractive apt_get install "${missing[@]}" >/dev/null
fi
step_done

for tool in cargo cargo-clippy rustfmt; do
  command -v "$tool" >/dev/null || { echo "install-test-deps: $tool missing (Rust toolchain)" >&2; exit 1; }
done

step "fio with the nfs engine"
fio_nfs="$(bash "$repo/scripts/install-fio-nfs.sh")"
step_done

step "QEMU guest"
bash "$repo/image/qemu/install.sh"
step_done

step "SeaweedFS"
weed="$(bash "$repo/scripts/install-s3-server.sh")"
step_done

step "benchmark peers (rclone, s3fs), gnuplot"
bash "$repo/scripts/install-perf-deps.sh" >/dev/null
step_done

step "nightly toolchain, cargo-fuzz"
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal >/dev/null
fi
if ! cargo fuzz --version 2>/dev/null | grep -q " $cargo_fuzz_version\$"; then
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked --quiet
fi
step_done

echo "install-test-deps: ready (fio $(fio --version), $fio_nfs, $(qemu-system-x86_64 --version | head -1), $weed, $(cargo fuzz --version))"
