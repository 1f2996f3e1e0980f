#!/usr/bin/env bash
# image/qemu/selftest.sh — end-to-end check of the QEMU guest harness (install.sh + run-guest.sh).
#
#   1. install.sh (no-op when already installed);
#   2. builds a static hello-world (rustc -C target-feature=+crt-static, or gcc -static if rustc
#      is missing) in a temp dir, shared into the guest read-only over 9p;
#   3. boot 1 (--nvme 256 MiB raw file --nvme-poll-queues 2 --share): /dev/ng0n1 and /dev/nvme0n1
#      exist, logical_block_size, size, poll queues / io_poll, reads a signature the host wrote,
#      writes one the host checks afterwards, runs the static binary, fetches a token from a
#      host `python3 -m http.server` on 127.0.0.1 via 10.0.2.2 with busybox wget; exits 0;
#   4. boot 2: a script that exits 3 -> run-guest.sh must exit 3;
#   5. boot 3: a script that sleeps past --timeout 20 -> run-guest.sh must exit 124, promptly.
# Prints PASS/FAIL per check and the timings; exit status 0 only if everything passed.
# Env: SELFTEST_SKIP_TIMEOUT=1 skips boot 3.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN=$HERE/run-guest.sh
FAILS=0
pass() { echo "selftest: PASS $*"; }
fail() { echo "selftest: FAIL $*"; FAILS=$((FAILS + 1)); }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs() { local ms=$1; printf '%d.%01d' $((ms / 1000)) $(((ms % 1000) / 100)); }

W=$(mktemp -d "${TMPDIR:-/tmp}/bucketfs-selftest.XXXXXX")
HTTP_PID=""
cleanup() {
  if [ -n "$HTTP_PID" ]; then kill "$HTTP_PID" 2>/dev/null || true; wait "$HTTP_PID" 2>/dev/null || true; fi
  rm -rf "$W"
}
trap cleanup EXIT

# ---- 1. install ------------------------------------------------------------------------------
t=$(now_ms)
"$HERE/install.sh"
T_INSTALL=$(( $(now_ms) - t ))
echo "selftest: install.sh took $(secs $T_INSTALL) s"

# ---- 2. static hello-world ---------------------------------------------------------------------
mkdir -p "$W/share" "$W/www" "$W/build"
if command -v rustc >/dev/null 2>&1; then
  cat > "$W/build/hello.rs" <<'EOF'
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let t = std::thread::spawn(|| 6 * 7).join().unwrap();
    println!("hello-static {} {}", args.join(" "), t);
}
EOF
  rustc -O -C target-feature=+crt-static --target x86_64-unknown-linux-gnu \
    "$W/build/hello.rs" -o "$W/share/hello"
else
  printf '#include <stdio.h>\nint main(int c,char**v){printf("hello-static %%s 42\\n",c>1?v[1]:"");return 0;}\n' > "$W/build/hello.c"
  gcc -O2 -static "$W/build/hello.c" -o "$W/share/hello"
fi
if file "$W/share/hello" 2>/dev/null | grep -q 'static'; then pass "hello built static"; else
  echo "selftest: note: could not confirm the binary is static: $(file "$W/share/hello" 2>&1 || true)"; fi

