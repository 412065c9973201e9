//! Each revocation kind against the emulator, checking IAM afterwards (not return
//! values), plus idempotency, interruption, overrides, legal hold, restore and the
//! inactivity check.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use aws_sdk_iam::Client as Iam;
use chrono::{TimeDelta, Utc};
use lapse_core::identity::PrincipalId;
use lapse_core::ports::AuditLog;
use lapse_core::revocation::case::CaseStatus;
use lapse_core::revocation::hr::HrEvent;
use lapse_core::revocation::plan::{Lane, SESSION_DENY_POLICY};
use lapse_core::revocation::ports::{Archive, Controls};
use lapse_core::revocation::usecase::{
    Context, HasArchive, HasGrants, HasTrail, apply_lane, case_for, open, restore, run,
    set_controls, snapshot, suspend_inactive, validate,
};

type World = crate::support::Revoking;

async fn world() -> World {
    World::start(&["engineers", "admins", "finance-analysts"]).await
}

/// A user holding a bit of everything.
async fn employee(w: &World, name: &str) -> PrincipalId {
    let user = w.s.user(name);
    let iam = &w.iam;
    w.s.stack.add_users(&[&user]).await.unwrap();
    iam.create_login_profile()
        .user_name(&user)
        .password("Initial-Passw0rd!")
        .send()
        .await
        .unwrap();
    for _ in 0..2 {
        iam.create_access_key()
            .user_name(&user)
            .send()
            .await
            .unwrap();
    }
    iam.upload_ssh_public_key()
        .user_name(&user)
        .ssh_public_key_body("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDDzQeM7wX2rD3tJ5tXcUz6s3X2T6s2tW8r7xH4tC1Fu4Q1m2lL3U7Uo6wJp8c5TrX3pO2p0Cq8l5bO0j4n9dZ3oX2nq8cN3Q5b6qP2n5aT3L0v5xWz7J8a1wX5U9QmE3r2cFh0k4b5nW7tY6sD0zL1qR8aX2eV4bN7mO5pQ9cS3uJ0fH6iK2gL1 test@example")
        .send()
        .await
        .unwrap();
    for group in ["engineers", "admins"] {
        iam.add_user_to_group()
            .user_name(&user)
            .group_name(group)
            .send()
            .await
            .unwrap();
    }
    iam.put_user_policy()
        .user_name(&user)
        .policy_name("legacy-s3")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    for arn in [
        "arn:aws:iam::aws:policy/ReadOnlyAccess",
        "arn:aws:iam::aws:policy/AdministratorAccess",
    ] {
        iam.attach_user_policy()
            .user_name(&user)
            .policy_arn(arn)
            .send()
            .await
            .unwrap();
    }
    PrincipalId::new(user).unwrap()
}

fn hr_event(kind: &str, user: &PrincipalId, extra: serde_json::Value) -> HrEvent {
    let mut body = serde_json::json!({
        "event_type": kind,
        "event_id": lapse_testkit::unique_name("evt"),
        "timestamp": Utc::now().to_rfc3339(),
        "user": {"username": user.as_str(), "employee_id": "E-1", "termination_reason": "test"},
        "metadata": {"manager": "msmith"}
    });
    if let Some(extra) = extra.as_object() {
        for (k, v) in extra {
            body["metadata"][k] = v.clone();
        }
    }
    HrEvent::parse(body.to_string().as_bytes()).unwrap()
}

/// Opens the case an HR event of `kind` about `user` calls for.
async fn open_case(
    w: &World,
    kind: &str,
    user: &PrincipalId,
    now: chrono::DateTime<Utc>,
) -> lapse_core::revocation::case::RevocationCase {
    let case = case_for(
        &hr_event(kind, user, serde_json::json!({})),
        w.r.catalog(),
        now,
    )
    .unwrap();
    open(&w.r, case, now).await.unwrap()
}

struct Iamview {
    login: bool,
    active_keys: usize,
    active_ssh: usize,
    groups: Vec<String>,
    inline: Vec<String>,
    attached: Vec<String>,
}

