//! Revocation use cases. Each workflow step is its own function and idempotent, so
//! a duplicated or interrupted run converges: plans come from a fresh snapshot,
//! case ids come from triggers, audit events are keyed.

use chrono::{DateTime, NaiveTime, SubsecRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::case::{Applied, CaseStatus, RevocationCase, Trigger, TriggerSource};
use super::hr::{HrEvent, HrEventType};
use super::plan::{Action, Expected, IdentitySnapshot, Lane, RevocationKind, plan, residue};
use super::ports::{
    Archive, CaseStore, Claim, EventBus, EventClaims, IdentityDirectory, UserControls,
};
use crate::audit::AuditDraft;
use crate::error::Error;
use crate::grant::NAME_PREFIX;
use crate::identity::PrincipalId;
use crate::ledger::Artifact;
use crate::policy::Catalog;
use crate::ports::{
    AccessInspector, AccessProvisioner, Audience, AuditLog, Clock, LedgerStore, Notice, Notifier,
    Removal, RequestQueries, RequestStore, StoreError,
};
use crate::request::{RequestError, RequestId, RevokeCause, Status};
use crate::usecase::AuditTrail;
use crate::usecase::lifecycle::{Grants, revoke, verify};

/// Everything the revocation steps reach. The Lambda functions, the CLI and the
/// in-memory tests each provide one.
pub trait RevocationPorts: Sync {
    type Cases: CaseStore;
    type Directory: IdentityDirectory + AccessProvisioner + AccessInspector;
    type Controls: UserControls;
    type Archive: Archive;
    type Requests: RequestStore + RequestQueries;
    type Ledger: LedgerStore;
    type Log: AuditLog;
    type Notifier: Notifier;

    fn cases(&self) -> &Self::Cases;
    fn directory(&self) -> &Self::Directory;
    fn controls(&self) -> &Self::Controls;
    fn archive(&self) -> &Self::Archive;
    fn grants(&self) -> Grants<'_, Self::Requests, Self::Ledger>;
    fn trail(&self) -> AuditTrail<'_, Self::Log>;
    fn notifier(&self) -> &Self::Notifier;
    fn catalog(&self) -> &Catalog;
    /// Read again mid-step where an instant must follow an IAM change (the cutoff).
    fn clock(&self) -> &dyn Clock;
}

/// What the webhook did with a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Receipt {
    Accepted,
    /// Seen before; acknowledged again without re-processing.
    AlreadyAccepted,
}

