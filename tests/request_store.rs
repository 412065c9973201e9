//! The DynamoDB adapters against the local emulator, over real HTTP.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeDelta, Utc};
use lapse_aws::dynamodb::{DynamoDbAuditLog, DynamoDbRequestStore};
use lapse_aws::tables::{Tables, provision_local};
use lapse_core::access::request::{AccessRequest, DecisionOutcome, NewRequest, RequestId, Verdict};
use lapse_core::access::usecase::{AuditTrail, request_chain, state_of};
use lapse_core::audit::{AuditDraft, AuditSigner, AuditVerifier, verify_chain};
use lapse_core::ports::{AuditLog, RequestQueries, RequestStore, StoreError};
use lapse_core::testing::{catalog, employee_context, monday_at, person};
use lapse_core::{Error, ErrorKind};
use lapse_testkit::{shared, unique_name};

async fn fresh_tables() -> (Client, Tables) {
    fresh_tables_at(shared().endpoint()).await
}

/// [`fresh_tables`] on the emulator at `endpoint`.
async fn fresh_tables_at(endpoint: &str) -> (Client, Tables) {
    let config = lapse_aws::sdk::load_local(endpoint).await;
    let client = Client::new(&config);
    let tables = Tables::with_prefix(&unique_name("store"));
    provision_local(&client, &tables)
        .await
        .expect("tables are created");
    // Provisioning twice is harmless.
    provision_local(&client, &tables)
        .await
        .expect("re-provisioning is a no-op");
    (client, tables)
}

fn signer() -> AuditSigner {
    AuditSigner::from_seed_hex("test-key", &"5a".repeat(32)).unwrap()
}

fn new_request(resource: &str, duration: &str) -> AccessRequest {
    new_request_at(resource, duration, monday_at(10))
}

fn new_request_at(resource: &str, duration: &str, at: DateTime<Utc>) -> AccessRequest {
    AccessRequest::submit(
        NewRequest {
            resource: resource.into(),
            duration: Some(duration.parse().unwrap()),
            justification: "integration test".into(),
            ticket: Some("CHG-1".into()),
        },
        &person("rita", &[]),
        employee_context(),
        &catalog(),
        at,
    )
    .unwrap()
}

