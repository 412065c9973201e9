//! # notify
//!
//! Step Functions task. Input `{"kind": "granted"|"revoked", "request_id": …}` tells
//! the holder when access ends or that it ended; `{"kind": "failed", "request_id",
//! "error", "cause"}` is the failure path: audited, security alerted, and the
//! `WorkflowFailures` metric emitted.

use std::sync::Arc;

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;
use lapse_aws::dynamodb::DynamoDbRequestStore;
use lapse_aws::sns::SnsNotifier;
use lapse_core::ports::{Clock, Notice};
use lapse_core::request::RequestId;
use lapse_core::usecase::lifecycle::{WorkflowFailure, record_failure, tell_holder};
use lapse_lambda::HandlerError;
use lapse_lambda::config::Env;
use lapse_lambda::metrics;
use lapse_lambda::wiring::{self, Auditing, InitError, Topic};
use serde::Deserialize;

#[derive(Debug)]
pub struct Deps {
    pub store: DynamoDbRequestStore,
    pub notifier: SnsNotifier,
    pub auditing: Auditing,
    pub clock: Arc<dyn Clock>,
}

impl Deps {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        Ok(Self {
            store: wiring::request_store(env, sdk)?,
            notifier: wiring::notifier(env, sdk, &[Topic::Users, Topic::Security])?,
            auditing: Auditing::from_env(env, sdk).await?,
            clock: wiring::system_clock(),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NotifyTask {
    Granted {
        request_id: RequestId,
    },
    Revoked {
        request_id: RequestId,
    },
    Failed {
        request_id: RequestId,
        error: String,
        cause: String,
    },
}

#[tracing::instrument(skip_all)]
pub async fn handler(deps: &Deps, event: LambdaEvent<NotifyTask>) -> Result<Notice, HandlerError> {
    match event.payload {
        NotifyTask::Granted { request_id } | NotifyTask::Revoked { request_id } => {
            Ok(tell_holder(&deps.store, &deps.notifier, &request_id).await?)
        }
        NotifyTask::Failed {
            request_id,
            error,
            cause,
        } => {
            metrics::emit(
                &[("Workflow", "grant-lifecycle")],
                &[("WorkflowFailures", 1.0, "Count")],
            );
            let failure = WorkflowFailure {
                request_id,
                error,
                cause,
            };
            let notice = record_failure(
                &deps.store,
                &deps.auditing.trail(),
                &deps.notifier,
                &failure,
                deps.clock.now(),
            )
            .await?;
            Ok(notice)
        }
    }
}
