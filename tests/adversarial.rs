//! An attacker's state, set up in the emulator, against the landed revocation: each
//! test failed before the hardening it names. IAM is read back directly; nothing is
//! taken from a step's return value alone.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use crate::support::{Stack, id};
use aws_sdk_iam::types::StatusType;
use chrono::Utc;
use lapse_core::access::role_denies::{ROLE_DENY_POLICY, RoleDenies};
use lapse_core::identity::PrincipalId;
use lapse_core::revocation::case::{CaseStatus, RevocationCase, Trigger, TriggerSource};
use lapse_core::revocation::plan::{RevocationKind, SESSION_DENY_POLICY, session_deny_cutoff};
use lapse_core::revocation::usecase::{open, restore, run, snapshot, verify_case};
use lapse_lambda::config::Env;
use lapse_lambda::wiring::{Revocations, vars};
use serde_json::{Value, json};

const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

type World = crate::support::Revoking;

async fn world() -> World {
    World::start(&[]).await
}

/// A managed user with a console login and an active access key.
async fn person(w: &World, name: &str) -> PrincipalId {
    let user = w.s.user(name);
    w.s.stack.add_users(&[&user]).await.unwrap();
    w.iam
        .create_login_profile()
        .user_name(&user)
        .password("Initial-Passw0rd!")
        .send()
        .await
        .unwrap();
    w.iam
        .create_access_key()
        .user_name(&user)
        .send()
        .await
        .unwrap();
    PrincipalId::new(user).unwrap()
}

async fn plant(w: &World, user: &PrincipalId, name: &str, document: &str) {
    w.iam
        .put_user_policy()
        .user_name(user.as_str())
        .policy_name(name)
        .policy_document(document)
        .send()
        .await
        .unwrap();
}

async fn inline_policies(w: &World, user: &PrincipalId) -> Vec<(String, Value)> {
    let names = w
        .iam
        .list_user_policies()
        .user_name(user.as_str())
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for name in names.policy_names() {
        let doc = w
            .iam
            .get_user_policy()
            .user_name(user.as_str())
            .policy_name(name)
            .send()
            .await
            .unwrap();
        let text = percent_encoding::percent_decode_str(doc.policy_document())
            .decode_utf8_lossy()
            .into_owned();
        out.push((name.clone(), serde_json::from_str(&text).unwrap()));
    }
    out
}

/// A case for `user`, effective at `at`, opened at `now`.
async fn new_case(
    w: &World,
    user: &PrincipalId,
    kind: RevocationKind,
    source: TriggerSource,
    at: chrono::DateTime<Utc>,
    now: chrono::DateTime<Utc>,
) -> RevocationCase {
    let case = RevocationCase::new(
        user.clone(),
        kind,
        Trigger {
            source,
            event_id: lapse_testkit::unique_name("evt"),
            event_type: None,
            reason: "adversarial test".into(),
            executor: "arn:aws:iam::123456789012:user/operator".into(),
            manager: None,
        },
        at,
        false,
        now,
    );
    open(&w.r, case, now).await.unwrap()
}

