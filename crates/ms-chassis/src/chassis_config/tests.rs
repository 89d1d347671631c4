//! The chassis's sections as a user's config meets them: inheritance, every error at
//! once, and where each came from.

use super::*;

#[test]
fn the_effective_config_shows_every_client_key_and_where_it_came_from() {
    let cfg = ConfigLoader::new()
        .yaml(
            "clients:\n  books:\n    url: http://books:8080\n    timeout: 3s\n    \
             retry: { max_attempts: 5 }\n",
        )
        .load()
        .unwrap();
    let books = &cfg.redacted()["clients"]["books"];
    assert_eq!(books["timeout"], "3s", "written: kept as written");
    assert_eq!(books["connect_timeout"], "1s", "left out: its default");
    assert_eq!(books["retry"]["max_attempts"], 5);
    assert_eq!(books["retry"]["enabled"], true);
    assert_eq!(books["rate_limit"]["enabled"], false);
    assert_eq!(books["pool"]["max_idle_per_host"], 32);
    let origins = cfg.leaf_origins();
    assert_eq!(origins["clients.books.timeout"], "inline config:4");
    assert_eq!(
        origins["clients.books.retry.max_attempts"],
        "inline config:5"
    );
    assert_eq!(
        origins["clients.books.connect_timeout"],
        "embedded defaults"
    );
    assert_eq!(origins["clients.books.retry.enabled"], "embedded defaults");
    assert_eq!(
        origins["clients.books.pool.idle_timeout"],
        "embedded defaults"
    );
    let yaml = cfg.annotated_yaml();
    assert!(
        yaml.lines()
            .any(|l| l.contains("connect_timeout: 1s") && l.ends_with("# embedded defaults")),
        "{yaml}"
    );
}

#[test]
fn every_client_inherits_what_it_leaves_out_from_clients_default() {
    let cfg = ConfigLoader::new()
        .yaml(
            "clients:\n  default:\n    timeout: 3s\n    retry: { max_attempts: 5 }\n    \
             propagate_headers: [x-tenant-id]\n  books:\n    url: http://books\n    \
             timeout: 1s\n    propagate_headers: []\n  authors:\n    url: http://authors\n",
        )
        .env_vars([("MS__CLIENTS__DEFAULT__CONNECT_TIMEOUT", "250ms")])
        .load()
        .unwrap();
    let clients = &cfg.chassis().clients;
    let (books, authors) = (&clients["books"], &clients["authors"]);
    use std::time::Duration;
    assert_eq!(books.timeout, Duration::from_secs(1), "its own value wins");
    assert_eq!(authors.timeout, Duration::from_secs(3), "inherited");
    assert_eq!(
        books.retry.config.max_attempts, 5,
        "inherited inside a block"
    );
    assert_eq!(authors.retry.config.max_attempts, 5);
    assert!(books.retry.enabled);
    assert_eq!(
        books.connect_timeout,
        Duration::from_millis(250),
        "from any layer"
    );
    assert!(
        books.propagate_headers.is_empty(),
        "a list replaces, not appends"
    );
    assert_eq!(authors.propagate_headers, ["x-tenant-id"]);
    assert_eq!(authors.url.as_deref(), Some("http://authors"));
    let origins = cfg.leaf_origins();
    assert_eq!(origins["clients.authors.timeout"], "inline config:3");
    assert_eq!(origins["clients.books.timeout"], "inline config:8");
    assert_eq!(
        origins["clients.authors.retry.max_attempts"],
        "inline config:4"
    );
    assert_eq!(
        origins["clients.authors.connect_timeout"],
        "environment variable MS__CLIENTS__DEFAULT__CONNECT_TIMEOUT"
    );
}

#[test]
fn clients_default_is_checked_once_and_holds_no_url() {
    let e = ConfigLoader::new()
        .yaml(
            "clients:\n  default:\n    url: http://everyone\n    timeout: 3 parsecs\n    \
             retry: { max_atempts: 2 }\n  books: { url: http://books }\n  \
             authors: { url: http://authors }\n",
        )
        .load()
        .unwrap_err();
    let keys: Vec<_> = e
        .diagnostics()
        .iter()
        .map(|d| d.key.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        keys,
        [
            "clients.default.retry.max_atempts",
            "clients.default.timeout",
            "clients.default.url"
        ],
        "{e}"
    );
    assert!(e.to_string().contains("inline config:4"), "{e}");
    // A rule broken by a client's own value and an inherited one names the client.
    let e = ConfigLoader::new()
        .yaml(
            "clients:\n  default: { total_timeout: 1s }\n  \
             books: { url: http://books, timeout: 2s }\n",
        )
        .load()
        .unwrap_err();
    assert!(e.to_string().contains("clients.books.total_timeout"), "{e}");
}

