//! HR webhook → EventBridge (moto matches the rule patterns) → the real
//! `revocation.asl.json` in the ASL interpreter → verified revocation, with the
//! webhook's security cases, duplicated deliveries and an interrupted run.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use crate::support::{Stack, WAIT};
use chrono::Utc;
use lapse_core::revocation::webhook::sign;
use lapse_local::provision::{DEV_WEBHOOK_SIGNING_SECRET, DEV_WEBHOOK_TOKEN};

struct Delivery<'a> {
    token: &'a str,
    secret: &'a str,
    timestamp: i64,
    body: String,
}

impl Delivery<'_> {
    fn new(body: String) -> Self {
        Delivery {
            token: DEV_WEBHOOK_TOKEN,
            secret: DEV_WEBHOOK_SIGNING_SECRET,
            timestamp: Utc::now().timestamp(),
            body,
        }
    }
}

async fn post(s: &Stack, d: &Delivery<'_>) -> (u16, serde_json::Value) {
    let signature = sign(d.secret, "msg_1", d.timestamp, d.body.as_bytes()).unwrap_or_default();
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/hr-events", s.stack.url))
        .bearer_auth(d.token)
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", d.timestamp.to_string())
        .header("webhook-signature", signature)
        .header("content-type", "application/json")
        .body(d.body.clone())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

fn termination(user: &str, event_id: &str) -> String {
    let mut body: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            lapse_testkit::workspace_root().join("events/hr-webhook/termination-body.json"),
        )
        .unwrap(),
    )
    .unwrap();
    body["user"]["username"] = serde_json::json!(user);
    body["event_id"] = serde_json::json!(event_id);
    body["timestamp"] = serde_json::json!(Utc::now().to_rfc3339());
    body.to_string()
}

async fn staff(s: &Stack, name: &str) -> String {
    let user = s.user(name);
    s.stack.add_users(&[&user]).await.unwrap();
    let iam = aws_sdk_iam::Client::new(&s.stack.sdk);
    iam.create_login_profile()
        .user_name(&user)
        .password("Initial-Passw0rd!")
        .send()
        .await
        .unwrap();
    iam.create_access_key()
        .user_name(&user)
        .send()
        .await
        .unwrap();
    lapse_local::provision::ensure_group(&iam, "engineers")
        .await
        .unwrap();
    iam.add_user_to_group()
        .user_name(&user)
        .group_name("engineers")
        .send()
        .await
        .unwrap();
    user
}

async fn holds_nothing(s: &Stack, user: &str) -> bool {
    let iam = aws_sdk_iam::Client::new(&s.stack.sdk);
    let login = iam.get_login_profile().user_name(user).send().await.is_ok();
    let keys = iam.list_access_keys().user_name(user).send().await.unwrap();
    let active = keys
        .access_key_metadata()
        .iter()
        .any(|k| k.status() == Some(&aws_sdk_iam::types::StatusType::Active));
    let groups = iam
        .list_groups_for_user()
        .user_name(user)
        .send()
        .await
        .unwrap();
    !login && !active && groups.groups().is_empty()
}

