//! # inactivity-check
//!
//! Daily schedule. Generates the IAM credential report (one paginated CSV instead of
//! per-user calls), waits for it with backoff, opens a suspension case for every
//! user with no console login and no access-key use within the policy's inactivity
//! threshold, and starts the revocation workflow for each (named for the case, so a
//! re-run starts nothing twice). Re-activation is a restore with a manager's approval.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;
use lapse_aws::dynamodb::DynamoDbAuditLog;
use lapse_aws::iam::IamDirectory;
use lapse_aws::revocations::DynamoDbRevocations;
use lapse_core::access::usecase::AuditTrail;
use lapse_core::policy::Catalog;
use lapse_core::ports::Clock;
use lapse_core::ports::WorkflowStarter;
use lapse_core::revocation::usecase::suspend_inactive;
use lapse_core::revocation::usecase::{Context, HasCases, HasControls, HasDirectory, HasTrail};
use lapse_lambda::HandlerError;
use lapse_lambda::config::Env;
use lapse_lambda::wiring::{self, Auditing, InitError};
use serde_json::{Value, json};

pub const REVOCATION_STATE_MACHINE: &str = "LAPSE_REVOCATION_STATE_MACHINE_ARN";

/// The ports the check reaches, and no more: cases and controls (the revocations
/// table), IAM (the credential report, whether Lapse manages a user), the audit
/// trail, and the revocation workflow. No requests, ledger, archive or notices.
#[derive(Debug)]
pub struct Deps<W> {
    pub table: DynamoDbRevocations,
    pub directory: IamDirectory,
    pub auditing: Auditing,
    pub clock: Arc<dyn Clock>,
    pub iam: lapse_aws::sdk::Lazy<aws_sdk_iam::Client>,
    pub workflows: W,
}

impl Deps<lapse_aws::sfn::SfnWorkflowStarter> {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        Ok(Self {
            table: wiring::controls(env, sdk)?,
            directory: wiring::directory(env, sdk)?,
            auditing: Auditing::from_env(env, sdk).await?,
            clock: wiring::system_clock(),
            iam: lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::iam),
            workflows: lapse_aws::sfn::SfnWorkflowStarter::new(
                lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::sfn),
                env.required(REVOCATION_STATE_MACHINE)?,
            ),
        })
    }
}

/// The credential report, generated and fetched with backoff while IAM builds it.
impl<W: Sync> HasCases for Deps<W> {
    type Cases = DynamoDbRevocations;
    fn cases(&self) -> &Self::Cases {
        &self.table
    }
}

impl<W: Sync> HasControls for Deps<W> {
    type Controls = DynamoDbRevocations;
    fn controls(&self) -> &Self::Controls {
        &self.table
    }
}

impl<W: Sync> HasDirectory for Deps<W> {
    type Directory = IamDirectory;
    fn directory(&self) -> &Self::Directory {
        &self.directory
    }
}

impl<W: Sync> HasTrail for Deps<W> {
    type Log = DynamoDbAuditLog;
    fn trail(&self) -> AuditTrail<'_, Self::Log> {
        self.auditing.trail()
    }
}

impl<W: Sync> Context for Deps<W> {
    fn catalog(&self) -> &Catalog {
        &self.auditing.catalog
    }
    fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }
}

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
    let now = deps.clock.now();
    let (cases, skipped) = suspend_inactive(deps, &report, now).await?;
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
