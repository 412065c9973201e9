//! # grant
//!
//! Step Functions task. Input: `{"request_id": "req-…"}` (or with `extension_id` to
//! merge an approved extension). Refuses a requester whose access Lapse revoked.
//! Activates the request and puts it in IAM: an inline
//! policy whose every statement carries `aws:CurrentTime` < expiry, or a group
//! membership recorded in the ledger. Idempotent. Output: the grant, with its expiry,
//! which the state machine's Wait state sleeps until.

use lambda_runtime::LambdaEvent;
use lapse_core::access::usecase::lifecycle::{GrantReport, WorkflowInput, grant};
use lapse_lambda::HandlerError;
use lapse_lambda::wiring::Granting;

#[tracing::instrument(skip_all, fields(request_id = %event.payload.request_id))]
pub async fn handler(
    deps: &Granting,
    event: LambdaEvent<WorkflowInput>,
) -> Result<GrantReport, HandlerError> {
    let l = &deps.lifecycle;
    let report = grant(
        &l.grants(),
        &l.directory,
        &deps.controls,
        &l.auditing.trail(),
        &l.auditing.catalog,
        &event.payload,
        l.clock.now(),
    )
    .await?;
    tracing::info!(expires_at = %report.expires_at, "granted");
    Ok(report)
}
