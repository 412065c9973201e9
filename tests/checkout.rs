//! Privileged credential checkout through the local stack: the grant lifecycle's
//! checkout and check-in steps in the ASL interpreter, the credentials function
//! against the emulator's Secrets Manager and DynamoDB, IAM read back.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use lapse_cli::client::ApiClient;
use lapse_core::access::grant::document_expiry;
use serde_json::Value;

use crate::support::{Stack, WAIT, id};

const SECRET: &str = "lapse/prod-db-root";
const RESOURCE: &str = "prod-db-root-credential";

/// The catalog names one secret, which every stack on the shared emulator checks
/// out: tests that rotate it take turns (each stack's lease is its own, so two
/// running at once would rotate each other's value; seen as a flaky failure).
static SECRET_IN_USE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The secret's versions, each with its stages.
async fn stages(s: &Stack) -> Vec<(String, Vec<String>)> {
    let out = aws_sdk_secretsmanager::Client::new(&s.stack.sdk)
        .describe_secret()
        .secret_id(SECRET)
        .send()
        .await
        .unwrap();
    out.version_ids_to_stages()
        .into_iter()
        .flatten()
        .map(|(v, stages)| (v.clone(), stages.clone()))
        .collect()
}

async fn is_current(s: &Stack, version: &str) -> bool {
    stages(s)
        .await
        .iter()
        .any(|(v, st)| v == version && st.iter().any(|x| x == "AWSCURRENT"))
}

/// A checkout request by `who`, approved by a manager and security.
async fn approved(who: &ApiClient) -> String {
    let created = who
        .request(
            RESOURCE,
            Some("1h"),
            "rotate the replica password",
            Some("CHG-9"),
        )
        .await
        .unwrap();
    assert_eq!(created["routing"]["route"]["kind"], "dual", "{created}");
    id(&created)
}

