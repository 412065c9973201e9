//! # inactivity-check
//!
//! Daily schedule. Generates the IAM credential report (one paginated CSV instead of
//! per-user calls), waits for it with backoff, opens a suspension case for every
//! user with no console login and no access-key use within the policy's inactivity
//! threshold, and starts the revocation workflow for each (named for the case, so a
//! re-run starts nothing twice). Re-activation is a restore with a manager's approval.

use std::time::Duration;

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;
use lapse_core::ports::WorkflowStarter;
use lapse_core::revocation::usecase::suspend_inactive;
use lapse_lambda::HandlerError;
use lapse_lambda::config::Env;
use lapse_lambda::wiring::{InitError, Revocations};
use serde_json::{Value, json};

pub const REVOCATION_STATE_MACHINE: &str = "LAPSE_REVOCATION_STATE_MACHINE_ARN";

#[derive(Debug)]
pub struct Deps<W> {
    pub revocations: Revocations,
    pub iam: aws_sdk_iam::Client,
    pub workflows: W,
}

impl Deps<lapse_aws::sfn::SfnWorkflowStarter> {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        Ok(Self {
            revocations: Revocations::from_env(env, sdk).await?,
            iam: aws_sdk_iam::Client::new(sdk),
            workflows: lapse_aws::sfn::SfnWorkflowStarter::new(
                aws_sdk_sfn::Client::new(sdk),
                env.required(REVOCATION_STATE_MACHINE)?,
            ),
        })
    }
}

/// The credential report, generated and fetched with backoff while IAM builds it.
pub async fn credential_report(iam: &aws_sdk_iam::Client) -> Result<String, HandlerError> {
    let unavailable = |e: String| {
        HandlerError::Core(lapse_core::Error::Directory(
            lapse_core::ports::DirectoryError::Unavailable(e.into()),
        ))
    };
    let mut delay = Duration::from_millis(500);
    for _ in 0..8 {
        iam.generate_credential_report()
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        match iam.get_credential_report().send().await {
            Ok(report) => {
                let bytes = report
                    .content()
                    .map(|b| b.as_ref().to_vec())
                    .unwrap_or_default();
                return String::from_utf8(bytes).map_err(|e| unavailable(e.to_string()));
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_credential_report_not_ready_exception()) =>
            {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(unavailable(e.to_string())),
        }
    }
    Err(unavailable(
        "credential report not ready after retries".into(),
    ))
}

#[tracing::instrument(skip_all)]
pub async fn handler<W: WorkflowStarter>(
    deps: &Deps<W>,
    _event: LambdaEvent<Value>,
) -> Result<Value, HandlerError> {
    let report = credential_report(&deps.iam).await?;
    let now = deps.revocations.lifecycle.clock.now();
    let (cases, skipped) = suspend_inactive(&deps.revocations, &report, now).await?;
    for case in &cases {
        deps.workflows
            .start(case.id(), &json!({ "case": { "case_id": case.id() } }))
            .await
            .map_err(lapse_core::Error::from)?;
    }
    Ok(json!({
        "suspended": cases.iter().map(|c| c.user().to_string()).collect::<Vec<_>>(),
        "skipped": skipped,
    }))
}
