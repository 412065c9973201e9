//! Operator tools: restore from the archived before-state, controls (legal hold,
//! override) and resuming held cases, postponements.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::access::grant::NAME_PREFIX;
use crate::access::ledger::Artifact;
use crate::audit::AuditDraft;
use crate::error::Error;
use crate::identity::PrincipalId;
use crate::ports::{AuditLog, Notifier};
use crate::revocation::case::RevocationError;
use crate::revocation::case::{CaseStatus, RevocationCase};
use crate::revocation::hr::HrEventType;
use crate::revocation::plan::IdentitySnapshot;
use crate::revocation::ports::{
    Archive, CaseStore, IdentityDirectory, Proposal, ProposedChange, UserControls,
};

use super::{RevocationPorts, identity, known, save, update_controls};

/// How long a proposal waits for its second operator.
pub const PROPOSAL_LIFETIME: TimeDelta = TimeDelta::hours(24);

/// What the two-person rule made of one operator's call.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SecondOperator {
    /// Stored as a proposal (a new one, or replacing a different or stale one):
    /// nothing changes until a second, different operator asks for the same.
    Proposed(Proposal),
    /// A different operator proposed exactly this: the proposal is consumed and
    /// the caller carries the change out.
    Confirmed(Proposal),
}

/// The two-person rule for restores and overrides: the first operator's call
/// only proposes (stored with the person's controls, audited, security told);
/// the same call by a second, different operator within [`PROPOSAL_LIFETIME`]
/// confirms it, and the proposal is consumed by a versioned write, so two
/// confirmations never both act. The proposer asking again is refused.
pub async fn propose_or_confirm(
    p: &impl RevocationPorts,
    user: &PrincipalId,
    change: ProposedChange,
    executor: &str,
    now: DateTime<Utc>,
) -> Result<SecondOperator, Error> {
    use crate::access::usecase::{Attempt, versioned, written};
    let change = &change;
    let outcome = versioned(
        || format!("controls of {user}"),
        || async move {
            let mut controls = p.controls().controls(user).await?;
            let live = controls
                .proposal
                .clone()
                .filter(|w| now - w.at < PROPOSAL_LIFETIME);
            let (waiting, other) = match live {
                Some(w) if &w.change == change => (Some(w), None),
                other => (None, other),
            };
            let outcome = match waiting {
                Some(w) if w.proposed_by.eq_ignore_ascii_case(executor) => {
                    return Err(
                        crate::access::request::RequestError::SecondOperatorRequired {
                            proposed_by: w.proposed_by,
                            at: w.at,
                        }
                        .into(),
                    );
                }
                Some(w) => {
                    controls.proposal = None;
                    SecondOperator::Confirmed(w)
                }
                None => {
                    let proposal = Proposal {
                        change: change.clone(),
                        proposed_by: executor.to_owned(),
                        at: now,
                        replaces: other.map(|o| {
                            format!("{} proposed by {}", describe(&o.change), o.proposed_by)
                        }),
                    };
                    controls.proposal = Some(proposal.clone());
                    SecondOperator::Proposed(proposal)
                }
            };
            if !written(p.controls().set(user, &mut controls).await)? {
                return Ok(Attempt::Lost);
            }
            Ok(Attempt::Done(outcome))
        },
    )
    .await?;
    let (action, reason) = match &outcome {
        SecondOperator::Proposed(w) => (
            "revocation.change_proposed",
            format!("{}: waits for a second operator", describe(&w.change)),
        ),
        SecondOperator::Confirmed(w) => (
            "revocation.change_confirmed",
            format!("{}: proposed by {}", describe(&w.change), w.proposed_by),
        ),
    };
    p.trail()
        .record(AuditDraft {
            chain: format!("user#{user}"),
            key: format!("{action}@{}", now.to_rfc3339()),
            actor: executor.to_owned(),
            action: action.into(),
            subject: user.to_string(),
            reason: reason.clone(),
            before: Value::Null,
            after: json!(outcome),
            at: now,
        })
        .await?;
    if let SecondOperator::Proposed(w) = &outcome {
        p.notifier()
            .send(&crate::ports::Notice {
                audience: crate::ports::Audience::Security,
                subject: format!("Proposed for {user}: {}", describe(&w.change)),
                body: format!(
                    "{executor} proposed it. It happens only if a second, different operator \
                     makes the same call before {}.",
                    (w.at + PROPOSAL_LIFETIME).to_rfc3339()
                ),
                request_id: None,
            })
            .await?;
    }
    Ok(outcome)
}

