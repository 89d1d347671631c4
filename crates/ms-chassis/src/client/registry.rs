//! The service's clients by name: one [`HttpClient`] per `clients.<name>`, built on first
//! use, following config reloads, and listed with their breakers on `/admin/breakers`.
//!
//! A reload reconfigures the clients itself, in [`Clients::reconfigure`], rather than each
//! client following a subscription in a task of its own: that way a client whose new
//! settings cannot be used is known to the reload, which reports it as failed instead of
//! applied.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{ClientConfigError, Deps, Forwarding, HttpClient};
use crate::config::{Config, ConfigError, ConfigWatch, is_under};
use crate::resilience::breaker::CircuitBreakerHandle;

/// Every client the service has built. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Clients {
    inner: Arc<Inner>,
}

struct Inner {
    deps: Deps,
    built: Mutex<BTreeMap<String, HttpClient>>,
}

impl Clients {
    pub(crate) fn new(metrics: &crate::metrics::Metrics) -> Self {
        Clients {
            inner: Arc::new(Inner {
                deps: Deps {
                    resilience: metrics.resilience().clone(),
                    duration: metrics.client_duration().clone(),
                    forwarding: Arc::default(),
                },
                built: Mutex::default(),
            }),
        }
    }

    /// What the server stack reads to capture the headers clients propagate.
    pub(crate) fn forwarding(&self) -> Arc<Forwarding> {
        Arc::clone(&self.inner.deps.forwarding)
    }

    /// The client `name`, built from `clients.<name>` on first use; later calls return a
    /// clone of the same client.
    pub(crate) fn get(&self, name: &str, watch: &ConfigWatch) -> crate::Result<HttpClient> {
        let mut built = self
            .inner
            .built
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = built.get(name) {
            return Ok(c.clone());
        }
        let key = format!("clients.{name}");
        if name == crate::config::CLIENT_DEFAULTS {
            return Err(ConfigError::new(
                None,
                Some(key),
                "clients.default holds the settings every client inherits; it is not a \
                 client: name the service you call, such as svc.client(\"books\")"
                    .to_owned(),
            )
            .into());
        }
        let config = watch.current();
        let Some(settings) = config.chassis().clients.get(name).cloned() else {
            let known: Vec<&str> = config
                .chassis()
                .clients
                .keys()
                .map(String::as_str)
                .filter(|n| *n != crate::config::CLIENT_DEFAULTS)
                .collect();
            let known = if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            };
            return Err(ConfigError::new(
                None,
                Some(key.clone()),
                format!(
                    "no client `{name}` in config: add `{key}.url` (configured clients: {known})"
                ),
            )
            .into());
        };
        let client = HttpClient::build(name, settings, self.inner.deps.clone()).map_err(|e| {
            ConfigError::new(
                None,
                Some(format!("clients.{}.{}", e.client, e.key)),
                e.message,
            )
        })?;
        built.insert(name.to_owned(), client.clone());
        Ok(client)
    }

    /// Gives each client built so far whose `clients.<name>` is touched by `changed` its
    /// settings in `next` (a reload, once `next` is published). A client whose new settings
    /// cannot be used keeps its previous ones; the failures are returned, for the reload's
    /// report.
    pub(crate) fn reconfigure(&self, next: &Config, changed: &[String]) -> Vec<ClientConfigError> {
        // Cloned out, so that a client built meanwhile does not wait for the others. One
        // built after `next` was published reads it; one built before is in this list.
        let built: Vec<HttpClient> = self
            .inner
            .built
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let mut failed = Vec::new();
        for client in built {
            let key = format!("clients.{}", client.name());
            if !changed.iter().any(|c| is_under(c, &key)) {
                continue;
            }
            let result = match next.chassis().clients.get(client.name()) {
                Some(settings) => client.reconfigure(settings.clone()),
                None => Err(ClientConfigError {
                    client: client.name().to_owned(),
                    key: "url".to_owned(),
                    message: format!(
                        "missing: {key} is no longer in the config; the client keeps its \
                         settings until the service restarts"
                    ),
                }),
            };
            if let Err(e) = result {
                failed.push(e);
            }
        }
        failed
    }

    /// The breakers of every client built so far, by name.
    pub(crate) fn breakers(&self) -> Vec<CircuitBreakerHandle> {
        self.inner
            .built
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|c| c.breaker().clone())
            .collect()
    }
}
