//! A service with a hand-written spec refuses, before its handlers run, every request that
//! breaks the contract — one test per kind of violation, each on the same contract written
//! in OpenAPI 3.0, in 3.1 and split over several files — and lists every violation.

mod openapi_validation_support;
mod support;

use ms_chassis::openapi::{Credential, ResponseValidation, ValidationOptions};
use openapi_validation_support::{SHOP_SPECS, TENANT, at, locations, problem, shop, shop_with};
use serde_json::{Value, json};
use support::client;

fn valid_item() -> Value {
    json!({"name": "Desk lamp", "price": 12.5, "when": "2024-05-01T10:00:00Z"})
}

#[tokio::test]
async fn a_path_parameter_of_the_wrong_type_or_out_of_bounds_is_400() {
    for spec in SHOP_SPECS {
        let s = shop(spec, ValidationOptions::default()).await;
        let c = client();
        let res = c.get(format!("{}/items/abc", s.url)).send().await.unwrap();
        let errors = problem(res, 400, spec).await;
        let e = at(&errors, "path.id", spec);
        assert_eq!(e["keyword"], "type", "{spec}");
        assert_eq!(e["expected"], "integer", "{spec}");
        assert_eq!(e["found"], "abc", "{spec}");
        let res = c.get(format!("{}/items/0", s.url)).send().await.unwrap();
        let errors = problem(res, 400, spec).await;
        assert_eq!(at(&errors, "path.id", spec)["keyword"], "minimum", "{spec}");
        let res = c.get(format!("{}/items/5", s.url)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{spec}");
    }
}

#[tokio::test]
async fn query_parameters_are_typed_by_their_schema_and_style() {
    for spec in SHOP_SPECS {
        let s = shop(spec, ValidationOptions::default()).await;
        let c = client();
        let get = |q: &str| {
            c.get(format!("{}/items?{q}", s.url))
                .header("x-tenant", TENANT)
                .send()
        };
        let ok = get("limit=5&tags=a&tags=b&ids=1,2&filter[min]=3&flag=true")
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "{spec}: {}", ok.text().await.unwrap());
        let cases = [
            ("limit=0", "query.limit", "minimum"),
            ("limit=ten", "query.limit", "type"),
            ("flag=maybe", "query.flag", "type"),
            // form, explode: one pair per item
            ("tags=a&tags=toolong", "query.tags/1", "maxLength"),
            // form, no explode: comma-separated
            ("ids=1,x", "query.ids/1", "type"),
            // deepObject
            ("filter[min]=x", "query.filter/min", "type"),
            ("filter[max]=1", "query.filter", "additionalProperties"),
            // Only an exploded array repeats: a copy that is not checked must not pass.
            ("limit=5&limit=1000", "query.limit", "repeated"),
            ("ids=1&ids=x", "query.ids", "repeated"),
            (
                "filter[min]=x&filter[min]=1&filter[min]=2",
                "query.filter/min",
                "repeated",
            ),
        ];
        let errors = problem(
            get("filter[min]=1&filter[min]=2&filter[min]=3")
                .await
                .unwrap(),
            400,
            spec,
        )
        .await;
        let message = at(&errors, "query.filter/min", spec)["message"]
            .as_str()
            .unwrap();
        assert!(message.contains("is given 3 times"), "{spec}: {message}");
        for (q, location, keyword) in cases {
            let errors = problem(get(q).await.unwrap(), 400, spec).await;
            assert_eq!(errors.len(), 1, "{spec} {q}: {errors:#?}");
            assert_eq!(
                at(&errors, location, spec)["keyword"],
                keyword,
                "{spec} {q}"
            );
        }
    }
}

