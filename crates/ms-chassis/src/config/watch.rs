//! The live config: the last config loaded successfully, and typed subscriptions to parts of
//! it that follow every reload.
//!
//! A subscription is a [`Live<T>`] of the part read as the subscriber's own type (a
//! `tokio::sync::watch` receiver inside), so a handler reads the current value with `get()`
//! and a task waits for the next one with `changed()`. The type is also a validator: a reload whose new value does not
//! read as it is rejected as a whole, with a located error, and nobody sees a half-applied
//! config. Subscribers are told only when their part actually changed.

use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::diff::is_under;
use super::{Config, ConfigError, Live, Schema};

/// A live config and its subscribers. Cheap to clone. A service's is
/// [`ms_chassis::ConfigWatch`](crate::ConfigWatch), of the chassis's sections.
///
/// Get it from [`Service::config_watch`](crate::Service::config_watch). Every successful
/// reload (a change to the config file, or `POST /admin/config/reload`) publishes here.
///
/// ```
/// use ms_chassis::config::Live;
///
/// #[derive(serde::Deserialize)]
/// struct AppConfig { greeting: String }
///
/// # let svc = ms_chassis::Service::builder().yaml("app: { greeting: hi }").build()?;
/// let app: Live<AppConfig> = svc.config_watch().app()?;
/// // In a handler: always the current value.
/// assert_eq!(app.get().greeting, "hi");
///
/// // In a task: wait for each reload that changes `app`.
/// async fn follow(mut app: Live<AppConfig>) {
///     while let Some(current) = app.changed().await {
///         tracing::info!(greeting = %current.greeting, "greeting changed");
///     }
/// }
/// # drop(follow(app));
/// # Ok::<(), ms_chassis::Error>(())
/// ```
pub struct ConfigWatch<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for ConfigWatch<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<S> {
    current: watch::Sender<Config<S>>,
    subscribers: Mutex<Vec<Box<dyn Subscriber<S>>>>,
}

impl<S: Schema> std::fmt::Debug for ConfigWatch<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatch")
            .field("subscribed", &self.subscribed_keys())
            .finish_non_exhaustive()
    }
}

/// A typed subscription, erased.
trait Subscriber<S>: Send {
    fn key(&self) -> &str;
    fn is_closed(&self) -> bool;
    /// Reads the subscriber's part of `next`; the returned closure hands it over.
    fn prepare(&self, next: &Config<S>) -> Result<Box<dyn FnOnce() + Send>, ConfigError>;
}

struct Typed<T> {
    key: String,
    tx: watch::Sender<Arc<T>>,
}

impl<S: Schema, T: DeserializeOwned + Send + Sync + 'static> Subscriber<S> for Typed<T> {
    fn key(&self) -> &str {
        &self.key
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    fn prepare(&self, next: &Config<S>) -> Result<Box<dyn FnOnce() + Send>, ConfigError> {
        let value: T = next.get(&self.key)?;
        let tx = self.tx.clone();
        Ok(Box::new(move || {
            tx.send_replace(Arc::new(value));
        }))
    }
}

/// A reload that passed every subscriber's validation, ready to be published.
pub(crate) struct Pending<S> {
    watch: ConfigWatch<S>,
    next: Config<S>,
    handovers: Vec<Box<dyn FnOnce() + Send>>,
}

impl<S> Pending<S> {
    /// Publishes the new config, then tells the subscribers whose part changed.
    pub(crate) fn commit(self) {
        self.watch.inner.current.send_replace(self.next);
        for handover in self.handovers {
            handover();
        }
    }
}

impl<S: Schema> ConfigWatch<S> {
    pub(crate) fn new(config: Config<S>) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: watch::Sender::new(config),
                subscribers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The current config (a cheap clone of shared data).
    pub fn current(&self) -> Config<S> {
        self.inner.current.borrow().clone()
    }

    /// Every config published from now on, whole.
    pub fn subscribe(&self) -> watch::Receiver<Config<S>> {
        self.inner.current.subscribe()
    }

