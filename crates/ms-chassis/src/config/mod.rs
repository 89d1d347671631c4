//! Externalized, layered, typed configuration.
//!
//! Layers, lowest precedence first: embedded defaults, `config.yaml` (path from
//! `MS_CONFIG_FILE`, a file or a directory; `./config.yaml` otherwise),
//! `config.<profile>.yaml` beside it (profile from `MS_PROFILE`), YAML given in code, and
//! environment variables (`MS__SERVER__PORT=9000` sets `server.port`). An `MS_*` variable
//! that is not valid UTF-8 is an error naming it (its value is never shown); other
//! variables that are not UTF-8 are ignored, as the chassis reads none of them.
//!
//! This module is the generic loader: layers, origins, errors, secrets and the live config.
//! It knows no part of the chassis. Each part owns its section type and its rules; the
//! aggregate, [`ChassisConfig`](crate::ChassisConfig), lives beside the service and is the
//! [`Schema`] a service's config is typed as ([`ms_chassis::Config`](crate::Config)). An
//! unknown key in a chassis section is an error with a "did you mean". The user's `app`
//! section is read with [`Config::app`] as the user's own `serde` type. Every error names the file and line (or env var), the key path
//! and what was expected:
//!
//! ```text
//! config.yaml:3: server.port: expected an integer 0-65535, found "eighty"
//! ```
//!
//! A key starting with `enc_` (any case, any depth, any layer) holds a Fernet token, as in
//! PyMS: once the layers are merged it is decrypted with the key file (`MS_KEY_FILE`, else
//! `./key.key`) and exposed without the prefix, so `app.db.enc_password` is read as
//! `app.db.password`. See [`SecretKey`].
//!
//! Config is shown to people in several places (`ms-chassis config check --print`,
//! `/admin/config`, `Debug`, error messages), so one view decides what may be shown, and
//! every place uses it: [`Config::redacted`] replaces decrypted values, values under keys
//! named like credentials (password, secret, token, key, authorization, cookie…), every
//! value of a header mapping such as `tracing.headers`, and URL passwords, by
//! `<redacted>`. An error about a key never quotes a value that view hides.

mod diff;
mod error;
mod inherit;
mod live;
mod loader;
mod rules;
mod secrets;
mod source;
mod typed;
mod typing;
mod values;
mod view;
mod watch;

pub(crate) use diff::is_under;
pub use error::{ConfigDiagnostic, ConfigError};
pub use live::Live;
pub use loader::ConfigLoader;
pub use rules::{DEFAULTS_ENTRY, Inheriting, Invalid, Rules, Schema};
pub(crate) use secrets::shown_url;
pub use secrets::{DEFAULT_KEY_FILE, KEY_FILE_VAR, SecretError, SecretKey, key_file_from_env};
pub use typed::Config;
pub(crate) use values::{byte_size, duration, ip, port};
pub use watch::ConfigWatch;

/// Env var naming the config file or directory.
pub const CONFIG_FILE_VAR: &str = "MS_CONFIG_FILE";
/// Env var naming the active profile.
pub const PROFILE_VAR: &str = "MS_PROFILE";
