//! The workflow's steps, each idempotent: validate, snapshot, apply per lane,
//! record, notify, verify (and `run`, all of them in order for direct callers).

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::request::{RequestError, RequestId, RevokeCause};
use crate::access::usecase::lifecycle::{revoke, verify};
use crate::access::usecase::{checkout, vendor};
use crate::error::Error;
use crate::identity::PrincipalId;
use crate::ports::{Audience, Notice, Notifier, Removal};
use crate::revocation::case::RevocationError;
use crate::revocation::case::{Applied, CaseStatus, Outcome, RevocationCase};
use crate::revocation::plan::{Action, IdentitySnapshot, Lane, plan, residue};
use crate::revocation::ports::{Archive, IdentityDirectory, UserControls};

use super::{RevocationPorts, case_event, identity, known, load, save, update_controls};

/// Whether the workflow should go on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    pub case_id: String,
    pub proceed: bool,
    /// Held by an override, and a termination or suspension: the revocation
    /// function counts these for the held-revocations alarm.
    #[serde(default)]
    pub held_closing: bool,
    pub status: CaseStatus,
    pub effective_at: DateTime<Utc>,
    pub reason: String,
}

/// Marks a case held by an override (audited once per hold). A held termination
/// or suspension is never silent: security is told before the hold is stored (a
/// retried step whose save failed tells again, so at least once), and the
/// workflow's validation says so for the metric its alarm watches.
pub(super) async fn hold(
    p: &impl RevocationPorts,
    case: &mut RevocationCase,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    if !case.hold(reason)? {
        return Ok(());
    }
    if case.kind().closes_doors() {
        let what = match case.kind() {
            crate::revocation::plan::RevocationKind::Suspend => "suspension",
            _ => "full revocation",
        };
        p.notifier()
            .send(&Notice {
                audience: Audience::Security,
                subject: format!("Revocation held: {what} of {}", case.user()),
                body: format!(
                    "Case {} ({}) is held back by an override: {reason}. Nothing is revoked \
                     until the override is cleared (lapse hold --user {} --clear-override); \
                     meanwhile the person keeps their access.",
                    case.id(),
                    case.trigger().reason,
                    case.user()
                ),
                request_id: None,
            })
            .await?;
    }
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
pub(super) async fn ensure_due(
    p: &impl RevocationPorts,
    case: &mut RevocationCase,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    if let Some(reason) = p.controls().controls(case.user()).await?.override_reason {
        hold(p, case, &reason, now).await?;
        return Err(Error::NotDue {
            case: case.id().to_string(),
            reason: format!("held back by override: {reason}"),
        });
    }
    if now + crate::access::usecase::lifecycle::EXPIRY_SKEW < case.effective_at() {
        return Err(Error::NotDue {
            case: case.id().to_string(),
            reason: format!("effective at {}", case.effective_at().to_rfc3339()),
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
        case_id: case.id().to_string(),
        proceed: false,
        held_closing: case.status() == CaseStatus::Held && case.kind().closes_doors(),
        status: case.status(),
        effective_at: case.effective_at(),
        reason: reason.to_owned(),
    };
    match case.status() {
        CaseStatus::Verified => return Ok(done(&case, "already revoked and verified")),
        CaseStatus::NothingToRevoke => return Ok(done(&case, "IAM does not know the user")),
        _ => {}
    }
    let controls = p.controls().controls(case.user()).await?;
    if let Some(reason) = controls.override_reason {
        hold(p, &mut case, &reason, now).await?;
        return Ok(done(&case, &format!("held back by override: {reason}")));
    }
    if let Some(reason) = case.resume()? {
        save(p, &mut case, now).await?;
        p.trail()
            .record(case_event(
                &case,
                &format!("resumed@{}", now.to_rfc3339()),
                "revocation.resumed",
                format!("override cleared (was: {reason})"),
                json!({"status": "held"}),
                json!({"status": case.status()}),
                now,
            ))
            .await?;
    }
    Ok(Validation {
        case_id: case.id().to_string(),
        proceed: true,
        held_closing: false,
        status: case.status(),
        effective_at: case.effective_at(),
        reason: "proceed".into(),
    })
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
    if case.kind().closes_doors() {
        update_controls(p, case.user(), |c| {
            c.revoked_by.get_or_insert_with(|| case.id().to_string());
        })
        .await?;
    }
    if let Some(before) = case.before().clone() {
        record_snapshot(p, &case, &before, None, now).await?;
        return Ok(before);
    }
    let before = identity(p, case.user(), now).await?;
    let controls = p.controls().controls(case.user()).await?;
    let retain_until = (!controls.legal_hold && !case.preserve_data())
        .then(|| now + p.catalog().tunables().archive_retention.delta());
    p.archive().store(&before, retain_until).await?;
    case.start(before.clone())?;
    save(p, &mut case, now).await?;
    record_snapshot(p, &case, &before, retain_until, now).await?;
    Ok(before)
}

pub(super) async fn record_snapshot(
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

/// The plan for a case as things stand now (dry-run uses it too).
pub async fn current_plan(
    p: &impl RevocationPorts,
    case: &RevocationCase,
    now: DateTime<Utc>,
) -> Result<Vec<Action>, Error> {
    let current = identity(p, case.user(), now).await?;
    plan_from(p, case, &current).await
}

/// What a dry run shows: whether IAM has the person at all, and the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Preview {
    pub exists: bool,
    pub plan: Vec<Action>,
}

/// The plan for a case as things stand now, and whether IAM has the person.
pub async fn preview(
    p: &impl RevocationPorts,
    case: &RevocationCase,
    now: DateTime<Utc>,
) -> Result<Preview, Error> {
    let current = identity(p, case.user(), now).await?;
    Ok(Preview {
        exists: current.exists,
        plan: plan_from(p, case, &current).await?,
    })
}

/// The plan for a case given what IAM holds.
async fn plan_from(
    p: &impl RevocationPorts,
    case: &RevocationCase,
    current: &IdentitySnapshot,
) -> Result<Vec<Action>, Error> {
    let known = known(p, case.user(), current).await?;
    Ok(plan(case.kind(), current, &known.expected(p, case)))
}

/// How old the case's before-state may be for a lane to plan from it instead of
/// reading IAM again.
const FRESH_SNAPSHOT: TimeDelta = TimeDelta::seconds(60);

/// The first whole second after `at`: a session issued at or before `at` was issued
/// before it.
pub(crate) fn whole_second_after(at: DateTime<Utc>) -> DateTime<Utc> {
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
    if case.before().is_none() {
        return Err(RevocationError::NotStarted {
            case: case.id().to_string(),
        }
        .into());
    }
    // The snapshot step read IAM moments ago: plan from that read (two round trips
    // saved). Anything IAM gained since is residue that verification finds, and a
    // retried or re-driven lane past the freshness window reads IAM again, so it
    // does only what is left.
    let planned = match case.before() {
        Some(before)
            if before.exists
                && before.taken_at <= now
                && now - before.taken_at <= FRESH_SNAPSHOT =>
        {
            plan_from(p, &case, before).await?
        }
        _ => current_plan(p, &case, now).await?,
    };
    let plan: Vec<Action> = planned.into_iter().filter(|a| a.lane() == lane).collect();
    // IAM removals do not depend on each other: all at once, one round trip. Every
    // call is allowed to finish before an error is reported, so none is cut off
    // half-way; a retried step plans again from what IAM holds.
    let (directory, rest): (Vec<Action>, Vec<Action>) = plan.into_iter().partition(|a| {
        !matches!(
            a,
            Action::EndGrant { .. }
                | Action::CancelRequest { .. }
                | Action::DenyOlderSessions { .. }
        )
    });
    let removals = futures_util::future::join_all(
        directory
            .iter()
            .map(|action| p.directory().apply(case.user(), action)),
    )
    .await;
    let mut applied = Vec::new();
    for (action, removal) in directory.into_iter().zip(removals) {
        let outcome = match removal? {
            Removal::Removed => Outcome::Done,
            Removal::AlreadyAbsent => Outcome::AlreadyDone,
        };
        applied.push(Applied {
            lane,
            action,
            outcome,
        });
    }
    // The grants and requests: each its own versioned writes, so side by side too
    // (a ledger write that loses a race is a conflict, and the retried step plans
    // again). Then the session cutoff, after every credential is deactivated.
    let (grants, cutoff): (Vec<Action>, Vec<Action>) = rest
        .into_iter()
        .partition(|a| !matches!(a, Action::DenyOlderSessions { .. }));
    let ended = futures_util::future::join_all(grants.into_iter().map(|action| async {
        let outcome = match &action {
            Action::CancelRequest { request_id } => {
                cancel_request(p, &case, request_id, now).await?
            }
            Action::EndGrant { request_id } => {
                end_grant(p, &case, request_id, now).await?;
                Outcome::Done
            }
            other => unreachable!("only grants and requests are partitioned here: {other:?}"),
        };
        Ok::<_, Error>((action, outcome))
    }))
    .await;
    for result in ended {
        let (action, outcome) = result?;
        applied.push(Applied {
            lane,
            action,
            outcome,
        });
    }
    if !cutoff.is_empty() {
        // Planned last in its lane and applied after every credential is
        // deactivated, so no session can have been issued after this instant.
        let action = Action::DenyOlderSessions {
            issued_before: whole_second_after(p.clock().now()),
        };
        p.directory().apply(case.user(), &action).await?;
        applied.push(Applied {
            lane,
            action,
            outcome: Outcome::Done,
        });
    }
    Ok(applied)
}

/// Ends a live grant in IAM. Its verification is made by step 6, side by side with
/// the case's own read-back ([`verify_case`]). What the grant left outside IAM is
/// contained first, while the grant is still live (so a retried lane, which plans
/// only live grants, finds it again if containment failed): a checked-out
/// credential is rotated (the lease is released by the check-in once the grant is
/// verified revoked), and a vendor's user the person sponsored loses its console
/// login, keys, policies and groups.
pub(super) async fn end_grant(
    p: &impl RevocationPorts,
    case: &RevocationCase,
    request_id: &RequestId,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let grants = p.grants();
    let trail = p.trail();
    let why = format!("access revoked by case {}", case.id());
    checkout::contain(
        grants.store,
        p.leases(),
        p.vault(),
        &trail,
        request_id,
        &why,
    )
    .await?;
    vendor::contain(
        grants.store,
        p.directory(),
        p.drops(),
        &trail,
        request_id,
        &why,
        now,
    )
    .await?;
    revoke(
        &grants,
        p.directory(),
        &trail,
        request_id,
        RevokeCause::RightsRevocation,
        &case.trigger().executor,
        now,
    )
    .await?;
    Ok(())
}

/// Cancels a request the revoked person still had open. One that was granted in
/// the meantime is ended instead.
pub(super) async fn cancel_request(
    p: &impl RevocationPorts,
    case: &RevocationCase,
    request_id: &RequestId,
    now: DateTime<Utc>,
) -> Result<Outcome, Error> {
    use crate::access::usecase::{Withdrawal, withdraw_for_revocation};
    let outcome = withdraw_for_revocation(
        p.grants().store,
        &p.trail(),
        request_id,
        &case.trigger().executor,
        case.id(),
        now,
    )
    .await?;
    Ok(match outcome {
        Withdrawal::Cancelled => Outcome::Done,
        Withdrawal::AlreadyCancelled | Withdrawal::Closed => Outcome::AlreadyDone,
        Withdrawal::Active => {
            end_grant(p, case, request_id, now).await?;
            verify(&p.grants(), p.directory(), &p.trail(), request_id, now).await?;
            checkout::check_in_if_held(
                p.grants().store,
                p.leases(),
                p.vault(),
                &p.trail(),
                request_id,
            )
            .await?;
            Outcome::EndedMeanwhile
        }
    })
}

/// Step 4: record what the lanes did, with the before-state, in the case and the
/// signed audit trail. The session cutoff is the one the credentials lane wrote. The
/// after-state goes into the trail with the verdict of step 6, which reads it.
pub async fn record(
    p: &impl RevocationPorts,
    case_id: &str,
    applied: Vec<Applied>,
    now: DateTime<Utc>,
) -> Result<RevocationCase, Error> {
    // No read of IAM here: the after-state is what the Verify step reads back,
    // recorded with its verdict.
    let mut case = load(p, case_id).await?;
    case.record(applied)?;
    save(p, &mut case, now).await?;
    p.trail()
        .record(case_event(
            &case,
            "applied",
            "revocation.applied",
            case.trigger().reason.clone(),
            json!({ "before_state": case.before() }),
            json!({ "actions": case.applied(), "trigger": case.trigger(), "executor": case.trigger().executor }),
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
        case.kind().label(),
        case.user(),
        case.trigger().reason
    );
    let body = format!(
        "{} action(s) applied by case {}; verification follows.",
        case.applied().len(),
        case.id()
    );
    let mut sent = 0;
    let mut audiences = vec![Audience::Security];
    if let Some(manager) = case
        .trigger()
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
    if case.status() == CaseStatus::Verified {
        // Its event again, in case a crash lost it after the state write.
        let after = case.after().clone();
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
    if case.status() == CaseStatus::NothingToRevoke {
        return Ok(case);
    }
    // The grants the lanes ended are verified by their own content checks while the
    // whole identity is read back: neither waits for the other.
    let ended: Vec<&RequestId> = case
        .applied()
        .iter()
        .filter_map(|a| match &a.action {
            Action::EndGrant { request_id } => Some(request_id),
            _ => None,
        })
        .collect();
    let (grants, trail) = (p.grants(), p.trail());
    let (after, verified) = futures_util::future::join(
        identity(p, case.user(), now),
        futures_util::future::join_all(
            ended
                .iter()
                .map(|id| verify(&grants, p.directory(), &trail, id, now)),
        ),
    )
    .await;
    let mut after = after?;
    for grant in verified {
        grant?;
    }
    // A checked-out credential whose grant is now verified revoked is checked in
    // (rotated again, the lease released): its holder can no longer read it.
    for id in &ended {
        checkout::check_in_if_held(grants.store, p.leases(), p.vault(), &trail, id).await?;
    }
    let mut left = residue_of(p, &case, &after).await?;
    if !left.is_empty() && case.kind().closes_doors() {
        // A credential made between the snapshot and the credentials lane (or
        // re-enabled meanwhile) was planned by nobody: close it, with a new session
        // cutoff after it, once, then read IAM again.
        if let Some(again) = close_late_credentials(p, &mut case, &after, now).await? {
            after = again;
            left = residue_of(p, &case, &after).await?;
        }
    }
    let before = json!({ "status": case.status() });
    if !left.is_empty() {
        case.fail(after.clone(), left.clone())?;
        save(p, &mut case, now).await?;
        p.trail()
            .record(case_event(
                &case,
                &format!("verification_failed@{}", now.to_rfc3339()),
                "revocation.verification_failed",
                left.join("; "),
                before,
                json!({"verification": "failed", "residue": left, "after_state": after}),
                now,
            ))
            .await?;
        return Err(Error::VerificationFailed {
            request: case.id().to_string(),
            residue: left.join("; "),
        });
    }
    let unknown = case.before().as_ref().is_some_and(|b| !b.exists) && !after.exists;
    if unknown {
        // Audited and alerted before the status is saved: if the alert fails, the
        // retried step alerts again (at least once, never silently).
        case.nothing_to_revoke(after.clone())?;
        p.trail()
            .record(case_event(
                &case,
                "nothing_to_revoke",
                "revocation.nothing_to_revoke",
                format!("IAM has no user {}", case.user()),
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
                    case.user()
                ),
                body: format!(
                    "Case {} ({}: {}) names a user IAM does not know. Check the HR feed for a typo: the person it meant may still have access.",
                    case.id(),
                    case.kind().label(),
                    case.trigger().reason
                ),
                request_id: None,
            })
            .await?;
        save(p, &mut case, now).await?;
        return Ok(case);
    }
    case.verify(after.clone())?;
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

/// One more pass of the credentials lane, from what IAM holds now, for a closing
/// case whose verification found a door open that the snapshot did not show. The
/// actions are recorded on the case and audited; returns IAM read again, or `None`
/// when there was nothing to close.
async fn close_late_credentials(
    p: &impl RevocationPorts,
    case: &mut RevocationCase,
    current: &IdentitySnapshot,
    now: DateTime<Utc>,
) -> Result<Option<IdentitySnapshot>, Error> {
    let late: Vec<Action> = plan_from(p, case, current)
        .await?
        .into_iter()
        .filter(|a| a.lane() == Lane::Credentials && !matches!(a, Action::DenyOlderSessions { .. }))
        .collect();
    if late.is_empty() {
        return Ok(None);
    }
    let mut applied = Vec::new();
    for action in late {
        let outcome = match p.directory().apply(case.user(), &action).await? {
            Removal::Removed => Outcome::Done,
            Removal::AlreadyAbsent => Outcome::AlreadyDone,
        };
        applied.push(Applied {
            lane: Lane::Credentials,
            action,
            outcome,
        });
    }
    // Sessions the late credential opened are cut off too.
    let cutoff = Action::DenyOlderSessions {
        issued_before: whole_second_after(p.clock().now()),
    };
    p.directory().apply(case.user(), &cutoff).await?;
    applied.push(Applied {
        lane: Lane::Credentials,
        action: cutoff,
        outcome: Outcome::Done,
    });
    let summary: Vec<String> = applied.iter().map(|a| a.action.to_string()).collect();
    case.record(applied)?;
    save(p, case, now).await?;
    p.trail()
        .record(case_event(
            case,
            &format!("late_credentials@{}", now.to_rfc3339()),
            "revocation.late_credentials_closed",
            format!("found at verification and closed: {}", summary.join("; ")),
            Value::Null,
            json!({ "actions": summary }),
            now,
        ))
        .await?;
    Ok(Some(identity(p, case.user(), now).await?))
}

/// What IAM holds of what `case` removes, read from `after` beside the grants and
/// open requests the stores still know for the person.
async fn residue_of(
    p: &impl RevocationPorts,
    case: &RevocationCase,
    after: &IdentitySnapshot,
) -> Result<Vec<String>, Error> {
    let known = known(p, case.user(), after).await?;
    let mut left = residue(case.kind(), after, &known.expected(p, case));
    left.extend(known.live.iter().map(|g| format!("live grant {g}")));
    if case.kind().closes_doors() {
        left.extend(known.open.iter().map(|r| format!("open request {r}")));
    }
    Ok(left)
}

/// What a re-verification found in IAM, read at the time it ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum Reverified {
    /// Nothing the case removes is held.
    Verified,
    /// IAM has no such user: nothing was (or is) there to revoke.
    NoSuchUser,
    /// IAM holds these (again, for a case verified before).
    Residue { residue: Vec<String> },
}

/// A re-verification's report: the case, and what IAM holds now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reverification {
    pub case: RevocationCase,
    #[serde(flatten)]
    pub found: Reverified,
}

/// An operator's re-verification of a case: IAM is read every time, whatever the
/// case says. A case still in progress gets its own verification step
/// ([`verify_case`]). A finished one (verified, or nothing to revoke) keeps its
/// verdict, which was true when it was reached, and the read is audited beside it
/// under `executor`; access found behind a finished case (someone re-granted it
/// after the revocation) alerts security. A case not yet applied is refused: it
/// has nothing to verify.
pub async fn reverify(
    p: &impl RevocationPorts,
    case_id: &str,
    executor: &str,
    now: DateTime<Utc>,
) -> Result<Reverification, Error> {
    let case = load(p, case_id).await?;
    if case.before().is_none() && !case.status().is_final() {
        return Err(RevocationError::NotStarted {
            case: case.id().to_string(),
        }
        .into());
    }
    if !case.status().is_final() {
        return match verify_case(p, case_id, now).await {
            Ok(case) => Ok(Reverification {
                found: if case.status() == CaseStatus::NothingToRevoke {
                    Reverified::NoSuchUser
                } else {
                    Reverified::Verified
                },
                case,
            }),
            Err(Error::VerificationFailed { .. }) => {
                let case = load(p, case_id).await?;
                Ok(Reverification {
                    found: Reverified::Residue {
                        residue: case.residue().clone(),
                    },
                    case,
                })
            }
            Err(other) => Err(other),
        };
    }
    let after = identity(p, case.user(), now).await?;
    let found = if !after.exists {
        Reverified::NoSuchUser
    } else {
        match residue_of(p, &case, &after).await? {
            left if left.is_empty() => Reverified::Verified,
            residue => Reverified::Residue { residue },
        }
    };
    let (action, reason) = match &found {
        Reverified::Verified => (
            "revocation.reverified",
            "IAM read again: nothing remains".to_owned(),
        ),
        Reverified::NoSuchUser => (
            "revocation.reverified",
            format!("IAM read again: no user {}", case.user()),
        ),
        Reverified::Residue { residue } => (
            "revocation.reverification_failed",
            format!("IAM read again: holds {}", residue.join("; ")),
        ),
    };
    let mut event = case_event(
        &case,
        &format!("reverified@{}", now.to_rfc3339()),
        action,
        reason,
        json!({ "status": case.status() }),
        json!({ "reverification": found, "after_state": after }),
        now,
    );
    executor.clone_into(&mut event.actor);
    p.trail().record(event).await?;
    if let Reverified::Residue { residue } = &found {
        p.notifier()
            .send(&Notice {
                audience: Audience::Security,
                subject: format!(
                    "Access is back for {} after a finished revocation",
                    case.user()
                ),
                body: format!(
                    "Case {} ({}) was {} but IAM now holds: {}. Someone granted this after \
                     the revocation; find out who (CloudTrail) and revoke it again.",
                    case.id(),
                    case.kind().label(),
                    case.status().label(),
                    residue.join("; ")
                ),
                request_id: None,
            })
            .await?;
    }
    Ok(Reverification { case, found })
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
