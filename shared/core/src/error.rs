//! The core's error type and its classification.

use crate::access::request::RequestError;
use crate::audit::{ChainError, KeyError};
use crate::policy::PolicyError;
use crate::ports::{DirectoryError, NotifyError, StoreError, VaultError, WorkflowError};

/// Any failure of a core use case.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error(transparent)]
    Bus(#[from] crate::revocation::ports::BusError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Ask(#[from] crate::revocation::operator::AskError),
    #[error(transparent)]
    Revocation(#[from] crate::revocation::case::RevocationError),
    #[error("{0} not found")]
    NotFound(String),
    /// A revocation step found its case not due (postponed, or held by an
    /// override) after the workflow's Wait: the workflow goes back to validation.
    #[error("revocation case {case} is not due: {reason}")]
    NotDue { case: String, reason: String },
    /// IAM still holds what a revocation removed.
    #[error("verification of {request} failed: IAM still holds {residue}")]
    VerificationFailed { request: String, residue: String },
}

/// What kind of failure, for callers that must react (HTTP status, Step Functions
/// `Retry`/`Catch`). Stable: error names are derived from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's input is wrong; retrying will not help.
    Validation,
    /// The caller may not do this.
    Forbidden,
    NotFound,
    /// Lost a race; re-read and retry.
    Conflict,
    /// Not allowed in the current state (already decided, cancelled, timed out);
    /// retrying will not help.
    InvalidState,
    /// A dependency failed or throttled; retry with backoff.
    Transient,
    /// Stored data failed an integrity check (audit chain, corrupt item).
    Integrity,
    /// Misconfiguration.
    Configuration,
    /// A revocation did not take: IAM still holds access. Alarm.
    VerificationFailed,
    /// Not yet (postponed or held): validate and wait again.
    NotDue,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Policy(_) => ErrorKind::Configuration,
            Error::Key(KeyError::Unavailable(_)) => ErrorKind::Transient,
            Error::Key(_) => ErrorKind::Configuration,
            Error::Request(
                RequestError::RoleNotManaged { .. }
                | RequestError::GranteeNotManaged(_)
                | RequestError::GranteeNotBounded { .. },
            ) => ErrorKind::Configuration,
            Error::Request(RequestError::ApprovalUnsigned { .. }) => ErrorKind::Integrity,
            Error::Request(e) => match e {
                RequestError::SelfApproval(_)
                | RequestError::NotEligible { .. }
                | RequestError::NotRequester
                | RequestError::BreakGlassNotOffered { .. }
                | RequestError::BreakGlassNotEligible { .. }
                | RequestError::OperatorOnSelf(_)
                | RequestError::AccessRevoked(_)
                | RequestError::NotAnOperator(_)
                | RequestError::SecondOperatorRequired { .. } => ErrorKind::Forbidden,
                RequestError::NotPending { .. }
                | RequestError::PendingTimedOut { .. }
                | RequestError::InvalidTransition { .. }
                | RequestError::AlreadyJustified
                | RequestError::AlreadyReviewed(_)
                | RequestError::ReviewClosed => ErrorKind::InvalidState,
                _ => ErrorKind::Validation,
            },
            Error::Store(e) => match e {
                StoreError::AlreadyExists(_) | StoreError::Conflict { .. } => ErrorKind::Conflict,
                StoreError::Corrupt { .. } => ErrorKind::Integrity,
                StoreError::Throttled(_) | StoreError::Unavailable(_) => ErrorKind::Transient,
            },
            Error::Chain(_) => ErrorKind::Integrity,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Directory(e) => match e {
                DirectoryError::NoSuchPrincipal(_) | DirectoryError::NoSuchGroup(_) => {
                    ErrorKind::Validation
                }
                DirectoryError::Throttled(_) | DirectoryError::Unavailable(_) => {
                    ErrorKind::Transient
                }
                DirectoryError::Unsupported(_) | DirectoryError::Denied(_) => {
                    ErrorKind::Configuration
                }
            },
            Error::Notify(_) => ErrorKind::Transient,
            Error::Workflow(e) => match e {
                WorkflowError::NameTaken(_) => ErrorKind::Conflict,
                WorkflowError::Throttled(_) | WorkflowError::Unavailable(_) => ErrorKind::Transient,
                WorkflowError::Denied(_) => ErrorKind::Configuration,
            },
            Error::VerificationFailed { .. } => ErrorKind::VerificationFailed,
            Error::NotDue { .. } => ErrorKind::NotDue,
            Error::Bus(_) => ErrorKind::Transient,
            Error::Vault(VaultError::Unavailable(_) | VaultError::RotationUnfinished { .. }) => {
                ErrorKind::Transient
            }
            Error::Vault(_) => ErrorKind::Configuration,
            Error::Ask(_) => ErrorKind::Validation,
            Error::Revocation(e) if e.is_invalid_input() => ErrorKind::Validation,
            Error::Revocation(_) => ErrorKind::InvalidState,
        }
    }
}
