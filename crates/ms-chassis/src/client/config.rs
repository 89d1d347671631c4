//! `clients.<name>:` the settings of one [`HttpClient`](super::HttpClient).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{DEFAULTS_ENTRY, Invalid, Rules};
use crate::resilience::breaker::CircuitBreakerConfig;
use crate::resilience::bulkhead::BulkheadConfig;
use crate::resilience::durations;
use crate::resilience::rate_limit::RateLimitConfig;
use crate::resilience::retry::RetryConfig;
use crate::telemetry::propagation::is_propagation_header;

/// One client's settings: the `clients.<name>` block of `config.yaml`. Every key has a
/// default; only `url` must be given. Keys a block leaves out come from `clients.default`
/// when that sets them ([`DEFAULTS_ENTRY`](crate::config::DEFAULTS_ENTRY)), else from
/// the defaults below.
///
/// ```yaml
/// clients:
///   books:
///     url: http://books:8080         # base URL; request paths are joined to it
///     connect_timeout: 1s            # TCP (and TLS) connect
///     timeout: 2s                    # one attempt, until the response headers
///     total_timeout: 10s             # the whole call: every attempt, backoff and the body
///     max_response_body: 10MiB       # larger bodies fail with body_too_large
///     pool: { max_idle_per_host: 32, idle_timeout: 90s }
///     propagate_headers: [x-tenant-id, accept-language]   # copied from the incoming request
///     probe_path: /health/ready      # what `probe()` asks (PyMS services: /healthcheck)
///     retry:    { enabled: true, max_attempts: 3 }         # and every RetryConfig key
///     breaker:  { enabled: true, failure_rate_threshold: 50 }  # every CircuitBreakerConfig key
///     bulkhead: { enabled: true, max_concurrent: 25 }      # every BulkheadConfig key
///     rate_limit: { enabled: false, rate: 100, period: 1s } # every RateLimitConfig key
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Base URL: `http://` or `https://` with a host. Required.
    pub url: Option<String>,
    /// Bound on establishing a connection. Default `1s`.
    #[serde(with = "durations")]
    pub connect_timeout: Duration,
    /// Bound on one attempt, until its response headers arrive. Default `2s`.
    #[serde(with = "durations")]
    pub timeout: Duration,
    /// Bound on the whole call: every attempt, the backoff between them, and reading the
    /// response body with the client's helpers. Default `10s`.
    #[serde(with = "durations")]
    pub total_timeout: Duration,
    /// Largest response body the helpers (`bytes`, `text`, `json`) read. Default `10MiB`.
    #[serde(with = "crate::config::byte_size")]
    pub max_response_body: u64,
    /// Connection pool.
    pub pool: PoolConfig,
    /// Incoming request headers copied onto every call made while handling the request,
    /// such as `x-tenant-id`. Hop-by-hop headers, `host`, `content-length` and the trace
    /// headers (which tracing propagates itself) are refused. Default none.
    pub propagate_headers: Vec<String>,
    /// The path [`probe`](super::HttpClient::probe) calls with GET. Default `/health/ready`.
    pub probe_path: String,
    /// Retry; see [`RetryConfig`]. On by default.
    pub retry: Toggle<RetryConfig>,
    /// Circuit breaker; see [`CircuitBreakerConfig`]. On by default.
    pub breaker: Toggle<CircuitBreakerConfig>,
    /// Bulkhead; see [`BulkheadConfig`]. On by default.
    pub bulkhead: Toggle<BulkheadConfig>,
    /// Rate limit of outgoing calls; see [`RateLimitConfig`]. Off by default.
    pub rate_limit: Toggle<RateLimitConfig>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            url: None,
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(10),
            max_response_body: 10 * 1024 * 1024,
            pool: PoolConfig::default(),
            propagate_headers: Vec::new(),
            probe_path: "/health/ready".to_owned(),
            retry: Toggle::on(RetryConfig::default()),
            breaker: Toggle::on(CircuitBreakerConfig::default()),
            bulkhead: Toggle::on(BulkheadConfig::default()),
            rate_limit: Toggle {
                enabled: false,
                config: RateLimitConfig::default(),
            },
        }
    }
}