/// Claims an authenticated HR event and puts it on the bus, exactly once per event
/// id. A claim whose publish failed is published on the sender's retry, so no
/// accepted event is lost.
pub async fn receive(
    claims: &impl EventClaims,
    bus: &impl EventBus,
    event: &HrEvent,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Receipt, Error> {
    let body_hash = hex::encode(Sha256::digest(body));
    let receipt = match claims.claim(&event.event_id, &body_hash, now).await? {
        Claim::Mismatch => {
            return Err(StoreError::Conflict {
                what: format!("event {} (re-sent with a different body)", event.event_id),
            }
            .into());
        }
        Claim::Duplicate { published: true } => return Ok(Receipt::AlreadyAccepted),
        Claim::Duplicate { published: false } => Receipt::AlreadyAccepted,
        Claim::New => Receipt::Accepted,
    };
    bus.publish(event).await?;
    claims.mark_published(&event.event_id).await?;
    Ok(receipt)
}

fn start_of(date: chrono::NaiveDate) -> DateTime<Utc> {
    date.and_time(NaiveTime::MIN).and_utc()
}

/// The case an HR event calls for (`None` for events that revoke nothing).
pub fn case_for(event: &HrEvent, catalog: &Catalog, now: DateTime<Utc>) -> Option<RevocationCase> {
    let (kind, effective_at, source) = match event.event_type {
        HrEventType::UserTerminated => (RevocationKind::Full, now, TriggerSource::Hr),
        HrEventType::UserSuspended => (RevocationKind::Suspend, now, TriggerSource::Hr),
        HrEventType::PolicyViolation => (RevocationKind::Suspend, now, TriggerSource::Violation),
        HrEventType::ContractorExpired => {
            // Deactivated on the end date; the grace period is used only with approval.
            let end = event
                .metadata
                .contract_end
                .or(event.user.termination_date)
                .map(start_of);
            (
                RevocationKind::Full,
                end.map_or(now, |e| e.max(now)),
                TriggerSource::Hr,
            )
        }
        HrEventType::UserRoleChanged => {
            let new_role = event.metadata.new_role.clone().unwrap_or_default();
            let delay = if event.metadata.effective_immediately == Some(true) {
                TimeDelta::zero()
            } else {
                catalog.tunables().role_change_transition.delta()
            };
            (
                RevocationKind::Partial { new_role },
                now + delay,
                TriggerSource::Hr,
            )
        }
        HrEventType::UserHired => return None,
    };
    let reason = event
        .user
        .termination_reason
        .clone()
        .unwrap_or_else(|| event.event_type.as_str().replace('_', " "));
    Some(RevocationCase::new(
        event.user.username.clone(),
        kind,
        Trigger {
            source,
            event_id: event.event_id.clone(),
            event_type: Some(event.event_type),
            reason,
            executor: "hr-webhook".into(),
            manager: event.metadata.manager.clone(),
        },
        effective_at,
        false,
        now,
    ))
}

fn case_event(
    case: &RevocationCase,
    key: &str,
    action: &str,
    reason: String,
    before: Value,
    after: Value,
    at: DateTime<Utc>,
) -> AuditDraft {
    AuditDraft {
        chain: case.chain(),
        key: format!("{}:{key}", case.id),
        actor: case.trigger.executor.clone(),
        action: action.to_owned(),
        subject: case.user.to_string(),
        reason,
        before,
        after,
        at,
    }
}

/// Opens a case (or finds the one this trigger already opened).
pub async fn open(
    p: &impl RevocationPorts,
    mut case: RevocationCase,
    now: DateTime<Utc>,
) -> Result<RevocationCase, Error> {
    if let RevocationKind::Partial { new_role } = &case.kind
        && p.catalog().role(new_role).is_none()
    {
        return Err(RequestError::UnknownResource {
            resource: format!("role `{new_role}`"),
        }
        .into());
    }
    let case = match p.cases().create(&mut case).await {
        Ok(()) => case,
        // Opened before; its event is recorded again in case a crash lost it (the
        // key makes it once).
        Err(StoreError::AlreadyExists(_)) => load(p, &case.id).await?,
        Err(other) => return Err(other.into()),
    };
    p.trail()
        .record(case_event(
            &case,
            "received",
            "revocation.received",
            case.trigger.reason.clone(),
            Value::Null,
            json!({ "case": case.id, "kind": case.kind, "trigger": case.trigger, "effective_at": case.effective_at }),
            now,
        ))
        .await?;
    Ok(case)
}

async fn load(p: &impl RevocationPorts, id: &str) -> Result<RevocationCase, Error> {
    p.cases()
        .get(id)
        .await?
        .ok_or_else(|| Error::NotFound(id.to_owned()))
}

async fn save(
    p: &impl RevocationPorts,
    case: &mut RevocationCase,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    case.updated_at = now;
    p.cases().update(case).await?;
    Ok(())
}

/// Changes a user's controls by a versioned write, re-reading on a lost race.
/// Returns the controls before and after.
async fn update_controls(
    p: &impl RevocationPorts,
    user: &PrincipalId,
    change: impl Fn(&mut crate::revocation::ports::Controls),
) -> Result<
    (
        crate::revocation::ports::Controls,
        crate::revocation::ports::Controls,
    ),
    Error,
> {
    use crate::usecase::{Attempt, versioned, written};
    let change = &change;
    versioned(
        || format!("controls of {user}"),
        || async move {
            let before = p.controls().controls(user).await?;
            let mut after = before.clone();
            change(&mut after);
            if after != before && !written(p.controls().set(user, &mut after).await)? {
                return Ok(Attempt::Lost);
            }
            Ok(Attempt::Done((before, after)))
        },
    )
    .await
}

/// Whether the workflow should go on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    pub case_id: String,
    pub proceed: bool,
    pub status: CaseStatus,
    pub effective_at: DateTime<Utc>,
    pub reason: String,
}

/// Marks a case held by an override (audited once per hold).
async fn hold(
    p: &impl RevocationPorts,
    case: &mut RevocationCase,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    if case.status == CaseStatus::Held {
        return Ok(());
    }
    case.status = CaseStatus::Held;
    case.held_reason = Some(reason.to_owned());
    save(p, case, now).await?;
    p.trail()
        .record(case_event(
            case,
            &format!("held@{}", now.to_rfc3339()),
            "revocation.held",
            reason.to_owned(),
            Value::Null,
            json!({"override": reason}),
            now,
        ))
        .await?;
    Ok(())
}

/// Re-checked by every step that changes IAM, after the workflow's Wait, so a case
/// held by an override or postponed while the workflow waited is not applied. The
/// workflow answers [`Error::NotDue`] by validating (and waiting) again.
async fn ensure_due(
    p: &impl RevocationPorts,
    case: &mut RevocationCase,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    if let Some(reason) = p.controls().controls(&case.user).await?.override_reason {
        hold(p, case, &reason, now).await?;
        return Err(Error::NotDue {
            case: case.id.clone(),
            reason: format!("held back by override: {reason}"),
        });
    }
    if now + crate::usecase::lifecycle::EXPIRY_SKEW < case.effective_at {
        return Err(Error::NotDue {
            case: case.id.clone(),
            reason: format!("effective at {}", case.effective_at.to_rfc3339()),
        });
    }
    Ok(())
}

