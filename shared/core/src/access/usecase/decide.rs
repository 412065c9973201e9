//! Approving and denying.

use chrono::{DateTime, Utc};

use super::intake::start_workflow;
use super::{
    Attempt, AuditTrail, Outbox, record_expiry, request_event, state_of, versioned, written,
};
use crate::access::request::{
    AccessRequest, DecisionOutcome, RequestError, RequestId, Status, Verdict,
};
use crate::error::Error;
use crate::identity::Principal;
use crate::ports::{Audience, AuditLog, Notice, Notifier, RequestStore, WorkflowStarter};
use crate::revocation::ports::UserControls;

/// One approver's decision on one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub request_id: RequestId,
    pub verdict: Verdict,
    pub comment: String,
}

/// Records a decision. Racing decisions (two approvers, an approval and a cancel,
/// an approval and the pending timeout) are settled by the store's versioned write:
/// the loser re-reads and decides again on the new state. When the routing rule is
/// met the grant workflow starts — once, because its execution is named for the
/// request; a retried call on an approved request re-issues the same idempotent start.
///
/// No decision is taken on a request whose requester Lapse has revoked: their
/// revocation cancels it, and the refusal is audited like any other.
pub async fn decide(
    store: &impl RequestStore,
    controls: &impl UserControls,
    trail: &AuditTrail<'_, impl AuditLog>,
    outbox: &Outbox<'_, impl Notifier, impl WorkflowStarter>,
    approver: &Principal,
    decision: &Decision,
    now: DateTime<Utc>,
) -> Result<(AccessRequest, DecisionOutcome), Error> {
    versioned(
        || decision.request_id.to_string(),
        || async move {
            let mut request = store
                .get(&decision.request_id)
                .await?
                .ok_or_else(|| Error::NotFound(decision.request_id.to_string()))?;
            if controls
                .controls(request.requester())
                .await?
                .revoked_by
                .is_some()
            {
                let refused = RequestError::AccessRevoked(request.requester().clone());
                audit_refusal(trail, &request, approver, decision, &refused, now).await?;
                return Err(refused.into());
            }
            let before = state_of(&request);
            if request.expire_if_overdue(now) {
                if !written(store.update(&mut request).await)? {
                    return Ok(Attempt::Lost);
                }
                record_expiry(trail, &request, before).await?;
                return Err(RequestError::PendingTimedOut {
                    deadline: request.pending_deadline(),
                }
                .into());
            }
            if request.status() == Status::Expired {
                // Expired already: its event again (once, by key), in case a crash
                // came between that state write and its event; the late decision
                // itself is refused and audited below.
                record_expiry(trail, &request, before.clone()).await?;
            }
            let outcome = match request.decide(approver, decision.verdict, &decision.comment, now) {
                Ok(outcome) => outcome,
                Err(refused) => {
                    audit_refusal(trail, &request, approver, decision, &refused, now).await?;
                    return Err(refused.into());
                }
            };
            let changed = outcome != DecisionOutcome::AlreadyRecorded;
            if changed && !written(store.update(&mut request).await)? {
                return Ok(Attempt::Lost);
            }
            // Recorded on a retry too: if the handler stopped between the state write
            // and this one, the decision is audited now (the key makes it once).
            let completed = request.status() == Status::Approved
                && request
                    .approvals()
                    .last()
                    .is_some_and(|a| &a.approver == approver.id());
            let action = match request.status() {
                Status::Denied => "request.denied",
                _ if completed => "request.approved",
                _ => "request.approval_recorded",
            };
            trail
                .record(request_event(
                    &request,
                    format!("decision:{}:{:?}", approver.id(), decision.verdict),
                    approver.id().as_str(),
                    action,
                    decision.comment.clone(),
                    before,
                ))
                .await?;
            if changed {
                tell(&request, &outcome, outbox).await;
            }
            if request.status() == Status::Approved {
                start_workflow(&request, trail, outbox).await?;
            }
            Ok(Attempt::Done((request, outcome)))
        },
    )
    .await
}

/// A decision Lapse refused (self-approval, not an eligible approver, a closed
/// request) is audited on the request's chain: who tried, and why it was refused.
async fn audit_refusal(
    trail: &AuditTrail<'_, impl AuditLog>,
    request: &AccessRequest,
    approver: &Principal,
    decision: &Decision,
    refused: &RequestError,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let mut draft = request_event(
        request,
        format!(
            "decision_refused:{}:{:?}@{}",
            approver.id(),
            decision.verdict,
            now.to_rfc3339()
        ),
        approver.id().as_str(),
        "request.decision_refused",
        refused.to_string(),
        state_of(request),
    );
    draft.at = now;
    trail.record(draft).await?;
    Ok(())
}

async fn tell(
    request: &AccessRequest,
    outcome: &DecisionOutcome,
    outbox: &Outbox<'_, impl Notifier, impl WorkflowStarter>,
) {
    let requester = Audience::Person {
        id: request.requester().clone(),
    };
    let notice = match outcome {
        DecisionOutcome::Approved => Notice {
            audience: requester,
            subject: format!(
                "Approved: {} for {}",
                request.resource(),
                request.duration()
            ),
            body: "Access is being granted; you will be told when it starts and when it ends."
                .into(),
            request_id: Some(request.id().clone()),
        },
        DecisionOutcome::Denied => Notice {
            audience: requester,
            subject: format!("Denied: {}", request.resource()),
            body: request
                .denial()
                .map(|d| d.comment.clone())
                .unwrap_or_default(),
            request_id: Some(request.id().clone()),
        },
        DecisionOutcome::Recorded { remaining } => Notice {
            audience: Audience::Approvers {
                groups: remaining.clone(),
            },
            subject: format!(
                "Second approval needed: {} asks for {}",
                request.requester(),
                request.resource()
            ),
            body: format!("Approved so far by {}.", request.approvals().len()),
            request_id: Some(request.id().clone()),
        },
        DecisionOutcome::AlreadyRecorded => return,
    };
    outbox.notify(notice).await;
}