async fn operator_case(w: &World, user: &PrincipalId, kind: RevocationKind) -> RevocationCase {
    let now = Utc::now();
    new_case(w, user, kind, TriggerSource::Operator, now, now).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_lapse_policy_does_not_survive_a_full_or_partial_revocation() {
    let w = world().await;
    for (name, kind) in [
        ("dana", RevocationKind::Full),
        (
            "erin",
            RevocationKind::Partial {
                new_role: "analyst".into(),
            },
        ),
    ] {
        let user = person(&w, name).await;
        plant(&w, &user, "lapse-anything", ALLOW_ALL).await;
        let case = operator_case(&w, &user, kind.clone()).await;
        let done = run(&w.r, case.id(), Utc::now()).await.unwrap();
        assert_eq!(done.status(), CaseStatus::Verified, "{kind:?}");
        let left = inline_policies(&w, &user).await;
        assert!(
            !left.iter().any(|(n, _)| n == "lapse-anything"),
            "{kind:?} left {left:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_session_deny_is_replaced_by_the_real_one() {
    let w = world().await;
    let user = person(&w, "carl").await;
    // The right name and a far-future cutoff, but an Allow.
    plant(
        &w,
        &user,
        SESSION_DENY_POLICY,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2099-01-01T00:00:00Z"}}}]}"#,
    )
    .await;
    let case = operator_case(&w, &user, RevocationKind::Suspend).await;
    let done = run(&w.r, case.id(), Utc::now()).await.unwrap();
    assert_eq!(done.status(), CaseStatus::Verified);
    let policies = inline_policies(&w, &user).await;
    let (_, deny) = policies
        .iter()
        .find(|(n, _)| n == SESSION_DENY_POLICY)
        .unwrap();
    let cutoff = session_deny_cutoff(deny).expect("exactly the session deny");
    assert_eq!(Some(cutoff), done.cutoff());
    // Written after the credentials were deactivated, not at the snapshot.
    assert!(
        cutoff > done.before().as_ref().unwrap().taken_at,
        "{cutoff}"
    );
    assert_eq!(deny["Statement"][0]["Effect"], "Deny");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_service_credentials_fail_verification_unless_the_gap_is_declared() {
    let w = world().await;
    let user = person(&w, "erin").await;
    // The same stack without the declaration: what AWS would be if the listing
    // answered with something that is not an AWS response.
    let undeclared = Env::from_pairs(
        w.s.stack
            .config
            .env_pairs()
            .into_iter()
            .filter(|(k, _)| *k != vars::EMULATOR_GAPS),
    );
    let strict = Revocations::from_env(&undeclared, &w.s.stack.sdk, ::revocation::TOPICS)
        .await
        .unwrap();
    let case = operator_case(&w, &user, RevocationKind::Suspend).await;
    let failed = run(&strict, case.id(), Utc::now()).await.unwrap_err();
    assert!(
        failed.to_string().contains("service-specific credentials")
            || format!("{failed:?}").contains("service-specific credentials"),
        "{failed:?}"
    );
    // Every call decides again: asking a second time does not switch the check off.
    let again = verify_case(&strict, case.id(), Utc::now()).await;
    assert!(again.is_err(), "{again:?}");
    // Where the gap is declared, the same IAM state verifies.
    let verified = verify_case(&w.r, case.id(), Utc::now()).await.unwrap();
    assert_eq!(verified.status(), CaseStatus::Verified);
    let bad = Env::from_pairs([(vars::EMULATOR_GAPS, "iam:Everything")]);
    assert!(lapse_lambda::wiring::directory(&bad, &w.s.stack.sdk).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_certificates_mfa_devices_and_trusting_roles_are_closed() {
    let w = world().await;
    let user = person(&w, "olga").await;
    let pem = std::fs::read_to_string(
        lapse_testkit::workspace_root().join("tests/fixtures/signing-certificate.pem"),
    )
    .unwrap();
    let certificate = w
        .iam
        .upload_signing_certificate()
        .user_name(user.as_str())
        .certificate_body(pem)
        .send()
        .await
        .unwrap();
    let certificate_id = certificate
        .certificate()
        .unwrap()
        .certificate_id()
        .to_owned();
    let device = w
        .iam
        .create_virtual_mfa_device()
        .virtual_mfa_device_name(lapse_testkit::unique_name("mfa"))
        .send()
        .await
        .unwrap();
    let serial = device
        .virtual_mfa_device()
        .unwrap()
        .serial_number()
        .to_owned();
    w.iam
        .enable_mfa_device()
        .user_name(user.as_str())
        .serial_number(&serial)
        .authentication_code1("123456")
        .authentication_code2("654321")
        .send()
        .await
        .unwrap();
    let arn = w
        .iam
        .get_user()
        .user_name(user.as_str())
        .send()
        .await
        .unwrap()
        .user
        .unwrap()
        .arn;
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": arn}, "Action": "sts:AssumeRole"}]});
    let managed_role = lapse_testkit::unique_name("deployer");
    w.iam
        .create_role()
        .role_name(&managed_role)
        .assume_role_policy_document(trust.to_string())
        .tags(lapse_local::provision::managed_tag())
        .send()
        .await
        .unwrap();

    let case = operator_case(&w, &user, RevocationKind::Full).await;
    let done = run(&w.r, case.id(), Utc::now()).await.unwrap();
    assert_eq!(done.status(), CaseStatus::Verified);
    let certificates = w
        .iam
        .list_signing_certificates()
        .user_name(user.as_str())
        .send()
        .await
        .unwrap();
    assert!(
        certificates
            .certificates()
            .iter()
            .all(|c| c.certificate_id() != certificate_id || c.status() == &StatusType::Inactive),
        "{certificates:?}"
    );
    let devices = w
        .iam
        .list_mfa_devices()
        .user_name(user.as_str())
        .send()
        .await
        .unwrap();
    assert!(devices.mfa_devices().is_empty(), "{devices:?}");
    let deny = w
        .iam
        .get_role_policy()
        .role_name(&managed_role)
        .policy_name(ROLE_DENY_POLICY)
        .send()
        .await
        .unwrap();
    let deny: Value = serde_json::from_str(
        &percent_encoding::percent_decode_str(deny.policy_document()).decode_utf8_lossy(),
    )
    .unwrap();
    assert!(
        RoleDenies::parse(&deny).is_some_and(|d| d.denies_all_of(&user)),
        "{deny}"
    );

    // A role Lapse does not manage cannot be closed: that is a verification failure
    // for security to handle, never a quiet pass.
    let other = person(&w, "bill").await;
    let other_arn = w
        .iam
        .get_user()
        .user_name(other.as_str())
        .send()
        .await
        .unwrap()
        .user
        .unwrap()
        .arn;
    w.iam
        .create_role()
        .role_name(lapse_testkit::unique_name("legacy"))
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": [other_arn]}, "Action": "sts:AssumeRole"}]}).to_string(),
        )
        .send()
        .await
        .unwrap();
    let case = operator_case(&w, &other, RevocationKind::Full).await;
    let failed = run(&w.r, case.id(), Utc::now()).await.unwrap_err();
    assert!(
        format!("{failed:?}").contains("not tagged lapse:managed"),
        "{failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_is_nothing_to_revoke_and_security_hears_of_it() {
    let w = world().await;
    let sqs = aws_sdk_sqs::Client::new(&w.s.stack.sdk);
    let queue = crate::support::queue_on_topic(
        &w.s.stack.sdk,
        &w.s.stack.config.topics.security,
        "security",
    )
    .await;
    let ghost = PrincipalId::new(w.s.user("ghost")).unwrap();
    let case = operator_case(&w, &ghost, RevocationKind::Full).await;
    let done = run(&w.r, case.id(), Utc::now()).await.unwrap();
    assert_eq!(done.status(), CaseStatus::NothingToRevoke);
    let messages = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let bodies: Vec<&str> = messages
        .messages()
        .iter()
        .filter_map(|m| m.body())
        .collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("nothing to revoke") && b.contains(ghost.as_str())),
        "{bodies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_users_requests_are_cancelled_and_never_granted() {
    let w = world().await;
    let carl = PrincipalId::new(w.s.user("carl")).unwrap();
    let client = w.s.as_user("carl");
    // High risk: waits for two approvers.
    let pending = client
        .request("prod-db-admin", Some("1h"), "incident", Some("INC-1"))
        .await
        .unwrap();
    assert_eq!(pending["status"], "pending", "{pending}");
    // Low risk, approved at once. The termination starts just before its grant step:
    // the person is marked revoked (the snapshot step) but the lanes have not run,
    // so only the grant step's own check stands between them and IAM.
    let stack = &w.s.stack;
    let revoked = std::sync::Arc::new(tokio::sync::Notify::new());
    let case_id = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let carl = carl.clone();
        let env = stack.config.env();
        let sdk = stack.sdk.clone();
        let revoked = revoked.clone();
        let case_id = case_id.clone();
        stack.faults.before_next("grant", move || {
            let (carl, env, sdk, revoked, case_id) = (
                carl.clone(),
                env.clone(),
                sdk.clone(),
                revoked.clone(),
                case_id.clone(),
            );
            async move {
                let r = Revocations::from_env(&env, &sdk, ::revocation::TOPICS)
                    .await
                    .unwrap();
                let now = Utc::now();
                let case = RevocationCase::new(
                    carl,
                    RevocationKind::Full,
                    Trigger {
                        source: TriggerSource::Hr,
                        event_id: lapse_testkit::unique_name("evt"),
                        event_type: None,
                        reason: "terminated".into(),
                        executor: "hr-webhook".into(),
                        manager: None,
                    },
                    now,
                    false,
                    now,
                );
                let case = open(&r, case, now).await.unwrap();
                snapshot(&r, case.id(), now).await.unwrap();
                *case_id.lock().unwrap() = case.id().to_string();
                revoked.notify_one();
            }
        });
    }
    let auto = client
        .request("billing-reports-read", Some("30m"), "month end", None)
        .await
        .unwrap();
    revoked.notified().await;
    let run_of_auto = w.s.workflow(&id(&auto)).await;
    assert_ne!(run_of_auto.status, "SUCCEEDED", "{run_of_auto:?}");
    let auto_now = client.get(&id(&auto)).await;
    // The requester is revoked: they cannot even read it; the approvers can.
    assert!(auto_now.is_err(), "{auto_now:?}");
    let seen = w.s.as_user("sam").get(&id(&auto)).await.unwrap();
    assert_eq!(
        seen["status"], "cancelled",
        "withdrawn by the grant step: {seen}"
    );
    assert!(
        inline_policies(&w, &carl).await.is_empty(),
        "the grant step wrote nothing"
    );
    // The termination completes: the pending request is cancelled with it.
    let case_id = case_id.lock().unwrap().clone();
    let done = run(&w.r, &case_id, Utc::now()).await.unwrap();
    assert_eq!(done.status(), CaseStatus::Verified);
    let seen = w.s.as_user("sam").get(&id(&pending)).await.unwrap();
    assert_eq!(seen["status"], "cancelled", "{seen}");
    // No decision on the terminated person's request.
    let refused = w.s.as_user("mia").decide(&id(&pending), true, "ok").await;
    assert!(
        refused.as_ref().is_err_and(|e| e.status() == Some(403)),
        "{refused:?}"
    );
    let trail = w.s.audit(&id(&pending)).await;
    assert!(
        trail.contains(&"request.decision_refused".to_owned()),
        "the refusal is audited: {trail:?}"
    );
    let policies = inline_policies(&w, &carl).await;
    assert!(
        policies.iter().all(|(n, _)| n == SESSION_DENY_POLICY),
        "{policies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_puts_back_the_person_not_lapses_artifacts_and_checks_iam() {
    let w = world().await;
    let user = person(&w, "mia").await;
    plant(
        &w,
        &user,
        "legacy-s3",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
    )
    .await;
    plant(&w, &user, "lapse-planted", ALLOW_ALL).await;
    let case = operator_case(&w, &user, RevocationKind::Full).await;
    let done = run(&w.r, case.id(), Utc::now()).await.unwrap();
    assert_eq!(done.status(), CaseStatus::Verified);
    let restored = restore(&w.r, &user, Utc::now(), "CHG-7", "operator", Utc::now())
        .await
        .unwrap();
    assert!(
        restored.restored.iter().any(|r| r.contains("legacy-s3")),
        "{restored:?}"
    );
    // What it left out is said, with why: the planted `lapse-*` policy is Lapse's
    // own for no live grant.
    assert!(
        restored.left_out.iter().any(|r| r
            .starts_with("inline policy lapse-planted: Lapse's own, for a grant no longer live")),
        "{restored:?}"
    );
    let policies: Vec<String> = inline_policies(&w, &user)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        policies,
        ["legacy-s3"],
        "no lapse-* artifact and no session deny"
    );
    let keys = w
        .iam
        .list_access_keys()
        .user_name(user.as_str())
        .send()
        .await
        .unwrap();
    assert!(
        keys.access_key_metadata()
            .iter()
            .all(|k| k.status() == Some(&StatusType::Active))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approver_slots_come_from_catalog_idp_ids_not_free_text() {
    let s = Stack::start().await;
    let pending = s
        .as_user("carl")
        .request("prod-db-admin", Some("1h"), "incident", Some("INC-2"))
        .await
        .unwrap();
    assert_eq!(pending["status"], "pending", "{pending}");
    let mallory = s.user("erin");
    let with_groups = |groups: &[&str]| {
        lapse_cli::client::ApiClient::new(
            &s.stack.url,
            s.stack
                .token_with_idp_groups(&mallory, groups, "employee")
                .unwrap(),
        )
    };
    // A display name whose last word is an approver group's name.
    let named = with_groups(&["Engineering managers"])
        .decide(&id(&pending), true, "lgtm")
        .await;
    assert!(
        named.as_ref().is_err_and(|e| e.status() == Some(403)),
        "{named:?}"
    );
    // A claim that is not one of the accepted shapes is refused, not guessed at.
    let malformed = with_groups(&["00gmanagers000000008,00gsecops00000000006"])
        .decide(&id(&pending), true, "lgtm")
        .await;
    assert!(
        malformed.as_ref().is_err_and(|e| e.status() == Some(401)),
        "{malformed:?}"
    );
    // The catalog's IdP id for managers fills the managers slot.
    let approved = with_groups(&["00gmanagers000000008"])
        .decide(&id(&pending), true, "lgtm")
        .await
        .unwrap();
    assert_eq!(
        approved["outcome"]["remaining"],
        json!(["security"]),
        "{approved}"
    );
    assert_eq!(approved["request"]["approvals"][0]["group"], "managers");
}

/// A user in `engineers` and `admins`, for role-change and contract-end cases.
async fn staff(w: &World, name: &str) -> PrincipalId {
    let user = person(w, name).await;
    for group in ["engineers", "admins"] {
        lapse_local::provision::ensure_group(&w.iam, group)
            .await
            .unwrap();
        w.iam
            .add_user_to_group()
            .user_name(user.as_str())
            .group_name(group)
            .send()
            .await
            .unwrap();
    }
    user
}

async fn groups_of(w: &World, user: &PrincipalId) -> Vec<String> {
    w.iam
        .list_groups_for_user()
        .user_name(user.as_str())
        .send()
        .await
        .unwrap()
        .groups()
        .iter()
        .map(|g| g.group_name().to_owned())
        .collect()
}

/// Opens a case effective at `at` and starts the real revocation workflow for it.
async fn start_case(
    w: &World,
    user: &PrincipalId,
    kind: RevocationKind,
    at: chrono::DateTime<Utc>,
) -> String {
    use lapse_core::ports::{Clock, WorkflowStarter};
    let now = w.s.stack.clock.now();
    let case = new_case(w, user, kind, TriggerSource::Hr, at, now).await;
    w.s.stack
        .revocations
        .start(case.id(), &json!({ "case": { "case_id": case.id() } }))
        .await
        .unwrap();
    case.id().to_string()
}

async fn status_of(w: &World, case_id: &str) -> CaseStatus {
    use lapse_core::revocation::ports::CaseStore;
    use lapse_core::revocation::usecase::HasCases;
    w.r.cases().get(case_id).await.unwrap().unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_waits_end_only_when_the_stack_clock_passes_them() {
    use lapse_core::ports::Clock;
    let w = world().await;
    let user = staff(&w, "erin").await;
    let clock = &w.s.stack.clock;
    let case_id = start_case(
        &w,
        &user,
        RevocationKind::Partial {
            new_role: "analyst".into(),
        },
        clock.now() + chrono::TimeDelta::hours(4),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        w.s.stack
            .revocations
            .wait(&case_id, std::time::Duration::ZERO)
            .await
            .is_none(),
        "still waiting for the transition"
    );
    assert_eq!(groups_of(&w, &user).await.len(), 2, "nothing applied yet");
    assert_eq!(status_of(&w, &case_id).await, CaseStatus::Received);
    clock.advance(chrono::TimeDelta::hours(4) + chrono::TimeDelta::seconds(1));
    let run = w.s.workflow_of_revocation(&case_id).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    // The Wait itself held until the clock passed: the steps ran once, with no
    // "not due yet" round trips.
    assert_eq!(
        run.states.iter().filter(|s| *s == "Snapshot").count(),
        1,
        "{:?}",
        run.states
    );
    assert!(run.caught.is_empty(), "{:?}", run.caught);
    assert!(groups_of(&w, &user).await.is_empty());
    assert_eq!(status_of(&w, &case_id).await, CaseStatus::Verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postponement_or_an_override_during_the_wait_is_honoured_after_it() {
    use lapse_core::ports::Clock;
    use lapse_core::revocation::ports::Controls;
    use lapse_core::revocation::usecase::{postpone, resume_held, set_controls};
    let w = world().await;
    let clock = &w.s.stack.clock;
    let day = chrono::TimeDelta::days(1);

    // Postponed while the workflow waits: the old time passes, nothing is applied.
    let moved = staff(&w, "dana").await;
    let case_id = start_case(&w, &moved, RevocationKind::Full, clock.now() + day).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    postpone(&w.r, &moved, day * 3, "CHG-21", "operator", clock.now())
        .await
        .unwrap();
    clock.advance(day * 2);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(groups_of(&w, &moved).await.len(), 2, "postponed: not yet");
    assert_ne!(status_of(&w, &case_id).await, CaseStatus::Verified);
    clock.advance(day * 3);
    let run = w.s.workflow_of_revocation(&case_id).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    assert!(groups_of(&w, &moved).await.is_empty());

    // Held by an override set while the workflow waits; cleared, it resumes.
    let held = staff(&w, "bill").await;
    let at = clock.now() + day;
    let case_id = start_case(&w, &held, RevocationKind::Full, at).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let hold = |c: &mut Controls| c.override_reason = Some("INC-9 investigation".into());
    set_controls(&w.r, &held, hold, "security lead", "operator", clock.now())
        .await
        .unwrap();
    clock.advance(day * 2);
    let run = w.s.workflow_of_revocation(&case_id).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    assert_eq!(status_of(&w, &case_id).await, CaseStatus::Held);
    assert_eq!(groups_of(&w, &held).await.len(), 2, "held: nothing applied");
    set_controls(
        &w.r,
        &held,
        |c: &mut Controls| c.override_reason = None,
        "cleared",
        "operator",
        clock.now(),
    )
    .await
    .unwrap();
    let resumed = resume_held(&w.r, &w.s.stack.revocations, &held)
        .await
        .unwrap();
    assert_eq!(resumed, std::slice::from_ref(&case_id));
    let name =
        w.s.stack
            .revocations
            .launched()
            .into_iter()
            .find(|n| n.starts_with(&format!("{case_id}-resume-")))
            .unwrap();
    let run = w.s.workflow_of_revocation(&name).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    assert_eq!(status_of(&w, &case_id).await, CaseStatus::Verified);
    assert!(groups_of(&w, &held).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inactivity_check_suspends_only_managed_unexempt_users_once() {
    use lapse_core::revocation::usecase::suspend_inactive;
    let w = world().await;
    let idle = person(&w, "sam").await;
    let restored = person(&w, "olga").await;
    // Not Lapse's: no lapse:managed tag.
    let foreign = w.s.user("foreign");
    w.iam
        .create_user()
        .user_name(&foreign)
        .send()
        .await
        .unwrap();
    // The catalog's break-glass account.
    w.s.stack.add_users(&["breakglass-admin"]).await.unwrap();
    w.iam.generate_credential_report().send().await.unwrap();
    let report = w.iam.get_credential_report().send().await.unwrap();
    let csv = String::from_utf8(report.content().unwrap().as_ref().to_vec()).unwrap();
    let later = Utc::now() + chrono::TimeDelta::days(100);
    let (cases, skipped) = suspend_inactive(&w.r, &csv, later).await.unwrap();
    let suspended =
        |cases: &[RevocationCase], who: &str| cases.iter().any(|c| c.user().as_str() == who);
    let reason = |skipped: &[lapse_core::revocation::usecase::Skipped], who: &str| {
        skipped
            .iter()
            .find(|s| s.user.as_str() == who)
            .map(|s| s.reason.clone())
            .unwrap_or_default()
    };
    assert!(suspended(&cases, idle.as_str()) && suspended(&cases, restored.as_str()));
    assert!(!suspended(&cases, &foreign));
    assert!(reason(&skipped, &foreign).contains("not a user Lapse manages"));
    assert!(!suspended(&cases, "breakglass-admin"));
    assert!(reason(&skipped, "breakglass-admin").starts_with("exempt: Break-glass"));
    for case in cases
        .iter()
        .filter(|c| c.user() == &idle || c.user() == &restored)
    {
        assert_eq!(
            run(&w.r, case.id(), later).await.unwrap().status(),
            CaseStatus::Verified
        );
    }
    restore(&w.r, &restored, later, "CHG-31", "operator", later)
        .await
        .unwrap();
    // The next day's report still shows the old activity: neither is suspended again.
    let next_day = later + chrono::TimeDelta::days(1);
    let (again, skipped) = suspend_inactive(&w.r, &csv, next_day).await.unwrap();
    assert!(!suspended(&again, idle.as_str()), "not re-reported");
    assert!(reason(&skipped, idle.as_str()).contains("already revoked or suspended"));
    assert!(
        !suspended(&again, restored.as_str()),
        "the restore reset the clock"
    );
    assert!(reason(&skipped, restored.as_str()).contains("restored recently"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_change_only_by_versioned_writes() {
    use lapse_core::revocation::ports::{Controls, UserControls};
    use lapse_core::revocation::usecase::HasControls;
    let w = world().await;
    let user = PrincipalId::new(w.s.user("carl")).unwrap();
    let store = w.r.controls();
    // Two writers read the same (absent) controls.
    let mut first = store.controls(&user).await.unwrap();
    let mut stale = first.clone();
    first.legal_hold = true;
    store.set(&user, &mut first).await.unwrap();
    stale.revoked_by = None;
    stale.override_reason = Some("clears the hold by accident".into());
    let lost = store.set(&user, &mut stale).await;
    assert!(
        matches!(lost, Err(lapse_core::ports::StoreError::Conflict { .. })),
        "{lost:?}"
    );
    let stored = store.controls(&user).await.unwrap();
    assert!(
        stored.legal_hold && stored.override_reason.is_none(),
        "{stored:?}"
    );
    // A writer that re-reads wins, on top of the other's change.
    let mut fresh = store.controls(&user).await.unwrap();
    fresh.override_reason = Some("INC-4".into());
    store.set(&user, &mut fresh).await.unwrap();
    let stored: Controls = store.controls(&user).await.unwrap();
    assert!(stored.legal_hold && stored.override_reason.as_deref() == Some("INC-4"));
    assert_eq!(stored.version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_audit_events_or_their_anchors_is_detected_or_refused() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let w = world().await;
    let user = person(&w, "mia").await;
    let case = operator_case(&w, &user, RevocationKind::Suspend).await;
    run(&w.r, case.id(), Utc::now()).await.unwrap();
    let sdk = &w.s.stack.sdk;
    let config = &w.s.stack.config;
    let reader = w.s.audit_reader().await;
    let chain = format!("user#{user}");
    let report = reader.verify(Some(&chain)).await.unwrap();
    assert_eq!(report[0].problem, None, "{report:?}");
    let events = report[0].events;
    assert!(events >= 4, "{report:?}");
    let mut exported = Vec::new();
    assert_eq!(
        reader
            .export(Some(&chain), false, &mut exported)
            .await
            .unwrap(),
        events
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(exported)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), events);
    assert_eq!(lines[0]["chain"], chain.as_str());

    // The anchors cannot be removed: Object Lock refuses, even with version ids.
    let s3 = aws_sdk_s3::Client::new(sdk);
    let versions = s3
        .list_object_versions()
        .bucket(&config.audit_anchors)
        .prefix(format!("heads/{chain}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), events, "one anchor per event");
    for version in versions.versions() {
        let deleted = s3
            .delete_object()
            .bucket(&config.audit_anchors)
            .key(version.key().unwrap())
            .version_id(version.version_id().unwrap())
            .send()
            .await;
        assert!(deleted.is_err(), "Object Lock must refuse: {deleted:?}");
    }

    // Deleting the newest event is detected against the anchor...
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let delete = |seq: usize| {
        dynamo
            .delete_item()
            .table_name(&config.tables.audit)
            .key("chain", AttributeValue::S(chain.clone()))
            .key("seq", AttributeValue::N(seq.to_string()))
            .send()
    };
    delete(events - 1).await.unwrap();
    let report = reader.verify(Some(&chain)).await.unwrap();
    assert!(
        report[0]
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("newest events were removed")),
        "{report:?}"
    );
    let mut refused = Vec::new();
    assert!(
        reader
            .export(Some(&chain), false, &mut refused)
            .await
            .is_err()
    );
    assert!(refused.is_empty(), "nothing of a failing chain is exported");
    // ...and so is deleting the whole chain: the anchors still name it.
    for seq in 0..events - 1 {
        delete(seq).await.unwrap();
    }
    let all = reader.verify(None).await.unwrap();
    let gone = all.iter().find(|r| r.chain == chain).expect("still listed");
    assert!(gone.problem.is_some() && gone.events == 0, "{gone:?}");
}

/// An extension whose merge step runs right after the holder ended the grant early
/// must not put the grant back in IAM. (A revocation landing between the merge's
/// IAM write and its re-read is the interleaving the core's unit tests drive:
/// `an_early_revoke_racing_the_grant_step_wins`,
/// `an_early_revoke_racing_an_extension_merge_wins`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_revoke_is_not_undone_by_a_late_extension_step() {
    let s = Stack::start().await;
    let dana = s.as_user("dana");
    let rid = id(&dana
        .request("billing-reports-read", Some("30m"), "reconcile", None)
        .await
        .unwrap());
    s.provisioned(&dana, &rid, "billing-reports-read", "dana")
        .await;
    let extension = dana
        .extend(&rid, "2h", "reconciliation is taking longer")
        .await
        .unwrap();
    let eid = id(&extension);
    // Just before the extension's merge step: the holder ends the grant.
    let (url, token) = (
        s.stack.url.clone(),
        s.stack.token(&s.user("dana"), &[], "employee").unwrap(),
    );
    let revoked = std::sync::Arc::new(tokio::sync::Notify::new());
    {
        let (rid, revoked) = (rid.clone(), revoked.clone());
        s.stack.faults.before_next("grant", move || {
            let (url, token, rid, revoked) =
                (url.clone(), token.clone(), rid.clone(), revoked.clone());
            async move {
                let out = lapse_cli::client::ApiClient::new(&url, token)
                    .revoke(&rid)
                    .await
                    .unwrap();
                assert_eq!(out["verify"]["verified"], true, "{out}");
                revoked.notify_one();
            }
        });
    }
    s.as_user("bill").decide(&eid, true, "fine").await.unwrap();
    revoked.notified().await;
    let merged = s.workflow(&eid).await;
    assert_ne!(
        merged.status, "SUCCEEDED",
        "the merge must not succeed: {merged:?}"
    );
    let grant = dana.get(&rid).await.unwrap();
    assert!(
        ["revoked", "verified"].contains(&grant["status"].as_str().unwrap()),
        "{grant}"
    );
    assert!(
        !s.iam("dana")
            .await
            .inline_policies
            .contains_key(&format!("lapse-billing-reports-read-{rid}")),
        "IAM does not hold the revoked grant again"
    );
}

/// Operators act through the operator API, and the executor recorded is who AWS
/// authenticated: a person's JWT, an unknown key and a body naming an executor are
/// all refused and open nothing; a retried call opens one case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_calls_are_executed_as_the_authenticated_caller_only() {
    use lapse_core::revocation::ports::CaseStore;
    let w = world().await;
    let user = person(&w, "opsvictim").await;
    let stack = &w.s.stack;
    let ask = json!({
        "request_id": "adversarial-operator-1",
        "user": user.as_str(),
        "reason": "left the company",
        "kind": {"kind": "full"},
    });
    // A person's token is not an AWS identity: the route takes SigV4 only.
    let security = lapse_cli::client::ApiClient::new(
        &stack.url,
        stack.token("sam", &["security"], "employee").unwrap(),
    );
    let err = security
        .operator_post("revocations", ask.clone())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    // A key the stack never issued.
    let stranger_sdk = lapse_aws::sdk::load_local_as(
        lapse_testkit::shared().endpoint(),
        lapse_aws::sdk::Credentials::new("AKIASTRANGER0000", "guessed", None, None, "test"),
    )
    .await;
    let stranger = lapse_cli::client::ApiClient::aws(&stack.url, &stranger_sdk).unwrap();
    let err = stranger
        .operator_post("revocations", ask.clone())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    // A validly signed body that names an executor of its own.
    let operator = stack.operator_api().unwrap();
    let mut forged = ask.clone();
    forged["executor"] = json!("operator:arn:aws:iam::123456789012:user/someone-else");
    let err = operator
        .operator_post("revocations", forged)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(
        w.r.table.cases_of(&user).await.unwrap().is_empty(),
        "no refused call opened a case"
    );
    let err = operator
        .operator_get("cases/rev-not-a-case-id")
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(400),
        "a malformed case id is refused: {err}"
    );

    // The real operator, twice (a retry after a lost answer): one case, whose
    // executor is the key's owner as the gateway authenticated it.
    let first = operator
        .operator_post("revocations", ask.clone())
        .await
        .unwrap();
    let again = operator
        .operator_post("revocations", ask.clone())
        .await
        .unwrap();
    assert_eq!(first["case"]["id"], again["case"]["id"]);
    // And once its workflow has finished, a late retry still answers with the case.
    let case_id = first["case"]["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let case = operator
            .operator_get(&format!("cases/{case_id}"))
            .await
            .unwrap();
        if case["case"]["status"] == "verified" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{case}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let late = operator.operator_post("revocations", ask).await.unwrap();
    assert_eq!(late["case"]["id"], first["case"]["id"]);
    assert_eq!(late["case"]["status"], "verified");
    let cases = w.r.table.cases_of(&user).await.unwrap();
    assert_eq!(cases.len(), 1, "{cases:?}");
    let executor = format!("operator:{}", stack.operator.arn);
    assert_eq!(cases[0].trigger().executor, executor);
    let events =
        lapse_core::ports::AuditLog::chain(&w.r.lifecycle.auditing.log, &format!("user#{user}"))
            .await
            .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "revocation.received" && e.actor == executor),
        "{events:?}"
    );
}

/// `lapse verify --user` after a verified termination: access planted behind the
/// case (a login profile, a new key, AdministratorAccess, an Allow-all
/// `lapse-*` policy) is read from IAM and reported, the CLI fails, the result is
/// audited and security is alerted. It used to print the stored verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reverification_reads_iam_and_finds_access_granted_behind_a_verified_case() {
    let w = world().await;
    let security = crate::support::queue_on_topic(
        &w.s.stack.sdk,
        &w.s.stack.config.topics.security,
        "security",
    )
    .await;
    let user = person(&w, "regranted").await;
    let case = operator_case(&w, &user, RevocationKind::Full).await;
    assert_eq!(
        run(&w.r, case.id(), Utc::now()).await.unwrap().status(),
        CaseStatus::Verified
    );
    let operator = lapse_cli::operator::Operator::with_api(w.s.stack.operator_api().unwrap());
    let clean = lapse_cli::operator::verify_user(&operator, user.as_str())
        .await
        .unwrap();
    assert!(clean.contains(": verified: IAM, read now"), "{clean}");

    // Someone re-grants access behind the finished revocation.
    w.iam
        .create_login_profile()
        .user_name(user.as_str())
        .password("Back-Again-Passw0rd!")
        .send()
        .await
        .unwrap();
    let key = w
        .iam
        .create_access_key()
        .user_name(user.as_str())
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap()
        .access_key_id;
    w.iam
        .attach_user_policy()
        .user_name(user.as_str())
        .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
        .send()
        .await
        .unwrap();
    plant(&w, &user, "lapse-backdoor2", ALLOW_ALL).await;

    let err = lapse_cli::operator::verify_user(&operator, user.as_str())
        .await
        .unwrap_err()
        .to_string();
    for held in [
        "NOT verified",
        "console login profile",
        key.as_str(),
        "AdministratorAccess",
        "lapse-backdoor2",
        "security has been alerted",
    ] {
        assert!(err.contains(held), "{held} missing: {err}");
    }
    let sqs = aws_sdk_sqs::Client::new(&w.s.stack.sdk);
    let mut bodies = Vec::new();
    for _ in 0..5 {
        let got = sqs
            .receive_message()
            .queue_url(&security)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        bodies.extend(
            got.messages()
                .iter()
                .filter_map(|m| m.body().map(str::to_owned)),
        );
        if bodies.iter().any(|b| b.contains("Access is back")) {
            break;
        }
    }
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("Access is back") && b.contains("lapse-backdoor2")),
        "{bodies:?}"
    );
    let events =
        lapse_core::ports::AuditLog::chain(&w.r.lifecycle.auditing.log, &format!("user#{user}"))
            .await
            .unwrap();
    let executor = format!("operator:{}", w.s.stack.operator.arn);
    assert!(
        events
            .iter()
            .any(|e| e.action == "revocation.reverification_failed" && e.actor == executor),
        "{:?}",
        events.iter().map(|e| &e.action).collect::<Vec<_>>()
    );

    // A user IAM never had is said to be so, not "verified".
    let ghost = PrincipalId::new(w.s.user("never-was")).unwrap();
    let none = operator_case(&w, &ghost, RevocationKind::Full).await;
    run(&w.r, none.id(), Utc::now()).await.unwrap();
    let said = lapse_cli::operator::verify_user(&operator, ghost.as_str())
        .await
        .unwrap();
    assert!(said.contains("IAM has no such user"), "{said}");
    assert!(!said.contains("verified:"), "{said}");
}

/// The early-revoke route: a person whose access Lapse revoked ends nobody's
/// grant (their token may still be valid), and an extension's id is not a grant
/// (it used to answer revoked and verified while the grant stayed in IAM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_person_ends_no_grant_and_an_extension_is_not_a_grant() {
    let w = world().await;
    let dana = w.s.as_user("dana");
    let created = dana
        .request("billing-reports-read", Some("30m"), "month end", None)
        .await
        .unwrap();
    let rid = id(&created);
    w.s.provisioned(&dana, &rid, "billing-reports-read", "dana")
        .await;
    let policy = format!("lapse-billing-reports-read-{rid}");

    let ext = dana.extend(&rid, "30m", "a little longer").await.unwrap();
    let err = dana.revoke(&id(&ext)).await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("is an extension of grant {rid}")),
        "{err}"
    );
    assert!(w.s.iam("dana").await.inline_policies.contains_key(&policy));

    // Bill owns the resource, so may end the grant, until Lapse revokes him.
    let bill = PrincipalId::new(w.s.user("bill")).unwrap();
    let case = operator_case(&w, &bill, RevocationKind::Suspend).await;
    snapshot(&w.r, case.id(), Utc::now()).await.unwrap();
    let err = w.s.as_user("bill").revoke(&rid).await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    assert_eq!(
        dana.get(&rid).await.unwrap()["status"],
        "active",
        "the grant stands"
    );
    assert!(w.s.iam("dana").await.inline_policies.contains_key(&policy));
    // The holder still may.
    let ended = dana.revoke(&rid).await.unwrap();
    assert_eq!(ended["verify"]["verified"], true, "{ended}");
}

/// An operator never acts on their own access: revoking, holding or restoring
/// themselves is refused (403) and leaves no case or control behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_cannot_revoke_hold_or_restore_themselves() {
    use lapse_core::revocation::ports::{CaseStore, UserControls};
    let w = world().await;
    let stack = &w.s.stack;
    let own = stack.operator.arn.rsplit('/').next().unwrap().to_owned();
    let me = PrincipalId::new(&own).unwrap();
    let operator = stack.operator_api().unwrap();
    let calls = [
        (
            "revocations".to_owned(),
            json!({"request_id": "self-revoke-1", "user": own, "reason": "me", "kind": {"kind": "full"}}),
        ),
        (
            format!("users/{own}/controls"),
            json!({"override": "leave me be", "reason": "mine"}),
        ),
        (
            format!("users/{own}/restores"),
            json!({"from_backup": Utc::now(), "approval": "CHG-1"}),
        ),
    ];
    for (path, body) in calls {
        let err = operator.operator_post(&path, body).await.unwrap_err();
        assert_eq!(err.status(), Some(403), "{path}: {err}");
        assert!(err.to_string().contains("another operator must"), "{err}");
    }
    assert!(w.r.table.cases_of(&me).await.unwrap().is_empty());
    assert_eq!(w.r.table.controls(&me).await.unwrap().override_reason, None);
}

/// IAM user names have no case: a person revoked as `casey` is refused as `Casey`
/// (a token or an HR event may spell the name otherwise), and controls written
/// before names were folded (under `user#Casey`) still count, and move on their
/// next change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_person_is_refused_however_their_name_is_spelled() {
    use lapse_core::revocation::ports::{CaseStore, UserControls};
    let w = world().await;
    let lower = person(&w, "casey").await;
    let upper = PrincipalId::new(lower.as_str().to_ascii_uppercase()).unwrap();
    let case = operator_case(&w, &lower, RevocationKind::Suspend).await;
    snapshot(&w.r, case.id(), Utc::now()).await.unwrap();
    let token =
        w.s.stack
            .token(upper.as_str(), &["on-call"], "employee")
            .unwrap();
    let as_upper = lapse_cli::client::ApiClient::new(&w.s.stack.url, token);
    let err = as_upper
        .request("billing-reports-read", Some("30m"), "again", None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    assert!(err.to_string().contains("access has been revoked"), "{err}");
    assert_eq!(
        w.r.table.cases_of(&upper).await.unwrap().len(),
        1,
        "the case is found under either spelling"
    );
    // The pointer lives apart from the person's controls (`cases#`), and one
    // written where pointers lived before (`user#`) is still followed.
    let dynamo = aws_sdk_dynamodb::Client::new(&w.s.stack.sdk);
    let table = &w.s.stack.config.revocations_table;
    let pointers_under = |pk: String| {
        let dynamo = dynamo.clone();
        async move {
            dynamo
                .query()
                .table_name(table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :case)")
                .expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S(pk))
                .expression_attribute_values(
                    ":case",
                    aws_sdk_dynamodb::types::AttributeValue::S("case#".into()),
                )
                .send()
                .await
                .unwrap()
                .count()
        }
    };
    assert_eq!(pointers_under(format!("cases#{lower}")).await, 1);
    assert_eq!(pointers_under(format!("user#{lower}")).await, 0);
    let older = PrincipalId::new(w.s.user("older")).unwrap();
    let old_case = operator_case(&w, &older, RevocationKind::Suspend).await;
    let moved = dynamo
        .delete_item()
        .table_name(table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("cases#{older}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!(
                "case#{}#{}",
                old_case.created_at().to_rfc3339(),
                old_case.id()
            )),
        )
        .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
        .send()
        .await
        .unwrap();
    let mut legacy_pointer = moved.attributes().cloned().unwrap();
    legacy_pointer.insert(
        "pk".into(),
        aws_sdk_dynamodb::types::AttributeValue::S(format!("user#{older}")),
    );
    dynamo
        .put_item()
        .table_name(table)
        .set_item(Some(legacy_pointer))
        .send()
        .await
        .unwrap();
    assert_eq!(w.r.table.cases_of(&older).await.unwrap().len(), 1);

    // Controls from before names were folded.
    let legacy = PrincipalId::new(w.s.user("Legacy")).unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&w.s.stack.sdk);
    let controls = lapse_core::revocation::ports::Controls {
        revoked_by: Some(case.id().to_string()),
        version: 3,
        ..Default::default()
    };
    dynamo
        .put_item()
        .table_name(&w.s.stack.config.revocations_table)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("user#{legacy}")),
        )
        .item(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("controls".into()),
        )
        .item(
            "version",
            aws_sdk_dynamodb::types::AttributeValue::N("3".into()),
        )
        .item(
            "doc",
            aws_sdk_dynamodb::types::AttributeValue::S(serde_json::to_string(&controls).unwrap()),
        )
        .send()
        .await
        .unwrap();
    let mut read = w.r.table.controls(&legacy).await.unwrap();
    assert_eq!(read.revoked_by, controls.revoked_by, "legacy item read");
    read.legal_hold = true;
    w.r.table.set(&legacy, &mut read).await.unwrap();
    let folded = PrincipalId::new(legacy.folded()).unwrap();
    let moved = w.r.table.controls(&folded).await.unwrap();
    assert!(moved.legal_hold && moved.revoked_by.is_some(), "{moved:?}");
    assert_eq!(moved.version, 4);
}

