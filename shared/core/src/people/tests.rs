use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use super::memory::MemoryPeople;
use super::person::{EmploymentType, Person, Status};
use super::ports::PeopleStore;
use super::usecase::{Recorded, record_hr_event};
use crate::identity::PrincipalId;
use crate::memory::MemoryAuditLog;
use crate::revocation::hr::HrEvent;
use crate::testing::{block_on, monday_at};

/// An HR event as the webhook parses it.
fn event(
    kind: &str,
    id: &str,
    at: DateTime<Utc>,
    user: &str,
    metadata: serde_json::Value,
) -> HrEvent {
    HrEvent::parse(
        serde_json::json!({
            "event_type": kind,
            "event_id": id,
            "timestamp": at,
            "user": { "username": user, "email": format!("{user}@example.com") },
            "metadata": metadata,
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

struct Directory {
    people: MemoryPeople,
    log: MemoryAuditLog,
    signer: crate::audit::AuditSigner,
    hash: crate::policy::PolicyHash,
}

impl Directory {
    fn new() -> Self {
        Self {
            people: MemoryPeople::default(),
            log: MemoryAuditLog::default(),
            signer: crate::audit::AuditSigner::from_seed_hex("k", &"44".repeat(32)).unwrap(),
            hash: crate::testing::catalog().hash().clone(),
        }
    }
    fn record(&self, event: &HrEvent) -> Recorded {
        let trail = crate::access::usecase::AuditTrail {
            log: &self.log,
            signer: &self.signer,
            policy_hash: &self.hash,
        };
        block_on(record_hr_event(&self.people, &trail, event, monday_at(12))).unwrap()
    }
    fn person(&self, user: &str) -> Person {
        block_on(self.people.get(&PrincipalId::new(user).unwrap()))
            .unwrap()
            .unwrap()
    }
    fn actions(&self, user: &str) -> Vec<(String, String)> {
        block_on(crate::ports::AuditLog::chain(
            &self.log,
            &format!("user#{user}"),
        ))
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.reason))
        .collect()
    }
}

#[test]
fn a_hire_then_a_move_fill_the_record_and_an_older_event_changes_nothing() {
    let d = Directory::new();
    let hire = event(
        "user_hired",
        "evt-1",
        monday_at(9),
        "nina",
        serde_json::json!({
            "department": "Platform", "manager": "pgarcia", "new_role": "engineer",
            "start_date": "2026-12-14", "employment_type": "employee",
        }),
    );
    assert!(matches!(d.record(&hire), Recorded::Updated { .. }));
    let nina = d.person("nina");
    assert_eq!(nina.status(), Some(Status::PendingStart));
    assert_eq!(nina.job_role(), Some("engineer"));
    assert_eq!(nina.manager(), Some("pgarcia"));
    assert_eq!(
        nina.employment_type.as_ref().map(|f| f.value),
        Some(EmploymentType::Employee)
    );
    assert_eq!(nina.status.as_ref().unwrap().from.source, "hr-event:evt-1");

    let moved = event(
        "user_role_changed",
        "evt-3",
        monday_at(11),
        "nina",
        serde_json::json!({ "new_role": "analyst", "department": "Finance" }),
    );
    // The email is the same: refreshed, not changed.
    assert_eq!(
        d.record(&moved),
        Recorded::Updated {
            fields: vec!["department", "job_role"]
        }
    );
    // Delivered late: an earlier move to another role changes nothing, and says so.
    let late = event(
        "user_role_changed",
        "evt-2",
        monday_at(10),
        "nina",
        serde_json::json!({ "new_role": "manager" }),
    );
    assert_eq!(d.record(&late), Recorded::Stale);
    let nina = d.person("nina");
    assert_eq!(nina.job_role(), Some("analyst"));
    assert_eq!(
        nina.status(),
        Some(Status::PendingStart),
        "untouched by the move"
    );
    let actions = d.actions("nina");
    assert_eq!(
        actions.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ["person.updated", "person.updated", "person.stale"]
    );
    assert!(
        actions[2].1.contains("evt-2")
            && actions[2].1.contains("older than what the record reflects"),
        "{actions:?}"
    );
}

#[test]
fn a_duplicate_delivery_has_one_effect_and_one_audit_event() {
    let d = Directory::new();
    let gone = event(
        "user_terminated",
        "evt-9",
        monday_at(9),
        "omar",
        serde_json::json!({}),
    );
    assert!(matches!(d.record(&gone), Recorded::Updated { .. }));
    let version = d.person("omar").version;
    assert_eq!(d.record(&gone), Recorded::AlreadyRecorded);
    assert_eq!(d.person("omar").version, version, "not written again");
    assert_eq!(d.person("omar").status(), Some(Status::Terminated));
    assert_eq!(d.actions("omar").len(), 1);
}

#[test]
fn a_contract_announced_ahead_ends_the_person_only_from_its_end_date() {
    let d = Directory::new();
    let ahead = event(
        "contractor_expired",
        "evt-c1",
        monday_at(9),
        "cleo",
        serde_json::json!({ "contract_end": "2027-01-31" }),
    );
    d.record(&ahead);
    let cleo = d.person("cleo");
    assert_eq!(cleo.status(), None);
    assert_eq!(
        cleo.contract_end.as_ref().map(|f| f.value.to_string()),
        Some("2027-01-31".to_owned())
    );
    let ended = event(
        "contractor_expired",
        "evt-c2",
        monday_at(10),
        "cleo",
        serde_json::json!({ "contract_end": "2026-11-20" }),
    );
    d.record(&ended);
    assert_eq!(d.person("cleo").status(), Some(Status::Terminated));
}

/// One of a few events about one person, at one of a few instants.
fn arb_event() -> impl Strategy<Value = HrEvent> {
    let kinds = prop_oneof![
        Just((
            "user_hired",
            serde_json::json!({ "new_role": "engineer", "manager": "mia" })
        )),
        Just((
            "user_hired",
            serde_json::json!({ "new_role": "analyst", "start_date": "2027-02-01" })
        )),
        Just((
            "user_role_changed",
            serde_json::json!({ "new_role": "analyst", "department": "Finance" })
        )),
        Just((
            "user_role_changed",
            serde_json::json!({ "new_role": "engineer", "manager": "sam" })
        )),
        Just(("user_suspended", serde_json::json!({}))),
        Just((
            "user_terminated",
            serde_json::json!({ "department": "Gone" })
        )),
        Just((
            "contractor_expired",
            serde_json::json!({ "contract_end": "2026-11-30" })
        )),
    ];
    (kinds, 0i64..6, 0u32..40).prop_map(|((kind, metadata), minutes, id)| {
        event(
            kind,
            &format!("evt-{id}"),
            monday_at(9) + TimeDelta::minutes(minutes),
            "pat",
            metadata,
        )
    })
}

proptest! {
    /// Delivered in any order, any number of times: the record is the same, each
    /// field holding the value of the newest event that sets it.
    #[test]
    fn the_record_does_not_depend_on_the_order_or_repetition_of_delivery(
        events in proptest::collection::vec(arb_event(), 1..12),
        order in proptest::collection::vec(any::<proptest::sample::Index>(), 0..30),
    ) {
        // Ids name events: keep the first of any two that share one.
        let mut unique: Vec<HrEvent> = Vec::new();
        for e in events {
            if !unique.iter().any(|u| u.event_id == e.event_id) {
                unique.push(e);
            }
        }
        // The reference: each event once, oldest first.
        let mut sorted = unique.clone();
        sorted.sort_by(|a, b| (a.timestamp, &a.event_id).cmp(&(b.timestamp, &b.event_id)));
        let mut expected = Person::new(PrincipalId::new("pat").unwrap());
        for e in &sorted {
            expected.apply(e);
        }
        // Delivered: every event once in reverse, then repeats in any order.
        let d = Directory::new();
        for e in unique.iter().rev() {
            d.record(e);
        }
        for i in order {
            d.record(&unique[i.index(unique.len())]);
        }
        let mut got = d.person("pat");
        got.version = 0;
        prop_assert_eq!(got, expected);
        // One audit event per distinct event.
        prop_assert_eq!(d.actions("pat").len(), unique.len());
    }
}
