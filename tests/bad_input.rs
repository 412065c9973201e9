//! The bad-input corpus (`tests/corpus/`): for the API (and the identity its token
//! carries), the HR webhook, the batch CSV and the policy file. Each input gets a
//! precise 4xx or a per-row error, and changes nothing: the requests, revocations
//! and ledger tables, the pending request and IAM read the same before and after.
//! (Refused decisions are audited by design, so the audit table is not compared.)

use std::collections::BTreeMap;

use crate::support::Stack;
use lapse_core::revocation::webhook::sign;
use lapse_local::provision::{DEV_WEBHOOK_SIGNING_SECRET, DEV_WEBHOOK_TOKEN};
use serde_json::Value;

fn corpus(name: &str) -> std::path::PathBuf {
    lapse_testkit::workspace_root()
        .join("tests/corpus")
        .join(name)
}

fn cases(name: &str) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(corpus(name)).unwrap()).unwrap()
}

/// The body a case describes: `raw`, `raw_repeat` (an oversized one), `body`, or a
/// sample from `events/hr-webhook/` with fields `set` by dotted path.
fn body_of(case: &Value) -> String {
    if let Some(raw) = case["raw"].as_str() {
        return raw.to_owned();
    }
    if let Some(r) = case.get("raw_repeat") {
        let fill = r["fill"]
            .as_str()
            .unwrap()
            .repeat(r["times"].as_u64().unwrap() as usize);
        return format!(
            "{}{fill}{}",
            r["before"].as_str().unwrap(),
            r["after"].as_str().unwrap()
        );
    }
    if let Some(sample) = case["sample"].as_str() {
        let mut body = Stack::sample(&format!("hr-webhook/{sample}"));
        for (path, value) in case["set"].as_object().into_iter().flatten() {
            let mut at = &mut body;
            for key in path.split('.') {
                at = &mut at[key];
            }
            *at = value.clone();
        }
        return body.to_string();
    }
    case["body"].to_string()
}

/// What a bad input must not change.
async fn fingerprint(s: &Stack, pending: Option<&str>) -> BTreeMap<String, String> {
    let dynamo = aws_sdk_dynamodb::Client::new(&s.stack.sdk);
    let config = &s.stack.config;
    let mut print = BTreeMap::new();
    for table in [
        &config.tables.requests,
        &config.tables.ledger,
        &config.revocations_table,
    ] {
        let items = dynamo.scan().table_name(table).send().await.unwrap();
        let mut rows: Vec<String> = items
            .items()
            .iter()
            .map(|i| format!("{:?}", i.iter().collect::<BTreeMap<_, _>>()))
            .collect();
        rows.sort();
        print.insert(table.clone(), rows.join("\n"));
    }
    if let Some(id) = pending {
        let request = s.as_user("dana").get(id).await.unwrap();
        print.insert("pending".into(), request.to_string());
    }
    print.insert("dana".into(), format!("{:?}", s.iam("dana").await));
    print.insert(
        "executions".into(),
        format!(
            "{:?} {:?}",
            s.stack.workflows.launched(),
            s.stack.revocations.launched()
        ),
    );
    print
}

