//! Asking for access, looking at requests, cancelling.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use super::{Attempt, AuditTrail, Outbox, request_event, versioned, workflow_input, written};
use crate::access::request::{AccessRequest, NewRequest, RequestId, Status};
use crate::access::risk::RequesterContext;
use crate::error::Error;
use crate::identity::Principal;
use crate::policy::Catalog;
use crate::ports::{
    Audience, AuditLog, Notice, Notifier, RequestQueries, RequestStore, WorkflowStarter,
};

/// What Lapse knows about a requester, from their history.
pub async fn requester_context(
    queries: &impl RequestQueries,
    requester: &Principal,
    resource: &str,
    now: DateTime<Utc>,
) -> Result<RequesterContext, Error> {
    let history = queries.by_requester(requester.id()).await?;
    let held_before = history.iter().any(|r| {
        r.resource() == resource
            && matches!(
                r.status(),
                Status::Active | Status::Revoked | Status::Verified
            )
    });
    let recent_denials = history
        .iter()
        .filter(|r| r.status() == Status::Denied && now - r.updated_at() < TimeDelta::days(30))
        .count();
    Ok(RequesterContext {
        employment: requester.employment(),
        first_time: !held_before,
        recent_denials: u32::try_from(recent_denials).unwrap_or(u32::MAX),
        open_break_glass: history
            .iter()
            .any(|r| r.break_glass_state().is_some_and(|b| b.unanswered())),
    })
}

/// Starts the grant workflow for an approved request (idempotent by name) and
/// audits the start once.
pub(crate) async fn start_workflow(
    request: &AccessRequest,
    trail: &AuditTrail<'_, impl AuditLog>,
    outbox: &Outbox<'_, impl Notifier, impl WorkflowStarter>,
) -> Result<String, Error> {
    let (name, input) = workflow_input(request);
    let execution = outbox.workflows.start(&name, &input).await?;
    trail
        .record(request_event(
            request,
            "workflow.started",
            "lapse",
            "workflow.started",
            format!("grant workflow {execution}"),
            Value::Null,
        ))
        .await?;
    Ok(execution)
}

/// Validates, scores, routes and persists a new request; audits it; tells the
/// approvers, or starts the grant at once when it was approved automatically.
pub async fn submit(
    store: &(impl RequestStore + RequestQueries),
    trail: &AuditTrail<'_, impl AuditLog>,
    outbox: &Outbox<'_, impl Notifier, impl WorkflowStarter>,
    catalog: &Catalog,
    requester: &Principal,
    input: NewRequest,
    now: DateTime<Utc>,
) -> Result<AccessRequest, Error> {
    let context = requester_context(store, requester, &input.resource, now).await?;
    let mut request = AccessRequest::submit(input, requester, context, catalog, now)?;
    store.create(&mut request).await?;
    record_submission(&request, trail).await?;
    announce(&request, trail, outbox).await
}

/// More time asked for on an active grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionAsk {
    pub grant_id: RequestId,
    pub extra: crate::duration::Span,
    pub justification: String,
}

/// Asks for more time on an active grant; routed by risk like a new request.
pub async fn extend(
    store: &(impl RequestStore + RequestQueries),
    trail: &AuditTrail<'_, impl AuditLog>,
    outbox: &Outbox<'_, impl Notifier, impl WorkflowStarter>,
    catalog: &Catalog,
    requester: &Principal,
    ask: ExtensionAsk,
    now: DateTime<Utc>,
) -> Result<AccessRequest, Error> {
    let grant = view(store, catalog, requester, &ask.grant_id).await?;
    let context = requester_context(store, requester, grant.resource(), now).await?;
    let mut extension = AccessRequest::submit_extension(
        &grant,
        ask.extra,
        ask.justification,
        requester,
        context,
        catalog,
        now,
    )?;
    store.create(&mut extension).await?;
    record_submission(&extension, trail).await?;
    announce(&extension, trail, outbox).await
}

