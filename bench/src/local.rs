//! A local stack of its own for a benchmark or scenario: a dedicated emulator, the
//! wire proxy in front of it (every AWS call counted, faults on demand), and the
//! stack with its people.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use lapse_cli::client::ApiClient;
use lapse_local::host::{LocalStack, StackOptions};
use lapse_local::proxy::WireProxy;
use lapse_local::workflows::{RunOptions, WorkflowRun};
use lapse_testkit::{Emulator, unique_name};

/// Approvers every stack has: (name, approver groups).
pub const APPROVERS: &[(&str, &[&str])] = &[
    ("olga", &["platform-owners"]),
    ("bill", &["billing-owners"]),
    ("mia", &["managers"]),
    ("sam", &["security"]),
];

/// How long a single flow may take before the bench calls it lost.
pub const WAIT: Duration = Duration::from_secs(180);

pub struct Local {
    pub stack: LocalStack,
    pub proxy: WireProxy,
    /// Dropped last: the emulator outlives the stack that uses it.
    pub emulator: Emulator,
    suffix: String,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("url", &self.stack.url)
            .finish_non_exhaustive()
    }
}

impl Local {
    /// A new emulator, the proxy and a provisioned stack; at most `max_running`
    /// interpreter processes per state machine.
    pub async fn start(max_running: usize) -> Result<Self> {
        let emulator = Emulator::start().context("starting the emulator")?;
        let proxy = WireProxy::start(emulator.endpoint()).await?;
        let sdk = lapse_aws::sdk::load_local(&proxy.url).await;
        let stack = LocalStack::start(
            sdk,
            StackOptions {
                prefix: unique_name("lapse"),
                issuer: None,
                run: RunOptions {
                    max_running,
                    timeout_ms: WAIT.as_millis() as u64,
                    ..RunOptions::default()
                },
                port: 0,
            },
        )
        .await?;
        let suffix = unique_name("u")[2..8].to_owned();
        let local = Self {
            stack,
            proxy,
            emulator,
            suffix,
        };
        let approvers: Vec<String> = APPROVERS.iter().map(|(n, _)| local.user(n)).collect();
        let refs: Vec<&str> = approvers.iter().map(String::as_str).collect();
        local.stack.add_users(&refs).await?;
        Ok(local)
    }

    /// This stack's IAM user name for `name`.
    pub fn user(&self, name: &str) -> String {
        format!("{name}-{}", self.suffix)
    }

    /// An API client for `user` (an IAM user name) with these approver groups.
    pub fn client(&self, user: &str, groups: &[&str]) -> Result<ApiClient> {
        Ok(ApiClient::new(
            &self.stack.url,
            self.stack.token(user, groups, "employee")?,
        ))
    }

    /// An approver's client.
    pub fn approver(&self, name: &str) -> Result<ApiClient> {
        let (_, groups) = APPROVERS
            .iter()
            .find(|(n, _)| *n == name)
            .context("no such approver")?;
        self.client(&self.user(name), groups)
    }

    /// Asks for `resource` for 30 minutes as `requester`, has whoever the route needs
    /// approve, and waits until the grant is active in IAM. Returns the request id.
    pub async fn live_grant(&self, requester: &ApiClient, resource: &str) -> Result<String> {
        let asked = requester
            .request(resource, Some("30m"), "benchmark: live grant", None)
            .await?;
        let id = asked["id"].as_str().context("request id")?.to_owned();
        if asked["status"] != "approved" && asked["status"] != "active" {
            for name in ["olga", "bill", "mia", "sam"] {
                // Only approvers the route names are asked; others are refused
                // (not eligible), which changes nothing.
                let _ = self.approver(name)?.decide(&id, true, "benchmark").await;
            }
        }
        let active = requester.wait_for(&id, "active", WAIT).await?;
        ensure!(
            active["status"] == "active",
            "{resource}: grant never became active: {active}"
        );
        Ok(id)
    }

    /// Waits until no AWS call has been made for 300 ms (a grant's workflow writes
    /// IAM after the request already reads `active`), and forgets the calls.
    pub async fn quiesce(&self) {
        loop {
            self.proxy.take_calls();
            tokio::time::sleep(Duration::from_millis(300)).await;
            if self.proxy.take_calls().iter().all(|c| c.service == "sqs") {
                return;
            }
        }
    }

