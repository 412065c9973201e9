//! Vendor access through the local stack: sponsored over the API, two approvals,
//! the grant lifecycle's vendor branch in the ASL interpreter (the temporary user
//! made, granted, deactivated, held, deleted) on the stack's clock, against the
//! emulator's IAM and Secrets Manager, read back at every step.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use chrono::{DateTime, TimeDelta, Utc};
use lapse_core::access::grant::document_expiry;
use serde_json::Value;

use crate::support::{Stack, WAIT, id};

async fn user_exists(s: &Stack, user: &str) -> bool {
    aws_sdk_iam::Client::new(&s.stack.sdk)
        .get_user()
        .user_name(user)
        .send()
        .await
        .is_ok()
}

/// dana sponsors vendor `id` for `staging-logs-read` (2 h): the request id and the
/// vendor's user name, before any approval.
async fn sponsored(s: &Stack, vendor: &str, ticket: &str) -> (String, String) {
    let created = s
        .as_user("dana")
        .sponsor_vendor(
            (vendor, &format!("ops@{vendor}.example")),
            "staging-logs-read",
            Some("2h"),
            "migrate the log pipeline",
            ticket,
        )
        .await
        .unwrap();
    let user = created["vendor"]["user"].as_str().unwrap().to_owned();
    (id(&created), user)
}

