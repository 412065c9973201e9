//! A revocation case: one decision to take access away, from trigger to verification.
//!
//! Its fields are private: a case changes only through its transitions (hold,
//! resume, start, record, verify, fail, nothing to revoke, postpone), each checked
//! against [`CaseStatus::successors`]. Property-tested: whatever sequence of
//! transitions is tried, the status only moves along the table, a final case never
//! changes, the before-state is taken once, and the session cutoff never moves back.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::hr::HrEventType;
use super::plan::{Action, IdentitySnapshot, Lane, RevocationKind};
use crate::identity::PrincipalId;

/// A revocation case's id: `rev-` and 24 lowercase hex digits, derived from what
/// triggered it ([`RevocationCase::id_for`]). Anything else is refused where an id
/// arrives (an API path, a workflow's input), never looked up.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct CaseId(String);

impl CaseId {
    pub fn parse(text: &str) -> Result<Self, RevocationError> {
        let ok = text.strip_prefix("rev-").is_some_and(|hex| {
            hex.len() == 24
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(RevocationError::BadCaseId {
                id: text.chars().take(64).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for CaseId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CaseId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        CaseId::parse(&text).map_err(serde::de::Error::custom)
    }
}

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

impl CaseStatus {
    /// The status in words, for people.
    pub fn label(self) -> &'static str {
        use CaseStatus::*;
        match self {
            Received => "received",
            Held => "held",
            InProgress => "in progress",
            Revoked => "revoked",
            Verified => "verified",
            Failed => "failed",
            NothingToRevoke => "nothing to revoke",
        }
    }

    /// The statuses a case may move to from this one (staying put is always
    /// allowed: every step is idempotent).
    pub fn successors(self) -> &'static [CaseStatus] {
        use CaseStatus::*;
        match self {
            Received => &[Held, InProgress, Revoked, Failed, Verified, NothingToRevoke],
            Held => &[Received, InProgress, Failed, Verified, NothingToRevoke],
            InProgress => &[Held, Revoked, Failed, Verified, NothingToRevoke],
            Revoked => &[Held, Failed, Verified, NothingToRevoke],
            Failed => &[Held, Verified, NothingToRevoke],
            Verified | NothingToRevoke => &[],
        }
    }

    /// Verified or nothing to revoke: the case never changes again.
    pub fn is_final(self) -> bool {
        self.successors().is_empty()
    }
}

/// Why a case refuses a transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    #[error("revocation case {case} is {from:?}; it cannot become {to:?}")]
    InvalidTransition {
        case: String,
        from: CaseStatus,
        to: CaseStatus,
    },
    #[error("revocation case {case} is {status:?}; only a case not yet started can be postponed")]
    NotPostponable { case: String, status: CaseStatus },
    #[error(
        "event {event_id} was received before with a different body; a changed event needs a new id"
    )]
    EventMismatch { event_id: String },
    #[error(
        "trigger {event_id} opened case {case} for another person or kind; a different ask needs a new id"
    )]
    CaseMismatch { case: String, event_id: String },
    #[error("`{id}` is not a revocation case id (rev- and 24 hex digits)")]
    BadCaseId { id: String },
    #[error("revocation case {case} has no before-state yet: its snapshot step comes first")]
    NotStarted { case: String },
    #[error("role `{role}` is not in the catalog")]
    UnknownRole { role: String },
    #[error("an approval reference is required")]
    ApprovalMissing,
    #[error(
        "the archived before-state of {user} taken at {} is not the one the revocation signed ({why}): refused",
        taken_at.format("%Y-%m-%d %H:%M:%S UTC")
    )]
    ArchiveUnverified {
        user: PrincipalId,
        taken_at: chrono::DateTime<chrono::Utc>,
        why: String,
    },
    #[error(
        "HR event {event_id} reached the revocation workflow without the webhook's claim of its content: refused"
    )]
    Unclaimed { event_id: String },
    #[error(
        "the contract-end grace for {user} is at most {max}, once (asked for {requested}; used already: {used})"
    )]
    GraceExceeded {
        user: PrincipalId,
        requested: String,
        max: crate::duration::Span,
        used: bool,
    },
}

impl RevocationError {
    /// Whether the input was wrong (rather than the case's state).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            RevocationError::UnknownRole { .. }
                | RevocationError::BadCaseId { .. }
                | RevocationError::ApprovalMissing
                | RevocationError::GraceExceeded { .. }
        )
    }
}

/// How one action came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// This run changed IAM (or the request).
    Done,
    /// It was so already (a re-driven or duplicated run).
    AlreadyDone,
    /// A request to cancel had been granted meanwhile: the grant was ended instead.
    EndedMeanwhile,
}