async fn approve(s: &Stack, rid: &str) -> Value {
    s.as_user("mia").decide(rid, true, "ok").await.unwrap();
    s.as_user("sam").decide(rid, true, "ok").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_is_checked_out_by_one_request_and_rotated_at_check_in() {
    let _turn = SECRET_IN_USE.lock().await;
    let s = Stack::start().await;
    let (dana, erin) = (s.as_user("dana"), s.as_user("erin"));
    let first = approved(&dana).await;
    let second = approved(&erin).await;
    // Both approved at once: both workflows race for the one lease.
    let (a, b) = tokio::join!(approve(&s, &first), approve(&s, &second));
    assert_eq!(a["outcome"]["outcome"], "approved", "{a}");
    assert_eq!(b["outcome"]["outcome"], "approved", "{b}");
    let mut settled = Vec::new();
    for (rid, client) in [(&first, &dana), (&second, &erin)] {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let now = client.get(rid).await.unwrap();
            let status = now["status"].as_str().unwrap().to_owned();
            if status == "active" || status == "cancelled" {
                settled.push((rid.clone(), status));
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{now}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let winners: Vec<_> = settled.iter().filter(|(_, s)| s == "active").collect();
    let losers: Vec<_> = settled.iter().filter(|(_, s)| s == "cancelled").collect();
    assert_eq!((winners.len(), losers.len()), (1, 1), "{settled:?}");
    let (winner, loser) = (winners[0].0.clone(), losers[0].0.clone());
    let (holder, holder_client, other) = if winner == first {
        ("dana", &dana, "erin")
    } else {
        ("erin", &erin, "dana")
    };
    let run = s.workflow(&loser).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    assert!(run.states.contains(&"NotGranted".to_owned()), "{run:?}");
    assert!(!run.states.contains(&"Grant".to_owned()), "{run:?}");
    assert!(s.iam(other).await.inline_policies.is_empty());

    // The holder reads that one secret, bounded by aws:CurrentTime.
    let active = s
        .provisioned(holder_client, &winner, RESOURCE, holder)
        .await;
    let document = &s.iam(holder).await.inline_policies[&format!("lapse-{RESOURCE}-{winner}")];
    let expires: chrono::DateTime<chrono::Utc> = active["window"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(document_expiry(document), Some(expires));
    let statement = &document["Statement"][0];
    assert_eq!(
        statement["Resource"],
        serde_json::json!([
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:lapse/prod-db-root-??????"
        ])
    );

    // Early check-in: IAM first, then the secret rotated and the lease released.
    let ended = holder_client.revoke(&winner).await.unwrap();
    assert_eq!(ended["verify"]["verified"], true, "{ended}");
    let checkin = &ended["checkin"];
    assert_eq!(checkin["outcome"], "checked_in", "{ended}");
    let old = checkin["rotated_from"].as_str().unwrap();
    assert_eq!(checkin["current"], format!("checkin-{winner}"));
    assert!(
        !is_current(&s, old).await,
        "the checked-out version is still current: {:?}",
        stages(&s).await
    );
    // The secret's rotation function made the new value (the database takes it):
    // not the old value under a new name.
    let value = |version: String| {
        let client = aws_sdk_secretsmanager::Client::new(&s.stack.sdk);
        async move {
            client
                .get_secret_value()
                .secret_id(SECRET)
                .version_id(version)
                .send()
                .await
                .unwrap()
                .secret_string()
                .unwrap()
                .to_owned()
        }
    };
    assert_ne!(
        value(old.to_owned()).await,
        value(format!("checkin-{winner}")).await
    );
    assert!(s.iam(holder).await.inline_policies.is_empty());

    // The workflow wakes at the original end and finds it checked in already.
    s.pass(&active);
    let run = s.workflow(&winner).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    for state in ["Checkout", "Grant", "Verify", "CheckIn"] {
        assert!(run.states.contains(&state.to_owned()), "{state}: {run:?}");
    }
    let audit = s.audit(&winner).await;
    for action in [
        "credential.checked_out",
        "credential.rotated",
        "credential.checked_in",
    ] {
        assert_eq!(
            audit.iter().filter(|a| *a == action).count(),
            1,
            "{action} in {audit:?}"
        );
    }
    assert!(
        s.audit(&loser)
            .await
            .contains(&"request.cancelled".to_owned())
    );

    // Released: the other person may now check it out, and the workflow checks it
    // in at expiry.
    let other_client = s.as_user(other);
    let next = approved(&other_client).await;
    approve(&s, &next).await;
    let active = s.provisioned(&other_client, &next, RESOURCE, other).await;
    s.pass(&active);
    let run = s.workflow(&next).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    assert!(run.states.contains(&"CheckIn".to_owned()), "{run:?}");
    let checked_in = &run.output.unwrap()["checkin"];
    assert_eq!(checked_in["outcome"], "checked_in", "{checked_in}");
    assert!(!is_current(&s, checked_in["rotated_from"].as_str().unwrap()).await);
}

/// A checkout whose workflow fails after the lease was taken (here the grant step
/// refuses a holder Lapse does not manage) must not leave the checked-out value
/// current or the lease held: the failure path rotates the secret, and, the grant
/// never having reached IAM, releases the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_checkout_workflow_rotates_the_credential_and_frees_the_lease() {
    let _turn = SECRET_IN_USE.lock().await;
    let s = Stack::start().await;
    let iam = aws_sdk_iam::Client::new(&s.stack.sdk);
    iam.untag_user()
        .user_name(s.user("dana"))
        .tag_keys("lapse:managed")
        .send()
        .await
        .unwrap();
    let dana = s.as_user("dana");
    let rid = approved(&dana).await;
    approve(&s, &rid).await;
    let run = s.workflow(&rid).await;
    assert_eq!(run.status, "FAILED", "{run:?}");
    for state in ["Checkout", "Grant", "RecordFailure", "ContainCredential"] {
        assert!(run.states.contains(&state.to_owned()), "{state}: {run:?}");
    }
    assert!(
        is_current(&s, &format!("contain-{rid}")).await,
        "the checked-out value is still current: {:?}",
        stages(&s).await
    );
    let audit = s.audit(&rid).await;
    for action in [
        "credential.checked_out",
        "workflow.failed",
        "credential.rotated",
        "credential.checked_in",
    ] {
        assert!(audit.contains(&action.to_owned()), "{action} in {audit:?}");
    }
    // The lease is free: someone else checks the credential out.
    let erin = s.as_user("erin");
    let next = approved(&erin).await;
    approve(&s, &next).await;
    s.provisioned(&erin, &next, RESOURCE, "erin").await;
}
