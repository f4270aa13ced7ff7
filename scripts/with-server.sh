#!/usr/bin/env bash
# A memserver for programs of your own (the C and Rust examples, your component), started as
# `make run` starts it (release binary, socket under target/run/).
#
#   scripts/with-server.sh [SYSTEM] -- COMMAND [ARGS...]
#       starts the server, runs COMMAND with MEMSERVER_SOCKET and MEMSERVER_CLIENT set
#       (client `app` unless MEMSERVER_CLIENT is set already), stops the server; exits with
#       COMMAND's status (or the server's, if it did not stop cleanly).
#   scripts/with-server.sh [SYSTEM] --start
#       starts the server and leaves it running; prints the two `export` lines to use it.
#   scripts/with-server.sh --stop
#       stops the server --start left running.
#
# Build the server first: cargo build --release -p memserver-host --bin memserver (make c-example does).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/server-lib.sh

TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$TARGET_DIR/release/memserver
RUN_DIR=$TARGET_DIR/run
SOCKET=$RUN_DIR/memserver.sock
PID_FILE=$RUN_DIR/memserver.pid
SYSTEM=system.toml
if [ $# -gt 0 ] && [ "$1" != "--" ] && [ "${1#--}" = "$1" ]; then
    SYSTEM=$1
    shift
fi
CLIENT=${MEMSERVER_CLIENT:-app}

case "${1:-}" in
--stop)
    [ -f "$PID_FILE" ] || { echo "with-server: no server started with --start" >&2; exit 1; }
    stop_server "$(cat "$PID_FILE")"
    rm -f "$PID_FILE"
    ;;
--start)
    if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
        echo "with-server: already running (pid $(cat "$PID_FILE")); --stop first" >&2
        exit 1
    fi
    start_server "$BIN" "$SYSTEM" "$SOCKET" "$RUN_DIR/memserver.log"
    echo "$SERVER" >"$PID_FILE"
    echo "export MEMSERVER_SOCKET=$(realpath "$SOCKET") MEMSERVER_CLIENT=$CLIENT"
    echo "# memserver pid $SERVER, log $RUN_DIR/memserver.log; stop with: scripts/with-server.sh --stop"
    ;;
--)
    shift
    [ $# -gt 0 ] || { echo "with-server: no command after --" >&2; exit 2; }
    trap stop_server EXIT
    start_server "$BIN" "$SYSTEM" "$SOCKET" "$RUN_DIR/memserver.log"
    status=0
    MEMSERVER_SOCKET=$(realpath "$SOCKET") MEMSERVER_CLIENT=$CLIENT "$@" || status=$?
    trap - EXIT
    kill -TERM "$SERVER"
    server_status=0
    wait "$SERVER" || server_status=$?
    if [ "$server_status" -ne 0 ]; then
        echo "with-server: memserver exited with status $server_status" >&2
        cat "$RUN_DIR/memserver.log" >&2
        [ "$status" -ne 0 ] || status=$server_status
    fi
    exit "$status"
    ;;
*)
    sed -n '2,16p' "$0" >&2
    exit 2
    ;;
esac
