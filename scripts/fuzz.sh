#!/usr/bin/env bash
# Runs every fuzz target of nfs/fuzz (cargo-fuzz, libFuzzer) for a bounded time each; fails on any
# crash, panic, timeout or out-of-memory and prints the reproducer's path.
#   scripts/fuzz.sh [seconds_per_target]      (default 20)
# The targets are the files nfs/fuzz/src/bin/*.rs: that directory is the one list (adding a target
# is adding a file). Each starts from its checked-in seeds, nfs/fuzz/corpus/<target>/ (read-only
# here), plus what earlier runs on this machine found (nfs/fuzz/corpus-run/<target>/, not checked
# in). Needs the nightly toolchain and cargo-fuzz (scripts/install-test-deps.sh).
# Env: FUZZ_TARGETS="a b" runs only those; FUZZ_SANITIZER=address|none (default address).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz_dir="$repo/nfs/fuzz"
seconds="${1:-20}"
case "$seconds" in '' | *[!0-9]*) echo "usage: $0 [seconds_per_target]" >&2; exit 2 ;; esac
sanitizer=(--sanitizer "${FUZZ_SANITIZER:-address}")

cd "$fuzz_dir"
cargo +nightly fuzz --version >/dev/null 2>&1 \
  || { echo "fuzz: cargo-fuzz or the nightly toolchain is missing: run scripts/install-test-deps.sh" >&2; exit 1; }
if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  targets=()
  for f in src/bin/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi
echo "fuzz: building ${targets[*]} (cargo +nightly fuzz build, ${sanitizer[*]})"
build_started=$SECONDS
cargo +nightly fuzz build "${sanitizer[@]}"
echo "fuzz: built in $((SECONDS - build_started)) s; ${seconds} s per target"

failed=()
for target in "${targets[@]}"; do
  [ -f "src/bin/$target.rs" ] || { echo "fuzz: no target $target (src/bin/$target.rs)" >&2; exit 2; }
  found="corpus-run/$target"
  seeds="corpus/$target"
  mkdir -p "$found" "artifacts/$target"
  [ -d "$seeds" ] || seeds="$found"
  log="$(mktemp "/tmp/fuzz-$target.XXXXXX.log")"
  # libFuzzer adds what it finds to the first corpus directory only: the seeds stay as they are.
  # -timeout: one input taking longer is a finding (a hang); the outer timeout covers a build.
  if timeout $((seconds + 600)) cargo +nightly fuzz run "${sanitizer[@]}" "$target" "$found" "$seeds" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    echo "fuzz: $target ok: ${runs:-?} runs, corpus $(find "$found" -type f | wc -l) found + $(find "$seeds" -type f | wc -l) seeds"
    rm -f "$log"
  else
    failed+=("$target")
    echo "fuzz: $target FAILED (log: $log)" >&2
    grep -E 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY' "$log" | head -5 >&2 || true
    reproducers="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log")"
    if [ -n "$reproducers" ]; then
      while read -r r; do
        case "$r" in /*) ;; *) r="$fuzz_dir/${r#./}" ;; esac
        echo "fuzz: reproducer: $r" >&2
        echo "fuzz:   rerun: (cd $fuzz_dir && cargo +nightly fuzz run ${sanitizer[*]} $target $r)" >&2
      done <<<"$reproducers"
    else
      tail -20 "$log" >&2
    fi
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ok"
