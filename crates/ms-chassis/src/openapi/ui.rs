//! The Swagger UI at `openapi.ui.path`, served from assets embedded in the binary.
//!
//! Every URL the page uses is relative: its assets (`./5.35.0/swagger-ui-bundle.js`), its
//! initializer and the spec (`../openapi.json`, resolved against the page's own address in
//! the browser). So the same bytes work at `/docs/` and, behind a proxy that strips `/api`,
//! at `/api/docs/`, and nothing is rendered per request; the spec's `servers` carries the
//! prefix for "Try it out" (see `publish`). `validatorUrl` is off, so the page calls nothing
//! but the service.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::OpenApiSection;

/// The vendored `swagger-ui-dist` release (`scripts/vendor-swagger-ui.sh`), which names the
/// assets' directory so that they can be cached for good.
pub const SWAGGER_UI_VERSION: &str = "5.35.0";

const BUNDLE_JS: &[u8] = include_bytes!("assets/swagger-ui-bundle.js");
const BUNDLE_JS_GZ: &[u8] = include_bytes!("assets/swagger-ui-bundle.js.gz");
const CSS: &[u8] = include_bytes!("assets/swagger-ui.css");
const CSS_GZ: &[u8] = include_bytes!("assets/swagger-ui.css.gz");
const FAVICON_32: &[u8] = include_bytes!("assets/favicon-32x32.png");
const FAVICON_16: &[u8] = include_bytes!("assets/favicon-16x16.png");
const LICENSE: &[u8] = include_bytes!("assets/LICENSE");
const NOTICE: &[u8] = include_bytes!("assets/NOTICE");

/// The page's Content-Security-Policy: its own scripts and styles only (Swagger UI sets
/// inline styles), images from itself or `data:`; requests anywhere, for "Try it out"
/// against the spec's `servers`.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src *; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One embedded file: its name under the versioned directory, type, bytes, and the same
/// gzip-encoded (by the vendoring script) for the large ones.
type Asset = (
    &'static str,
    &'static str,
    &'static [u8],
    Option<&'static [u8]>,
);

const ASSETS: [Asset; 6] = [
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        BUNDLE_JS,
        Some(BUNDLE_JS_GZ),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        CSS,
        Some(CSS_GZ),
    ),
    ("favicon-32x32.png", "image/png", FAVICON_32, None),
    ("favicon-16x16.png", "image/png", FAVICON_16, None),
    ("LICENSE", "text/plain; charset=utf-8", LICENSE, None),
    ("NOTICE", "text/plain; charset=utf-8", NOTICE, None),
];

/// The UI's routes and the exact paths they serve.
pub(crate) fn routes(config: &OpenApiSection) -> (Router, Vec<String>) {
    let ui = config.ui.path.as_str();
    let dir = format!("{ui}/");
    let mut paths = vec![ui.to_owned(), dir.clone(), format!("{dir}index.html")];
    // `/docs` -> `docs/`: relative, so that it stays under a stripped prefix.
    let last = ui.rsplit('/').next().unwrap_or_default();
    let location = HeaderValue::from_str(&format!("{last}/"))
        .expect("ui.path holds only unreserved characters");
    let html = page();
    let init = initializer(config);
    let mut router = Router::new()
        .route(
            ui,
            get(move || async move {
                (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
            }),
        )
        .route(&dir, get(move || async move { html_response(html) }))
        .route(
            &format!("{dir}index.html"),
            get(move || async move { html_response(html) }),
        );
    let init_path = format!("{dir}swagger-initializer.js");
    paths.push(init_path.clone());
    router = router.route(
        &init_path,
        get(move |h: axum::http::HeaderMap| async move {
            let (etag, body) = &*init;
            if h.get(header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes() == etag.as_bytes())
            {
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag.clone())]).into_response();
            }
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/javascript; charset=utf-8"),
                    ),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                    (header::ETAG, etag.clone()),
                ],
                body.clone(),
            )
                .into_response()
        }),
    );
    for (name, ty, bytes, gzipped) in ASSETS {
        let path = format!("{dir}{SWAGGER_UI_VERSION}/{name}");
        paths.push(path.clone());
        router = router.route(
            &path,
            get(move |h: axum::http::HeaderMap| async move {
                let mut res = (
                    [
                        (header::CONTENT_TYPE, ty),
                        (header::CACHE_CONTROL, IMMUTABLE),
                        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                    ],
                    bytes,
                )
                    .into_response();
                if let Some(gz) = gzipped {
                    let headers = res.headers_mut();
                    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
                    if accepts_gzip(&h) {
                        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                        *res.body_mut() = axum::body::Body::from(gz);
                    }
                }
                res
            }),
        );
    }
    (router, paths)
}

