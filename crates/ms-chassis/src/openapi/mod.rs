//! OpenAPI: spec-first loading and bundling, and request (and response) validation
//! against the spec.
//!
//! PART B ONLY; the lead merges this with part A's `mod.rs` (config section, code-first
//! spec, publishing, Swagger UI). Part B's public names are re-exported below.

mod bundle;
mod compiled;
mod dialect;
mod document;
mod media;
mod meta;
mod params;
mod response;
mod security;
pub mod validate;
mod violation;

pub use compiled::Validator;
pub use document::{Diagnostic, Document, SpecError, SpecVersion};
pub use security::{Credential, CredentialKind, CredentialVerifier};
pub use validate::{ResponseValidation, ValidationLayer, ValidationOptions, ValidationService};