/// Step 1: is there anything to do, and is it held back? A case held by an
/// override that has since been cleared resumes here.
pub async fn validate(
    p: &impl RevocationPorts,
    case_id: &str,
    now: DateTime<Utc>,
) -> Result<Validation, Error> {
    let mut case = load(p, case_id).await?;
    let done = |case: &RevocationCase, reason: &str| Validation {
        case_id: case.id.clone(),
        proceed: false,
        status: case.status,
        effective_at: case.effective_at,
        reason: reason.to_owned(),
    };
    match case.status {
        CaseStatus::Verified => return Ok(done(&case, "already revoked and verified")),
        CaseStatus::NothingToRevoke => return Ok(done(&case, "IAM does not know the user")),
        _ => {}
    }
    let controls = p.controls().controls(&case.user).await?;
    if let Some(reason) = controls.override_reason {
        hold(p, &mut case, &reason, now).await?;
        return Ok(done(&case, &format!("held back by override: {reason}")));
    }
    if case.status == CaseStatus::Held {
        let reason = case.held_reason.take().unwrap_or_default();
        case.status = if case.before.is_some() {
            CaseStatus::InProgress
        } else {
            CaseStatus::Received
        };
        save(p, &mut case, now).await?;
        p.trail()
            .record(case_event(
                &case,
                &format!("resumed@{}", now.to_rfc3339()),
                "revocation.resumed",
                format!("override cleared (was: {reason})"),
                json!({"status": "held"}),
                json!({"status": case.status}),
                now,
            ))
            .await?;
    }
    Ok(Validation {
        case_id: case.id.clone(),
        proceed: true,
        status: case.status,
        effective_at: case.effective_at,
        reason: "proceed".into(),
    })
}

/// Held cases of a user whose override is cleared: restarts their workflows (each
/// resumes at its own `validate`). Returns the cases restarted.
pub async fn resume_held(
    p: &impl RevocationPorts,
    workflows: &impl crate::ports::WorkflowStarter,
    user: &PrincipalId,
) -> Result<Vec<String>, Error> {
    if p.controls().controls(user).await?.override_reason.is_some() {
        return Ok(Vec::new());
    }
    let mut resumed = Vec::new();
    for case in p.cases().cases_of(user).await? {
        if case.status != CaseStatus::Held {
            continue;
        }
        workflows
            .start(
                &format!("{}-resume-{}", case.id, case.version),
                &json!({ "case": { "case_id": case.id } }),
            )
            .await?;
        resumed.push(case.id);
    }
    Ok(resumed)
}

/// Step 2: snapshot the before-state once and archive it. A closing revocation
/// (full, suspension) marks the person revoked first, so from here on intake,
/// approval and the grant step refuse them while the lanes run.
pub async fn snapshot(
    p: &impl RevocationPorts,
    case_id: &str,
    now: DateTime<Utc>,
) -> Result<IdentitySnapshot, Error> {
    let mut case = load(p, case_id).await?;
    ensure_due(p, &mut case, now).await?;
    if case.kind.closes_doors() {
        update_controls(p, &case.user, |c| {
            c.revoked_by.get_or_insert_with(|| case.id.clone());
        })
        .await?;
    }
    if let Some(before) = case.before.clone() {
        record_snapshot(p, &case, &before, None, now).await?;
        return Ok(before);
    }
    let before = p.directory().identity(&case.user, now).await?;
    let controls = p.controls().controls(&case.user).await?;
    let retain_until = (!controls.legal_hold && !case.preserve_data)
        .then(|| now + p.catalog().tunables().archive_retention.delta());
    p.archive().store(&before, retain_until).await?;
    case.before = Some(before.clone());
    case.status = CaseStatus::InProgress;
    save(p, &mut case, now).await?;
    record_snapshot(p, &case, &before, retain_until, now).await?;
    Ok(before)
}

async fn record_snapshot(
    p: &impl RevocationPorts,
    case: &RevocationCase,
    before: &IdentitySnapshot,
    retain_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    p.trail()
        .record(case_event(
            case,
            "snapshot",
            "revocation.snapshot",
            "before-state archived".into(),
            Value::Null,
            json!({ "before_state": before, "archived_until": retain_until }),
            now,
        ))
        .await?;
    Ok(())
}

/// What the request store and the ledger know about a user, beside IAM.
struct Known {
    /// Active grants (extensions are merged into theirs).
    live: Vec<RequestId>,
    /// Pending or approved requests, not yet granted.
    open: Vec<RequestId>,
    /// Inline policies the ledger records for one of the live grants.
    grant_policies: std::collections::BTreeSet<String>,
}

impl Known {
    fn expected<'a>(&'a self, p: &'a impl RevocationPorts, case: &RevocationCase) -> Expected<'a> {
        Expected {
            role: match &case.kind {
                RevocationKind::Partial { new_role } => p.catalog().role(new_role),
                _ => None,
            },
            live_grants: &self.live,
            grant_policies: &self.grant_policies,
            open_requests: &self.open,
            cutoff: case.cutoff,
        }
    }
}