# ---- host services: NVMe image, http server on loopback -----------------------------------------
IMG=$W/nvme.img
truncate -s 256M "$IMG"
SIG_IN="bucketfs-in-$RANDOM$RANDOM"
SIG_OUT="bucketfs-out-$RANDOM$RANDOM"
printf '%s' "$SIG_IN" | dd of="$IMG" conv=notrunc status=none
TOKEN="token-$RANDOM$RANDOM"
echo "$TOKEN" > "$W/www/probe.txt"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$W/www" "$PORT" >"$W/http.log" 2>&1 &
HTTP_PID=$!
for _ in $(seq 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/probe.txt', timeout=1)" 2>/dev/null && break
  sleep 0.1
done

# ---- 3. main boot ------------------------------------------------------------------------------
cat > "$W/guest1.sh" <<EOF
fails=0
ok() { echo "guest: ok \$*"; }
bad() { echo "guest: FAIL \$*"; fails=\$((fails + 1)); }
[ -c /dev/ng0n1 ] && ok "/dev/ng0n1 is a char device" || bad "/dev/ng0n1 missing"
[ -b /dev/nvme0n1 ] && ok "/dev/nvme0n1 is a block device" || bad "/dev/nvme0n1 missing"
lbs=\$(cat /sys/block/nvme0n1/queue/logical_block_size 2>/dev/null)
echo "guest: logical_block_size=\$lbs"
case "\$lbs" in 512|4096) ok "logical_block_size \$lbs" ;; *) bad "logical_block_size '\$lbs'" ;; esac
sz=\$(( \$(cat /sys/block/nvme0n1/size) * 512 ))
[ "\$sz" = 268435456 ] && ok "size 256 MiB" || bad "size \$sz"
pq=\$(cat /sys/module/nvme/parameters/poll_queues 2>/dev/null)
iop=\$(cat /sys/block/nvme0n1/queue/io_poll 2>/dev/null)
[ "\$pq" = 2 ] && [ "\$iop" = 1 ] && ok "poll_queues=\$pq io_poll=\$iop" || bad "poll_queues='\$pq' io_poll='\$iop'"
got=\$(dd if=/dev/nvme0n1 bs=4096 count=1 2>/dev/null | head -c ${#SIG_IN})
[ "\$got" = "$SIG_IN" ] && ok "read host signature" || bad "signature '\$got'"
printf '%s' "$SIG_OUT" | dd of=/dev/nvme0n1 bs=1M seek=1 conv=notrunc,fsync 2>/dev/null && ok "wrote guest signature" || bad "write"
out=\$(/host/hello from-guest 2>&1)
echo "guest: hello says: \$out"
[ "\$out" = "hello-static from-guest 42" ] && ok "static binary runs from the 9p share" || bad "static binary"
[ "\$(id -u)" = 0 ] && touch /tmp/x && ok "tmpfs /tmp writable" || bad "/tmp"
# (busybox 1.35 wget -T segfaults here: bound it with timeout(1) instead)
got=\$(timeout 20 wget -q -O - http://10.0.2.2:$PORT/probe.txt 2>&1)
[ "\$got" = "$TOKEN" ] && ok "reached host 127.0.0.1:$PORT via 10.0.2.2" || bad "wget got '\$got'"
echo "guest: \$fails failure(s)"
[ "\$fails" = 0 ]
EOF
t=$(now_ms)
set +e
"$RUN" --nvme "$IMG" --nvme-poll-queues 2 --share "$W/share" --timeout 300 -- "$W/guest1.sh" | tee "$W/boot1.log"
rc=${PIPESTATUS[0]}
set -e
T_BOOT1=$(( $(now_ms) - t ))
[ "$rc" = 0 ] && pass "boot 1: all guest checks passed (exit 0)" || fail "boot 1: run-guest.sh exited $rc"
n=$(grep -c '^guest: ok' "$W/boot1.log" || true)
[ "$n" -ge 10 ] && pass "boot 1: $n guest checks reported ok" || fail "boot 1: only $n guest checks reported ok"
got=$(dd if="$IMG" bs=1M skip=1 count=1 status=none | head -c ${#SIG_OUT} || true)
[ "$got" = "$SIG_OUT" ] && pass "guest write reached the host image" || fail "guest write not in image: '$got'"

# ---- 4. nonzero exit propagation ---------------------------------------------------------------
printf 'echo "guest: exiting with 3"\nexit 3\n' > "$W/guest2.sh"
t=$(now_ms)
set +e; "$RUN" --timeout 300 -- "$W/guest2.sh"; rc=$?; set -e
T_BOOT2=$(( $(now_ms) - t ))
[ "$rc" = 3 ] && pass "boot 2: guest exit 3 propagated" || fail "boot 2: expected 3, got $rc"

# ---- 5. timeout --------------------------------------------------------------------------------
T_BOOT3=0
if [ "${SELFTEST_SKIP_TIMEOUT:-0}" != 1 ]; then
  printf 'echo "guest: sleeping forever"\nsleep 100000\n' > "$W/guest3.sh"
  t=$(now_ms)
  set +e; "$RUN" --timeout 20 -- "$W/guest3.sh"; rc=$?; set -e
  T_BOOT3=$(( $(now_ms) - t ))
  [ "$rc" = 124 ] && [ "$T_BOOT3" -lt 40000 ] && pass "boot 3: timeout -> exit 124 after $(secs $T_BOOT3) s" ||
    fail "boot 3: expected 124 within 40 s, got $rc after $(secs $T_BOOT3) s"
fi

echo "selftest: timings: install $(secs $T_INSTALL) s, boot1 (nvme+share+checks) $(secs $T_BOOT1) s, boot2 (exit 3) $(secs $T_BOOT2) s, boot3 (timeout 20) $(secs $T_BOOT3) s"
if [ "$FAILS" = 0 ]; then echo "selftest: ALL PASSED"; else echo "selftest: $FAILS FAILURE(S)"; exit 1; fi
