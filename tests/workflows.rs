//! The real `grant-lifecycle.asl.json`, run by `aws-local-stepfunctions`, its Task
//! states invoking our handlers through the local host's Lambda API, against the
//! emulator. IAM is read back at every step.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use crate::support::{Stack, id};
use lapse_core::access::grant::document_expiry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_risk_request_is_auto_approved_granted_revoked_and_verified() {
    let s = Stack::start().await;
    let dana = s.as_user("dana");
    let created = dana
        .request(
            "billing-reports-read",
            Some("30m"),
            "reconcile invoices",
            None,
        )
        .await
        .unwrap();
    assert_eq!(created["status"], "approved", "{created}");
    let rid = id(&created);

    let active = s
        .provisioned(&dana, &rid, "billing-reports-read", "dana")
        .await;
    let iam = s.iam("dana").await;
    let policy_name = format!("lapse-billing-reports-read-{rid}");
    let document = &iam.inline_policies[&policy_name];
    let expires: chrono::DateTime<chrono::Utc> = active["window"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        document_expiry(document),
        Some(expires),
        "IAM bounds the grant by aws:CurrentTime"
    );

    s.pass(&active);
    let run = s.workflow(&rid).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    for state in [
        "Grant",
        "NotifyGranted",
        "WaitUntilExpiry",
        "Revoke",
        "Verify",
        "NotifyRevoked",
        "Done",
    ] {
        assert!(
            run.states.contains(&state.to_owned()),
            "{state} missing from {:?}",
            run.states
        );
    }
    assert_eq!(dana.get(&rid).await.unwrap()["status"], "verified");
    assert!(
        s.iam("dana").await.inline_policies.is_empty(),
        "IAM no longer holds the grant"
    );
    let audit = s.audit(&rid).await;
    for action in [
        "request.submitted",
        "workflow.started",
        "grant.activated",
        "grant.provisioned",
        "grant.revoked",
        "grant.verified",
    ] {
        assert_eq!(
            audit.iter().filter(|a| *a == action).count(),
            1,
            "{action} once in {audit:?}"
        );
    }
    // moto keeps no user boundaries (a declared emulator gap): the grant says it
    // did not check one, rather than passing in silence.
    let activated = s
        .audit_events(&rid)
        .await
        .into_iter()
        .find(|e| e.action == "grant.activated")
        .unwrap();
    assert_eq!(
        activated.reason,
        "approved request granted (permissions boundary not checked: this IAM reports no user boundaries)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn medium_risk_goes_to_the_resource_owner() {
    let s = Stack::start().await;
    let carl = s.as_user("carl");
    let created = carl
        .request(
            "staging-logs-read",
            Some("4h"),
            "debug the deploy",
            Some("INC-7"),
        )
        .await
        .unwrap();
    assert_eq!(created["status"], "pending");
    assert_eq!(created["routing"]["route"]["kind"], "owner");
    let rid = id(&created);
    assert!(
        s.stack.workflows.launched().is_empty(),
        "nothing starts before approval"
    );

    // Someone outside the owner group cannot approve; the owner can.
    let err = s.as_user("bill").decide(&rid, true, "").await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    let pending = s.as_user("olga").pending().await.unwrap();
    assert_eq!(pending["requests"].as_array().unwrap().len(), 1);
    let decided = s
        .as_user("olga")
        .decide(&rid, true, "ok for INC-7")
        .await
        .unwrap();
    assert_eq!(decided["outcome"]["outcome"], "approved");

    let active = s
        .provisioned(&carl, &rid, "staging-logs-read", "carl")
        .await;
    s.pass(&active);
    assert_eq!(s.workflow(&rid).await.status, "SUCCEEDED");
    assert_eq!(carl.get(&rid).await.unwrap()["status"], "verified");
    assert!(s.iam("carl").await.inline_policies.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_risk_needs_two_distinct_approvers_and_starts_once() {
    let s = Stack::start().await;
    let erin = s.as_user("erin");
    let created = erin
        .request(
            "prod-db-admin",
            Some("2h"),
            "CHG-1042 replica rotation",
            Some("CHG-1042"),
        )
        .await
        .unwrap();
    let rid = id(&created);
    assert_eq!(created["routing"]["route"]["kind"], "dual");

    let first = s
        .as_user("mia")
        .decide(&rid, true, "manager ok")
        .await
        .unwrap();
    assert_eq!(first["outcome"]["outcome"], "recorded");
    assert_eq!(
        erin.decide(&rid, true, "me").await.unwrap_err().status(),
        Some(403),
        "no self-approval"
    );
    assert_eq!(
        s.as_user("mia").decide(&rid, true, "again").await.unwrap()["outcome"]["outcome"],
        "already_recorded"
    );
    assert!(s.stack.workflows.launched().is_empty());
    let second = s
        .as_user("sam")
        .decide(&rid, true, "security ok")
        .await
        .unwrap();
    assert_eq!(second["outcome"]["outcome"], "approved");
    // A retried approval re-issues the same idempotent start: still one execution.
    s.as_user("sam")
        .decide(&rid, true, "security ok")
        .await
        .unwrap();
    assert_eq!(s.stack.workflows.launched(), std::slice::from_ref(&rid));

    let active = s.provisioned(&erin, &rid, "prod-db-admin", "erin").await;
    s.pass(&active);
    assert_eq!(s.workflow(&rid).await.status, "SUCCEEDED");
    assert!(s.iam("erin").await.inline_policies.is_empty());
    let audit = s.audit(&rid).await;
    assert_eq!(
        audit
            .iter()
            .filter(|a| *a == "request.approval_recorded")
            .count(),
        1
    );
    assert_eq!(audit.iter().filter(|a| *a == "request.approved").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_ends_the_request_and_grants_nothing() {
    let s = Stack::start().await;
    let carl = s.as_user("carl");
    let rid = id(&carl
        .request("staging-logs-read", Some("4h"), "curious", None)
        .await
        .unwrap());
    let denied = s
        .as_user("olga")
        .decide(&rid, false, "no ticket")
        .await
        .unwrap();
    assert_eq!(denied["outcome"]["outcome"], "denied");
    assert_eq!(
        s.as_user("olga")
            .decide(&rid, true, "changed my mind")
            .await
            .unwrap_err()
            .status(),
        Some(409)
    );
    assert!(s.stack.workflows.launched().is_empty());
    assert!(s.iam("carl").await.inline_policies.is_empty());
    assert!(s.audit(&rid).await.contains(&"request.denied".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_revocation_works_with_a_running_execution() {
    let s = Stack::start().await;
    let dana = s.as_user("dana");
    let rid = id(&dana
        .request("billing-reports-read", Some("45m"), "quick look", None)
        .await
        .unwrap());
    let active = s
        .provisioned(&dana, &rid, "billing-reports-read", "dana")
        .await;
    assert_eq!(
        s.as_user("carl").revoke(&rid).await.unwrap_err().status(),
        Some(404),
        "strangers cannot"
    );
    let revoked = dana.revoke(&rid).await.unwrap();
    assert_eq!(revoked["revoke"]["outcome"], "revoked");
    assert_eq!(revoked["verify"]["verified"], true);
    assert!(s.iam("dana").await.inline_policies.is_empty());
    assert_eq!(
        dana.get(&rid).await.unwrap()["revoke_cause"],
        "early_revoke"
    );

    // The execution still waits; when it wakes it finds the grant revoked and verifies again.
    s.pass(&active);
    let run = s.workflow(&rid).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    assert_eq!(run.output.unwrap()["revoke"]["outcome"], "already_revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_moves_the_end_of_a_running_grant() {
    let s = Stack::start().await;
    let dana = s.as_user("dana");
    let rid = id(&dana
        .request("billing-reports-read", Some("30m"), "reconcile", None)
        .await
        .unwrap());
    let active = s
        .provisioned(&dana, &rid, "billing-reports-read", "dana")
        .await;
    let old_end: chrono::DateTime<chrono::Utc> = active["window"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let extension = dana
        .extend(&rid, "2h", "reconciliation is taking longer")
        .await
        .unwrap();
    assert_eq!(
        extension["status"], "pending",
        "2h more is routed to the owner"
    );
    let eid = id(&extension);
    s.as_user("bill").decide(&eid, true, "fine").await.unwrap();
    let merged = s.workflow(&eid).await;
    assert_eq!(merged.status, "SUCCEEDED", "{merged:?}");
    assert!(merged.states.contains(&"ExtendGrant".to_owned()));

    let extended = dana.get(&rid).await.unwrap();
    let new_end: chrono::DateTime<chrono::Utc> = extended["window"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(new_end - old_end, chrono::TimeDelta::hours(2));
    let document =
        &s.iam("dana").await.inline_policies[&format!("lapse-billing-reports-read-{rid}")];
    assert_eq!(
        document_expiry(document),
        Some(new_end),
        "IAM's own bound moved too"
    );

    // At the old end the running execution re-arms its wait instead of revoking.
    s.stack
        .clock
        .advance_to(old_end + chrono::TimeDelta::seconds(1));
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(dana.get(&rid).await.unwrap()["status"], "active");
    assert!(!s.iam("dana").await.inline_policies.is_empty());
    s.pass(&extended);
    let run = s.workflow(&rid).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    assert!(run.states.contains(&"Rearm".to_owned()), "{:?}", run.states);
    assert_eq!(dana.get(&eid).await.unwrap()["status"], "verified");
    assert!(s.iam("dana").await.inline_policies.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_revoke_is_retried() {
    let s = Stack::start().await;
    s.stack
        .faults
        .fail_next("revoke", "Lapse.Transient", "IAM is throttling requests");
    let dana = s.as_user("dana");
    let rid = id(&dana
        .request("billing-reports-read", Some("20m"), "retry test", None)
        .await
        .unwrap());
    let active = s
        .provisioned(&dana, &rid, "billing-reports-read", "dana")
        .await;
    s.pass(&active);
    let run = s.workflow(&rid).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    assert!(run.retries.contains(&"Revoke".to_owned()), "{run:?}");
    assert!(s.iam("dana").await.inline_policies.is_empty());
    assert_eq!(dana.get(&rid).await.unwrap()["status"], "verified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_failure_surfaces_as_a_failure() {
    let s = Stack::start().await;
    let dana = s.as_user("dana");
    let rid = id(&dana
        .request("billing-reports-read", Some("20m"), "drift test", None)
        .await
        .unwrap());
    let active = s
        .provisioned(&dana, &rid, "billing-reports-read", "dana")
        .await;
    // Something re-grants the policy behind Lapse's back before every verification.
    let iam = aws_sdk_iam::Client::new(&s.stack.sdk);
    let name = format!("lapse-billing-reports-read-{rid}");
    let user = s.user("dana");
    for _ in 0..3 {
        let (iam, name, user) = (iam.clone(), name.clone(), user.clone());
        s.stack.faults.before_next("verify", move || {
            let (iam, name, user) = (iam.clone(), name.clone(), user.clone());
            async move {
                iam.put_user_policy()
                    .user_name(user)
                    .policy_name(name)
                    .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#)
                    .send()
                    .await
                    .unwrap();
            }
        });
    }
    s.pass(&active);
    let run = s.workflow(&rid).await;
    assert_eq!(run.status, "FAILED", "{run:?}");
    assert_eq!(run.error.as_deref(), Some("Lapse.GrantLifecycleFailed"));
    assert!(run.states.contains(&"RecordFailure".to_owned()));
    assert!(
        run.retries.contains(&"Verify".to_owned()),
        "IAM consistency retries first"
    );
    let request = dana.get(&rid).await.unwrap();
    assert_eq!(request["status"], "revoked", "never reported verified");
    let audit = s.audit(&rid).await;
    assert!(
        audit.contains(&"grant.verification_failed".to_owned()),
        "{audit:?}"
    );
    assert!(audit.contains(&"workflow.failed".to_owned()), "{audit:?}");
}
