//! `ms-chassis openapi check` reports a bad spec's problems with file and line and exits
//! 1; `ms-chassis openapi bundle` writes a multi-file spec as one document that itself
//! checks clean.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ms-chassis"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ms-chassis/tests/fixtures/openapi")
}

#[test]
fn check_accepts_the_fixture_specs() {
    for f in ["v30.yaml", "v31.yaml", "multi/api.yaml", "recursive.yaml"] {
        let o = run(&fixtures(), &["openapi", "check", f]);
        assert!(o.status.success(), "{f}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains("the spec is valid"), "{f}");
    }
}

#[test]
fn check_reports_every_problem_with_file_and_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("api.yaml"),
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      responses:\n        '200':\n          description: ok\n          content:\n            application/json:\n              schema: {$ref: 'schemas.yaml#/Missing'}\n  /b:\n    get:\n      responses:\n        '200': {$ref: '#/components/responses/Nope'}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("schemas.yaml"), "Here: {type: string}\n").unwrap();
    let o = run(dir.path(), &["openapi", "check", "api.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("api.yaml:11:") && err.contains("schemas.yaml#/Missing"),
        "{err}"
    );
    assert!(
        err.contains("api.yaml:15:") && err.contains("#/components/responses/Nope"),
        "{err}"
    );
    assert!(err.contains("the spec has 2 problems"), "{err}");
    let o = run(dir.path(), &["openapi", "check", "missing.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("missing.yaml: cannot read"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn bundle_writes_one_document_in_yaml_or_json_that_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let root = fixtures().join("multi/api.yaml");
    let root = root.to_str().unwrap();
    for out in ["bundled.yaml", "bundled.json"] {
        let o = run(dir.path(), &["openapi", "bundle", root, "-o", out]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let written = std::fs::read_to_string(dir.path().join(out)).unwrap();
        assert!(
            !written.contains(".yaml#"),
            "{out}: refs stay local:\n{written}"
        );
        assert!(written.contains("Part_2"), "{out}: the clash is suffixed");
        if out.ends_with(".json") {
            let v: serde_json::Value = serde_json::from_str(&written).unwrap();
            assert_eq!(v["openapi"], "3.1.0");
        }
        let o = run(dir.path(), &["openapi", "check", out]);
        assert!(o.status.success(), "{out}: {}", text(&o.stderr));
    }
    // To stdout, YAML by default.
    let o = run(dir.path(), &["openapi", "bundle", root]);
    assert!(o.status.success());
    assert!(text(&o.stdout).starts_with("components:") || text(&o.stdout).contains("\nopenapi: "));
}