/// What one action did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub action: Action,
    pub lane: Lane,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevocationCase {
    id: CaseId,
    user: PrincipalId,
    kind: RevocationKind,
    trigger: Trigger,
    effective_at: DateTime<Utc>,
    status: CaseStatus,
    #[serde(default)]
    held_reason: Option<String>,
    /// Sessions issued before this are denied; set when the revocation starts.
    #[serde(default)]
    cutoff: Option<DateTime<Utc>>,
    #[serde(default)]
    before: Option<IdentitySnapshot>,
    #[serde(default)]
    applied: Vec<Applied>,
    #[serde(default)]
    after: Option<IdentitySnapshot>,
    #[serde(default)]
    residue: Vec<String>,
    /// Keep the archived before-state past its retention (with legal hold).
    #[serde(default)]
    preserve_data: bool,
    /// A contract end's grace period has been granted (it can be, once).
    #[serde(default)]
    grace_used: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(default)]
    version: u64,
}

impl RevocationCase {
    /// The case id for a trigger about a person: the same trigger always names the
    /// same case, which is what makes a duplicated HR event revoke once. The person
    /// (as IAM compares user names: without case) and the kind are part of it, so a
    /// trigger id reused for someone else (an operator's `request_id` used twice, an
    /// HR event id reused after its claim expired) never lands on their case.
    pub fn id_for(
        source: TriggerSource,
        event_id: &str,
        user: &PrincipalId,
        kind: &RevocationKind,
    ) -> CaseId {
        let digest = Sha256::digest(
            format!(
                "{source:?}:{event_id}:{}:{}",
                user.as_str().to_ascii_lowercase(),
                kind.label()
            )
            .as_bytes(),
        );
        CaseId(format!("rev-{}", &hex::encode(digest)[..24]))
    }

