//! Handler errors and their Lambda diagnostics.
//!
//! The `error_type` of every diagnostic is one of the fixed names in [`names`]; the
//! state machines in `infra/statemachines/` match on them (`Lapse.Transient` is
//! retried with backoff, `Lapse.VerificationFailed` goes to the alarm path, ...).
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
    pub const TRANSIENT: &str = "Lapse.Transient";
    pub const INTEGRITY: &str = "Lapse.Integrity";
    pub const CONFIGURATION: &str = "Lapse.Configuration";
    pub const VERIFICATION_FAILED: &str = "Lapse.VerificationFailed";
    pub const BAD_EVENT: &str = "Lapse.BadEvent";
    pub const NOT_DUE: &str = "Lapse.NotDue";
    /// A request body over the limit (HTTP 413).
    pub const TOO_LARGE: &str = "Lapse.TooLarge";

    /// Every name, for tests that check the state machines only use real ones.
    pub const ALL: &[&str] = &[
        VALIDATION,
        FORBIDDEN,
        NOT_FOUND,
        CONFLICT,
        TRANSIENT,
        INTEGRITY,
        CONFIGURATION,
        VERIFICATION_FAILED,
        BAD_EVENT,
        NOT_DUE,
        TOO_LARGE,
    ];
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
    use lapse_core::ports::StoreError;
    use lapse_core::request::RequestError;

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
            assert!(names::ALL.contains(&name));
            let diagnostic = Diagnostic::from(err);
            assert_eq!(diagnostic.error_type, name);
            assert!(!diagnostic.error_message.is_empty());
        }
    }

    #[test]
    fn bundled_catalog_is_valid() {
        let catalog = crate::bundled_catalog().unwrap();
        assert!(catalog.resource("prod-db-admin").is_some());
    }
}
