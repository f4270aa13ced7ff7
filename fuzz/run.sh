#!/usr/bin/env bash
# Runs both fuzz targets side by side for SECONDS each (make fuzz SECONDS=…), then prints, per
# target, the executions, speed, coverage and whether anything crashed. Needs nightly and
# cargo-fuzz (the Makefile installs it). Crash inputs land in fuzz/artifacts/<target>/.
# FUZZ_ARGS passes more libFuzzer options (e.g. FUZZ_ARGS=-max_len=256 for more, shorter runs).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
flags=(-s none --no-trace-compares --target-dir ../target/fuzz)
cargo +nightly fuzz build "${flags[@]}"
mkdir -p ../target/fuzz
pids=()
for t in dispatch magazine; do
    mkdir -p "corpus/$t"
    cargo +nightly fuzz run "${flags[@]}" "$t" -- -max_total_time="$seconds" -print_final_stats=1 ${FUZZ_ARGS:-} \
        >"../target/fuzz/$t.log" 2>&1 &
    pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
for t in dispatch magazine; do
    log="../target/fuzz/$t.log"
    execs=$(grep -o 'number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    rate=$(grep -o 'average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo 0)
    ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo 0)
    corp=$(grep -o 'corp: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo 0)
    crash=$(grep -c -E 'panicked|deadly signal|ERROR: libFuzzer' "$log" || true)
    echo "fuzz $t: executions=$execs exec_per_sec=$rate seconds=$seconds cov=$cov ft=$ft corpus=$corp crashes=$crash"
    [ "$crash" = 0 ] || { status=1; grep -E 'panicked|Test unit written' "$log" | head -5; }
done
exit $status
