//! Local Step Functions: each start goes through the real Step Functions API (moto
//! keeps the execution and applies the name rule), and the first start of a name
//! runs the real `grant-lifecycle.asl.json` in `aws-local-stepfunctions`, whose Task
//! states invoke this host's Lambda API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapse_aws::sfn::SfnWorkflowStarter;
use lapse_core::ports::{WorkflowError, WorkflowStarter};
use serde::{Deserialize, Serialize};

/// How fast a local run goes. Wait states follow the stack's clock, never a
/// shortened duration: a Wait ends only when the clock passes its time.
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    /// Every retry interval.
    pub retry_ms: u64,
    /// The whole execution is aborted after this (0: never, as `serve` runs).
    pub timeout_ms: u64,
    /// Every Task without its own timeout gets this many seconds, standing in for
    /// the interpreter's 60 (tests shorten it to show what the default does).
    pub task_timeout_default: Option<u64>,
    /// At most this many interpreter processes run at once; further executions
    /// queue (a batch of a thousand revocations would otherwise start a thousand
    /// Node processes). The timeout counts from an execution's own start.
    pub max_running: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            retry_ms: 50,
            timeout_ms: 90_000,
            task_timeout_default: None,
            max_running: 64,
        }
    }
}

/// What the interpreter reported for one execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRun {
    pub status: String,
    #[serde(default)]
    pub output: Option<serde_json::Value>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
    #[serde(default)]
    pub states: Vec<String>,
    #[serde(default)]
    pub retries: Vec<String>,
    #[serde(default)]
    pub caught: Vec<String>,
}

#[derive(Debug)]
struct Inner {
    definition: std::path::PathBuf,
    lambda_endpoint: String,
    substitutions: serde_json::Value,
    options: RunOptions,
    /// Each execution started, with its input.
    launched: Mutex<HashMap<String, serde_json::Value>>,
    runs: Mutex<HashMap<String, WorkflowRun>>,
    running: Arc<tokio::sync::Semaphore>,
    /// Where a failed execution is alarmed, as the deployed stack's
    /// `ExecutionsFailed` alarms publish to the security topic.
    alarm: Mutex<Option<Alarm>>,
}

/// The security topic a failed local execution is reported to.
#[derive(Clone, Debug)]
pub struct Alarm {
    pub sns: aws_sdk_sns::Client,
    pub topic_arn: String,
    /// Which workflow, in the alarm's words (`grant lifecycle`, `revocation`).
    pub workflow: &'static str,
}

