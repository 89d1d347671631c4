//! Config precedence (defaults < file < profile file < inline < environment) and the exact
//! located message of every bad-config case.

use std::path::Path;

use ms_chassis::Config;
use ms_chassis::config::{ConfigError, ConfigLoader};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn load_file(text: &str) -> (tempfile::TempDir, Result<Config, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "config.yaml", text);
    let r = ConfigLoader::new().file(&p).load();
    (dir, r)
}

fn only_error(r: Result<Config, ConfigError>) -> String {
    let e = r.expect_err("config should be rejected");
    assert_eq!(
        e.diagnostics().len(),
        1,
        "expected exactly one problem: {e}"
    );
    e.to_string()
}

#[test]
fn each_layer_overrides_the_one_below() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "config.yaml",
        "server:\n  port: 1001\n  limits: { concurrency: 7, body_size: 1KiB }\nlogging: { level: debug }\n",
    );
    write(
        dir.path(),
        "config.prod.yaml",
        "server:\n  port: 1002\n  limits: { concurrency: 8 }\n",
    );

    // defaults only
    let c = ConfigLoader::new().load().unwrap();
    assert_eq!(c.chassis().server.port, 8080);
    assert_eq!(c.origin_of("server.port").unwrap(), "embedded defaults");

    // file (a directory works too)
    let c = ConfigLoader::new().file(dir.path()).load().unwrap();
    assert_eq!(c.chassis().server.port, 1001);
    assert_eq!(c.chassis().server.limits.body_size, 1024);
    assert_eq!(c.chassis().logging.level, "debug");
    let file = dir.path().join("config.yaml");
    assert_eq!(
        c.origin_of("server.port").unwrap(),
        format!("{}:2", file.display())
    );

    // profile file over file, deep-merged: body_size survives from the base file
    let c = ConfigLoader::new()
        .file(dir.path())
        .profile("prod")
        .load()
        .unwrap();
    assert_eq!(c.chassis().server.port, 1002);
    assert_eq!(c.chassis().server.limits.concurrency, 8);
    assert_eq!(c.chassis().server.limits.body_size, 1024);
    assert_eq!(c.profile(), Some("prod"));

    // inline YAML over the profile
    let c = ConfigLoader::new()
        .file(dir.path())
        .profile("prod")
        .yaml("server: { port: 1003 }")
        .load()
        .unwrap();
    assert_eq!(c.chassis().server.port, 1003);

    // environment over everything; other variables are ignored
    let c = ConfigLoader::new()
        .file(dir.path())
        .profile("prod")
        .yaml("server: { port: 1003 }")
        .env_vars([
            ("MS__SERVER__PORT", "1004"),
            ("MS__SERVER__LIMITS__REQUEST_TIMEOUT", "250ms"),
            ("PATH", "/bin"),
        ])
        .load()
        .unwrap();
    assert_eq!(c.chassis().server.port, 1004);
    assert_eq!(
        c.chassis().server.limits.request_timeout,
        std::time::Duration::from_millis(250)
    );
    assert_eq!(c.chassis().server.limits.concurrency, 8);
    assert_eq!(
        c.origin_of("server.port").unwrap(),
        "environment variable MS__SERVER__PORT"
    );
}

#[test]
fn app_section_is_the_users_own_type() {
    #[derive(serde::Deserialize)]
    struct App {
        greeting: String,
        retries: u32,
    }
    let c = ConfigLoader::new()
        .yaml("app:\n  greeting: hi\n  retries: 3\n")
        .env_vars([("MS__APP__RETRIES", "5")])
        .load()
        .unwrap();
    let app: App = c.app().unwrap();
    assert_eq!((app.greeting.as_str(), app.retries), ("hi", 5));

    // A type error in the user's section is located too.
    let c = ConfigLoader::new()
        .yaml("app:\n  greeting: hi\n  retries: lots\n")
        .load()
        .unwrap();
    let e = c.app::<App>().err().unwrap().to_string();
    assert_eq!(
        e,
        "inline config:3: app.retries: expected u32, found string \"lots\""
    );
}

#[test]
fn missing_file_named_explicitly() {
    let e = only_error(
        ConfigLoader::new()
            .file("/nonexistent/dir/config.yaml")
            .load(),
    );
    assert_eq!(
        e,
        "/nonexistent/dir/config.yaml: config file not found (named by the config file setting)"
    );
}

