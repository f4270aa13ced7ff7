# Shared by scripts/run.sh and scripts/with-server.sh (sourced, not run): start a memserver in
# the background and wait for it to listen; stop it.

# start_server BIN SYSTEM SOCKET LOG: starts BIN --system SYSTEM --socket SOCKET with its output
# in LOG; sets SERVER to its pid; returns once it prints "listening on" (at most 10 s), exits 1
# if it does not.
start_server() {
    local bin=$1 system=$2 socket=$3 log=$4
    mkdir -p "$(dirname "$socket")" "$(dirname "$log")"
    rm -f "$socket"
    "$bin" --system "$system" --socket "$socket" >"$log" 2>&1 &
    SERVER=$!
    for _ in $(seq 100); do
        grep -qs "listening on" "$log" && return 0
        if ! kill -0 "$SERVER" 2>/dev/null; then
            echo "memserver exited at start-up:" >&2
            cat "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "memserver did not start listening" >&2
    exit 1
}

# stop_server [PID]: SIGTERM to PID (default: $SERVER) if it still runs.
stop_server() {
    local pid=${1:-${SERVER:-}}
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
}
