//! # grant
//!
//! Step Functions task. Input: `{"request_id": "req-…"}` (or with `extension_id` to
//! merge an approved extension). Activates the request and puts it in IAM: an inline
//! policy whose every statement carries `aws:CurrentTime` < expiry, or a group
//! membership recorded in the ledger. Idempotent. Output: the grant, with its expiry,
//! which the state machine's Wait state sleeps until.

use lambda_runtime::LambdaEvent;
use lapse_core::usecase::lifecycle::{GrantReport, WorkflowInput, grant};
use lapse_lambda::HandlerError;
use lapse_lambda::wiring::Lifecycle;

#[tracing::instrument(skip_all, fields(request_id = %event.payload.request_id))]
pub async fn handler(
    deps: &Lifecycle,
    event: LambdaEvent<WorkflowInput>,
) -> Result<GrantReport, HandlerError> {
    let report = grant(
        &deps.grants(),
        &deps.directory,
        &deps.auditing.trail(),
        &deps.auditing.catalog,
        &event.payload,
        deps.clock.now(),
    )
    .await?;
    tracing::info!(expires_at = %report.expires_at, "granted");
    Ok(report)
}
