//! Serde adapters for the durations of resilience and client settings: the config's own
//! (`30s`, `250ms`, `5m`; a bare `0` is zero; at most 365 days), under the name these
//! settings use.

pub(crate) use crate::config::duration::{deserialize, option, serialize};
