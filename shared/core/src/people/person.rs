//! A person as HR describes them, one field at a time.
//!
//! Every field remembers where its value came from and when (the HR event's own
//! `timestamp` and its id). An event sets a field only if it is newer than what the
//! field already reflects, so events delivered late, twice or out of order leave
//! each field at the value of the newest event that set it, whatever the order of
//! arrival. An event older than every field it would set changes nothing.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::identity::PrincipalId;
use crate::revocation::hr::{HrEvent, HrEventType};

/// Where a person stands with the organisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Hired, starting later.
    PendingStart,
    Active,
    Suspended,
    Terminated,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::PendingStart => "pending start",
            Status::Active => "active",
            Status::Suspended => "suspended",
            Status::Terminated => "terminated",
        }
    }
}

/// How a person is engaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmploymentType {
    Employee,
    Contractor,
}

/// Where a field's value came from: the HR event, by its own time and id. Ordered
/// by time, then id, so two events at the same instant still have one winner.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Provenance {
    pub at: DateTime<Utc>,
    /// `hr-event:<event id>`.
    pub source: String,
}

impl Provenance {
    pub fn of(event: &HrEvent) -> Self {
        Self {
            at: event.timestamp,
            source: format!("hr-event:{}", event.event_id),
        }
    }
}

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field<T> {
    pub value: T,
    pub from: Provenance,
}

/// One person's record in the directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The IAM user name Lapse manages for them.
    pub username: PrincipalId,
    pub employee_id: Option<Field<String>>,
    pub email: Option<Field<String>>,
    /// A role of the catalog.
    pub job_role: Option<Field<String>>,
    pub department: Option<Field<String>>,
    /// The manager of record (a username).
    pub manager: Option<Field<String>>,
    pub employment_type: Option<Field<EmploymentType>>,
    pub status: Option<Field<Status>>,
    pub start_date: Option<Field<NaiveDate>>,
    pub contract_end: Option<Field<NaiveDate>>,
    /// The stored version this value was read at (0: never stored).
    #[serde(default)]
    pub version: u64,
}

