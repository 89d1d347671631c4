//! W3C Trace Context conformance over real sockets, the way the W3C test suite
//! (`test/test.py`) drives a service: a request with trace context headers goes to service
//! A, A calls service B through `svc.client("b")`, and B answers with the trace context
//! headers it received. Both are chassis services on 127.0.0.1, port 0.
//!
//! The story the tests tell: an invalid incoming `tracestate` never reaches B, while a valid
//! one reaches it intact; `tracestate` counts only with a valid `traceparent`, and
//! `traceparent` follows the spec's version rules.

mod support;

use ms_chassis::Service;
use ms_chassis::axum::Json;
use ms_chassis::axum::Router;
use ms_chassis::axum::http::HeaderMap;
use ms_chassis::axum::routing::get;
use serde_json::{Value, json};
use support::{TEST_BASE, TestService};

/// The trace id of every valid `traceparent` the tests send.
const TRACE_ID: &str = "12345678901234567890123456789012";
const TRACEPARENT: &str = "00-12345678901234567890123456789012-1234567890123456-01";

/// What B saw: every `traceparent` and `tracestate` field, in order.
#[derive(Debug)]
struct Seen {
    traceparent: Vec<String>,
    tracestate: Vec<String>,
}

impl Seen {
    /// The one `traceparent` B got; it must be a valid version-00 one.
    fn traceparent(&self) -> &str {
        assert_eq!(self.traceparent.len(), 1, "{self:?}");
        let tp = &self.traceparent[0];
        assert_eq!(tp.len(), 55, "{tp}");
        assert!(tp.starts_with("00-"), "{tp}");
        tp
    }

    fn continues_the_trace(&self) -> bool {
        self.traceparent()[3..35] == *TRACE_ID
    }

    /// The one `tracestate` B got, if any: A never sends it split, empty or twice.
    fn tracestate(&self) -> Option<&str> {
        assert!(self.tracestate.len() <= 1, "{self:?}");
        let ts = self.tracestate.first().map(String::as_str);
        assert_ne!(ts, Some(""), "an empty tracestate is not sent");
        ts
    }
}

/// B: answers with the trace context headers it received.
async fn echo(headers: HeaderMap) -> Json<Value> {
    let all = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ASCII header").to_owned())
            .collect()
    };
    Json(json!({ "traceparent": all("traceparent"), "tracestate": all("tracestate") }))
}

/// Services A and B, A calling B for every request to `/call`.
struct Pair {
    a: ms_chassis::RunningService,
    a_url: String,
    b: TestService,
    http: reqwest::Client,
}

impl Pair {
    async fn start() -> Self {
        let b = support::start(
            "service: { name: b }\n",
            Router::new().route("/seen", get(echo)),
        )
        .await;
        let svc = Service::builder()
            .yaml(TEST_BASE)
            .yaml(format!(
                "service: {{ name: a }}\nclients:\n  b:\n    url: {}\n    retry: {{ enabled: false }}\n",
                b.url
            ))
            .build()
            .expect("config of A");
        let to_b = svc.client("b").expect("client b");
        let router = Router::new().route(
            "/call",
            get(move || {
                let to_b = to_b.clone();
                async move {
                    to_b.get("/seen")
                        .send_json::<Value>()
                        .await
                        .map(Json)
                        .map_err(|e| (e.status_hint(), e.to_string()))
                }
            }),
        );
        let a = svc.start(router).await.expect("A starts");
        let a_url = format!("http://{}", a.local_addr());
        Pair {
            a,
            a_url,
            b,
            http: support::client(),
        }
    }

    /// Sends A a request with `headers` (repeated names are separate fields) and returns
    /// what B received from A.
    async fn send(&self, headers: &[(&str, &str)]) -> Seen {
        let mut req = self.http.get(format!("{}/call", self.a_url));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = req.send().await.expect("A answers");
        assert_eq!(res.status(), 200, "{headers:?}");
        let body: Value = res.json().await.expect("B's JSON through A");
        let strings = |k: &str| -> Vec<String> {
            body[k]
                .as_array()
                .unwrap_or_else(|| panic!("{k} in {body}"))
                .iter()
                .map(|v| v.as_str().expect("string").to_owned())
                .collect()
        };
        Seen {
            traceparent: strings("traceparent"),
            tracestate: strings("tracestate"),
        }
    }

    /// What B received when A got a valid `traceparent` and these `tracestate` fields.
    async fn send_tracestate(&self, fields: &[&str]) -> Seen {
        let mut headers = vec![("traceparent", TRACEPARENT)];
        headers.extend(fields.iter().map(|f| ("tracestate", *f)));
        let seen = self.send(&headers).await;
        assert!(seen.continues_the_trace(), "{fields:?}: {seen:?}");
        seen
    }

    async fn shutdown(self) {
        self.a.shutdown().await.expect("A stops");
        self.b.running.shutdown().await.expect("B stops");
    }
}

