//! A revocation case: one decision to take access away, from trigger to verification.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::hr::HrEventType;
use super::plan::{Action, IdentitySnapshot, Lane, RevocationKind};
use crate::identity::PrincipalId;

/// What started a revocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerSource {
    Hr,
    Operator,
    Inactivity,
    Violation,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub source: TriggerSource,
    /// The HR event id, or an id the operator or check made; it names the case.
    pub event_id: String,
    pub event_type: Option<HrEventType>,
    pub reason: String,
    /// Who or what asked (the HR system, an operator's identity, the checker).
    pub executor: String,
    /// The manager to notify, when known.
    #[serde(default)]
    pub manager: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Received,
    /// Held back by an override; audited with its reason.
    Held,
    InProgress,
    /// Changes applied, not yet verified.
    Revoked,
    Verified,
    /// Verification found residue.
    Failed,
    /// IAM does not know the user: nothing was revoked, and security was alerted
    /// (an HR feed with a typo may have meant someone who still has access).
    NothingToRevoke,
}

/// What one action did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub action: Action,
    pub lane: Lane,
    /// `done`, `already_done`, or `failed: <reason>`.
    pub outcome: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevocationCase {
    pub id: String,
    pub user: PrincipalId,
    pub kind: RevocationKind,
    pub trigger: Trigger,
    pub effective_at: DateTime<Utc>,
    pub status: CaseStatus,
    #[serde(default)]
    pub held_reason: Option<String>,
    /// Sessions issued before this are denied; set when the revocation starts.
    #[serde(default)]
    pub cutoff: Option<DateTime<Utc>>,
    #[serde(default)]
    pub before: Option<IdentitySnapshot>,
    #[serde(default)]
    pub applied: Vec<Applied>,
    #[serde(default)]
    pub after: Option<IdentitySnapshot>,
    #[serde(default)]
    pub residue: Vec<String>,
    /// Keep the archived before-state past its retention (with legal hold).
    #[serde(default)]
    pub preserve_data: bool,
    /// A contract end's grace period has been granted (it can be, once).
    #[serde(default)]
    pub grace_used: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub version: u64,
}

impl RevocationCase {
    /// The case id for a trigger: the same trigger always names the same case, which
    /// is what makes a duplicated HR event revoke once.
    pub fn id_for(source: TriggerSource, event_id: &str) -> String {
        let digest = Sha256::digest(format!("{source:?}:{event_id}").as_bytes());
        format!("rev-{}", &hex::encode(digest)[..24])
    }

    pub fn new(
        user: PrincipalId,
        kind: RevocationKind,
        trigger: Trigger,
        effective_at: DateTime<Utc>,
        preserve_data: bool,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Self::id_for(trigger.source, &trigger.event_id),
            user,
            kind,
            trigger,
            effective_at,
            status: CaseStatus::Received,
            held_reason: None,
            cutoff: None,
            before: None,
            applied: Vec::new(),
            after: None,
            residue: Vec::new(),
            preserve_data,
            grace_used: false,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// The audit chain for the user (revocations chain per subject).
    pub fn chain(&self) -> String {
        format!("user#{}", self.user)
    }
}
