#!/usr/bin/env bash
# perf/run's workloads through the Linux kernel NFS client in the QEMU guest (TCG), against
# bucketfs and nfs-ganesha, for the shape of the figures: under emulation the absolute numbers
# are not comparable with the host's, the shape is (cold vs warm epochs, zero requests to the
# bucket once warm, small files and listings cold vs warm, checkpoints).
#
#   image/qemu/perf-kernel.sh --out DIR [--smoke]
#
# Per server (one guest boot each): the host writes the dataset into the server's tree (bucketfs:
# its local-directory bucket; ganesha: its export), starts it (image/qemu/nfs-servers.sh), and the
# guest mounts it (bucketfs NFSv4.2; ganesha NFSv4.1, whose READ_PLUS is broken in 4.3) and runs
# image/qemu/guest/perfshape.py. Around each phase the guest prints a marker and waits; the host
# drops its own page cache and reads `bucketfs stats --json` then, so every phase has its
# requests to the bucket. Writes DIR/kernel-shape.json (every figure) and DIR/kernel-shape.md,
# and fails (exit 1) when a byte is wrong, a phase fails, bucketfs's epochs 2 or 3 sent a request
# to the bucket, or its epoch 1 fetched fewer objects than there are shards.
#   BUCKETFS_BIN   the bucketfs binary (default target/release/bucketfs, built if missing)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
outdir="" smoke=0
while [ $# -gt 0 ]; do
  case $1 in
    --out) outdir=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    *) echo "usage: $0 --out DIR [--smoke]" >&2; exit 2 ;;
  esac
done
[ -n "$outdir" ] || { echo "usage: $0 --out DIR [--smoke]" >&2; exit 2; }
mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"
t_start=$SECONDS
if [ "$smoke" = 1 ]; then
  # shards, shard MiB min/max, large files x MiB, small files, listing entries, random s, ckpt MiB x rounds
  sizes=(6 1 4 1 16 200 1000 2 8 2)
else
  sizes=(16 1 64 2 128 2000 20000 8 64 3)
fi
. "$here/nfs-servers.sh"
work=""
cleanup() { srv_cleanup; if [ -n "$work" ]; then rm -rf "$work"; fi; }
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM HUP

make_dataset() {  # make_dataset DIR MANIFEST: the same bytes for every server
  python3 - "$1" "$2" "${sizes[@]}" <<'PY'
import hashlib, json, os, random, sys
root, manifest = sys.argv[1], sys.argv[2]
shards, smin, smax, nrand, rand_mib, nsmall, nlist = map(int, sys.argv[3:10])
def write(name, size, seed):
    data = random.Random(seed).randbytes(size)
    os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
    with open(os.path.join(root, name), "wb") as f:
        f.write(data)
    return {"name": name, "size": size, "md5": hashlib.md5(data).hexdigest()}
m = {"shards": [], "rand": [], "small": [], "list_dir": "list", "list_entries": nlist}
for i in range(shards):
    mib = smin * (smax / smin) ** (i / max(1, shards - 1))
    m["shards"].append(write(f"shards/s{i:02d}.bin", int(mib * 1024) * 1024, i))
for i in range(nrand):
    m["rand"].append(write(f"rand/r{i}.bin", rand_mib << 20, 100 + i))
for i in range(nsmall):
    m["small"].append(write(f"small/f{i:05d}.bin", 100 * 1024, 1000 + i))
os.makedirs(os.path.join(root, "list"), exist_ok=True)
for i in range(nlist):
    open(os.path.join(root, "list", f"e{i:06d}"), "wb").close()
os.makedirs(os.path.join(root, "ckpt"), exist_ok=True)
open(os.path.join(root, "ckpt", ".keep"), "wb").close()
with open(manifest, "w") as f:
    json.dump(m, f)
PY
}

requests_now() {  # the sum of bucketfs's requests to its buckets, by kind, as JSON ({} for ganesha)
  if [ "$server" = bucketfs ]; then
    "$BUCKETFS_BIN" stats --json --admin "127.0.0.1:$ADMIN_PORT" |
      python3 -c 'import json,sys; s=json.load(sys.stdin); r={}
for b in s["buckets"]:
    for k,v in b["requests"].items(): r[k]=r.get(k,0)+v
print(json.dumps(r))'
  else
    echo '{}'
  fi
}

