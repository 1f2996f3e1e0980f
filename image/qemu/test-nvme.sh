#!/usr/bin/env bash
# The blockstore on a real NVMe queue: boots a QEMU guest (TCG) with an emulated NVMe controller
# and runs the blockstore's own test binaries inside it against /dev/ng0n1 (io_uring NVMe
# passthrough), first with interrupt-driven completions, then with IOPOLL (nvme poll_queues=2).
# Fails if any of them fails. Needs image/qemu/install.sh to have run (scripts/install-test-deps.sh
# does it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d /var/tmp/bucketfs-nvme-test.XXXXXX)"
trap 'rm -rf "$work"' EXIT

echo "== building static blockstore test binaries"
cd "$repo"
RUSTFLAGS="-C target-feature=+crt-static" cargo test -p blockstore --no-run \
  --target x86_64-unknown-linux-gnu --message-format=json 2>/dev/null |
  python3 -c '
import json, sys, shutil
dest = sys.argv[1]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        name = m["target"]["name"]
        kind = m["target"]["kind"][0]
        shutil.copy(m["executable"], f"{dest}/{name}-{kind}")
        print("  ", name, kind)
' "$work"
test -x "$work/blockstore-lib" && test -x "$work/device_store-test" || { echo "test binaries missing"; exit 1; }

truncate -s 128M "$work/nvme.img"
cat > "$work/guest.sh" <<'GUEST'
set -e
cd /host
echo "== NVMe namespace: $(cat /sys/block/nvme0n1/queue/logical_block_size)-byte LBAs, io_poll=$(cat /sys/block/nvme0n1/queue/io_poll)"
for iopoll in 0 1; do
  echo "== passthrough conformance, iopoll=$iopoll"
  BUCKETFS_TEST_NVME=/dev/ng0n1 BUCKETFS_TEST_NVME_IOPOLL=$iopoll ./blockstore-lib uring_nvme --test-threads=1 --nocapture
  echo "== store on /dev/ng0n1, iopoll=$iopoll"
  BUCKETFS_TEST_DEVICE=/dev/ng0n1 BUCKETFS_TEST_DEVICE_IOPOLL=$iopoll ./device_store-test --test-threads=1 --nocapture
done
echo "== all NVMe tests passed"
GUEST
echo "== booting the guest"
bash "$here/run-guest.sh" --nvme "$work/nvme.img" --nvme-poll-queues 2 --share "$work" --timeout 900 --mem 1024 -- "$work/guest.sh"
