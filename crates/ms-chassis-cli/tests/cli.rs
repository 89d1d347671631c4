//! The `ms-chassis` binary, run as a user would: a key made by `keygen`, a value encrypted
//! with `encrypt`, pasted into a config as `enc_password`, and read back as plaintext by a
//! real service; `config check` reporting every problem with its location.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ms_chassis::Service;
use ms_chassis::config::ConfigLoader;

const PLAINTEXT: &str = "correct horse battery staple";

/// The binary, in `dir`, with a clean environment plus `env`.
fn ms_chassis(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ms-chassis"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    ms_chassis(dir, args, env).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    o
}

/// keygen in `dir`, then encrypt `PLAINTEXT` from stdin: returns the key path and the token.
fn key_and_token(dir: &Path) -> (PathBuf, String) {
    ok(run(dir, &["keygen"], &[]));
    let key = dir.join("key.key");
    let mut child = ms_chassis(dir, &["encrypt"], &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PLAINTEXT}\n").as_bytes())
        .unwrap();
    let out = ok(child.wait_with_output().unwrap());
    let printed = stdout(&out);
    let token = printed.strip_suffix('\n').expect("token and a newline");
    assert!(
        !token.contains(char::is_whitespace),
        "the token alone: {printed:?}"
    );
    (key, token.to_owned())
}

#[test]
fn keygen_encrypt_config_service_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (key, token) = key_and_token(dir.path());

    // The key: PyMS's format, and private.
    let text = std::fs::read_to_string(&key).unwrap();
    assert_eq!(
        text.len(),
        45,
        "44 characters of base64 and a newline: {text:?}"
    );
    assert!(text.ends_with("=\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    // decrypt reverses encrypt, with the token as an argument or on stdin.
    let out = ok(run(dir.path(), &["decrypt", &token], &[]));
    assert_eq!(stdout(&out), format!("{PLAINTEXT}\n"));
    // An argument works for encrypt too, and MS_KEY_FILE and --key-file name the key.
    let elsewhere = tempfile::tempdir().unwrap();
    let key_str = key.to_str().unwrap();
    let out = ok(run(
        elsewhere.path(),
        &["encrypt", "via-arg"],
        &[("MS_KEY_FILE", key_str)],
    ));
    let t2 = stdout(&out);
    let out = ok(run(
        elsewhere.path(),
        &["decrypt", "--key-file", key_str, t2.trim()],
        &[],
    ));
    assert_eq!(stdout(&out), "via-arg\n");

    // Paste the token into a config.
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "service: {{ name: books }}\napp:\n  db:\n    user: books\n    enc_password: {token}\n"
        ),
    )
    .unwrap();
    let loaded = ConfigLoader::new()
        .file(&config)
        .key_file(&key)
        .load()
        .unwrap();
    assert_eq!(loaded.get::<String>("app.db.password").unwrap(), PLAINTEXT);

    // A real service reads the plaintext.
    let svc = Service::builder()
        .file(&config)
        .key_file(&key)
        .build()
        .unwrap();
    assert_eq!(
        svc.config().get::<String>("app.db.password").unwrap(),
        PLAINTEXT
    );
    assert_eq!(svc.config().chassis().service.name, "books");

    // And `config check` agrees, run from the service's directory with its defaults.
    let out = ok(run(dir.path(), &["config", "check"], &[]));
    assert!(stderr(&out).contains("the configuration is valid"));
}

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    ok(run(dir.path(), &["keygen", "--out", "app.key"], &[]));
    let key = dir.path().join("app.key");
    let before = std::fs::read_to_string(&key).unwrap();

    let out = run(dir.path(), &["keygen", "--out", "app.key"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("app.key already exists"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), before);

    // --force replaces it, and a file that was readable by others becomes private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    ok(run(
        dir.path(),
        &["keygen", "--out", "app.key", "--force"],
        &[],
    ));
    assert_ne!(std::fs::read_to_string(&key).unwrap(), before);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}