run_server() {  # run_server NAME: dataset, server, guest; results in $outdir/guest-NAME.json
  server=$1
  work="$(mktemp -d /var/tmp/bucketfs-perf-kernel.XXXXXX)"
  local out=$work/out
  mkdir -p "$out"
  cp -r "$here/guest" "$out/guest"
  srv_prepare
  # Listings and attributes trusted for an hour, as perf/run's peers are told: under TCG an epoch
  # outlasts the default 30 s, and a LOOKUP would re-list the shards' directory.
  if [ "$server" = bucketfs ]; then printf '\n[engine]\nlisting_ttl = "1h"\n' >> "$work/bucketfs.toml"; fi
  echo "== $server: dataset into $TREE_DIR"
  make_dataset "$TREE_DIR" "$out/manifest.json"
  cp "$out/manifest.json" "$outdir/manifest.json"
  srv_start
  local mount_opts
  if [ "$server" = bucketfs ]; then mount_opts="vers=4.2,port=$NFS_PORT"; else mount_opts="vers=4.1,port=$NFS_PORT"; fi
  cat > "$work/guest.sh" <<GUEST
H=10.0.2.2
OPTS=$mount_opts
EXPORT=$EXPORT_V4
ARGS="--random-seconds ${sizes[7]} --ckpt-mib ${sizes[8]} --ckpt-rounds ${sizes[9]}"
GUEST
  cat >> "$work/guest.sh" <<'GUEST'
fail() { echo "GUEST-FAIL: $*"; exit 1; }
hostchroot true
mkdir -p /hostroot/tmp/out /hostroot/tmp/m
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out /hostroot/tmp/out || fail "mounting the writable 9p share"
mount -t nfs4 -o $OPTS,addr=$H "$H:$EXPORT" /hostroot/tmp/m || fail "mount $OPTS"
grep " /hostroot/tmp/m " /proc/mounts
uname -r > /hostroot/tmp/out/kernel
hostchroot python3 -u /tmp/out/guest/perfshape.py /tmp/m /tmp/out/manifest.json /tmp/out/result.json $ARGS || fail "perfshape.py"
umount /hostroot/tmp/m || fail "umount"
echo "== guest: done"
GUEST
  : > "$out/requests.jsonl"
  echo "== $server: booting the guest"
  local t_boot=$SECONDS status line
  set +e
  BUCKETFS_QEMU_EXTRA_ARGS="$(guest_out_share_args "$out")" \
    timeout -k 10 2400 bash "$here/run-guest.sh" --host-root --timeout 2300 --mem 1536 -- "$work/guest.sh" |
    sed -u "s/\r$//" | while IFS= read -r line; do
      printf '%s\n' "$line"
      case "$line" in
        "PERFSHAPE "*)
          set -- $line  # PERFSHAPE begin|end N NAME
          sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
          printf '{"phase": "%s", "at": "%s", "requests": %s}\n' "$4" "$2" "$(requests_now)" >> "$out/requests.jsonl"
          touch "$out/ack-$3-$2"
          ;;
      esac
    done
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" != 0 ] || [ ! -s "$out/result.json" ]; then
    echo "== $server log (tail)"; srv_log_tail 30
    echo "FAILED: the guest's workloads against $server (guest status $status)"
    exit 1
  fi
  echo "== $server: guest done in $((SECONDS - t_boot)) s"
  cp "$out/result.json" "$outdir/guest-$server.json"
  cp "$out/requests.jsonl" "$outdir/requests-$server.jsonl"
  cp "$out/kernel" "$outdir/kernel" 2>/dev/null || true
  srv_stop
  srv_cleanup
  rm -rf "$work"
  work=""
}

for s in bucketfs ganesha; do
  run_server "$s"
done
kernel="Linux $(cat "$outdir/kernel" 2>/dev/null || echo '?')"

