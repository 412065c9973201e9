//! Schedules, locally: what EventBridge Scheduler does for the deployed stack, on
//! the stack's clock.
//!
//! - The stack's own schedules ([`STACK_SCHEDULES`], the template's `ScheduleV2`
//!   events): the sweeper every five minutes, the inactivity check daily. Each is
//!   invoked through the host's Lambda API with the event the scheduler sends.
//! - One-time schedules Lapse creates through the Scheduler API (a dated
//!   revocation, an operator's `--role` transition, a batch row for later): each
//!   starts its target state machine with its input once the clock passes its
//!   `at(...)` time, and is then deleted, as `ActionAfterCompletion: DELETE` does.
//!
//! A clock moved a week forward runs each stack schedule once, not once per missed
//! interval: the sweeper and the inactivity check look at the state as it is.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use lapse_core::ports::{Clock, WorkflowStarter};

use crate::clock::LocalClock;
use crate::workflows::LocalWorkflows;

/// The stack's own schedules: (function, interval), as `infra/template.yaml`
/// declares them (`tests/template.rs` holds the two to each other).
pub const STACK_SCHEDULES: &[(&str, TimeDelta)] = &[
    ("sweeper", TimeDelta::minutes(5)),
    ("inactivity-check", TimeDelta::days(1)),
];

/// How often the schedules are looked at, in real time.
const TICK: std::time::Duration = std::time::Duration::from_millis(500);

/// Where schedules deliver.
pub(crate) struct Targets {
    pub(crate) url: String,
    pub(crate) prefix: String,
    pub(crate) clock: Arc<LocalClock>,
    pub(crate) scheduler: aws_sdk_scheduler::Client,
    /// State machine ARN to the executions it runs.
    pub(crate) machines: BTreeMap<String, LocalWorkflows>,
}

/// The time of a one-time schedule's `at(yyyy-mm-ddThh:mm:ss)` expression (UTC).
pub fn at_time(expression: &str) -> Option<DateTime<Utc>> {
    let inner = expression.strip_prefix("at(")?.strip_suffix(')')?;
    NaiveDateTime::parse_from_str(inner, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

/// Runs every schedule at its time on the stack's clock, until the task is aborted.
pub(crate) async fn run(targets: Targets) {
    let http = reqwest::Client::new();
    let start = targets.clock.now();
    let mut next: Vec<DateTime<Utc>> = STACK_SCHEDULES
        .iter()
        .map(|(_, every)| start + *every)
        .collect();
    loop {
        tokio::time::sleep(TICK).await;
        let now = targets.clock.now();
        for ((function, every), due) in STACK_SCHEDULES.iter().zip(next.iter_mut()) {
            if now < *due {
                continue;
            }
            while *due <= now {
                *due += *every;
            }
            invoke_scheduled(&http, &targets, function, now).await;
        }
        if let Err(err) = fire_due(&targets, now).await {
            tracing::warn!(error = %err, "schedules: could not read the scheduler; will look again");
        }
    }
}

/// Invokes a function with the event EventBridge Scheduler sends it.
async fn invoke_scheduled(
    http: &reqwest::Client,
    targets: &Targets,
    function: &str,
    now: DateTime<Utc>,
) {
    let event = serde_json::json!({
        "version": "0",
        "id": format!("local-{function}-{}", now.timestamp()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": crate::provision::ACCOUNT,
        "time": now.to_rfc3339(),
        "region": "us-east-1",
        "resources": [],
        "detail": {}
    });
    let url = format!(
        "{}/2015-03-31/functions/{}-{function}/invocations",
        targets.url, targets.prefix
    );
    match http.post(&url).json(&event).send().await {
        Ok(response) => {
            let failed = response.headers().contains_key("x-amz-function-error");
            let body = response.text().await.unwrap_or_default();
            if failed {
                tracing::error!(function, answer = %body, "schedules: the scheduled run failed");
                eprintln!("ALARM: the scheduled {function} run failed: {body}");
            } else {
                tracing::info!(function, answer = %body, "schedules: scheduled run done");
            }
        }
        Err(err) => tracing::error!(function, error = %err, "schedules: could not invoke"),
    }
}

/// Starts every one-time schedule whose time has come, then deletes it.
async fn fire_due(targets: &Targets, now: DateTime<Utc>) -> Result<(), String> {
    let describe = |e: &dyn std::fmt::Display| e.to_string();
    let mut token = None;
    loop {
        let page = targets
            .scheduler
            .list_schedules()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| describe(&aws_sdk_scheduler::error::DisplayErrorContext(&e)))?;
        for summary in page.schedules() {
            let Some(name) = summary.name() else { continue };
            let schedule = targets
                .scheduler
                .get_schedule()
                .name(name)
                .set_group_name(summary.group_name().map(str::to_owned))
                .send()
                .await
                .map_err(|e| describe(&aws_sdk_scheduler::error::DisplayErrorContext(&e)))?;
            let Some(at) = schedule.schedule_expression().and_then(at_time) else {
                continue; // Not a one-time schedule: not Lapse's to fire.
            };
            if at > now {
                continue;
            }
            let Some(target) = schedule.target() else {
                continue;
            };
            let Some(machine) = targets.machines.get(target.arn()) else {
                tracing::error!(
                    schedule = name,
                    target = target.arn(),
                    "schedules: a target this stack does not run"
                );
                continue;
            };
            let input: serde_json::Value = target
                .input()
                .and_then(|i| serde_json::from_str(i).ok())
                .unwrap_or_default();
            match machine.start(name, &input).await {
                Ok(_) => {
                    tracing::info!(schedule = name, %at, "schedules: fired");
                    let _ = targets
                        .scheduler
                        .delete_schedule()
                        .name(name)
                        .set_group_name(summary.group_name().map(str::to_owned))
                        .send()
                        .await;
                }
                Err(err) => {
                    tracing::warn!(schedule = name, error = %err, "schedules: could not start; will retry")
                }
            }
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_time_expressions_are_read_and_others_are_not() {
        assert_eq!(
            at_time("at(2026-12-24T09:30:00)"),
            DateTime::parse_from_rfc3339("2026-12-24T09:30:00Z")
                .ok()
                .map(|t| t.with_timezone(&Utc))
        );
        assert_eq!(at_time("rate(5 minutes)"), None);
        assert_eq!(at_time("at(tomorrow)"), None);
    }
}
