//! [[ name ]]: its typed config, its routes and its readiness check. `main.rs` serves them;
//! the tests in `tests/` start them on a real socket with `ms_chassis::testing`.
//!
//! The store is in memory, to keep the template small: put your database behind the same
//! two handlers, and make the readiness check ask it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

[% if openapi == "code" %]
// `utoipa_axum::routes!` names `axum`: the chassis re-exports the one it is built with.
use ms_chassis::axum;
[% endif %]
use ms_chassis::prelude::*;
use serde::{Deserialize, Serialize};
[% if openapi == "code" %]
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
[% endif %]

/// The `app:` section of the config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// How many items the store keeps; `POST /items` answers 507 beyond it.
    pub max_items: usize,
}

/// An item, as stored and as answered.
#[derive(Debug, Clone, Serialize[% if openapi == "code" %], ToSchema[% endif %])]
pub struct Item {
    /// Given by the service, from 1.
    pub id: u64,
    /// What the item is called.
    pub name: String,
}

/// The body of `POST /items`.
#[derive(Debug, Deserialize[% if openapi == "code" %], ToSchema[% endif %])]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// What the item is called: 1 to 100 characters.
[% if openapi == "code" %]
    #[schema(min_length = 1, max_length = 100)]
[% endif %]
    pub name: String,
}

/// The items, shared by every request.
#[derive(Clone)]
struct Store(Arc<Mutex<Items>>);

struct Items {
    by_id: BTreeMap<u64, Item>,
    max: usize,
}

impl Store {
    fn new(max: usize) -> Self {
        Self(Arc::new(Mutex::new(Items {
            by_id: BTreeMap::new(),
            max,
        })))
    }

    /// The items, or a 500 if a handler panicked while changing them.
    fn lock(&self) -> Result<MutexGuard<'_, Items>, Problem> {
        self.0.lock().map_err(|_| {
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR).with_detail("the store is unusable")
        })
    }
}

/// The service's routes on `svc`, with its readiness check registered[% if openapi == "code" %] and its
/// OpenAPI document attached[% endif %]. `main` serves what this returns; so do the tests.
pub fn app(svc: Service) -> ms_chassis::Result<(Service, Router)> {
    let config: AppConfig = svc.config().app()?;
    let store = Store::new(config.max_items);
    // Readiness: DOWN takes this instance out of the load balancer. Ask what the instance
    // cannot serve without (its database); a poisoned store stands in for that here.
    let probe = store.clone();
    svc.health().readiness("store", move || {
        let usable = !probe.0.is_poisoned();
        async move { usable }
    });
[% if openapi == "code" %]
    let (router, api) = OpenApiRouter::new()
        .routes(routes!(create_item))
        .routes(routes!(get_item))
        .with_state(store)
        .split_for_parts();
    Ok((svc.with_openapi(api), router))
[% else %]
    let router = Router::new()
        .route("/items", post(create_item))
        .route("/items/{id}", get(get_item))
        .with_state(store);
    Ok((svc, router))
[% endif %]
}

/// Stores a new item and answers it, with its id.
[% if openapi == "code" %]
#[utoipa::path(post, path = "/items", tag = "items", request_body = NewItem, responses(
    (status = 201, description = "The item, stored", body = Item),
    (status = 400, description = "The body breaks the contract", content_type = "application/problem+json"),
    (status = 507, description = "The store is full", content_type = "application/problem+json"),
))]
[% endif %]
async fn create_item(
    State(store): State<Store>,
    Json(new): Json<NewItem>,
) -> Result<(StatusCode, Json<Item>), Problem> {
[% if openapi == "none" %]
    // With an OpenAPI contract, the chassis checks this before the handler runs.
    if new.name.is_empty() || new.name.chars().count() > 100 {
        let detail = "name: expected 1 to 100 characters";
        return Err(Problem::new(StatusCode::BAD_REQUEST).with_detail(detail));
    }
[% endif %]
    let mut items = store.lock()?;
    if items.by_id.len() >= items.max {
        return Err(Problem::new(StatusCode::INSUFFICIENT_STORAGE)
            .with_detail("the store is full: raise app.max_items"));
    }
    let id = items.by_id.last_key_value().map_or(1, |(id, _)| id + 1);
    let item = Item { id, name: new.name };
    items.by_id.insert(id, item.clone());
    Ok((StatusCode::CREATED, Json(item)))
}

/// Answers the item with this id.
[% if openapi == "code" %]
#[utoipa::path(get, path = "/items/{id}", tag = "items",
    params(("id" = u64, Path, description = "The item's id", minimum = 1)),
    responses(
        (status = 200, description = "The item", body = Item),
        (status = 404, description = "No item has this id", content_type = "application/problem+json"),
    ))]
[% endif %]
async fn get_item(State(store): State<Store>, Path(id): Path<u64>) -> Result<Json<Item>, Problem> {
    let items = store.lock()?;
    let item = items.by_id.get(&id).cloned().ok_or_else(|| {
        Problem::new(StatusCode::NOT_FOUND).with_detail(format!("no item has the id {id}"))
    })?;
    Ok(Json(item))
}