#[tokio::test]
async fn request_round_trips_through_dynamodb() {
    let (client, tables) = fresh_tables().await;
    let store = DynamoDbRequestStore::new(client.clone(), &tables.requests);
    let mut req = new_request("prod-db-admin", "2h");
    store.create(&mut req).await.unwrap();
    assert_eq!(req.version(), 1);
    let back = store.get(req.id()).await.unwrap().expect("stored");
    assert_eq!(back, req);

    // The lookup attributes the GSIs use are really there.
    let item = client
        .get_item()
        .table_name(&tables.requests)
        .key("id", AttributeValue::S(req.id().to_string()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["status"], AttributeValue::S("pending".into()));
    assert_eq!(item["requester"], AttributeValue::S("rita".into()));
    assert_eq!(item["version"], AttributeValue::N("1".into()));

    assert!(matches!(
        store.create(&mut req).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(store.get(&RequestId::generate()).await.unwrap().is_none());
}

/// The sweep's look back over recent expiries asks the status index for requests
/// made since a time: the index's sort key compares as time, fractions included.
#[tokio::test]
async fn requests_in_a_status_made_since_a_time() {
    let (client, tables) = fresh_tables().await;
    let store = DynamoDbRequestStore::new(client, &tables.requests);
    let at = |ms: i64| monday_at(10) + TimeDelta::milliseconds(ms);
    let mut made = Vec::new();
    for ms in [-3_600_000, -1, 0, 250, 1_500, 86_400_000] {
        let mut request = new_request_at("prod-db-admin", "1h", at(ms));
        store.create(&mut request).await.unwrap();
        made.push(request);
    }
    let ids = |requests: Vec<AccessRequest>| {
        let mut ids: Vec<String> = requests.iter().map(|r| r.id().to_string()).collect();
        ids.sort();
        ids
    };
    for (since, from) in [
        (at(0), 2),
        (at(200), 3),
        (at(250), 3),
        (at(251), 4),
        (at(-3_600_000), 0),
    ] {
        let found = store
            .by_status_since(lapse_core::access::request::Status::Pending, since)
            .await
            .unwrap();
        assert_eq!(ids(found), ids(made[from..].to_vec()), "since {since}");
    }
    assert!(
        store
            .by_status_since(lapse_core::access::request::Status::Expired, at(-3_600_000))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn racing_approvers_produce_exactly_one_winner() {
    let (client, tables) = fresh_tables().await;
    let store = DynamoDbRequestStore::new(client, &tables.requests);
    let mut req = new_request("staging-logs-read", "4h");
    store.create(&mut req).await.unwrap();

    // Two owners read the same version and both approve.
    let mut a = store.get(req.id()).await.unwrap().unwrap();
    let mut b = a.clone();
    let olga = person("olga", &["platform-owners"]);
    let pat = person("pat", &["platform-owners"]);
    assert_eq!(
        a.decide(&olga, Verdict::Approve, "", monday_at(11))
            .unwrap(),
        DecisionOutcome::Approved
    );
    assert_eq!(
        b.decide(&pat, Verdict::Approve, "", monday_at(11)).unwrap(),
        DecisionOutcome::Approved
    );
    let (ra, rb) = tokio::join!(store.update(&mut a), store.update(&mut b));
    let wins = [ra.is_ok(), rb.is_ok()].iter().filter(|ok| **ok).count();
    assert_eq!(wins, 1, "exactly one write lands: {ra:?} {rb:?}");
    let loser = if ra.is_err() { ra } else { rb };
    assert!(matches!(loser, Err(StoreError::Conflict { .. })));

    // The loser re-reads and finds the request already approved: no second start.
    let mut fresh = store.get(req.id()).await.unwrap().unwrap();
    assert_eq!(fresh.version(), 2);
    assert_eq!(fresh.approvals().len(), 1);
    let again = fresh.decide(&pat, Verdict::Approve, "", monday_at(11));
    assert!(again.is_err() || again == Ok(DecisionOutcome::AlreadyRecorded));
}

/// The emulator must apply a conditional write atomically, as DynamoDB does, or
/// every exactly-once test above proves nothing. Its own server makes request threads
/// switch every microsecond (instead of every 5 ms), which without the guard's lock let
/// two (once three) of eight racing writers land in about one round in eight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes_stay_atomic_when_the_emulator_interleaves_requests() {
    const WRITERS: usize = 8;
    const ROUNDS: usize = 100;
    let emulator =
        lapse_testkit::Emulator::start_with(&[("LAPSE_MOTO_SWITCH_INTERVAL", "0.000001")]).unwrap();
    let (client, tables) = fresh_tables_at(emulator.endpoint()).await;
    let store = DynamoDbRequestStore::new(client, &tables.requests);
    let mut bad_rounds = Vec::new();
    for round in 0..ROUNDS {
        let mut req = new_request("staging-logs-read", "4h");
        store.create(&mut req).await.unwrap();
        let read = store.get(req.id()).await.unwrap().unwrap();
        let mut writers = tokio::task::JoinSet::new();
        for _ in 0..WRITERS {
            let (store, mut copy) = (store.clone(), read.clone());
            writers.spawn(async move { store.update(&mut copy).await });
        }
        let mut wins = 0;
        while let Some(joined) = writers.join_next().await {
            match joined.unwrap() {
                Ok(()) => wins += 1,
                Err(StoreError::Conflict { .. }) => {}
                Err(other) => panic!("round {round}: {other:?}"),
            }
        }
        if wins != 1 {
            bad_rounds.push((round, wins));
        }
    }
    assert!(
        bad_rounds.is_empty(),
        "rounds (round, writes that landed) where other than exactly one of {WRITERS} \
         conditional writes landed: {bad_rounds:?}"
    );
}

#[tokio::test]
async fn audit_chain_survives_concurrent_writers_and_verifies() {
    let (client, tables) = fresh_tables().await;
    let log = DynamoDbAuditLog::new(client, &tables.audit);
    let signer = signer();
    let policy = catalog().hash().clone();
    // Eight tasks append to one chain at once; each retries when it loses a sequence slot.
    let shared_signer = std::sync::Arc::new(signer);
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (log, signer, policy) = (log.clone(), shared_signer.clone(), policy.clone());
        writers.spawn(async move {
            let trail = AuditTrail {
                log: &log,
                signer: &signer,
                policy_hash: &policy,
            };
            trail
                .record(AuditDraft {
                    chain: "user#alice".into(),
                    key: format!("append-{i}"),
                    actor: format!("writer-{i}"),
                    action: "test.append".into(),
                    subject: "alice".into(),
                    reason: "concurrency".into(),
                    before: serde_json::json!({"i": i}),
                    after: serde_json::json!({"i": i + 1}),
                    at: monday_at(10),
                })
                .await
        });
    }
    let results = writers.join_all().await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let signer = shared_signer;

    let chain = log.chain("user#alice").await.unwrap();
    assert_eq!(chain.len(), 8);
    let verifier = AuditVerifier::new()
        .trust("test-key", &signer.public_key_hex())
        .unwrap();
    let head = verify_chain("user#alice", &chain, &verifier, None)
        .unwrap()
        .unwrap();
    assert_eq!(log.head("user#alice").await.unwrap(), Some(head));
    assert!(log.chain("user#nobody").await.unwrap().is_empty());
}

#[tokio::test]
async fn tampering_in_the_table_is_detected() {
    let (client, tables) = fresh_tables().await;
    let log = DynamoDbAuditLog::new(client.clone(), &tables.audit);
    let signer = signer();
    let store = DynamoDbRequestStore::new(client.clone(), &tables.requests);
    let catalog = catalog();
    let trail = AuditTrail {
        log: &log,
        signer: &signer,
        policy_hash: catalog.hash(),
    };
    let mut req = new_request("staging-logs-read", "4h");
    store.create(&mut req).await.unwrap();
    trail
        .record(AuditDraft {
            chain: request_chain(req.id()),
            key: "request.submitted".into(),
            actor: "rita".into(),
            action: "request.submitted".into(),
            subject: req.id().to_string(),
            reason: "look at logs".into(),
            before: serde_json::Value::Null,
            after: state_of(&req),
            at: monday_at(10),
        })
        .await
        .unwrap();
    let chain_name = format!("request#{}", req.id());
    let mut events = log.chain(&chain_name).await.unwrap();
    assert_eq!(events.len(), 1);

    // Someone with table access rewrites the reason in place.
    events[0].reason = "nothing happened".into();
    client
        .put_item()
        .table_name(&tables.audit)
        .item("chain", AttributeValue::S(chain_name.clone()))
        .item("seq", AttributeValue::N("0".into()))
        .item(
            "event",
            AttributeValue::S(serde_json::to_string(&events[0]).unwrap()),
        )
        .send()
        .await
        .unwrap();
    let verifier = AuditVerifier::new()
        .trust("test-key", &signer.public_key_hex())
        .unwrap();
    let stored = log.chain(&chain_name).await.unwrap();
    assert!(verify_chain(&chain_name, &stored, &verifier, None).is_err());
}

#[tokio::test]
async fn corrupt_items_and_missing_tables_are_classified() {
    let (client, tables) = fresh_tables().await;
    let id = RequestId::generate();
    client
        .put_item()
        .table_name(&tables.requests)
        .item("id", AttributeValue::S(id.to_string()))
        .item("version", AttributeValue::N("1".into()))
        .item("doc", AttributeValue::S("{not json".into()))
        .send()
        .await
        .unwrap();
    let store = DynamoDbRequestStore::new(client.clone(), &tables.requests);
    let err = Error::from(store.get(&id).await.unwrap_err());
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");

    let missing = DynamoDbRequestStore::new(client, unique_name("missing"));
    let err = Error::from(missing.get(&id).await.unwrap_err());
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
}
