//! # notify
//!
//! Step Functions task. Input `{"kind": "granted"|"revoked", "request_id": …}` tells
//! the holder when access ends or that it ended; `{"kind": "failed", "request_id",
//! "error", "cause"}` is the failure path: audited, security alerted, and the
//! `WorkflowFailures` metric emitted. `{"kind": "break_glass", "request_id", "nudge":
//! "remind"|"escalate"}` is a step of the break-glass justification timeline
//! (`break-glass-review.asl.json`): the requester reminded, or the reviewers and
//! security told the justification is overdue; nothing once the use is answered.

use std::sync::Arc;

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;
use lapse_aws::dynamodb::DynamoDbRequestStore;
use lapse_aws::sns::SnsNotifier;
use lapse_core::access::breakglass::Nudge;
use lapse_core::access::request::RequestId;
use lapse_core::access::usecase::breakglass;
use lapse_core::access::usecase::lifecycle::{WorkflowFailure, record_failure, tell_holder};
use lapse_core::ports::{Clock, Notice};
use lapse_lambda::HandlerError;
use lapse_lambda::config::Env;
use lapse_lambda::metrics;
use lapse_lambda::wiring::{self, Auditing, InitError, Topic};
use serde::Deserialize;
use serde_json::{Value, json};

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
            notifier: wiring::notifier(
                env,
                sdk,
                &[Topic::Users, Topic::Approvers, Topic::Security],
            )?,
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
    BreakGlass {
        request_id: RequestId,
        nudge: Nudge,
    },
}

#[tracing::instrument(skip_all)]
pub async fn handler(deps: &Deps, event: LambdaEvent<NotifyTask>) -> Result<Value, HandlerError> {
    let notice =
        |n: Notice| serde_json::to_value(n).map_err(|e| HandlerError::BadEvent(e.to_string()));
    match event.payload {
        NotifyTask::Granted { request_id } | NotifyTask::Revoked { request_id } => {
            notice(tell_holder(&deps.store, &deps.notifier, &request_id).await?)
        }
        NotifyTask::BreakGlass { request_id, nudge } => {
            let sent = breakglass::nudge(
                &deps.store,
                &deps.auditing.trail(),
                &deps.notifier,
                &request_id,
                nudge,
                deps.clock.now(),
            )
            .await?;
            Ok(json!({ "request_id": request_id, "nudge": nudge, "sent": sent }))
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
            let notice_sent = record_failure(
                &deps.store,
                &deps.auditing.trail(),
                &deps.notifier,
                &failure,
                deps.clock.now(),
            )
            .await?;
            notice(notice_sent)
        }
    }
}