async fn known(
    p: &impl RevocationPorts,
    user: &PrincipalId,
    current: &IdentitySnapshot,
) -> Result<Known, Error> {
    let requests = p.grants().store.by_requester(user).await?;
    let live: Vec<RequestId> = requests
        .iter()
        .filter(|r| r.status() == Status::Active && r.extends().is_none())
        .map(|r| r.id().clone())
        .collect();
    let open = requests
        .iter()
        .filter(|r| matches!(r.status(), Status::Pending | Status::Approved))
        .map(|r| r.id().clone())
        .collect();
    let mut grant_policies = std::collections::BTreeSet::new();
    for name in current
        .inline_policies
        .keys()
        .filter(|n| n.starts_with(NAME_PREFIX))
    {
        let artifact = Artifact::InlinePolicy { name: name.clone() };
        let holders = p.grants().ledger.holders(user, &artifact).await?;
        if holders.iter().any(|h| live.iter().any(|l| l.as_str() == h)) {
            grant_policies.insert(name.clone());
        }
    }
    Ok(Known {
        live,
        open,
        grant_policies,
    })
}

/// The plan for a case as things stand now (dry-run uses it too).
pub async fn current_plan(
    p: &impl RevocationPorts,
    case: &RevocationCase,
    now: DateTime<Utc>,
) -> Result<Vec<Action>, Error> {
    let current = p.directory().identity(&case.user, now).await?;
    let known = known(p, &case.user, &current).await?;
    Ok(plan(&case.kind, &current, &known.expected(p, case)))
}

/// The first whole second after `at`: a session issued at or before `at` was issued
/// before it.
fn whole_second_after(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(0) + TimeDelta::seconds(1)
}

/// Step 3 (per lane, in parallel): apply what is left to do in one lane.
pub async fn apply_lane(
    p: &impl RevocationPorts,
    case_id: &str,
    lane: Lane,
    now: DateTime<Utc>,
) -> Result<Vec<Applied>, Error> {
    let mut case = load(p, case_id).await?;
    ensure_due(p, &mut case, now).await?;
    if case.before.is_none() {
        return Err(RequestError::InvalidTransition {
            from: Status::Pending,
            action: "revoke before the before-state is archived",
        }
        .into());
    }
    let mut applied = Vec::new();
    for action in current_plan(p, &case, now)
        .await?
        .into_iter()
        .filter(|a| a.lane() == lane)
    {
        let (action, outcome) = match action {
            Action::EndGrant { request_id } => {
                end_grant(p, &case, &request_id, now).await?;
                (Action::EndGrant { request_id }, "done".to_owned())
            }
            Action::CancelRequest { request_id } => {
                let outcome = cancel_request(p, &case, &request_id, now).await?;
                (Action::CancelRequest { request_id }, outcome)
            }
            Action::DenyOlderSessions { .. } => {
                // Planned last in its lane: every credential is deactivated by now, so
                // no session can have been issued after this instant.
                let action = Action::DenyOlderSessions {
                    issued_before: whole_second_after(p.clock().now()),
                };
                p.directory().apply(&case.user, &action).await?;
                (action, "done".to_owned())
            }
            other => {
                let outcome = match p.directory().apply(&case.user, &other).await? {
                    Removal::Removed => "done",
                    Removal::AlreadyAbsent => "already_done",
                };
                (other, outcome.to_owned())
            }
        };
        applied.push(Applied {
            lane,
            action,
            outcome,
        });
    }
    Ok(applied)
}

async fn end_grant(
    p: &impl RevocationPorts,
    case: &RevocationCase,
    request_id: &RequestId,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let grants = p.grants();
    revoke(
        &grants,
        p.directory(),
        &p.trail(),
        request_id,
        RevokeCause::RightsRevocation,
        &case.trigger.executor,
        now,
    )
    .await?;
    verify(&grants, p.directory(), &p.trail(), request_id, now).await?;
    Ok(())
}

/// Cancels a request the revoked person still had open. One that was granted in
/// the meantime is ended instead.
async fn cancel_request(
    p: &impl RevocationPorts,
    case: &RevocationCase,
    request_id: &RequestId,
    now: DateTime<Utc>,
) -> Result<String, Error> {
    use crate::usecase::{Withdrawal, withdraw_for_revocation};
    let outcome = withdraw_for_revocation(
        p.grants().store,
        &p.trail(),
        request_id,
        &case.trigger.executor,
        &case.id,
        now,
    )
    .await?;
    Ok(match outcome {
        Withdrawal::Cancelled => "done".into(),
        Withdrawal::AlreadyCancelled | Withdrawal::Closed => "already_done".into(),
        Withdrawal::Active => {
            end_grant(p, case, request_id, now).await?;
            "granted meanwhile: ended".into()
        }
    })
}