fn check(case: &Value, status: u16, answer: &Value) {
    let name = case["name"].as_str().unwrap();
    if std::env::var_os("LAPSE_CORPUS_SHOW").is_some() {
        eprintln!("corpus {name}: {status} {answer}");
    }
    assert_eq!(
        status,
        case["status"].as_u64().unwrap() as u16,
        "{name}: {answer}"
    );
    if let Some(error) = case["error"].as_str() {
        assert_eq!(answer["error"], error, "{name}: {answer}");
    }
    if let Some(message) = case["message"].as_str() {
        assert!(
            answer["message"]
                .as_str()
                .unwrap_or_default()
                .contains(message),
            "{name}: {answer} should say {message}"
        );
    }
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Lapse."))
            && answer["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{name}: a refusal names its error and says why: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_corpus_is_refused_precisely_and_changes_nothing() {
    let s = Stack::start().await;
    let dana = s.as_user("dana");
    let pending = dana
        .request("staging-logs-read", Some("2h"), "corpus: pending", None)
        .await
        .unwrap();
    assert_eq!(pending["status"], "pending", "{pending}");
    let pending = pending["id"].as_str().unwrap().to_owned();
    // On call, so break-glass asks reach the checks after eligibility.
    let token = s
        .stack
        .token(&s.user("dana"), &["on-call"], "employee")
        .unwrap();
    let http = reqwest::Client::new();
    let before = fingerprint(&s, Some(&pending)).await;
    for case in cases("api.json") {
        let path = case["path"]
            .as_str()
            .unwrap()
            .replace("{pending}", &pending);
        let method: reqwest::Method = case["method"].as_str().unwrap().parse().unwrap();
        let mut call = http
            .request(method.clone(), format!("{}{path}", s.stack.url))
            .bearer_auth(&token)
            .header("content-type", "application/json");
        if method == reqwest::Method::POST {
            call = call.body(body_of(&case));
        }
        let response = call.send().await.unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        check(&case, status, &answer);
        let after = fingerprint(&s, Some(&pending)).await;
        let changed: Vec<_> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(v))
            .map(|(k, v)| format!("{k}: {:?} -> {v}", before.get(k)))
            .collect();
        assert!(changed.is_empty(), "{} changed {changed:#?}", case["name"]);
    }

    // Identities no IAM user can have, in a token the authorizer accepted.
    let valid = serde_json::json!({"resource": "staging-logs-read", "justification": "x"});
    for case in cases("tokens.json") {
        let token = s
            .stack
            .token_with_idp_groups(case["sub"].as_str().unwrap(), &[], "employee")
            .unwrap();
        let response = http
            .post(format!("{}/v1/requests", s.stack.url))
            .bearer_auth(&token)
            .json(&valid)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status == 400 || status == 401,
            "{}: {status} {answer}",
            case["name"]
        );
        assert_eq!(
            fingerprint(&s, Some(&pending)).await,
            before,
            "{}",
            case["name"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_corpus_is_refused_precisely_and_changes_nothing() {
    let s = Stack::start().await;
    let http = reqwest::Client::new();
    let before = fingerprint(&s, None).await;
    let now = lapse_core::ports::Clock::now(s.stack.clock.as_ref()).timestamp();
    for (n, case) in cases("webhook.json").into_iter().enumerate() {
        let body = body_of(&case);
        let message_id = format!("msg_corpus_{n}");
        let timestamp = now + case["timestamp_offset"].as_i64().unwrap_or(0)
            - case["replay_after"].as_i64().unwrap_or(0);
        let signed_body = match case["signature"].as_str() {
            Some("other-body") => format!("{body} "),
            _ => body.clone(),
        };
        let mut call = http
            .post(format!("{}/api/v1/webhooks/hr-events", s.stack.url))
            .bearer_auth(case["token"].as_str().unwrap_or(DEV_WEBHOOK_TOKEN))
            .header("content-type", "application/json")
            .header("webhook-id", &message_id)
            .header("webhook-timestamp", timestamp.to_string());
        match case["signature"].as_str() {
            Some("none") => {}
            Some("forged") => {
                call = call.header(
                    "webhook-signature",
                    sign(
                        "whsec_c29tZW9uZS1lbHNlcy1zaWduaW5nLWtleQ==",
                        &message_id,
                        timestamp,
                        signed_body.as_bytes(),
                    )
                    .unwrap(),
                )
            }
            _ => {
                call = call.header(
                    "webhook-signature",
                    sign(
                        DEV_WEBHOOK_SIGNING_SECRET,
                        &message_id,
                        timestamp,
                        signed_body.as_bytes(),
                    )
                    .unwrap(),
                )
            }
        }
        let response = call.body(body).send().await.unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        check(&case, status, &answer);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            fingerprint(&s, None).await,
            before,
            "{} changed something",
            case["name"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_corpus_fails_row_by_row_and_changes_nothing() {
    let path = corpus("batch.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let rows = lapse_cli::operator::parse_batch(&text).unwrap();
    assert_eq!(rows.len(), 10, "every data row is reported");
    // Whether a role exists is the catalog's to say, and which role a partial row
    // without one keeps is the directory of people's (it has none for jdoe): the
    // stack refuses those rows.
    for row in rows.iter().filter(|r| {
        let line = text.lines().nth(r.line as usize - 1).unwrap();
        !line.contains("astronaut") && !line.contains("none on record")
    }) {
        let err = row.ask.as_ref().err().map(ToString::to_string);
        assert!(
            err.as_deref().is_some_and(|e| !e.is_empty()),
            "line {} should be refused: {:?}",
            row.line,
            row.ask
        );
    }
    // Through the operator API: every row reported, nothing opened.
    let s = Stack::start().await;
    let before = fingerprint(&s, None).await;
    let operator = lapse_cli::operator::Operator::with_api(s.stack.operator_api().unwrap());
    let failed = lapse_cli::operator::batch(Some(&operator), &path, false, false)
        .await
        .unwrap();
    assert_eq!(failed, 10);
    assert_eq!(fingerprint(&s, None).await, before);
}

#[test]
fn the_policy_corpus_is_refused_with_located_problems() {
    let expect: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(corpus("policy/expect.json")).unwrap())
            .unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(corpus("policy")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let message = expect
            .get(&name)
            .unwrap_or_else(|| panic!("{name} has no expectation in expect.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        let err = lapse_core::policy::Catalog::parse(&text, &name)
            .err()
            .unwrap_or_else(|| panic!("{name} was accepted"));
        assert!(!err.issues().is_empty(), "{name}: no located problem");
        assert!(err.to_string().contains(message.as_str()), "{name}: {err}");
        seen += 1;
    }
    assert_eq!(seen, expect.len(), "every expectation has its file");
}
