//! Differential test: the same requests go to the chassis (over a real socket) and to
//! Python openapi-core 0.23.1 (`tests/fixtures/openapi/oracle.py`), and both must accept
//! or reject each one alike, on the 3.0, 3.1 and multi-file specs.
//!
//! openapi-core runs in its own venv, since it conflicts with openapi-spec-validator in
//! the main test venv: `scripts/test.sh` creates `.venv-openapi-core` and passes its
//! Python in `MS_OPENAPI_CORE_PYTHON`.
//!
//! Deliberate differences, pinned by [`KNOWN_DIFFERENCES`] so that they stay true:
//! - in 3.1, `readOnly` properties are neither required nor allowed in a request here,
//!   as in 3.0 (OpenAPI 3.1 keeps that meaning: "SHOULD NOT be sent as part of the
//!   request"); openapi-core 0.23 applies it to 3.0 specs only, and in 3.1 both requires
//!   a `readOnly` property listed in `required` and accepts one that is sent;
//! - a `discriminator` whose implicit value (`Dog`) names a schema in another file: the
//!   chassis bundles first, so the name resolves; openapi-core looks it up in the root
//!   file (`#/components/schemas/Dog`), fails, and refuses the body.

mod openapi_validation_support;
mod support;

use std::path::PathBuf;

use ms_chassis::openapi::ValidationOptions;
use openapi_validation_support::{SHOP_SPECS, TENANT, fixture, shop};
use serde_json::{Value, json};
use support::client;
use tokio::io::AsyncWriteExt as _;

/// One request, described once for both sides.
#[derive(Clone, Default)]
struct Case {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    query: Vec<(&'static str, &'static str)>,
    headers: Vec<(&'static str, &'static str)>,
    cookies: Vec<(&'static str, &'static str)>,
    body: Option<String>,
    content_type: Option<&'static str>,
}

fn get(what: &'static str, path: &'static str) -> Case {
    Case {
        what,
        method: "get",
        path,
        ..Case::default()
    }
}

fn items(what: &'static str, query: Vec<(&'static str, &'static str)>) -> Case {
    Case {
        query,
        headers: vec![("X-Tenant", TENANT)],
        ..get(what, "/items")
    }
}

fn post(what: &'static str, path: &'static str, body: Value) -> Case {
    Case {
        what,
        method: "post",
        path,
        body: Some(body.to_string()),
        content_type: Some("application/json"),
        ..Case::default()
    }
}

fn item(patch: Value) -> Value {
    let mut body = json!({"name": "Desk lamp", "price": 12.5, "when": "2024-05-01T10:00:00Z"});
    for (k, v) in patch.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn cases() -> Vec<Case> {
    vec![
        get("path ok", "/items/5"),
        get("path below minimum", "/items/0"),
        get("path not an integer", "/items/abc"),
        items("query ok", vec![("limit", "5"), ("flag", "true")]),
        items("query below minimum", vec![("limit", "0")]),
        items("query above maximum", vec![("limit", "101")]),
        items("query not an integer", vec![("limit", "ten")]),
        items("query not a boolean", vec![("flag", "maybe")]),
        items("array, exploded", vec![("tags", "a"), ("tags", "bb")]),
        items(
            "array item too long",
            vec![("tags", "a"), ("tags", "toolong")],
        ),
        items("array, not exploded", vec![("ids", "1,2,3")]),
        items("array item not an integer", vec![("ids", "1,x")]),
        items("deep object ok", vec![("filter[min]", "3")]),
        items("deep object bad member", vec![("filter[min]", "x")]),
        items("unknown query parameter (lax)", vec![("bogus", "1")]),
        items("empty integer value", vec![("limit", "")]),
        items("empty array item", vec![("tags", "")]),
        items("empty unexploded array", vec![("ids", "")]),
        get("header missing", "/items"),
        Case {
            headers: vec![("X-Tenant", "not-a-uuid")],
            ..get("header not a uuid", "/items")
        },
        Case {
            cookies: vec![("session", "0123abcd")],
            ..items("cookie ok", vec![])
        },
        Case {
            cookies: vec![("session", "NOPE")],
            ..items("cookie bad pattern", vec![])
        },
        post("body ok", "/items", item(json!({}))),
        post("body nullable null", "/items", item(json!({"note": null}))),
        post(
            "body missing name",
            "/items",
            json!({"price": 1, "when": "2024-05-01T10:00:00Z"}),
        ),
        post(
            "body price not above 0",
            "/items",
            item(json!({"price": 0})),
        ),
        post(
            "body bad date-time",
            "/items",
            item(json!({"when": "yesterday"})),
        ),
        post("body bad email", "/items", item(json!({"email": "nobody"}))),
        post("body bad pattern", "/items", item(json!({"name": "R2-D2"}))),
        post(
            "body extra member",
            "/items",
            item(json!({"colour": "red"})),
        ),
        post(
            "body nested bad",
            "/items",
            item(json!({"parts": [{"price": -1}]})),
        ),
        Case {
            body: Some("{\"name\": ".into()),
            ..post("body invalid JSON", "/items", json!({}))
        },
        Case {
            body: Some("hello".into()),
            content_type: Some("text/plain"),
            ..post("content type not accepted", "/items", json!({}))
        },
        Case {
            body: None,
            ..post("required body missing", "/items", json!({}))
        },
        post(
            "discriminator ok",
            "/pets",
            json!({"petType": "kitty", "lives": 3}),
        ),
        post(
            "discriminator branch error",
            "/pets",
            json!({"petType": "kitty", "lives": 12}),
        ),
        post(
            "discriminator other branch",
            "/pets",
            json!({"petType": "Dog", "bark": "yap"}),
        ),
        post(
            "discriminator value unknown",
            "/pets",
            json!({"petType": "fish", "lives": 3}),
        ),
        post("readOnly sent", "/items", item(json!({"id": 3}))),
        Case {
            body: Some("count=2&tags=a&tags=b".into()),
            content_type: Some("application/x-www-form-urlencoded"),
            ..post("form ok", "/contact", json!({}))
        },
        Case {
            body: Some("count=0".into()),
            content_type: Some("application/x-www-form-urlencoded"),
            ..post("form below minimum", "/contact", json!({}))
        },
        Case {
            body: Some("count=1&tags=toolong".into()),
            content_type: Some("application/x-www-form-urlencoded"),
            ..post("form array item too long", "/contact", json!({}))
        },
        Case {
            body: Some("tags=a".into()),
            content_type: Some("application/x-www-form-urlencoded"),
            ..post("form missing required", "/contact", json!({}))
        },
        Case {
            method: "put",
            ..get("method not in the contract", "/items/5")
        },
        Case {
            method: "delete",
            ..get("security: no bearer token", "/items/5")
        },
        Case {
            method: "delete",
            headers: vec![("Authorization", "Bearer t0ken")],
            ..get("security: bearer token", "/items/5")
        },
        get("security: no API key", "/keyed"),
        Case {
            headers: vec![("X-API-Key", "k")],
            ..get("security: API key", "/keyed")
        },
    ]
}

/// (spec or `*`, case, chassis accepts, openapi-core accepts): deliberate differences.
const KNOWN_DIFFERENCES: [(&str, &str, bool, bool); 3] = [
    ("v31.yaml", "readOnly sent", false, true),
    ("multi/api.yaml", "readOnly sent", false, true),
    ("multi/api.yaml", "discriminator other branch", true, false),
];

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MS_OPENAPI_CORE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-openapi-core/bin/python");
    if venv.is_file() {
        return venv;
    }
    panic!(
        "the openapi-core oracle is required: run scripts/test.sh, or \
         `python3 -m venv .venv-openapi-core && .venv-openapi-core/bin/pip install openapi-core==0.23.1` \
         at the repository root (or set MS_OPENAPI_CORE_PYTHON to a Python that has it)"
    );
}

