//! Break-glass: declaring an emergency (granted at once), justifying it, reviewing
//! it, and the justification timeline's steps. The grant runs through the ordinary
//! grant workflow; the timeline is its own workflow (wait, remind, wait, escalate).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::intake::{requester_context, start_workflow};
use super::{Attempt, AuditTrail, Outbox, request_event, state_of, versioned, written};
use crate::access::breakglass::{
    FREQUENT_USE_COUNT, FREQUENT_USE_WINDOW_DAYS, Finding, Nudge, ReviewOutcome,
};
use crate::access::request::{AccessRequest, NewRequest, RequestError, RequestId};
use crate::error::Error;
use crate::identity::Principal;
use crate::policy::Catalog;
use crate::ports::{
    Audience, AuditLog, Incident, Incidents, Notice, Notifier, RequestQueries, RequestStore,
    WorkflowStarter,
};

/// The justification timeline's workflow input: when to remind, when to escalate.
pub fn timeline_input(request: &AccessRequest) -> Option<(String, Value)> {
    let state = request.break_glass_state()?;
    Some((
        request.id().to_string(),
        json!({
            "request_id": request.id(),
            "remind_at": state.remind_at().to_rfc3339(),
            "due": state.due().to_rfc3339(),
        }),
    ))
}

/// Break-glass access: persisted approved, security told and the justification
/// timeline started, audited as break-glass, and only then granted through the
/// grant workflow; the requester is told what they owe, and security is told
/// again, separately, when this person's uses reach [`FREQUENT_USE_COUNT`] within
/// [`FREQUENT_USE_WINDOW_DAYS`] days. If the notice or the timeline fails, the call
/// fails before anything is granted; the sweeper finishes the declaration
/// ([`announce_declared`]) before it starts the grant of a request left approved.
/// The caller has checked that the requester's access is not revoked.
#[allow(clippy::too_many_arguments)]
pub async fn declare(
    store: &(impl RequestStore + RequestQueries),
    trail: &AuditTrail<'_, impl AuditLog>,
    outbox: &Outbox<'_, impl Notifier, impl WorkflowStarter>,
    timelines: &impl WorkflowStarter,
    catalog: &Catalog,
    requester: &Principal,
    input: NewRequest,
    now: DateTime<Utc>,
) -> Result<AccessRequest, Error> {
    let context = requester_context(store, requester, &input.resource, now).await?;
    let mut request = AccessRequest::break_glass(input, requester, context, catalog, now)?;
    // Signed before it is stored: a break-glass row with no declaration in the
    // requester's name (one written straight into the table) is not granted.
    super::intake::record_submission(&request, trail).await?;
    store.create(&mut request).await?;
    announce_declared(trail, outbox.notifier, timelines, &request).await?;
    start_workflow(&request, trail, outbox).await?;
    let state = request
        .break_glass_state()
        .ok_or(RequestError::NotBreakGlass)?;
    outbox
        .notify(Notice {
            audience: Audience::Person {
                id: request.requester().clone(),
            },
            subject: format!(
                "Break-glass granted: {} for {}",
                request.resource(),
                request.duration()
            ),
            body: format!(
                "Justify this use by {} (POST /v1/break-glass/{}/justification); it will be reviewed.",
                state.due().to_rfc3339(),
                request.id()
            ),
            request_id: Some(request.id().clone()),
        })
        .await;
    alert_frequent_use(store, trail, outbox, &request, now).await?;
    Ok(request)
}

/// What must happen before a break-glass grant, after its declaration was signed
/// (`breakglass.declared`, recorded before the request is stored), in this order:
/// security is told (a failure fails the call), the justification timeline is
/// started (idempotent by name), then the `breakglass.announced` event is recorded.
/// That event is the mark that the rest was done: a request whose chain lacks it (a
/// crash after the request was stored) is announced again, so security may hear of
/// one use twice, never not at all. The sweeper announces a row with no signed
/// declaration too (security hears of it), but never declares it: the grant step
/// refuses it. Returns whether it announced anything.
pub async fn announce_declared(
    trail: &AuditTrail<'_, impl AuditLog>,
    notifier: &impl Notifier,
    timelines: &impl WorkflowStarter,
    request: &AccessRequest,
) -> Result<bool, Error> {
    let state = request
        .break_glass_state()
        .ok_or(RequestError::NotBreakGlass)?;
    let announced = trail
        .log
        .chain(&super::request_chain(request.id()))
        .await?
        .iter()
        .any(|e| e.action == "breakglass.announced");
    if announced {
        return Ok(false);
    }
    notifier
        .send(&Notice {
            audience: Audience::Security,
            subject: format!(
                "Break-glass: {} took {} for {}",
                request.requester(),
                request.resource(),
                request.duration()
            ),
            body: format!(
                "Reason: {}. Risk {} ({}). Justification due {}; reviewers: {}.",
                request.justification(),
                request.risk().score,
                request.risk().level.label(),
                state.due().to_rfc3339(),
                state.review_groups().join(", ")
            ),
            request_id: Some(request.id().clone()),
        })
        .await?;
    if let Some((name, input)) = timeline_input(request) {
        timelines.start(&name, &input).await?;
    }
    trail
        .record(request_event(
            request,
            "breakglass.announced",
            "lapse",
            "breakglass.announced",
            "security told; justification timeline started",
            Value::Null,
        ))
        .await?;
    Ok(true)
}

