//! Shared by the workflow and API tests: a local stack on the shared emulator, and
//! ways to read IAM and the audit trail back.

#![allow(dead_code, clippy::unwrap_used)] // each test binary uses part of it

use std::time::Duration;

use lapse_aws::iam::IamDirectory;
use lapse_cli::client::ApiClient;
use lapse_core::access::grant::IamSnapshot;
use lapse_core::audit::verify_chain;
use lapse_core::identity::PrincipalId;
use lapse_core::ports::{AccessInspector, AuditLog};
use lapse_local::host::{LocalStack, StackOptions};
use lapse_local::workflows::{RunOptions, WorkflowRun};
use lapse_testkit::{shared, unique_name};

pub const PEOPLE: &[(&str, &[&str], &str)] = &[
    ("dana", &["on-call"], "employee"),
    ("carl", &["on-call"], "contractor"),
    ("erin", &["on-call"], "employee"),
    ("olga", &["platform-owners", "on-call"], "employee"),
    ("bill", &["billing-owners"], "employee"),
    ("mia", &["managers"], "employee"),
    ("sam", &["security"], "employee"),
];

pub struct Stack {
    pub stack: LocalStack,
    /// Tests share one emulator, so each stack's people have their own IAM users.
    suffix: String,
}

pub const WAIT: Duration = Duration::from_secs(30);

impl Stack {
    pub async fn start() -> Self {
        let sdk = lapse_aws::sdk::load_local(shared().endpoint()).await;
        let stack = LocalStack::start(
            sdk,
            StackOptions {
                prefix: unique_name("lapse"),
                issuer: None,
                run: RunOptions::default(),
                port: 0,
            },
        )
        .await
        .unwrap();
        let suffix = unique_name("u")[2..8].to_owned();
        let users: Vec<String> = PEOPLE
            .iter()
            .map(|(u, _, _)| format!("{u}-{suffix}"))
            .collect();
        let refs: Vec<&str> = users.iter().map(String::as_str).collect();
        stack.add_users(&refs).await.unwrap();
        Self { stack, suffix }
    }

    /// The IAM user name of one of [`PEOPLE`] in this stack.
    pub fn user(&self, name: &str) -> String {
        format!("{name}-{}", self.suffix)
    }

    /// An API client authenticated as one of [`PEOPLE`].
    pub fn as_user(&self, name: &str) -> ApiClient {
        let (_, groups, employment) = PEOPLE.iter().find(|(u, _, _)| *u == name).unwrap();
        ApiClient::new(
            &self.stack.url,
            self.stack
                .token(&self.user(name), groups, employment)
                .unwrap(),
        )
    }

    pub async fn iam(&self, name: &str) -> IamSnapshot {
        self.iam_of(&self.user(name)).await
    }

    /// What IAM holds for this exact user name (a vendor's temporary user, say).
    pub async fn iam_of(&self, user: &str) -> IamSnapshot {
        let directory = IamDirectory::new(aws_sdk_iam::Client::new(&self.stack.sdk));
        directory
            .snapshot(&PrincipalId::new(user).unwrap())
            .await
            .unwrap()
    }

    /// Waits until the request is active and IAM holds its policy (the grant step
    /// records the window first, then writes IAM, then the holder is notified).
    pub async fn provisioned(
        &self,
        client: &ApiClient,
        id: &str,
        resource: &str,
        name: &str,
    ) -> serde_json::Value {
        let active = client.wait_for(id, "active", WAIT).await.unwrap();
        assert_eq!(active["status"], "active", "{active}");
        let policy = format!("lapse-{resource}-{id}");
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.iam(name).await.inline_policies.contains_key(&policy) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "IAM never received {policy}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        active
    }

    pub async fn workflow(&self, name: &str) -> WorkflowRun {
        self.stack
            .workflows
            .wait(name, WAIT)
            .await
            .unwrap_or_else(|| panic!("workflow {name} did not finish"))
    }

    /// The request's audit actions, after verifying the chain's signatures and links.
    pub async fn audit(&self, id: &str) -> Vec<String> {
        self.audit_events(id)
            .await
            .into_iter()
            .map(|e| e.action)
            .collect()
    }

