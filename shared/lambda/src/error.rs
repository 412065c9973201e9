//! Handler errors and their Lambda diagnostics.
//!
//! The `error_type` of every diagnostic is one of the fixed names in [`REGISTRY`],
//! which also gives each its HTTP status and whether a workflow may retry it; the
//! state machines in `infra/statemachines/` match on them (`Lapse.Transient` and
//! `Lapse.Conflict` are retried with backoff, `Lapse.InvalidState` never is,
//! `Lapse.VerificationFailed` goes to the alarm path, ...).
//! Messages never contain secrets: errors carry ids and reasons, not payloads.

use lambda_runtime::Diagnostic;
use lapse_core::{Error, ErrorKind};

use crate::config::ConfigError;

/// The stable error names.
pub mod names {
    pub const VALIDATION: &str = "Lapse.Validation";
    pub const FORBIDDEN: &str = "Lapse.Forbidden";
    pub const NOT_FOUND: &str = "Lapse.NotFound";
    pub const CONFLICT: &str = "Lapse.Conflict";
    pub const INVALID_STATE: &str = "Lapse.InvalidState";
    pub const TRANSIENT: &str = "Lapse.Transient";
    pub const INTEGRITY: &str = "Lapse.Integrity";
    pub const CONFIGURATION: &str = "Lapse.Configuration";
    pub const VERIFICATION_FAILED: &str = "Lapse.VerificationFailed";
    pub const BAD_EVENT: &str = "Lapse.BadEvent";
    pub const NOT_DUE: &str = "Lapse.NotDue";
    /// A request body over the limit (HTTP 413).
    pub const TOO_LARGE: &str = "Lapse.TooLarge";
}

/// One error name: what it means, the HTTP status it answers with, and whether a
/// workflow may retry it (a retry can help) or must not (it never will).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorName {
    pub name: &'static str,
    pub status: u16,
    pub retryable: bool,
    pub meaning: &'static str,
}

const fn entry(
    name: &'static str,
    status: u16,
    retryable: bool,
    meaning: &'static str,
) -> ErrorName {
    ErrorName {
        name,
        status,
        retryable,
        meaning,
    }
}

/// The registry every error name, HTTP status and workflow retry comes from.
/// `tests/events.rs` checks that the state machines match only these names and
/// retry only the retryable ones.
pub const REGISTRY: &[ErrorName] = &[
    entry(names::VALIDATION, 400, false, "the input is wrong"),
    entry(
        names::BAD_EVENT,
        400,
        false,
        "the event or body has the wrong shape",
    ),
    entry(names::TOO_LARGE, 413, false, "the body is over the limit"),
    entry(names::FORBIDDEN, 403, false, "the caller may not do this"),
    entry(names::NOT_FOUND, 404, false, "no such thing"),
    entry(
        names::CONFLICT,
        409,
        true,
        "lost a race with another writer; re-read and retry",
    ),
    entry(
        names::INVALID_STATE,
        409,
        false,
        "not allowed in the current state (already decided, cancelled, expired)",
    ),
    entry(
        names::TRANSIENT,
        503,
        true,
        "a dependency failed or throttled",
    ),
    entry(
        names::INTEGRITY,
        500,
        false,
        "stored data failed an integrity check",
    ),
    entry(
        names::CONFIGURATION,
        500,
        false,
        "the deployment is misconfigured",
    ),
    entry(
        names::VERIFICATION_FAILED,
        500,
        true,
        "IAM still holds access (retried for IAM's eventual consistency, then alarmed)",
    ),
    entry(
        names::NOT_DUE,
        409,
        false,
        "not yet: validate and wait again",
    ),
];

/// The registry's entry for a name.
pub fn registered(name: &str) -> Option<&'static ErrorName> {
    REGISTRY.iter().find(|e| e.name == name)
}

/// Anything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Core(#[from] Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The event does not have the shape the handler takes.
    #[error("malformed event: {0}")]
    BadEvent(String),
    /// A request body over the handler's limit.
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
}