/// Security is alerted when this use brings the person's break-glass uses within
/// the window to [`FREQUENT_USE_COUNT`] or more.
async fn alert_frequent_use(
    store: &impl RequestQueries,
    trail: &AuditTrail<'_, impl AuditLog>,
    outbox: &Outbox<'_, impl Notifier, impl WorkflowStarter>,
    request: &AccessRequest,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let history = store.by_requester(request.requester()).await?;
    let uses = crate::access::breakglass::recent_uses(
        history
            .iter()
            .filter(|r| r.break_glass_state().is_some())
            .map(AccessRequest::created_at),
        now,
    );
    if uses < FREQUENT_USE_COUNT {
        return Ok(());
    }
    let reason = format!(
        "{} has used break-glass {uses} times in {FREQUENT_USE_WINDOW_DAYS} days",
        request.requester()
    );
    outbox
        .notify(Notice {
            audience: Audience::Security,
            subject: format!("Frequent break-glass use by {}", request.requester()),
            body: reason.clone(),
            request_id: Some(request.id().clone()),
        })
        .await;
    trail
        .record(request_event(
            request,
            "breakglass.frequent_use",
            "lapse",
            "breakglass.frequent_use",
            reason,
            Value::Null,
        ))
        .await?;
    Ok(())
}

/// The requester justifies their break-glass use (late is accepted, and marked).
pub async fn justify(
    store: &impl RequestStore,
    trail: &AuditTrail<'_, impl AuditLog>,
    who: &Principal,
    id: &RequestId,
    text: &str,
    now: DateTime<Utc>,
) -> Result<AccessRequest, Error> {
    versioned(
        || id.to_string(),
        || async move {
            let mut request = owned(store, who, id).await?;
            let before = state_of(&request);
            let changed = request.justify_break_glass(who.id(), text, now)?;
            if changed && !written(store.update(&mut request).await)? {
                return Ok(Attempt::Lost);
            }
            let late = request
                .break_glass_state()
                .and_then(|b| b.justification())
                .is_some_and(|j| j.late);
            trail
                .record(request_event(
                    &request,
                    "breakglass.justified",
                    who.id().as_str(),
                    "breakglass.justified",
                    if late {
                        format!("late: {}", text.trim())
                    } else {
                        text.trim().to_owned()
                    },
                    before,
                ))
                .await?;
            Ok(Attempt::Done(request))
        },
    )
    .await
}

/// A break-glass request of this person's (anyone else's does not exist for them).
async fn owned(
    store: &impl RequestStore,
    who: &Principal,
    id: &RequestId,
) -> Result<AccessRequest, Error> {
    store
        .get(id)
        .await?
        .filter(|r| r.requester() == who.id())
        .ok_or_else(|| Error::NotFound(id.to_string()))
}

/// A reviewer's finding. An `unjustified` finding opens a security incident (on
/// the bus, and an alert to security), audited; a retried review that finds the
/// finding recorded opens it again (same id), so a crash between the two loses
/// nothing.
#[allow(clippy::too_many_arguments)]
pub async fn review(
    store: &impl RequestStore,
    trail: &AuditTrail<'_, impl AuditLog>,
    notifier: &impl Notifier,
    incidents: &impl Incidents,
    reviewer: &Principal,
    id: &RequestId,
    finding: Finding,
    note: &str,
    now: DateTime<Utc>,
) -> Result<(AccessRequest, ReviewOutcome), Error> {
    let (request, outcome) = versioned(
        || id.to_string(),
        || async move {
            let mut request = store
                .get(id)
                .await?
                .filter(|r| r.break_glass_state().is_some())
                .ok_or_else(|| Error::NotFound(id.to_string()))?;
            let before = state_of(&request);
            let outcome = request.review_break_glass(reviewer, finding, note, now)?;
            if outcome != ReviewOutcome::AlreadyRecorded
                && !written(store.update(&mut request).await)?
            {
                return Ok(Attempt::Lost);
            }
            trail
                .record(request_event(
                    &request,
                    format!("breakglass.reviewed:{}", reviewer.id()),
                    reviewer.id().as_str(),
                    "breakglass.reviewed",
                    format!("{finding:?}: {}", note.trim()),
                    before,
                ))
                .await?;
            Ok(Attempt::Done((request, outcome)))
        },
    )
    .await?;
    let unjustified = request
        .break_glass_state()
        .is_some_and(|b| b.outcome() == Some(Finding::Unjustified));
    if unjustified {
        open_incident(trail, notifier, incidents, &request, reviewer, now).await?;
    }
    Ok((request, outcome))
}