#[tokio::test]
async fn a_header_parameter_is_required_and_checked_by_format() {
    for spec in SHOP_SPECS {
        let s = shop(spec, ValidationOptions::default()).await;
        let c = client();
        let res = c.get(format!("{}/items", s.url)).send().await.unwrap();
        let errors = problem(res, 400, spec).await;
        assert_eq!(
            at(&errors, "header.x-tenant", spec)["keyword"],
            "required",
            "{spec}"
        );
        let res = c
            .get(format!("{}/items", s.url))
            .header("x-tenant", "not-a-uuid")
            .send()
            .await
            .unwrap();
        let errors = problem(res, 400, spec).await;
        let e = at(&errors, "header.x-tenant", spec);
        assert_eq!(e["keyword"], "format", "{spec}");
        assert_eq!(e["expected"], "uuid", "{spec}");
    }
}

#[tokio::test]
async fn a_cookie_parameter_is_checked_and_its_value_never_echoed() {
    for spec in SHOP_SPECS {
        let s = shop(spec, ValidationOptions::default()).await;
        let res = client()
            .get(format!("{}/items", s.url))
            .header("x-tenant", TENANT)
            .header("cookie", "theme=dark; session=TOPSECRETVALUE")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{spec}");
        let text = res.text().await.unwrap();
        assert!(!text.contains("TOPSECRETVALUE"), "{spec}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        let errors = body["errors"].as_array().unwrap();
        let e = at(errors, "cookie.session", spec);
        assert_eq!(e["keyword"], "pattern", "{spec}");
        assert!(e.get("found").is_none(), "{spec}: {e}");
        let res = client()
            .get(format!("{}/items", s.url))
            .header("x-tenant", TENANT)
            .header("cookie", "session=0123abcd")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{spec}");
        let res = client()
            .get(format!("{}/items", s.url))
            .header("x-tenant", TENANT)
            .header("cookie", "session=0123abcd; session=TOPSECRETVALUE")
            .send()
            .await
            .unwrap();
        let errors = problem(res, 400, spec).await;
        assert_eq!(
            at(&errors, "cookie.session", spec)["keyword"],
            "repeated",
            "{spec}"
        );
    }
}

const CREDENTIAL_PARAMETERS: &str = "
openapi: 3.1.0
info: {title: keys, version: '1'}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
paths:
  /keyed:
    get:
      security: [{key: []}]
      parameters:
        - {name: X-API-Key, in: header, schema: {type: string, pattern: '^k-[0-9]+$'}}
        # Ignored, as OpenAPI says: content negotiation and security govern these.
        - {name: Authorization, in: header, schema: {type: string, maxLength: 2}}
        - {name: Accept, in: header, required: true, schema: {type: string, enum: [x/y]}}
        - {name: Content-Type, in: header, required: true, schema: {type: string, enum: [x/y]}}
      responses: {'200': {description: ok}}
";

#[tokio::test]
async fn a_credential_parameter_is_checked_but_never_echoed_and_reserved_headers_are_ignored() {
    use ms_chassis::axum::Router;
    use ms_chassis::axum::routing::get;

    let router = Router::new().route("/keyed", get(|| async { "in" }));
    let (_dir, s) = support::with_spec(CREDENTIAL_PARAMETERS, router).await;
    let res = s
        .client()
        .get(s.url("/keyed"))
        .header("x-api-key", "SECRETKEY123")
        .header("authorization", "Bearer SECRETBEARER")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let text = res.text().await.unwrap();
    assert!(!text.contains("SECRET"), "a credential was echoed: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(locations(errors), ["header.x-api-key"], "{text}");
    assert_eq!(errors[0]["keyword"], "pattern", "{text}");
    let res = s
        .client()
        .get(s.url("/keyed"))
        .header("x-api-key", "k-1")
        .header("authorization", "Bearer long")
        .header("accept", "*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn strict_mode_refuses_unknown_query_parameters() {
    for spec in SHOP_SPECS {
        let lax = shop(spec, ValidationOptions::default()).await;
        let strict = shop(
            spec,
            ValidationOptions {
                strict: true,
                ..ValidationOptions::default()
            },
        )
        .await;
        let q = "limit=5&bogus=1&filter[min]=2";
        let res = client()
            .get(format!("{}/items?{q}", lax.url))
            .header("x-tenant", TENANT)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{spec}: lax");
        let res = client()
            .get(format!("{}/items?{q}", strict.url))
            .header("x-tenant", TENANT)
            .send()
            .await
            .unwrap();
        let errors = problem(res, 400, spec).await;
        assert_eq!(locations(&errors), ["query.bogus"], "{spec}");
        assert_eq!(errors[0]["keyword"], "unknown", "{spec}");
    }
}

#[tokio::test]
async fn a_content_type_the_operation_does_not_accept_is_415() {
    for spec in SHOP_SPECS {
        let s = shop(spec, ValidationOptions::default()).await;
        let c = client();
        let res = c
            .post(format!("{}/items", s.url))
            .header("content-type", "text/plain")
            .body("hello")
            .send()
            .await
            .unwrap();
        let errors = problem(res, 415, spec).await;
        assert_eq!(errors[0]["found"], "text/plain", "{spec}");
        assert_eq!(errors[0]["expected"], "application/json", "{spec}");
        // A body without any Content-Type.
        let res = c
            .post(format!("{}/items", s.url))
            .body("{}")
            .send()
            .await
            .unwrap();
        problem(res, 415, spec).await;
        // A required body that is missing.
        let res = c
            .post(format!("{}/items", s.url))
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        let errors = problem(res, 400, spec).await;
        assert_eq!(at(&errors, "body", spec)["keyword"], "required", "{spec}");
    }
}

#[tokio::test]
async fn the_json_body_is_checked_against_its_schema_and_passed_on_intact() {
    for spec in SHOP_SPECS {
        let s = shop(spec, ValidationOptions::default()).await;
        let c = client();
        let post = |body: Value| c.post(format!("{}/items", s.url)).json(&body).send();
        // Valid: `id` is readOnly, so neither required nor allowed in a request; `note` is
        // nullable (3.0 `nullable`, 3.1 `type: [string, "null"]`).
        let mut ok = valid_item();
        ok["note"] = Value::Null;
        ok["parts"] = json!([{"price": 1}]);
        let res = post(ok.clone()).await.unwrap();
        assert_eq!(res.status(), 201, "{spec}");
        let echoed: Value = res.json().await.unwrap();
        assert_eq!(echoed, ok, "{spec}: the handler got the same body");

        let cases: [(&str, Value, &str, &str); 9] = [
            (
                "missing name",
                json!({"price": 1, "when": "2024-05-01T10:00:00Z"}),
                "body",
                "required",
            ),
            (
                "price not above 0",
                json!({"price": 0}),
                "body/price",
                "exclusiveMinimum",
            ),
            (
                "bad date-time",
                json!({"when": "yesterday"}),
                "body/when",
                "format",
            ),
            (
                "bad email",
                json!({"email": "nobody"}),
                "body/email",
                "format",
            ),
            (
                "name pattern",
                json!({"name": "R2-D2"}),
                "body/name",
                "pattern",
            ),
            (
                "extra member",
                json!({"colour": "red"}),
                "body",
                "additionalProperties",
            ),
            ("readOnly sent", json!({"id": 3}), "body/id", "falseSchema"),
            (
                "nested item",
                json!({"parts": [{}, {}, {}, {"price": -1}]}),
                "body/parts/3/price",
                "minimum",
            ),
            (
                "null not allowed",
                json!({"name": null}),
                "body/name",
                "type",
            ),
        ];
        for (what, patch, location, keyword) in cases {
            let mut body = valid_item();
            if what == "missing name" {
                body = patch;
            } else {
                for (k, v) in patch.as_object().unwrap() {
                    body[k] = v.clone();
                }
            }
            let errors = problem(post(body).await.unwrap(), 400, spec).await;
            assert_eq!(errors.len(), 1, "{spec} {what}: {errors:#?}");
            assert_eq!(
                at(&errors, location, spec)["keyword"],
                keyword,
                "{spec} {what}"
            );
        }
    }
}

#[tokio::test]
async fn a_form_body_is_read_by_its_schema_and_checked() {
    for spec in SHOP_SPECS {
        let s = shop(spec, ValidationOptions::default()).await;
        let c = client();
        let post = |body: &'static str| {
            c.post(format!("{}/contact", s.url))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
        };
        let res = post("count=2&tags=a&tags=b").await.unwrap();
        assert_eq!(res.status(), 200, "{spec}");
        let errors = problem(post("count=zero&tags=toolong").await.unwrap(), 400, spec).await;
        let mut found = locations(&errors);
        found.sort();
        assert_eq!(found, ["body/count", "body/tags/0"], "{spec}: {errors:#?}");
        // An array field repeats; any other field given twice is a violation.
        let errors = problem(post("count=zero&count=2").await.unwrap(), 400, spec).await;
        assert_eq!(locations(&errors), ["body/count"], "{spec}: {errors:#?}");
        assert_eq!(errors[0]["keyword"], "repeated", "{spec}");
    }
}

#[tokio::test]
async fn invalid_json_is_400_naming_the_parse_error() {
    for spec in SHOP_SPECS {
        let s = shop(spec, ValidationOptions::default()).await;
        let res = client()
            .post(format!("{}/items", s.url))
            .header("content-type", "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .unwrap();
        let errors = problem(res, 400, spec).await;
        let e = at(&errors, "body", spec);
        assert_eq!(e["keyword"], "json", "{spec}");
        assert!(
            e["message"].as_str().unwrap().contains("EOF while parsing"),
            "{spec}: {e}"
        );
    }
}

#[tokio::test]
async fn a_method_the_path_does_not_have_is_405_with_allow() {
    for spec in SHOP_SPECS {
        let s = shop(spec, ValidationOptions::default()).await;
        // The router has PUT /items/{id}; the contract does not.
        let res = client()
            .put(format!("{}/items/5", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{spec}");
        assert_eq!(res.headers()["allow"], "GET, HEAD, DELETE", "{spec}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
}

#[tokio::test]
async fn an_unknown_path_passes_through_to_the_routers_404() {
    for spec in SHOP_SPECS {
        let s = shop(spec, ValidationOptions::default()).await;
        let res = client()
            .get(format!("{}/nowhere", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{spec}");
    }
}

#[tokio::test]
async fn missing_credentials_are_401_and_a_verifier_judges_present_ones() {
    for spec in SHOP_SPECS {
        let s = shop_with(spec, ValidationOptions::default(), "", |v| {
            v.with_verifier(|c: &Credential<'_>| c.value != "revoked")
        })
        .await;
        let c = client();
        let res = c.delete(format!("{}/items/5", s.url)).send().await.unwrap();
        assert_eq!(res.headers()["www-authenticate"], "Bearer", "{spec}");
        problem(res, 401, spec).await;
        let res = c
            .delete(format!("{}/items/5", s.url))
            .bearer_auth("token")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "{spec}");
        let res = c
            .delete(format!("{}/items/5", s.url))
            .bearer_auth("revoked")
            .send()
            .await
            .unwrap();
        problem(res, 401, spec).await;
        // Bearer or basic.
        let res = c.get(format!("{}/secure", s.url)).send().await.unwrap();
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer, Basic realm=\"api\"",
            "{spec}"
        );
        let res = c
            .get(format!("{}/secure", s.url))
            .basic_auth("ann", Some("pw"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{spec}");
        // An API key in a header: no registered scheme, so the challenge says where it goes
        // (RFC 9110: a 401 carries at least one).
        let res = c.get(format!("{}/keyed", s.url)).send().await.unwrap();
        assert_eq!(
            res.headers()["www-authenticate"],
            "ApiKey in=\"header\", name=\"x-api-key\"",
            "{spec}"
        );
        problem(res, 401, spec).await;
        let res = c
            .get(format!("{}/keyed", s.url))
            .header("x-api-key", "k")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{spec}");
    }
}

#[tokio::test]
async fn a_discriminator_reports_the_errors_of_the_branch_it_selects() {
    for spec in SHOP_SPECS {
        let s = shop(spec, ValidationOptions::default()).await;
        let c = client();
        let post = |body: Value| c.post(format!("{}/pets", s.url)).json(&body).send();
        let res = post(json!({"petType": "kitty", "lives": 3})).await.unwrap();
        assert_eq!(res.status(), 201, "{spec}");
        let res = post(json!({"petType": "Dog", "bark": "woof"}))
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{spec}");
        // A cat's errors only, not a dog's.
        let errors = problem(
            post(json!({"petType": "kitty", "lives": 12}))
                .await
                .unwrap(),
            400,
            spec,
        )
        .await;
        assert_eq!(locations(&errors), ["body/lives"], "{spec}: {errors:#?}");
        let errors = problem(
            post(json!({"petType": "Dog", "bark": "meow"}))
                .await
                .unwrap(),
            400,
            spec,
        )
        .await;
        assert_eq!(locations(&errors), ["body/bark"], "{spec}: {errors:#?}");
        let errors = problem(post(json!({"petType": "fish"})).await.unwrap(), 400, spec).await;
        assert_eq!(locations(&errors), ["body/petType"], "{spec}: {errors:#?}");
        assert_eq!(errors[0]["keyword"], "enum", "{spec}");
        let errors = problem(post(json!({"lives": 1})).await.unwrap(), 400, spec).await;
        assert_eq!(errors[0]["keyword"], "required", "{spec}");
    }
}

#[tokio::test]
async fn a_request_with_five_violations_gets_all_five() {
    for spec in SHOP_SPECS {
        let s = shop(spec, ValidationOptions::default()).await;
        let res = client()
            .get(format!("{}/items?limit=0&flag=maybe&ids=x", s.url))
            .header("cookie", "session=nothex")
            .send()
            .await
            .unwrap();
        let errors = problem(res, 400, spec).await;
        let mut found = locations(&errors);
        found.sort();
        assert_eq!(
            found,
            [
                "cookie.session",
                "header.x-tenant",
                "query.flag",
                "query.ids/0",
                "query.limit"
            ],
            "{spec}: {errors:#?}"
        );
        for e in &errors {
            assert!(
                e["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{spec}: {e}"
            );
        }
    }
}

#[tokio::test]
async fn failures_are_counted_by_route_and_kind_of_location() {
    let s = shop("v31.yaml", ValidationOptions::default()).await;
    let c = client();
    for _ in 0..2 {
        c.get(format!("{}/items?limit=0", s.url))
            .send()
            .await
            .unwrap();
    }
    c.post(format!("{}/items", s.url))
        .json(&json!({"price": "free"}))
        .send()
        .await
        .unwrap();
    c.get(format!("{}/keyed", s.url)).send().await.unwrap();
    let text = support::metrics_text(&s.url).await;
    let count = |labels: &str| {
        let prefix = format!("ms_chassis_openapi_request_validation_failures_total{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no series {{{labels}}} in:\n{text}"))
            .to_owned()
    };
    assert_eq!(count("http_route=\"/items\",location=\"query\""), "2");
    assert_eq!(count("http_route=\"/items\",location=\"header\""), "2");
    assert_eq!(count("http_route=\"/items\",location=\"body\""), "1");
    assert_eq!(count("http_route=\"/keyed\",location=\"security\""), "1");
    assert!(!text.contains("body/price"), "pointers never become labels");
}

#[tokio::test]
async fn a_recursive_schema_is_checked_to_any_depth() {
    let s = shop("recursive.yaml", ValidationOptions::default()).await;
    let c = client();
    let mut tree = json!({"name": "leaf"});
    for i in 0..6 {
        tree = json!({"name": format!("n{i}"), "children": [{"name": "x"}, tree]});
    }
    let res = c
        .post(format!("{}/trees", s.url))
        .json(&tree)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // Too long a name four levels down, and an unknown member two levels down.
    tree["children"][1]["children"][1]["children"][1]["children"][0]["name"] =
        json!("much too long");
    tree["children"][1]["children"][0]["colour"] = json!("green");
    let res = c
        .post(format!("{}/trees", s.url))
        .json(&tree)
        .send()
        .await
        .unwrap();
    let errors = problem(res, 400, "recursive.yaml").await;
    let mut found = locations(&errors);
    found.sort();
    assert_eq!(
        found,
        [
            "body/children/1/children/0",
            "body/children/1/children/1/children/1/children/0/name"
        ]
    );
}

#[tokio::test]
async fn responses_are_checked_when_asked_and_rejected_in_reject_mode() {
    for spec in SHOP_SPECS {
        let reject = shop(
            spec,
            ValidationOptions {
                responses: ResponseValidation::Reject,
                ..ValidationOptions::default()
            },
        )
        .await;
        let log = shop(
            spec,
            ValidationOptions {
                responses: ResponseValidation::Log,
                ..ValidationOptions::default()
            },
        )
        .await;
        let c = client();
        let res = c
            .get(format!("{}/items/5", reject.url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "{spec}: a response that keeps the contract"
        );
        let res = c
            .get(format!("{}/items/7", reject.url))
            .send()
            .await
            .unwrap();
        let errors = problem(res, 500, spec).await;
        assert!(
            locations(&errors).iter().all(|l| l == "body"),
            "{spec}: {errors:#?}"
        );
        assert_eq!(
            errors.len(),
            3,
            "{spec}: name, price and when are missing: {errors:#?}"
        );
        let res = c
            .get(format!("{}/items/9", reject.url))
            .send()
            .await
            .unwrap();
        let errors = problem(res, 500, spec).await;
        assert_eq!(locations(&errors), ["status"], "{spec}");
        // Logged and counted, but sent as it is.
        let res = c.get(format!("{}/items/7", log.url)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{spec}");
        let text = support::metrics_text(&log.url).await;
        assert!(
            text.contains(
                "ms_chassis_openapi_response_validation_failures_total{http_route=\"/items/{id}\",location=\"body\"} 1"
            ),
            "{spec}: {text}"
        );
    }
}

/// OpenAPI 3.0.3's inheritance example: the discriminator on the base schema `Pet`, which
/// `Cat` and `Dog` extend with `allOf`, and a body declared as a `Pet`.
const INHERITANCE: &str = "openapi: 3.0.3
info: {title: pets, version: '1'}
paths:
  /pets:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Pet'}
      responses: {'201': {description: created}}
components:
  schemas:
    Pet:
      type: object
      required: [name, petType]
      properties: {name: {type: string}, petType: {type: string}}
      discriminator: {propertyName: petType}
    Cat:
      allOf:
        - $ref: '#/components/schemas/Pet'
        - type: object
          required: [huntingSkill]
          properties: {huntingSkill: {type: string, enum: [clueless, lazy, adventurous, aggressive]}}
    Dog:
      allOf:
        - $ref: '#/components/schemas/Pet'
        - type: object
          required: [packSize]
          properties: {packSize: {type: integer, format: int32, minimum: 0}}
";

#[tokio::test]
async fn a_discriminator_on_a_base_schema_checks_the_schema_its_value_names() {
    use ms_chassis::axum::Router;
    use ms_chassis::axum::http::StatusCode;
    use ms_chassis::axum::routing::post;

    let router = Router::new().route("/pets", post(|| async { StatusCode::CREATED }));
    let (_dir, s) = support::with_spec(INHERITANCE, router).await;
    let post = |body: Value| s.client().post(s.url("/pets")).json(&body).send();
    let spec = "inheritance";

    let res = post(json!({"name": "Tom", "petType": "Cat", "huntingSkill": "lazy"}));
    assert_eq!(res.await.unwrap().status(), 201);
    let res = post(json!({"name": "Rex", "petType": "Dog", "packSize": 4}));
    assert_eq!(res.await.unwrap().status(), 201);
    // A dog's errors, not a cat's; the base's once.
    let res = post(json!({"name": 7, "petType": "Dog", "packSize": -1}));
    let errors = problem(res.await.unwrap(), 400, spec).await;
    let mut at = locations(&errors);
    at.sort();
    assert_eq!(at, ["body/name", "body/packSize"], "{errors:#?}");
    let res = post(json!({"name": "Tom", "petType": "Cat"}));
    let errors = problem(res.await.unwrap(), 400, spec).await;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["keyword"], "required", "{errors:#?}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("huntingSkill"),
        "{errors:#?}"
    );
    let res = post(json!({"name": "Tom", "petType": "Fish"}));
    let errors = problem(res.await.unwrap(), 400, spec).await;
    assert_eq!(locations(&errors), ["body/petType"], "{errors:#?}");
    assert_eq!(errors[0]["keyword"], "enum", "{errors:#?}");
    s.shutdown().await.unwrap();
}

const QUERY_EDGES: &str = "
openapi: 3.0.3
info: {title: edges, version: '1'}
paths:
  /q:
    get:
      parameters:
        - {name: req, in: query, required: true, schema: {type: string}}
        - {name: n, in: query, schema: {type: integer, nullable: true}}
        - {name: o, in: query, explode: false, schema: {type: object, properties: {a: {type: integer}}}}
      responses: {'200': {description: ok}}
    post:
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties: {i: {type: integer}, x: {type: number}}
      responses: {'200': {description: ok}}
";

#[tokio::test]
async fn a_badly_encoded_parameter_is_reported_once_and_no_style_writes_null() {
    use ms_chassis::axum::Router;
    use ms_chassis::axum::routing::get;

    let router = Router::new().route("/q", get(|| async { "ok" }));
    let (_dir, s) = support::with_spec(QUERY_EDGES, router).await;
    let get = |q: &str| s.client().get(s.url(&format!("/q?{q}"))).send();
    // Present, if undecodable: its encoding is the one violation, not "is required" too.
    let errors = problem(get("req=%FF%FE").await.unwrap(), 400, "encoding").await;
    assert_eq!(locations(&errors), ["query.req"], "{errors:#?}");
    assert_eq!(errors[0]["keyword"], "encoding", "{errors:#?}");
    // `n=null` is the text "null", not null: an integer it is not.
    let errors = problem(get("req=x&n=null").await.unwrap(), 400, "null").await;
    assert_eq!(locations(&errors), ["query.n"], "{errors:#?}");
    assert_eq!(errors[0]["keyword"], "type", "{errors:#?}");
    assert_eq!(get("req=x&n=3&o=a,1").await.unwrap().status(), 200);
    // A member of a non-exploded object given twice (`o=a,x,a,1`): neither copy passes.
    let errors = problem(get("req=x&o=a,x,a,1").await.unwrap(), 400, "o").await;
    assert_eq!(locations(&errors), ["query.o/a"], "{errors:#?}");
    assert_eq!(errors[0]["keyword"], "repeated", "{errors:#?}");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_3_0_integer_is_written_without_a_fraction_or_an_exponent() {
    use ms_chassis::axum::Router;
    use ms_chassis::axum::routing::post;

    let router = Router::new().route("/q", post(|| async { "ok" }));
    let (_dir, s) = support::with_spec(QUERY_EDGES, router).await;
    let post = |body: &'static str| {
        s.client()
            .post(s.url("/q"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Draft 4's integer, as openapi-core reads 3.0 (2020-12, and so 3.1, takes 1.0).
    for body in [r#"{"i": 1.0}"#, r#"{"i": 1e2}"#, r#"{"i": 1.5}"#] {
        let errors = problem(post(body).await.unwrap(), 400, body).await;
        assert_eq!(locations(&errors), ["body/i"], "{body}: {errors:#?}");
        assert_eq!(errors[0]["keyword"], "type", "{body}: {errors:#?}");
        assert_eq!(errors[0]["expected"], "integer", "{body}: {errors:#?}");
    }
    // `-0` and integers past 64 bits are written as integers, if read as floats.
    for body in [
        r#"{"i": 100, "x": 1.0}"#,
        r#"{"i": -7, "x": 2e3}"#,
        r#"{"i": -0}"#,
        r#"{"i": 100000000000000000000000}"#,
    ] {
        assert_eq!(post(body).await.unwrap().status(), 200, "{body}");
    }
    s.shutdown().await.unwrap();
}
