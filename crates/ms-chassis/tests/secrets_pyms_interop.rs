//! `enc_` config values are PyMS's: a key file made the PyMS way and tokens made by Python's
//! `cryptography` decrypt in our loader, and our tokens decrypt in Python. Every error says
//! where (file:line or env var), which key, and how to fix it, and never shows the token or
//! the plaintext.
//!
//! Needs `python3` with the `cryptography` package (scripts/test.sh installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use ms_chassis::Config;
use ms_chassis::config::{ConfigError, ConfigLoader, SecretKey};

/// Runs a Python snippet with arguments and returns its stdout without the final newline.
fn python(script: &str, args: &[&str]) -> String {
    let check = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .expect("python3 must be installed for the Fernet interop tests");
    assert!(
        check.status.success(),
        "Python's `cryptography` package is missing: run `python3 -m pip install cryptography`\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end_matches('\n')
        .to_owned()
}

/// A key file written exactly as PyMS writes one: the urlsafe base64 of 32 bytes, no newline.
fn pyms_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    python(
        "import base64, os, sys\n\
         open(sys.argv[1], 'wb').write(base64.urlsafe_b64encode(os.urandom(32)))",
        &[path.to_str().unwrap()],
    );
    path
}

/// `Fernet(key).encrypt(plaintext)` in Python, with the key read from the key file.
fn py_encrypt(key_file: &Path, plaintext: &str) -> String {
    python(
        "import sys\nfrom cryptography.fernet import Fernet\n\
         key = open(sys.argv[1], 'rb').read()\n\
         print(Fernet(key).encrypt(sys.argv[2].encode()).decode())",
        &[key_file.to_str().unwrap(), plaintext],
    )
}

fn py_decrypt(key_file: &Path, token: &str) -> String {
    python(
        "import sys\nfrom cryptography.fernet import Fernet\n\
         key = open(sys.argv[1], 'rb').read()\n\
         print(Fernet(key).decrypt(sys.argv[2].encode()).decode())",
        &[key_file.to_str().unwrap(), token],
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The error, with proof that neither the token nor the plaintext leaks into it.
fn error_without(r: Result<Config, ConfigError>, secrets: &[&str]) -> ConfigError {
    let e = r.expect_err("config should be rejected");
    let shown = format!("{e}\n{e:?}");
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(!shown.contains(s), "error text leaks {s:?}:\n{shown}");
    }
    e
}

#[test]
fn python_tokens_decrypt_at_every_depth_and_in_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let key = pyms_key(dir.path(), "key.key");
    let t = |p: &str| py_encrypt(&key, p);
    let base = write(
        dir.path(),
        "config.yaml",
        &format!(
            "admin:\n  enc_token: {admin}\n\
             tracing:\n  headers:\n    ENC_authorization: {header}\n\
             app:\n  db:\n    user: books\n    enc_password: {db}\n  \
             replicas:\n    - host: r1\n      Enc_Password: {r1}\n",
            admin = t("admin-bearer"),
            header = t("Bearer xyz"),
            db = t("file-pw"),
            r1 = t("replica-pw"),
        ),
    );
    let profile = write(
        dir.path(),
        "config.prod.yaml",
        &format!(
            "app:\n  cache:\n    enc_url: {}\n",
            t("redis://secret@cache")
        ),
    );
    let c = ConfigLoader::new()
        .file(&base)
        .profile("prod")
        .yaml(format!("app:\n  enc_api_key: {}\n", t("inline-key")))
        .key_file(&key)
        .load()
        .expect("loads");

    // In a chassis section (typed), nested, inside a list, in any case.
    assert_eq!(c.get::<String>("admin.token").unwrap(), "admin-bearer");
    assert_eq!(
        c.chassis().tracing.headers.get("authorization").unwrap(),
        "Bearer xyz"
    );
    assert_eq!(c.get::<String>("app.db.password").unwrap(), "file-pw");
    assert_eq!(c.get::<String>("app.db.user").unwrap(), "books");
    let replicas: Vec<serde_json::Value> = c.get("app.replicas").unwrap();
    assert_eq!(replicas[0]["Password"], "replica-pw");
    assert!(replicas[0].get("Enc_Password").is_none());
    // The profile file and inline YAML.
    assert_eq!(
        c.get::<String>("app.cache.url").unwrap(),
        "redis://secret@cache"
    );
    assert_eq!(c.get::<String>("app.api_key").unwrap(), "inline-key");
    // The `enc_` keys are gone.
    assert!(c.get::<serde_json::Value>("app.db").unwrap()["enc_password"].is_null());

    // Origins point at the `enc_` key's line.
    assert_eq!(
        c.origin_of("app.db.password").unwrap(),
        format!("{}:9", base.display())
    );
    assert_eq!(
        c.origin_of("app.cache.url").unwrap(),
        format!("{}:3", profile.display())
    );
    assert_eq!(c.origin_of("app.api_key").unwrap(), "inline config:2");

    // Every decrypted path is recorded, and redacted.
    let paths: Vec<&str> = c.secret_paths().collect();
    assert_eq!(
        paths,
        [
            "admin.token",
            "app.api_key",
            "app.cache.url",
            "app.db.password",
            "app.replicas[0].Password",
            "tracing.headers.authorization",
        ]
    );
    let redacted = c.redacted();
    let shown = format!("{redacted}\n{}\n{c:?}", c.annotated_yaml());
    for plaintext in [
        "admin-bearer",
        "Bearer xyz",
        "file-pw",
        "replica-pw",
        "redis://secret@cache",
        "inline-key",
    ] {
        assert!(!shown.contains(plaintext), "{plaintext} shown:\n{shown}");
    }
    assert_eq!(redacted["app"]["cache"]["url"], "<redacted>");
    assert_eq!(redacted["app"]["db"]["user"], "books");
    assert_eq!(redacted["app"]["replicas"][0]["host"], "r1");
}