    /// The user's `app` section as `T`, following every reload that changes it. See
    /// [`live`](Self::live).
    pub fn app<T>(&self) -> Result<Live<T>, ConfigError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.live("app")
    }

    /// The value at a dotted key path (`app.db`, `health`) as `T`, following every reload
    /// that changes it.
    ///
    /// Fails now if the current value does not read as `T`. From then on, a reload whose
    /// new value does not read as `T` is rejected as a whole: the service keeps its config,
    /// and the error names the key and where it was set. Dropping every clone of the
    /// [`Live`] ends the subscription. ([`Config::get`] reads a value once.)
    pub fn live<T>(&self, key: &str) -> Result<Live<T>, ConfigError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let value: T = self.current().get(key)?;
        let (tx, rx) = watch::channel(Arc::new(value));
        self.subscribers().push(Box::new(Typed {
            key: key.to_owned(),
            tx,
        }));
        Ok(Live::new(rx))
    }

    fn subscribers(&self) -> std::sync::MutexGuard<'_, Vec<Box<dyn Subscriber<S>>>> {
        let mut subs = self
            .inner
            .subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        subs.retain(|s| !s.is_closed());
        subs
    }

    /// The key paths that live subscribers follow, so that a reload can call changes
    /// under them applied.
    pub(crate) fn subscribed_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .subscribers()
            .iter()
            .map(|s| s.key().to_owned())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Reads `next` for every subscriber whose part is touched by `changed`. Every error
    /// is collected, so one rejected reload reports all of them.
    pub(crate) fn prepare(
        &self,
        next: Config<S>,
        changed: &[String],
    ) -> Result<Pending<S>, ConfigError> {
        let mut handovers = Vec::new();
        let mut diagnostics = Vec::new();
        for s in self.subscribers().iter() {
            let touched = changed
                .iter()
                .any(|c| is_under(c, s.key()) || is_under(s.key(), c));
            if !touched {
                continue;
            }
            match s.prepare(&next) {
                Ok(h) => handovers.push(h),
                Err(e) => diagnostics.extend(e.diagnostics().iter().cloned()),
            }
        }
        if !diagnostics.is_empty() {
            diagnostics.dedup();
            return Err(ConfigError::from_diagnostics(diagnostics));
        }
        Ok(Pending {
            watch: self.clone(),
            next,
            handovers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigLoader;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct App {
        greeting: String,
    }

    fn load(yaml: &str) -> crate::Config {
        ConfigLoader::new().yaml(yaml).load().unwrap()
    }

    #[test]
    fn a_subscriber_sees_changes_to_its_part_only() {
        let watch = ConfigWatch::new(load("app: { greeting: hi }"));
        let app = watch.app::<App>().unwrap();
        let mut rx = app.receiver();
        assert_eq!(rx.borrow_and_update().greeting, "hi");

        let next = load("app: { greeting: hi }\nlogging: { level: warn }");
        watch
            .prepare(next, &["logging.level".into()])
            .unwrap()
            .commit();
        assert!(!rx.has_changed().unwrap());
        assert_eq!(watch.current().chassis().logging.level, "warn");

        let next = load("app: { greeting: hola }");
        watch
            .prepare(next, &["app.greeting".into()])
            .unwrap()
            .commit();
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().greeting, "hola");
        assert_eq!(app.get().greeting, "hola");
    }

    #[test]
    fn a_value_the_subscriber_cannot_read_rejects_the_whole_reload() {
        let watch = ConfigWatch::new(load("app: { greeting: hi }"));
        let app = watch.app::<App>().unwrap();
        let next = load("app: { greeting: [1, 2] }\nlogging: { level: warn }");
        let e = match watch.prepare(next, &["app.greeting".into(), "logging.level".into()]) {
            Err(e) => e,
            Ok(_) => panic!("accepted an app section the subscriber cannot read"),
        };
        assert_eq!(
            e.diagnostics()[0].key.as_deref(),
            Some("app.greeting"),
            "{e}"
        );
        assert_eq!(
            e.diagnostics()[0].location.as_deref(),
            Some("inline config:1")
        );
        assert_eq!(app.get().greeting, "hi");
        assert_eq!(watch.current().chassis().logging.level, "info");
    }

    #[test]
    fn dropping_the_receiver_ends_the_subscription() {
        let watch = ConfigWatch::new(load("app: { greeting: hi }"));
        let app = watch.live::<String>("app.greeting").unwrap();
        assert_eq!(watch.subscribed_keys(), ["app.greeting"]);
        drop(app);
        assert!(watch.subscribed_keys().is_empty());
        // An unreadable value no longer matters to anyone.
        let next = load("app: { greeting: [1] }");
        assert!(watch.prepare(next, &["app.greeting".into()]).is_ok());
    }
}