async fn wait_runs(s: &Stack, count: usize) -> Vec<lapse_local::workflows::WorkflowRun> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let names = s.stack.revocations.launched();
        if names.len() >= count {
            let mut runs = Vec::new();
            for name in &names {
                runs.push(s.stack.revocations.wait(name, WAIT).await.unwrap());
            }
            return runs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} execution(s) started",
            names.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_security_cases() {
    let s = Stack::start().await;
    let body = termination(&s.user("nobody"), &lapse_testkit::unique_name("evt"));
    let refused = |status: u16, d: Delivery<'static>| {
        let s = &s;
        async move {
            let (got, answer) = post(s, &d).await;
            assert_eq!(got, status, "{answer}");
            answer
        }
    };
    // Missing or wrong bearer token, wrong signing key, stale or future timestamps.
    let mut d = Delivery::new(body.clone());
    d.token = "wrong-token";
    refused(401, d).await;
    let mut d = Delivery::new(body.clone());
    d.secret = "whsec_c29tZW9uZS1lbHNlcy1zaWduaW5nLWtleQ==";
    let answer = refused(401, d).await;
    assert_eq!(answer["message"], "no valid signature");
    let mut d = Delivery::new(body.clone());
    d.timestamp -= 6 * 60;
    assert!(
        refused(401, d).await["message"]
            .as_str()
            .unwrap()
            .contains("5 minutes")
    );
    let mut d = Delivery::new(body.clone());
    d.timestamp += 6 * 60;
    refused(401, d).await;
    // Bodies over 256 KB, malformed JSON, unknown event types: precise refusals.
    refused(
        413,
        Delivery::new(format!("{{\"pad\": \"{}\"}}", "x".repeat(260 * 1024))),
    )
    .await;
    let answer = refused(400, Delivery::new("{not json".into())).await;
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );
    let answer = refused(
        400,
        Delivery::new(body.replace("user_terminated", "user_promoted")),
    )
    .await;
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("unknown event_type `user_promoted`")
    );
    // No signature headers at all.
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/hr-events", s.stack.url))
        .bearer_auth(DEV_WEBHOOK_TOKEN)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // Accepted once; the same event again is acknowledged without re-processing;
    // the same id with another body is refused.
    let (status, answer) = post(&s, &Delivery::new(body.clone())).await;
    assert_eq!(status, 202, "{answer}");
    let (status, answer) = post(&s, &Delivery::new(body.clone())).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("already_accepted"))
    );
    let (status, answer) = post(&s, &Delivery::new(body.replace("involuntary", "voluntary"))).await;
    assert_eq!(status, 409);
    assert_eq!(
        answer["error"], "Lapse.InvalidState",
        "refused for good, not a retryable conflict: {answer}"
    );
}

