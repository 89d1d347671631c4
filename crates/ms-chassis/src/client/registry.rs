//! The service's clients by name: one [`HttpClient`] per `clients.<name>`, built on first
//! use, following config reloads, and listed with their breakers on `/admin/breakers`.
//!
//! A reload reconfigures the clients itself, in [`Clients::reconfigure`], rather than each
//! client following a subscription in a task of its own: that way a client whose new
//! settings cannot be used is known to the reload, which reports it as failed instead of
//! applied.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{ClientConfig, Deps, Forwarding, HttpClient};
use crate::config::{ConfigError, DEFAULTS_ENTRY, Invalid, is_under};
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

    /// The client `name`, built from `clients.<name>` (of `clients`, the section in
    /// effect) on first use; later calls return a clone of the same client.
    pub(crate) fn get(
        &self,
        name: &str,
        clients: &BTreeMap<String, ClientConfig>,
    ) -> crate::Result<HttpClient> {
        let mut built = self
            .inner
            .built
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = built.get(name) {
            return Ok(c.clone());
        }
        let key = format!("clients.{name}");
        if name == DEFAULTS_ENTRY {
            return Err(ConfigError::from(Invalid::new(
                key,
                "clients.default holds the settings every client inherits; it is not a \
                 client: name the service you call, such as svc.client(\"books\")",
            ))
            .into());
        }
        let Some(settings) = clients.get(name).cloned() else {
            let known: Vec<&str> = clients
                .keys()
                .map(String::as_str)
                .filter(|n| *n != DEFAULTS_ENTRY)
                .collect();
            let known = if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            };
            let message = format!(
                "no client `{name}` in config: add `{key}.url` (configured clients: {known})"
            );
            return Err(ConfigError::from(Invalid::new(key, message)).into());
        };
        let client = HttpClient::build(name, settings, self.inner.deps.clone())
            .map_err(ConfigError::from)?;
        built.insert(name.to_owned(), client.clone());
        Ok(client)
    }

    /// Gives each client built so far whose `clients.<name>` is touched by `changed` its
    /// settings in `next`, the `clients` section of a reload, once that is published. A
    /// client whose new settings cannot be used keeps its previous ones; the failures are
    /// returned by client name, for the reload's report.
    pub(crate) fn reconfigure(
        &self,
        next: &BTreeMap<String, ClientConfig>,
        changed: &[String],
    ) -> Vec<(String, Invalid)> {
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
            let result = match next.get(client.name()) {
                Some(settings) => client.reconfigure(settings.clone()),
                None => Err(Invalid::new(
                    format!("{key}.url"),
                    format!(
                        "missing: {key} is no longer in the config; the client keeps its \
                         settings until the service restarts"
                    ),
                )),
            };
            if let Err(e) = result {
                failed.push((client.name().to_owned(), e));
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
