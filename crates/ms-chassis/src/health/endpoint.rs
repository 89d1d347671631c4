//! The probe endpoints and their two response shapes: MicroProfile Health (default) and
//! Spring Boot Actuator (`?format=spring` or `Accept: application/vnd.spring-boot.actuator.v3+json`).

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::{Health, Probe, Report, Status};

const SPRING_MEDIA_TYPE: &str = "application/vnd.spring-boot.actuator.v3+json";

/// Every path [`routes`] serves, for exact-match dispatch.
pub(crate) const PATHS: [&str; 5] = [
    "/healthcheck",
    "/health",
    "/health/live",
    "/health/ready",
    "/health/started",
];

pub(crate) fn routes(health: Health) -> Router {
    Router::new()
        .route("/healthcheck", get(pyms_healthcheck))
        .route("/health", get(all))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health/started", get(started))
        .with_state(health)
}

#[derive(serde::Deserialize)]
struct FormatQuery {
    format: Option<String>,
}

/// PyMS compatibility: `200 OK` while live.
async fn pyms_healthcheck(State(h): State<Health>) -> Response {
    match h.evaluate(&[Probe::Liveness]).await.status {
        Status::Up => (StatusCode::OK, "OK").into_response(),
        Status::Down => (StatusCode::SERVICE_UNAVAILABLE, "DOWN").into_response(),
    }
}

async fn all(s: State<Health>, q: Query<FormatQuery>, h: HeaderMap) -> Response {
    probe(
        s,
        q,
        h,
        &[Probe::Liveness, Probe::Readiness, Probe::Startup],
    )
    .await
}
async fn live(s: State<Health>, q: Query<FormatQuery>, h: HeaderMap) -> Response {
    probe(s, q, h, &[Probe::Liveness]).await
}
async fn ready(s: State<Health>, q: Query<FormatQuery>, h: HeaderMap) -> Response {
    probe(s, q, h, &[Probe::Readiness]).await
}
async fn started(s: State<Health>, q: Query<FormatQuery>, h: HeaderMap) -> Response {
    probe(s, q, h, &[Probe::Startup]).await
}

async fn probe(
    State(health): State<Health>,
    Query(q): Query<FormatQuery>,
    headers: HeaderMap,
    probes: &[Probe],
) -> Response {
    let report = health.evaluate(probes).await;
    let code = match report.status {
        Status::Up => StatusCode::OK,
        Status::Down => StatusCode::SERVICE_UNAVAILABLE,
    };
    let spring = q.format.as_deref() == Some("spring")
        || headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(SPRING_MEDIA_TYPE));
    let (media_type, body) = if spring {
        (SPRING_MEDIA_TYPE, spring_body(&report))
    } else {
        ("application/json", microprofile_body(&report))
    };
    (code, [(header::CONTENT_TYPE, media_type)], body.to_string()).into_response()
}

fn microprofile_body(r: &Report) -> Value {
    let checks: Vec<Value> = r
        .checks
        .iter()
        .map(|(name, o)| {
            let mut c = json!({"name": name, "status": o.status.as_str()});
            if !o.data.is_empty() {
                c["data"] = Value::Object(o.data.clone());
            }
            c
        })
        .collect();
    json!({"status": r.status.as_str(), "checks": checks})
}

fn spring_body(r: &Report) -> Value {
    let mut components = Map::new();
    for (name, o) in &r.checks {
        let mut c = json!({"status": o.status.as_str()});
        if !o.data.is_empty() {
            c["details"] = Value::Object(o.data.clone());
        }
        components.insert(name.clone(), c);
    }
    json!({"status": r.status.as_str(), "components": components})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::CheckOutcome;

    #[test]
    fn shapes_match_microprofile_and_spring() {
        let r = Report {
            status: Status::Down,
            checks: vec![
                ("db".into(), CheckOutcome::up()),
                ("cache".into(), CheckOutcome::down("refused")),
            ],
        };
        assert_eq!(
            microprofile_body(&r),
            json!({"status":"DOWN","checks":[
                {"name":"db","status":"UP"},
                {"name":"cache","status":"DOWN","data":{"error":"refused"}}]})
        );
        assert_eq!(
            spring_body(&r),
            json!({"status":"DOWN","components":{
                "db":{"status":"UP"},
                "cache":{"status":"DOWN","details":{"error":"refused"}}}})
        );
    }
}
