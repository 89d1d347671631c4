#!/usr/bin/env bash
# Runs the whole test suite: unit, integration (real sockets, real Prometheus and promtool)
# and doc tests. Installs the peer binaries the tests need when they are missing, so it
# passes by itself on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
{ command -v prometheus && command -v promtool; } >/dev/null || missing+=(prometheus)
if ((${#missing[@]})); then
    echo "installing test peers: ${missing[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

cargo test --workspace --locked "$@"
