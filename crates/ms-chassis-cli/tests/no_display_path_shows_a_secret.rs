//! The redaction walk: one config full of secrets, shown through every path the chassis
//! has for showing config, and not one secret in any of them.
//!
//! The secrets: `enc_` values made with a real key (in the file, in a list, and in an
//! `MS__` override), passwords in URLs, `tracing.headers` (an authorization header and a
//! vendor's API-key header, one from the file and one from the environment), and `app`
//! keys named password, token, api_key, cookie, set-cookie and proxy-authorization. Every
//! plaintext contains the marker `s3cret`, and every Fernet token starts `gAAAAA`, so a
//! leak of any of them, whole or in part, is caught by looking for those.
//!
//! The paths: `ms-chassis config check --print` (the real binary, YAML and JSON, and its
//! errors), `GET /admin/config` and the other admin endpoints of a real service over a
//! socket (with the admin token, and without), a rejected `POST /admin/config/reload`,
//! `Debug` of `Config`, `ConfigLoader`, `ServiceBuilder`, `Service` and `HttpClient`,
//! and config error messages: type errors on secret keys, unknown keys beside secrets, a
//! token made with another key, and `Config::get` of a secret as the wrong type.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use ms_chassis::Service;
use ms_chassis::axum::Router;
use ms_chassis::config::{ConfigLoader, SecretKey};

/// In every plaintext secret below, and nowhere else.
const MARKER: &str = "s3cret";
/// How every Fernet token starts.
const TOKEN_START: &str = "gAAAAA";
const ADMIN_TOKEN: &str = "admin-token-s3cret";
/// A numeric API key given in the environment (it reads as an integer).
const NUMERIC_KEY: &str = "9876543210123";

/// The key file, its key, and the directory holding both it and `config.yaml`.
struct Setup {
    dir: tempfile::TempDir,
    key_path: PathBuf,
    key: SecretKey,
    /// The text of the key file: key material, never to be shown either.
    key_text: String,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("key.key");
        let key_text = SecretKey::generate();
        std::fs::write(&key_path, &key_text).unwrap();
        let key = SecretKey::from_file(&key_path).unwrap();
        Setup {
            dir,
            key_path,
            key,
            key_text: key_text.trim().to_owned(),
        }
    }

    fn enc(&self, plaintext: &str) -> String {
        self.key.encrypt(plaintext.as_bytes())
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    /// Writes `config.yaml`: the secrets, plus `extra` lines at the end.
    fn write_config(&self, extra: &str) {
        let text = format!(
            "service: {{ name: walk }}\n\
             server: {{ host: 127.0.0.1, port: 0, shutdown: {{ drain_delay: 0s, grace: 5s }} }}\n\
             admin:\n  enc_token: {admin}\n\
             tracing:\n  \
               endpoint: http://otel:otel-url-s3cret@127.0.0.1:4317\n  \
               headers:\n    \
                 authorization: \"Bearer trace-bearer-s3cret\"\n    \
                 x-honeycomb-team: honeycomb-s3cret\n\
             clients:\n  books:\n    url: http://books:books-url-s3cret@127.0.0.1:9/api\n\
             app:\n  \
               db:\n    \
                 url: postgres://books:db-url-s3cret@db:5432/books\n    \
                 enc_password: {db}\n  \
               password: plain-password-s3cret\n  \
               token: plain-token-s3cret\n  \
               api_key: plain-api-key-s3cret\n  \
               cookie: session=cookie-s3cret\n  \
               set-cookie: sid=set-cookie-s3cret\n  \
               upstream:\n    \
                 Proxy-Authorization: Basic proxy-s3cret\n    \
                 headers: {{ x-custom: upstream-header-s3cret }}\n  \
               signers:\n    - {{ name: first, enc_value: {listed} }}\n\
             {extra}",
            admin = self.enc(ADMIN_TOKEN),
            db = self.enc("db-enc-s3cret"),
            listed = self.enc("listed-enc-s3cret"),
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// The `MS_*` environment: overrides carrying secrets, and the key file.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("MS__APP__ENV_TOKEN".into(), "env-token-s3cret".into()),
            (
                "MS__TRACING__HEADERS__X_API_KEY".into(),
                "env-header-s3cret".into(),
            ),
            ("MS__APP__ENC_SIGNING".into(), self.enc("env-enc-s3cret")),
            (
                "MS__APP__PROXY__PROXY_AUTHORIZATION".into(),
                "Basic env-proxy-s3cret".into(),
            ),
            ("MS_KEY_FILE".into(), self.key_path.display().to_string()),
        ]
    }

    fn loader(&self) -> ConfigLoader {
        ConfigLoader::new()
            .file(self.config_path())
            .env_vars(self.env())
            .key_file(&self.key_path)
    }

    /// Asserts that `shown` (from `path`) holds no secret: no plaintext, token or key.
    fn assert_clean(&self, path: &str, shown: &str) {
        for secret in [MARKER, TOKEN_START, NUMERIC_KEY, &self.key_text] {
            assert!(!shown.contains(secret), "{path} shows {secret:?}:\n{shown}");
        }
    }

    /// The CLI in the config's directory, with a clean environment plus [`Self::env`].
    fn cli(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ms-chassis"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .envs(self.env())
            .env("MS_CONFIG_FILE", self.config_path())
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The line of `printed` YAML that sets `key`, without its origin comment.
fn yaml_line<'a>(printed: &'a str, key: &str) -> &'a str {
    printed
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in:\n{printed}"))
        .split(" #")
        .next()
        .unwrap()
        .trim()
}

