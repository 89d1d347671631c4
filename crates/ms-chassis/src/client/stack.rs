//! The settings in force for one client, and the resilience stack built from them:
//! `total_timeout( retry( rate_limit( breaker( bulkhead( timeout( call ))))))`.

use std::sync::Arc;

use http::Uri;
use http::header::HeaderName;
use http::uri::{Authority, PathAndQuery, Scheme};
use tower::util::Either;
use tower::{Layer as _, ServiceBuilder};

use super::call::Call;
use super::{ClientConfig, Deps, config};
use crate::config::Invalid;
use crate::resilience::breaker::{CircuitBreaker, CircuitBreakerHandle};
use crate::resilience::bulkhead::{Bulkhead, BulkheadLayer};
use crate::resilience::rate_limit::{RateLimit, RateLimitLayer};
use crate::resilience::retry::{Retry, RetryLayer};
use crate::resilience::timeout::{Timeout, TimeoutLayer};

/// The resilience stack around [`Call`]: `total_timeout( retry( rate_limit( breaker(
/// bulkhead( timeout( call ))))))`, each optional layer an `Either` of the layer and its
/// absence. Named rather than boxed: it is cloned for every call, and a box would cost an
/// allocation and another for its response future.
pub(super) type Stack = Timeout<Either<Retry<RateLimited>, RateLimited>>;
type RateLimited = Either<RateLimit<Guarded>, Guarded>;
type Guarded = CircuitBreaker<Either<Bulkhead<Timeout<Call>>, Timeout<Call>>>;

/// The settings in force and the stack built from them.
pub(super) struct Current {
    pub(super) config: ClientConfig,
    pub(super) base: reqwest::Url,
    /// The base's scheme and authority as a URI's, parsed once for every request's URI.
    pub(super) origin: Option<(Scheme, Authority)>,
    pub(super) http: reqwest::Client,
    pub(super) stack: Stack,
    pub(super) propagate: Vec<HeaderName>,
}

impl Current {
    /// `url` as a URI, as `url.as_str().parse()` makes it: when `url` is on the base's
    /// origin (always, but checked), only its path and query are parsed.
    pub(super) fn uri(&self, url: &reqwest::Url) -> Result<Uri, http::Error> {
        let s = url.as_str();
        if let Some((scheme, authority)) = &self.origin
            && url.fragment().is_none()
            && url.scheme() == scheme.as_str()
            && url.authority() == authority.as_str()
        {
            let len = url.path().len() + url.query().map_or(0, |q| q.len() + 1);
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(scheme.clone());
            parts.authority = Some(authority.clone());
            parts.path_and_query = s[s.len() - len..].parse::<PathAndQuery>().ok();
            if parts.path_and_query.is_some()
                && let Ok(uri) = Uri::from_parts(parts)
            {
                return Ok(uri);
            }
        }
        Ok(s.parse::<Uri>()?)
    }

    pub(super) fn build(
        name: &Arc<str>,
        config: ClientConfig,
        breaker: &CircuitBreakerHandle,
        deps: &Deps,
        old: Option<&Current>,
    ) -> Result<Current, Invalid> {
        let fail = |key: &str, message: String| in_client(name, Invalid::new(key, message));
        // `validated` has checked the URL.
        let base = config::parse_base_url(config.url.as_deref().unwrap_or_default())
            .map_err(|m| fail("url", m))?;
        // Keep the connection pool when nothing about connections changed.
        let http = match old {
            Some(o)
                if o.config.connect_timeout == config.connect_timeout
                    && o.config.pool == config.pool =>
            {
                o.http.clone()
            }
            _ => reqwest::Client::builder()
                .connect_timeout(config.connect_timeout)
                .pool_max_idle_per_host(config.pool.max_idle_per_host)
                .pool_idle_timeout(config.pool.idle_timeout)
                .tcp_nodelay(true)
                .build()
                .map_err(|e| fail("url", format!("cannot build the HTTP client: {e}")))?,
        };
        let call = Call::new(
            http.clone(),
            Arc::clone(name),
            &base,
            config.timeout,
            deps.duration.clone(),
        );
        let m = &deps.resilience;
        let retry = config
            .retry
            .get()
            .map(|c| RetryLayer::new(name, c.clone(), m))
            .transpose()
            .map_err(|e| in_client(name, e.under("retry")))?;
        let bulkhead = config
            .bulkhead
            .get()
            .map(|c| BulkheadLayer::new(name, c.clone(), m))
            .transpose()
            .map_err(|e| in_client(name, e.under("bulkhead")))?;
        let rate_limit = config
            .rate_limit
            .get()
            .map(|c| RateLimitLayer::new(name, c.clone(), m))
            .transpose()
            .map_err(|e| in_client(name, e.under("rate_limit")))?;
        let attempt = TimeoutLayer::per_attempt(name, config.timeout, m).layer(call);
        // The overall timer can wait for the call's second poll if whatever the first poll
        // waits for (a bulkhead or rate-limit slot, or the first attempt, bounded by
        // `timeout`) wakes it before `total_timeout`: see `resilience::timeout`.
        let total = config.total_timeout;
        let overall = TimeoutLayer::overall(name, total, m);
        let overall = if config.bulkhead.get().is_none_or(|b| b.max_wait <= total)
            && config.rate_limit.get().is_none_or(|r| r.max_wait <= total)
            && config.timeout <= total
        {
            overall.armed_late()
        } else {
            overall
        };
        let stack = ServiceBuilder::new()
            .layer(overall)
            .option_layer(retry)
            .option_layer(rate_limit)
            .layer(breaker.layer())
            .option_layer(bulkhead)
            .service(attempt);
        let propagate = config.propagated_header_names();
        let origin = base
            .scheme()
            .parse()
            .ok()
            .zip(base.authority().parse().ok());
        Ok(Current {
            origin,
            base,
            http,
            stack,
            propagate,
            config,
        })
    }
}

/// The first problem with `config`, as [`ClientConfig::validate`] finds them.
pub(super) fn validated(name: &str, config: &ClientConfig) -> Result<(), Invalid> {
    match config.validate().into_iter().next() {
        Some(e) => Err(in_client(name, e)),
        None => Ok(()),
    }
}

/// A problem with client `name`'s settings, put under `clients.<name>`.
pub(super) fn in_client(name: &str, e: Invalid) -> Invalid {
    e.under(&format!("clients.{name}"))
}