/// Step 4: record what the lanes did, with before and after state, in the case and
/// the signed audit trail. The session cutoff is the one the credentials lane wrote.
pub async fn record(
    p: &impl RevocationPorts,
    case_id: &str,
    applied: Vec<Applied>,
    now: DateTime<Utc>,
) -> Result<RevocationCase, Error> {
    let mut case = load(p, case_id).await?;
    for item in applied {
        if let Action::DenyOlderSessions { issued_before } = item.action {
            case.cutoff = case.cutoff.max(Some(issued_before));
        }
        if !case.applied.contains(&item) {
            case.applied.push(item);
        }
    }
    let after = p.directory().identity(&case.user, now).await?;
    case.after = Some(after.clone());
    if matches!(case.status, CaseStatus::InProgress | CaseStatus::Received) {
        case.status = CaseStatus::Revoked;
    }
    save(p, &mut case, now).await?;
    p.trail()
        .record(case_event(
            &case,
            "applied",
            "revocation.applied",
            case.trigger.reason.clone(),
            json!({ "before_state": case.before }),
            json!({ "after_state": after, "actions": case.applied, "trigger": case.trigger, "executor": case.trigger.executor }),
            now,
        ))
        .await?;
    Ok(case)
}

/// Step 5: tell security and the manager.
pub async fn notify(p: &impl RevocationPorts, case_id: &str) -> Result<usize, Error> {
    let case = load(p, case_id).await?;
    let subject = format!(
        "Access {} for {}: {}",
        case.kind.label(),
        case.user,
        case.trigger.reason
    );
    let body = format!(
        "{} action(s) applied by case {}; verification follows.",
        case.applied.len(),
        case.id
    );
    let mut sent = 0;
    let mut audiences = vec![Audience::Security];
    if let Some(manager) = case
        .trigger
        .manager
        .as_deref()
        .and_then(|m| PrincipalId::new(m).ok())
    {
        audiences.push(Audience::Person { id: manager });
    }
    for audience in audiences {
        let notice = Notice {
            audience,
            subject: subject.clone(),
            body: body.clone(),
            request_id: None,
        };
        p.notifier().send(&notice).await?;
        sent += 1;
    }
    Ok(sent)
}

/// Step 6: read IAM back; only an empty residue completes the case. A case whose
/// user IAM never knew ends as [`CaseStatus::NothingToRevoke`] and security is told:
/// an HR feed naming nobody is a mistake to look at, not a success.
pub async fn verify_case(
    p: &impl RevocationPorts,
    case_id: &str,
    now: DateTime<Utc>,
) -> Result<RevocationCase, Error> {
    let mut case = load(p, case_id).await?;
    if case.status == CaseStatus::Verified {
        // Its event again, in case a crash lost it after the state write.
        let after = case.after.clone();
        p.trail()
            .record(case_event(
                &case,
                "verified",
                "revocation.verified",
                "IAM read back: nothing remains".into(),
                json!({ "status": "revoked" }),
                json!({"verification": "passed", "after_state": after}),
                now,
            ))
            .await?;
        return Ok(case);
    }
    if case.status == CaseStatus::NothingToRevoke {
        return Ok(case);
    }
    let after = p.directory().identity(&case.user, now).await?;
    let known = known(p, &case.user, &after).await?;
    let mut left = residue(&case.kind, &after, &known.expected(p, &case));
    left.extend(known.live.iter().map(|g| format!("live grant {g}")));
    if case.kind.closes_doors() {
        left.extend(known.open.iter().map(|r| format!("open request {r}")));
    }
    let before = json!({ "status": case.status });
    case.after = Some(after.clone());
    case.residue = left.clone();
    if !left.is_empty() {
        case.status = CaseStatus::Failed;
        save(p, &mut case, now).await?;
        p.trail()
            .record(case_event(
                &case,
                &format!("verification_failed@{}", now.to_rfc3339()),
                "revocation.verification_failed",
                left.join("; "),
                before,
                json!({"verification": "failed", "residue": left}),
                now,
            ))
            .await?;
        return Err(Error::VerificationFailed {
            request: case.id.clone(),
            residue: left.join("; "),
        });
    }
    let unknown = case.before.as_ref().is_some_and(|b| !b.exists) && !after.exists;
    if unknown {
        // Audited and alerted before the status is saved: if the alert fails, the
        // retried step alerts again (at least once, never silently).
        case.status = CaseStatus::NothingToRevoke;
        p.trail()
            .record(case_event(
                &case,
                "nothing_to_revoke",
                "revocation.nothing_to_revoke",
                format!("IAM has no user {}", case.user),
                before,
                json!({"verification": "nothing_to_revoke"}),
                now,
            ))
            .await?;
        p.notifier()
            .send(&Notice {
                audience: Audience::Security,
                subject: format!(
                    "Revocation for unknown user {}: nothing to revoke",
                    case.user
                ),
                body: format!(
                    "Case {} ({}: {}) names a user IAM does not know. Check the HR feed for a typo: the person it meant may still have access.",
                    case.id,
                    case.kind.label(),
                    case.trigger.reason
                ),
                request_id: None,
            })
            .await?;
        save(p, &mut case, now).await?;
        return Ok(case);
    }
    case.status = CaseStatus::Verified;
    save(p, &mut case, now).await?;
    p.trail()
        .record(case_event(
            &case,
            "verified",
            "revocation.verified",
            "IAM read back: nothing remains".into(),
            before,
            json!({"verification": "passed", "after_state": after}),
            now,
        ))
        .await?;
    Ok(case)
}