fn html_response(html: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

/// The page: the same for every request and every prefix.
fn page() -> &'static str {
    static PAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PAGE.get_or_init(|| {
        let v = SWAGGER_UI_VERSION;
        format!(
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API docs</title>
<link rel="stylesheet" href="./{v}/swagger-ui.css">
<link rel="icon" type="image/png" href="./{v}/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="./{v}/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="./{v}/swagger-ui-bundle.js" charset="utf-8"></script>
<script src="./swagger-initializer.js" charset="utf-8"></script>
</body>
</html>
"#
        )
    })
}

/// The initializer script and its ETag. The spec's URL is relative to the page, resolved
/// in the browser, never taken from a request. On the management port (`management`), the
/// page offers no "Try it out": that port does not serve the routes it would call.
fn initializer(config: &OpenApiSection) -> std::sync::Arc<(HeaderValue, axum::body::Bytes)> {
    let spec = spec_url_from_page(config);
    let spec = serde_json::to_string(&spec).expect("a string serializes");
    let read_only = if config.management {
        "\n    supportedSubmitMethods: [],"
    } else {
        ""
    };
    let js = format!(
        r##"// ms-chassis: Swagger UI {SWAGGER_UI_VERSION}, offline, prefix-aware.
window.addEventListener("load", function () {{
  // Relative to this page, wherever a proxy mounted it.
  var spec = new URL({spec}, document.baseURI).href;
  window.ui = SwaggerUIBundle({{
    url: spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,{read_only}
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  }});
}});
"##
    );
    let etag = format!("\"{:016x}\"", fnv1a(js.as_bytes()));
    std::sync::Arc::new((
        HeaderValue::from_str(&etag).expect("hex in quotes"),
        js.into(),
    ))
}

/// `openapi.path` relative to the page at `ui.path` + `/`: `../openapi.json` for `/docs`.
pub(crate) fn spec_url_from_page(config: &OpenApiSection) -> String {
    let depth = config.ui.path.split('/').filter(|s| !s.is_empty()).count();
    format!(
        "{}{}",
        "../".repeat(depth),
        config.path.trim_start_matches('/')
    )
}

/// Whether `Accept-Encoding` takes gzip: `gzip` or `*` listed with a q-value above zero.
fn accepts_gzip(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let q = parts
                .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (name.eq_ignore_ascii_case("gzip") || name == "*") && q > 0.0
        })
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_sent_only_where_accepted() {
        let accepts = |v: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(accepts("gzip, deflate, br, zstd"));
        assert!(accepts("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts("*"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("br, identity"));
        assert!(!accepts_gzip(&axum::http::HeaderMap::new()));
        assert_eq!(&BUNDLE_JS_GZ[..2], [0x1f, 0x8b], "a gzip stream");
    }

    #[test]
    fn the_spec_url_is_relative_to_the_page() {
        let mut c = OpenApiSection::default();
        assert_eq!(spec_url_from_page(&c), "../openapi.json");
        c.ui.path = "/a/b".into();
        c.path = "/v3/api-docs.json".into();
        assert_eq!(spec_url_from_page(&c), "../../v3/api-docs.json");
    }

    #[test]
    fn the_page_names_no_absolute_url() {
        let html = page();
        assert!(
            !html.contains("href=\"/") && !html.contains("src=\"/"),
            "{html}"
        );
        assert!(!html.contains("http"), "{html}");
        let init = initializer(&OpenApiSection::default());
        let js = std::str::from_utf8(&init.1).unwrap();
        assert!(js.contains("validatorUrl: null"), "{js}");
        assert!(js.contains("\"../openapi.json\""), "{js}");
        assert!(!js.contains("supportedSubmitMethods"), "{js}");
        let on_management = OpenApiSection {
            management: true,
            ..OpenApiSection::default()
        };
        let init = initializer(&on_management);
        let js = std::str::from_utf8(&init.1).unwrap();
        assert!(js.contains("supportedSubmitMethods: [],"), "{js}");
    }
}
