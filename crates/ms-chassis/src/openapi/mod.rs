//! OpenAPI: the service's contract, published beside the chassis endpoints with an offline
//! Swagger UI, and enforced on every request before the handler runs.
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

// Spec-first loading and bundling, and request/response validation.
mod bundle;
mod compiled;
mod dialect;
mod document;
mod media;
mod meta;
mod params;
mod response;
mod routes;
mod security;
pub mod validate;
mod violation;

use std::sync::Arc;

use axum::Router;
use serde_json::Value;

pub use compiled::Validator;
pub use config::{OpenApiSection, ResponseValidation, UiSection, ValidationSection};
pub use document::{Diagnostic, Document, SpecError, SpecVersion};
pub use security::{Credential, CredentialKind, CredentialVerifier};
pub use ui::SWAGGER_UI_VERSION;
pub use validate::{ValidationLayer, ValidationOptions, ValidationService};

use crate::ServiceSection;

/// Why the spec in effect could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenApiError {
    /// The document given to [`Service::with_openapi`](crate::Service::with_openapi) did
    /// not serialize to an OpenAPI object.
    #[error("the code-first spec: {0}")]
    CodeFirst(String),
    /// The spec-first file (`openapi.file`), or the spec in effect, is not a valid
    /// OpenAPI document: every problem, with its file and line.
    #[error("{0}")]
    Spec(#[from] SpecError),
    /// `openapi.strict_routes` is on, and the spec and the routes differ: operations of
    /// the spec that no route serves, and routes (`METHOD /template`) that no operation
    /// describes.
    #[error("openapi.strict_routes: {}", routes_mismatch(.operations_without_routes, .routes_without_operations))]
    RoutesMismatch {
        /// Operations of the spec with no route, as `METHOD /template`.
        operations_without_routes: Vec<String>,
        /// Routes that no operation describes, as `METHOD /template` (`ANY` for a route
        /// that takes every method).
        routes_without_operations: Vec<String>,
    },
    /// The validation failure counters could not be registered.
    #[error("registering the OpenAPI validation metrics: {0}")]
    Metrics(String),
    /// The file `openapi.file` names could not be read.
    #[error(
        "openapi.file: cannot read the OpenAPI spec {file:?} ({}{}): {source}",
        resolved.display(),
        if std::path::Path::new(file).is_relative() { ", relative to the working directory" } else { "" }
    )]
    File {
        /// `openapi.file` as configured.
        file: String,
        /// The path it was read at.
        resolved: std::path::PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
}

/// The spec in effect: the bundled, prepared OpenAPI document the service publishes and
/// validates against, checked against the OpenAPI meta-schema. A code-first document and
/// a spec-first one loaded from files are the same thing from here on.
#[derive(Debug)]
pub(crate) struct SpecInEffect(pub(crate) Document);

/// The spec in effect for `config`: the spec-first file when `openapi.file` is set, else
/// the code-first document, else none.
pub(crate) fn spec_in_effect(
    config: &OpenApiSection,
    code_first: Option<Result<Value, String>>,
    service: &ServiceSection,
) -> Result<Option<SpecInEffect>, OpenApiError> {
    if let Some(file) = &config.file {
        return match Document::load(file) {
            Ok(doc) => Ok(Some(SpecInEffect(doc))),
            // The file itself (not one its `$ref`s name): say which key, and where it
            // was looked for.
            Err(SpecError::Read { path, source }) if path == std::path::Path::new(file) => {
                Err(OpenApiError::File {
                    file: file.clone(),
                    resolved: std::path::absolute(&path).unwrap_or(path),
                    source,
                })
            }
            Err(e) => Err(e.into()),
        };
    }
    match code_first {
        None => Ok(None),
        Some(doc) => {
            let doc = doc.map_err(OpenApiError::CodeFirst)?;
            let doc = code_first::prepare(doc, service).map_err(OpenApiError::CodeFirst)?;
            Ok(Some(SpecInEffect(Document::from_value(doc)?)))
        }
    }
}

fn routes_mismatch(operations: &[String], routes: &[String]) -> String {
    let mut parts = Vec::new();
    if !operations.is_empty() {
        parts.push(format!(
            "{} operation(s) of the spec have no route: {}",
            operations.len(),
            operations.join(", ")
        ));
    }
    if !routes.is_empty() {
        parts.push(format!(
            "{} route(s) have no operation in the spec: {}",
            routes.len(),
            routes.join(", ")
        ));
    }
    parts.join("; ")
}

/// Reports the operations of `spec` that no route of `router` serves, and the routes no
/// operation describes: warnings, or with `openapi.strict_routes` an error listing them.
pub(crate) async fn check_routes(
    spec: &SpecInEffect,
    config: &OpenApiSection,
    router: &Router,
) -> Result<(), OpenApiError> {
    let report = routes::compare(spec.0.as_value(), router).await;
    if !report.routes_listed {
        tracing::warn!(
            "the router's routes could not be listed (this axum version's Debug output is \
             not the one ms-chassis reads): routes without an operation are not reported"
        );
    }
    let (operations, routes) = (
        report.operations_without_routes,
        report.routes_without_operations,
    );
    if operations.is_empty() && routes.is_empty() {
        return Ok(());
    }
    if config.strict_routes {
        return Err(OpenApiError::RoutesMismatch {
            operations_without_routes: operations,
            routes_without_operations: routes,
        });
    }
    if !operations.is_empty() {
        tracing::warn!(
            operations = %operations.join(", "),
            "operations of the OpenAPI spec have no route (openapi.strict_routes: true makes this a startup error)"
        );
    }
    if !routes.is_empty() {
        tracing::warn!(
            routes = %routes.join(", "),
            "routes have no operation in the OpenAPI spec: they are not in the published contract, and are served unvalidated (a method the spec's path lacks is refused with 405 while request validation is on); openapi.strict_routes: true makes this a startup error"
        );
    }
    Ok(())
}

/// The validator of the requests (and responses) to the user's routes, when `spec` is in
/// effect and `openapi.validation` checks anything. `body_limit` is
/// `server.limits.body_size`: a body is collected for checking up to it.
pub(crate) fn validator(
    spec: &SpecInEffect,
    config: &ValidationSection,
    body_limit: u64,
    metrics: Option<&prometheus::Registry>,
    verifier: Option<Arc<dyn CredentialVerifier>>,
) -> Result<Option<Validator>, OpenApiError> {
    if !config.requests && config.responses == ResponseValidation::Off {
        return Ok(None);
    }
    let options = ValidationOptions {
        requests: config.requests,
        strict: config.strict,
        max_errors: config.max_errors,
        responses: config.responses,
        body_limit: usize::try_from(body_limit).unwrap_or(usize::MAX),
    };
    let mut validator = Validator::compile(&spec.0, options)?;
    if let Some(registry) = metrics {
        validator = validator
            .with_metrics(registry)
            .map_err(|e| OpenApiError::Metrics(e.to_string()))?;
    }
    if let Some(verifier) = verifier {
        std::sync::Arc::make_mut(&mut validator.inner).verifier = Some(verifier);
    }
    Ok(Some(validator))
}

/// The chassis routes that publish `spec` (the JSON and YAML documents, and the Swagger UI
/// when `openapi.ui.enabled`), and the exact paths they serve. `chassis` lists what
/// `openapi.include_chassis` adds: the metrics path when metrics are on.
pub(crate) fn routes(
    spec: &SpecInEffect,
    config: &OpenApiSection,
    metrics_path: Option<&str>,
) -> (Router, Vec<String>) {
    let mut doc = spec.0.as_value().clone();
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
