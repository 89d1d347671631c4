//! Config errors that say where: file and line (or env var), key path, and what was expected.

use std::fmt;

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDiagnostic {
    /// Where the offending value came from: `config.yaml:12`, `environment variable MS__SERVER__PORT`…
    pub location: Option<String>,
    /// The dotted key path, such as `server.port`.
    pub key: Option<String>,
    /// What was expected and what was found.
    pub message: String,
}

impl fmt::Display for ConfigDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The configuration could not be loaded. Holds every problem found, one per line in `Display`.
///
/// Messages never contain secret values: they name keys and locations, and quote only
/// the offending scalar of a type error, and that only where
/// [`Config::redacted`](super::Config::redacted) would show it (elsewhere it reads
/// `<redacted>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    diagnostics: Vec<ConfigDiagnostic>,
}

impl ConfigError {
    pub(crate) fn new(
        location: Option<String>,
        key: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::from_diagnostics(vec![ConfigDiagnostic {
            location,
            key,
            message: message.into(),
        }])
    }

    pub(crate) fn from_diagnostics(diagnostics: Vec<ConfigDiagnostic>) -> Self {
        debug_assert!(!diagnostics.is_empty());
        Self { diagnostics }
    }

    /// Every problem found.
    pub fn diagnostics(&self) -> &[ConfigDiagnostic] {
        &self.diagnostics
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