#[test]
fn a_top_level_enc_key_is_a_top_level_value() {
    let dir = tempfile::tempdir().unwrap();
    let key = pyms_key(dir.path(), "key.key");
    // `enc_app` at the very top: the whole `app` section is one encrypted string.
    let c = ConfigLoader::new()
        .yaml(format!("enc_app: {}\n", py_encrypt(&key, "whole app")))
        .key_file(&key)
        .load()
        .unwrap();
    assert_eq!(c.get::<String>("app").unwrap(), "whole app");
    assert_eq!(c.redacted()["app"], "<redacted>");

    // A top-level name the chassis does not know is still a typo, reported by name only.
    let token = py_encrypt(&key, "db-pw");
    let e = error_without(
        ConfigLoader::new()
            .yaml(format!("enc_datbase: {token}\n"))
            .key_file(&key)
            .load(),
        &[&token, "db-pw"],
    );
    assert_eq!(e.diagnostics()[0].key.as_deref(), Some("datbase"), "{e}");
    assert!(
        e.to_string()
            .starts_with("inline config:1: datbase: unknown top-level section")
    );
}

#[test]
fn env_overrides_carry_tokens_too() {
    let dir = tempfile::tempdir().unwrap();
    let key = pyms_key(dir.path(), "key.key");
    let file_token = py_encrypt(&key, "from-file");
    let env_token = py_encrypt(&key, "from-env");
    let base = write(
        dir.path(),
        "config.yaml",
        &format!("app:\n  db:\n    enc_password: {file_token}\n"),
    );
    // The env var's path is lowercased, so it overrides the file's `enc_password`.
    let c = ConfigLoader::new()
        .file(&base)
        .env_vars([("MS__APP__DB__ENC_PASSWORD", env_token.as_str())])
        .key_file(&key)
        .load()
        .unwrap();
    assert_eq!(c.get::<String>("app.db.password").unwrap(), "from-env");
    assert_eq!(
        c.origin_of("app.db.password").unwrap(),
        "environment variable MS__APP__DB__ENC_PASSWORD"
    );

    // In a chassis section: `admin.token` from the environment.
    let c = ConfigLoader::new()
        .env_vars([("MS__ADMIN__ENC_TOKEN", env_token.as_str())])
        .key_file(&key)
        .load()
        .unwrap();
    assert_eq!(c.get::<String>("admin.token").unwrap(), "from-env");

    // A decrypted value replaces an embedded default, and is typed like any other.
    let level = py_encrypt(&key, "debug");
    let c = ConfigLoader::new()
        .env_vars([("MS__LOGGING__ENC_LEVEL", level.as_str())])
        .key_file(&key)
        .load()
        .unwrap();
    assert_eq!(c.chassis().logging.level, "debug");

    // `db` is not a section: MS__DB__ENC_PASSWORD is a typo, named without its value.
    let e = error_without(
        ConfigLoader::new()
            .env_vars([("MS__DB__ENC_PASSWORD", env_token.as_str())])
            .key_file(&key)
            .load(),
        &[&env_token, "from-env"],
    );
    assert!(
        e.to_string().starts_with(
            "environment variable MS__DB__ENC_PASSWORD: db: unknown top-level section"
        ),
        "{e}"
    );
}