fn members(range: std::ops::RangeInclusive<u32>) -> String {
    range
        .map(|i| format!("bar{i:02}={i:02}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test]
async fn an_invalid_tracestate_never_reaches_the_downstream_service() {
    let pair = Pair::start().await;
    let long_key = format!("{}=1", "z".repeat(257));
    let long_value = format!("foo={}", "v".repeat(257));
    let too_many = members(1..=33);
    let cases: Vec<Vec<&str>> = vec![
        vec!["foo=bar=baz"],
        vec!["foo=,bar=3"],
        vec!["@foo=1,bar=2"],
        vec!["FOO=1"],
        vec!["foo =1"],
        vec!["foo.bar=1"],
        vec!["foo=a\tb"],
        vec!["foo"],
        vec!["foo=1", &long_key],
        vec![&long_value],
        vec![&too_many],
        // 33 members over four fields, as the W3C suite sends them.
        vec![
            "bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,bar09=09,bar10=10",
            "bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,bar19=19,bar20=20",
            "bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,bar29=29,bar30=30",
            "bar31=31,bar32=32,bar33=33",
        ],
        // One bad field spoils the combined value.
        vec!["foo=1", "bar"],
    ];
    for fields in &cases {
        let seen = pair.send_tracestate(fields).await;
        assert_eq!(seen.tracestate(), None, "{fields:?} reached B");
    }

    // The same service forwards a valid one intact, before and after.
    let valid = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
    let seen = pair.send_tracestate(&[valid]).await;
    assert_eq!(seen.tracestate(), Some(valid));
    pair.shutdown().await;
}

#[tokio::test]
async fn a_valid_tracestate_reaches_the_downstream_service_intact() {
    let pair = Pair::start().await;
    let all_chars: String = (0x20u8..=0x7E)
        .filter(|c| *c != b',' && *c != b'=')
        .map(char::from)
        .collect();
    let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
    let cases = [
        // The spec's examples.
        "rojo=00f067aa0ba902b7".to_owned(),
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".to_owned(),
        "vendorname1=opaqueValue1,vendorname2=opaqueValue2".to_owned(),
        // Every allowed character, with and without a vendor.
        format!("{key}={all_chars}"),
        format!("{key}@a-z0-9_-*/={all_chars}"),
        // Keys with `@` anywhere after the first character, and of 256 characters.
        "foo@=1,bar=2".to_owned(),
        "foo@@bar=1,bar=2".to_owned(),
        "foo@bar@baz=1,bar=2".to_owned(),
        format!("foo=1,t@{}=1", "v".repeat(15)),
        format!("foo=1,{}=1", "z".repeat(256)),
        format!("foo=1,{}@{}=1", "t".repeat(241), "v".repeat(14)),
        // 32 members.
        members(1..=32),
        // A value's leading space is its own.
        "foo= 1".to_owned(),
    ];
    for state in &cases {
        let seen = pair.send_tracestate(&[state]).await;
        assert_eq!(seen.tracestate(), Some(state.as_str()));
    }
    pair.shutdown().await;
}

#[tokio::test]
async fn repeated_fields_are_combined_and_whitespace_is_dropped() {
    let pair = Pair::start().await;
    let cases: [(&[&str], Option<&str>); 9] = [
        (
            &["foo=1,bar=2", "rojo=1,congo=2", "baz=3"],
            Some("foo=1,bar=2,rojo=1,congo=2,baz=3"),
        ),
        (&["foo=1", ""], Some("foo=1")),
        (&["", "foo=1"], Some("foo=1")),
        (
            &["foo=1 \t , \t bar=2, \t baz=3"],
            Some("foo=1,bar=2,baz=3"),
        ),
        (&["\t foo=1 \t"], Some("foo=1")),
        (&[",foo=1,,bar=2,"], Some("foo=1,bar=2")),
        // A repeated key is sent once, with its first value.
        (&["foo=1", "foo=2"], Some("foo=1")),
        // Empty lists are accepted, and not sent.
        (&[""], None),
        (&[" , "], None),
    ];
    for (fields, want) in cases {
        let seen = pair.send_tracestate(fields).await;
        assert_eq!(seen.tracestate(), want, "{fields:?}");
    }
    // 32 members over four fields, as the W3C suite sends them.
    let seen = pair
        .send_tracestate(&[
            &members(1..=10),
            &members(11..=20),
            &members(21..=30),
            &members(31..=32),
        ])
        .await;
    assert_eq!(seen.tracestate(), Some(members(1..=32).as_str()));
    pair.shutdown().await;
}

#[tokio::test]
async fn tracestate_counts_only_with_a_valid_traceparent() {
    let pair = Pair::start().await;
    // No traceparent: a new trace, and no tracestate.
    let seen = pair.send(&[("tracestate", "foo=1,bar=2")]).await;
    assert!(!seen.continues_the_trace(), "{seen:?}");
    assert_eq!(seen.tracestate(), None);

    for traceparent in [
        "ff-12345678901234567890123456789012-1234567890123456-01",
        "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
        "00-12345678901234567890123456789012-1234567890123456-01.",
        "00-1234567890123456789012345678901A-1234567890123456-01",
        "00-00000000000000000000000000000000-1234567890123456-01",
        "00-12345678901234567890123456789012-0000000000000000-01",
        "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like",
        "0-12345678901234567890123456789012-1234567890123456-01",
    ] {
        let seen = pair
            .send(&[("traceparent", traceparent), ("tracestate", "foo=1")])
            .await;
        assert!(!seen.continues_the_trace(), "{traceparent}: {seen:?}");
        assert_eq!(seen.tracestate(), None, "{traceparent}");
    }

    // A later version is read by the version-00 rules and sent on as 00, tracestate too.
    for traceparent in [
        "cc-12345678901234567890123456789012-1234567890123456-01",
        "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
    ] {
        let seen = pair
            .send(&[("traceparent", traceparent), ("tracestate", "foo=1")])
            .await;
        assert!(seen.continues_the_trace(), "{traceparent}: {seen:?}");
        assert_ne!(
            &seen.traceparent()[36..52],
            "1234567890123456",
            "with A's own span id"
        );
        assert_eq!(seen.tracestate(), Some("foo=1"), "{traceparent}");
    }
    pair.shutdown().await;
}