/// `pool:` the client's connection pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Idle connections kept per host. Default 32.
    pub max_idle_per_host: usize,
    /// How long an idle connection is kept. Default `90s`.
    #[serde(with = "durations")]
    pub idle_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_idle_per_host: 32,
            idle_timeout: Duration::from_secs(90),
        }
    }
}

/// A resilience layer's settings with an `enabled` switch beside them:
/// `breaker: { enabled: false }` takes the breaker out of the client's stack.
///
/// Read by hand rather than with `#[serde(flatten)]`, which buffers the map and so loses
/// the key path of an error (`clients.books.retry` instead of
/// `clients.books.retry.max_attempts`). Here the layer's own fields are read straight
/// from the map, so every error names its key and line.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Toggle<T> {
    /// Whether the layer is in the stack. Default true.
    pub enabled: bool,
    /// The layer's settings.
    #[serde(flatten)]
    pub config: T,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Toggle<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = Toggle<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of settings, with an optional `enabled: true|false`")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Toggle<T>, A::Error> {
                let mut without = WithoutEnabled { map, enabled: None };
                let config =
                    T::deserialize(serde::de::value::MapAccessDeserializer::new(&mut without))?;
                Ok(Toggle {
                    enabled: without.enabled.unwrap_or(true),
                    config,
                })
            }
        }

        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// The entries of a map except `enabled`, which it keeps aside.
struct WithoutEnabled<A> {
    map: A,
    enabled: Option<bool>,
}

impl<'de, A: serde::de::MapAccess<'de>> serde::de::MapAccess<'de> for &mut WithoutEnabled<A> {
    type Error = A::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        use serde::de::IntoDeserializer as _;
        loop {
            let Some(key) = self.map.next_key::<String>()? else {
                return Ok(None);
            };
            if key == "enabled" {
                self.enabled = Some(self.map.next_value()?);
                continue;
            }
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

impl<T: Default> Default for Toggle<T> {
    fn default() -> Self {
        Toggle::on(T::default())
    }
}

impl<T> Toggle<T> {
    /// Enabled, with these settings.
    pub fn on(config: T) -> Self {
        Toggle {
            enabled: true,
            config,
        }
    }

    /// The settings, when enabled.
    pub fn get(&self) -> Option<&T> {
        self.enabled.then_some(&self.config)
    }
}

/// Headers a client must not copy from the incoming request: hop-by-hop headers (RFC 9110
/// §7.6.1) and the ones that describe the incoming message itself. The trace context is
/// refused too ([`is_propagation_header`]): tracing writes it for the client span.
const NOT_PROPAGATED: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// Whether a client must never copy the incoming header `name` (lower case).
fn refused(name: &str) -> bool {
    NOT_PROPAGATED.contains(&name) || is_propagation_header(name)
}

impl ClientConfig {
    /// Checks the settings. Every problem is reported, each naming its key relative to
    /// `clients.<name>`.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        let mut fail = |key: &str, message: String| out.push(Invalid::new(key, message));
        match &self.url {
            None => fail(
                "url",
                "missing: expected the service's base URL, such as http://books:8080".into(),
            ),
            Some(raw) => {
                if let Err(message) = parse_base_url(raw) {
                    fail("url", message);
                }
            }
        }
        for (key, value) in [
            ("connect_timeout", self.connect_timeout),
            ("timeout", self.timeout),
            ("total_timeout", self.total_timeout),
        ] {
            if value.is_zero() {
                fail(
                    key,
                    "expected a duration above 0: calls are never unbounded".into(),
                );
            }
        }
        if self.total_timeout < self.timeout {
            fail(
                "total_timeout",
                format!(
                    "expected at least timeout ({}), which bounds one attempt of the call",
                    humantime::format_duration(self.timeout)
                ),
            );
        }
        if self.max_response_body == 0 {
            fail("max_response_body", "expected a size above 0".into());
        }
        if !self.probe_path.starts_with('/') {
            fail(
                "probe_path",
                format!(
                    "expected a path starting with /, found {:?}",
                    self.probe_path
                ),
            );
        }
        for (i, h) in self.propagate_headers.iter().enumerate() {
            let lower = h.trim().to_ascii_lowercase();
            if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                fail(
                    &format!("propagate_headers.{i}"),
                    format!("expected a header name, found {h:?}"),
                );
            } else if refused(&lower) {
                fail(
                    &format!("propagate_headers.{i}"),
                    format!(
                        "`{lower}` is never copied to outgoing calls: it is hop-by-hop, \
                         describes the incoming message itself, or is trace context that \
                         tracing.propagation writes"
                    ),
                );
            }
        }
        let layer_errors: [Option<Invalid>; 4] = [
            self.retry.get().and_then(|c| c.validate().err()),
            self.breaker.get().and_then(|c| c.validate().err()),
            self.bulkhead.get().and_then(|c| c.validate().err()),
            self.rate_limit.get().and_then(|c| c.validate().err()),
        ];
        for (section, e) in ["retry", "breaker", "bulkhead", "rate_limit"]
            .into_iter()
            .zip(layer_errors)
        {
            out.extend(e.map(|e| e.under(section)));
        }
        out
    }

    /// The header names of `propagate_headers`, lower-cased; invalid ones are skipped
    /// (config validation reports them).
    pub(crate) fn propagated_header_names(&self) -> Vec<http::HeaderName> {
        self.propagate_headers
            .iter()
            .filter_map(|h| {
                http::HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes()).ok()
            })
            .filter(|h| !refused(h.as_str()))
            .collect()
    }
}

