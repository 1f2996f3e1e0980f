#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every check. CI runs this.
#   lint: cargo fmt --check, cargo clippy -D warnings
#   unit, property, simulation, crash (kill -9), real-file and real-S3 (SeaweedFS) tests:
#   cargo test --workspace
#   fuzzing: every nfs/fuzz target for a bounded time (scripts/fuzz.sh)
#   NVMe passthrough: the blockstore tests inside a QEMU guest on an emulated NVMe controller
#   NFS: the Linux kernel client inside a QEMU guest against `bucketfs serve` (v4.1, v4.2, v3,
#   checksums, mmap, a server restart under the mounted client)
#   benchmark smoke: perf's blockstore-bench --smoke (fio side by side, tiny sizes) and
#   backfill-bench --smoke (engine vs raw ranged GETs on SeaweedFS, tiny sizes), nfs-bench --smoke
#   (bucketfs vs nfs-ganesha through fio's nfs engine, tiny sizes), write-bench --smoke, and
#   perf/run --smoke (every workload against bucketfs, rclone, s3fs, ganesha and the ceilings,
#   request counts, plots, and the kernel client in the QEMU guest)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

step "install test dependencies"
bash scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace

step "fuzz: RPC, NFSv3, MOUNT/portmap and NFSv4 COMPOUND decoders (cargo-fuzz, 20 s per target)"
bash scripts/fuzz.sh 20

step "blockstore on NVMe passthrough (QEMU guest)"
bash image/qemu/test-nvme.sh

step "NFS: the Linux kernel client (QEMU guest) mounts v4.1, v4.2, v3; server restart under it"
bash image/qemu/test-nfs-client.sh

step "NFS write path: the kernel client (QEMU guest) writes, locks, truncates, renames over v4.2, v4.1, v3; the bucket matches"
bash image/qemu/test-nfs-write.sh --server bucketfs

step "NFS crash: SIGKILL bucketfs under fsyncing writers (QEMU guest); every fsynced byte survives and reaches the bucket"
bash image/qemu/test-nfs-crash.sh --server bucketfs

step "benchmark smoke: blockstore vs fio"
cargo run --release -q -p perf --bin blockstore-bench -- --smoke --device "$repo/target/bench-smoke.img"

step "benchmark smoke: engine read path vs raw ranged GETs (SeaweedFS)"
cargo run --release -q -p perf --bin backfill-bench -- --smoke --dir "$repo/target/backfill-smoke"

step "benchmark smoke: bucketfs vs nfs-ganesha over NFSv3 and NFSv4 (fio nfs engine)"
cargo build --release -q -p bucketfs
cargo run --release -q -p perf --bin nfs-bench -- --smoke --dir "$repo/target/nfs-bench-smoke"

step "benchmark smoke: NFSv3 writes, bucketfs vs nfs-ganesha: time to bucket, requests per GiB, one upload per checkpoint"
cargo run --release -q -p perf --bin write-bench -- --smoke --dir "$repo/target/write-bench-smoke"

step "benchmark smoke: perf/run (every workload and peer, requests and cost, plots, the kernel client in the QEMU guest)"
bash "$repo/perf/run" --smoke --no-install --dir "$repo/target/perf-run-smoke"

step "all tests passed"
