//! A small API documented code-first with utoipa, for the OpenAPI tests; and the peers that
//! judge what the chassis publishes (Python `openapi-spec-validator`).
#![allow(dead_code, unreachable_pub)]

use std::path::Path as FsPath;
use std::process::Command;

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

const VALIDATOR_INSTALL: &str =
    "scripts/test.sh installs it; by hand: python3 -m pip install openapi-spec-validator==0.9.0";

/// Runs `openapi-spec-validator` 0.9.0 on each file, and checks that a YAML file reads as
/// the same document as the JSON file before it. Panics with the validator's message.
pub fn assert_valid_openapi(files: &[&FsPath]) {
    let python =
        which("python3").unwrap_or_else(|| panic!("python3 is required; {VALIDATOR_INSTALL}"));
    let probe = Command::new(&python)
        .args(["-c", "import openapi_spec_validator, importlib.metadata as m; print(m.version('openapi-spec-validator'))"])
        .output()
        .expect("python3 runs");
    let version = String::from_utf8_lossy(&probe.stdout).trim().to_owned();
    assert!(
        probe.status.success() && version == "0.9.0",
        "openapi-spec-validator 0.9.0 is required (found {version:?}: {}); {VALIDATOR_INSTALL}",
        String::from_utf8_lossy(&probe.stderr)
    );
    const CHECK: &str = r#"
import json, sys, yaml
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename
previous = None
for f in sys.argv[1:]:
    spec, _ = read_from_filename(f)
    validate(spec)
    if f.endswith(".yaml"):
        assert spec == previous, f"{f} does not read as the JSON before it"
    previous = spec
    print("valid", f)
"#;
    let out = Command::new(&python)
        .arg("-c")
        .arg(CHECK)
        .args(files)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "openapi-spec-validator rejected the spec:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().count(), files.len(), "{printed}");
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}
