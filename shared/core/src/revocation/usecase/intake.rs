//! Events in: an HR delivery received (claimed once, then put on the bus), the
//! case an event calls for, and opening it (a duplicate finds the same case).

use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::policy::Catalog;
use crate::ports::{Audience, Notice, Notifier, StoreError};
use crate::revocation::case::RevocationError;
use crate::revocation::case::{RevocationCase, Trigger, TriggerSource};
use crate::revocation::hr::{HrEvent, HrEventType};
use crate::revocation::plan::RevocationKind;
use crate::revocation::ports::{CaseStore, Claim, EventBus, EventClaims};

use super::{Context, HasCases, HasClaims, HasNotifier, HasTrail, case_event, load};

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
    let receipt = match claims
        .claim(&event.event_id, &body_hash, &event.content_hash(), now)
        .await?
    {
        // Not a lost race: retrying the same delivery can never succeed.
        Claim::Mismatch => {
            return Err(RevocationError::EventMismatch {
                event_id: event.event_id.clone(),
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

pub(super) fn start_of(date: chrono::NaiveDate) -> DateTime<Utc> {
    date.and_time(NaiveTime::MIN).and_utc()
}

/// Before a case is opened for an event from the bus: the webhook must have
/// claimed this event id with this content. Anything else on the bus (an
/// in-account principal's `PutEvents`, a `StartExecution` with a made-up event)
/// is refused, and security is told, since something other than the webhook
/// tried to start a revocation.
pub async fn ensure_claimed(
    p: &(impl HasClaims + HasNotifier),
    event: &HrEvent,
) -> Result<(), Error> {
    let claimed = p.claims().claimed_content(&event.event_id).await?;
    if claimed.as_deref() == Some(event.content_hash().as_str()) {
        return Ok(());
    }
    let what = if claimed.is_some() {
        "whose content differs from what the webhook claimed"
    } else {
        "that the webhook never claimed"
    };
    p.notifier()
        .send(&Notice {
            audience: Audience::Security,
            subject: format!(
                "Refused an HR event the webhook did not accept: {}",
                event.event_id
            ),
            body: format!(
                "A {} event for {} ({what}) reached the revocation workflow and was refused. \
                 Something other than the HR webhook put it on the bus or started the workflow.",
                event.event_type.as_str(),
                event.user.username
            ),
            request_id: None,
        })
        .await?;
    Err(RevocationError::Unclaimed {
        event_id: event.event_id.clone(),
    }
    .into())
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

/// Opens a case (or finds the one this trigger already opened).
pub async fn open(
    p: &(impl HasCases + HasTrail + Context),
    mut case: RevocationCase,
    now: DateTime<Utc>,
) -> Result<RevocationCase, Error> {
    if let RevocationKind::Partial { new_role } = &case.kind()
        && p.catalog().role(new_role).is_none()
    {
        return Err(RevocationError::UnknownRole {
            role: new_role.clone(),
        }
        .into());
    }
    let case = match p.cases().create(&mut case).await {
        Ok(()) => case,
        // Opened before; its event is recorded again in case a crash lost it (the
        // key makes it once).
        Err(StoreError::AlreadyExists(_)) => {
            let stored = load(p, case.id()).await?;
            if !stored.same_ask(&case) {
                return Err(RevocationError::CaseMismatch {
                    case: stored.id().to_string(),
                    event_id: case.trigger().event_id.clone(),
                }
                .into());
            }
            stored
        }
        Err(other) => return Err(other.into()),
    };
    p.trail()
        .record(case_event(
            &case,
            "received",
            "revocation.received",
            case.trigger().reason.clone(),
            Value::Null,
            json!({ "case": case.id(), "kind": case.kind(), "trigger": case.trigger(), "effective_at": case.effective_at() }),
            now,
        ))
        .await?;
    Ok(case)
}
