//! A small API documented code-first with utoipa, for the OpenAPI tests; and the peers that
//! judge what the chassis publishes (Python `openapi-spec-validator`).
#![allow(dead_code, unreachable_pub)]

mod spec_validator;
#[allow(unused_imports)]
pub use spec_validator::assert_valid_openapi;

use ms_chassis::axum::Router;
use ms_chassis::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

/// A book.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Book {
    /// Its id.
    pub id: u32,
    /// Its title.
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// When it came out: an example a YAML 1.1 reader would take for a date, unquoted.
    #[schema(example = "2026-12-02", format = Date)]
    pub published: Option<String>,
}

/// How many books to list.
#[derive(Deserialize, IntoParams)]
pub struct ListQuery {
    /// At most this many.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Lists books.
#[utoipa::path(get, path = "/books", params(ListQuery),
    responses((status = 200, description = "The books", body = [Book])))]
async fn list_books(Query(q): Query<ListQuery>) -> Json<Vec<Book>> {
    let n = q.limit.unwrap_or(2).min(100);
    Json(
        (1..=n)
            .map(|id| Book {
                id,
                title: format!("Book number {id}"),
                published: None,
            })
            .collect(),
    )
}

/// Finds a book by id.
#[utoipa::path(get, path = "/books/{id}", params(("id" = u32, Path, description = "The id")),
    responses((status = 200, body = Book), (status = 404)))]
async fn get_book(Path(id): Path<u32>) -> Result<Json<Book>, StatusCode> {
    if id == 0 {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(Json(Book {
        id,
        title: format!("The live answer for book {id}"),
        published: Some("2026-12-02".to_owned()),
    }))
}

/// Adds a book.
#[utoipa::path(post, path = "/books", request_body = Book,
    responses((status = 201, body = Book)))]
async fn add_book(Json(b): Json<Book>) -> (StatusCode, Json<Book>) {
    (StatusCode::CREATED, Json(b))
}

/// The router and its spec, split as a user does.
pub fn books() -> (Router, utoipa::openapi::OpenApi) {
    OpenApiRouter::new()
        .routes(routes!(list_books, add_book))
        .routes(routes!(get_book))
        .split_for_parts()
}
