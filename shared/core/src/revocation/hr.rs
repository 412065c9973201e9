//! HR events: the payload HR systems post, parsed strictly where it matters
//! (`event_type`, `event_id`, `timestamp`, `user.username`) and leniently elsewhere
//! (HR systems add fields; they are kept, not rejected).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identity::PrincipalId;

/// The HR events Lapse acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HrEventType {
    UserTerminated,
    UserRoleChanged,
    UserSuspended,
    ContractorExpired,
    /// Recorded in the directory of people; revokes nothing.
    UserHired,
    /// From security tooling: immediate suspension pending investigation.
    PolicyViolation,
}

impl HrEventType {
    pub const ALL: [HrEventType; 6] = [
        HrEventType::UserTerminated,
        HrEventType::UserRoleChanged,
        HrEventType::UserSuspended,
        HrEventType::ContractorExpired,
        HrEventType::UserHired,
        HrEventType::PolicyViolation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HrEventType::UserTerminated => "user_terminated",
            HrEventType::UserRoleChanged => "user_role_changed",
            HrEventType::UserSuspended => "user_suspended",
            HrEventType::ContractorExpired => "contractor_expired",
            HrEventType::UserHired => "user_hired",
            HrEventType::PolicyViolation => "policy_violation",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HrUser {
    pub username: PrincipalId,
    #[serde(default)]
    pub employee_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub termination_date: Option<NaiveDate>,
    #[serde(default)]
    pub termination_reason: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HrMetadata {
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub manager: Option<String>,
    #[serde(default)]
    pub last_working_day: Option<NaiveDate>,
    #[serde(default)]
    pub new_role: Option<String>,
    /// Contract end for `contractor_expired`.
    #[serde(default)]
    pub contract_end: Option<NaiveDate>,
    /// `true` to skip the role-change transition period.
    #[serde(default)]
    pub effective_immediately: Option<bool>,
    /// A hire's first day (`user_hired`; the event's own day when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    /// `employee` or `contractor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employment_type: Option<crate::people::person::EmploymentType>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A validated HR event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HrEvent {
    pub event_type: HrEventType,
    pub event_id: String,
    pub timestamp: DateTime<Utc>,
    pub user: HrUser,
    #[serde(default)]
    pub metadata: HrMetadata,
}

impl HrEvent {
    /// The hash of the parsed event's canonical JSON: the webhook claims an event
    /// id with it, and the revocation workflow refuses an event from the bus whose
    /// content the webhook did not claim (someone else put it there).
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(canonical))
    }
}

/// Why an HR payload was refused (a 400 with this message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HrEventError {
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("unknown event_type `{found}` (expected one of: {})", expected())]
    UnknownType { found: String },
    #[error("field `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

fn expected() -> String {
    HrEventType::ALL.map(HrEventType::as_str).join(", ")
}

fn valid_event_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
}

impl HrEvent {
    /// Parses and validates a payload, naming the first problem precisely.
    pub fn parse(body: &[u8]) -> Result<Self, HrEventError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| HrEventError::Json(e.to_string()))?;
        let Some(object) = value.as_object() else {
            return Err(HrEventError::Json(
                "the payload must be a JSON object".into(),
            ));
        };
        match object.get("event_type").and_then(Value::as_str) {
            None => {
                return Err(HrEventError::Invalid {
                    field: "event_type",
                    reason: "is required and must be a string".into(),
                });
            }
            Some(t) if !HrEventType::ALL.iter().any(|k| k.as_str() == t) => {
                return Err(HrEventError::UnknownType {
                    found: t.to_owned(),
                });
            }
            Some(_) => {}
        }
        fn field<T: serde::de::DeserializeOwned>(
            object: &serde_json::Map<String, Value>,
            name: &'static str,
            required: bool,
        ) -> Result<Option<T>, HrEventError> {
            match object.get(name) {
                None | Some(Value::Null) if required => Err(HrEventError::Invalid {
                    field: name,
                    reason: "is required".into(),
                }),
                None | Some(Value::Null) => Ok(None),
                Some(value) => serde_json::from_value(value.clone())
                    .map(Some)
                    .map_err(|e| HrEventError::Invalid {
                        field: name,
                        reason: e.to_string(),
                    }),
            }
        }
        let event = HrEvent {
            event_type: field(object, "event_type", true)?
                .ok_or(HrEventError::Json("event_type".into()))?,
            event_id: field(object, "event_id", true)?.unwrap_or_default(),
            timestamp: field(object, "timestamp", true)?
                .ok_or(HrEventError::Json("timestamp".into()))?,
            user: field(object, "user", true)?.ok_or(HrEventError::Json("user".into()))?,
            metadata: field(object, "metadata", false)?.unwrap_or_default(),
        };
        if !valid_event_id(&event.event_id) {
            return Err(HrEventError::Invalid {
                field: "event_id",
                reason: "1-128 letters, digits or `._:-`".into(),
            });
        }
        if event.event_type == HrEventType::UserRoleChanged
            && event.metadata.new_role.as_deref().is_none_or(str::is_empty)
        {
            return Err(HrEventError::Invalid {
                field: "metadata.new_role",
                reason: "is required for user_role_changed".into(),
            });
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const TERMINATION: &str =
        include_str!("../../../../events/hr-webhook/termination-body.json");

    #[test]
    fn the_sample_termination_parses() {
        let event = HrEvent::parse(TERMINATION.as_bytes()).unwrap();
        assert_eq!(event.event_type, HrEventType::UserTerminated);
        assert_eq!(event.user.username.as_str(), "jdoe");
        assert!(event.user.termination_date.is_some());
        assert!(
            event.user.other.contains_key("full_name"),
            "extra fields are kept"
        );
    }

    #[test]
    fn problems_are_named_precisely() {
        let cases: &[(&str, &str)] = &[
            ("{not json", "malformed JSON"),
            ("[]", "must be a JSON object"),
            (r#"{"event_id":"e1"}"#, "field `event_type`: is required"),
            (
                r#"{"event_type":"user_promoted"}"#,
                "unknown event_type `user_promoted` (expected one of: user_terminated",
            ),
            (
                r#"{"event_type":"user_terminated","event_id":"e 1","timestamp":"2026-11-23T10:00:00Z","user":{"username":"jdoe"}}"#,
                "field `event_id`",
            ),
            (
                r#"{"event_type":"user_terminated","event_id":"e1","timestamp":"yesterday","user":{"username":"jdoe"}}"#,
                "field `timestamp`",
            ),
            (
                r#"{"event_type":"user_terminated","event_id":"e1","timestamp":"2026-11-23T10:00:00Z","user":{"username":"j doe"}}"#,
                "invalid principal id",
            ),
            (
                r#"{"event_type":"user_role_changed","event_id":"e1","timestamp":"2026-11-23T10:00:00Z","user":{"username":"jdoe"}}"#,
                "metadata.new_role",
            ),
        ];
        for (body, message) in cases {
            let err = HrEvent::parse(body.as_bytes()).unwrap_err();
            assert!(err.to_string().contains(message), "{body}: {err}");
        }
    }
}
