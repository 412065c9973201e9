//! # sweeper
//!
//! Runs on a schedule (EventBridge, every five minutes). Expires pending requests
//! past their deadline, restarts workflows that approved requests never got (a
//! break-glass one's declaration finished first: security told, its timeline
//! started, its event recorded), revokes
//! and verifies grants past their end that a failed or cancelled execution left
//! behind, and re-verifies revocations left unverified; a grant it verifies has
//! its checked-out credential checked in and its vendor's user deactivated.

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;
use lapse_aws::revocations::DynamoDbRevocations;
use lapse_aws::sfn::SfnWorkflowStarter;
use lapse_aws::sns::SnsNotifier;
use lapse_core::access::usecase::Outbox;
use lapse_core::access::usecase::sweep::{SweepReport, sweep};
use lapse_core::ports::WorkflowStarter;
use lapse_lambda::HandlerError;
use lapse_lambda::config::Env;
use lapse_lambda::metrics;
use lapse_lambda::wiring::{self, InitError, Lifecycle, Topic};

/// The break-glass justification timeline's state machine.
pub const BREAK_GLASS_STATE_MACHINE: &str = "LAPSE_BREAK_GLASS_STATE_MACHINE_ARN";

#[derive(Debug)]
pub struct Deps<W> {
    pub lifecycle: Lifecycle,
    pub notifier: SnsNotifier,
    pub workflows: W,
    /// Starts a break-glass justification timeline that a cut-short declaration
    /// never started (idempotent by name).
    pub timelines: W,
    /// The revocations table, only to count open cases (the in-progress gauge).
    pub revocations: DynamoDbRevocations,
    /// A grant the sweep verifies for a lost workflow: its credential checked in,
    /// its vendor's user deactivated.
    pub custody: wiring::Custody,
}

impl Deps<SfnWorkflowStarter> {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        Ok(Self {
            lifecycle: Lifecycle::from_env(env, sdk).await?,
            notifier: wiring::notifier(
                env,
                sdk,
                &[Topic::Users, Topic::Approvers, Topic::Security],
            )?,
            workflows: wiring::workflows(env, sdk)?,
            timelines: SfnWorkflowStarter::new(
                lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::sfn),
                env.required(BREAK_GLASS_STATE_MACHINE)?,
            ),
            revocations: wiring::controls(env, sdk)?,
            custody: wiring::Custody::from_env(env, sdk)?,
        })
    }
}

/// The gauges the dashboard shows, measured on every run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Gauges {
    pub grants_active: usize,
    pub approvals_waiting: usize,
    pub revocations_in_progress: usize,
}

/// Counts active grants, requests waiting for a decision and unverified
/// revocation cases.
pub async fn gauges<W>(deps: &Deps<W>) -> Result<Gauges, lapse_core::ports::StoreError> {
    use lapse_core::access::request::Status;
    use lapse_core::ports::RequestQueries;
    let store = &deps.lifecycle.store;
    Ok(Gauges {
        grants_active: store.by_status(Status::Active).await?.len(),
        approvals_waiting: store.by_status(Status::Pending).await?.len(),
        revocations_in_progress: deps.revocations.open_cases().await?,
    })
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
        &deps.custody.ports(),
        &lifecycle.auditing.trail(),
        &outbox,
        &deps.timelines,
        lifecycle
            .auditing
            .catalog
            .tunables()
            .pending_timeout
            .delta(),
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
    // Observability only: a failed measurement is logged and the run goes on (the
    // dashboard shows a gap; the sweep itself has done its work).
    match gauges(deps).await {
        Ok(g) => metrics::emit(
            &[("Workflow", "sweeper")],
            &[
                ("GrantsActive", count(g.grants_active), "Count"),
                ("ApprovalsWaiting", count(g.approvals_waiting), "Count"),
                (
                    "RevocationsInProgress",
                    count(g.revocations_in_progress),
                    "Count",
                ),
            ],
        ),
        Err(err) => tracing::warn!(error = %err, "gauges not measured"),
    }
    Ok(report)
}