/// A cheap handle; clones share the executions. Each handle starts executions
/// through the Step Functions API with its own caller's identity
/// ([`LocalWorkflows::for_caller`]), as each function's role does on AWS.
#[derive(Clone, Debug)]
pub struct LocalWorkflows {
    inner: Arc<Inner>,
    sfn: SfnWorkflowStarter,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LocalWorkflows {
    /// Runs `definition` (a path under `infra/statemachines/`, or an absolute path).
    pub fn new(
        sfn: SfnWorkflowStarter,
        definition: impl AsRef<std::path::Path>,
        lambda_endpoint: String,
        substitutions: serde_json::Value,
        options: RunOptions,
    ) -> Self {
        Self {
            sfn,
            inner: Arc::new(Inner {
                definition: crate::repo_root()
                    .join("infra/statemachines")
                    .join(definition),
                lambda_endpoint,
                substitutions,
                options,
                launched: Mutex::new(HashMap::new()),
                runs: Mutex::new(HashMap::new()),
                running: Arc::new(tokio::sync::Semaphore::new(options.max_running.max(1))),
                alarm: Mutex::new(None),
            }),
        }
    }

    /// Reports every execution that does not succeed to `alarm`'s topic (and the
    /// log), as the deployed stack's alarms do.
    pub fn alarm_on_failure(&self, alarm: Alarm) {
        *lock(&self.inner.alarm) = Some(alarm);
    }

    /// The same executions, started with another caller's identity.
    pub fn for_caller(&self, sfn: SfnWorkflowStarter) -> Self {
        Self {
            inner: self.inner.clone(),
            sfn,
        }
    }

    /// The finished run of an execution, waiting up to `timeout` for it.
    pub async fn wait(&self, name: &str, timeout: Duration) -> Option<WorkflowRun> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(run) = lock(&self.inner.runs).get(name).cloned() {
                return Some(run);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Names of every execution started so far.
    pub fn launched(&self) -> Vec<String> {
        let mut names: Vec<_> = lock(&self.inner.launched).keys().cloned().collect();
        names.sort();
        names
    }

    /// The input an execution was started with (what a re-drive starts again).
    pub fn input(&self, name: &str) -> Option<serde_json::Value> {
        lock(&self.inner.launched).get(name).cloned()
    }

    fn launch(&self, name: String, input: serde_json::Value) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            // The semaphore is never closed, so the permit always comes.
            let _permit = inner.running.clone().acquire_owned().await.ok();
            let root = crate::repo_root();
            let opts = inner.options;
            let mut command =
                tokio::process::Command::new(root.join("tools/node_modules/.bin/node"));
            command
                .arg(root.join("tools/run-workflow.mjs"))
                .args(["--definition"])
                .arg(&inner.definition)
                .args(["--substitutions", &inner.substitutions.to_string()])
                .args(["--input", &input.to_string()])
                .args(["--clock-url", &inner.lambda_endpoint])
                .args(["--retry-ms", &opts.retry_ms.to_string()])
                .args(["--timeout-ms", &opts.timeout_ms.to_string()]);
            // The runner's options, after the script (before it, they are node's).
            if let Some(seconds) = opts.task_timeout_default {
                command.args(["--task-timeout-default", &seconds.to_string()]);
            }
            let output = command
                .env("AWS_ENDPOINT_URL_LAMBDA", &inner.lambda_endpoint)
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .kill_on_drop(true)
                .output()
                .await;
            let run = match output {
                Ok(out) => String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .rev()
                    .find_map(|line| serde_json::from_str::<WorkflowRun>(line).ok())
                    .unwrap_or_else(|| WorkflowRun {
                        status: "RUNNER_FAILED".into(),
                        output: None,
                        error: Some("Runner".into()),
                        cause: Some(String::from_utf8_lossy(&out.stderr).into_owned()),
                        states: Vec::new(),
                        retries: Vec::new(),
                        caught: Vec::new(),
                    }),
                Err(err) => WorkflowRun {
                    status: "RUNNER_FAILED".into(),
                    output: None,
                    error: Some("Spawn".into()),
                    cause: Some(err.to_string()),
                    states: Vec::new(),
                    retries: Vec::new(),
                    caught: Vec::new(),
                },
            };
            if run.status == "SUCCEEDED" {
                tracing::info!(execution = %name, "local execution succeeded");
            } else {
                report_failure(&inner, &name, &run).await;
            }
            lock(&inner.runs).insert(name, run);
        });
    }
}

/// What a person reads about an execution that did not succeed: where it stopped
/// and why, in words.
pub fn failure_text(name: &str, run: &WorkflowRun) -> String {
    let last = run
        .states
        .last()
        .map_or("before its first state", String::as_str);
    let error = run.error.as_deref().unwrap_or("no error name");
    let cause = run.cause.as_deref().unwrap_or("").trim();
    // The interpreter repeats the error's name as its cause when it has no other.
    let cause = if cause == error { "" } else { cause };
    let cause: String = cause.chars().take(600).collect();
    format!(
        "execution {name} ended {} at {last}: {}{}",
        run.status,
        error,
        if cause.is_empty() {
            String::new()
        } else {
            format!(" ({cause})")
        }
    )
}

/// Logs a failed execution and publishes it to the alarm topic.
async fn report_failure(inner: &Inner, name: &str, run: &WorkflowRun) {
    let text = failure_text(name, run);
    tracing::error!(execution = %name, status = %run.status, "{text}");
    let alarm = lock(&inner.alarm).clone();
    if let Some(alarm) = alarm {
        // The person running the stack sees it in its terminal too.
        eprintln!("ALARM: a {} {text}", alarm.workflow);
        let message = serde_json::json!({
            "AlarmName": "ExecutionsFailed",
            "NewStateValue": "ALARM",
            "AlarmDescription": format!("A {} execution failed, timed out or was aborted.", alarm.workflow),
            "NewStateReason": text,
        });
        if let Err(err) = alarm
            .sns
            .publish()
            .topic_arn(&alarm.topic_arn)
            .subject(format!("ALARM: {} execution failed", alarm.workflow))
            .message(message.to_string())
            .send()
            .await
        {
            tracing::error!(error = %aws_sdk_sns::error::DisplayErrorContext(&err), "the failed execution's alarm could not be published");
        }
    }
}

impl WorkflowStarter for LocalWorkflows {
    async fn start(&self, name: &str, input: &serde_json::Value) -> Result<String, WorkflowError> {
        let arn = self.sfn.start(name, input).await?;
        let first = lock(&self.inner.launched)
            .insert(name.to_owned(), input.clone())
            .is_none();
        if first {
            self.launch(name.to_owned(), input.clone());
        }
        Ok(arn)
    }
}