    /// Is `other` the same ask as this case (the same trigger about the same person,
    /// for the same kind), so that opening it again is a retry?
    pub fn same_ask(&self, other: &RevocationCase) -> bool {
        self.trigger.source == other.trigger.source
            && self.trigger.event_id == other.trigger.event_id
            && self.user.as_str().eq_ignore_ascii_case(other.user.as_str())
            && self.kind == other.kind
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
            id: Self::id_for(trigger.source, &trigger.event_id, &user, &kind),
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

    pub fn id(&self) -> &CaseId {
        &self.id
    }
    pub fn user(&self) -> &PrincipalId {
        &self.user
    }
    pub fn kind(&self) -> &RevocationKind {
        &self.kind
    }
    pub fn trigger(&self) -> &Trigger {
        &self.trigger
    }
    pub fn effective_at(&self) -> DateTime<Utc> {
        self.effective_at
    }
    pub fn status(&self) -> CaseStatus {
        self.status
    }
    pub fn held_reason(&self) -> &Option<String> {
        &self.held_reason
    }
    pub fn cutoff(&self) -> Option<DateTime<Utc>> {
        self.cutoff
    }
    pub fn before(&self) -> &Option<IdentitySnapshot> {
        &self.before
    }
    pub fn applied(&self) -> &Vec<Applied> {
        &self.applied
    }
    pub fn after(&self) -> &Option<IdentitySnapshot> {
        &self.after
    }
    pub fn residue(&self) -> &Vec<String> {
        &self.residue
    }
    pub fn preserve_data(&self) -> bool {
        self.preserve_data
    }
    pub fn grace_used(&self) -> bool {
        self.grace_used
    }
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
    pub fn version(&self) -> u64 {
        self.version
    }

    fn move_to(&mut self, to: CaseStatus) -> Result<(), RevocationError> {
        if to == self.status {
            return Ok(());
        }
        if !self.status.successors().contains(&to) {
            return Err(RevocationError::InvalidTransition {
                case: self.id.to_string(),
                from: self.status,
                to,
            });
        }
        self.status = to;
        Ok(())
    }

    /// Held back by an override. `false` when it was held already, or is final
    /// (a verified case has nothing left to hold back).
    pub fn hold(&mut self, reason: &str) -> Result<bool, RevocationError> {
        if self.status == CaseStatus::Held || self.status.is_final() {
            return Ok(false);
        }
        self.move_to(CaseStatus::Held)?;
        self.held_reason = Some(reason.to_owned());
        Ok(true)
    }

    /// The override was cleared: back to where the case was (in progress once its
    /// before-state is taken). Returns the reason it was held for; `None` when it
    /// was not held.
    pub fn resume(&mut self) -> Result<Option<String>, RevocationError> {
        if self.status != CaseStatus::Held {
            return Ok(None);
        }
        let to = if self.before.is_some() {
            CaseStatus::InProgress
        } else {
            CaseStatus::Received
        };
        self.move_to(to)?;
        Ok(Some(self.held_reason.take().unwrap_or_default()))
    }

    /// The before-state is taken (once: a second snapshot keeps the first) and the
    /// revocation is under way.
    pub fn start(&mut self, before: IdentitySnapshot) -> Result<(), RevocationError> {
        if self.before.is_some() {
            return Ok(());
        }
        self.move_to(CaseStatus::InProgress)?;
        self.before = Some(before);
        Ok(())
    }

    /// What the lanes did (each action once) and the after-state; the session
    /// cutoff is the latest one the credentials lane wrote. A final case keeps what
    /// it has.
    /// Records what the lanes applied. The after-state is what verification
    /// reads back ([`RevocationCase::verify`], [`RevocationCase::fail`]).
    pub fn record(&mut self, applied: Vec<Applied>) -> Result<(), RevocationError> {
        // A rival run of the same case (a duplicated delivery) may record after this
        // one was verified: the verified record stands.
        if self.status.is_final() {
            return Ok(());
        }
        if matches!(self.status, CaseStatus::InProgress | CaseStatus::Received) {
            self.move_to(CaseStatus::Revoked)?;
        }
        for item in applied {
            if let super::plan::Action::DenyOlderSessions { issued_before } = item.action {
                self.cutoff = self.cutoff.max(Some(issued_before));
            }
            if !self.applied.contains(&item) {
                self.applied.push(item);
            }
        }
        Ok(())
    }

    /// IAM read back holds what it should not.
    pub fn fail(
        &mut self,
        after: IdentitySnapshot,
        residue: Vec<String>,
    ) -> Result<(), RevocationError> {
        self.move_to(CaseStatus::Failed)?;
        self.after = Some(after);
        self.residue = residue;
        Ok(())
    }

    /// IAM read back holds nothing of what was taken away.
    pub fn verify(&mut self, after: IdentitySnapshot) -> Result<(), RevocationError> {
        self.move_to(CaseStatus::Verified)?;
        self.after = Some(after);
        self.residue.clear();
        Ok(())
    }

    /// IAM does not know the user, before or after.
    pub fn nothing_to_revoke(&mut self, after: IdentitySnapshot) -> Result<(), RevocationError> {
        self.move_to(CaseStatus::NothingToRevoke)?;
        self.after = Some(after);
        self.residue.clear();
        Ok(())
    }

    /// Moves a case not yet started later; `grace` marks a contract end's one grace.
    pub fn postpone(&mut self, by: TimeDelta, grace: bool) -> Result<(), RevocationError> {
        if self.status != CaseStatus::Received {
            return Err(RevocationError::NotPostponable {
                case: self.id.to_string(),
                status: self.status,
            });
        }
        self.effective_at += by;
        self.grace_used |= grace;
        Ok(())
    }

    /// A change is about to be written at `now`.
    pub fn touch(&mut self, now: DateTime<Utc>) {
        self.updated_at = now;
    }

    /// After a store has written this value at `version`.
    pub fn committed_at_version(&mut self, version: u64) {
        self.version = version;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::plan::Lane;
    use crate::testing::monday_at;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Hold,
        Resume,
        Start,
        Record { cutoff_minutes: i64, action: u8 },
        Fail,
        Verify,
        NothingToRevoke,
        Postpone { hours: i64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Hold),
            Just(Op::Resume),
            Just(Op::Start),
            (0i64..120, 0u8..4).prop_map(|(cutoff_minutes, action)| Op::Record {
                cutoff_minutes,
                action
            }),
            Just(Op::Fail),
            Just(Op::Verify),
            Just(Op::NothingToRevoke),
            (1i64..48).prop_map(|hours| Op::Postpone { hours }),
        ]
    }

    fn case() -> RevocationCase {
        RevocationCase::new(
            PrincipalId::new("jdoe").unwrap(),
            RevocationKind::Full,
            Trigger {
                source: TriggerSource::Hr,
                event_id: "evt-1".into(),
                event_type: None,
                reason: "terminated".into(),
                executor: "hr".into(),
                manager: None,
            },
            monday_at(10),
            false,
            monday_at(9),
        )
    }

    fn snapshot(exists: bool) -> IdentitySnapshot {
        let mut s = IdentitySnapshot::absent(PrincipalId::new("jdoe").unwrap(), monday_at(10));
        s.exists = exists;
        s
    }