    /// A request's audit chain, verified.
    pub async fn audit_events(&self, id: &str) -> Vec<lapse_core::audit::AuditEvent> {
        let log = lapse_aws::dynamodb::DynamoDbAuditLog::new(
            aws_sdk_dynamodb::Client::new(&self.stack.sdk),
            &self.stack.config.tables.audit,
        );
        let chain_name = format!("request#{id}");
        let chain = log.chain(&chain_name).await.unwrap();
        let verifier = lapse_aws::kms::audit_verifier(
            &aws_sdk_kms::Client::new(&self.stack.sdk),
            &self.stack.config.audit_key,
        )
        .await
        .unwrap();
        verify_chain(&chain_name, &chain, &verifier, None).unwrap();
        chain
    }

    /// Moves the stack's clock past a grant's end.
    pub fn pass(&self, request: &serde_json::Value) {
        let expires: chrono::DateTime<chrono::Utc> = request["window"]["expires_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        self.stack
            .clock
            .advance_to(expires + chrono::TimeDelta::seconds(1));
    }
}

pub fn id(value: &serde_json::Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

impl Stack {
    /// Invokes a task function through the host's Lambda Invoke API, as Lambda's
    /// event sources would; returns the function error name (if any) and the body.
    pub async fn invoke(
        &self,
        function: &str,
        payload: &serde_json::Value,
    ) -> (Option<String>, serde_json::Value) {
        let url = format!(
            "{}/2015-03-31/functions/{}/invocations",
            self.stack.url,
            self.stack.config.function_arn(function)
        );
        let response = reqwest::Client::new()
            .post(url)
            .json(payload)
            .send()
            .await
            .unwrap();
        let error = response
            .headers()
            .get("x-amz-function-error")
            .map(|_| String::new());
        let body: serde_json::Value = response.json().await.unwrap();
        (
            error.map(|_| body["errorType"].as_str().unwrap_or_default().to_owned()),
            body,
        )
    }

    /// A sample event from `events/`.
    pub fn sample(path: &str) -> serde_json::Value {
        let text =
            std::fs::read_to_string(lapse_testkit::workspace_root().join("events").join(path))
                .unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

impl Stack {
    /// A revocation execution's finished run.
    pub async fn workflow_of_revocation(&self, name: &str) -> WorkflowRun {
        self.stack
            .revocations
            .wait(name, WAIT)
            .await
            .unwrap_or_else(|| panic!("revocation workflow {name} did not finish"))
    }
}

/// A stack with the revocation steps' ports, for tests that drive revocations
/// directly and read IAM back.
pub struct Revoking {
    pub s: Stack,
    pub iam: aws_sdk_iam::Client,
    pub r: lapse_lambda::wiring::Revocations,
}

impl Revoking {
    /// A fresh stack, with these IAM groups in place.
    pub async fn start(groups: &[&str]) -> Self {
        let s = Stack::start().await;
        let r = lapse_lambda::wiring::Revocations::from_env(
            &s.stack.config.env(),
            &s.stack.sdk,
            ::revocation::TOPICS,
        )
        .await
        .unwrap();
        let iam = aws_sdk_iam::Client::new(&s.stack.sdk);
        for group in groups {
            lapse_local::provision::ensure_group(&iam, group)
                .await
                .unwrap();
        }
        Self { s, iam, r }
    }
}

/// A new SQS queue subscribed to an SNS topic, to read what is published there.
/// Returns the queue's URL.
pub async fn queue_on_topic(sdk: &aws_config::SdkConfig, topic_arn: &str, name: &str) -> String {
    let (url, arn) = new_queue(sdk, name).await;
    aws_sdk_sns::Client::new(sdk)
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await
        .unwrap();
    url
}

/// A new SQS queue: its URL and its ARN.
pub async fn new_queue(sdk: &aws_config::SdkConfig, name: &str) -> (String, String) {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let url = sqs
        .create_queue()
        .queue_name(unique_name(name))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    (url, arn)
}

impl Stack {
    /// The auditor's reader over this stack's audit table, anchors and key.
    pub async fn audit_reader(&self) -> lapse_cli::audit::AuditReader {
        self.stack.audit_reader().await.unwrap()
    }
}