/// What an event did to a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The record takes the event (to be written): these fields changed value;
    /// others may only now cite this newer event for the value they had.
    Changed { fields: Vec<&'static str> },
    /// Applied before (a duplicate delivery, or a retry): these fields still hold
    /// its values, and nothing changed now.
    Duplicate { fields: Vec<&'static str> },
    /// Every field the event sets already reflects something newer; nothing changed.
    Stale,
}

impl Person {
    pub fn new(username: PrincipalId) -> Self {
        Self {
            username,
            employee_id: None,
            email: None,
            job_role: None,
            department: None,
            manager: None,
            employment_type: None,
            status: None,
            start_date: None,
            contract_end: None,
            version: 0,
        }
    }

    pub fn status(&self) -> Option<Status> {
        self.status.as_ref().map(|f| f.value)
    }

    pub fn job_role(&self) -> Option<&str> {
        self.job_role.as_ref().map(|f| f.value.as_str())
    }

    pub fn manager(&self) -> Option<&str> {
        self.manager.as_ref().map(|f| f.value.as_str())
    }

    /// Applies an HR event about this person, field by field (see the module).
    pub fn apply(&mut self, event: &HrEvent) -> Applied {
        let from = Provenance::of(event);
        let mut changed = Vec::new();
        let mut refreshed = false;
        let mut offer = |name: &'static str, offer: Offer| match offer {
            Offer::Changed => changed.push(name),
            Offer::Refreshed => refreshed = true,
            Offer::Kept => {}
        };
        let user = &event.user;
        let meta = &event.metadata;
        if let Some(id) = &user.employee_id {
            offer("employee_id", set(&mut self.employee_id, id.clone(), &from));
        }
        if let Some(email) = &user.email {
            offer("email", set(&mut self.email, email.clone(), &from));
        }
        if let Some(department) = &meta.department {
            offer(
                "department",
                set(&mut self.department, department.clone(), &from),
            );
        }
        if let Some(manager) = &meta.manager {
            offer("manager", set(&mut self.manager, manager.clone(), &from));
        }
        let day = event.timestamp.date_naive();
        match event.event_type {
            HrEventType::UserHired => {
                if let Some(role) = &meta.new_role {
                    offer("job_role", set(&mut self.job_role, role.clone(), &from));
                }
                let start = meta.start_date.unwrap_or(day);
                offer("start_date", set(&mut self.start_date, start, &from));
                let status = if start > day {
                    Status::PendingStart
                } else {
                    Status::Active
                };
                offer("status", set(&mut self.status, status, &from));
                if let Some(kind) = meta.employment_type {
                    offer(
                        "employment_type",
                        set(&mut self.employment_type, kind, &from),
                    );
                }
            }
            HrEventType::UserRoleChanged => {
                if let Some(role) = &meta.new_role {
                    offer("job_role", set(&mut self.job_role, role.clone(), &from));
                }
            }
            HrEventType::UserSuspended | HrEventType::PolicyViolation => {
                offer("status", set(&mut self.status, Status::Suspended, &from));
            }
            HrEventType::UserTerminated => {
                offer("status", set(&mut self.status, Status::Terminated, &from));
            }
            HrEventType::ContractorExpired => {
                offer(
                    "employment_type",
                    set(&mut self.employment_type, EmploymentType::Contractor, &from),
                );
                let end = meta.contract_end.or(user.termination_date);
                if let Some(end) = end {
                    offer("contract_end", set(&mut self.contract_end, end, &from));
                }
                // Terminated once the contract has ended; announced ahead, the
                // end date stands until then.
                if end.is_none_or(|end| end <= day) {
                    offer("status", set(&mut self.status, Status::Terminated, &from));
                }
            }
        }
        if !changed.is_empty() || refreshed {
            return Applied::Changed { fields: changed };
        }
        let fields = self.fields_from(&from);
        if fields.is_empty() {
            Applied::Stale
        } else {
            Applied::Duplicate { fields }
        }
    }

    /// Each field's name and where its value came from (`None`: never set).
    pub fn provenances(&self) -> [(&'static str, Option<&Provenance>); 9] {
        [
            ("employee_id", self.employee_id.as_ref().map(|f| &f.from)),
            ("email", self.email.as_ref().map(|f| &f.from)),
            ("job_role", self.job_role.as_ref().map(|f| &f.from)),
            ("department", self.department.as_ref().map(|f| &f.from)),
            ("manager", self.manager.as_ref().map(|f| &f.from)),
            (
                "employment_type",
                self.employment_type.as_ref().map(|f| &f.from),
            ),
            ("status", self.status.as_ref().map(|f| &f.from)),
            ("start_date", self.start_date.as_ref().map(|f| &f.from)),
            ("contract_end", self.contract_end.as_ref().map(|f| &f.from)),
        ]
    }

    /// The fields whose value came from `from`.
    pub fn fields_from(&self, from: &Provenance) -> Vec<&'static str> {
        self.provenances()
            .into_iter()
            .filter(|(_, p)| *p == Some(from))
            .map(|(name, _)| name)
            .collect()
    }

    /// The newest event the record reflects.
    pub fn newest(&self) -> Option<&Provenance> {
        self.provenances().into_iter().filter_map(|(_, p)| p).max()
    }

    /// The named fields' values (and where each came from), for the audit.
    pub fn values(&self, fields: &[&str]) -> serde_json::Value {
        let all = serde_json::to_value(self).unwrap_or_default();
        let mut out = serde_json::Map::new();
        for name in fields {
            out.insert((*name).to_owned(), all[*name].clone());
        }
        serde_json::Value::Object(out)
    }
}

/// What offering a field a value did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Offer {
    /// The field reflects this event or a newer one: left alone.
    Kept,
    /// Same value, now from this (newer) event.
    Refreshed,
    Changed,
}

/// Sets `slot` to `value` from `from` unless the slot already reflects `from` or
/// something newer.
fn set<T: PartialEq>(slot: &mut Option<Field<T>>, value: T, from: &Provenance) -> Offer {
    if slot.as_ref().is_some_and(|f| f.from >= *from) {
        return Offer::Kept;
    }
    let same = slot.as_ref().is_some_and(|f| f.value == value);
    *slot = Some(Field {
        value,
        from: from.clone(),
    });
    if same {
        Offer::Refreshed
    } else {
        Offer::Changed
    }
}
