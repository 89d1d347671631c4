//! The `admin` section: who may use the admin endpoints.

use serde::{Deserialize, Serialize};

use crate::config::Rules;

/// `admin:` who may use the admin endpoints (`/admin/info` included).
///
/// With a `token`, those endpoints require `Authorization: Bearer <token>`. Without one,
/// they answer only on a management port bound to a loopback address
/// (`server.management.host: 127.0.0.1`), and are off elsewhere. The same rule decides who
/// sees the health checks' details (`health.show_details: when_authorized`). The token may
/// be stored encrypted, as `enc_token`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AdminSection {
    /// The bearer token; `null` (default) for none.
    pub token: Option<String>,
}

/// Never shows the token.
impl std::fmt::Debug for AdminSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSection")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl AdminSection {
    /// Rules that types alone cannot express; keys relative to `admin`.
    pub(crate) fn validate(&self, rules: &mut Rules<'_>) {
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            rules.fail("token", "expected a non-empty token, or null for none");
        }
    }
}
