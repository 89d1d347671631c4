//! `/metrics` over a real socket: RED metrics labelled by route template, the fixed
//! `unmatched` label, standard process metrics, build info, user metrics, the disabled
//! switch, and a clean `promtool check metrics` (load shedding's families included).

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ms_chassis::axum::Router;
use ms_chassis::axum::extract::Path;
use ms_chassis::axum::routing::get;
use ms_chassis::metrics::prometheus::IntCounter;
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;

const DURATION: &str = "http_server_request_duration_seconds";

fn router() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/books/{id}",
            get(|Path(id): Path<String>| async move { format!("book {id}") }),
        )
}

/// One sample line: `name{label="value",...} value [timestamp]`.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    /// Labels in the order they were written.
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed text-format 0.0.4 exposition.
#[derive(Debug, Default)]
struct Exposition {
    /// `# TYPE` per metric family.
    types: BTreeMap<String, String>,
    /// `# HELP` per metric family.
    helps: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    fn parse(body: &str) -> Self {
        let mut out = Self::default();
        for (n, line) in body.lines().enumerate() {
            let n = n + 1;
            if line.trim().is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, ty) = rest
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("line {n}: malformed TYPE line: {line:?}"));
                out.types.insert(name.to_owned(), ty.to_owned());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("line {n}: malformed HELP line: {line:?}"));
                out.helps.insert(name.to_owned(), help.to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            out.samples.push(
                parse_sample(line)
                    .unwrap_or_else(|e| panic!("line {n}: {e}: {line:?}\n--- body ---\n{body}")),
            );
        }
        out
    }

    /// Samples named `name` whose labels include every pair in `want`.
    fn find(&self, name: &str, want: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name && want.iter().all(|(k, v)| s.label(k) == Some(*v)))
            .collect()
    }

    /// The value of the single sample named `name` with labels `want`; panics unless there
    /// is exactly one.
    fn value(&self, name: &str, want: &[(&str, &str)], body: &str) -> f64 {
        match self.find(name, want).as_slice() {
            [one] => one.value,
            other => panic!(
                "expected exactly one `{name}` sample with labels {want:?}, found {}: {other:?}\n\
                 --- body ---\n{body}",
                other.len()
            ),
        }
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| "no value after metric name".to_owned())?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let mut chars = after_brace.char_indices().peekable();
        let consumed = loop {
            // Label name, or the closing brace.
            let Some(&(start, c)) = chars.peek() else {
                return Err("unterminated label set".to_owned());
            };
            if c == '}' {
                break start + 1;
            }
            let key_end = loop {
                match chars.peek() {
                    None => return Err("unterminated label name".to_owned()),
                    Some(&(i, '=')) => break i,
                    Some(&(_, c)) if c.is_ascii_alphanumeric() || c == '_' => {
                        chars.next();
                    }
                    Some(&(_, c)) => return Err(format!("invalid character {c:?} in label name")),
                }
            };
            let key = after_brace[start..key_end].to_owned();
            if key.is_empty() {
                return Err("empty label name".to_owned());
            }
            chars.next(); // '='
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key} value is not quoted"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated value for label {key}")),
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?} in label {key}")),
                    },
                    Some((_, c)) => value.push(c),
                }
            }
            labels.push((key, value));
            match chars.next() {
                Some((_, ',')) => {}
                Some((i, '}')) => {
                    break i + 1;
                }
                other => return Err(format!("expected `,` or `}}`, found {other:?}")),
            }
        };
        rest = &after_brace[consumed..];
    }
    let mut fields = rest.split_ascii_whitespace();
    let raw = fields.next().ok_or_else(|| "missing value".to_owned())?;
    let value = match raw {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|e| format!("bad value {v:?}: {e}"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|e| format!("bad timestamp {ts:?}: {e}"))?;
    }
    if let Some(extra) = fields.next() {
        return Err(format!("trailing field {extra:?}"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[test]
fn the_parser_reads_labels_escapes_and_special_values() {
    let e = Exposition::parse(
        "# HELP a_total A.\n# TYPE a_total counter\n\
         a_total{x=\"1\",y=\"q\\\"uo,te}\\\\\"} 3\n\
         b 1.5e3\n\
         c_bucket{le=\"+Inf\"} +Inf 1700000000000\n",
    );
    assert_eq!(e.types["a_total"], "counter");
    assert_eq!(e.helps["a_total"], "A.");
    assert_eq!(e.samples.len(), 3);
    assert_eq!(e.samples[0].label("y"), Some("q\"uo,te}\\"));
    assert_eq!(e.samples[0].value, 3.0);
    assert_eq!(e.samples[1].name, "b");
    assert!(e.samples[1].labels.is_empty());
    assert_eq!(e.samples[1].value, 1500.0);
    assert_eq!(e.samples[2].label("le"), Some("+Inf"));
    assert!(e.samples[2].value.is_infinite());
    assert!(parse_sample("x{a=1} 2").is_err());
    assert!(parse_sample("x{a=\"1\"").is_err());
    assert!(parse_sample("x{a=\"1\"}").is_err());
    assert!(parse_sample("x 1 2 3").is_err());
}

/// Scrapes `/metrics`, asserting a 200; returns the content type and the body.
async fn scrape(client: &reqwest::Client, url: &str) -> (String, String) {
    let res = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(res.status(), StatusCode::OK, "GET /metrics status");
    let ct = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().expect("content type is ASCII").to_owned())
        .unwrap_or_default();
    (ct, res.text().await.expect("metrics body"))
}

async fn get_status(client: &reqwest::Client, url: &str, path: &str) -> StatusCode {
    client
        .get(format!("{url}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .status()
}

/// The traffic every scrape test sends: 3× GET /hello, two books, one unmatched path, and a
/// POST to a GET-only route.
async fn send_traffic(client: &reqwest::Client, url: &str) {
    for _ in 0..3 {
        assert_eq!(get_status(client, url, "/hello").await, StatusCode::OK);
    }
    assert_eq!(get_status(client, url, "/books/1").await, StatusCode::OK);
    assert_eq!(get_status(client, url, "/books/2").await, StatusCode::OK);
    assert_eq!(
        get_status(client, url, "/does/not/exist/123").await,
        StatusCode::NOT_FOUND
    );
    let post = client
        .post(format!("{url}/hello"))
        .send()
        .await
        .expect("POST /hello");
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_metrics_use_route_templates_and_standard_names() {
    let svc = support::start("service: { name: metrics-test, version: 1.2.3 }", router()).await;
    let client = support::client();
    send_traffic(&client, &svc.url).await;

    let (ct, body) = scrape(&client, &svc.url).await;
    assert!(
        ct.starts_with("text/plain") && ct.contains("version=0.0.4"),
        "content type should be Prometheus text 0.0.4, got {ct:?}"
    );
    let e = Exposition::parse(&body);

    // Every sample's labels are written in alphabetical order.
    for s in &e.samples {
        let names: Vec<&str> = s.labels.iter().map(|(k, _)| k.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(
            names, sorted,
            "labels of {s:?} are not in alphabetical order"
        );
    }

    // The request duration histogram, exactly as Prometheus users will query it.
    assert_eq!(
        e.types.get(DURATION).map(String::as_str),
        Some("histogram"),
        "TYPE of {DURATION}\n--- body ---\n{body}"
    );
    assert!(
        body.lines().any(|l| l
            == "http_server_request_duration_seconds_count{http_request_method=\"GET\",\
                http_response_status_code=\"200\",http_route=\"/hello\"} 3"),
        "the exact /hello count line is missing\n--- body ---\n{body}"
    );
    let count = format!("{DURATION}_count");
    let get_ok = |route| {
        [
            ("http_request_method", "GET"),
            ("http_response_status_code", "200"),
            ("http_route", route),
        ]
    };
    assert_eq!(e.value(&count, &get_ok("/hello"), &body), 3.0);
    assert_eq!(e.value(&count, &get_ok("/books/{id}"), &body), 2.0);
    // Buckets are cumulative and end in +Inf with the full count.
    assert_eq!(
        e.value(
            &format!("{DURATION}_bucket"),
            &[
                ("http_request_method", "GET"),
                ("http_route", "/books/{id}"),
                ("le", "+Inf")
            ],
            &body
        ),
        2.0
    );
    let sum = e.value(&format!("{DURATION}_sum"), &get_ok("/hello"), &body);
    assert!(
        sum.is_finite() && sum >= 0.0,
        "duration sum for /hello should be a non-negative number of seconds, got {sum}"
    );
    let le: Vec<&str> = e
        .find(&format!("{DURATION}_bucket"), &get_ok("/hello"))
        .iter()
        .map(|s| s.label("le").expect("bucket has le"))
        .collect();
    assert_eq!(
        le,
        [
            "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1", "2.5",
            "5", "7.5", "10", "+Inf"
        ],
        "OTel advisory buckets"
    );

    // Unmatched paths get the fixed label, never the raw path.
    assert_eq!(
        e.value(
            &count,
            &[
                ("http_request_method", "GET"),
                ("http_response_status_code", "404"),
                ("http_route", "unmatched"),
            ],
            &body
        ),
        1.0
    );
    // A wrong method on a known path is still that route.
    assert_eq!(
        e.value(
            &count,
            &[
                ("http_request_method", "POST"),
                ("http_response_status_code", "405"),
                ("http_route", "/hello"),
            ],
            &body
        ),
        1.0
    );
    for raw in [
        "/books/1",
        "/books/2",
        "/does/not/exist",
        "/does/not/exist/123",
    ] {
        assert!(
            !body.contains(raw),
            "raw path {raw:?} leaked into the exposition\n--- body ---\n{body}"
        );
    }
    let routes: std::collections::BTreeSet<&str> = e
        .samples
        .iter()
        .filter_map(|s| s.label("http_route"))
        .collect();
    assert_eq!(
        routes,
        ["/books/{id}", "/hello", "unmatched"].into_iter().collect(),
        "http_route label values"
    );
    // /metrics itself is served outside the user stack and is not counted.
    assert!(
        e.find(&count, &[("http_route", "/metrics")]).is_empty(),
        "the scrape endpoint should not be counted"
    );

    // In-flight gauge: present, and nothing in flight once responses have been received.
    assert_eq!(
        e.types
            .get("http_server_active_requests")
            .map(String::as_str),
        Some("gauge")
    );
    assert_eq!(e.value("http_server_active_requests", &[], &body), 0.0);

    // Build info.
    let build = e.find("ms_chassis_build_info", &[]);
    assert_eq!(build.len(), 1, "ms_chassis_build_info samples: {build:?}");
    assert_eq!(build[0].value, 1.0);
    assert_eq!(build[0].label("version"), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(build[0].label("service"), Some("metrics-test"));
    assert_eq!(build[0].label("service_version"), Some("1.2.3"));
    assert_eq!(
        e.types.get("ms_chassis_build_info").map(String::as_str),
        Some("gauge")
    );

    // Standard process metrics (Linux).
    if cfg!(target_os = "linux") {
        let rss = e.value("process_resident_memory_bytes", &[], &body);
        assert!(rss > 1024.0 * 1024.0, "resident memory {rss} bytes");
        let cpu = e.value("process_cpu_seconds_total", &[], &body);
        assert!(cpu >= 0.0 && cpu.is_finite(), "cpu seconds {cpu}");
        assert_eq!(
            e.types.get("process_cpu_seconds_total").map(String::as_str),
            Some("counter")
        );
        let fds = e.value("process_open_fds", &[], &body);
        assert!(fds >= 3.0, "open fds {fds}");
        let start = e.value("process_start_time_seconds", &[], &body);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs_f64();
        assert!(
            start <= now + 1.0 && start > now - 24.0 * 3600.0,
            "process_start_time_seconds {start} should be a recent Unix time (now {now})"
        );
    }

    svc.running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_counter_registered_on_the_service_is_exposed() {
    let mut orders: Option<IntCounter> = None;
    let svc = support::start_with("", router(), |svc| {
        orders = Some(
            svc.metrics()
                .counter("orders_placed_total", "Orders placed.")
                .expect("counter registers"),
        );
    })
    .await;
    let orders = orders.expect("setup ran");
    let client = support::client();

    let (_, body) = scrape(&client, &svc.url).await;
    let e = Exposition::parse(&body);
    assert_eq!(e.value("orders_placed_total", &[], &body), 0.0);

    orders.inc();
    orders.inc_by(4);
    let (_, body) = scrape(&client, &svc.url).await;
    let e = Exposition::parse(&body);
    assert_eq!(e.value("orders_placed_total", &[], &body), 5.0);
    assert_eq!(
        e.types.get("orders_placed_total").map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        e.helps.get("orders_placed_total").map(String::as_str),
        Some("Orders placed.")
    );

    svc.running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_metrics_have_no_endpoint() {
    let svc = support::start("metrics: { enabled: false }", router()).await;
    let client = support::client();
    // The service itself is up.
    assert_eq!(
        get_status(&client, &svc.url, "/hello").await,
        StatusCode::OK
    );
    assert_eq!(
        get_status(&client, &svc.url, "/metrics").await,
        StatusCode::NOT_FOUND
    );
    svc.running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_passes_promtool_check_metrics() {
    let promtool = support::require_tool("promtool", "apt-get install -y prometheus");
    // Client metrics too: a downstream that answers, and one that refuses connections.
    let downstream = support::start("", router()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // And load shedding on, so that its families are linted too.
    let yaml = format!(
        "clients:\n  up: {{ url: '{}' }}\n  down: {{ url: 'http://{closed}', retry: {{ enabled: false }} }}\n\
         resilience: {{ load_shedding: {{ enabled: true }} }}\n",
        downstream.url
    );
    let clients = std::sync::Mutex::new(Vec::new());
    let svc = support::start_with(&yaml, router(), |s| {
        for name in ["up", "down"] {
            clients.lock().unwrap().push(s.client(name).unwrap());
        }
    })
    .await;
    for c in clients.into_inner().unwrap() {
        for path in ["/hello", "/nope"] {
            let _ = c.get(path).send().await;
        }
    }
    let client = support::client();
    send_traffic(&client, &svc.url).await;
    let (_, body) = scrape(&client, &svc.url).await;
    for family in [
        "http_server_request_duration_seconds_bucket",
        "http_client_request_duration_seconds_bucket",
        "ms_chassis_circuit_breaker_state",
        "ms_chassis_bulkhead_active_calls",
        "ms_chassis_load_shedding_limit{name=\"server\"} 20",
        "ms_chassis_load_shedding_latency_seconds{estimate=\"short\",name=\"server\"}",
    ] {
        assert!(
            body.contains(family),
            "scrape should contain {family} before linting\n--- body ---\n{body}"
        );
    }

    let mut child = tokio::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", promtool.display()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(body.as_bytes())
        .await
        .expect("write scrape to promtool");
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("promtool finishes within 60 s")
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "`promtool check metrics` failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n\
         --- scrape ---\n{body}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );

    svc.running.shutdown().await.expect("clean shutdown");
    downstream.running.shutdown().await.expect("clean shutdown");
}
