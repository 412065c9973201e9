//! Step Functions: starting the grant-lifecycle workflow. Needs
//! `states:StartExecution` on the one state machine.

use aws_sdk_sfn::Client;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use lapse_core::ports::{WorkflowError, WorkflowStarter};

#[derive(Clone, Debug)]
pub struct SfnWorkflowStarter {
    client: crate::sdk::Lazy<Client>,
    state_machine_arn: String,
}

impl SfnWorkflowStarter {
    pub fn new(
        client: impl Into<crate::sdk::Lazy<Client>>,
        state_machine_arn: impl Into<String>,
    ) -> Self {
        Self {
            client: client.into(),
            state_machine_arn: state_machine_arn.into(),
        }
    }
}

fn workflow_error<E, R>(err: SdkError<E, R>, name: &str) -> WorkflowError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match err.code() {
        Some("ExecutionAlreadyExists") => WorkflowError::NameTaken(name.to_owned()),
        Some("AccessDenied" | "AccessDeniedException") => WorkflowError::Denied(Box::new(err)),
        Some("ThrottlingException" | "Throttling" | "TooManyRequestsException") => {
            WorkflowError::Throttled(Box::new(err))
        }
        _ => WorkflowError::Unavailable(Box::new(err)),
    }
}

impl WorkflowStarter for SfnWorkflowStarter {
    async fn start(&self, name: &str, input: &serde_json::Value) -> Result<String, WorkflowError> {
        // serde_json writes object keys sorted, so the same input is the same bytes and
        // Step Functions treats a repeated start as the same execution.
        let out = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .map_err(|e| workflow_error(e, name))?;
        Ok(out.execution_arn().to_owned())
    }
}