/// The request's first event, in its requester's name: a break-glass
/// declaration, an extension's or an ordinary submission, with what was asked
/// and how it was scored and routed.
pub(crate) async fn record_submission(
    request: &AccessRequest,
    trail: &AuditTrail<'_, impl AuditLog>,
) -> Result<(), Error> {
    let action = if request.break_glass_state().is_some() {
        "breakglass.declared"
    } else if request.extends().is_some() {
        "extension.submitted"
    } else {
        "request.submitted"
    };
    let mut draft = request_event(
        request,
        "request.submitted",
        request.requester().as_str(),
        action,
        request.justification(),
        Value::Null,
    );
    draft.after = json!({
        "state": draft.after,
        "resource": request.resource(),
        "duration": request.duration(),
        "extends": request.extends(),
        "risk": request.risk(),
        "routing": request.routing(),
    });
    trail.record(draft).await?;
    Ok(())
}

pub(crate) async fn announce(
    request: &AccessRequest,
    trail: &AuditTrail<'_, impl AuditLog>,
    outbox: &Outbox<'_, impl Notifier, impl WorkflowStarter>,
) -> Result<AccessRequest, Error> {
    if request.status() == Status::Approved {
        outbox
            .notify(Notice {
                audience: Audience::Person {
                    id: request.requester().clone(),
                },
                subject: format!(
                    "Approved: {} for {}",
                    request.resource(),
                    request.duration()
                ),
                body: request.routing().reason.clone(),
                request_id: Some(request.id().clone()),
            })
            .await;
        start_workflow(request, trail, outbox).await?;
    } else {
        let risk = request.risk();
        outbox
            .notify(Notice {
                audience: Audience::Approvers {
                    groups: request.open_slots(),
                },
                subject: format!(
                    "Approval needed: {} asks for {} for {}",
                    request.requester(),
                    request.resource(),
                    request.duration()
                ),
                body: format!(
                    "Risk {} ({:?}). {}. Reason: {}. Decide before {}.",
                    risk.score,
                    risk.level,
                    request.routing().reason,
                    request.justification(),
                    request.pending_deadline().to_rfc3339()
                ),
                request_id: Some(request.id().clone()),
            })
            .await;
    }
    Ok(request.clone())
}

/// A request, if this person may see it (otherwise it does not exist for them).
pub async fn view(
    store: &impl RequestStore,
    catalog: &Catalog,
    who: &Principal,
    id: &RequestId,
) -> Result<AccessRequest, Error> {
    store
        .get(id)
        .await?
        .filter(|r| r.may_view(who, catalog))
        .ok_or_else(|| Error::NotFound(id.to_string()))
}

/// Requests still waiting for this person's decision.
pub async fn pending_for(
    queries: &impl RequestQueries,
    who: &Principal,
) -> Result<Vec<AccessRequest>, Error> {
    Ok(queries
        .by_status(Status::Pending)
        .await?
        .into_iter()
        .filter(|r| r.requester() != who.id() && r.open_slots().iter().any(|g| who.is_member(g)))
        .collect())
}

/// The requester withdraws a request that is not yet granted.
pub async fn cancel(
    store: &impl RequestStore,
    trail: &AuditTrail<'_, impl AuditLog>,
    catalog: &Catalog,
    who: &Principal,
    id: &RequestId,
    now: DateTime<Utc>,
) -> Result<AccessRequest, Error> {
    versioned(
        || id.to_string(),
        || async move {
            let mut request = view(store, catalog, who, id).await?;
            let before = super::state_of(&request);
            let changed = request.cancel(who, now)?;
            if changed && !written(store.update(&mut request).await)? {
                return Ok(Attempt::Lost);
            }
            // Recorded on a retry too, in the name of whoever cancelled it.
            super::record_cancellation(trail, &request, before).await?;
            Ok(Attempt::Done(request))
        },
    )
    .await
}
