//! Path parameters in `label` and `matrix` style, exploded and not (RFC 6570's `{.x}`,
//! `{.x*}`, `{;x}`, `{;x*}`, as OpenAPI's style tables show them), and query parameters'
//! `allowEmptyValue`, checked over a real socket: each valid form passes to the handler,
//! and a wrong item is a 400 naming the parameter.

mod support;

use ms_chassis::axum::Router;
use ms_chassis::axum::routing::get;
use serde_json::Value;

const SPEC: &str = "openapi: 3.0.3
info: {title: styles, version: '1'}
components:
  schemas:
    Ids: {type: array, maxItems: 3, items: {type: integer}}
    Color:
      type: object
      required: [R, G]
      properties: {R: {type: integer}, G: {type: integer}}
paths:
  /label/{ids}:
    get:
      parameters: [{name: ids, in: path, required: true, style: label, schema: {$ref: '#/components/schemas/Ids'}}]
      responses: {'200': {description: ok}}
  /label-x/{ids}:
    get:
      parameters: [{name: ids, in: path, required: true, style: label, explode: true, schema: {$ref: '#/components/schemas/Ids'}}]
      responses: {'200': {description: ok}}
  /matrix/{ids}:
    get:
      parameters: [{name: ids, in: path, required: true, style: matrix, schema: {$ref: '#/components/schemas/Ids'}}]
      responses: {'200': {description: ok}}
  /matrix-x/{ids}:
    get:
      parameters: [{name: ids, in: path, required: true, style: matrix, explode: true, schema: {$ref: '#/components/schemas/Ids'}}]
      responses: {'200': {description: ok}}
  /matrix-obj/{color}:
    get:
      parameters: [{name: color, in: path, required: true, style: matrix, explode: true, schema: {$ref: '#/components/schemas/Color'}}]
      responses: {'200': {description: ok}}
  /label-obj/{color}:
    get:
      parameters: [{name: color, in: path, required: true, style: label, explode: true, schema: {$ref: '#/components/schemas/Color'}}]
      responses: {'200': {description: ok}}
  /label-flat/{color}:
    get:
      parameters: [{name: color, in: path, required: true, style: label, schema: {$ref: '#/components/schemas/Color'}}]
      responses: {'200': {description: ok}}
  /search:
    get:
      parameters:
        - {name: q, in: query, schema: {type: string}}
        - {name: tag, in: query, allowEmptyValue: true, schema: {type: string}}
      responses: {'200': {description: ok}}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_and_matrix_styles_and_empty_values_are_read_as_the_spec_says() {
    let mut router = Router::new().route("/search", get(|| async { "found" }));
    for prefix in [
        "label",
        "label-x",
        "matrix",
        "matrix-x",
        "matrix-obj",
        "label-obj",
        "label-flat",
    ] {
        router = router.route(&format!("/{prefix}/{{p}}"), get(|| async { "ok" }));
    }
    let (_dir, s) = support::with_spec(SPEC, router).await;

    for (path, expected, location) in [
        ("/label/.3,4,5", 200, None),
        ("/label/.3,x", 400, Some("path.ids")),
        // Not exploded, `.` is no separator: one item, not an integer.
        ("/label/.3.4", 400, Some("path.ids")),
        ("/label-x/.3.4.5", 200, None),
        ("/label-x/.3.4.5.6", 400, Some("path.ids")),
        ("/matrix/;ids=3,4", 200, None),
        ("/matrix/;ids=3,x", 400, Some("path.ids")),
        ("/matrix-x/;ids=3;ids=4;ids=5", 200, None),
        ("/matrix-x/;ids=3;ids=x", 400, Some("path.ids")),
        ("/matrix-x/;ids=1;ids=2;ids=3;ids=4", 400, Some("path.ids")),
        ("/matrix-obj/;R=100;G=200", 200, None),
        ("/matrix-obj/;R=100;G=abc", 400, Some("path.color")),
        ("/matrix-obj/;R=100", 400, Some("path.color")),
        ("/label-obj/.R=100.G=200", 200, None),
        ("/label-obj/.R=1.G=x", 400, Some("path.color")),
        ("/label-flat/.R,100,G,200", 200, None),
        ("/label-flat/.R,100,G,x", 400, Some("path.color")),
        ("/search?q=a&tag=", 200, None),
        ("/search?q=&tag=", 400, Some("query.q")),
        ("/search?q", 400, Some("query.q")),
    ] {
        let res = s.get(path).await.unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!(status, expected, "{path}: {body}");
        if let Some(location) = location {
            let errors = body["errors"].as_array().expect("a problem with errors");
            assert!(
                errors.iter().all(|e| {
                    let at = e["location"].as_str().unwrap_or_default();
                    at == location || at.starts_with(&format!("{location}/"))
                }),
                "{path}: every violation is at {location}: {body}"
            );
        }
    }
    s.shutdown().await.unwrap();
}