python3 - "$outdir" "$smoke" "$kernel" <<'PY'
import json, os, sys
outdir, smoke, kernel = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
servers = {}
for s in ("bucketfs", "ganesha"):
    res = json.load(open(os.path.join(outdir, f"guest-{s}.json")))
    marks = {}
    for line in open(os.path.join(outdir, f"requests-{s}.jsonl")):
        r = json.loads(line)
        marks.setdefault(r["phase"], {})[r["at"]] = r["requests"]
    for phase, v in res.items():
        if s == "bucketfs":
            b, e = marks[phase]["begin"], marks[phase]["end"]
            v["bucket_requests"] = {k: e.get(k, 0) - b.get(k, 0) for k in e if e.get(k, 0) - b.get(k, 0)}
    servers[s] = res
manifest = json.load(open(os.path.join(outdir, "manifest.json")))
checks = []
b = servers["bucketfs"]
for n in (2, 3):
    r = b[f"epoch{n}"]["bucket_requests"]
    checks.append((f"bucketfs epoch {n} sends no request to the bucket", sum(r.values()) == 0, json.dumps(r) if r else "none"))
gets = b["epoch1"]["bucket_requests"].get("get", 0)
checks.append(("bucketfs epoch 1 fetches every shard from the bucket", gets >= len(manifest["shards"]),
               f"{gets} GETs for {len(manifest['shards'])} shards"))
json.dump({"kernel": kernel, "smoke": smoke, "servers": servers,
           "checks": [{"what": w, "pass": p, "detail": d} for w, p, d in checks]},
          open(os.path.join(outdir, "kernel-shape.json"), "w"), indent=1)
rows = [("epoch1", "epoch 1 (cold)", "mb_per_s", "MB/s"), ("epoch2", "epoch 2", "mb_per_s", "MB/s"),
        ("epoch3", "epoch 3", "mb_per_s", "MB/s"), ("fill", "large files: first read", "mb_per_s", "MB/s"),
        ("random_4k", "random 4 KiB (O_DIRECT)", "iops", "IOPS"), ("random_128k", "random 128 KiB (O_DIRECT)", "iops", "IOPS"),
        ("small_cold", "small files, cold", "files_per_s", "files/s"), ("small_warm", "small files, warm", "files_per_s", "files/s"),
        ("list_cold", "listing, cold", "entries_per_s", "entries/s"), ("list_warm", "listing, warm", "entries_per_s", "entries/s"),
        ("checkpoint", "checkpoint round", "mb_per_s", "MB/s")]
md = [f"Linux kernel client `{kernel or 'guest kernel'}` in QEMU (TCG, 2 vCPUs), bucketfs over NFSv4.2 "
      f"(local-directory bucket), nfs-ganesha over NFSv4.1; {len(manifest['shards'])} shards, "
      f"{len(manifest['small'])} small files, {manifest['list_entries']} entries; 4 threads; the guest's caches "
      "dropped before every phase.\n",
      "| phase | bucketfs | ganesha | bucketfs ÷ ganesha | bucketfs p50 / p99 ms | ganesha p50 / p99 ms | bucketfs requests to the bucket |",
      "|---|---|---|---|---|---|---|"]
def f(x):
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"
for key, label, metric, unit in rows:
    bv, gv = servers["bucketfs"][key], servers["ganesha"][key]
    lat = lambda v: f"{f(v['p50_ms'])} / {f(v['p99_ms'])}" if "p50_ms" in v else "—"
    req = servers["bucketfs"][key].get("bucket_requests", {})
    md.append(f"| {label} | {f(bv[metric])} {unit} | {f(gv[metric])} {unit} | {bv[metric] / gv[metric]:.2f} | {lat(bv)} | {lat(gv)} | "
              f"{sum(req.values())} ({', '.join(f'{v} {k}' for k, v in sorted(req.items())) or 'none'}) |")
md.append("")
for w, p, d in checks:
    md.append(f"- {'PASS' if p else '**FAIL**'} {w}: {d}")
open(os.path.join(outdir, "kernel-shape.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
sys.exit(0 if all(p for _, p, _ in checks) else 1)
PY
echo "== perf-kernel: done in $((SECONDS - t_start)) s ($outdir/kernel-shape.md)"