impl HandlerError {
    /// The stable name for this error.
    pub fn name(&self) -> &'static str {
        match self {
            HandlerError::Core(e) => match e.kind() {
                ErrorKind::Validation => names::VALIDATION,
                ErrorKind::Forbidden => names::FORBIDDEN,
                ErrorKind::NotFound => names::NOT_FOUND,
                ErrorKind::Conflict => names::CONFLICT,
                ErrorKind::InvalidState => names::INVALID_STATE,
                ErrorKind::Transient => names::TRANSIENT,
                ErrorKind::Integrity => names::INTEGRITY,
                ErrorKind::Configuration => names::CONFIGURATION,
                ErrorKind::VerificationFailed => names::VERIFICATION_FAILED,
                ErrorKind::NotDue => names::NOT_DUE,
            },
            HandlerError::Config(_) => names::CONFIGURATION,
            HandlerError::BadEvent(_) => names::BAD_EVENT,
            HandlerError::TooLarge { .. } => names::TOO_LARGE,
        }
    }

    /// The HTTP status for this error, from the registry.
    pub fn status(&self) -> u16 {
        registered(self.name()).map_or(500, |e| e.status)
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(err: HandlerError) -> Self {
        Diagnostic {
            error_type: err.name().to_owned(),
            error_message: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapse_core::access::request::RequestError;
    use lapse_core::ports::StoreError;

    #[test]
    fn errors_map_to_stable_names() {
        let cases: Vec<(HandlerError, &str)> = vec![
            (
                Error::Request(RequestError::JustificationMissing).into(),
                "Lapse.Validation",
            ),
            (
                Error::Request(RequestError::SelfApproval(
                    lapse_core::identity::PrincipalId::new("a").unwrap(),
                ))
                .into(),
                "Lapse.Forbidden",
            ),
            (Error::NotFound("req-1".into()).into(), "Lapse.NotFound"),
            (
                Error::Store(StoreError::Conflict { what: "x".into() }).into(),
                "Lapse.Conflict",
            ),
            (
                Error::Request(RequestError::InvalidTransition {
                    from: lapse_core::access::request::Status::Cancelled,
                    action: "approve",
                })
                .into(),
                "Lapse.InvalidState",
            ),
            (
                Error::Store(StoreError::Throttled("slow down".into())).into(),
                "Lapse.Transient",
            ),
            (ConfigError::Missing("X").into(), "Lapse.Configuration"),
            (HandlerError::BadEvent("no body".into()), "Lapse.BadEvent"),
            (HandlerError::TooLarge { limit: 1 }, "Lapse.TooLarge"),
            (
                Error::Ask(lapse_core::revocation::operator::AskError::Invalid {
                    field: "user",
                    problem: "is required".into(),
                })
                .into(),
                "Lapse.Validation",
            ),
            (
                Error::VerificationFailed {
                    request: "req-1".into(),
                    residue: "policy".into(),
                }
                .into(),
                "Lapse.VerificationFailed",
            ),
        ];
        for (err, name) in cases {
            assert!(registered(name).is_some(), "{name}");
            let diagnostic = Diagnostic::from(err);
            assert_eq!(diagnostic.error_type, name);
            assert!(!diagnostic.error_message.is_empty());
        }
    }

    #[test]
    fn a_lost_race_is_retryable_and_an_invalid_transition_is_not() {
        let conflict: HandlerError = Error::Store(StoreError::Conflict { what: "x".into() }).into();
        let invalid: HandlerError = Error::Request(RequestError::NotPending {
            status: lapse_core::access::request::Status::Denied,
        })
        .into();
        assert_eq!((conflict.status(), invalid.status()), (409, 409));
        assert!(registered(conflict.name()).unwrap().retryable);
        assert!(!registered(invalid.name()).unwrap().retryable);
        let names: std::collections::BTreeSet<_> = REGISTRY.iter().map(|e| e.name).collect();
        assert_eq!(names.len(), REGISTRY.len(), "each name once");
    }

    #[test]
    fn bundled_catalog_is_valid() {
        let catalog = crate::bundled_catalog().unwrap();
        assert!(catalog.resource("prod-db-admin").is_some());
    }

    #[test]
    fn the_compiled_catalog_is_the_catalog_file() {
        // What build.rs embedded reads back as the file's text parses, hash included.
        let embedded = crate::bundled_catalog().unwrap();
        let parsed = lapse_core::policy::Catalog::parse(crate::BUNDLED_CATALOG, "c.yaml").unwrap();
        assert_eq!(format!("{embedded:?}"), format!("{parsed:?}"));
    }
}
