#!/usr/bin/env bash
# make test: every host test tier of the workspace (what CI runs), then one closing line that
# adds up every test binary's result: `tests: N passed, M failed, K skipped`.
set -uo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$CARGO" test --workspace --all-targets --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
sum() { grep -E '^test result:' "$log" | grep -oE "[0-9]+ $1" | awk '{n += $1} END {print n + 0}'; }
passed=$(sum passed)
failed=$(sum failed)
ignored=$(sum ignored)
echo
echo "tests: $passed passed, $failed failed, $ignored skipped"
if [ "$status" -eq 0 ] && [ "$passed" -eq 0 ]; then
    echo "make test: no test ran" >&2
    exit 1
fi
exit "$status"
