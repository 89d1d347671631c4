//! [[ name ]] on a real socket: the service as config.yaml describes it, started on a free
//! loopback port with `ms_chassis::testing`, called over HTTP, and shut down.

use ms_chassis::testing::{self, TestService};
use serde_json::{Value, json};

[% if openapi != "none" %]
/// In tests, a response that breaks the contract (an undocumented status, a body off its
/// schema) becomes a 500 problem naming what broke, so the test that caused it fails.
const CHECK_RESPONSES: &str = "openapi: { validation: { responses: reject } }";

/// Starts the service from config.yaml, with its responses checked and `yaml` over it.
async fn start(yaml: &str) -> TestService {
    let svc = ms_chassis::Service::builder()
        .file("config.yaml")
        .yaml(testing::TEST_BASE)
        .yaml(CHECK_RESPONSES)
        .yaml(yaml)
        .build()
        .expect("the config is valid");
[% else %]
/// Starts the service from config.yaml, with `yaml` over it.
async fn start(yaml: &str) -> TestService {
    let svc = testing::service_from_file("config.yaml", yaml).expect("the config is valid");
[% endif %]
    let (svc, router) = [[ crate_name ]]::app(svc).expect("the app builds");
    TestService::start_service(svc, router)
        .await
        .expect("the service starts")
}

/// `POST /items` with `body`: the status and the JSON answer (an item, or a problem).
async fn post_item(app: &TestService, body: Value) -> (u16, Value) {
    let res = app
        .client()
        .post(app.url("/items"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn an_item_is_stored_and_read_back() {
    let app = start("").await;
    let (status, item) = post_item(&app, json!({ "name": "first" })).await;
    assert_eq!(status, 201, "{item}");
    assert_eq!(item["name"], "first");

    let res = app.get(&format!("/items/{}", item["id"])).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), item);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_missing_item_is_a_404_problem() {
    let app = start("").await;
    let res = app.get("/items/42").await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_bad_item_is_refused_before_it_is_stored() {
    let app = start("").await;
    let (status, problem) = post_item(&app, json!({ "name": "" })).await;
    assert_eq!(status, 400, "{problem}");
[% if openapi != "none" %]
    // The contract refused it, naming the field.
    assert_eq!(problem["errors"][0]["location"], "body/name", "{problem}");
[% endif %]
    // Nothing was stored: the next item is the first.
    let (status, item) = post_item(&app, json!({ "name": "first" })).await;
    assert_eq!((status, &item["id"]), (201, &json!(1)), "{item}");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_store_is_bounded_by_app_max_items() {
    let app = start("app: { max_items: 1 }").await;
    for expected in [201, 507] {
        let (status, body) = post_item(&app, json!({ "name": "one" })).await;
        assert_eq!(status, expected, "{body}");
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn it_is_ready_and_measured() {
    let app = start("").await;
    let ready = app.get("/health/ready").await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "UP", "{body}");
    // Requests are measured by route template, never by raw path.
    assert_eq!(app.get("/items/7").await.unwrap().status(), 404);
    let metrics = app.get("/metrics").await.unwrap().text().await.unwrap();
    let series = metrics
        .lines()
        .find(|l| l.starts_with("http_server_request_duration_seconds_count{"))
        .unwrap_or_else(|| panic!("no request duration series in:\n{metrics}"));
    assert!(series.contains(r#"http_route="/items/{id}""#), "{series}");
    app.shutdown().await.unwrap();
}
[% if openapi != "none" %]

#[tokio::test]
async fn the_contract_is_published() {
    let app = start("").await;
    let res = app.get("/openapi.json").await.unwrap();
    let spec: Value = res.json().await.unwrap();
    assert!(spec["paths"]["/items/{id}"]["get"].is_object(), "{spec}");
    assert!(spec["paths"]["/items"]["post"].is_object(), "{spec}");
    app.shutdown().await.unwrap();
}
[% endif %]

/// Every profile the deployments use must load, so a typo fails here and not at rollout.
#[test]
fn every_shipped_profile_loads() {
    for profile in ["dev", "prod"] {
        ms_chassis::config::ConfigLoader::new()
            .file("config.yaml")
            .profile(profile)
            .load()
            .unwrap_or_else(|e| panic!("config.yaml with config.{profile}.yaml: {e}"));
    }
}

/// The Helm chart reads its own copy of the config files (Helm cannot read files outside
/// the chart): a change made at the root must be copied there too.
#[test]
fn the_charts_config_files_match_the_services() {
    for file in ["config.yaml", "config.prod.yaml"] {
        let chart_copy = format!("deploy/helm/[[ name ]]/files/{file}");
        let ours = std::fs::read_to_string(file).unwrap();
        let theirs = std::fs::read_to_string(&chart_copy).unwrap();
        assert!(ours == theirs, "{chart_copy} is stale: copy {file} over it");
    }
}
