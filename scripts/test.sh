#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every check. CI runs this.
#   lint: cargo fmt --check, cargo clippy -D warnings
#   unit, property, simulation, crash (kill -9) and real-file tests: cargo test --workspace
#   NVMe passthrough: the blockstore tests inside a QEMU guest on an emulated NVMe controller
#   benchmark smoke: perf's blockstore-bench --smoke (fio side by side, tiny sizes)
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

step "blockstore on NVMe passthrough (QEMU guest)"
bash image/qemu/test-nvme.sh

step "benchmark smoke: blockstore vs fio"
cargo run --release -q -p perf --bin blockstore-bench -- --smoke --device "$repo/target/bench-smoke.img"

step "all tests passed"
