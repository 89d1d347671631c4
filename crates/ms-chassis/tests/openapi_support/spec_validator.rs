//! Python `openapi-spec-validator` 0.9.0 as the judge of a published spec. Shared with the
//! `hello` example's tests (included there by path).
#![allow(dead_code, unreachable_pub)]

use std::path::Path as FsPath;
use std::process::Command;

const VALIDATOR_INSTALL: &str =
    "scripts/test.sh installs it; by hand: python3 -m pip install openapi-spec-validator==0.9.0";

/// Runs `openapi-spec-validator` 0.9.0 on each file, and checks that a YAML file reads as
/// the same document as the JSON file before it. Panics with the validator's message.
pub fn assert_valid_openapi(files: &[&FsPath]) {
    let python =
        which("python3").unwrap_or_else(|| panic!("python3 is required; {VALIDATOR_INSTALL}"));
    let probe = Command::new(&python)
        .args(["-c", "import openapi_spec_validator, importlib.metadata as m; print(m.version('openapi-spec-validator'))"])
        .output()
        .expect("python3 runs");
    let version = String::from_utf8_lossy(&probe.stdout).trim().to_owned();
    assert!(
        probe.status.success() && version == "0.9.0",
        "openapi-spec-validator 0.9.0 is required (found {version:?}: {}); {VALIDATOR_INSTALL}",
        String::from_utf8_lossy(&probe.stderr)
    );
    const CHECK: &str = r#"
import json, sys, yaml
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename
previous = None
for f in sys.argv[1:]:
    spec, _ = read_from_filename(f)
    validate(spec)
    if f.endswith(".yaml"):
        assert spec == previous, f"{f} does not read as the JSON before it"
    previous = spec
    print("valid", f)
"#;
    let out = Command::new(&python)
        .arg("-c")
        .arg(CHECK)
        .args(files)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "openapi-spec-validator rejected the spec:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().count(), files.len(), "{printed}");
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}