async fn open_incident(
    trail: &AuditTrail<'_, impl AuditLog>,
    notifier: &impl Notifier,
    incidents: &impl Incidents,
    request: &AccessRequest,
    reviewer: &Principal,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let summary = format!(
        "break-glass use of {} by {} found unjustified by {}",
        request.resource(),
        request.requester(),
        reviewer.id()
    );
    let incident = Incident {
        id: format!("breakglass-{}", request.id()),
        kind: "break_glass_unjustified".into(),
        subject: request.requester().clone(),
        request_id: request.id().clone(),
        summary: summary.clone(),
        at: now,
    };
    incidents.open(&incident).await?;
    // Alerted at least once: a failed alert fails the call, which is retried.
    notifier
        .send(&Notice {
            audience: Audience::Security,
            subject: format!(
                "Incident: unjustified break-glass by {}",
                request.requester()
            ),
            body: format!("{summary}. Incident {}.", incident.id),
            request_id: Some(request.id().clone()),
        })
        .await?;
    trail
        .record(request_event(
            request,
            "breakglass.incident",
            reviewer.id().as_str(),
            "breakglass.incident",
            summary,
            Value::Null,
        ))
        .await?;
    Ok(())
}

/// A step of the justification timeline: reminds the requester, or escalates to
/// the reviewers and security, unless the use has been answered or the step was
/// done. Notices go out before the step is marked done, so a crash between the two
/// sends again rather than never. Returns whether the step acted.
pub async fn nudge(
    store: &impl RequestStore,
    trail: &AuditTrail<'_, impl AuditLog>,
    notifier: &impl Notifier,
    id: &RequestId,
    step: Nudge,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let request = store
        .get(id)
        .await?
        .ok_or_else(|| Error::NotFound(id.to_string()))?;
    let state = request
        .break_glass_state()
        .ok_or(RequestError::NotBreakGlass)?;
    let action = match step {
        Nudge::Remind => "breakglass.reminded",
        Nudge::Escalate => "breakglass.escalated",
    };
    let reason = format!("justification due {}", state.due().to_rfc3339());
    let done = match step {
        Nudge::Remind => state.reminded(),
        Nudge::Escalate => state.escalated(),
    };
    if done {
        // Its event again, in case a crash lost it after the state write.
        let after = state_of(&request);
        trail
            .record(request_event(
                &request, action, "lapse", action, reason, after,
            ))
            .await?;
        return Ok(false);
    }
    if state.nudge_due(now) != Some(step) {
        return Ok(false);
    }
    let notices = match step {
        Nudge::Remind => vec![Notice {
            audience: Audience::Person {
                id: request.requester().clone(),
            },
            subject: format!(
                "Reminder: justify your break-glass use of {}",
                request.resource()
            ),
            body: format!(
                "Your justification is due {} (POST /v1/break-glass/{}/justification).",
                state.due().to_rfc3339(),
                request.id()
            ),
            request_id: Some(request.id().clone()),
        }],
        Nudge::Escalate => {
            let subject = format!(
                "Overdue: {} has not justified break-glass use of {}",
                request.requester(),
                request.resource()
            );
            let body = format!(
                "The justification was due {}. Review it: POST /v1/break-glass/{}/reviews.",
                state.due().to_rfc3339(),
                request.id()
            );
            vec![
                Notice {
                    audience: Audience::Approvers {
                        groups: state.review_groups().to_vec(),
                    },
                    subject: subject.clone(),
                    body: body.clone(),
                    request_id: Some(request.id().clone()),
                },
                Notice {
                    audience: Audience::Security,
                    subject,
                    body,
                    request_id: Some(request.id().clone()),
                },
            ]
        }
    };
    for notice in &notices {
        notifier.send(notice).await?;
    }
    let marked = versioned(
        || id.to_string(),
        || async move {
            let Some(mut request) = store.get(id).await? else {
                return Err(Error::NotFound(id.to_string()));
            };
            let before = state_of(&request);
            if !request.nudge_break_glass(step, now)? {
                return Ok(Attempt::Done(None));
            }
            if !written(store.update(&mut request).await)? {
                return Ok(Attempt::Lost);
            }
            Ok(Attempt::Done(Some((request, before))))
        },
    )
    .await?;
    if let Some((request, before)) = marked {
        trail
            .record(request_event(
                &request, action, "lapse", action, reason, before,
            ))
            .await?;
    }
    Ok(true)
}
