//! A service made by `ms-chassis new` deploys as generated: its Helm chart lints strictly,
//! renders with default values and with every option on, and every object validates against
//! Kubernetes 1.31's schemas with unknown fields refused; its probes, ports, grace period,
//! security context and config mounts agree with the service's own config; its compose
//! file, Prometheus config and Dockerfile agree with it too.
//!
//! There is no Docker daemon and no Kubernetes cluster here, so nothing is built into an
//! image, started in compose or installed in a cluster: the checks are Helm's own SDK
//! (lint and render), `kubernetes-validate --strict`, yamllint and structural assertions,
//! in `tests/deploy_checks/*.py`. They run with the Python from `MS_DEPLOY_PYTHON`, the venv
//! that `scripts/test-deps/deploy-venv.sh` makes (scripts/test.sh sources it).
//!
//! Each service is generated twice over, as `orders` and as `order-events`: a dash in the
//! name is where crate names, binary names and Kubernetes names part ways.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The services generated: a plain name and one with a dash, with different contracts.
const SERVICES: &[(&str, &str)] = &[
    ("orders", "code"),
    ("order-events", "none"),
    ("books", "spec"),
];

/// The interpreter of the deploy-check venv; fails loudly when it is not there.
fn deploy_python() -> PathBuf {
    let hint = "run `source scripts/test-deps/deploy-venv.sh` from the repository root (it \
                creates or reuses ./.venv-deploy with helm-python-sdk, kubernetes-validate, \
                yamllint and pyyaml, and exports MS_DEPLOY_PYTHON), or run scripts/test.sh, \
                which does";
    let python = match std::env::var_os("MS_DEPLOY_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!("MS_DEPLOY_PYTHON is not set: {hint}"),
    };
    assert!(
        python.is_file(),
        "MS_DEPLOY_PYTHON={} does not exist: {hint}",
        python.display()
    );
    python
}

fn checks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/deploy_checks")
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `ms-chassis new NAME --path PARENT/NAME --openapi OPENAPI`; the service's directory.
fn generate(parent: &Path, name: &str, openapi: &str) -> PathBuf {
    let dir = parent.join(name);
    let output = Command::new(env!("CARGO_BIN_EXE_ms-chassis"))
        .args(["new", name, "--openapi", openapi, "--path"])
        .arg(&dir)
        .output()
        .expect("run ms-chassis new");
    assert!(
        output.status.success(),
        "ms-chassis new {name}: {}",
        describe(&output)
    );
    for file in [
        "Dockerfile",
        ".dockerignore",
        "docker-compose.yaml",
        "deploy/prometheus/prometheus.yml",
    ] {
        assert!(dir.join(file).is_file(), "{name}: no {file}");
    }
    assert!(
        dir.join("deploy/helm")
            .join(name)
            .join("Chart.yaml")
            .is_file(),
        "{name}: no deploy/helm/{name}/Chart.yaml"
    );
    dir
}

/// Runs one of the deploy checks on a generated service; its report is printed, and a
/// failure shows what it said.
fn run_check(script: &str, service: &Path) {
    let python = deploy_python();
    let output = Command::new(&python)
        .arg(checks_dir().join(script))
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(service)
        .output()
        .unwrap_or_else(|e| panic!("run {} {script}: {e}", python.display()));
    assert!(
        output.status.success(),
        "{script} {}: {}\n(a ModuleNotFoundError means the venv is incomplete: `source \
         scripts/test-deps/deploy-venv.sh` reinstalls what is missing)",
        service.display(),
        describe(&output)
    );
    print!("{}", String::from_utf8_lossy(&output.stdout));
}

/// Generates every service of [`SERVICES`] and runs `script` on each.
fn check_every_service(script: &str) {
    let tmp = tempfile::tempdir().expect("temp dir");
    for (name, openapi) in SERVICES {
        let service = generate(tmp.path(), name, openapi);
        run_check(script, &service);
    }
}

#[test]
fn the_helm_chart_lints_renders_and_validates_against_kubernetes_1_31() {
    check_every_service("check_chart.py");
}

#[test]
fn the_compose_file_prometheus_config_and_dockerfile_agree_with_the_config() {
    check_every_service("check_compose.py");
}

/// A spec-first image must carry its contract where `openapi.file: api.yaml` finds it (the
/// working directory), outside the directory the chart mounts the config over.
#[test]
fn a_spec_first_image_carries_its_contract_in_its_working_directory() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let service = generate(tmp.path(), "books", "spec");
    let dockerfile = std::fs::read_to_string(service.join("Dockerfile")).unwrap();
    let runtime = dockerfile
        .split("AS runtime")
        .nth(1)
        .expect("a runtime stage");
    assert!(
        runtime.contains("COPY api.yaml /usr/share/books/api.yaml")
            && runtime.contains("WORKDIR /usr/share/books"),
        "{runtime}"
    );
    let config = std::fs::read_to_string(service.join("config.yaml")).unwrap();
    assert!(config.contains("file: api.yaml"), "{config}");
}
