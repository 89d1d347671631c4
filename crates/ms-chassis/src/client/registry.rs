//! The service's clients by name: one [`HttpClient`] per `clients.<name>`, built on first
//! use, following config reloads, and listed with their breakers on `/admin/breakers`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

use super::{ClientConfig, Deps, Forwarding, HttpClient};
use crate::config::{ConfigError, ConfigWatch};
use crate::resilience::CircuitBreakerHandle;

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
    pub(crate) fn get(
        &self,
        name: &str,
        watch: &ConfigWatch,
        shutdown: &CancellationToken,
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
        follow_reloads(&client, watch, &key, shutdown)?;
        built.insert(name.to_owned(), client.clone());
        Ok(client)
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

/// Subscribes the client to `clients.<name>`: every reload that changes it reconfigures
/// the client. The subscription also marks the key as live for the reload report.
fn follow_reloads(
    client: &HttpClient,
    watch: &ConfigWatch,
    key: &str,
    shutdown: &CancellationToken,
) -> crate::Result<()> {
    let mut rx = watch.get::<ClientConfig>(key)?;
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(
            client = client.name(),
            "no tokio runtime: the client will not follow config reloads"
        );
        return Ok(());
    };
    let client = client.clone();
    let shutdown = shutdown.clone();
    runtime.spawn(async move {
        loop {
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                () = shutdown.cancelled() => return,
            }
            let next = ClientConfig::clone(&rx.borrow_and_update());
            if let Err(e) = client.reconfigure(next) {
                tracing::error!(error = %e, "client settings not applied; the previous ones stay");
            }
        }
    });
    Ok(())
}
