//! [`RequestPath`] and [`path!`](crate::path): request paths built from values, each value
//! one percent-encoded path segment.
//!
//! A path made with `format!("/books/{id}")` is only as safe as `id`: an `id` of
//! `../../admin` climbs out of the client's base path, `7?admin=true` adds a query, `a/b`
//! adds a segment. Encoding each value as one path segment (RFC 3986) makes it reach the
//! server as exactly that value, whatever it holds, and axum's `Path` extractor decodes it
//! back. It is what `url::Url::path_segments_mut` does, for paths relative to a client's
//! base URL, kept as a plain string so that the raw `&str` form stays for paths the caller
//! already trusts.
//!
//! Every byte but the unreserved characters (`A-Z a-z 0-9 - . _ ~`) is percent-encoded:
//! stricter than RFC 3986 (which allows `:@!$&'()*+,;=` in a segment), because some servers
//! give `;` and `+` meanings of their own. A value that is exactly `.` or `..` is written
//! `%2E` or `%2E%2E`. The URL standard that the HTTP client follows still resolves those as
//! dot segments, so [`HttpClient`](super::HttpClient) refuses to send them
//! ([`InvalidRequest`](super::ClientErrorKind::InvalidRequest)) rather than let them be
//! resolved away.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What is percent-encoded in a segment, a query name or a query value: everything but
/// the unreserved characters of RFC 3986.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A request path built from values, for [`HttpClient`](super::HttpClient)'s request
/// methods: each value is one path segment, percent-encoded, so no value can add
/// segments, climb out of the client's base path (`..`), or start a query or a fragment.
/// Build it with [`path!`](crate::path) or segment by segment; query pairs are encoded the
/// same way.
///
/// ```
/// use ms_chassis::client::RequestPath;
/// use ms_chassis::path;
///
/// let id = "../../admin?x=1";
/// assert_eq!(path!["books", id].as_str(), "/books/..%2F..%2Fadmin%3Fx%3D1");
///
/// let search = RequestPath::new()
///     .segment("books")
///     .query("author", "le guin")
///     .query("page", 2);
/// assert_eq!(search.as_str(), "/books?author=le%20guin&page=2");
/// assert_eq!(path!["caf\u{e9}", "100%", "."].as_str(), "/caf%C3%A9/100%25/%2E");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct RequestPath {
    /// The encoded path, then `?` and the encoded query if there is one.
    text: String,
    /// Where the query starts (its `?`), if it has one.
    query_at: Option<usize>,
}

impl RequestPath {
    /// An empty path: the client's base URL itself.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `value` (as `Display` writes it) as one segment, percent-encoded.
    pub fn segment(mut self, value: impl fmt::Display) -> Self {
        self.push(value);
        self
    }

    /// Appends `value` as one segment, percent-encoded, in place.
    pub fn push(&mut self, value: impl fmt::Display) -> &mut Self {
        let value = value.to_string();
        let mut segment = String::with_capacity(value.len() + 1);
        segment.push('/');
        match value.as_str() {
            // Not resolved away as dot segments by a server that reads the path as written.
            "." => segment.push_str("%2E"),
            ".." => segment.push_str("%2E%2E"),
            v => segment.extend(utf8_percent_encode(v, COMPONENT)),
        }
        match self.query_at {
            Some(at) => {
                self.text.insert_str(at, &segment);
                self.query_at = Some(at + segment.len());
            }
            None => self.text.push_str(&segment),
        }
        self
    }

    /// Appends the query pair `name=value`, both percent-encoded (a space is `%20`).
    pub fn query(mut self, name: impl fmt::Display, value: impl fmt::Display) -> Self {
        match self.query_at {
            Some(_) => self.text.push('&'),
            None => {
                self.query_at = Some(self.text.len());
                self.text.push('?');
            }
        }
        self.text
            .extend(utf8_percent_encode(&name.to_string(), COMPONENT));
        self.text.push('=');
        self.text
            .extend(utf8_percent_encode(&value.to_string(), COMPONENT));
        self
    }

    /// The encoded path and query, as sent.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The encoded path without the query.
    fn path(&self) -> &str {
        &self.text[..self.query_at.unwrap_or(self.text.len())]
    }
}

/// The path without its query, whose values may carry credentials.
impl fmt::Debug for RequestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestPath").field(&self.path()).finish()
    }
}