/// The rules of the `clients` section: each client's own, and `clients.default`, which
/// holds what every client inherits, and so no `url`. Keys relative to `clients`.
pub(crate) fn validate_clients(clients: &BTreeMap<String, ClientConfig>, rules: &mut Rules<'_>) {
    for (name, client) in clients {
        let mut rules = rules.section(name);
        if name != DEFAULTS_ENTRY {
            rules.extend(client.validate());
            continue;
        }
        if client.url.is_some() {
            rules.fail(
                "url",
                "expected no url here: clients.default holds what every client inherits, \
                 and a base URL belongs to one client (clients.<name>.url)",
            );
        }
        rules.extend(client.validate().into_iter().filter(|e| e.key != "url"));
    }
}

/// Parses a client's base URL: `http` or `https`, with a host, without query or fragment.
/// Its errors show the URL without its password.
pub(crate) fn parse_base_url(raw: &str) -> Result<reqwest::Url, String> {
    let shown = crate::config::shown_url(raw);
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| {
        format!("expected an http(s) URL such as http://books:8080, found {shown:?}: {e}")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "expected an http:// or https:// URL with a host, found {shown:?}"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "expected a base URL without query or fragment, found {shown:?}"
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_message_and_trace_headers_are_refused() {
        let mut c = ClientConfig {
            url: Some("http://books:8080".into()),
            ..ClientConfig::default()
        };
        c.propagate_headers = [
            "X-Tenant-Id",
            "Connection",
            "traceparent",
            "uberctx-user",
            "x b",
        ]
        .map(String::from)
        .to_vec();
        let problems = c.validate();
        let keys: Vec<&str> = problems.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "propagate_headers.1",
                "propagate_headers.2",
                "propagate_headers.3",
                "propagate_headers.4"
            ],
            "{problems:?}"
        );
        assert_eq!(c.propagated_header_names(), ["x-tenant-id"]);
    }

    #[test]
    fn base_urls_are_http_with_a_host_and_no_query() {
        assert!(parse_base_url("http://books:8080/api").is_ok());
        for bad in [
            "ftp://books",
            "books:8080",
            "http://books/?a=1",
            "http://books/#x",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
        let e = parse_base_url("http://svc:s3cret@books/?a=1").unwrap_err();
        assert!(
            !e.contains("s3cret") && e.contains("svc:<redacted>@books"),
            "{e}"
        );
    }
}
