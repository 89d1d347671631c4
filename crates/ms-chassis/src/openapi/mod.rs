//! OpenAPI: the service's contract, published beside the chassis endpoints with an offline
//! Swagger UI, and (part B) enforced on every request.
//!
//! The chassis takes the spec as a plain serializable document beside the user's plain
//! `Router` ([`Service::with_openapi`](crate::Service::with_openapi), typically utoipa's
//! `OpenApi` from `utoipa_axum`'s `split_for_parts`), so neither the core signatures nor
//! the router name a generator, and a spec-first file ends up as the same document. It is
//! served as JSON and YAML bytes serialized once at startup, with `servers` following a
//! validated `X-Forwarded-Prefix` (or `openapi.base_path`), because behind a prefix-stripping
//! proxy only the caller's side knows the public prefix. The Swagger UI is embedded from
//! npm `swagger-ui-dist` and uses only relative URLs, so it works offline and under any
//! prefix, where springdoc, which caches the first request's URL, does not.
//!
//! ```no_run
//! use ms_chassis::prelude::*;
//! use utoipa_axum::{router::OpenApiRouter, routes};
//!
//! /// Says hello.
//! #[utoipa::path(get, path = "/hello", responses((status = 200, body = String)))]
//! async fn hello() -> &'static str { "hello" }
//!
//! # async fn run() -> ms_chassis::Result<()> {
//! let svc = Service::from_env()?;
//! let (router, api) = OpenApiRouter::new().routes(routes!(hello)).split_for_parts();
//! svc.with_openapi(api).serve(router).await // /openapi.json, /openapi.yaml, /docs
//! # }
//! ```

mod code_first;
mod config;
mod publish;
mod ui;

// Part B (spec-first loading, bundling, request/response validation) declares its modules
// here: document, bundle, dialect, compiled, params, media, security, violation, response,
// validate.
// ---- part B modules: begin ----
// ---- part B modules: end ----

use std::sync::Arc;

use axum::Router;
use serde_json::Value;

pub use config::{OpenApiSection, ResponseValidation, UiSection, ValidationSection};
pub use ui::SWAGGER_UI_VERSION;

use crate::ServiceSection;

/// Why the spec in effect could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenApiError {
    /// The document given to [`Service::with_openapi`](crate::Service::with_openapi) did
    /// not serialize to an OpenAPI object.
    #[error("the code-first spec: {0}")]
    CodeFirst(String),
    /// `openapi.file` is set, but spec-first loading is not part of this build.
    #[error("openapi.file ({0}): spec-first loading is not available yet")]
    SpecFirstUnavailable(String),
}

/// The spec in effect: the bundled, prepared OpenAPI document the service publishes and
/// validates against. A thin wrapper of its JSON, so that a code-first document and a
/// spec-first one loaded from files are the same thing from here on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpecInEffect(pub(crate) Value);

/// The spec in effect for `config`: the spec-first file when `openapi.file` is set, else
/// the code-first document, else none.
pub(crate) fn spec_in_effect(
    config: &OpenApiSection,
    code_first: Option<Result<Value, String>>,
    service: &ServiceSection,
) -> Result<Option<SpecInEffect>, OpenApiError> {
    if let Some(file) = &config.file {
        // Part B: load and bundle `file` here, giving `SpecInEffect(bundled)`.
        return Err(OpenApiError::SpecFirstUnavailable(file.clone()));
    }
    match code_first {
        None => Ok(None),
        Some(doc) => {
            let doc = doc.map_err(OpenApiError::CodeFirst)?;
            code_first::prepare(doc, service)
                .map(|d| Some(SpecInEffect(d)))
                .map_err(OpenApiError::CodeFirst)
        }
    }
}

/// The chassis routes that publish `spec` (the JSON and YAML documents, and the Swagger UI
/// when `openapi.ui.enabled`), and the exact paths they serve. `chassis` lists what
/// `openapi.include_chassis` adds: the metrics path when metrics are on.
pub(crate) fn routes(
    spec: &SpecInEffect,
    config: &OpenApiSection,
    metrics_path: Option<&str>,
) -> (Router, Vec<String>) {
    let mut doc = spec.0.clone();
    if config.include_chassis {
        publish::add_chassis_endpoints(&mut doc, metrics_path);
    }
    let published = Arc::new(publish::Published::new(doc, config));
    let mut router = published.routes(config);
    let mut paths: Vec<String> = publish::Published::paths(config).into();
    if config.ui.enabled {
        let (ui, ui_paths) = ui::routes(config);
        router = router.merge(ui);
        paths.extend(ui_paths);
    }
    (router, paths)
}