/// Refuses people whose access Lapse has revoked (terminated, suspended), whatever
/// their identity provider's token still says.
pub async fn ensure_not_revoked(
    controls: &impl UserControls,
    who: &PrincipalId,
) -> Result<(), Error> {
    match controls.controls(who).await?.revoked_by {
        Some(_) => Err(RequestError::AccessRevoked(who.clone()).into()),
        None => Ok(()),
    }
}

/// Every step in order: what the state machine does, for the CLI and tests.
pub async fn run(
    p: &impl RevocationPorts,
    case_id: &str,
    now: DateTime<Utc>,
) -> Result<RevocationCase, Error> {
    let validation = validate(p, case_id, now).await?;
    // Not yet effective (contract end date, role-change transition): the workflow
    // waits; a direct run leaves the case for later.
    if !validation.proceed || now < validation.effective_at {
        return load(p, case_id).await;
    }
    snapshot(p, case_id, now).await?;
    let mut applied = Vec::new();
    for lane in [Lane::Credentials, Lane::Permissions, Lane::Grants] {
        applied.extend(apply_lane(p, case_id, lane, now).await?);
    }
    record(p, case_id, applied, now).await?;
    notify(p, case_id).await?;
    verify_case(p, case_id, now).await
}

/// Puts back an archived before-state, with an approval reference that is audited,
/// and reads IAM back: a restore is done only when IAM holds what was restored.
///
/// Lapse's own artifacts are not part of a before-state: an inline policy or group
/// named `lapse-*` is put back only if the ledger records it for a grant that is
/// live now (a grant that ended with the revocation stays ended), and the session
/// deny is removed.
pub async fn restore(
    p: &impl RevocationPorts,
    user: &PrincipalId,
    from: DateTime<Utc>,
    approval: &str,
    executor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, Error> {
    if approval.trim().is_empty() {
        return Err(RequestError::JustificationMissing.into());
    }
    let mut snapshot = p
        .archive()
        .snapshots(user)
        .await?
        .into_iter()
        .rfind(|s| s.taken_at <= from)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "an archived snapshot of {user} at or before {from}"
            ))
        })?;
    let known = known(p, user, &snapshot).await?;
    let mut live_groups = std::collections::BTreeSet::new();
    for group in snapshot
        .groups
        .iter()
        .filter(|g| g.starts_with(NAME_PREFIX))
    {
        let artifact = Artifact::GroupMembership {
            group: group.clone(),
        };
        let holders = p.grants().ledger.holders(user, &artifact).await?;
        if holders
            .iter()
            .any(|h| known.live.iter().any(|l| l.as_str() == h))
        {
            live_groups.insert(group.clone());
        }
    }
    let mut skipped: Vec<String> = Vec::new();
    let mut skipped_policies = Vec::new();
    snapshot.inline_policies.retain(|name, _| {
        let keep = !name.starts_with(NAME_PREFIX) || known.grant_policies.contains(name);
        if !keep && name != super::plan::SESSION_DENY_POLICY {
            skipped.push(format!("inline policy {name}"));
            skipped_policies.push(name.clone());
        }
        keep
    });
    snapshot.groups.retain(|group| {
        let keep = !group.starts_with(NAME_PREFIX) || live_groups.contains(group);
        if !keep {
            skipped.push(format!("group {group}"));
        }
        keep
    });
    let restored = p.directory().restore(&snapshot).await?;
    let after = p.directory().identity(user, now).await?;
    let missing = restore_gaps(&snapshot, &after, &skipped_policies);
    if !missing.is_empty() {
        return Err(Error::VerificationFailed {
            request: format!("restore of {user}"),
            residue: missing.join("; "),
        });
    }
    update_controls(p, user, |c| {
        c.revoked_by = None;
        c.active_since = Some(now);
    })
    .await?;
    p.trail()
        .record(AuditDraft {
            chain: format!("user#{user}"),
            key: format!("restore@{}", now.to_rfc3339()),
            actor: executor.to_owned(),
            action: "revocation.restored".into(),
            subject: user.to_string(),
            reason: format!("approval {approval}"),
            before: Value::Null,
            after: json!({
                "restored_from": snapshot.taken_at,
                "restored": restored,
                "not_restored": skipped,
                "approval": approval,
                "verification": "passed",
                "after_state": after,
            }),
            at: now,
        })
        .await?;
    Ok(restored)
}

