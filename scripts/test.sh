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

# Python peers: the real OpenTelemetry SDK and its propagators (tracing interop),
# `cryptography` (Fernet interop of `enc_` config values, as PyMS uses it) and
# `prometheus_client` (the reference OpenMetrics parser).
if ! python3 -c "import opentelemetry.sdk, opentelemetry.propagators.b3, opentelemetry.propagators.jaeger, opentelemetry.exporter.otlp.proto.http, cryptography, prometheus_client.openmetrics.parser" 2>/dev/null; then
    echo "installing Python test peers"
    peers=(opentelemetry-sdk opentelemetry-propagator-b3 opentelemetry-propagator-jaeger
           opentelemetry-exporter-otlp-proto-http cryptography prometheus-client)
    python3 -m pip --version >/dev/null 2>&1 || {
        [ "$(id -u)" = 0 ] || sudo=sudo
        ${sudo:-} apt-get update -qq
        DEBIAN_FRONTEND=noninteractive ${sudo:-} apt-get install -y --no-install-recommends python3-pip
    }
    # Debian's own python3 refuses pip installs (PEP 668) unless told otherwise.
    python3 -m pip install --quiet --disable-pip-version-check "${peers[@]}" ||
        python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${peers[@]}"
fi

cargo test --workspace --locked "$@"