async fn look(iam: &Iam, user: &PrincipalId) -> Iamview {
    let u = user.as_str();
    let login = iam.get_login_profile().user_name(u).send().await.is_ok();
    let keys = iam.list_access_keys().user_name(u).send().await.unwrap();
    let active_keys = keys
        .access_key_metadata()
        .iter()
        .filter(|k| k.status() == Some(&aws_sdk_iam::types::StatusType::Active))
        .count();
    let ssh = iam
        .list_ssh_public_keys()
        .user_name(u)
        .send()
        .await
        .unwrap();
    let active_ssh = ssh
        .ssh_public_keys()
        .iter()
        .filter(|k| k.status() == &aws_sdk_iam::types::StatusType::Active)
        .count();
    let groups = iam
        .list_groups_for_user()
        .user_name(u)
        .send()
        .await
        .unwrap();
    let inline = iam.list_user_policies().user_name(u).send().await.unwrap();
    let attached = iam
        .list_attached_user_policies()
        .user_name(u)
        .send()
        .await
        .unwrap();
    Iamview {
        login,
        active_keys,
        active_ssh,
        groups: groups
            .groups()
            .iter()
            .map(|g| g.group_name().to_owned())
            .collect(),
        inline: inline.policy_names().to_vec(),
        attached: attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_owned))
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_revokes_everything_once_and_verifies() {
    let w = world().await;
    let user = employee(&w, "jdoe").await;
    let now = Utc::now();
    let event = hr_event("user_terminated", &user, serde_json::json!({}));
    let case = open(&w.r, case_for(&event, w.r.catalog(), now).unwrap(), now)
        .await
        .unwrap();
    let done = run(&w.r, case.id(), now).await.unwrap();
    assert_eq!(done.status(), CaseStatus::Verified, "{:?}", done.residue());

    let after = look(&w.iam, &user).await;
    assert!(!after.login, "console login disabled");
    assert_eq!(
        (after.active_keys, after.active_ssh),
        (0, 0),
        "keys deactivated"
    );
    assert!(after.groups.is_empty(), "{:?}", after.groups);
    assert_eq!(
        after.inline,
        [SESSION_DENY_POLICY],
        "only the session deny remains"
    );
    assert!(after.attached.is_empty());
    let deny = w
        .iam
        .get_user_policy()
        .user_name(user.as_str())
        .policy_name(SESSION_DENY_POLICY)
        .send()
        .await
        .unwrap();
    assert!(
        percent_encoding::percent_decode_str(deny.policy_document())
            .decode_utf8()
            .unwrap()
            .contains("aws:TokenIssueTime")
    );

    // The same HR event again: same case, nothing re-applied, audited once.
    let again = open(&w.r, case_for(&event, w.r.catalog(), now).unwrap(), now)
        .await
        .unwrap();
    assert_eq!(again.id(), case.id());
    let rerun = run(&w.r, case.id(), now).await.unwrap();
    assert_eq!(rerun.applied().len(), done.applied().len());
    let chain =
        w.r.trail()
            .log
            .chain(&format!("user#{user}"))
            .await
            .unwrap();
    let applied: Vec<_> = chain
        .iter()
        .filter(|e| e.action == "revocation.applied")
        .collect();
    assert_eq!(applied.len(), 1, "audited once");
    assert!(applied[0].before["before_state"]["login_profile"] == true);
    let verified: Vec<_> = chain
        .iter()
        .filter(|e| e.action == "revocation.verified")
        .collect();
    assert_eq!(verified.len(), 1, "verified once");
    assert!(verified[0].after["after_state"]["login_profile"] == false);
    assert!(verified[0].after["after_state"]["exists"] == true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_change_removes_only_the_excess() {
    let w = world().await;
    let user = employee(&w, "rchange").await;
    w.iam
        .add_user_to_group()
        .user_name(user.as_str())
        .group_name("finance-analysts")
        .send()
        .await
        .unwrap();
    let now = Utc::now();
    let event = hr_event(
        "user_role_changed",
        &user,
        serde_json::json!({"new_role": "analyst", "effective_immediately": true}),
    );
    let case = open(&w.r, case_for(&event, w.r.catalog(), now).unwrap(), now)
        .await
        .unwrap();
    assert_eq!(
        run(&w.r, case.id(), now).await.unwrap().status(),
        CaseStatus::Verified
    );
    let after = look(&w.iam, &user).await;
    assert_eq!(after.groups, ["finance-analysts"]);
    assert_eq!(after.attached, ["arn:aws:iam::aws:policy/ReadOnlyAccess"]);
    assert!(
        after.login && after.active_keys == 2,
        "credentials stay on a role change"
    );

    // Without `effective_immediately`, the transition period applies.
    let later = case_for(
        &hr_event(
            "user_role_changed",
            &user,
            serde_json::json!({"new_role": "sales"}),
        ),
        w.r.catalog(),
        now,
    )
    .unwrap();
    assert_eq!(later.effective_at() - now, TimeDelta::hours(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspension_and_contract_end() {
    let w = world().await;
    let user = employee(&w, "susp").await;
    let now = Utc::now();
    let case = open_case(&w, "user_suspended", &user, now).await;
    assert_eq!(
        run(&w.r, case.id(), now).await.unwrap().status(),
        CaseStatus::Verified
    );
    let after = look(&w.iam, &user).await;
    assert!(!after.login && after.active_keys == 0 && after.active_ssh == 0);
    assert_eq!(
        after.groups.len(),
        2,
        "a suspension keeps standing permissions"
    );

    let contractor = employee(&w, "contr").await;
    let end = (now + TimeDelta::days(3)).date_naive();
    let event = hr_event(
        "contractor_expired",
        &contractor,
        serde_json::json!({"contract_end": end.to_string()}),
    );
    let case = open(&w.r, case_for(&event, w.r.catalog(), now).unwrap(), now)
        .await
        .unwrap();
    assert_eq!(
        case.effective_at().date_naive(),
        end,
        "deactivated on the end date"
    );
    let early = run(&w.r, case.id(), now).await.unwrap();
    assert_eq!(
        early.status(),
        CaseStatus::Received,
        "nothing happens before the end date"
    );
    assert!(look(&w.iam, &contractor).await.login);
    let due = case.effective_at() + TimeDelta::minutes(1);
    assert_eq!(
        run(&w.r, case.id(), due).await.unwrap().status(),
        CaseStatus::Verified
    );
    assert!(!look(&w.iam, &contractor).await.login);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_revocation_completes_when_re_driven() {
    let w = world().await;
    let user = employee(&w, "intr").await;
    let now = Utc::now();
    let case = open_case(&w, "user_terminated", &user, now).await;
    // Half a run: credentials gone, then the worker dies before permissions.
    assert!(validate(&w.r, case.id(), now).await.unwrap().proceed);
    snapshot(&w.r, case.id(), now).await.unwrap();
    apply_lane(&w.r, case.id(), Lane::Credentials, now)
        .await
        .unwrap();
    let half = look(&w.iam, &user).await;
    assert!(!half.login && half.groups.len() == 2);

    let done = run(&w.r, case.id(), now + TimeDelta::seconds(5))
        .await
        .unwrap();
    assert_eq!(done.status(), CaseStatus::Verified, "{:?}", done.residue());
    assert!(look(&w.iam, &user).await.groups.is_empty());
    let before = done.before().as_ref().unwrap();
    assert!(
        before.login_profile && before.groups.len() == 2,
        "the before-state is the original one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_hold_back_and_legal_hold_keeps_the_archive() {
    let w = world().await;
    let held = employee(&w, "held").await;
    let now = Utc::now();
    set_controls(
        &w.r,
        &held,
        |c: &mut Controls| {
            c.override_reason = Some("INC-9: investigation needs the account live".into());
        },
        "security decision INC-9",
        "sam",
        now,
    )
    .await
    .unwrap();
    let case = open_case(&w, "user_terminated", &held, now).await;
    let result = run(&w.r, case.id(), now).await.unwrap();
    assert_eq!(result.status(), CaseStatus::Held);
    assert!(result.held_reason().as_deref().unwrap().contains("INC-9"));
    assert!(look(&w.iam, &held).await.login, "nothing was touched");

    let kept = employee(&w, "lhold").await;
    set_controls(
        &w.r,
        &kept,
        |c: &mut Controls| c.legal_hold = true,
        "litigation LIT-4",
        "legal",
        now,
    )
    .await
    .unwrap();
    let case = open_case(&w, "user_terminated", &kept, now).await;
    assert_eq!(
        run(&w.r, case.id(), now).await.unwrap().status(),
        CaseStatus::Verified
    );
    let dynamo = aws_sdk_dynamodb::Client::new(&w.s.stack.sdk);
    let items = dynamo
        .query()
        .table_name(&w.s.stack.config.revocations_table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :a)")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("user#{kept}")),
        )
        .expression_attribute_values(
            ":a",
            aws_sdk_dynamodb::types::AttributeValue::S("archive#".into()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(items.items().len(), 1);
    assert!(
        !items.items()[0].contains_key("ttl"),
        "under legal hold the before-state does not expire"
    );
    let other = employee(&w, "nohold").await;
    let case = open_case(&w, "user_terminated", &other, now).await;
    run(&w.r, case.id(), now).await.unwrap();
    let items = dynamo
        .query()
        .table_name(&w.s.stack.config.revocations_table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :a)")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("user#{other}")),
        )
        .expression_attribute_values(
            ":a",
            aws_sdk_dynamodb::types::AttributeValue::S("archive#".into()),
        )
        .send()
        .await
        .unwrap();
    let ttl: i64 = items.items()[0]["ttl"].as_n().unwrap().parse().unwrap();
    assert!(
        (ttl - (now + TimeDelta::days(90)).timestamp()).abs() < 5,
        "archived for 90 days"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_from_the_archived_before_state_needs_an_approval() {
    let w = world().await;
    let user = employee(&w, "rest").await;
    let now = Utc::now();
    let case = open_case(&w, "user_terminated", &user, now).await;
    run(&w.r, case.id(), now).await.unwrap();
    assert!(
        restore(&w.r, &user, now, " ", "operator", now)
            .await
            .is_err(),
        "an approval reference is required"
    );
    let restored = restore(
        &w.r,
        &user,
        now + TimeDelta::seconds(1),
        "CHG-77",
        "operator",
        now,
    )
    .await
    .unwrap();
    assert!(!restored.restored.is_empty());
    let after = look(&w.iam, &user).await;
    assert!(after.login && after.active_keys == 2 && after.active_ssh == 1);
    assert_eq!(after.groups.len(), 2);
    assert!(!after.inline.contains(&SESSION_DENY_POLICY.to_owned()));
    assert_eq!(w.r.archive().snapshots(&user).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactive_users_from_the_credential_report_are_suspended() {
    let w = world().await;
    let user = employee(&w, "idle").await;
    let iam = &w.iam;
    iam.generate_credential_report().send().await.unwrap();
    let report = iam.get_credential_report().send().await.unwrap();
    let csv = String::from_utf8(report.content().unwrap().as_ref().to_vec()).unwrap();
    // Nobody has used anything; 100 days from now, everyone is past 90 days.
    let later = Utc::now() + TimeDelta::days(100);
    let (cases, _) = suspend_inactive(&w.r, &csv, later).await.unwrap();
    let mine = cases
        .iter()
        .find(|c| c.user() == &user)
        .expect("the idle user is found");
    assert_eq!(
        run(&w.r, mine.id(), later).await.unwrap().status(),
        CaseStatus::Verified
    );
    assert!(!look(&w.iam, &user).await.login);
    assert!(
        suspend_inactive(&w.r, &csv, Utc::now())
            .await
            .unwrap()
            .0
            .iter()
            .all(|c| c.user() != &user),
        "recent users are not touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_ends_live_jit_grants_through_the_lifecycle() {
    let w = world().await;
    let dana = w.s.as_user("dana");
    let created = dana
        .request("billing-reports-read", Some("30m"), "month end", None)
        .await
        .unwrap();
    let rid = crate::support::id(&created);
    w.s.provisioned(&dana, &rid, "billing-reports-read", "dana")
        .await;
    let user = PrincipalId::new(w.s.user("dana")).unwrap();
    let now = Utc::now();
    let case = open_case(&w, "user_terminated", &user, now).await;
    let done = run(&w.r, case.id(), now).await.unwrap();
    assert_eq!(done.status(), CaseStatus::Verified, "{:?}", done.residue());
    assert!(
        done.applied().iter().any(|a| a.lane == Lane::Grants),
        "{:?}",
        done.applied()
    );
    // (dana herself is now refused by the API: read the grant from the store.)
    let grant = lapse_core::ports::RequestStore::get(
        w.r.grants().store,
        &lapse_core::access::request::RequestId::parse(&rid).unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        grant.status(),
        lapse_core::access::request::Status::Verified
    );
    assert_eq!(
        grant.revoke_cause(),
        Some(lapse_core::access::request::RevokeCause::RightsRevocation)
    );
    assert_eq!(dana.get(&rid).await.unwrap_err().status(), Some(403));
    assert!(
        look(&w.iam, &user)
            .await
            .inline
            .iter()
            .all(|p| p == SESSION_DENY_POLICY),
        "the grant's policy is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_end_grace_is_at_most_the_policy_period_and_used_once() {
    let w = world().await;
    let contractor = employee(&w, "grace").await;
    let now = Utc::now();
    let end = (now + TimeDelta::days(2)).date_naive();
    let event = hr_event(
        "contractor_expired",
        &contractor,
        serde_json::json!({"contract_end": end.to_string()}),
    );
    let case = open(&w.r, case_for(&event, w.r.catalog(), now).unwrap(), now)
        .await
        .unwrap();
    let postpone = |days: i64, approval: &'static str| {
        let (w, contractor) = (&w, contractor.clone());
        async move {
            lapse_core::revocation::usecase::postpone(
                &w.r,
                &contractor,
                TimeDelta::days(days),
                approval,
                "operator",
                now,
            )
            .await
        }
    };
    assert!(
        postpone(8, "CHG-1").await.is_err(),
        "longer than the 7-day grace"
    );
    assert!(
        postpone(3, " ").await.is_err(),
        "an approval reference is required"
    );
    let moved = postpone(7, "CHG-2").await.unwrap();
    assert_eq!(
        moved[0].effective_at() - case.effective_at(),
        TimeDelta::days(7)
    );
    assert!(
        postpone(1, "CHG-3").await.is_err(),
        "the grace is used once"
    );
}