/// A compromised function holds what every writer holds: it signs, appends events
/// and writes anchors. It rewrites a chain (every event deleted, the history
/// re-signed with one reason changed, one event more, anchored) so that the
/// newest anchor matches; it adds a second version of an old anchor; it plants an
/// anchor far past another chain's end. Each is found: every anchor is held to
/// its event, and every version of every anchor key is listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_rewritten_under_a_new_anchor_or_a_second_anchor_version_is_detected() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use lapse_core::audit::AuditDraft;
    use lapse_core::ports::AuditLog;
    use lapse_core::revocation::usecase::HasTrail;
    let w = world().await;
    let (rita, olga) = (person(&w, "rita").await, person(&w, "olga").await);
    for user in [&rita, &olga] {
        let case = operator_case(&w, user, RevocationKind::Suspend).await;
        run(&w.r, case.id(), Utc::now()).await.unwrap();
    }
    let (sdk, config) = (&w.s.stack.sdk, &w.s.stack.config);
    let reader = w.s.audit_reader().await;
    let chain = format!("user#{rita}");
    assert_eq!(reader.verify(Some(&chain)).await.unwrap()[0].problem, None);

    // The rewrite, with nothing but a writer's own permissions.
    let trail = w.r.trail();
    let original = trail.log.chain(&chain).await.unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    for event in &original {
        dynamo
            .delete_item()
            .table_name(&config.tables.audit)
            .key("chain", AttributeValue::S(chain.clone()))
            .key("seq", AttributeValue::N(event.seq.to_string()))
            .send()
            .await
            .unwrap();
    }
    for (n, event) in original.iter().enumerate() {
        let reason = if n == 1 {
            "nothing happened here".to_owned()
        } else {
            event.reason.clone()
        };
        trail
            .record(AuditDraft {
                chain: chain.clone(),
                key: event.key.clone(),
                actor: event.actor.clone(),
                action: event.action.clone(),
                subject: event.subject.clone(),
                reason,
                before: event.before.clone(),
                after: event.after.clone(),
                at: event.at,
            })
            .await
            .unwrap();
    }
    trail
        .record(AuditDraft {
            chain: chain.clone(),
            key: "cover".into(),
            actor: "lapse".into(),
            action: "revocation.reverified".into(),
            subject: rita.to_string(),
            reason: "all good".into(),
            before: Value::Null,
            after: Value::Null,
            at: Utc::now(),
        })
        .await
        .unwrap();
    let report = reader.verify(Some(&chain)).await.unwrap();
    assert_eq!(
        report[0].problem.as_deref(),
        Some("event #1 does not match its anchor: the chain was rewritten from #1 on"),
        "{report:?}"
    );

    // A second version of one of olga's anchors (S3 refuses an overwrite only
    // when asked; the bucket policy makes every writer ask, but the verifier does
    // not rely on it).
    let s3 = aws_sdk_s3::Client::new(sdk);
    let olga_chain = format!("user#{olga}");
    let key = format!("heads/{olga_chain}/{:020}.json", 0);
    let first = s3
        .get_object()
        .bucket(&config.audit_anchors)
        .key(&key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    s3.put_object()
        .bucket(&config.audit_anchors)
        .key(&key)
        .body(first.to_vec().into())
        .send()
        .await
        .unwrap();
    let report = reader.verify(Some(&olga_chain)).await.unwrap();
    assert!(
        report[0]
            .problem
            .as_deref()
            .is_some_and(|p| p.contains(&format!("anchor {key} has 2 versions"))),
        "{report:?}"
    );

    // An anchor planted far past a chain's end is reported as such.
    let planted_chain = "user#nobody-planted";
    s3.put_object()
        .bucket(&config.audit_anchors)
        .key(format!("heads/{planted_chain}/{:020}.json", 1000))
        .body(
            json!({"chain": planted_chain, "seq": 1000, "hash": "00"})
                .to_string()
                .into_bytes()
                .into(),
        )
        .send()
        .await
        .unwrap();
    let all = reader.verify(None).await.unwrap();
    let planted = all.iter().find(|r| r.chain == planted_chain).unwrap();
    assert_eq!(
        planted.problem.as_deref(),
        Some(
            "anchor #1000 is beyond the chain's end (no events): newest events were removed, or anchors were planted"
        ),
        "{planted:?}"
    );
}