#[test]
fn config_check_print_shows_no_secret() {
    let s = Setup::new();
    s.write_config("");
    let out = s.cli(&["config", "check", "--print"], &[]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    s.assert_clean("config check --print", &shown);
    let printed = String::from_utf8(out.stdout).unwrap();
    // The secrets' keys are all there, redacted: the view is complete, not empty.
    for key in [
        "authorization",
        "x-honeycomb-team",
        "x_api_key",
        "password",
        "token",
        "api_key",
        "cookie",
        "set-cookie",
        "Proxy-Authorization",
        "proxy_authorization",
        "x-custom",
        "env_token",
        "signing",
        "value",
    ] {
        assert_eq!(
            yaml_line(&printed, key),
            format!("{key}: \"<redacted>\""),
            "{printed}"
        );
    }
    assert_eq!(
        yaml_line(&printed, "endpoint"),
        "endpoint: \"http://otel:<redacted>@127.0.0.1:4317\""
    );
    assert!(printed.contains("# environment variable MS__TRACING__HEADERS__X_API_KEY"));

    let out = s.cli(&["config", "check", "--print", "--format", "json"], &[]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    s.assert_clean("config check --print --format json", &shown);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["config"]["tracing"]["headers"],
        serde_json::json!({
            "authorization": "<redacted>",
            "x-honeycomb-team": "<redacted>",
            "x_api_key": "<redacted>",
        })
    );
    assert_eq!(
        doc["config"]["clients"]["books"]["url"],
        "http://books:<redacted>@127.0.0.1:9/api"
    );
}

#[test]
fn config_errors_beside_secrets_show_no_secret() {
    let s = Setup::new();
    // A type error on a decrypted value, on a header and on the admin token's neighbour;
    // unknown keys beside secrets; a numeric API key from the environment.
    s.write_config(&format!(
        "logging:\n  enc_access: {}\n  acess: typo-s3cret\n",
        s.enc("not-a-bool-s3cret")
    ));
    let numeric = [("MS__TRACING__HEADERS__X_API_KEY", NUMERIC_KEY)];
    let out = s.cli(&["config", "check", "--print"], &numeric);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    s.assert_clean("config check errors", &shown);
    for expected in [
        "logging.access: expected a boolean, found string <redacted>",
        "logging.acess: unknown key in `logging`; did you mean `access`?",
        "environment variable MS__TRACING__HEADERS__X_API_KEY: tracing.headers.x_api_key: \
         expected a string, found integer <redacted>",
    ] {
        assert!(shown.contains(expected), "no {expected:?} in\n{shown}");
    }

    // The same through the library, which the service prints at startup.
    let e = s
        .loader()
        .env_vars(
            s.env()
                .into_iter()
                .chain(numeric.map(|(k, v)| (k.to_owned(), v.to_owned()))),
        )
        .load()
        .unwrap_err();
    assert_eq!(e.diagnostics().len(), 3, "{e}");
    s.assert_clean("ConfigError Display", &e.to_string());
    s.assert_clean("ConfigError Debug", &format!("{e:?}"));

    // A token made with another key: the error names the key, not the token.
    let other = Setup::new();
    s.write_config(&format!("  enc_other: {}\n", other.enc("other-key-s3cret")));
    let e = s.loader().load().unwrap_err();
    assert!(
        e.to_string().contains("app.enc_other: cannot decrypt"),
        "{e}"
    );
    s.assert_clean("wrong key error", &format!("{e}\n{e:?}"));

    // Unknown keys beside secrets in a chassis section.
    s.write_config("");
    let e = s
        .loader()
        .yaml(
            "tracing: { headrs: { authorization: Bearer typo-s3cret } }\nadmin: { tokn: t-s3cret }",
        )
        .load()
        .unwrap_err();
    assert_eq!(e.diagnostics().len(), 2, "{e}");
    s.assert_clean("unknown keys", &format!("{e}\n{e:?}"));

    // Reading a secret as the wrong type.
    let config = s.loader().load().unwrap();
    for key in [
        "app.password",
        "app.db.password",
        "app.cookie",
        "tracing.headers",
    ] {
        let e = config.get::<u64>(key).unwrap_err();
        assert!(e.to_string().contains(key), "{e}");
        s.assert_clean(&format!("get::<u64>({key})"), &format!("{e}\n{e:?}"));
    }
}

#[tokio::test]
async fn debug_and_admin_endpoints_of_a_running_service_show_no_secret() {
    let s = Setup::new();
    s.write_config("");
    let config = s.loader().load().unwrap();
    s.assert_clean("Config Debug", &format!("{config:?}\n{config:#?}"));
    let loader = s.loader().yaml("app: { inline_password: inline-s3cret }");
    s.assert_clean("ConfigLoader Debug", &format!("{loader:?}\n{loader:#?}"));
    let builder = Service::builder_from(loader);
    s.assert_clean(
        "ServiceBuilder Debug",
        &format!("{builder:?}\n{builder:#?}"),
    );
    let svc = builder.build().unwrap();
    s.assert_clean("Service Debug", &format!("{svc:?}\n{svc:#?}"));
    let books = svc.client("books").unwrap();
    s.assert_clean("HttpClient Debug", &format!("{books:?}"));
    assert!(
        format!("{svc:?}").contains("<redacted>"),
        "the config is in it"
    );

    let running = svc.start(Router::new()).await.unwrap();
    let base = format!("http://{}", running.local_addr());
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let get = |path: &str, token: Option<&str>| {
        let mut req = http.get(format!("{base}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.text().await.unwrap())
        }
    };

    let (status, body) = get("/admin/config", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    s.assert_clean("GET /admin/config", &body);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["tracing"]["headers"]["authorization"], "<redacted>");
    assert_eq!(doc["app"]["db"]["password"], "<redacted>");
    assert_eq!(doc["admin"]["token"], "<redacted>");
    assert_eq!(doc["app"]["inline_password"], "<redacted>");
    for (path, token) in [
        ("/admin/config", None),
        ("/admin/config", Some("wrong")),
        ("/admin/info", None),
        ("/admin/breakers", Some(ADMIN_TOKEN)),
        ("/admin/loggers", Some(ADMIN_TOKEN)),
        ("/health", None),
    ] {
        let (status, body) = get(path, token).await;
        assert!(status < 500, "{path}: {status} {body}");
        s.assert_clean(&format!("GET {path}"), &body);
    }

    // A reload the new file fails: the error it answers with shows no secret either.
    s.write_config(&format!(
        "logging: {{ enc_access: {} }}\n",
        s.enc("reload-bool-s3cret")
    ));
    let res = http
        .post(format!("{base}/admin/config/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(body.contains("logging.access"), "{body}");
    s.assert_clean("POST /admin/config/reload", &body);
    running.shutdown().await.unwrap();
}