/// The encoded path and query, as sent.
impl fmt::Display for RequestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AsRef<str> for RequestPath {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl From<RequestPath> for String {
    fn from(path: RequestPath) -> Self {
        path.text
    }
}

/// Each item one segment: `["books", id].into_iter().collect::<RequestPath>()`.
impl<S: fmt::Display> FromIterator<S> for RequestPath {
    fn from_iter<I: IntoIterator<Item = S>>(segments: I) -> Self {
        let mut path = Self::new();
        path.extend(segments);
        path
    }
}

impl<S: fmt::Display> Extend<S> for RequestPath {
    fn extend<I: IntoIterator<Item = S>>(&mut self, segments: I) {
        for s in segments {
            self.push(s);
        }
    }
}

/// A [`RequestPath`] from values, each one percent-encoded path segment: the safe way to
/// put a value into a client's request path.
///
/// `path!["books", id]` is `/books/<id encoded>`; any `Display` value works (a number, a
/// `Uuid`). The values are borrowed, not moved. Raw `&str` paths (`"/books/7"`) remain
/// for paths the caller wrote itself.
///
/// ```
/// use ms_chassis::path;
/// use ms_chassis::client::{ClientConfig, HttpClient};
///
/// let mut config = ClientConfig::default();
/// config.url = Some("http://127.0.0.1:8081/api".into());
/// let books = HttpClient::new("books", config)?;
/// let id = String::from("a/b");
/// let request = books.get(path!["books", id, "reviews"]); // GET /api/books/a%2Fb/reviews
/// assert_eq!(path!["books", id, 7].as_str(), "/books/a%2Fb/7");
/// # drop(request);
/// # Ok::<(), ms_chassis::config::Invalid>(())
/// ```
#[macro_export]
macro_rules! path {
    ($($segment:expr),* $(,)?) => {
        $crate::client::RequestPath::new()$(.segment(&$segment))*
    };
}

/// The first segment of `path` (before any query or fragment) that is a percent-encoded
/// dot segment (`%2E`, `%2E%2E`, `.%2E`, `%2E.`, any case), if any: the URL standard reads
/// it as `.` or `..` and resolves it, so it cannot reach the server as a value.
pub(crate) fn encoded_dot_segment(path: &str) -> Option<&str> {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    let path = &path[..end];
    if !path.contains('%') {
        return None;
    }
    path.split('/').find(|s| {
        s.contains('%')
            && matches!(
                s.to_ascii_lowercase().as_str(),
                "%2e" | "%2e%2e" | ".%2e" | "%2e."
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_one_segment() {
        let cases = [
            ("7", "/7"),
            ("../../admin", "/..%2F..%2Fadmin"),
            ("a/b", "/a%2Fb"),
            ("?x=1", "/%3Fx%3D1"),
            ("#top", "/%23top"),
            ("100%", "/100%25"),
            ("%2E%2E", "/%252E%252E"),
            ("[::1]", "/%5B%3A%3A1%5D"),
            ("a b+c;d", "/a%20b%2Bc%3Bd"),
            ("back\\slash", "/back%5Cslash"),
            ("caf\u{e9}", "/caf%C3%A9"),
            ("", "/"),
            (".", "/%2E"),
            ("..", "/%2E%2E"),
            ("...", "/..."),
            ("a-b.c_d~e", "/a-b.c_d~e"),
        ];
        for (value, want) in cases {
            assert_eq!(
                RequestPath::new().segment(value).as_str(),
                want,
                "{value:?}"
            );
        }
    }

    #[test]
    fn segments_go_before_the_query_and_debug_hides_it() {
        let mut p = RequestPath::new().segment("books").query("q", "a&b=c");
        p.push(7);
        let p = p.query("n", 1);
        assert_eq!(p.as_str(), "/books/7?q=a%26b%3Dc&n=1");
        assert_eq!(format!("{p:?}"), r#"RequestPath("/books/7")"#);
        assert_eq!(p.to_string(), p.as_str());
        let collected: RequestPath = ["a", "b/c"].into_iter().collect();
        assert_eq!(String::from(collected), "/a/b%2Fc");
        assert_eq!(crate::path![].as_str(), "");
        assert_eq!(crate::path!["x", 1, 'y',].as_str(), "/x/1/y");
    }

    #[test]
    fn encoded_dot_segments_are_found() {
        for path in ["/%2E", "/a/%2e%2E/b", "/.%2e?x", "/a/%2E.#f"] {
            assert!(encoded_dot_segment(path).is_some(), "{path}");
        }
        for path in ["/a/../b", "/%2E%2E%2E", "/a%2Eb", "/x?y=/%2E%2E", "/%252E"] {
            assert_eq!(encoded_dot_segment(path), None, "{path}");
        }
    }
}