    /// The revocation executions started that are not in `before`.
    pub fn revocations_since(&self, before: &[String]) -> Vec<String> {
        let mut names = self.stack.revocations.launched();
        names.retain(|n| !before.contains(n));
        names
    }

    /// Waits for an execution not in `before` to start, then for it to finish.
    pub async fn next_revocation(&self, before: &[String]) -> Result<WorkflowRun> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let name = loop {
            if let Some(name) = self.revocations_since(before).into_iter().next() {
                break name;
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "no revocation started"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        self.stack
            .revocations
            .wait(&name, WAIT)
            .await
            .with_context(|| format!("revocation {name} did not finish"))
    }
}

impl Local {
    /// Invokes a task function as Step Functions or a schedule does; returns the
    /// function error's name (if any) and the answer.
    pub async fn invoke(
        &self,
        function: &str,
        event: &serde_json::Value,
    ) -> Result<(Option<String>, serde_json::Value)> {
        let answer = reqwest::Client::new()
            .post(format!(
                "{}/2015-03-31/functions/{function}/invocations",
                self.stack.url
            ))
            .json(event)
            .send()
            .await?;
        let failed = answer.headers().get("x-amz-function-error").is_some();
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        let error = failed.then(|| body["errorType"].as_str().unwrap_or("?").to_owned());
        Ok((error, body))
    }

    /// A sample event from `events/`.
    pub fn sample(path: &str) -> Result<serde_json::Value> {
        let text =
            std::fs::read_to_string(lapse_testkit::workspace_root().join("events").join(path))?;
        Ok(serde_json::from_str(&text)?)
    }

    /// The revocation cases opened for `user`.
    pub async fn cases_of(
        &self,
        user: &str,
    ) -> Result<Vec<lapse_core::revocation::case::RevocationCase>> {
        let store = lapse_aws::revocations::DynamoDbRevocations::new(
            aws_sdk_dynamodb::Client::new(&self.stack.sdk),
            &self.stack.config.revocations_table,
        );
        let user = lapse_core::identity::PrincipalId::new(user)?;
        Ok(lapse_core::revocation::ports::CaseStore::cases_of(&store, &user).await?)
    }

    /// Starts the revocation workflow again for a case (an operator's re-drive).
    pub async fn redrive(&self, case_id: &str, name: &str) -> Result<WorkflowRun> {
        lapse_core::ports::WorkflowStarter::start(
            &self.stack.revocations,
            name,
            &serde_json::json!({ "case": { "case_id": case_id } }),
        )
        .await?;
        self.stack
            .revocations
            .wait(name, WAIT)
            .await
            .with_context(|| format!("re-drive {name} did not finish"))
    }
}

/// An HR termination event for `user` (the sample in `events/`, re-addressed).
pub fn termination_event(
    user: &str,
    event_id: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<String> {
    let sample = std::fs::read_to_string(
        lapse_testkit::workspace_root().join("events/hr-webhook/termination-body.json"),
    )?;
    let mut body: serde_json::Value = serde_json::from_str(&sample)?;
    body["user"]["username"] = serde_json::json!(user);
    body["event_id"] = serde_json::json!(event_id);
    body["timestamp"] = serde_json::json!(at.to_rfc3339());
    Ok(body.to_string())
}

/// What IAM still gives `user` that a full revocation must take away: a console
/// password, active keys, group memberships, inline policies other than the
/// session deny. Empty when the revocation held.
pub async fn left_over(iam: &aws_sdk_iam::Client, user: &str) -> Result<Vec<String>> {
    let mut left = Vec::new();
    if iam.get_login_profile().user_name(user).send().await.is_ok() {
        left.push("login profile".to_owned());
    }
    let keys = iam.list_access_keys().user_name(user).send().await?;
    for key in keys.access_key_metadata() {
        if key.status() == Some(&aws_sdk_iam::types::StatusType::Active) {
            left.push(format!("active key {}", key.access_key_id().unwrap_or("?")));
        }
    }
    let groups = iam.list_groups_for_user().user_name(user).send().await?;
    left.extend(
        groups
            .groups()
            .iter()
            .map(|g| format!("group {}", g.group_name())),
    );
    let inline = iam.list_user_policies().user_name(user).send().await?;
    left.extend(
        inline
            .policy_names()
            .iter()
            .filter(|n| *n != lapse_core::revocation::plan::SESSION_DENY_POLICY)
            .map(|n| format!("inline policy {n}")),
    );
    Ok(left)
}
