//! # verify
//!
//! Step Functions task. Input: `{"request_id": "req-…"}`. Reads IAM back (inline
//! policies, group memberships, attached policies) and confirms nothing of the grant
//! remains. A residue fails with `Lapse.VerificationFailed`, is audited, and emits
//! the `VerificationFailures` metric the template alarms on.

use lambda_runtime::LambdaEvent;
use lapse_core::ErrorKind;
use lapse_core::access::request::RequestId;
use lapse_core::access::usecase::lifecycle::{VerifyReport, verify};
use lapse_lambda::HandlerError;
use lapse_lambda::metrics;
use lapse_lambda::wiring::Lifecycle;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyTask {
    pub request_id: RequestId,
}

#[tracing::instrument(skip_all, fields(request_id = %event.payload.request_id))]
pub async fn handler(
    deps: &Lifecycle,
    event: LambdaEvent<VerifyTask>,
) -> Result<VerifyReport, HandlerError> {
    let result = verify(
        &deps.grants(),
        &deps.directory,
        &deps.auditing.trail(),
        &event.payload.request_id,
        deps.clock.now(),
    )
    .await;
    match &result {
        Ok(_) => metrics::emit(
            &[("Workflow", "grant-lifecycle")],
            &[("VerificationSuccesses", 1.0, "Count")],
        ),
        Err(err) if err.kind() == ErrorKind::VerificationFailed => {
            metrics::emit(
                &[("Workflow", "grant-lifecycle")],
                &[("VerificationFailures", 1.0, "Count")],
            );
        }
        Err(_) => {}
    }
    Ok(result?)
}
