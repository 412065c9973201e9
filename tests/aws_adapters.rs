//! The IAM, ledger, SNS, Step Functions and Secrets Manager adapters against the
//! local emulator: each test reads the service back rather than trusting a return value.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use aws_config::SdkConfig;
use chrono::{SubsecRound, TimeDelta, Utc};
use lapse_aws::dynamodb::DynamoDbLedger;
use lapse_aws::iam::IamDirectory;
use lapse_aws::sfn::SfnWorkflowStarter;
use lapse_aws::sns::{SnsNotifier, Topics};
use lapse_aws::tables::{Tables, provision_local};
use lapse_core::access::grant::{document_expiry, policy_document};
use lapse_core::access::ledger::{Artifact, Hold, Release};
use lapse_core::identity::PrincipalId;
use lapse_core::policy::{Effect, Statement};
use lapse_core::ports::{
    AccessInspector, AccessProvisioner, Audience, DirectoryError, LedgerStore, Notice, Notifier,
    Removal, WorkflowError, WorkflowStarter,
};
use lapse_testkit::{shared, unique_name};

async fn config() -> SdkConfig {
    lapse_aws::sdk::load_local(shared().endpoint()).await
}

async fn new_user(iam: &aws_sdk_iam::Client) -> PrincipalId {
    let name = unique_name("user");
    iam.create_user().user_name(&name).send().await.unwrap();
    PrincipalId::new(name).unwrap()
}