/// Unreadable credentials are the service's fault, not the sender's: 503 with
/// Retry-After (HR systems retry a 5xx, not a 4xx), naming neither the secret
/// nor the error; the sender's retry goes through once the secret is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_webhook_credentials_answer_503_and_the_retry_is_accepted() {
    let s = Stack::start().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&s.stack.sdk);
    let id = s.stack.config.webhook_secret_id.clone();
    let value = secrets
        .get_secret_value()
        .secret_id(&id)
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_owned();
    secrets
        .delete_secret()
        .secret_id(&id)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let body = termination(&s.user("nobody"), &lapse_testkit::unique_name("evt"));
    let signature_time = Utc::now().timestamp();
    let delivery = Delivery {
        timestamp: signature_time,
        ..Delivery::new(body.clone())
    };
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/hr-events", s.stack.url))
        .bearer_auth(delivery.token)
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", signature_time.to_string())
        .header(
            "webhook-signature",
            sign(delivery.secret, "msg_1", signature_time, body.as_bytes()).unwrap(),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("30")
    );
    let text = response.text().await.unwrap();
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["error"], "Lapse.Unavailable", "{text}");
    assert!(
        !text.contains(&id) && !text.contains("secret") && !text.contains("arn:"),
        "the answer names the secret or the error: {text}"
    );

    secrets
        .create_secret()
        .name(&id)
        .secret_string(value)
        .send()
        .await
        .unwrap();
    let (status, answer) = post(&s, &delivery).await;
    assert_eq!(status, 202, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_posted_to_the_webhook_ends_in_a_verified_revocation() {
    let s = Stack::start().await;
    let user = staff(&s, "jdoe").await;
    let event_id = lapse_testkit::unique_name("evt");
    let (status, answer) = post(&s, &Delivery::new(termination(&user, &event_id))).await;
    assert_eq!(status, 202, "{answer}");

    let runs = wait_runs(&s, 1).await;
    assert_eq!(runs[0].status, "SUCCEEDED", "{:?}", runs[0]);
    for state in [
        "OpenCase",
        "Validate",
        "WaitUntilEffective",
        "Snapshot",
        "Revoke",
        "Record",
        "Notify",
        "Verify",
        "Done",
    ] {
        assert!(
            runs[0].states.contains(&state.to_owned()),
            "{state} missing: {:?}",
            runs[0].states
        );
    }
    assert!(
        holds_nothing(&s, &user).await,
        "IAM read back after the workflow"
    );
    let audit = lapse_aws::dynamodb::DynamoDbAuditLog::new(
        aws_sdk_dynamodb::Client::new(&s.stack.sdk),
        &s.stack.config.tables.audit,
    );
    let chain = lapse_core::ports::AuditLog::chain(&audit, &format!("user#{user}"))
        .await
        .unwrap();
    let actions: Vec<_> = chain.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "revocation.received",
            "person.updated",
            "revocation.snapshot",
            "revocation.applied",
            "revocation.verified"
        ]
    );
    let applied = &chain[3];
    assert_eq!(applied.after["trigger"]["event_id"], event_id.as_str());
    assert!(applied.before["before_state"]["login_profile"] == true);

    // Their identity provider's token may still be valid: Lapse refuses them anyway.
    let api = lapse_cli::client::ApiClient::new(
        &s.stack.url,
        s.stack.token(&user, &[], "employee").unwrap(),
    );
    let refused = api
        .request("billing-reports-read", Some("30m"), "one more thing", None)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    assert!(
        refused.to_string().contains("access has been revoked"),
        "{refused}"
    );

    // A restore (with its approval) lets them in again.
    let r = lapse_lambda::wiring::Revocations::from_env(
        &s.stack.config.env(),
        &s.stack.sdk,
        ::revocation::TOPICS,
    )
    .await
    .unwrap();
    let id = lapse_core::identity::PrincipalId::new(user.as_str()).unwrap();
    lapse_core::revocation::usecase::restore(
        &r,
        &id,
        Utc::now() + chrono::TimeDelta::seconds(1),
        "CHG-5",
        "operator",
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(
        api.request("billing-reports-read", Some("30m"), "back at work", None)
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_delivery_revokes_once_and_audits_once() {
    let s = Stack::start().await;
    let user = staff(&s, "dup").await;
    let body = termination(&user, &lapse_testkit::unique_name("evt"));
    let (status, _) = post(&s, &Delivery::new(body.clone())).await;
    assert_eq!(status, 202);
    // EventBridge delivers at least once: the same event reaches the workflow twice.
    let event: serde_json::Value = serde_json::json!({
        "version": "0", "id": "dup-delivery", "detail-type": "user_terminated", "source": "lapse.hr",
        "account": "123456789012", "time": Utc::now().to_rfc3339(), "region": "us-east-1", "resources": [],
        "detail": lapse_core::revocation::hr::HrEvent::parse(body.as_bytes()).unwrap()
    });
    lapse_core::ports::WorkflowStarter::start(&s.stack.revocations, "duplicate-delivery", &event)
        .await
        .unwrap();
    let runs = wait_runs(&s, 2).await;
    assert!(runs.iter().all(|r| r.status == "SUCCEEDED"), "{runs:?}");
    assert!(holds_nothing(&s, &user).await);
    let audit = lapse_aws::dynamodb::DynamoDbAuditLog::new(
        aws_sdk_dynamodb::Client::new(&s.stack.sdk),
        &s.stack.config.tables.audit,
    );
    let chain = lapse_core::ports::AuditLog::chain(&audit, &format!("user#{user}"))
        .await
        .unwrap();
    for action in [
        "revocation.received",
        "revocation.applied",
        "revocation.verified",
    ] {
        assert_eq!(
            chain.iter().filter(|e| e.action == action).count(),
            1,
            "{action} once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_interrupted_half_way_completes_when_re_driven() {
    let s = Stack::start().await;
    let user = staff(&s, "halfway").await;
    // The permissions lane dies for good (not a retryable error): the run fails after
    // the credentials lane has already acted.
    s.stack.faults.fail_next(
        "revocation/apply/permissions",
        "Lapse.Validation",
        "worker lost",
    );
    let (status, _) = post(
        &s,
        &Delivery::new(termination(&user, &lapse_testkit::unique_name("evt"))),
    )
    .await;
    assert_eq!(status, 202);
    let runs = wait_runs(&s, 1).await;
    assert_eq!(runs[0].status, "FAILED", "{:?}", runs[0]);
    assert!(runs[0].states.contains(&"RecordFailure".to_owned()));
    let iam = aws_sdk_iam::Client::new(&s.stack.sdk);
    assert!(
        iam.get_login_profile()
            .user_name(&user)
            .send()
            .await
            .is_err(),
        "credentials went first"
    );
    assert_eq!(
        iam.list_groups_for_user()
            .user_name(&user)
            .send()
            .await
            .unwrap()
            .groups()
            .len(),
        1,
        "permissions did not"
    );

    // Re-drive the case: the plan comes from IAM as it is now, so only the rest is done.
    let table = lapse_aws::revocations::DynamoDbRevocations::new(
        aws_sdk_dynamodb::Client::new(&s.stack.sdk),
        &s.stack.config.revocations_table,
    );
    let dynamo = aws_sdk_dynamodb::Client::new(&s.stack.sdk);
    let scan = dynamo
        .scan()
        .table_name(&s.stack.config.revocations_table)
        .send()
        .await
        .unwrap();
    let case_id = scan
        .items()
        .iter()
        .filter_map(|i| i.get("pk").and_then(|v| v.as_s().ok()))
        .find_map(|pk| pk.strip_prefix("case#"))
        .unwrap()
        .to_owned();
    lapse_core::ports::WorkflowStarter::start(
        &s.stack.revocations,
        "redrive",
        &serde_json::json!({ "case": { "case_id": case_id } }),
    )
    .await
    .unwrap();
    let redriven = s.stack.revocations.wait("redrive", WAIT).await.unwrap();
    assert_eq!(redriven.status, "SUCCEEDED", "{redriven:?}");
    assert!(holds_nothing(&s, &user).await);
    let case = lapse_core::revocation::ports::CaseStore::get(&table, &case_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        case.status(),
        lapse_core::revocation::case::CaseStatus::Verified
    );
    assert!(
        case.before().as_ref().unwrap().login_profile,
        "the before-state is from before the first run"
    );
}

/// With the HR sender's networks listed, a delivery from anywhere else is
/// refused before a secret is read or the body looked at, even when it is
/// correctly signed; the same delivery from a listed network is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_hr_senders_networks_may_deliver_when_listed() {
    let s = Stack::start().await;
    let env = lapse_lambda::config::Env::from_pairs(
        s.stack
            .config
            .env_pairs()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .chain([(
                hr_webhook::SENDER_NETWORKS.to_owned(),
                "203.0.113.0/24, 2001:db8::/32".to_owned(),
            )]),
    );
    let deps = hr_webhook::Deps::from_env(&env, &s.stack.sdk)
        .await
        .unwrap();
    let event_id = lapse_testkit::unique_name("evt");
    let body = termination(&s.user("nobody"), &event_id);
    let timestamp = Utc::now().timestamp();
    let mut event = Stack::sample("hr-webhook/termination-request.json");
    event["body"] = serde_json::json!(body);
    event["headers"]["authorization"] = serde_json::json!(format!("Bearer {DEV_WEBHOOK_TOKEN}"));
    event["headers"]["webhook-timestamp"] = serde_json::json!(timestamp.to_string());
    event["headers"]["webhook-signature"] = serde_json::json!(
        sign(
            DEV_WEBHOOK_SIGNING_SECRET,
            event["headers"]["webhook-id"].as_str().unwrap(),
            timestamp,
            body.as_bytes()
        )
        .unwrap()
    );
    let deliver = |from: &str| {
        let mut event = event.clone();
        event["requestContext"]["http"]["sourceIp"] = serde_json::json!(from);
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let deps = &deps;
        async move {
            let response = hr_webhook::handler(deps, request).await.unwrap();
            (
                response.status().as_u16(),
                String::from_utf8(response.body().to_vec()).unwrap(),
            )
        }
    };
    // The sample's own address (198.51.100.7) is not listed.
    let (status, text) = deliver("198.51.100.7").await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("not one of the HR sender's networks"),
        "{text}"
    );
    // Nothing was claimed: the listed sender's delivery is new, not a replay.
    let (status, text) = deliver("203.0.113.40").await;
    assert_eq!(status, 202, "{text}");
}

/// The bus is not the way in: an HR event put on it by anything but the webhook
/// (any in-account principal allowed `events:PutEvents`) starts the workflow,
/// which refuses it before a case is opened, and the person keeps everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hr_event_put_on_the_bus_without_the_webhook_revokes_nothing() {
    use lapse_core::revocation::ports::EventBus;
    let s = Stack::start().await;
    let user = staff(&s, "bypassed").await;
    let event = lapse_core::revocation::hr::HrEvent::parse(
        termination(&user, &lapse_testkit::unique_name("evt")).as_bytes(),
    )
    .unwrap();
    lapse_aws::eventbridge::EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(&s.stack.sdk),
        s.stack.config.event_bus.clone(),
    )
    .publish(&event)
    .await
    .unwrap();
    let runs = wait_runs(&s, 1).await;
    assert_eq!(runs[0].status, "FAILED", "{:?}", runs[0]);
    assert!(
        runs[0].caught.contains(&"OpenCase".to_owned()),
        "{:?}",
        runs[0]
    );
    let cases = lapse_aws::revocations::DynamoDbRevocations::new(
        aws_sdk_dynamodb::Client::new(&s.stack.sdk),
        s.stack.config.revocations_table.clone(),
    );
    assert!(
        lapse_core::revocation::ports::CaseStore::cases_of(
            &cases,
            &lapse_core::identity::PrincipalId::new(&user).unwrap()
        )
        .await
        .unwrap()
        .is_empty(),
        "no case was opened"
    );
    let iam = aws_sdk_iam::Client::new(&s.stack.sdk);
    assert!(
        iam.get_login_profile()
            .user_name(&user)
            .send()
            .await
            .is_ok(),
        "the person keeps their console login"
    );
}

