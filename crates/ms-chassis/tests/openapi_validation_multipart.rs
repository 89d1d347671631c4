//! `multipart/form-data` request bodies (RFC 7578) checked against their OpenAPI schema
//! over a real socket: each part is the property of its name, text parts are typed by the
//! property's schema, repeated names make arrays, a JSON part (or an object property) is
//! parsed, and a file's content is a string. Malformed multipart is a 400, never a pass.

mod support;

use ms_chassis::axum::Router;
use ms_chassis::axum::http::StatusCode;
use ms_chassis::axum::routing::post;
use ms_chassis::testing::TestService;
use serde_json::Value;

const SPEC: &str = "openapi: 3.1.0
info: {title: uploads, version: '1'}
paths:
  /uploads:
    post:
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema:
              type: object
              required: [name, file]
              additionalProperties: false
              properties:
                name: {type: string, minLength: 1}
                count: {type: integer, minimum: 1}
                tags: {type: array, maxItems: 2, items: {type: string}}
                meta:
                  type: object
                  required: [owner]
                  properties: {owner: {type: string}}
                file: {type: string, format: binary}
            encoding:
              meta: {contentType: application/json}
      responses:
        '201': {description: stored}
";

const BOUNDARY: &str = "XyZ-boundary-7";

/// A part: (name, filename, content type, content).
type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content_type, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => {
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n")
            }
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        if let Some(ct) = content_type {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn send(s: &TestService, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let res = s
        .client()
        .post(s.url("/uploads"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn locations(problem: &Value) -> Vec<String> {
    let mut l: Vec<String> = problem["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["location"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    l.sort();
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_bodies_are_checked_part_by_part() {
    let router = Router::new().route(
        "/uploads",
        post(|body: ms_chassis::axum::body::Bytes| async move {
            // The handler gets the body as it was sent.
            assert!(
                body.windows(BOUNDARY.len())
                    .any(|w| w == BOUNDARY.as_bytes())
            );
            StatusCode::CREATED
        }),
    );
    let (_dir, s) = support::with_spec(SPEC, router).await;
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    let png: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\xff binary";

    let good = multipart(&[
        ("name", None, None, b"Widget"),
        ("count", None, None, b"3"),
        ("tags", None, None, b"a"),
        ("tags", None, None, b"b"),
        (
            "meta",
            None,
            Some("application/json"),
            br#"{"owner": "ana"}"#,
        ),
        ("file", Some("w.png"), Some("image/png"), png),
    ]);
    let (status, body) = send(&s, &ct, good).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Five violations in one request, each named by its part.
    let bad = multipart(&[
        ("count", None, None, b"three"),
        ("tags", None, None, b"a"),
        ("tags", None, None, b"b"),
        ("tags", None, None, b"c"),
        ("meta", None, Some("application/json"), br#"{"owner": 7}"#),
        ("file", Some("w.png"), None, png),
        ("extra", None, None, b"x"),
    ]);
    let (status, problem) = send(&s, &ct, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(
        locations(&problem),
        ["body", "body", "body/count", "body/meta/owner", "body/tags"],
        "{problem}"
    );
    let text = problem.to_string();
    assert!(
        text.contains("\\\"name\\\""),
        "the missing part is named: {text}"
    );
    assert!(text.contains("extra"), "the unknown part is named: {text}");

    // A name repeated where the schema wants one value: neither copy may go unchecked.
    let twice = multipart(&[
        ("name", None, None, b"Widget"),
        ("count", None, None, b"x"),
        ("count", None, None, b"1"),
        ("file", Some("f"), None, b"x"),
    ]);
    let (status, problem) = send(&s, &ct, twice).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(locations(&problem), ["body/count"], "{problem}");
    assert!(problem.to_string().contains("repeated"), "{problem}");

    // A part that should be JSON and is not.
    let not_json = multipart(&[
        ("name", None, None, b"Widget"),
        ("meta", None, Some("application/json"), b"{owner"),
        ("file", Some("f"), None, b"x"),
    ]);
    let (status, problem) = send(&s, &ct, not_json).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(locations(&problem), ["body/meta"], "{problem}");

    // Malformed multipart: no boundary, another boundary, a body cut short.
    for (what, content_type, body) in [
        (
            "no boundary",
            "multipart/form-data".to_owned(),
            multipart(&[("name", None, None, b"W")]),
        ),
        (
            "another boundary",
            "multipart/form-data; boundary=other".to_owned(),
            multipart(&[("name", None, None, b"W")]),
        ),
        (
            "cut short",
            ct.clone(),
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nWid")
                .into_bytes(),
        ),
    ] {
        let (status, problem) = send(&s, &content_type, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {problem}");
        assert!(
            problem.to_string().contains("multipart"),
            "{what}: the problem says why: {problem}"
        );
    }

    // JSON is not one of the operation's media types.
    let (status, _) = send(&s, "application/json", b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    s.shutdown().await.unwrap();
}