#[test]
fn a_type_error_on_a_secret_key_does_not_quote_the_value() {
    let e = ConfigLoader::new()
        .yaml("admin: { token: 123456789 }\ntracing: { headers: { x-api-key: 55667788 } }")
        .env_vars([("MS__TRACING__ENDPOINT", "ftp://u:hunter2@collector")])
        .load()
        .unwrap_err();
    let text = e.to_string();
    for secret in ["123456789", "55667788", "hunter2"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(
        text.contains("admin.token: expected a string, found integer <redacted>"),
        "{text}"
    );
    assert!(
        text.contains("tracing.headers.x-api-key: expected a string"),
        "{text}"
    );
    assert!(text.contains("ftp://u:<redacted>@collector"), "{text}");
    // A user's own key, read with `get`.
    let cfg = ConfigLoader::new()
        .yaml("app: { db: { password: not-a-number } }")
        .load()
        .unwrap();
    let e = cfg.get::<u32>("app.db.password").unwrap_err().to_string();
    assert!(!e.contains("not-a-number"), "{e}");
    assert!(e.contains("app.db.password"), "{e}");
}

#[test]
fn a_map_entry_of_the_wrong_type_is_not_also_unknown() {
    let e = ConfigLoader::new()
        .yaml("tracing: { headers: { x-api-key: 12345, ok: fine } }")
        .load()
        .unwrap_err();
    assert_eq!(e.diagnostics().len(), 1, "{e}");
    assert_eq!(
        e.diagnostics()[0].key.as_deref(),
        Some("tracing.headers.x-api-key")
    );
}

#[test]
fn every_type_error_is_reported_with_typos_and_rules() {
    let e = ConfigLoader::new()
        .yaml(
            "server:\n  port: eighty\n  limits: { request_timeout: 30 parsecs, body_size: 0 }\n\
             logging: { access: maybe, level: loud }\ntracing: { propagation: [w3c], prot: 1 }\n",
        )
        .load()
        .unwrap_err();
    let keys: Vec<_> = e
        .diagnostics()
        .iter()
        .map(|d| d.key.clone().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "tracing.prot",
            "logging.access",
            "server.limits.request_timeout",
            "server.port",
            "tracing.propagation[0]",
            "logging.level",
            "server.limits.body_size",
        ],
        "{e}"
    );
}

#[test]
fn a_rule_about_a_value_dropped_for_its_type_is_not_reported() {
    // server.port is typed as its default (8080) after its type error; the management
    // port rule must not then judge that default.
    let e = ConfigLoader::new()
        .yaml("server: { port: [1], management: { port: 8080 } }")
        .load()
        .unwrap_err();
    assert_eq!(e.diagnostics().len(), 1, "{e}");
}

#[test]
fn load_shedding_rules_name_their_key() {
    let e = ConfigLoader::new()
        .yaml("resilience:\n  load_shedding: { min_limit: 50 }\n  load_shedings: {}\n")
        .load()
        .unwrap_err();
    let found: Vec<_> = e
        .diagnostics()
        .iter()
        .map(|d| (d.key.clone().unwrap(), d.location.clone()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "resilience.load_shedings".to_owned(),
                Some("inline config:3".to_owned())
            ),
            (
                "resilience.load_shedding.initial_limit".to_owned(),
                Some("embedded defaults".to_owned())
            ),
        ],
        "{e}"
    );
    assert!(e.diagnostics()[1].message.contains("min_limit (50)"), "{e}");
    let e = ConfigLoader::new()
        .yaml("resilience: { load_shedding: { smoothing: 2, wndow: 1s } }")
        .load()
        .unwrap_err();
    assert_eq!(
        e.to_string().lines().collect::<Vec<_>>(),
        [
            "inline config:1: resilience.load_shedding.wndow: unknown key in \
             `resilience.load_shedding`; did you mean `window`? (valid: enabled, \
             initial_limit, max_limit, min_limit, retry_after, smoothing, tolerance, window)",
            "inline config:1: resilience.load_shedding.smoothing: expected a number in (0, 1]",
        ]
    );
    // A limit dropped for its type is not also judged against the others.
    let e = ConfigLoader::new()
        .yaml("resilience: { load_shedding: { max_limit: lots, min_limit: 2000 } }")
        .load()
        .unwrap_err();
    assert_eq!(e.diagnostics().len(), 1, "{e}");
    let on = "resilience: { load_shedding: { enabled: true, min_limit: 1, initial_limit: 4 } }";
    let c = ConfigLoader::new().yaml(on).load().unwrap();
    assert!(c.chassis().resilience.load_shedding.enabled);
}

#[test]
fn typo_gets_a_suggestion() {
    let e = ConfigLoader::new()
        .yaml("server:\n  prot: 1\n")
        .load()
        .unwrap_err();
    let d = &e.diagnostics()[0];
    assert_eq!(d.key.as_deref(), Some("server.prot"));
    assert_eq!(d.location.as_deref(), Some("inline config:2"));
    assert!(d.message.contains("did you mean `port`?"), "{e}");
}
