//! The HTTP API through the local stack's JWT-verifying gateway, and the backstop
//! functions driven with the sample events.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use crate::support::{Stack, WAIT, id};
use chrono::{TimeDelta, Utc};
use lapse_cli::client::ApiClient;
use lapse_local::issuer::{AUDIENCE, Claims, DevIssuer, ISSUER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_are_401() {
    let s = Stack::start().await;
    let raw = reqwest::Client::new();
    let url = format!("{}/v1/requests", s.stack.url);
    let none = raw.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);

    let foreign = DevIssuer::generate().unwrap();
    let forged = foreign
        .mint(
            &s.user("dana"),
            &["security"],
            "employee",
            TimeDelta::minutes(5),
        )
        .unwrap();
    assert_eq!(
        ApiClient::new(&s.stack.url, forged)
            .mine()
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );

    let now = Utc::now().timestamp();
    let expired = s
        .stack
        .issuer
        .sign(&Claims {
            sub: s.user("dana"),
            groups: vec![],
            employment_type: Some("employee".into()),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            exp: now - 60,
            nbf: now - 3600,
            iat: now - 3600,
        })
        .unwrap();
    assert_eq!(
        ApiClient::new(&s.stack.url, expired)
            .mine()
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );

    let mut tampered = s.stack.token(&s.user("dana"), &[], "employee").unwrap();
    tampered.push('x');
    assert_eq!(
        ApiClient::new(&s.stack.url, tampered)
            .mine()
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    assert!(s.as_user("dana").mine().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_never_comes_from_the_body() {
    let s = Stack::start().await;
    let dana = s.as_user("dana");
    let smuggled = dana
        .call(
            reqwest::Method::POST,
            "/v1/requests",
            Some(serde_json::json!({
                "resource": "staging-logs-read", "justification": "x", "requester": s.user("olga")
            })),
        )
        .await
        .unwrap_err();
    assert_eq!(smuggled.status(), Some(400));
    assert!(
        smuggled.to_string().contains("unknown field `requester`"),
        "{smuggled}"
    );

    let created = dana
        .request("staging-logs-read", Some("2h"), "debug", None)
        .await
        .unwrap();
    assert_eq!(created["requester"], s.user("dana"));
    // Dana cannot approve her own request even by claiming to be someone in the body.
    let err = dana
        .call(
            reqwest::Method::POST,
            &format!("/v1/requests/{}/decisions", id(&created)),
            Some(serde_json::json!({"decision": "approve", "approver": s.user("olga")})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_precise_4xx() {
    let s = Stack::start().await;
    let dana = s.as_user("dana");
    let cases = [
        (
            serde_json::json!({"resource": "nope", "justification": "x"}),
            "unknown resource `nope`",
        ),
        (
            serde_json::json!({"resource": "prod-db-admin", "duration": "6h", "justification": "x"}),
            "exceeds the 4h maximum",
        ),
        (
            serde_json::json!({"resource": "staging-logs-read", "duration": "4 hours", "justification": "x"}),
            "invalid duration",
        ),
        (
            serde_json::json!({"resource": "staging-logs-read", "justification": "   "}),
            "justification is required",
        ),
        (
            serde_json::json!({"resource": "staging-logs-read"}),
            "missing field `justification`",
        ),
    ];
    for (body, message) in cases {
        let err = dana
            .call(reqwest::Method::POST, "/v1/requests", Some(body))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(400), "{err}");
        assert!(
            err.to_string().contains(message),
            "{err} should say {message}"
        );
    }
    let big = "x".repeat(70 * 1024);
    let err = dana
        .call(
            reqwest::Method::POST,
            "/v1/requests",
            Some(serde_json::json!({"resource": "a", "justification": big})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(413), "as the webhook answers: {err}");
    assert!(err.to_string().contains("Lapse.TooLarge"), "{err}");
    assert_eq!(
        dana.get("req-not-a-uuid").await.unwrap_err().status(),
        Some(400)
    );
    assert_eq!(
        dana.get(&format!(
            "req-{}",
            "0".repeat(8) + "-0000-4000-8000-000000000000"
        ))
        .await
        .unwrap_err()
        .status(),
        Some(404)
    );
    assert_eq!(
        dana.call(reqwest::Method::GET, "/v1/nothing", None)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    assert!(
        dana.mine().await.unwrap()["requests"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_expires_stale_requests() {
    let s = Stack::start().await;
    let carl = s.as_user("carl");
    let rid = id(&carl
        .request("staging-logs-read", Some("4h"), "nobody will look", None)
        .await
        .unwrap());
    s.stack.clock.advance(TimeDelta::hours(25));
    let (error, report) = s
        .invoke("sweeper", &Stack::sample("sweeper/scheduled.json"))
        .await;
    assert_eq!(error, None, "{report}");
    assert_eq!(report["expired_pending"], serde_json::json!([rid]));
    assert_eq!(carl.get(&rid).await.unwrap()["status"], "expired");
    let late = s
        .as_user("olga")
        .decide(&rid, true, "sorry, late")
        .await
        .unwrap_err();
    assert_eq!(late.status(), Some(409));
    let (error, _) = s
        .invoke(
            "sweeper",
            &serde_json::json!({"detail-type": "Something Else"}),
        )
        .await;
    assert_eq!(error.as_deref(), Some("Lapse.BadEvent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ttl_backstop_revokes_what_a_failed_execution_left_behind() {
    let s = Stack::start().await;
    // The workflow's revoke step fails for good, so the execution ends in its failure path.
    for _ in 0..10 {
        s.stack
            .faults
            .fail_next("revoke", "Lapse.Validation", "simulated permanent failure");
    }
    let dana = s.as_user("dana");
    let rid = id(&dana
        .request("billing-reports-read", Some("30m"), "backstop test", None)
        .await
        .unwrap());
    let active = s
        .provisioned(&dana, &rid, "billing-reports-read", "dana")
        .await;
    s.pass(&active);
    let run = s.workflow(&rid).await;
    assert_eq!(run.status, "FAILED", "{run:?}");
    assert!(
        !s.iam("dana").await.inline_policies.is_empty(),
        "access outlived the failed execution"
    );

    // DynamoDB TTL removes the ledger hold; the stream record reaches the backstop.
    let mut event = Stack::sample("ttl-backstop/ttl-remove.json");
    event["Records"][0]["dynamodb"]["OldImage"]["grant_id"]["S"] = serde_json::json!(rid);
    let (error, response) = s.invoke("ttl-backstop", &event).await;
    assert_eq!(error, None, "{response}");
    assert_eq!(response["batchItemFailures"], serde_json::json!([]));
    assert!(
        s.iam("dana").await.inline_policies.is_empty(),
        "the backstop removed it"
    );
    assert_eq!(
        dana.wait_for(&rid, "verified", WAIT).await.unwrap()["status"],
        "verified"
    );

    // Lapse's own releases (not TTL) are ignored; redelivery is harmless.
    let (error, response) = s
        .invoke(
            "ttl-backstop",
            &Stack::sample("ttl-backstop/release-not-ttl.json"),
        )
        .await;
    assert_eq!(
        (error, response["batchItemFailures"].clone()),
        (None, serde_json::json!([]))
    );
    let (error, _) = s.invoke("ttl-backstop", &event).await;
    assert_eq!(error, None);
}
