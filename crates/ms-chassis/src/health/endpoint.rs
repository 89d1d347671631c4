//! The probe endpoints and their two response shapes: MicroProfile Health (default) and
//! Spring Boot Actuator (`?format=spring` or `Accept: application/vnd.spring-boot.actuator.v3+json`).
//!
//! Everyone gets the status and each check's name and status: all that Kubernetes or a load
//! balancer reads. The checks' data (errors, URLs, breaker states, latencies) tells whoever
//! reads it what the service depends on and how it fails, so by default
//! (`health.show_details: when_authorized`) only a caller the admin endpoints would let in
//! sees it, as Spring Boot does.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::ShowDetails;
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

/// Whether the caller of a request may see the checks' details under `when_authorized`:
/// the service gives the admin endpoints' rule.
pub(crate) type Authorize = Arc<dyn Fn(&HeaderMap) -> bool + Send + Sync>;

#[derive(Clone)]
struct Probes {
    health: Health,
    authorize: Authorize,
}

impl Probes {
    fn details_shown(&self, headers: &HeaderMap) -> bool {
        match self.health.show_details() {
            ShowDetails::Never => false,
            ShowDetails::WhenAuthorized => (self.authorize)(headers),
            ShowDetails::Always => true,
        }
    }
}

pub(crate) fn routes(health: Health, authorize: Authorize) -> Router {
    Router::new()
        .route("/healthcheck", get(pyms_healthcheck))
        .route("/health", get(all))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health/started", get(started))
        .with_state(Probes { health, authorize })
}

#[derive(serde::Deserialize)]
struct FormatQuery {
    format: Option<String>,
}

/// PyMS compatibility: `200 OK` while live.
async fn pyms_healthcheck(State(p): State<Probes>) -> Response {
    match p.health.evaluate(&[Probe::Liveness]).await.status {
        Status::Up => (StatusCode::OK, "OK").into_response(),
        Status::Down => (StatusCode::SERVICE_UNAVAILABLE, "DOWN").into_response(),
    }
}

async fn all(s: State<Probes>, q: Query<FormatQuery>, h: HeaderMap) -> Response {
    probe(
        s,
        q,
        h,
        &[Probe::Liveness, Probe::Readiness, Probe::Startup],
    )
    .await
}
async fn live(s: State<Probes>, q: Query<FormatQuery>, h: HeaderMap) -> Response {
    probe(s, q, h, &[Probe::Liveness]).await
}
async fn ready(s: State<Probes>, q: Query<FormatQuery>, h: HeaderMap) -> Response {
    probe(s, q, h, &[Probe::Readiness]).await
}
async fn started(s: State<Probes>, q: Query<FormatQuery>, h: HeaderMap) -> Response {
    probe(s, q, h, &[Probe::Startup]).await
}

async fn probe(
    State(p): State<Probes>,
    Query(q): Query<FormatQuery>,
    headers: HeaderMap,
    probes: &[Probe],
) -> Response {
    let details = p.details_shown(&headers);
    let report = p.health.evaluate(probes).await;
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
        (SPRING_MEDIA_TYPE, spring_body(&report, details))
    } else {
        ("application/json", microprofile_body(&report, details))
    };
    (code, [(header::CONTENT_TYPE, media_type)], body.to_string()).into_response()
}

/// `details`: with each check's `data`.
fn microprofile_body(r: &Report, details: bool) -> Value {
    let checks: Vec<Value> = r
        .checks
        .iter()
        .map(|(name, o)| {
            let mut c = json!({"name": name, "status": o.status.as_str()});
            if details && !o.data.is_empty() {
                c["data"] = Value::Object(o.data.clone());
            }
            c
        })
        .collect();
    json!({"status": r.status.as_str(), "checks": checks})
}

/// `details`: with each component's `details`.
fn spring_body(r: &Report, details: bool) -> Value {
    let mut components = Map::new();
    for (name, o) in &r.checks {
        let mut c = json!({"status": o.status.as_str()});
        if details && !o.data.is_empty() {
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
            microprofile_body(&r, true),
            json!({"status":"DOWN","checks":[
                {"name":"db","status":"UP"},
                {"name":"cache","status":"DOWN","data":{"error":"refused"}}]})
        );
        assert_eq!(
            spring_body(&r, true),
            json!({"status":"DOWN","components":{
                "db":{"status":"UP"},
                "cache":{"status":"DOWN","details":{"error":"refused"}}}})
        );
    }

    #[test]
    fn without_details_only_names_and_statuses_show() {
        let r = Report {
            status: Status::Down,
            checks: vec![
                ("db".into(), CheckOutcome::up().with("latency_ms", 3)),
                (
                    "cache".into(),
                    CheckOutcome::down("refused: http://cache:6379"),
                ),
            ],
        };
        assert_eq!(
            microprofile_body(&r, false),
            json!({"status":"DOWN","checks":[
                {"name":"db","status":"UP"},
                {"name":"cache","status":"DOWN"}]})
        );
        assert_eq!(
            spring_body(&r, false),
            json!({"status":"DOWN","components":{
                "db":{"status":"UP"},
                "cache":{"status":"DOWN"}}})
        );
    }
}
