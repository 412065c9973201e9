//! # revoke
//!
//! Step Functions task. Input: `{"request_id": "req-…", "cause": "expiry"}`.
//! Removes exactly what the grant added, keeping a shared group membership that
//! another live grant still holds; marks the request revoked (not done: verify
//! follows). If an extension moved the end, answers `not_yet_due` with the new
//! expiry and changes nothing. Idempotent.

use lambda_runtime::LambdaEvent;
use lapse_core::access::request::{RequestId, RevokeCause};
use lapse_core::access::usecase::lifecycle::{RevokeReport, revoke};
use lapse_lambda::HandlerError;
use lapse_lambda::wiring::Lifecycle;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeTask {
    pub request_id: RequestId,
    pub cause: RevokeCause,
}

#[tracing::instrument(skip_all, fields(request_id = %event.payload.request_id))]
pub async fn handler(
    deps: &Lifecycle,
    event: LambdaEvent<RevokeTask>,
) -> Result<RevokeReport, HandlerError> {
    let task = event.payload;
    let report = revoke(
        &deps.grants(),
        &deps.directory,
        &deps.auditing.trail(),
        &task.request_id,
        task.cause,
        "lapse-workflow",
        deps.clock.now(),
    )
    .await?;
    tracing::info!(outcome = ?report.outcome, iam = ?report.iam, "revoke step done");
    Ok(report)
}