#[test]
fn our_tokens_and_keys_work_in_python() {
    let dir = tempfile::tempdir().unwrap();
    // A PyMS key, used by us.
    let pyms = pyms_key(dir.path(), "pyms.key");
    let key = SecretKey::from_file(&pyms).unwrap();
    let token = key.encrypt("pässwörd with spaces & symbols: {}".as_bytes());
    assert_eq!(
        py_decrypt(&pyms, &token),
        "pässwörd with spaces & symbols: {}"
    );
    // Our key file (with its trailing newline), used by Python.
    let ours = write(dir.path(), "ours.key", &SecretKey::generate());
    let key = SecretKey::from_file(&ours).unwrap();
    assert_eq!(py_decrypt(&ours, &key.encrypt(b"from rust")), "from rust");
    assert_eq!(
        key.decrypt_str(&py_encrypt(&ours, "from python")).unwrap(),
        "from python"
    );
}

#[test]
fn the_key_file_is_read_only_when_something_is_encrypted() {
    let c = ConfigLoader::new()
        .yaml("app: { password: plain }")
        .key_file("/nonexistent/key.key")
        .load()
        .unwrap();
    assert_eq!(c.get::<String>("app.password").unwrap(), "plain");
    assert_eq!(c.secret_paths().count(), 0);
    // Still redacted by its name.
    assert_eq!(c.redacted()["app"]["password"], "<redacted>");
}

/// A config file with one encrypted value, and a loader for it.
struct Case {
    dir: tempfile::TempDir,
    file: PathBuf,
}

impl Case {
    fn new(yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "config.yaml", yaml);
        Self { dir, file }
    }

    fn at(&self, line: usize) -> String {
        format!("{}:{line}", self.file.display())
    }

    fn load(&self, key_file: &Path) -> Result<Config, ConfigError> {
        ConfigLoader::new()
            .file(&self.file)
            .key_file(key_file)
            .load()
    }
}

#[test]
fn key_file_missing() {
    let keys = tempfile::tempdir().unwrap();
    let key = pyms_key(keys.path(), "key.key");
    let token = py_encrypt(&key, "pw-missing-key");
    let case = Case::new(&format!(
        "service: {{ name: books }}\napp:\n  db:\n    enc_password: {token}\n  enc_other: {token}\n"
    ));
    let missing = case.dir.path().join("no-such.key");
    let e = error_without(case.load(&missing), &[&token, "pw-missing-key"]);
    assert_eq!(e.diagnostics().len(), 1, "one problem, named once: {e}");
    let d = &e.diagnostics()[0];
    assert_eq!(d.location.as_deref(), Some(case.at(4).as_str()));
    assert_eq!(d.key.as_deref(), Some("app.db.enc_password"));
    let m = &d.message;
    assert!(m.contains("also needed by app.enc_other"), "{m}");
    assert!(
        m.contains(&format!("key file {} not found", missing.display())),
        "{m}"
    );
    assert!(m.contains("MS_KEY_FILE"), "{m}");
    assert!(m.contains("./key.key"), "{m}");
    assert!(
        m.contains(&format!("`ms-chassis keygen --out {}`", missing.display())),
        "{m}"
    );
}

#[test]
fn key_file_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let good = pyms_key(dir.path(), "good.key");
    let token = py_encrypt(&good, "pw-bad-key");
    let case = Case::new(&format!("app:\n  enc_password: {token}\n"));
    let short = "c2l4dGVlbiBieXRlIGtleQ==\n"; // "sixteen byte key"
    for (content, reason) in [
        (short, "it decodes to 16 bytes"),
        (
            "not base64 at all!\n",
            "it holds more than one line or word",
        ),
        ("not*base64\n", "it is not urlsafe base64"),
        ("\n", "it is empty"),
    ] {
        let bad = write(dir.path(), "bad.key", content);
        let e = error_without(case.load(&bad), &[&token, "pw-bad-key", content.trim()]);
        let d = &e.diagnostics()[0];
        assert_eq!(d.location.as_deref(), Some(case.at(2).as_str()));
        assert_eq!(d.key.as_deref(), Some("app.enc_password"));
        assert!(
            d.message.contains(&format!(
                "key file {} does not hold a Fernet key ({reason})",
                bad.display()
            )),
            "{e}"
        );
        assert!(
            d.message.contains("urlsafe base64 of 32 bytes on one line")
                && d.message.contains("ms-chassis keygen"),
            "{e}"
        );
    }
    // A trailing newline (or CRLF) is fine, as in PyMS.
    let text = std::fs::read_to_string(&good).unwrap();
    let crlf = write(dir.path(), "crlf.key", &format!("{text}\r\n"));
    let c = case.load(&crlf).unwrap();
    assert_eq!(c.get::<String>("app.password").unwrap(), "pw-bad-key");
}