/// A sample HR event of `file` for `user`, with its own id and time.
fn sample(file: &str, user: &str, event_id: &str, at: chrono::DateTime<Utc>) -> serde_json::Value {
    let mut body: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            lapse_testkit::workspace_root().join(format!("events/hr-webhook/{file}")),
        )
        .unwrap(),
    )
    .unwrap();
    body["user"]["username"] = serde_json::json!(user);
    body["event_id"] = serde_json::json!(event_id);
    body["timestamp"] = serde_json::json!(at.to_rfc3339());
    body
}

/// Every accepted HR event updates the directory of people, in the workflow's
/// open step: a hire starting later, a move, and a move HR sent earlier that
/// arrives late (it changes nothing, and the audit says so). A duplicate
/// delivery has one effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_of_people_is_kept_from_hr_events() {
    use lapse_core::people::person::Status;
    use lapse_core::people::ports::PeopleStore;
    let s = Stack::start().await;
    let user = s.user("nina");
    let now = Utc::now();
    let mut hire = sample(
        "hire-body.json",
        &user,
        &lapse_testkit::unique_name("evt"),
        now - chrono::TimeDelta::hours(2),
    );
    let start = (now + chrono::TimeDelta::days(7)).date_naive();
    hire["metadata"]["start_date"] = serde_json::json!(start.to_string());
    hire["metadata"]["employment_type"] = serde_json::json!("employee");
    let moved = sample(
        "role-change-body.json",
        &user,
        &lapse_testkit::unique_name("evt"),
        now,
    );
    let late = {
        let mut e = sample(
            "role-change-body.json",
            &user,
            &lapse_testkit::unique_name("evt"),
            now - chrono::TimeDelta::hours(1),
        );
        e["metadata"]["new_role"] = serde_json::json!("engineer");
        e["metadata"]["department"] = serde_json::json!("Platform");
        e
    };
    let audit = lapse_aws::dynamodb::DynamoDbAuditLog::new(
        aws_sdk_dynamodb::Client::new(&s.stack.sdk),
        &s.stack.config.tables.audit,
    );
    let person_events = |count: usize| {
        let audit = &audit;
        let user = &user;
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let chain = lapse_core::ports::AuditLog::chain(audit, &format!("user#{user}"))
                    .await
                    .unwrap();
                if chain
                    .iter()
                    .filter(|e| e.action.starts_with("person."))
                    .count()
                    >= count
                {
                    return chain;
                }
                assert!(tokio::time::Instant::now() < deadline, "{chain:?}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    // One at a time, so the late move reaches the directory after the newer one.
    // Each starts the workflow, whose open step records it before anything else
    // (the moves' runs then wait out the role change's transition period).
    let mut chain = Vec::new();
    for (n, (event, expected)) in [(&hire, 202), (&moved, 202), (&late, 202)]
        .into_iter()
        .enumerate()
    {
        let (status, answer) = post(&s, &Delivery::new(event.to_string())).await;
        assert_eq!(status, expected, "{answer}");
        chain = person_events(n + 1).await;
    }
    // The duplicate is acknowledged by the webhook and goes no further.
    let (status, answer) = post(&s, &Delivery::new(moved.to_string())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(s.stack.revocations.launched().len(), 3);

    let people = lapse_aws::people::DynamoDbPeople::new(
        aws_sdk_dynamodb::Client::new(&s.stack.sdk),
        &s.stack.config.people_table,
    );
    let id = lapse_core::identity::PrincipalId::new(user.as_str()).unwrap();
    let nina = people.get(&id).await.unwrap().expect("a record for nina");
    assert_eq!(nina.status(), Some(Status::PendingStart));
    assert_eq!(nina.start_date.as_ref().map(|f| f.value), Some(start));
    assert_eq!(nina.job_role(), Some("analyst"), "the newest move wins");
    assert_eq!(
        nina.department.as_ref().map(|f| f.value.as_str()),
        Some("Finance")
    );
    assert_eq!(nina.manager(), Some("msmith"));
    assert_eq!(
        nina.job_role.as_ref().unwrap().from.source,
        format!("hr-event:{}", moved["event_id"].as_str().unwrap())
    );

    let person: Vec<_> = chain
        .iter()
        .filter(|e| e.action.starts_with("person."))
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        person,
        ["person.updated", "person.updated", "person.stale"],
        "{chain:?}"
    );
    let updated = chain
        .iter()
        .find(|e| e.key == format!("person:{}", moved["event_id"].as_str().unwrap()))
        .unwrap();
    assert_eq!(updated.before["job_role"]["value"], "engineer");
    assert_eq!(updated.after["job_role"]["value"], "analyst");

    // An operator reads the record with check-user, field by field with its source.
    let operator = lapse_cli::operator::Operator::with_api(s.stack.operator_api().unwrap());
    let said = lapse_cli::operator::check_user(&operator, &user)
        .await
        .unwrap();
    let moved_id = moved["event_id"].as_str().unwrap();
    for line in [
        "  HR record:".to_owned(),
        "    status: pending start (from hr-event:".to_owned(),
        format!("    job role: analyst (from hr-event:{moved_id} of "),
        "    manager: msmith (from hr-event:".to_owned(),
        format!("    start date: {start} (from hr-event:"),
    ] {
        assert!(said.contains(&line), "{line:?} not in:\n{said}");
    }
    assert!(lapse_testkit::debug_shaped(&said).is_empty(), "{said}");
    // Someone HR never named has no record, and check-user says so.
    let stranger = s.user("stranger");
    let said = lapse_cli::operator::check_user(&operator, &stranger)
        .await
        .unwrap();
    assert!(
        said.contains("HR record: none (no HR event has named them)"),
        "{said}"
    );

    // A partial revocation that names no role keeps the role of record
    // (`lapse revoke --partial`); with no record, it is refused and says why.
    let partial = |who: &str| lapse_core::revocation::operator::RevokeAsk {
        request_id: lapse_cli::operator::request_id(),
        user: who.to_owned(),
        reason: "moved teams".into(),
        kind: lapse_core::revocation::plan::RevocationKind::Partial {
            new_role: String::new(),
        },
        preserve_data: false,
        emergency: false,
        schedule: None,
    };
    let preview = operator.dry_run(&partial(&user)).await.unwrap();
    assert_eq!(
        preview.kept_role.map(|k| k.describe()),
        Some("keeps role analyst (their job role of record)".to_owned())
    );
    let refused = operator.dry_run(&partial(&stranger)).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("the directory of people has no job role for them"),
        "{refused}"
    );
}