/// Operators are the stack's explicit list, not whoever an IAM policy lets call
/// `execute-api:Invoke`: a validly authenticated principal that is not listed
/// (here an assumed role's session, as API Gateway's IAM authorizer passes it)
/// is refused before anything is read or opened; the listed operator is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_stacks_listed_operators_may_use_the_operator_api() {
    use lapse_core::revocation::ports::CaseStore;
    let w = world().await;
    let target = person(&w, "jdoe").await;
    let deps = operator::Deps::from_env(&w.s.stack.config.env(), &w.s.stack.sdk)
        .await
        .unwrap();
    let mut event = Stack::sample("operator/revoke-now.json");
    let mut body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
    body["user"] = json!(target.as_str());
    event["body"] = json!(body.to_string());
    let call = |event: &Value| {
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let deps = &deps;
        async move { operator::handler(deps, request).await.unwrap() }
    };
    let refused = call(&event).await;
    assert_eq!(refused.status(), 403);
    let text = String::from_utf8(refused.body().to_vec()).unwrap();
    assert!(
        text.contains("arn:aws:sts::123456789012:assumed-role/LapseOperators/ana@example.com is not an operator of this stack"),
        "{text}"
    );
    assert!(w.r.table.cases_of(&target).await.unwrap().is_empty());

    // The listed operator, with the same ask: the case is opened.
    event["requestContext"]["authorizer"]["iam"]["userArn"] = json!(w.s.stack.operator.arn);
    let admitted = call(&event).await;
    let text = String::from_utf8(admitted.body().to_vec()).unwrap();
    assert!(admitted.status().is_success(), "{text}");
    assert_eq!(w.r.table.cases_of(&target).await.unwrap().len(), 1);
}