/// Moves the clock to `at` and waits until the workflow has passed `state`.
async fn until_state(s: &Stack, rid: &str, at: DateTime<Utc>, check: impl AsyncFn() -> bool) {
    s.stack.clock.advance_to(at);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{rid}: never reached"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_gets_a_temporary_user_that_is_deactivated_held_and_deleted() {
    let s = Stack::start().await;
    let iam = aws_sdk_iam::Client::new(&s.stack.sdk);
    let secrets = aws_sdk_secretsmanager::Client::new(&s.stack.sdk);
    let dana = s.as_user("dana");

    // The sponsor asks; two approvals whatever the score.
    let err = dana
        .sponsor_vendor(
            ("acme", "ops@acme.example"),
            "staging-logs-read",
            Some("4h"),
            "pipeline",
            "",
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    let created = dana
        .sponsor_vendor(
            ("acme", "ops@acme.example"),
            "staging-logs-read",
            Some("2h"),
            "migrate the log pipeline",
            "PRJ-42",
        )
        .await
        .unwrap();
    assert_eq!(created["status"], "pending", "{created}");
    assert_eq!(created["routing"]["route"]["kind"], "dual");
    let rid = id(&created);
    let vendor = created["vendor"]["user"].as_str().unwrap().to_owned();
    assert!(vendor.starts_with("vendor-acme-"), "{vendor}");
    s.as_user("mia").decide(&rid, true, "ok").await.unwrap();
    s.as_user("sam").decide(&rid, true, "ok").await.unwrap();

    // The temporary user: managed, under the boundary, MFA and network limits.
    let active = dana.wait_for(&rid, "active", WAIT).await.unwrap();
    assert_eq!(active["status"], "active", "{active}");
    // moto ignores the permissions boundary CreateUser carries (and has no
    // PutUserPermissionsBoundary), so it cannot be read back here; the role may
    // create users only with it (tests/template.rs).
    assert!(user_exists(&s, &vendor).await);
    let tags: Vec<(String, String)> = iam
        .list_user_tags()
        .user_name(&vendor)
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    for (key, value) in [
        ("lapse:managed", "true".to_owned()),
        ("lapse:sponsor", s.user("dana")),
        ("lapse:project", "PRJ-42".to_owned()),
        ("lapse:vendor", "ops@acme.example".to_owned()),
    ] {
        assert!(tags.contains(&(key.to_owned(), value)), "{key}: {tags:?}");
    }
    assert!(
        iam.get_login_profile()
            .user_name(&vendor)
            .send()
            .await
            .is_ok()
    );
    // The grant step records the window before it writes IAM: wait for IAM.
    let policy = format!("lapse-staging-logs-read-{rid}");
    let deadline = tokio::time::Instant::now() + WAIT;
    let held = loop {
        let held = s.iam_of(&vendor).await;
        if held.inline_policies.contains_key(&policy) {
            break held;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "IAM never received {policy}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let base: Value = held.inline_policies["lapse-vendor-base"].clone();
    assert_eq!(
        base["Statement"][1]["Condition"]["NotIpAddress"]["aws:SourceIp"],
        serde_json::json!(["203.0.113.0/24", "198.51.100.0/24"])
    );
    let grant = &held.inline_policies[&policy];
    let expires: DateTime<Utc> = active["window"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(document_expiry(grant), Some(expires));
    assert!(
        s.iam("dana").await.inline_policies.is_empty(),
        "the grant is the vendor's, not the sponsor's"
    );
    // The first password: for the sponsor alone, until the window ends.
    let secret = format!("lapse/vendor/{vendor}");
    let policy = secrets
        .get_resource_policy()
        .secret_id(&secret)
        .send()
        .await
        .unwrap();
    let policy: Value = serde_json::from_str(policy.resource_policy().unwrap()).unwrap();
    let statement = &policy["Statement"][0];
    assert!(
        statement["Principal"]["AWS"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":user/{}", s.user("dana"))),
        "{policy}"
    );
    assert!(statement["Condition"]["DateLessThan"]["aws:CurrentTime"].is_string());
    // Everyone else is denied explicitly: an identity policy reaching lapse/* or *
    // does not read a vendor's password.
    let denied_readers = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["Sid"] == "NobodyElseReads")
        .unwrap_or_else(|| panic!("{policy}"));
    assert_eq!(denied_readers["Effect"], "Deny", "{policy}");
    assert_eq!(denied_readers["Principal"], "*", "{policy}");
    let allowed = denied_readers["Condition"]["ArnNotEquals"]["aws:PrincipalArn"].to_string();
    assert!(
        allowed.contains(&format!(":user/{}", s.user("dana"))) && allowed.contains(":role/"),
        "{policy}"
    );
    // Tagged with the request it was made for.
    let described = secrets
        .describe_secret()
        .secret_id(&secret)
        .send()
        .await
        .unwrap();
    assert!(
        described
            .tags()
            .iter()
            .any(|t| t.key() == Some("lapse:request") && t.value() == Some(rid.as_str())),
        "{described:?}"
    );

    // At the end: revoked, verified, deactivated, the secret gone.
    s.pass(&active);
    let deactivated = async || {
        s.audit(&rid)
            .await
            .contains(&"vendor.deactivated".to_owned())
    };
    until_state(&s, &rid, expires + TimeDelta::seconds(1), deactivated).await;
    assert!(
        iam.get_login_profile()
            .user_name(&vendor)
            .send()
            .await
            .is_err()
    );
    let left = s.iam_of(&vendor).await;
    assert_eq!(
        left.inline_policies.keys().collect::<Vec<_>>(),
        ["lapse-revoke-older-sessions"],
        "{left:?}"
    );
    assert!(
        secrets
            .describe_secret()
            .secret_id(&secret)
            .send()
            .await
            .is_err(),
        "the password's secret is deleted"
    );

    // After the retention, under a legal hold: kept.
    let operator = s.stack.operator_api().unwrap();
    operator
        .operator_post(
            &format!("users/{vendor}/controls"),
            serde_json::json!({ "legal_hold": true, "reason": "LEGAL-7" }),
        )
        .await
        .unwrap();
    let retire_at = expires + TimeDelta::days(30);
    let retained = async || s.audit(&rid).await.contains(&"vendor.retained".to_owned());
    until_state(&s, &rid, retire_at + TimeDelta::seconds(1), retained).await;
    assert!(user_exists(&s, &vendor).await, "held users are kept");

    // The hold lifted: deleted at the next weekly look, and IAM no longer knows it.
    operator
        .operator_post(
            &format!("users/{vendor}/controls"),
            serde_json::json!({ "legal_hold": false, "reason": "LEGAL-7 closed" }),
        )
        .await
        .unwrap();
    s.stack
        .clock
        .advance_to(retire_at + TimeDelta::days(7) + TimeDelta::seconds(2));
    let run = s.workflow(&rid).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    for state in [
        "ProvisionVendor",
        "Grant",
        "Verify",
        "DeactivateVendor",
        "WaitForRetention",
        "WaitWhileHeld",
        "RetireVendor",
    ] {
        assert!(run.states.contains(&state.to_owned()), "{state}: {run:?}");
    }
    assert!(
        !user_exists(&s, &vendor).await,
        "deleted after the retention"
    );
    let audit = s.audit(&rid).await;
    for action in [
        "vendor.provisioned",
        "vendor.deactivated",
        "vendor.retained",
        "vendor.deleted",
    ] {
        assert_eq!(
            audit.iter().filter(|a| *a == action).count(),
            1,
            "{action} in {audit:?}"
        );
    }
}

/// A vendor workflow that fails after the vendor's user was made (here the grant
/// step, refused) must not leave the vendor a console login: the failure path
/// takes everything from the user and deletes the password's secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_whose_grant_fails_keeps_no_console_login() {
    let s = Stack::start().await;
    let iam = aws_sdk_iam::Client::new(&s.stack.sdk);
    let (rid, vendor) = sponsored(&s, "initech", "PRJ-44").await;
    s.stack
        .faults
        .fail_next("grant", "Lapse.Denied", "refused for the test");
    s.as_user("mia").decide(&rid, true, "ok").await.unwrap();
    s.as_user("sam").decide(&rid, true, "ok").await.unwrap();
    let run = s.workflow(&rid).await;
    assert_eq!(run.status, "FAILED", "{run:?}");
    for state in ["ProvisionVendor", "Grant", "RecordFailure", "ContainVendor"] {
        assert!(run.states.contains(&state.to_owned()), "{state}: {run:?}");
    }
    assert!(user_exists(&s, &vendor).await);
    assert!(
        iam.get_login_profile()
            .user_name(&vendor)
            .send()
            .await
            .is_err(),
        "the vendor's user keeps its console login"
    );
    let policies = iam
        .list_user_policies()
        .user_name(&vendor)
        .send()
        .await
        .unwrap();
    assert_eq!(
        policies.policy_names(),
        [lapse_core::revocation::plan::SESSION_DENY_POLICY],
        "only the session deny is left"
    );
    assert!(
        aws_sdk_secretsmanager::Client::new(&s.stack.sdk)
            .get_secret_value()
            .secret_id(format!("lapse/vendor/{vendor}"))
            .send()
            .await
            .is_err(),
        "the first password's secret is gone"
    );
    assert!(s.audit(&rid).await.contains(&"vendor.contained".to_owned()));
}

/// A secret planted under the vendor's predictable name before the engagement is
/// provisioned is never adopted as the vendor's password: provisioning refuses
/// it, the failure path leaves the vendor's user without a console login, and
/// the planted value is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_password_secret_is_refused_not_adopted() {
    let s = Stack::start().await;
    let iam = aws_sdk_iam::Client::new(&s.stack.sdk);
    let secrets = aws_sdk_secretsmanager::Client::new(&s.stack.sdk);
    let (rid, vendor) = sponsored(&s, "umbrella", "PRJ-45").await;
    let name = format!("lapse/vendor/{vendor}");
    secrets
        .create_secret()
        .name(&name)
        .secret_string("Attacker-Knows-1!")
        .send()
        .await
        .unwrap();
    s.as_user("mia").decide(&rid, true, "ok").await.unwrap();
    s.as_user("sam").decide(&rid, true, "ok").await.unwrap();
    let run = s.workflow(&rid).await;
    assert_eq!(run.status, "FAILED", "{run:?}");
    assert!(
        run.caught.contains(&"ProvisionVendor".to_owned()),
        "{run:?}"
    );
    assert!(
        iam.get_login_profile()
            .user_name(&vendor)
            .send()
            .await
            .is_err(),
        "the vendor's user has a console login"
    );
    let value = secrets
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(value.secret_string(), Some("Attacker-Knows-1!"));
    assert!(
        !s.audit(&rid)
            .await
            .contains(&"vendor.provisioned".to_owned())
    );
}
