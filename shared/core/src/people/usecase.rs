//! Keeping the directory from HR: every HR event Lapse accepts updates the
//! person's record, by a versioned write, audited with before and after.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::access::usecase::{Attempt, AuditTrail, versioned, written};
use crate::audit::AuditDraft;
use crate::error::Error;
use crate::people::person::{Applied, Person};
use crate::people::ports::PeopleStore;
use crate::ports::AuditLog;
use crate::revocation::hr::HrEvent;

/// What an HR event did to the directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Recorded {
    /// These fields of the person's record now hold the event's values.
    Updated { fields: Vec<&'static str> },
    /// The event was recorded before (a duplicate delivery or a retry).
    AlreadyRecorded,
    /// Every field the event would set already reflects a newer event: nothing
    /// changed.
    Stale,
}

/// Applies an HR event to its person's record (made on their first event), and
/// audits it on the person's chain (`user#<name>`) under a key named for the
/// event, so a duplicate or a retry audits once: `person.updated` with the
/// changed fields before and after, or `person.stale` for an event older than
/// what the record reflects.
pub async fn record_hr_event(
    people: &impl PeopleStore,
    trail: &AuditTrail<'_, impl AuditLog>,
    event: &HrEvent,
    now: DateTime<Utc>,
) -> Result<Recorded, Error> {
    let user = &event.user.username;
    let (before, after, applied) = versioned(
        || format!("the directory record of {user}"),
        || async move {
            let stored = people.get(user).await?;
            let mut person = stored.clone().unwrap_or_else(|| Person::new(user.clone()));
            let applied = person.apply(event);
            if let Applied::Changed { .. } = applied
                && !written(people.put(&mut person).await)?
            {
                return Ok(Attempt::Lost);
            }
            Ok(Attempt::Done((stored, person, applied)))
        },
    )
    .await?;
    let key = format!("person:{}", event.event_id);
    let (action, reason, before_json, after_json, outcome) = match applied {
        Applied::Changed { fields } => (
            "person.updated",
            format!(
                "{} from HR event {}: {}",
                event.event_type.as_str().replace('_', " "),
                event.event_id,
                if fields.is_empty() {
                    "no value changed (the record now cites this newer event)".to_owned()
                } else {
                    format!("{} changed", fields.join(", "))
                }
            ),
            before.as_ref().map_or(Value::Null, |b| b.values(&fields)),
            after.values(&fields),
            Recorded::Updated { fields },
        ),
        // Recorded before; if a crash came between the write and its event, the
        // event is written now (the key makes it once), without the earlier values.
        Applied::Duplicate { fields } => (
            "person.updated",
            format!(
                "{} from HR event {} (recorded on a retry: the earlier values were not kept): {}",
                event.event_type.as_str().replace('_', " "),
                event.event_id,
                fields.join(", ")
            ),
            Value::Null,
            after.values(&fields),
            Recorded::AlreadyRecorded,
        ),
        Applied::Stale => (
            "person.stale",
            format!(
                "HR event {} ({}, {}) is older than what the record reflects: nothing changed",
                event.event_id,
                event.event_type.as_str().replace('_', " "),
                event.timestamp.to_rfc3339()
            ),
            Value::Null,
            json!({ "newest": after.newest() }),
            Recorded::Stale,
        ),
    };
    trail
        .record(AuditDraft {
            chain: format!("user#{user}"),
            key,
            actor: "hr".into(),
            action: action.into(),
            subject: user.to_string(),
            reason,
            before: before_json,
            after: after_json,
            at: now,
        })
        .await?;
    Ok(outcome)
}
