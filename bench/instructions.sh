#!/usr/bin/env bash
# Instructions per request of a server binary, counted by callgrind: the whole process
# serves 200 and then 2200 keep-alive requests (GET /hello unless told otherwise) (curl, one connection, one at a
# time), and the difference of the two totals is divided by 2000, so start-up and shutdown
# cancel. Repeatable to about 1%, where wall-clock numbers on a shared
# 2-core machine move by 10%; instructions are not time (see bench/README.md), but a change
# that removes work shows here at once.
#
#   bench/instructions.sh target/release/hello
#   bench/instructions.sh target/release/hello MS__METRICS__ENABLED=false
#   bench/instructions.sh target/release/bare-axum
#   BENCH_URL='/orders?limit=10&status=open' bench/instructions.sh target/release/validated
#   BENCH_URL=/orders BENCH_BODY=body.json bench/instructions.sh target/release/validated
#
# BENCH_URL is the request's path and query (default /hello); BENCH_BODY, a file, makes it a
# POST of that file as application/json. Every request is the same bytes: curl's URL glob
# sits in the fragment, which curl does not send.
#
# Needs valgrind (apt-get install -y valgrind) and curl. Keeps the two callgrind files
# (printed) for `callgrind_annotate --inclusive=no --tree=none --auto=no FILE`.
set -euo pipefail

bin=${1:?usage: bench/instructions.sh BINARY [NAME=VALUE ...]}
shift
command -v valgrind >/dev/null || { echo "valgrind is required: apt-get install -y valgrind" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
out=$(mktemp -d)
url="127.0.0.1:$port${BENCH_URL:-/hello}"
body=()
if [ -n "${BENCH_BODY:-}" ]; then
    body=(--data-binary "@$BENCH_BODY" -H 'content-type: application/json')
fi

# Total instructions of one run that serves $1 requests after start-up.
run() {
    env -i PATH="$PATH" MS__SERVER__PORT="$port" BENCH_PORT="$port" \
        MS__SERVER__SHUTDOWN__DRAIN_DELAY=0s "$@" \
        valgrind --tool=callgrind --callgrind-out-file="$out/cg-$n" "$bin" >/dev/null 2>&1 &
    local pid=$! up=""
    for _ in $(seq 600); do
        if curl -sf "${body[@]}" "$url" >/dev/null; then up=1; break; fi
        sleep 0.1
    done
    [ -n "$up" ] || { kill "$pid"; echo "$bin did not answer on port $port" >&2; exit 1; }
    curl -sf "${body[@]}" "$url#[1-$n]" >/dev/null
    kill -TERM "$pid"
    wait "$pid" || true
    callgrind_annotate "$out/cg-$n" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}

n=200; few=$(run "$@")
n=2200; many=$(run "$@")
echo "$(basename "$bin") $*: $(( (many - few) / 2000 )) instructions per request ($out/cg-200, $out/cg-2200)"
