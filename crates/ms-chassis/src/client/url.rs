//! Request URLs: a request path joined to the client's base URL, without parsing the base
//! again for every call.

use super::path;

/// Joins a request path (with an optional query) to the base URL, which may have a path
/// of its own: `http://h/api` + `/books?x=1` is `http://h/api/books?x=1`.
/// Its errors name the path without its query, which may carry credentials.
pub(super) fn join(base: &reqwest::Url, path: &str) -> Result<reqwest::Url, String> {
    let shown = path_only(path);
    if path.contains("://") || path.starts_with("//") {
        return Err(format!(
            "expected a path relative to the client's url, found {shown:?}"
        ));
    }
    if let Some(dot) = path::encoded_dot_segment(path) {
        return Err(format!(
            "the path segment {dot:?} stands for a `.` or `..` value, which cannot be sent: \
             the URL standard resolves it as a dot segment, so it would not reach the server \
             as a value (in path {shown:?})"
        ));
    }
    if let Some(url) = join_plain(base, path) {
        return Ok(url);
    }
    let prefix = base.as_str().trim_end_matches('/');
    let sep = if path.starts_with('/') || path.is_empty() {
        ""
    } else {
        "/"
    };
    reqwest::Url::parse(&format!("{prefix}{sep}{path}"))
        .map_err(|e| format!("bad path {shown:?}: {e}"))
}

/// [`join`] without parsing the base URL's scheme and host again: the path and query are
/// set on a copy of the base, through the same parser (`.` and `..` segments resolve
/// alike). Only for paths of characters that the parser neither percent-encodes, trims
/// nor reads as a separator; `None` otherwise, and `join` parses the whole URL.
fn join_plain(base: &reqwest::Url, path: &str) -> Option<reqwest::Url> {
    let (p, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let plain_path = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%/".contains(&b);
    let plain_query = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&()*+,;=:@%/?".contains(&b);
    if p.is_empty()
        || !p.bytes().all(plain_path)
        || !query.is_none_or(|q| q.bytes().all(plain_query))
    {
        return None;
    }
    let prefix = base.path().trim_end_matches('/');
    let sep = if p.starts_with('/') { "" } else { "/" };
    let mut url = base.clone();
    if prefix.is_empty() && sep.is_empty() {
        url.set_path(p);
    } else {
        url.set_path(&format!("{prefix}{sep}{p}"));
    }
    url.set_query(query);
    Some(url)
}

/// The path without its query string, for messages.
pub(super) fn path_only(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::client::{ClientConfig, Deps, HttpClient, config};
    use crate::resilience::ResilienceMetrics;
    use http::Uri;

    /// What `join` did before it had a fast path: print the whole URL and parse it.
    fn join_by_parsing(base: &reqwest::Url, path: &str) -> Result<reqwest::Url, String> {
        let prefix = base.as_str().trim_end_matches('/');
        let sep = if path.starts_with('/') || path.is_empty() {
            ""
        } else {
            "/"
        };
        reqwest::Url::parse(&format!("{prefix}{sep}{path}")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_request_uri_is_the_url_parsed_as_a_uri() {
        let deps = Deps {
            resilience: ResilienceMetrics::unregistered(),
            duration: crate::metrics::client_duration_histogram().unwrap(),
            forwarding: Arc::default(),
        };
        for base in BASES {
            let config = ClientConfig {
                url: Some(base.into()),
                ..ClientConfig::default()
            };
            let client = HttpClient::build("t", config, deps.clone()).unwrap();
            let current = client.current();
            assert!(current.origin.is_some(), "{base}");
            for path in ["/", "/x", "/a/b?c=d&e", "x?", "/caf\u{e9}", "/x#f"] {
                let url = join(&current.base, path).unwrap();
                let uri = current.uri(&url).unwrap();
                assert_eq!(uri, url.as_str().parse::<Uri>().unwrap(), "{url}");
                assert_eq!(uri.to_string(), url.as_str().split('#').next().unwrap());
            }
        }
    }

    const BASES: [&str; 6] = [
        "http://h",
        "http://h:8080/",
        "http://h/api",
        "https://user:pw@h/api/v1/",
        "http://127.0.0.1:3000",
        "http://[::1]:8443/a/%2F/",
    ];

    #[test]
    fn joins_paths_to_the_base_and_its_path() {
        let cases = [
            ("http://h", "/books/7?x=1", "http://h/books/7?x=1"),
            ("http://h/api", "/books", "http://h/api/books"),
            ("http://h/api/", "books", "http://h/api/books"),
            ("http://h/api", "", "http://h/api"),
            ("http://h/api", "/a/../b", "http://h/api/b"),
            ("http://h", "/caf\u{e9} x", "http://h/caf%C3%A9%20x"),
            ("http://h", "/x#frag", "http://h/x#frag"),
        ];
        for (base, path, want) in cases {
            let base = config::parse_base_url(base).unwrap();
            assert_eq!(join(&base, path).unwrap().as_str(), want, "{base} + {path}");
        }
        let base = config::parse_base_url("http://h").unwrap();
        assert!(
            join_plain(&base, "/books/7?x=1&y=2").is_some(),
            "the common case is fast"
        );
        assert!(join(&base, "//evil/x").is_err());
        for dot in ["/books/%2E%2E", "/books/%2e/x", "/.%2E?q=1"] {
            let e = join(&base, dot).unwrap_err();
            assert!(e.contains("cannot be sent"), "{dot}: {e}");
        }
        assert!(join(&base, "/books/%2E%2E%2E").is_ok());
        assert!(join(&base, "http://evil/x").is_err());
    }

    proptest! {
        /// The fast path gives exactly what parsing the whole URL gives, or steps aside.
        #[test]
        fn the_fast_join_agrees_with_parsing(
            base in proptest::sample::select(BASES.to_vec()),
            path in concat!(
                r"(/?[a-z0-9.%2eE~-]{0,5}){0,4}(\?[a-z0-9=&%.?/'-]{0,8})?",
                r"|[a-zA-Z0-9./?#%2eE&=;:@+'\\ \t~!$()*,-]{0,24}",
                r"|\PC{0,12}",
            ),
        ) {
            let base = config::parse_base_url(base).unwrap();
            prop_assume!(!path.contains("://") && !path.starts_with("//"));
            if let Some(fast) = join_plain(&base, &path) {
                let slow = join_by_parsing(&base, &path);
                prop_assert_eq!(Ok(fast), slow, "{} + {:?}", base, path);
            }
        }
    }
}