/// What a restore should have put back but IAM does not show, plus anything a
/// restore must never leave (the session deny, a `lapse-*` artifact it filtered out).
fn restore_gaps(
    wanted: &IdentitySnapshot,
    after: &IdentitySnapshot,
    filtered_out: &[String],
) -> Vec<String> {
    let mut missing = Vec::new();
    if !after.exists {
        return vec![format!("user {} no longer exists", wanted.user)];
    }
    let active =
        |list: &[super::plan::Credential], id: &str| list.iter().any(|c| c.id == id && c.active);
    for (what, before, now) in [
        ("access key", &wanted.access_keys, &after.access_keys),
        ("SSH key", &wanted.ssh_keys, &after.ssh_keys),
        (
            "signing certificate",
            &wanted.signing_certificates,
            &after.signing_certificates,
        ),
    ] {
        missing.extend(
            before
                .iter()
                .filter(|c| c.active && !active(now, &c.id))
                .map(|c| format!("{what} {} not active", c.id)),
        );
    }
    if wanted.login_profile && !after.login_profile {
        missing.push("console login not restored".into());
    }
    missing.extend(
        wanted
            .groups
            .difference(&after.groups)
            .map(|g| format!("group {g} not restored")),
    );
    missing.extend(
        wanted
            .attached_policies
            .difference(&after.attached_policies)
            .map(|a| format!("attached policy {a} not restored")),
    );
    for (name, document) in wanted
        .inline_policies
        .iter()
        .filter(|(n, _)| n.as_str() != super::plan::SESSION_DENY_POLICY)
    {
        if after.inline_policies.get(name) != Some(document) {
            missing.push(format!("inline policy {name} not restored as archived"));
        }
    }
    if !wanted
        .inline_policies
        .contains_key(super::plan::SESSION_DENY_POLICY)
        && after
            .inline_policies
            .contains_key(super::plan::SESSION_DENY_POLICY)
    {
        missing.push("the session deny is still in place".into());
    }
    missing.extend(
        filtered_out
            .iter()
            .filter(|n| after.inline_policies.contains_key(*n))
            .map(|n| format!("inline policy {n} is in IAM though no live grant holds it")),
    );
    missing
}

/// Sets or clears a legal hold or an override (`change` is applied to the stored
/// controls by a versioned write), audited with its reason. Returns the new controls.
pub async fn set_controls(
    p: &impl RevocationPorts,
    user: &PrincipalId,
    change: impl Fn(&mut crate::revocation::ports::Controls),
    reason: &str,
    executor: &str,
    now: DateTime<Utc>,
) -> Result<crate::revocation::ports::Controls, Error> {
    let (before, controls) = update_controls(p, user, change).await?;
    if controls.legal_hold && !before.legal_hold {
        p.archive().retain_forever(user).await?;
    }
    p.trail()
        .record(AuditDraft {
            chain: format!("user#{user}"),
            key: format!("controls@{}", now.to_rfc3339()),
            actor: executor.to_owned(),
            action: "revocation.controls_changed".into(),
            subject: user.to_string(),
            reason: reason.to_owned(),
            before: json!(before),
            after: json!(controls),
            at: now,
        })
        .await?;
    Ok(controls)
}

/// Users whose console and access-key use are all older than `threshold`, from an
/// IAM credential report (CSV). Never-used credentials count from the user's creation.
pub fn inactive_users(
    report_csv: &str,
    threshold: TimeDelta,
    now: DateTime<Utc>,
) -> Vec<PrincipalId> {
    let mut lines = report_csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.split(',').collect();
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(user), Some(created)) = (col("user"), col("user_creation_time")) else {
        return Vec::new();
    };
    let activity = [
        "password_last_used",
        "access_key_1_last_used_date",
        "access_key_2_last_used_date",
    ]
    .map(col);
    let parse = |v: &str| {
        DateTime::parse_from_rfc3339(v)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    lines
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let name = *fields.get(user)?;
            if name == "<root_account>" {
                return None;
            }
            let last = activity
                .iter()
                .flatten()
                .filter_map(|i| fields.get(*i).and_then(|v| parse(v)))
                .max()
                .or_else(|| fields.get(created).and_then(|v| parse(v)))?;
            (now - last > threshold)
                .then(|| PrincipalId::new(name).ok())
                .flatten()
        })
        .collect()
}

/// Why the inactivity check passed over a user it found inactive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub user: PrincipalId,
    pub reason: String,
}

/// Opens a suspension case for each inactive user Lapse manages (one per user per
/// day). Passed over, with the reason: exempt users (the catalog's list), users
/// already revoked or suspended by Lapse, users restored within the threshold (the
/// credential report still shows their old activity), users IAM no longer has and
/// users Lapse does not manage.
pub async fn suspend_inactive(
    p: &impl RevocationPorts,
    report_csv: &str,
    now: DateTime<Utc>,
) -> Result<(Vec<RevocationCase>, Vec<Skipped>), Error> {
    let threshold = p.catalog().tunables().inactivity_threshold.delta();
    let mut cases = Vec::new();
    let mut skipped = Vec::new();
    for user in inactive_users(report_csv, threshold, now) {
        let skip = |reason: String| Skipped {
            user: user.clone(),
            reason,
        };
        if let Some(reason) = p.catalog().inactivity_exemption(user.as_str()) {
            skipped.push(skip(format!("exempt: {reason}")));
            continue;
        }
        let controls = p.controls().controls(&user).await?;
        if let Some(case) = &controls.revoked_by {
            skipped.push(skip(format!("already revoked or suspended (case {case})")));
            continue;
        }
        if controls
            .active_since
            .is_some_and(|at| now - at <= threshold)
        {
            skipped.push(skip(
                "restored recently; activity counts from the restore".into(),
            ));
            continue;
        }
        if !p.directory().managed(&user).await? {
            skipped.push(skip("not a user Lapse manages".into()));
            continue;
        }
        let case = RevocationCase::new(
            user.clone(),
            RevocationKind::Suspend,
            Trigger {
                source: TriggerSource::Inactivity,
                event_id: format!("inactivity:{user}:{}", now.date_naive()),
                event_type: None,
                reason: format!(
                    "no console or access-key use for {} days",
                    threshold.num_days()
                ),
                executor: "inactivity-check".into(),
                manager: None,
            },
            now,
            false,
            now,
        );
        cases.push(open(p, case, now).await?);
    }
    Ok((cases, skipped))
}

