#!/usr/bin/env bash
# make run: start memserver with the system description, run the load generator against it,
# print its summary (hit rate, slabinfo), stop the server with SIGTERM.
# Exits non-zero if the server does not start, loadgen fails or the server does not stop cleanly.
#
# Usage: scripts/run.sh [SYSTEM] [loadgen options...]   (binaries built by `make run`)
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM=${1:-system.toml}
shift || true
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$TARGET_DIR/release
RUN_DIR=$TARGET_DIR/run
SOCKET=$RUN_DIR/memserver.sock
LOADGEN_ARGS=("$@")
if [ ${#LOADGEN_ARGS[@]} -eq 0 ]; then
    LOADGEN_ARGS=(--workload mixed --clients 2 --seconds 1)
fi

source scripts/server-lib.sh
trap stop_server EXIT
start_server "$BIN/memserver" "$SYSTEM" "$SOCKET" "$RUN_DIR/memserver.log"
head -n 1 "$RUN_DIR/memserver.log"

status=0
"$BIN/loadgen" --system "$SYSTEM" --socket "$SOCKET" "${LOADGEN_ARGS[@]}" \
    --json "$RUN_DIR/loadgen.json" --plot "$RUN_DIR/latency.svg" || status=$?

trap - EXIT
kill -TERM "$SERVER"
server_status=0
wait "$SERVER" || server_status=$?
tail -n +2 "$RUN_DIR/memserver.log"
if [ "$server_status" -ne 0 ]; then
    echo "make run: memserver exited with status $server_status" >&2
    [ "$status" -ne 0 ] || status=$server_status
fi
echo "report: $RUN_DIR/loadgen.json, latency CDF: $RUN_DIR/latency.svg"
exit "$status"
