//! A service given its code-first spec publishes it beside the chassis endpoints: JSON and
//! YAML documents that pass `openapi-spec-validator`, whose `servers` follow a valid
//! `X-Forwarded-Prefix` (and never a hostile one), and a Swagger UI page whose every URL is
//! relative. All over real sockets.

mod openapi_support;
mod support;

use ms_chassis::Service;
use ms_chassis::axum::Router;
use serde_json::{Value, json};

use support::{TEST_BASE, client};

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

async fn start_books(yaml: &str) -> support::TestService {
    let (router, api) = openapi_support::books();
    let svc = Service::builder()
        .yaml(TEST_BASE)
        .yaml("service: { name: bookshop, version: 2.5.0 }")
        .yaml(yaml)
        .build()
        .expect("test config is valid");
    let running = svc.with_openapi(api).start(router).await.expect("starts");
    let url = format!("http://{}", running.local_addr());
    support::TestService { running, url }
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn the_spec_is_served_as_json_and_yaml_and_passes_the_validator() {
    let s = start_books("openapi: { include_chassis: true }").await;
    let res = get(&format!("{}/openapi.json", s.url), &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "application/json");
    assert_eq!(header(&res, "vary"), "x-forwarded-prefix");
    let json_bytes = res.bytes().await.unwrap();
    let doc: Value = serde_json::from_slice(&json_bytes).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "bookshop", "from service.name");
    assert_eq!(doc["info"]["version"], "2.5.0", "from service.version");
    assert!(
        doc["info"].get("contact").is_none(),
        "not utoipa-axum's author: {doc}"
    );
    assert_eq!(doc["servers"], json!([{"url": "/"}]));
    assert_eq!(
        doc["paths"]["/books/{id}"]["get"]["responses"]["404"]["description"], "Not Found",
        "a response utoipa left without a description gets its reason phrase"
    );
    assert!(doc["paths"]["/books"]["post"].is_object(), "{doc}");
    let published = &doc["components"]["schemas"]["Book"]["properties"]["published"];
    assert_eq!(
        published["example"], "2026-12-02",
        "a date to YAML 1.1 readers: {doc}"
    );
    // include_chassis: the health and metrics endpoints, with their real shapes.
    for p in [
        "/health",
        "/health/live",
        "/health/ready",
        "/health/started",
        "/healthcheck",
        "/metrics",
    ] {
        assert!(doc["paths"][p]["get"].is_object(), "{p} missing");
    }
    let health_schema = &doc["components"]["schemas"]["ChassisHealth"];
    assert_eq!(health_schema["required"], json!(["status", "checks"]));
    let live: Value = get(&format!("{}/health", s.url), &[])
        .await
        .json()
        .await
        .unwrap();
    for key in live.as_object().unwrap().keys() {
        assert!(
            health_schema["properties"].get(key).is_some(),
            "/health has {key}, the spec does not"
        );
    }
    // /metrics is described with the Content-Types it sends, in both formats.
    let documented = &doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
    for accept in ["*/*", "application/openmetrics-text"] {
        let res = get(&format!("{}/metrics", s.url), &[("accept", accept)]).await;
        let sent = header(&res, "content-type");
        assert!(
            documented.get(sent).is_some(),
            "{accept}: sent {sent}, documented {documented}"
        );
    }

    let res = get(&format!("{}/openapi.yaml", s.url), &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "application/yaml");
    assert_eq!(header(&res, "vary"), "x-forwarded-prefix");
    let yaml_bytes = res.bytes().await.unwrap();
    assert!(
        std::str::from_utf8(&yaml_bytes)
            .unwrap()
            .contains("title: bookshop")
    );

    let dir = tempfile::tempdir().unwrap();
    let (json_file, yaml_file) = (
        dir.path().join("openapi.json"),
        dir.path().join("openapi.yaml"),
    );
    std::fs::write(&json_file, &json_bytes).unwrap();
    std::fs::write(&yaml_file, &yaml_bytes).unwrap();
    // Without the chassis endpoints too.
    let plain = start_books("").await;
    let plain_doc: Value = get(&format!("{}/openapi.json", plain.url), &[])
        .await
        .json()
        .await
        .unwrap();
    assert!(
        plain_doc["paths"].get("/health").is_none(),
        "include_chassis is off by default"
    );
    let plain_file = dir.path().join("plain.json");
    std::fs::write(&plain_file, serde_json::to_vec(&plain_doc).unwrap()).unwrap();
    openapi_support::assert_valid_openapi(&[&json_file, &yaml_file, &plain_file]);
    s.running.shutdown().await.unwrap();
    plain.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn servers_follow_a_valid_forwarded_prefix_then_base_path() {
    let s = start_books("openapi: { base_path: /public }").await;
    let servers = |doc: Value| doc["servers"].clone();
    let at = |prefix: Option<&'static str>| {
        let url = format!("{}/openapi.json", s.url);
        async move {
            let h: Vec<(&str, &str)> = prefix
                .map(|p| ("x-forwarded-prefix", p))
                .into_iter()
                .collect();
            get(&url, &h).await.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(
        servers(at(None).await),
        json!([{"url": "/public"}]),
        "base_path"
    );
    assert_eq!(servers(at(Some("/api")).await), json!([{"url": "/api"}]));
    assert_eq!(
        servers(at(Some("/api/v2/")).await),
        json!([{"url": "/api/v2"}])
    );
    assert_eq!(
        servers(at(Some("/api")).await),
        json!([{"url": "/api"}]),
        "again, from the memo"
    );
    assert_eq!(
        servers(at(Some("/")).await),
        json!([{"url": "/"}]),
        "an explicit root"
    );
    assert_eq!(
        servers(at(Some("/public")).await),
        json!([{"url": "/public"}])
    );
    let yaml = get(
        &format!("{}/openapi.yaml", s.url),
        &[("x-forwarded-prefix", "/edge")],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(yaml.contains("url: /edge"), "{yaml}");
    s.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_hostile_forwarded_prefix_is_ignored_and_never_reflected() {
    let s = start_books("").await;
    let long = format!("/{}", "a".repeat(10 * 1024));
    let hostile = [
        "//evil.com",
        "javascript:alert(1)",
        "\"><script>alert(1)</script>",
        "/\"><script>alert(1)</script>",
        "/api/../../evil",
        "/a b",
        "https://evil.com/api",
        long.as_str(),
    ];
    let plain = get(&format!("{}/openapi.json", s.url), &[])
        .await
        .bytes()
        .await
        .unwrap();
    for h in hostile {
        for path in [
            "/openapi.json",
            "/openapi.yaml",
            "/docs/",
            "/docs/swagger-initializer.js",
        ] {
            let res = get(&format!("{}{path}", s.url), &[("x-forwarded-prefix", h)]).await;
            assert_eq!(res.status(), 200, "{path} with {h:.40}");
            let body = res.text().await.unwrap();
            for needle in ["evil", "alert(", "javascript:", "aaaaaaaaaaaaaaaa"] {
                assert!(
                    !body.contains(needle),
                    "{path} reflects {needle} from {h:.40}"
                );
            }
            if path == "/openapi.json" {
                assert_eq!(body.as_bytes(), &plain[..], "ignored: the plain document");
            }
        }
    }
    s.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_ui_page_is_offline_relative_and_cacheable() {
    let s = start_books("").await;
    // `/docs` redirects relatively, so that a stripped prefix stays.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirects
        .get(format!("{}/docs", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(header(&res, "location"), "docs/");
    let res = get(&format!("{}/docs", s.url), &[]).await;
    assert_eq!(res.url().path(), "/docs/", "followed");
    assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");
    assert!(header(&res, "content-security-policy").contains("script-src 'self'"));
    let html = res.text().await.unwrap();
    assert!(
        !html.contains("http:") && !html.contains("https:"),
        "{html}"
    );
    let version = ms_chassis::openapi::SWAGGER_UI_VERSION;
    for (asset, ty, min) in [
        (
            "swagger-ui-bundle.js",
            "text/javascript; charset=utf-8",
            1_000_000,
        ),
        ("swagger-ui.css", "text/css; charset=utf-8", 100_000),
        ("favicon-32x32.png", "image/png", 100),
        ("LICENSE", "text/plain; charset=utf-8", 1000),
    ] {
        let rel = format!("./{version}/{asset}");
        if asset.ends_with(".js") || asset.ends_with(".css") {
            assert!(html.contains(&rel), "the page loads {rel}");
        }
        let res = get(&format!("{}/docs/{version}/{asset}", s.url), &[]).await;
        assert_eq!(res.status(), 200, "{asset}");
        assert_eq!(header(&res, "content-type"), ty, "{asset}");
        assert_eq!(
            header(&res, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert!(res.bytes().await.unwrap().len() > min, "{asset}");
    }
    // The script and stylesheet go gzip-encoded where that is accepted.
    let bundle = format!("{}/docs/{version}/swagger-ui-bundle.js", s.url);
    let res = get(&bundle, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(header(&res, "content-encoding"), "gzip");
    assert_eq!(header(&res, "vary"), "accept-encoding");
    let gz = res.bytes().await.unwrap();
    assert!(
        gz.starts_with(&[0x1f, 0x8b]) && gz.len() < 600_000,
        "{}",
        gz.len()
    );
    let res = get(&bundle, &[("accept-encoding", "gzip;q=0")]).await;
    assert!(res.headers().get("content-encoding").is_none());
    let res = get(&format!("{}/docs/swagger-initializer.js", s.url), &[]).await;
    let etag = header(&res, "etag").to_owned();
    let js = res.text().await.unwrap();
    assert!(
        js.contains("\"../openapi.json\"") && js.contains("validatorUrl: null"),
        "{js}"
    );
    let again = client()
        .get(format!("{}/docs/swagger-initializer.js", s.url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    // Chassis endpoints: a user route cannot hide them, and they sit outside its limits.
    let res = get(&format!("{}/docs/nope.js", s.url), &[]).await;
    assert_eq!(res.status(), 404, "not an asset: the user's 404");
    s.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_documents_stay_with_the_routes_unless_told_to_move_and_the_ui_can_be_turned_off() {
    // A management port takes health, metrics and admin; the docs stay on the main port,
    // where the routes "Try it out" calls are.
    let s = start_books("server: { management: { port: 0 } }").await;
    let mgmt = format!("http://{}", s.running.management_addr().unwrap());
    for p in ["/openapi.json", "/openapi.yaml", "/docs/"] {
        assert_eq!(
            get(&format!("{}{p}", s.url), &[]).await.status(),
            200,
            "{p}"
        );
        assert_eq!(
            get(&format!("{mgmt}{p}"), &[]).await.status(),
            404,
            "{p}: not on the management port"
        );
    }
    assert_eq!(get(&format!("{mgmt}/health/live"), &[]).await.status(), 200);
    assert_eq!(
        get(&format!("{}/health/live", s.url), &[]).await.status(),
        404,
        "health moved"
    );
    // And what they publish there is the service's own contract.
    let doc: Value = get(&format!("{}/openapi.json", s.url), &[])
        .await
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/books/{id}"].is_object(), "{doc}");
    s.running.shutdown().await.unwrap();

    // `openapi.management: true` moves them to the management port.
    let s = start_books(
        "server: { management: { port: 0 } }
openapi: { management: true, path: /v3/api-docs.json, ui: { path: /swagger-ui } }",
    )
    .await;
    let mgmt = format!("http://{}", s.running.management_addr().unwrap());
    assert_eq!(
        get(&format!("{mgmt}/v3/api-docs.json"), &[]).await.status(),
        200
    );
    assert_eq!(
        get(&format!("{mgmt}/v3/api-docs.yaml"), &[]).await.status(),
        200
    );
    let js = get(&format!("{mgmt}/swagger-ui/swagger-initializer.js"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(js.contains("\"../v3/api-docs.json\""), "{js}");
    assert!(
        js.contains("supportedSubmitMethods: []"),
        "no \"Try it out\" where the routes are not: {js}"
    );
    for p in ["/v3/api-docs.json", "/swagger-ui/"] {
        assert_eq!(
            get(&format!("{}{p}", s.url), &[]).await.status(),
            404,
            "{p}: not on the main port"
        );
    }
    assert_eq!(get(&format!("{}/books/7", s.url), &[]).await.status(), 200);
    s.running.shutdown().await.unwrap();

    let s = start_books("openapi: { ui: { enabled: false } }").await;
    assert_eq!(
        get(&format!("{}/openapi.json", s.url), &[]).await.status(),
        200
    );
    assert_eq!(get(&format!("{}/docs/", s.url), &[]).await.status(), 404);
    s.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_a_spec_nothing_is_published() {
    let s = support::start("", Router::new()).await;
    for p in ["/openapi.json", "/openapi.yaml", "/docs", "/docs/"] {
        assert_eq!(
            get(&format!("{}{p}", s.url), &[]).await.status(),
            404,
            "{p}"
        );
    }
    s.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn config_mistakes_are_named_at_startup() {
    let e = Service::builder()
        .yaml("openapi:\n  uii: { path: /docs }\n  path: openapi.json\n")
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("inline config:2: openapi.uii: unknown key in `openapi`; did you mean `ui`?"),
        "{e}"
    );
    assert!(
        e.contains("inline config:3: openapi.path: expected a path starting with `/`"),
        "{e}"
    );
    let e = Service::builder()
        .yaml("openapi: { management: true }")
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("openapi.management: expected false without a management listener"),
        "{e}"
    );
    let e = Service::builder()
        .yaml("openapi: { ui: { path: /metrics } }")
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("openapi.ui.path: /metrics is already served by the chassis (metrics.path)"),
        "{e}"
    );
    // A spec file that is not there: the key, and where it was looked for.
    let svc = Service::builder()
        .yaml(TEST_BASE)
        .yaml("openapi: { file: no-such-api.yaml }")
        .build()
        .unwrap();
    let e = svc.start(Router::new()).await.unwrap_err().to_string();
    let cwd = std::env::current_dir().unwrap().join("no-such-api.yaml");
    assert!(
        e.contains(&format!(
            "openapi.file: cannot read the OpenAPI spec \"no-such-api.yaml\" ({}, relative to \
             the working directory)",
            cwd.display()
        )),
        "{e}"
    );
    // A code-first document that is not an object fails the start, saying so.
    let svc = Service::builder().yaml(TEST_BASE).build().unwrap();
    let e = svc
        .with_openapi(vec![1, 2])
        .start(Router::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the code-first spec must serialize to a JSON object"),
        "{e}"
    );
}

#[tokio::test]
async fn a_change_of_the_openapi_section_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    let config = |path: &str| {
        format!(
            "server:\n  host: 127.0.0.1\n  port: 0\n  management: {{ port: 0 }}\n  \
             shutdown: {{ drain_delay: 0s, grace: 10s }}\nopenapi:\n  path: {path}\n"
        )
    };
    std::fs::write(&file, config("/openapi.json")).unwrap();
    let (router, api) = openapi_support::books();
    let svc = Service::builder().file(&file).build().unwrap();
    let s = svc.with_openapi(api).start(router).await.unwrap();
    let mgmt = format!("http://{}", s.management_addr().unwrap());
    std::fs::write(&file, config("/api-docs.json")).unwrap();
    let report: Value = client()
        .post(format!("{mgmt}/admin/config/reload"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["result"], "success", "{report}");
    assert_eq!(
        report["restart_required"],
        json!(["openapi.path"]),
        "{report}"
    );
    assert_eq!(
        get(&format!("http://{}/openapi.json", s.local_addr()), &[])
            .await
            .status(),
        200,
        "still the started path"
    );
    s.shutdown().await.unwrap();
}