#[test]
fn token_from_another_key() {
    let dir = tempfile::tempdir().unwrap();
    let ours = pyms_key(dir.path(), "ours.key");
    let theirs = pyms_key(dir.path(), "theirs.key");
    let token = py_encrypt(&theirs, "pw-other-key");
    let case = Case::new(&format!("app:\n  db:\n    enc_password: {token}\n"));
    let e = error_without(case.load(&ours), &[&token, "pw-other-key"]);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: app.db.enc_password: cannot decrypt: the token does not decrypt with the key \
             in {key}: it was encrypted with another key or altered; encrypt the value again \
             with `ms-chassis encrypt --key-file {key}`",
            case.at(3),
            key = ours.display()
        )
    );
}

#[test]
fn plaintext_under_an_enc_key_is_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    let key = pyms_key(dir.path(), "key.key");
    let case = Case::new("app:\n  enc_password: hunter2-plain\n  enc_pin: 123456\n");
    let e = error_without(case.load(&key), &["hunter2-plain", "123456"]);
    let lines: Vec<String> = e.diagnostics().iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            format!(
                "{}: app.enc_password: cannot decrypt: the value is not a Fernet token; store \
                 the token that `ms-chassis encrypt` prints, not the plaintext",
                case.at(2)
            ),
            format!(
                "{}: app.enc_pin: expected a Fernet token (a string made by `ms-chassis \
                 encrypt`), found a number",
                case.at(3)
            ),
        ]
    );
}

#[test]
fn plaintext_that_is_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let key = pyms_key(dir.path(), "key.key");
    let token = python(
        "import sys\nfrom cryptography.fernet import Fernet\n\
         print(Fernet(open(sys.argv[1], 'rb').read()).encrypt(b'\\xff\\xfe').decode())",
        &[key.to_str().unwrap()],
    );
    let e = error_without(
        ConfigLoader::new()
            .env_vars([("MS__APP__ENC_BLOB", token.as_str())])
            .key_file(&key)
            .load(),
        &[&token],
    );
    assert_eq!(
        e.to_string(),
        "environment variable MS__APP__ENC_BLOB: app.enc_blob: cannot decrypt: the decrypted \
         value is not UTF-8 text"
    );
}

#[test]
fn both_enc_and_plain_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = pyms_key(dir.path(), "key.key");
    let token = py_encrypt(&key, "pw-both");
    let case = Case::new(&format!(
        "app:\n  db:\n    password: dev-pw\n    enc_password: {token}\n"
    ));
    let e = error_without(case.load(&key), &[&token, "pw-both"]);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: app.db.enc_password: `enc_password` is exposed as `app.db.password` once \
             decrypted, but `app.db.password` (at {}) is set too; keep only one of them",
            case.at(4),
            case.at(3)
        )
    );
}

#[test]
fn a_decrypted_value_of_the_wrong_type_is_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let key = pyms_key(dir.path(), "key.key");
    let token = py_encrypt(&key, "maybe-secretly");
    let case = Case::new(&format!("logging:\n  enc_access: {token}\n"));
    let e = error_without(case.load(&key), &[&token, "maybe-secretly"]);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: logging.access: expected a boolean, found string <redacted>",
            case.at(2)
        )
    );
    // The same in the user's own section, read after loading.
    let token = py_encrypt(&key, "not-a-number");
    let c = ConfigLoader::new()
        .yaml(format!("app:\n  enc_retries: {token}\n"))
        .key_file(&key)
        .load()
        .unwrap();
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct App {
        retries: u32,
    }
    let e = c.app::<App>().unwrap_err();
    let shown = format!("{e}\n{e:?}");
    assert!(
        !shown.contains("not-a-number") && !shown.contains(&token),
        "{shown}"
    );
    assert_eq!(
        e.to_string(),
        "inline config:2: app.retries: expected u32, found string <redacted>"
    );
}