#[test]
fn config_check_reports_every_problem_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "service: { name: books }\n\
         server:\n  \
           prot: 8080\n  \
           limits:\n    \
             request_timeout: 30 parsecs\n\
         logging:\n  \
           access: maybe\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &["config", "check", "--file", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let f = config.display();
    for line in [
        format!("{f}:3: server.prot: unknown key in `server`; did you mean `port`?"),
        format!(
            "{f}:5: server.limits.request_timeout: expected a duration such as 30s, 250ms or \
             5m, found \"30 parsecs\""
        ),
        format!("{f}:7: logging.access: expected a boolean, found string \"maybe\""),
    ] {
        assert!(err.contains(&line), "missing {line:?} in:\n{err}");
    }
    assert!(err.contains("the configuration has 3 problems"), "{err}");
    assert!(stdout(&out).is_empty());

    // The profile and environment count as the service counts them.
    std::fs::write(&config, "server: { port: 8080 }\n").unwrap();
    std::fs::write(dir.path().join("config.prod.yaml"), "server: { port: x }\n").unwrap();
    let out = run(
        dir.path(),
        &["config", "check", "--profile", "prod"],
        &[("MS__LOGGING__LEVEL", "loud")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("config.prod.yaml:1: server.port: expected an integer"),
        "{err}"
    );
    assert!(
        err.contains("environment variable MS__LOGGING__LEVEL: logging.level: expected a level"),
        "{err}"
    );
}

#[test]
fn config_check_print_redacts_secrets_and_names_origins() {
    let dir = tempfile::tempdir().unwrap();
    let (_key, token) = key_and_token(dir.path());
    std::fs::write(
        dir.path().join("config.yaml"),
        format!(
            "service: {{ name: books }}\n\
             app:\n  \
               db:\n    \
                 user: books\n    \
                 enc_password: {token}\n"
        ),
    )
    .unwrap();
    let env = [("MS__SERVER__PORT", "9000")];
    let out = ok(run(dir.path(), &["config", "check", "--print"], &env));
    let printed = stdout(&out);
    let everything = format!("{printed}{}", stderr(&out));
    assert!(!everything.contains(PLAINTEXT), "{everything}");
    assert!(!everything.contains(&token), "{everything}");
    let line = |key: &str| {
        printed
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{key}:")))
            .unwrap_or_else(|| panic!("no {key} in:\n{printed}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("password"), "password: \"<redacted>\" # config.yaml:5");
    assert_eq!(line("user"), "user: books # config.yaml:4");
    assert_eq!(
        line("port"),
        "port: 9000 # environment variable MS__SERVER__PORT"
    );
    assert_eq!(line("grace"), "grace: 30s # embedded defaults");

    // JSON: the same tree and every value's layer.
    let out = ok(run(
        dir.path(),
        &["config", "check", "--print", "--format", "json"],
        &env,
    ));
    let printed = stdout(&out);
    assert!(!printed.contains(PLAINTEXT) && !printed.contains(&token));
    let doc: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(doc["config"]["app"]["db"]["password"], "<redacted>");
    assert_eq!(doc["config"]["server"]["port"], 9000);
    assert_eq!(doc["origins"]["app.db.password"], "config.yaml:5");
    assert_eq!(
        doc["origins"]["server.port"],
        "environment variable MS__SERVER__PORT"
    );

    // Without the key, the check fails and says how to fix it, still without the token.
    let out = run(
        dir.path(),
        &["config", "check", "--print"],
        &[("MS_KEY_FILE", "/nonexistent/prod.key")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "config.yaml:5: app.db.enc_password: cannot decrypt: key file /nonexistent/prod.key \
             not found"
        ) && err.contains("ms-chassis keygen"),
        "{err}"
    );
    assert!(!err.contains(&token) && !stdout(&out).contains(&token));
}

#[test]
fn decrypt_errors_name_the_fix_and_not_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["encrypt", "x"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("key file key.key not found") && err.contains("ms-chassis keygen"),
        "{err}"
    );

    let (_key, token) = key_and_token(dir.path());
    let out = run(dir.path(), &["decrypt", "hunter2-not-a-token"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));

    ok(run(dir.path(), &["keygen", "--out", "other.key"], &[]));
    let out = run(
        dir.path(),
        &["decrypt", "--key-file", "other.key", &token],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("does not decrypt with the key in other.key"),
        "{err}"
    );
    assert!(!err.contains(&token) && !err.contains(PLAINTEXT), "{err}");
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["keygen", "--help"],
        &["encrypt", "--help"],
        &["decrypt", "--help"],
        &["config", "--help"],
        &["config", "check", "--help"],
    ] {
        let out = ok(run(dir.path(), args, &[]));
        assert!(stdout(&out).contains("Usage: ms-chassis"), "{args:?}");
    }
    let out = ok(run(dir.path(), &["config", "check", "--help"], &[]));
    for flag in ["--file", "--profile", "--print", "--key-file"] {
        assert!(stdout(&out).contains(flag), "{flag}");
    }
}
