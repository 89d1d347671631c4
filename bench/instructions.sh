#!/usr/bin/env bash
# Instructions per request of a server binary, counted by callgrind: the whole process
# serves 200 and then 2200 keep-alive GET /hello requests (curl, one connection, one at a
# time), and the difference of the two totals is divided by 2000, so start-up and shutdown
# cancel. Repeatable to about 1%, where wall-clock numbers on a shared
# 2-core machine move by 10%; instructions are not time (see bench/README.md), but a change
# that removes work shows here at once.
#
#   bench/instructions.sh target/release/hello
#   bench/instructions.sh target/release/hello MS__METRICS__ENABLED=false
#   bench/instructions.sh target/release/bare-axum
#
# Needs valgrind (apt-get install -y valgrind) and curl. Keeps the two callgrind files
# (printed) for `callgrind_annotate --inclusive=no --tree=none --auto=no FILE`.
set -euo pipefail

bin=${1:?usage: bench/instructions.sh BINARY [NAME=VALUE ...]}
shift
command -v valgrind >/dev/null || { echo "valgrind is required: apt-get install -y valgrind" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
out=$(mktemp -d)

# Total instructions of one run that serves $1 requests after start-up.
run() {
    env -i PATH="$PATH" MS__SERVER__PORT="$port" BENCH_PORT="$port" \
        MS__SERVER__SHUTDOWN__DRAIN_DELAY=0s "$@" \
        valgrind --tool=callgrind --callgrind-out-file="$out/cg-$n" "$bin" >/dev/null 2>&1 &
    local pid=$! up=""
    for _ in $(seq 600); do
        if curl -sf "127.0.0.1:$port/hello" >/dev/null; then up=1; break; fi
        sleep 0.1
    done
    [ -n "$up" ] || { kill "$pid"; echo "$bin did not answer on port $port" >&2; exit 1; }
    curl -sf "127.0.0.1:$port/hello?n=[1-$n]" >/dev/null
    kill -TERM "$pid"
    wait "$pid" || true
    callgrind_annotate "$out/cg-$n" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}

n=200; few=$(run "$@")
n=2200; many=$(run "$@")
echo "$(basename "$bin") $*: $(( (many - few) / 2000 )) instructions per request ($out/cg-200, $out/cg-2200)"