#[tokio::test]
async fn iam_holds_the_time_bound_policy_after_grant_and_not_after_revoke() {
    let config = config().await;
    let iam = aws_sdk_iam::Client::new(&config);
    let directory = IamDirectory::new(iam.clone());
    let user = new_user(&iam).await;
    let expires = Utc::now() + TimeDelta::hours(1);
    let statements = [Statement {
        effect: Effect::Allow,
        actions: vec!["s3:GetObject".into()],
        resources: vec!["arn:aws:s3:::bucket/*".into()],
    }];
    let name = "lapse-billing-reports-read-req-test";
    directory
        .put_inline_policy(&user, name, &policy_document(&statements, expires))
        .await
        .unwrap();

    // Read back through the raw SDK, not the adapter: IAM really holds it.
    let raw = iam
        .get_user_policy()
        .user_name(user.as_str())
        .policy_name(name)
        .send()
        .await
        .unwrap();
    let decoded = percent_decode(raw.policy_document());
    let document: serde_json::Value = serde_json::from_str(&decoded).unwrap();
    assert_eq!(
        document_expiry(&document).map(|t| t.timestamp()),
        Some(expires.timestamp()),
        "every statement carries aws:CurrentTime"
    );
    let snapshot = directory.snapshot(&user).await.unwrap();
    assert_eq!(snapshot.inline_policies[name], document);

    assert_eq!(
        directory.delete_inline_policy(&user, name).await.unwrap(),
        Removal::Removed
    );
    assert_eq!(
        directory.delete_inline_policy(&user, name).await.unwrap(),
        Removal::AlreadyAbsent
    );
    let listed = iam
        .list_user_policies()
        .user_name(user.as_str())
        .send()
        .await
        .unwrap();
    assert!(listed.policy_names().is_empty(), "IAM no longer holds it");
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

/// The role reads and writes a grant that assumes roles needs: whether Lapse
/// manages the role (its tag), and the deny of ended grants' sessions, read back
/// as IAM stores it (URL-encoded) and compared by content.
#[tokio::test]
async fn role_tags_and_the_ended_grant_deny_round_trip_through_iam() {
    use lapse_core::access::role_denies::{self, ROLE_DENY_POLICY, RoleDenies};
    let config = config().await;
    let iam = aws_sdk_iam::Client::new(&config);
    let directory = IamDirectory::new(iam.clone());
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":["sts:AssumeRole","sts:SetSourceIdentity"]}]}"#;
    let managed = unique_name("role");
    let unmanaged = unique_name("role");
    for (name, tagged) in [(&managed, true), (&unmanaged, false)] {
        let mut create = iam
            .create_role()
            .role_name(name)
            .path("/team/")
            .assume_role_policy_document(trust);
        if tagged {
            create = create.tags(
                aws_sdk_iam::types::Tag::builder()
                    .key("lapse:managed")
                    .value("true")
                    .build()
                    .unwrap(),
            );
        }
        create.send().await.unwrap();
    }
    assert_eq!(directory.role_managed(&managed).await.unwrap(), Some(true));
    assert_eq!(
        directory.role_managed(&unmanaged).await.unwrap(),
        Some(false)
    );
    assert_eq!(directory.role_managed("no-such-role").await.unwrap(), None);

    // The role's one deny, written through the core's read-modify-write, read back
    // as IAM stores it (URL-encoded) and judged by content.
    let user = PrincipalId::new("quinn").unwrap();
    let name = ROLE_DENY_POLICY;
    assert_eq!(directory.role_policy(&managed, name).await.unwrap(), None);
    let cutoff = Utc::now().trunc_subsecs(0);
    role_denies::update(&directory, &managed, cutoff, |d| d.end_grant(&user, cutoff))
        .await
        .unwrap();
    let read = directory
        .role_policy(&managed, name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        RoleDenies::parse(&read).and_then(|d| d.ended_cutoff(&user)),
        Some(cutoff)
    );
    // Nobody left in it: the policy is deleted, and deleting again is idempotent.
    let later = cutoff + chrono::TimeDelta::days(1);
    let left = role_denies::update(&directory, &managed, later, |_| {})
        .await
        .unwrap();
    assert_eq!(left, RoleDenies::default());
    assert_eq!(directory.role_policy(&managed, name).await.unwrap(), None);
    assert_eq!(
        directory.delete_role_policy(&managed, name).await.unwrap(),
        lapse_core::ports::Removal::AlreadyAbsent
    );
    assert_eq!(
        directory.role_policy("no-such-role", name).await.unwrap(),
        None
    );
}

/// Whom a role's trust policy names, by the users' ARNs and ids as IAM reports
/// them: what pruning a role's deny asks before it drops someone.
#[tokio::test]
async fn a_roles_trust_is_read_for_the_users_it_names() {
    let config = config().await;
    let iam = aws_sdk_iam::Client::new(&config);
    let directory = IamDirectory::new(iam.clone());
    let named = unique_name("named");
    let other = unique_name("other");
    let mut arn = String::new();
    for user in [&named, &other] {
        let made = iam.create_user().user_name(user).send().await.unwrap();
        if user == &named {
            arn = made.user.unwrap().arn;
        }
    }
    let role = unique_name("role");
    let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": arn}, "Action": "sts:AssumeRole"}]});
    iam.create_role()
        .role_name(&role)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap();
    let asked = [named.clone(), other.clone(), unique_name("gone")];
    assert_eq!(
        directory.role_trusts(&role, &asked).await.unwrap(),
        std::collections::BTreeSet::from([named.clone()])
    );
    assert!(
        directory
            .role_trusts("no-such-role", &asked)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn group_grants_and_missing_principals() {
    let config = config().await;
    let iam = aws_sdk_iam::Client::new(&config);
    let directory = IamDirectory::new(iam.clone());
    let user = new_user(&iam).await;
    let group = unique_name("lapse-group");
    iam.create_group().group_name(&group).send().await.unwrap();

    directory.add_to_group(&user, &group).await.unwrap();
    directory.add_to_group(&user, &group).await.unwrap();
    let groups = iam
        .list_groups_for_user()
        .user_name(user.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(groups.groups().len(), 1);
    assert!(
        directory
            .snapshot(&user)
            .await
            .unwrap()
            .groups
            .contains(&group)
    );
    assert_eq!(
        directory.remove_from_group(&user, &group).await.unwrap(),
        Removal::Removed
    );
    assert_eq!(
        directory.remove_from_group(&user, &group).await.unwrap(),
        Removal::AlreadyAbsent
    );
    assert!(directory.snapshot(&user).await.unwrap().groups.is_empty());

    let ghost = PrincipalId::new(unique_name("ghost")).unwrap();
    assert!(matches!(
        directory
            .put_inline_policy(
                &ghost,
                "lapse-x",
                &serde_json::json!({"Version": "2012-10-17", "Statement": []})
            )
            .await,
        Err(DirectoryError::NoSuchPrincipal(_))
    ));
    assert!(matches!(
        directory.add_to_group(&user, &unique_name("nogroup")).await,
        Err(DirectoryError::NoSuchGroup(_))
    ));
    assert!(
        directory
            .snapshot(&ghost)
            .await
            .unwrap()
            .inline_policies
            .is_empty()
    );
}

#[tokio::test]
async fn ledger_keeps_shared_artifacts_until_the_last_release() {
    let config = config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let tables = Tables::with_prefix(&unique_name("ledger"));
    provision_local(&dynamo, &tables).await.unwrap();
    let ledger = DynamoDbLedger::new(dynamo.clone(), &tables.ledger);
    let alice = PrincipalId::new("alice").unwrap();
    let artifact = Artifact::GroupMembership {
        group: "admins".into(),
    };
    for grant in ["g1", "g2"] {
        ledger
            .hold(&Hold {
                grant_id: grant.into(),
                principal: alice.clone(),
                artifact: artifact.clone(),
                expires_at: Utc::now() + TimeDelta::hours(1),
            })
            .await
            .unwrap();
    }
    assert_eq!(
        ledger.holders(&alice, &artifact).await.unwrap(),
        ["g1", "g2"]
    );
    assert_eq!(
        ledger.release(&alice, &artifact, "g1").await.unwrap(),
        Release::Keep {
            artifact: artifact.clone(),
            held_by: vec!["g2".into()]
        }
    );
    assert_eq!(
        ledger.release(&alice, &artifact, "g1").await.unwrap(),
        Release::NotHeld
    );
    assert_eq!(
        ledger.release(&alice, &artifact, "g2").await.unwrap(),
        Release::Remove {
            artifact: artifact.clone()
        }
    );

    // The ledger table has TTL on `ttl` and a stream with old images, for the backstop.
    let ttl = dynamo
        .describe_time_to_live()
        .table_name(&tables.ledger)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("ttl")
    );
    let table = dynamo
        .describe_table()
        .table_name(&tables.ledger)
        .send()
        .await
        .unwrap();
    assert!(table.table().and_then(|t| t.latest_stream_arn()).is_some());
}

#[tokio::test]
async fn notices_reach_the_audience_topic_with_filter_attributes() {
    let config = config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let mut arns = Vec::new();
    let mut queues = Vec::new();
    for audience in ["users", "approvers", "security"] {
        let topic = sns
            .create_topic()
            .name(unique_name(audience))
            .send()
            .await
            .unwrap();
        let url =
            crate::support::queue_on_topic(&config, topic.topic_arn().unwrap(), audience).await;
        arns.push(topic.topic_arn().unwrap().to_owned());
        queues.push(url);
    }
    let notifier = SnsNotifier::new(
        sns,
        Topics {
            users: arns[0].clone(),
            approvers: arns[1].clone(),
            security: arns[2].clone(),
        },
    );
    notifier
        .send(&Notice {
            audience: Audience::Approvers {
                groups: vec!["managers".into(), "security".into()],
            },
            subject: "Approval needed".into(),
            body: "rita asks for prod-db-admin".into(),
            request_id: None,
        })
        .await
        .unwrap();
    notifier
        .send(&Notice {
            audience: Audience::Person {
                id: PrincipalId::new("rita").unwrap(),
            },
            subject: "Access granted".into(),
            body: "until 14:00".into(),
            request_id: None,
        })
        .await
        .unwrap();
    let received = |url: String| {
        let sqs = sqs.clone();
        async move {
            let out = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            out.messages()
                .iter()
                .map(|m| m.body().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let approvers = received(queues[1].clone()).await;
    assert_eq!(approvers.len(), 1);
    let envelope: serde_json::Value = serde_json::from_str(&approvers[0]).unwrap();
    assert_eq!(
        envelope["MessageAttributes"]["groups"]["Value"],
        "[\"managers\",\"security\"]"
    );
    let users = received(queues[0].clone()).await;
    assert_eq!(users.len(), 1);
    let envelope: serde_json::Value = serde_json::from_str(&users[0]).unwrap();
    assert_eq!(envelope["MessageAttributes"]["recipient"]["Value"], "rita");
    assert!(received(queues[2].clone()).await.is_empty());
}

#[tokio::test]
async fn workflow_starts_are_idempotent_by_name() {
    let config = config().await;
    let sfn = aws_sdk_sfn::Client::new(&config);
    let machine = sfn
        .create_state_machine()
        .name(unique_name("grant-lifecycle"))
        .definition(r#"{"StartAt":"Done","States":{"Done":{"Type":"Succeed"}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/lapse-states")
        .send()
        .await
        .unwrap();
    let starter = SfnWorkflowStarter::new(sfn, machine.state_machine_arn());
    let input = serde_json::json!({"request_id": "req-1"});
    let first = starter.start("req-1", &input).await.unwrap();
    assert_eq!(starter.start("req-1", &input).await.unwrap(), first);
    assert!(matches!(
        starter
            .start("req-1", &serde_json::json!({"request_id": "req-2"}))
            .await,
        Err(WorkflowError::NameTaken(_))
    ));
}

/// The audit key is a KMS asymmetric key: events sealed through KMS verify with its
/// public key alone; a symmetric or encryption key is refused at load; the same
/// alias always names the same key.
#[tokio::test]
async fn audit_events_are_signed_by_kms_and_verified_with_the_public_key() {
    use lapse_core::audit::{AuditDraft, ChainError, verify_chain};
    let config = config().await;
    let kms = aws_sdk_kms::Client::new(&config);
    let alias = format!("alias/{}", unique_name("audit"));
    let arn = lapse_aws::kms::ensure_audit_key(&kms, &alias)
        .await
        .unwrap();
    assert_eq!(
        lapse_aws::kms::ensure_audit_key(&kms, &alias)
            .await
            .unwrap(),
        arn,
        "found again by its alias"
    );
    let signer = lapse_aws::kms::KmsSigner::load(kms.clone(), &arn)
        .await
        .unwrap()
        .into_audit_signer();
    assert_eq!(signer.key_id(), arn);
    let policy = lapse_core::policy::PolicyHash::of(b"catalog");
    let draft = |n: u32| AuditDraft {
        chain: "user#kms-test".into(),
        key: format!("k{n}"),
        actor: "revocation".into(),
        action: "revocation.verified".into(),
        subject: "kms-test".into(),
        reason: format!("event {n}"),
        before: serde_json::Value::Null,
        after: serde_json::json!({"n": n}),
        at: chrono::Utc::now(),
    };
    let first = signer.seal(draft(0), &policy, None).await.unwrap();
    let second = signer
        .seal(draft(1), &policy, Some(&first.head()))
        .await
        .unwrap();
    let events = vec![first, second];
    let verifier = lapse_aws::kms::audit_verifier(&kms, &arn).await.unwrap();
    assert!(verify_chain("user#kms-test", &events, &verifier, None).is_ok());
    let mut forged = events.clone();
    forged[1].reason = "edited".into();
    assert!(verify_chain("user#kms-test", &forged, &verifier, None).is_err());
    // Another KMS key's signature does not pass as this one's.
    let other = lapse_aws::kms::create_audit_key(&kms, "another")
        .await
        .unwrap();
    // It claims to be the audit key.
    let stranger = lapse_core::audit::AuditSigner::remote(
        arn.clone(),
        std::sync::Arc::new(
            lapse_aws::kms::KmsSigner::load(kms.clone(), &other)
                .await
                .unwrap(),
        ),
    );
    let resealed = stranger
        .seal(draft(1), &policy, Some(&events[0].head()))
        .await
        .unwrap();
    assert_eq!(
        verify_chain(
            "user#kms-test",
            &[events[0].clone(), resealed],
            &verifier,
            None
        ),
        Err(ChainError::BadSignature { seq: 1 })
    );
    // A symmetric key is not an audit key.
    let symmetric = kms.create_key().send().await.unwrap();
    let symmetric = symmetric.key_metadata().unwrap().key_id();
    assert!(
        lapse_aws::kms::KmsSigner::load(kms.clone(), symmetric)
            .await
            .is_err()
    );

    // A function's start-up makes its signer without calling KMS; its events verify
    // against the key read by an auditor, and KMS itself refuses a key of the wrong
    // kind at the first signature.
    let deferred = lapse_aws::kms::KmsSigner::deferred(kms.clone(), &arn)
        .unwrap()
        .into_audit_signer();
    assert_eq!(deferred.key_id(), arn);
    let third = deferred
        .seal(draft(2), &policy, Some(&events[1].head()))
        .await
        .unwrap();
    let mut three = events.clone();
    three.push(third);
    assert!(verify_chain("user#kms-test", &three, &verifier, None).is_ok());
    assert!(lapse_aws::kms::KmsSigner::deferred(kms.clone(), &alias).is_err());
    assert!(lapse_aws::kms::KmsSigner::deferred(kms.clone(), symmetric).is_err());
    let symmetric_arn = kms
        .describe_key()
        .key_id(symmetric)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let wrong_kind = lapse_aws::kms::KmsSigner::deferred(kms.clone(), &symmetric_arn)
        .unwrap()
        .into_audit_signer();
    assert!(wrong_kind.seal(draft(3), &policy, None).await.is_err());
}

/// Every HR sample in `events/hr-webhook/` goes on a bus with the rules the template
/// declares; moto matches them: the five revoking types arrive, hires do not.
#[tokio::test]
async fn rule_patterns_route_the_sample_events() {
    use lapse_core::revocation::hr::{HrEvent, HrEventType};
    use lapse_core::revocation::ports::EventBus;
    let config = config().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = unique_name("hr-bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let queue = sqs
        .create_queue()
        .queue_name(unique_name("routed"))
        .send()
        .await
        .unwrap();
    let url = queue.queue_url().unwrap().to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    for event_type in lapse_aws::eventbridge::ROUTED {
        let rule = unique_name("rule");
        events
            .put_rule()
            .name(&rule)
            .event_bus_name(&bus)
            .event_pattern(lapse_aws::eventbridge::rule_pattern(event_type))
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule(&rule)
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("q")
                    .arn(&arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    let publisher = lapse_aws::eventbridge::EventBridgeBus::new(events, &bus);
    let dir = lapse_testkit::workspace_root().join("events/hr-webhook");
    let mut sent = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with("-body.json") {
            continue;
        }
        let event = HrEvent::parse(&std::fs::read(&path).unwrap()).unwrap();
        publisher.publish(&event).await.unwrap();
        sent.push(event.event_type);
    }
    assert_eq!(sent.len(), 6, "one sample per event type");
    let mut routed = Vec::new();
    for _ in 0..5 {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for message in out.messages() {
            let event: serde_json::Value = serde_json::from_str(message.body().unwrap()).unwrap();
            routed.push(event["detail-type"].as_str().unwrap().to_owned());
            assert_eq!(event["source"], lapse_aws::eventbridge::SOURCE);
            HrEvent::parse(event["detail"].to_string().as_bytes()).unwrap();
        }
        if routed.len() >= 6 {
            break;
        }
    }
    routed.sort();
    let mut expected: Vec<String> = lapse_aws::eventbridge::ROUTED
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    expected.sort();
    assert_eq!(routed, expected);
    assert!(routed.contains(&HrEventType::UserHired.as_str().to_owned()));
}

/// The in-progress gauge counts exactly the cases not yet verified: the sparse
/// `open-cases` index gains a case when it opens and loses it once verified.
#[tokio::test]
async fn open_revocation_cases_are_counted_until_verified() {
    use lapse_core::revocation::case::CaseStatus;
    use lapse_core::revocation::ports::CaseStore;
    let sdk = config().await;
    let table = lapse_aws::revocations::DynamoDbRevocations::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        unique_name("revocations"),
    );
    table.provision_local().await.unwrap();
    assert_eq!(table.open_cases().await.unwrap(), 0);
    let catalog = lapse_lambda::bundled_catalog().unwrap();
    let sample: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            lapse_testkit::workspace_root().join("events/hr-webhook/termination-body.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut cases = Vec::new();
    for n in 0..3 {
        let mut body = sample.clone();
        body["event_id"] = serde_json::json!(unique_name("evt"));
        body["user"]["username"] = serde_json::json!(format!("gauge-user-{n}"));
        body["timestamp"] = serde_json::json!(Utc::now().to_rfc3339());
        let event =
            lapse_core::revocation::hr::HrEvent::parse(body.to_string().as_bytes()).unwrap();
        let mut case =
            lapse_core::revocation::usecase::case_for(&event, &catalog, Utc::now()).unwrap();
        table.create(&mut case).await.unwrap();
        cases.push(case);
    }
    assert_eq!(table.open_cases().await.unwrap(), 3);
    let snapshot = |case: &lapse_core::revocation::case::RevocationCase| {
        lapse_core::revocation::plan::IdentitySnapshot::absent(case.user().clone(), Utc::now())
    };
    let before = snapshot(&cases[0]);
    cases[0].start(before).unwrap();
    assert_eq!(cases[0].status(), CaseStatus::InProgress);
    table.update(&mut cases[0]).await.unwrap();
    assert_eq!(table.open_cases().await.unwrap(), 3, "in progress is open");
    let after = snapshot(&cases[1]);
    cases[1].verify(after).unwrap();
    table.update(&mut cases[1]).await.unwrap();
    assert_eq!(
        table.open_cases().await.unwrap(),
        2,
        "verified leaves the gauge"
    );
}

/// A function's SDK clients are made without building the HTTPS connector (which
/// reads the system's trusted certificates); the first request builds it.
#[tokio::test]
async fn the_https_client_is_built_by_the_first_request_not_by_client_construction() {
    use aws_smithy_runtime_api::client::http::SharedHttpClient;
    let lazy = lapse_aws::sdk::LazyHttpsClient::default();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(SharedHttpClient::new(lazy.clone()))
        .endpoint_url(lapse_testkit::shared().endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(lapse_aws::sdk::Credentials::new(
            "testing", "testing", None, None, "lazy",
        ))
        .load()
        .await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let _iam = aws_sdk_iam::Client::new(&config);
    assert!(!lazy.is_built(), "constructing clients built the connector");
    dynamodb.list_tables().send().await.unwrap();
    assert!(lazy.is_built());
}

/// Issue 22: an auditor whose audit key cannot be read is told that Lapse could not
/// *read* it, and why (not that a key "could not sign").
#[tokio::test]
async fn an_unreadable_audit_key_is_said_to_be_unreadable_and_why() {
    let config = config().await;
    let kms = aws_sdk_kms::Client::new(&config);
    let err = lapse_aws::kms::audit_verifier(&kms, "alias/no-such-audit-key")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "could not read the audit key's public half: alias/no-such-audit-key: NotFoundException"
        ),
        "{err}"
    );
    // Nothing listening: the reason the call got no answer at all.
    let nowhere = lapse_aws::sdk::load_local("http://127.0.0.1:9").await;
    let err = lapse_aws::kms::audit_verifier(&aws_sdk_kms::Client::new(&nowhere), "k")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("could not read the audit key's public half: k: "),
        "{err}"
    );
    assert!(!err.contains("could not sign"), "{err}");
    assert!(
        err.len() > "could not read the audit key's public half: k: ".len() + 10,
        "{err}"
    );
}

/// The grantee's boundary is read with `GetUser`. moto keeps none for users, so a
/// user there is reported as carrying none (never as carrying Lapse's); an unknown
/// user likewise; with no boundary configured the check refuses to guess; and the
/// declared gap says it was not checked.
#[tokio::test]
async fn a_grantees_boundary_is_read_from_iam() {
    use lapse_core::ports::{AccessInspector, Bounded};
    let config = config().await;
    let iam = aws_sdk_iam::Client::new(&config);
    let user = new_user(&iam).await;
    let boundary = "arn:aws:iam::123456789012:policy/lapse-managed-user-boundary";
    let directory = IamDirectory::new(iam.clone()).with_boundary(Some(boundary.into()));
    assert_eq!(
        directory.user_bounded(&user).await.unwrap(),
        Bounded::No { actual: None }
    );
    let nobody = PrincipalId::new(unique_name("nobody")).unwrap();
    assert_eq!(
        directory.user_bounded(&nobody).await.unwrap(),
        Bounded::No { actual: None }
    );
    let unconfigured = IamDirectory::new(iam.clone());
    let err = unconfigured.user_bounded(&user).await.unwrap_err();
    assert!(
        err.to_string().contains("LAPSE_MANAGED_USER_BOUNDARY"),
        "{err}"
    );
    let gap = IamDirectory::new(iam)
        .declaring_gaps(lapse_aws::iam::GAP_USER_BOUNDARIES)
        .unwrap();
    assert_eq!(gap.user_bounded(&user).await.unwrap(), Bounded::NotOffered);
}

/// A secret named `lapse/<unique>` that rotates with a new function of `handler`.
async fn rotating_secret(config: &SdkConfig, handler: &str) -> lapse_core::policy::Checkout {
    let name = unique_name("lapse/rotating");
    aws_sdk_secretsmanager::Client::new(config)
        .create_secret()
        .name(&name)
        .secret_string("initial")
        .send()
        .await
        .unwrap();
    let checkout = lapse_core::policy::Checkout {
        secret_arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}"),
        rotation_function: format!(
            "arn:aws:lambda:us-east-1:123456789012:function:{}",
            unique_name("rotate")
        ),
    };
    lapse_local::provision::enable_rotation_with(config, &checkout, handler)
        .await
        .unwrap();
    checkout
}

async fn value(config: &SdkConfig, secret: &str, version: &str) -> String {
    aws_sdk_secretsmanager::Client::new(config)
        .get_secret_value()
        .secret_id(secret)
        .version_id(version)
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_rotation_is_done_when_its_function_made_the_new_version_current() {
    use lapse_core::ports::CredentialVault;
    let config = config().await;
    let vault =
        lapse_aws::vault::SecretsManagerVault::new(aws_sdk_secretsmanager::Client::new(&config));
    let database = rotating_secret(
        &config,
        lapse_local::provision::LOCAL_DATABASE_ROTATION_HANDLER,
    )
    .await;
    let secret = &database.secret_arn;
    let before = vault.state(secret).await.unwrap();
    assert_eq!(
        before.rotation_function.as_deref(),
        Some(database.rotation_function.as_str())
    );
    let old_value = value(&config, secret, &before.current).await;
    // Version ids as check-in names them (32 to 64 characters).
    let (r1, r2) = (
        unique_name("checkin-r1-0123456789abcdef"),
        unique_name("checkin-r2-0123456789abcdef"),
    );
    vault
        .rotate(secret, &r1, &database.rotation_function)
        .await
        .unwrap();
    let after = vault.state(secret).await.unwrap();
    assert_eq!(
        (after.current.as_str(), after.pending.as_deref()),
        (r1.as_str(), None)
    );
    assert_ne!(value(&config, secret, &r1).await, old_value);
    // Asked again (a retried check-in): nothing new.
    vault
        .rotate(secret, &r1, &database.rotation_function)
        .await
        .unwrap();
    assert_eq!(vault.state(secret).await.unwrap(), after);

    // A function that does nothing: the new version stays pending, the old
    // value current. Not done.
    let noop = rotating_secret(&config, "index.handler").await;
    let secret = &noop.secret_arn;
    let before = vault.state(secret).await.unwrap();
    vault
        .rotate(secret, &r2, &noop.rotation_function)
        .await
        .unwrap();
    let after = vault.state(secret).await.unwrap();
    assert_eq!(after.current, before.current);
    assert_eq!(after.pending.as_deref(), Some(r2.as_str()));

    // A secret whose rotation is off names no function.
    let name = unique_name("lapse/still");
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name(&name)
        .secret_string("initial")
        .send()
        .await
        .unwrap();
    assert_eq!(vault.state(&name).await.unwrap().rotation_function, None);
}
