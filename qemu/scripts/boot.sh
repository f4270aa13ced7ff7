#!/usr/bin/env bash
# Boots an seL4 image under qemu-system-aarch64 and waits for the test sentinel.
#
#   scripts/boot.sh IMAGE [TIMEOUT_SECONDS] [LOG]
#
# QEMU never exits by itself, so this stops it at the first line starting with
# TEST_PASS (exit 0) or TEST_FAIL (exit 1), or at the timeout (exit 124), or
# reports QEMU dying early (exit 2). The serial log is streamed as it arrives
# and kept in LOG (default: next to the image).
set -u
image=${1:?usage: boot.sh IMAGE [TIMEOUT_SECONDS] [LOG]}
timeout_s=${2:-60}
log=${3:-${image%.elf}.serial.log}
qemu=${QEMU:-qemu-system-aarch64}

: >"$log"
"$qemu" -machine virt,virtualization=on -cpu cortex-a57 -m size=1G \
    -nographic -serial mon:stdio -kernel "$image" </dev/null >"$log" 2>&1 &
qemu_pid=$!
tail -n +1 -f --pid="$qemu_pid" "$log" &
tail_pid=$!

status=124
deadline=$((SECONDS + timeout_s))
while :; do
    if grep -q '^TEST_PASS' "$log"; then status=0; break; fi
    if grep -q '^TEST_FAIL' "$log"; then status=1; break; fi
    if ! kill -0 "$qemu_pid" 2>/dev/null; then status=2; break; fi
    if [ "$SECONDS" -ge "$deadline" ]; then status=124; break; fi
    sleep 0.1
done

kill "$qemu_pid" 2>/dev/null
wait "$qemu_pid" 2>/dev/null
sleep 0.2
kill "$tail_pid" 2>/dev/null
wait "$tail_pid" 2>/dev/null

case $status in
    0) echo "qemu: TEST_PASS" ;;
    1) echo "qemu: TEST_FAIL" >&2 ;;
    2) echo "qemu: QEMU exited before a TEST_PASS/TEST_FAIL sentinel" >&2 ;;
    124) echo "qemu: timeout after ${timeout_s}s without a TEST_PASS/TEST_FAIL sentinel" >&2 ;;
esac
exit "$status"