/// The inline policies of a role, by name, with their documents.
async fn role_policies(w: &World, role: &str) -> Vec<(String, Value)> {
    let names = w
        .iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for name in names.policy_names() {
        let doc = w
            .iam
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
            .unwrap();
        let text = percent_encoding::percent_decode_str(doc.policy_document()).decode_utf8_lossy();
        out.push((name.clone(), serde_json::from_str(&text).unwrap()));
    }
    out
}

/// Issue 21, item 22: every terminated person a shared role trusts used to get a
/// policy of their own on the role, until IAM's 10,240-character limit made the
/// next termination fail. One deny per role lists them all, and a restore takes
/// only its person out of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_role_carries_one_deny_listing_every_revoked_person() {
    let w = world().await;
    let people = [
        person(&w, "ann").await,
        person(&w, "ben").await,
        person(&w, "cid").await,
    ];
    let mut arns = Vec::new();
    for user in &people {
        let got = w
            .iam
            .get_user()
            .user_name(user.as_str())
            .send()
            .await
            .unwrap();
        arns.push(got.user.unwrap().arn);
    }
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": arns}, "Action": "sts:AssumeRole"}]});
    let shared = lapse_testkit::unique_name("shared");
    w.iam
        .create_role()
        .role_name(&shared)
        .assume_role_policy_document(trust.to_string())
        .tags(lapse_local::provision::managed_tag())
        .send()
        .await
        .unwrap();

    let mut cases = Vec::new();
    for user in &people {
        let case = operator_case(&w, user, RevocationKind::Full).await;
        let done = run(&w.r, case.id(), Utc::now()).await.unwrap();
        assert_eq!(done.status(), CaseStatus::Verified, "{:?}", done.residue());
        cases.push(case);
    }
    let policies = role_policies(&w, &shared).await;
    assert_eq!(
        policies.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        [ROLE_DENY_POLICY],
        "one deny on the role, not one per person"
    );
    let denies = RoleDenies::parse(&policies[0].1).expect("exactly Lapse's deny");
    assert!(people.iter().all(|u| denies.denies_all_of(u)), "{denies:?}");

    // A restore takes its person out and leaves the others denied.
    restore(
        &w.r,
        &people[1],
        Utc::now(),
        "CHG-22",
        "operator",
        Utc::now(),
    )
    .await
    .unwrap();
    let policies = role_policies(&w, &shared).await;
    let denies = RoleDenies::parse(&policies[0].1).expect("exactly Lapse's deny");
    assert!(!denies.denies_all_of(&people[1]), "{denies:?}");
    assert!(denies.denies_all_of(&people[0]) && denies.denies_all_of(&people[2]));
    // The others' revocations still verify, reading the role again.
    for case in [&cases[0], &cases[2]] {
        let again = verify_case(&w.r, case.id(), Utc::now()).await.unwrap();
        assert_eq!(
            again.status(),
            CaseStatus::Verified,
            "{:?}",
            again.residue()
        );
    }
}