/// openapi-core's decision for each case.
async fn oracle(spec: &str, cases: &[Case]) -> Vec<(bool, String)> {
    let requests: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({
                "method": c.method,
                "path": c.path,
                "query": c.query,
                "headers": c.headers.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<String, Value>>(),
                "cookies": c.cookies.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<String, Value>>(),
                "body": c.body,
                "content_type": c.content_type,
            })
        })
        .collect();
    let mut child = tokio::process::Command::new(python())
        .arg(fixture("oracle.py"))
        .arg(fixture(spec))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the oracle's Python starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(Value::Array(requests).to_string().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "oracle.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decisions: Vec<Value> = serde_json::from_slice(&out.stdout).expect("the oracle's JSON");
    assert_eq!(decisions.len(), cases.len());
    decisions
        .iter()
        .map(|d| {
            (
                d["valid"].as_bool().unwrap(),
                d["error"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The chassis's decision for each case, over a real socket.
async fn chassis(spec: &'static str, cases: &[Case]) -> Vec<(bool, String)> {
    let s = shop(spec, ValidationOptions::default()).await;
    let c = client();
    let mut out = Vec::new();
    for case in cases {
        let method: reqwest::Method = case.method.to_uppercase().parse().unwrap();
        let query = serde_urlencoded::to_string(&case.query).unwrap();
        let mut req = c.request(method, format!("{}{}?{query}", s.url, case.path));
        for (k, v) in &case.headers {
            req = req.header(*k, *v);
        }
        if !case.cookies.is_empty() {
            let cookie: Vec<String> = case
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", cookie.join("; "));
        }
        if let Some(ct) = case.content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = &case.body {
            req = req.body(b.clone());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let accepted = match status {
            200..=299 => true,
            400 | 401 | 405 | 415 => false,
            other => panic!("{spec} {}: unexpected status {other}: {text}", case.what),
        };
        out.push((accepted, text));
    }
    out
}

#[tokio::test]
async fn the_chassis_and_openapi_core_accept_and_reject_the_same_requests() {
    let cases = cases();
    for spec in SHOP_SPECS {
        let theirs = oracle(spec, &cases).await;
        let ours = chassis(spec, &cases).await;
        let mut problems = Vec::new();
        for (c, (o, t)) in cases.iter().zip(ours.iter().zip(&theirs)) {
            let known = KNOWN_DIFFERENCES
                .iter()
                .find(|(s, what, ..)| (*s == "*" || *s == spec) && *what == c.what);
            let expected = known.map_or((o.0, o.0), |(_, _, chassis, core)| (*chassis, *core));
            if (o.0, t.0) != expected {
                problems.push(format!(
                    "{}: chassis {}, openapi-core {}{} ({}) / chassis said {}",
                    c.what,
                    if o.0 { "accepts" } else { "rejects" },
                    if t.0 { "accepts" } else { "rejects" },
                    if known.is_some() {
                        ", not the documented difference"
                    } else {
                        ""
                    },
                    t.1,
                    o.1
                ));
            }
        }
        assert!(
            problems.is_empty(),
            "{spec}: {} of {} cases:\n{}",
            problems.len(),
            cases.len(),
            problems.join("\n")
        );
        // Both sides really judged: each accepted some and rejected some.
        assert!(
            ours.iter().any(|o| o.0) && ours.iter().any(|o| !o.0),
            "{spec}"
        );
        assert!(
            theirs.iter().any(|t| t.0) && theirs.iter().any(|t| !t.0),
            "{spec}"
        );
    }
}