/// A revocation never waits on the directory: with the directory's table gone
/// (a fault), a termination still revokes everything and is verified, and
/// security is told the directory missed the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_termination_revokes_even_when_the_directory_cannot_be_written() {
    let s = Stack::start().await;
    let security =
        crate::support::queue_on_topic(&s.stack.sdk, &s.stack.config.topics.security, "sec").await;
    let user = staff(&s, "jdoe").await;
    aws_sdk_dynamodb::Client::new(&s.stack.sdk)
        .delete_table()
        .table_name(&s.stack.config.people_table)
        .send()
        .await
        .unwrap();
    let event_id = lapse_testkit::unique_name("evt");
    let (status, answer) = post(&s, &Delivery::new(termination(&user, &event_id))).await;
    assert_eq!(status, 202, "{answer}");
    let runs = wait_runs(&s, 1).await;
    assert_eq!(runs[0].status, "SUCCEEDED", "{:?}", runs[0]);
    assert!(holds_nothing(&s, &user).await);
    let sqs = aws_sdk_sqs::Client::new(&s.stack.sdk);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut subjects = Vec::new();
    let expected = format!("Directory of people not updated for HR event {event_id}");
    while !subjects.contains(&expected) {
        assert!(tokio::time::Instant::now() < deadline, "{subjects:?}");
        let out = sqs
            .receive_message()
            .queue_url(&security)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in out.messages() {
            let body: serde_json::Value =
                serde_json::from_str(message.body().unwrap_or("null")).unwrap();
            subjects.push(body["Subject"].as_str().unwrap_or_default().to_owned());
        }
    }
}