fn describe(change: &ProposedChange) -> String {
    match change {
        ProposedChange::Restore {
            from_backup,
            approval,
        } => format!(
            "restore from the backup at or before {} ({approval})",
            from_backup.to_rfc3339()
        ),
        ProposedChange::Override { reason } => {
            format!("override holding back every revocation ({reason})")
        }
    }
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
        if case.status() != CaseStatus::Held {
            continue;
        }
        workflows
            .start(
                &format!("{}-resume-{}", case.id(), case.version()),
                &json!({ "case": { "case_id": case.id() } }),
            )
            .await?;
        resumed.push(case.id().to_string());
    }
    Ok(resumed)
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
) -> Result<Restored, Error> {
    if approval.trim().is_empty() {
        return Err(RevocationError::ApprovalMissing.into());
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
    ensure_archive_signed(p, user, &snapshot, now).await?;
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
        if !p.grants().live_holders(user, &artifact).await?.is_empty() {
            live_groups.insert(group.clone());
        }
    }
    let mut skipped: Vec<String> = Vec::new();
    let mut skipped_policies = Vec::new();
    snapshot.inline_policies.retain(|name, _| {
        let keep = !name.starts_with(NAME_PREFIX) || known.grant_policies.contains(name);
        if !keep && name != crate::revocation::plan::SESSION_DENY_POLICY {
            skipped.push(format!(
                "inline policy {name}: Lapse's own, for a grant no longer live (grants are asked for again, not restored)"
            ));
            skipped_policies.push(name.clone());
        }
        keep
    });
    snapshot.groups.retain(|group| {
        let keep = !group.starts_with(NAME_PREFIX) || live_groups.contains(group);
        if !keep {
            skipped.push(format!(
                "group {group}: Lapse's own, for a grant no longer live (grants are asked for again, not restored)"
            ));
        }
        keep
    });
    // Credentials the person had switched off stay off: a restore puts back what
    // the revocation took, not more.
    for (what, list) in [
        ("access key", &snapshot.access_keys),
        ("SSH key", &snapshot.ssh_keys),
        ("signing certificate", &snapshot.signing_certificates),
    ] {
        skipped.extend(list.iter().filter(|c| !c.active).map(|c| {
            format!(
                "{what} {}: stays inactive (it was inactive before the revocation)",
                c.id
            )
        }));
    }
    let restored = p.directory().restore(&snapshot, now).await?;
    let after = identity(p, user, now).await?;
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
    Ok(Restored {
        restored,
        left_out: skipped,
    })
}

/// The archived before-state must be the one a revocation sealed into the person's
/// signed audit trail (its `revocation.snapshot` event), in a chain that verifies up
/// to that event: the archive table is writable by more roles than the one that
/// takes snapshots, and a rewritten archive would otherwise be put back into IAM.
/// A mismatch is refused and security is told.
async fn ensure_archive_signed(
    p: &impl RevocationPorts,
    user: &PrincipalId,
    snapshot: &IdentitySnapshot,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let chain = format!("user#{user}");
    let trail = p.trail();
    let events = trail.log.chain(&chain).await?;
    let sealed = events.iter().position(|e| {
        e.action == "revocation.snapshot"
            && serde_json::from_value::<IdentitySnapshot>(e.after["before_state"].clone())
                .is_ok_and(|before| before == *snapshot)
    });
    let why = match sealed {
        None => Some("no signed snapshot event in their audit trail holds it".to_owned()),
        Some(last) => {
            let verifier = trail.signer.verifier().await?;
            crate::audit::verify_chain(&chain, &events[..=last], &verifier, None)
                .err()
                .map(|e| format!("their audit trail does not verify up to its snapshot event: {e}"))
        }
    };
    let Some(why) = why else {
        return Ok(());
    };
    let refused = RevocationError::ArchiveUnverified {
        user: user.clone(),
        taken_at: snapshot.taken_at,
        why,
    };
    p.notifier()
        .send(&crate::ports::Notice {
            audience: crate::ports::Audience::Security,
            subject: format!(
                "Restore refused: the archived before-state of {user} is not the signed one"
            ),
            body: format!(
                "{refused}. Nothing was restored. The archive may have been altered: \
                 check it with `lapse audit verify --chain user#{user}` and the archive table's \
                 change history (refused at {}).",
                now.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            request_id: None,
        })
        .await?;
    Err(refused.into())
}

/// What a restore put back, and what it left out, each with why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Restored {
    pub restored: Vec<String>,
    pub left_out: Vec<String>,
}

