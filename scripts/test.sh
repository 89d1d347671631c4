#!/usr/bin/env bash
# Runs the whole test suite: unit, integration (real sockets, real Prometheus and promtool,
# a real headless Chromium) and doc tests. Installs the peer binaries the tests need when
# they are missing, so it passes by itself on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
{ command -v prometheus && command -v promtool; } >/dev/null || missing+=(prometheus)
# The Swagger UI test drives Chromium with npm playwright-core (below), never playwright's
# own browser download.
command -v chromium >/dev/null || missing+=(chromium)
{ command -v node && command -v npm; } >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
    echo "installing test peers: ${missing[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Python peers, in a venv this script creates once and reuses (never the system Python):
# the real OpenTelemetry SDK and its propagators (tracing interop), `cryptography` (Fernet
# interop of `enc_` config values, as PyMS uses it), `prometheus_client` (the reference
# OpenMetrics parser) and `openapi-spec-validator` (judges every spec the chassis
# publishes). The tests run `python3`, which the PATH below makes the venv's. openapi-core
# pins other versions of the same dependencies: it gets a venv of its own, not this one.
venv="${MS_TEST_VENV:-$PWD/.venv-test}"
if [ ! -x "$venv/bin/python3" ]; then
    echo "creating the test venv at $venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        sudo=""
        [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends python3-venv
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
fi
export PATH="$venv/bin:$PATH"
export VIRTUAL_ENV="$venv"
OPENAPI_SPEC_VALIDATOR=0.9.0
if ! python3 -c "import opentelemetry.sdk, opentelemetry.propagators.b3, opentelemetry.propagators.jaeger, opentelemetry.exporter.otlp.proto.http, cryptography, prometheus_client.openmetrics.parser, importlib.metadata as m; assert m.version('openapi-spec-validator') == '$OPENAPI_SPEC_VALIDATOR'" 2>/dev/null; then
    echo "installing Python test peers into $venv"
    python3 -m pip install --quiet --disable-pip-version-check \
        opentelemetry-sdk opentelemetry-propagator-b3 opentelemetry-propagator-jaeger \
        opentelemetry-exporter-otlp-proto-http cryptography prometheus-client \
        "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR"
fi

# Node peers, in a directory this script creates once and reuses: playwright-core, pinned,
# which drives the apt Chromium (`executablePath`) in the Swagger UI test. The tests find it
# through MS_TEST_NODE_DIR.
PLAYWRIGHT_CORE=1.65.1
node_dir="${MS_TEST_NODE_DIR:-$PWD/.node-test}"
if [ "$(node -p "require('$node_dir/node_modules/playwright-core/package.json').version" 2>/dev/null)" != "$PLAYWRIGHT_CORE" ]; then
    echo "installing playwright-core $PLAYWRIGHT_CORE into $node_dir"
    mkdir -p "$node_dir"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$node_dir" --no-audit --no-fund \
        --loglevel=error --save-exact "playwright-core@$PLAYWRIGHT_CORE"
fi
export MS_TEST_NODE_DIR="$node_dir"
# openapi-core 0.23.1, the differential oracle of the OpenAPI request validation tests, in
# a venv of its own: it conflicts with openapi-spec-validator in the main test venv. Its
# Python is passed to the tests in MS_OPENAPI_CORE_PYTHON. Nothing is installed into the
# system Python.
oc_venv="${MS_OPENAPI_CORE_VENV:-$PWD/.venv-openapi-core}"
if [ ! -x "$oc_venv/bin/python3" ]; then
    echo "creating the openapi-core venv at $oc_venv"
    python3 -m venv "$oc_venv"
fi
if ! "$oc_venv/bin/python3" -c "import importlib.metadata as m, sys; sys.exit(m.version('openapi-core') != '0.23.1')" 2>/dev/null; then
    echo "installing openapi-core 0.23.1 into $oc_venv"
    "$oc_venv/bin/python3" -m pip install --quiet --disable-pip-version-check openapi-core==0.23.1
fi
export MS_OPENAPI_CORE_PYTHON="$oc_venv/bin/python3"

# The generated service's deploy checks (Helm lint and render, strict Kubernetes schema
# validation, yamllint, compose structure) run in a venv of their own; this exports
# MS_DEPLOY_PYTHON for them.
source scripts/test-deps/deploy-venv.sh

cargo test --workspace --locked "$@"
