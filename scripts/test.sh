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

# Python peers for tracing interop (the real OpenTelemetry SDK and its propagators).
if ! python3 -c "import opentelemetry.sdk, opentelemetry.propagators.b3, opentelemetry.propagators.jaeger, opentelemetry.exporter.otlp.proto.http" 2>/dev/null; then
    echo "installing Python test peers (opentelemetry-sdk and propagators)"
    python3 -m pip install --quiet --disable-pip-version-check \
        opentelemetry-sdk opentelemetry-propagator-b3 opentelemetry-propagator-jaeger \
        opentelemetry-exporter-otlp-proto-http
fi

cargo test --workspace --locked "$@"