/// What a restore should have put back but IAM does not show, plus anything a
/// restore must never leave (the session deny, a `lapse-*` artifact it filtered out).
pub(super) fn restore_gaps(
    wanted: &IdentitySnapshot,
    after: &IdentitySnapshot,
    filtered_out: &[String],
) -> Vec<String> {
    let mut missing = Vec::new();
    if !after.exists {
        return vec![format!("user {} no longer exists", wanted.user)];
    }
    let active = |list: &[crate::revocation::plan::Credential], id: &str| {
        list.iter().any(|c| c.id == id && c.active)
    };
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
        .filter(|(n, _)| n.as_str() != crate::revocation::plan::SESSION_DENY_POLICY)
    {
        if after.inline_policies.get(name) != Some(document) {
            missing.push(format!("inline policy {name} not restored as archived"));
        }
    }
    if !wanted
        .inline_policies
        .contains_key(crate::revocation::plan::SESSION_DENY_POLICY)
        && after
            .inline_policies
            .contains_key(crate::revocation::plan::SESSION_DENY_POLICY)
    {
        missing.push("the session deny is still in place".into());
    }
    let lifted: std::collections::BTreeSet<&str> =
        crate::revocation::plan::roles_to_lift(wanted).collect();
    missing.extend(
        after
            .trusting_roles
            .iter()
            .filter(|r| {
                lifted.contains(r.name.as_str())
                    && crate::access::role_denies::RoleDenies::document_denies_all_of(
                        r.session_deny.as_ref(),
                        &after.user,
                    )
            })
            .map(|r| format!("role {} still denies the person's sessions", r.name)),
    );
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
        return Err(RevocationError::ApprovalMissing.into());
    }
    let mut moved = Vec::new();
    for mut case in p.cases().cases_of(user).await? {
        if case.status() != CaseStatus::Received || case.effective_at() <= now {
            continue;
        }
        let contract_end = case.trigger().event_type == Some(HrEventType::ContractorExpired);
        if contract_end {
            let grace = p.catalog().tunables().contract_grace;
            if case.grace_used() || by > grace.delta() {
                return Err(RevocationError::GraceExceeded {
                    user: user.clone(),
                    requested: crate::duration::Span::from_seconds(by.num_seconds())
                        .map_or_else(|| format!("{}s", by.num_seconds()), |s| s.to_string()),
                    max: grace,
                    used: case.grace_used(),
                }
                .into());
            }
        }
        let before = json!({ "effective_at": case.effective_at() });
        case.postpone(by, contract_end)?;
        save(p, &mut case, now).await?;
        p.trail()
            .record(AuditDraft {
                chain: case.chain(),
                key: format!("{}:postponed@{}", case.id(), now.to_rfc3339()),
                actor: executor.to_owned(),
                action: "revocation.postponed".into(),
                subject: case.user().to_string(),
                reason: format!("approval {approval}"),
                before,
                after: json!({ "effective_at": case.effective_at() }),
                at: now,
            })
            .await?;
        moved.push(case);
    }
    Ok(moved)
}