    fn apply(case: &mut RevocationCase, op: &Op) -> Result<(), RevocationError> {
        match op {
            Op::Hold => case.hold("INC-1").map(|_| ()),
            Op::Resume => case.resume().map(|_| ()),
            Op::Start => case.start(snapshot(true)),
            Op::Record {
                cutoff_minutes,
                action,
            } => {
                let action = match action {
                    0 => Action::DeleteLoginProfile,
                    1 => Action::RemoveFromGroup {
                        group: "engineers".into(),
                    },
                    _ => Action::DenyOlderSessions {
                        issued_before: monday_at(10) + TimeDelta::minutes(*cutoff_minutes),
                    },
                };
                let lane = Lane::Credentials;
                case.record(vec![Applied {
                    action,
                    lane,
                    outcome: Outcome::Done,
                }])
            }
            Op::Fail => case.fail(snapshot(true), vec!["group engineers".into()]),
            Op::Verify => case.verify(snapshot(true)),
            Op::NothingToRevoke => case.nothing_to_revoke(snapshot(false)),
            Op::Postpone { hours } => case.postpone(TimeDelta::hours(*hours), false),
        }
    }

    proptest! {
        #[test]
        fn a_case_only_moves_along_its_successor_table(ops in proptest::collection::vec(op(), 0..24)) {
            let mut case = case();
            for op in &ops {
                let before = case.clone();
                let result = apply(&mut case, op);
                let (from, to) = (before.status(), case.status());
                if result.is_err() {
                    prop_assert_eq!(&case, &before, "a refused transition changes nothing");
                }
                if from != to {
                    prop_assert!(from.successors().contains(&to), "{:?} -> {:?} by {:?}", from, to, op);
                }
                if from.is_final() {
                    prop_assert_eq!(&case, &before, "a final case never changes ({:?})", op);
                }
                if before.before().is_some() {
                    prop_assert_eq!(case.before(), before.before(), "the before-state is taken once");
                }
                prop_assert!(case.cutoff() >= before.cutoff(), "the cutoff never moves back");
                let mut seen = Vec::new();
                for item in case.applied() {
                    prop_assert!(!seen.contains(&item), "each action once");
                    seen.push(item);
                }
                if case.effective_at() != before.effective_at() {
                    prop_assert_eq!(from, CaseStatus::Received, "only a case not started moves");
                }
                if to == CaseStatus::Held {
                    prop_assert!(case.held_reason().is_some());
                }
            }
        }
    }

    #[test]
    fn case_ids_are_what_triggers_derive_and_nothing_else() {
        let user = PrincipalId::new("jdoe").unwrap();
        let id = RevocationCase::id_for(TriggerSource::Hr, "evt-1", &user, &RevocationKind::Full);
        // The person (without case, as IAM compares names) and the kind are part of it.
        assert_eq!(
            RevocationCase::id_for(
                TriggerSource::Hr,
                "evt-1",
                &PrincipalId::new("JDoe").unwrap(),
                &RevocationKind::Full
            ),
            id
        );
        for (who, kind) in [
            ("asmith", RevocationKind::Full),
            ("jdoe", RevocationKind::Suspend),
        ] {
            assert_ne!(
                RevocationCase::id_for(
                    TriggerSource::Hr,
                    "evt-1",
                    &PrincipalId::new(who).unwrap(),
                    &kind
                ),
                id,
                "{who} {kind:?}"
            );
        }
        assert_eq!(CaseId::parse(&id).unwrap(), id);
        assert_eq!(
            serde_json::from_value::<CaseId>(serde_json::json!(id.as_str())).unwrap(),
            id
        );
        for bad in [
            "",
            "rev-",
            "rev-XYZ",
            "req-0123456789abcdef01234567",
            "rev-0123456789ABCDEF01234567",
            "rev-0123456789abcdef0123456",
            "rev-0123456789abcdef01234567/../x",
        ] {
            assert!(CaseId::parse(bad).is_err(), "{bad}");
            assert!(
                serde_json::from_value::<CaseId>(serde_json::json!(bad)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_table_has_no_way_out_of_a_final_status() {
        for status in [CaseStatus::Verified, CaseStatus::NothingToRevoke] {
            assert!(status.is_final() && status.successors().is_empty());
        }
        let mut case = case();
        case.verify(snapshot(true)).unwrap();
        let err = case.fail(snapshot(true), vec!["x".into()]).unwrap_err();
        assert!(matches!(
            err,
            RevocationError::InvalidTransition {
                from: CaseStatus::Verified,
                to: CaseStatus::Failed,
                ..
            }
        ));
        assert!(!case.hold("late override").unwrap(), "nothing left to hold");
        assert_eq!(case.status(), CaseStatus::Verified);
    }
}
