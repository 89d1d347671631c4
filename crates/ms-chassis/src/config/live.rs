//! [`Live<T>`]: a typed part of the config that follows every reload, for handlers to take
//! as an extractor. Spring's refreshable `@ConfigurationProperties` is the model: the type
//! is the contract, a reload that does not fit it is refused, and readers see the new value
//! from the next read on.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use tokio::sync::watch;

/// A part of the live config read as `T`: [`get`](Self::get) is the value as it is now,
/// [`changed`](Self::changed) waits for the next reload that changes it. Cheap to clone.
///
/// Made by [`ConfigWatch::app`](super::ConfigWatch::app) and
/// [`ConfigWatch::live`](super::ConfigWatch::live). In a handler it is an extractor, taken
/// from the router's state (`Live<T>` itself, or a field of yours through `FromRef`):
///
/// ```
/// use ms_chassis::config::Live;
/// use ms_chassis::prelude::*;
///
/// #[derive(serde::Deserialize)]
/// struct AppConfig { greeting: String }
///
/// async fn hello(app: Live<AppConfig>) -> String {
///     app.get().greeting.clone()                 // the greeting after any reload
/// }
///
/// # let svc = ms_chassis::Service::builder().yaml("app: { greeting: hi }").build()?;
/// let app: Live<AppConfig> = svc.config_watch().app()?;
/// assert_eq!(app.get().greeting, "hi");
/// let router: Router = Router::new().route("/hello", get(hello)).with_state(app);
/// # let _ = router;
/// # Ok::<(), ms_chassis::Error>(())
/// ```
#[derive(Debug)]
pub struct Live<T> {
    rx: watch::Receiver<Arc<T>>,
}

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Self {
            rx: self.rx.clone(),
        }
    }
}

impl<T> Live<T> {
    pub(crate) fn new(rx: watch::Receiver<Arc<T>>) -> Self {
        Self { rx }
    }

    /// The value as it is now.
    pub fn get(&self) -> Arc<T> {
        self.rx.borrow().clone()
    }

    /// Waits until a reload changes the value, and returns the new one; `None` once the
    /// service that published it is gone. Values published since this handle last looked
    /// count: a reload that came before the call returns at once.
    pub async fn changed(&mut self) -> Option<Arc<T>> {
        self.rx.changed().await.ok()?;
        Some(self.rx.borrow_and_update().clone())
    }

    /// The underlying `watch` receiver, for `tokio::select!` and other `watch` APIs.
    pub fn receiver(&self) -> watch::Receiver<Arc<T>> {
        self.rx.clone()
    }
}

impl<S, T> FromRequestParts<S> for Live<T>
where
    S: Send + Sync,
    T: Send + Sync,
    Live<T>: FromRef<S>,
{
    type Rejection = Infallible;

    async fn from_request_parts(_parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        Ok(Live::from_ref(state))
    }
}
