//! One-time EventBridge Scheduler schedules that start a revocation at a set time.
//! Needs `scheduler:CreateSchedule`, `scheduler:GetSchedule` (a retried call finds
//! the schedule it made) and `iam:PassRole` on the scheduler's role; the schedule
//! deletes itself after it fires.

use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::error::ProvideErrorMetadata;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, Target,
};
use chrono::{DateTime, Utc};

/// Why a schedule could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create schedule {name}")]
pub struct ScheduleError {
    pub name: String,
    /// Refused by IAM: the deployment's role lacks the permission (a retry will
    /// not help).
    pub denied: bool,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Where schedules start executions, and the role they do it with.
#[derive(Clone, Debug)]
pub struct RevocationScheduler {
    client: crate::sdk::Lazy<Client>,
    state_machine_arn: String,
    role_arn: String,
}

impl RevocationScheduler {
    pub fn new(
        client: impl Into<crate::sdk::Lazy<Client>>,
        state_machine_arn: impl Into<String>,
        role_arn: impl Into<String>,
    ) -> Self {
        Self {
            client: client.into(),
            state_machine_arn: state_machine_arn.into(),
            role_arn: role_arn.into(),
        }
    }

    /// A schedule named for the case that starts the revocation workflow at `at`
    /// with `{"case": {"case_id": ...}}`. Returns the schedule's ARN.
    pub async fn schedule(
        &self,
        case_id: &str,
        at: DateTime<Utc>,
    ) -> Result<String, ScheduleError> {
        let name = format!("lapse-{case_id}");
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| ScheduleError {
            name: name.clone(),
            denied: false,
            source,
        };
        let input = serde_json::json!({ "case": { "case_id": case_id } }).to_string();
        let target = Target::builder()
            .arn(&self.state_machine_arn)
            .role_arn(&self.role_arn)
            .input(input)
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_retry_attempts(185)
                    .maximum_event_age_in_seconds(86_400)
                    .build(),
            )
            .build()
            .map_err(|e| fail(Box::new(e)))?;
        let created = self
            .client
            .create_schedule()
            .name(&name)
            .schedule_expression(format!("at({})", at.format("%Y-%m-%dT%H:%M:%S")))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(
                FlexibleTimeWindow::builder()
                    .mode(FlexibleTimeWindowMode::Off)
                    .build()
                    .map_err(|e| fail(Box::new(e)))?,
            )
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(target)
            .send()
            .await;
        match created {
            Ok(out) => Ok(out.schedule_arn().to_owned()),
            // Made by an earlier call for the same case (a retried ask): the same
            // schedule, so a retry schedules once.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conflict_exception()) =>
            {
                let existing = self
                    .client
                    .get_schedule()
                    .name(&name)
                    .send()
                    .await
                    .map_err(|e| fail(Box::new(e)))?;
                existing
                    .arn()
                    .map(str::to_owned)
                    .ok_or_else(|| fail("the existing schedule has no ARN".into()))
            }
            Err(e) => {
                // A refusal is 403 whether or not the body's code could be read.
                let denied = matches!(e.code(), Some("AccessDenied" | "AccessDeniedException"))
                    || e.raw_response().map(|r| r.status().as_u16()) == Some(403);
                Err(ScheduleError {
                    denied,
                    ..fail(Box::new(e))
                })
            }
        }
    }
}
