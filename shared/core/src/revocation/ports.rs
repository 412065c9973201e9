//! Ports the revocation use cases need, beyond the grant lifecycle's.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::case::RevocationCase;
use super::hr::HrEvent;
use super::plan::{Action, IdentitySnapshot};
use crate::identity::PrincipalId;
use crate::ports::{DirectoryError, Removal, Source, StoreError};

/// Revocation cases, versioned like requests.
pub trait CaseStore: Send + Sync {
    fn create(
        &self,
        case: &mut RevocationCase,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<RevocationCase>, StoreError>> + Send;
    fn update(
        &self,
        case: &mut RevocationCase,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every case about one user, oldest first.
    fn cases_of(
        &self,
        user: &PrincipalId,
    ) -> impl Future<Output = Result<Vec<RevocationCase>, StoreError>> + Send;
}

/// Reading and changing everything a user holds in IAM. Needs the IAM read actions
/// of `AccessInspector` plus `iam:GetUser`, `iam:GetLoginProfile`,
/// `iam:ListAccessKeys`, `iam:ListSSHPublicKeys`,
/// `iam:ListServiceSpecificCredentials`, and for changes `iam:DeleteLoginProfile`,
/// `iam:UpdateAccessKey`, `iam:UpdateSSHPublicKey`,
/// `iam:UpdateServiceSpecificCredential`, `iam:RemoveUserFromGroup`,
/// `iam:DeleteUserPolicy`, `iam:DetachUserPolicy`, `iam:PutUserPolicy`.
pub trait IdentityDirectory: Send + Sync {
    fn identity(
        &self,
        user: &PrincipalId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<IdentitySnapshot, DirectoryError>> + Send;

    /// Is this a user Lapse manages (tagged `lapse:managed=true`)? `false` for a
    /// user IAM does not know. Needs `iam:ListUserTags` only.
    fn managed(
        &self,
        user: &PrincipalId,
    ) -> impl Future<Output = Result<bool, DirectoryError>> + Send;

    /// Applies one (non-grant) action; idempotent.
    fn apply(
        &self,
        user: &PrincipalId,
        action: &Action,
    ) -> impl Future<Output = Result<Removal, DirectoryError>> + Send;

    /// Puts back what a snapshot held (credentials reactivated, memberships and
    /// policies restored, the session deny removed, the person taken out of each
    /// role's deny the revocation put them in, at `at`). Returns what it restored.
    fn restore(
        &self,
        snapshot: &IdentitySnapshot,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<String>, DirectoryError>> + Send;
}

/// What is known about one user's handling.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Controls {
    /// Archived data is kept past retention.
    pub legal_hold: bool,
    /// Automated revocation is held back, with this reason.
    pub override_reason: Option<String>,
    /// Set by a full or suspending revocation (the case id), cleared by a restore:
    /// while set, Lapse refuses the person's requests and decisions even if their
    /// identity provider's token is still valid.
    #[serde(default)]
    pub revoked_by: Option<String>,
    /// Set by a restore: the inactivity check counts activity from here, since the
    /// credential report still shows the use from before the revocation.
    #[serde(default)]
    pub active_since: Option<DateTime<Utc>>,
    /// A restore or an override one operator proposed, waiting for a second,
    /// different operator to confirm it (`usecase::propose_or_confirm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<Proposal>,
    /// The stored version this value was read at (0: never stored). Writes are
    /// conditional on it, so two writers never silently overwrite each other.
    #[serde(default)]
    pub version: u64,
}

/// A change to a person's access that one operator may not make alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ProposedChange {
    /// Put back the archived before-state: reopens the door a revocation closed.
    Restore {
        from_backup: DateTime<Utc>,
        approval: String,
    },
    /// Hold back the person's revocations (a termination among them).
    Override { reason: String },
}

/// One operator's proposal, stored with the person's controls until a second
/// operator confirms it or it goes stale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    #[serde(flatten)]
    pub change: ProposedChange,
    /// The proposing operator, as AWS authenticated them.
    pub proposed_by: String,
    pub at: DateTime<Utc>,
    /// A different proposal still waiting that this one replaced, said in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// Legal holds and overrides. Every change is audited by the caller.
pub trait UserControls: Send + Sync {
    fn controls(
        &self,
        user: &PrincipalId,
    ) -> impl Future<Output = Result<Controls, StoreError>> + Send;
    /// Writes `controls` if the stored version is still `controls.version` (else
    /// `StoreError::Conflict`); on success the version moves on by one.
    fn set(
        &self,
        user: &PrincipalId,
        controls: &mut Controls,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Before-state snapshots, kept for the archive retention (longer under legal hold).
pub trait Archive: Send + Sync {
    fn store(
        &self,
        snapshot: &IdentitySnapshot,
        retain_until: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Snapshots of a user, oldest first.
    fn snapshots(
        &self,
        user: &PrincipalId,
    ) -> impl Future<Output = Result<Vec<IdentitySnapshot>, StoreError>> + Send;

    /// Drops the expiry of every snapshot of a user (legal hold).
    fn retain_forever(
        &self,
        user: &PrincipalId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The outcome of claiming an HR event id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Claim {
    /// First time: process it.
    New,
    /// Seen with the same body; `published` says whether it reached the bus.
    Duplicate { published: bool },
    /// Seen with a different body: refuse.
    Mismatch,
}

/// Replay protection for webhook deliveries.
pub trait EventClaims: Send + Sync {
    /// Claims `event_id` for a delivery: `body_hash` is the raw body's (a replay
    /// must match it byte for byte), `content_hash` the parsed event's
    /// ([`crate::revocation::hr::HrEvent::content_hash`]), which the revocation
    /// workflow checks an event from the bus against.
    fn claim(
        &self,
        event_id: &str,
        body_hash: &str,
        content_hash: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;
    /// The content hash the webhook claimed `event_id` with, if it did.
    fn claimed_content(
        &self,
        event_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    fn mark_published(&self, event_id: &str)
    -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A failure publishing to the event bus.
#[derive(Debug, thiserror::Error)]
#[error("cannot publish event {event_id} to the bus")]
pub struct BusError {
    pub event_id: String,
    #[source]
    pub source: Source,
}

/// The EventBridge bus HR events are routed through. Needs `events:PutEvents`.
pub trait EventBus: Send + Sync {
    fn publish(&self, event: &HrEvent) -> impl Future<Output = Result<(), BusError>> + Send;
}