/// Postpones a user's revocations that are not yet effective (a contractor's grace
/// period, say), with the approval reference audited. Returns the cases moved.
pub async fn postpone(
    p: &impl RevocationPorts,
    user: &PrincipalId,
    by: TimeDelta,
    approval: &str,
    executor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<RevocationCase>, Error> {
    if approval.trim().is_empty() {
        return Err(RequestError::JustificationMissing.into());
    }
    let mut moved = Vec::new();
    for mut case in p.cases().cases_of(user).await? {
        if case.status != CaseStatus::Received || case.effective_at <= now {
            continue;
        }
        if case.trigger.event_type == Some(HrEventType::ContractorExpired) {
            let grace = p.catalog().tunables().contract_grace;
            if case.grace_used || by > grace.delta() {
                return Err(RequestError::DurationTooLong {
                    resource: format!(
                        "the contract-end grace for {user} (used: {})",
                        case.grace_used
                    ),
                    requested: crate::duration::Span::from_seconds(by.num_seconds())
                        .unwrap_or(grace),
                    max: grace,
                }
                .into());
            }
            case.grace_used = true;
        }
        let before = json!({ "effective_at": case.effective_at });
        case.effective_at += by;
        save(p, &mut case, now).await?;
        p.trail()
            .record(AuditDraft {
                chain: case.chain(),
                key: format!("{}:postponed@{}", case.id, now.to_rfc3339()),
                actor: executor.to_owned(),
                action: "revocation.postponed".into(),
                subject: case.user.to_string(),
                reason: format!("approval {approval}"),
                before,
                after: json!({ "effective_at": case.effective_at }),
                at: now,
            })
            .await?;
        moved.push(case);
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{catalog, monday_at};

    fn sample(name: &str) -> HrEvent {
        let path = format!(
            "{}/../../events/hr-webhook/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        HrEvent::parse(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn each_hr_event_type_opens_the_right_case() {
        let c = catalog();
        let now = monday_at(10);
        let case = |name: &str| case_for(&sample(name), &c, now);
        let terminated = case("termination-body.json").unwrap();
        assert_eq!(
            (terminated.kind.clone(), terminated.effective_at),
            (RevocationKind::Full, now)
        );
        assert_eq!(terminated.trigger.manager.as_deref(), Some("msmith"));
        let moved = case("role-change-body.json").unwrap();
        assert_eq!(
            moved.kind,
            RevocationKind::Partial {
                new_role: "analyst".into()
            }
        );
        assert_eq!(
            moved.effective_at - now,
            TimeDelta::hours(4),
            "role-change transition period"
        );
        assert_eq!(
            case("suspension-body.json").unwrap().kind,
            RevocationKind::Suspend
        );
        let violation = case("policy-violation-body.json").unwrap();
        assert_eq!(
            (violation.kind.clone(), violation.trigger.source),
            (RevocationKind::Suspend, TriggerSource::Violation)
        );
        assert_eq!(violation.effective_at, now, "immediate");
        let contract = case("contract-end-body.json").unwrap();
        assert_eq!(contract.effective_at.date_naive().to_string(), "2026-11-30");
        assert!(case("hire-body.json").is_none(), "hires revoke nothing");
        // The same event always names the same case.
        assert_eq!(case("termination-body.json").unwrap().id, terminated.id);
    }

    #[test]
    fn inactivity_is_read_from_the_credential_report() {
        let report = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated
<root_account>,arn:aws:iam::123456789012:root,2020-01-01T00:00:00+00:00,not_supported,2020-01-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
idle,arn:aws:iam::123456789012:user/idle,2026-01-01T00:00:00+00:00,true,2026-06-01T00:00:00+00:00,N/A,N/A,false,true,N/A,2026-07-01T00:00:00+00:00,us-east-1,s3,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
busy,arn:aws:iam::123456789012:user/busy,2026-01-01T00:00:00+00:00,true,2026-06-01T00:00:00+00:00,N/A,N/A,false,true,N/A,2026-11-20T00:00:00+00:00,us-east-1,s3,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
never,arn:aws:iam::123456789012:user/never,2026-11-01T00:00:00+00:00,false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A";
        let inactive = inactive_users(report, TimeDelta::days(90), monday_at(10));
        assert_eq!(
            inactive.iter().map(PrincipalId::as_str).collect::<Vec<_>>(),
            ["idle"]
        );
    }
}