#[test]
fn missing_default_file_is_fine() {
    // from_env without MS_CONFIG_FILE looks for ./config.yaml and runs on defaults if absent;
    // the test binary runs in the crate directory, which has none.
    assert!(!Path::new("config.yaml").exists());
    let c = ConfigLoader::new().load().unwrap();
    assert_eq!(c.chassis().server.host.to_string(), "127.0.0.1");
}

#[test]
fn invalid_yaml_names_file_and_line() {
    let (dir, r) = load_file("server:\n  port: 80\n  host: [unclosed\n");
    let e = only_error(r);
    let prefix = format!("{}:", dir.path().join("config.yaml").display());
    assert!(e.starts_with(&prefix), "{e}");
    assert!(e.contains("invalid YAML"), "{e}");
}

#[test]
fn wrong_type() {
    let (dir, r) = load_file("logging:\n  access: maybe\n");
    assert_eq!(
        only_error(r),
        format!(
            "{}:2: logging.access: expected a boolean, found string \"maybe\"",
            dir.path().join("config.yaml").display()
        )
    );
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let (dir, r) = load_file("server:\n  host: 127.0.0.1\n  prot: 80\n");
    let e = only_error(r);
    assert!(
        e.starts_with(&format!(
            "{}:3: server.prot: unknown key in `server`; did you mean `port`?",
            dir.path().join("config.yaml").display()
        )),
        "{e}"
    );
    let (_dir, r) = load_file("sever:\n  port: 80\n");
    assert!(only_error(r).contains("sever: unknown top-level section; did you mean `server`?"));
}

#[test]
fn port_out_of_range_and_not_a_number() {
    let (dir, r) = load_file("server:\n  port: 70000\n");
    let file = dir.path().join("config.yaml");
    assert_eq!(
        only_error(r),
        format!(
            "{}:2: server.port: expected an integer 0-65535, found 70000",
            file.display()
        )
    );
    let (dir, r) = load_file("server:\n  port: eighty\n");
    let file = dir.path().join("config.yaml");
    assert_eq!(
        only_error(r),
        format!(
            "{}:2: server.port: expected an integer 0-65535, found \"eighty\"",
            file.display()
        )
    );
    let r = ConfigLoader::new()
        .env_vars([("MS__SERVER__PORT", "eighty")])
        .load();
    assert_eq!(
        only_error(r),
        "environment variable MS__SERVER__PORT: server.port: expected an integer 0-65535, found \"eighty\""
    );
}

#[test]
fn bad_duration() {
    let (dir, r) = load_file("server:\n  limits:\n    request_timeout: 30 parsecs\n");
    assert_eq!(
        only_error(r),
        format!(
            "{}:3: server.limits.request_timeout: expected a duration such as 30s, 250ms or 5m, found \"30 parsecs\"",
            dir.path().join("config.yaml").display()
        )
    );
}

#[test]
fn bad_log_level_and_several_unknown_keys_are_all_reported() {
    let r = ConfigLoader::new()
        .yaml("logging: { level: loud }\nmetrics: { enabld: true, pth: /m }\n")
        .load();
    let e = r.unwrap_err();
    let keys: Vec<_> = e
        .diagnostics()
        .iter()
        .map(|d| d.key.clone().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["metrics.enabld", "metrics.pth", "logging.level"],
        "{e}"
    );
}

#[test]
fn a_type_error_and_a_typo_are_reported_together() {
    let e = ConfigLoader::new()
        .yaml("server:\n  prot: 80\n  limits: { request_timeout: 30 parsecs }\n")
        .load()
        .unwrap_err();
    let keys: Vec<_> = e
        .diagnostics()
        .iter()
        .map(|d| d.key.clone().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["server.prot", "server.limits.request_timeout"],
        "{e}"
    );
}

#[test]
fn management_port_must_differ() {
    let e = only_error(
        ConfigLoader::new()
            .yaml("server: { port: 9000, management: { port: 9000 } }")
            .load(),
    );
    assert!(
        e.contains("server.management.port: must differ from server.port (9000)"),
        "{e}"
    );
}

#[test]
fn host_must_be_an_ip_address() {
    let (dir, r) = load_file("server:\n  host: nohost\n");
    assert_eq!(
        only_error(r),
        format!(
            "{}:2: server.host: expected an IP address such as 127.0.0.1, 0.0.0.0 or ::, found \"nohost\" \
             (host names are not resolved; write 127.0.0.1 for localhost)",
            dir.path().join("config.yaml").display()
        )
    );
    let c = ConfigLoader::new()
        .yaml("server: { host: '::1' }")
        .load()
        .unwrap();
    assert_eq!(c.chassis().server.host.to_string(), "::1");
}
