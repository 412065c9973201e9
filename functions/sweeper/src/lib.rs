//! # sweeper
//!
//! Runs on a schedule (EventBridge, every five minutes). Expires pending requests
//! past their deadline, restarts workflows that approved requests never got, revokes
//! and verifies grants past their end that a failed or cancelled execution left
//! behind, and re-verifies revocations left unverified.

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;
use lapse_aws::sfn::SfnWorkflowStarter;
use lapse_aws::sns::SnsNotifier;
use lapse_core::ports::WorkflowStarter;
use lapse_core::usecase::Outbox;
use lapse_core::usecase::sweep::{SweepReport, sweep};
use lapse_lambda::HandlerError;
use lapse_lambda::config::Env;
use lapse_lambda::metrics;
use lapse_lambda::wiring::{self, InitError, Lifecycle};

#[derive(Debug)]
pub struct Deps<W> {
    pub lifecycle: Lifecycle,
    pub notifier: SnsNotifier,
    pub workflows: W,
}

impl Deps<SfnWorkflowStarter> {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        Ok(Self {
            lifecycle: Lifecycle::from_env(env, sdk).await?,
            notifier: wiring::notifier(env, sdk)?,
            workflows: wiring::workflows(env, sdk)?,
        })
    }
}

/// The scheduled event; only its shape is checked, its content is not needed.
pub type ScheduledEvent = serde_json::Value;

#[tracing::instrument(skip_all)]
pub async fn handler<W: WorkflowStarter>(
    deps: &Deps<W>,
    event: LambdaEvent<ScheduledEvent>,
) -> Result<SweepReport, HandlerError> {
    if event.payload.get("detail-type").and_then(|d| d.as_str()) != Some("Scheduled Event") {
        return Err(HandlerError::BadEvent(
            "expected an EventBridge scheduled event".into(),
        ));
    }
    let lifecycle = &deps.lifecycle;
    let outbox = Outbox {
        notifier: &deps.notifier,
        workflows: &deps.workflows,
    };
    let report = sweep(
        &lifecycle.grants(),
        &lifecycle.directory,
        &lifecycle.auditing.trail(),
        &outbox,
        lifecycle.clock.now(),
    )
    .await?;
    let count = |n: usize| n as f64;
    metrics::emit(
        &[("Workflow", "sweeper")],
        &[
            (
                "SweptExpiredRequests",
                count(report.expired_pending.len()),
                "Count",
            ),
            ("SweptRevocations", count(report.revoked.len()), "Count"),
            ("SweptRestarts", count(report.restarted.len()), "Count"),
            ("SweepFailures", count(report.failures.len()), "Count"),
        ],
    );
    Ok(report)
}
