//! # credentials
//!
//! Step Functions task of the grant lifecycle, for credential resources only:
//! - `{"step": "checkout", "request_id"}` before the grant: an exclusive lease on
//!   the secret (a credential another request holds withdraws this request);
//!   The secret must rotate with the function the catalog names
//!   (`Lapse.Configuration` otherwise: never handed out);
//! - `{"step": "checkin", "request_id"}` after the revocation is verified: the
//!   secret's rotation function asked for a new value (`RotateSecret`), the
//!   rotation proven finished (its version current; `Lapse.Transient` until then,
//!   retried by the workflow), the lease released;
//! - `{"step": "contain", "request_id"}` on the failure path, whatever step
//!   failed: the secret rotated and proven the same way, the lease released only
//!   if the holder can no longer read it (never granted, or verified revoked).
//!
//! Secret values never pass through this function's logs or answers: only version
//! ids do.

use std::sync::Arc;

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;
use lapse_aws::dynamodb::DynamoDbRequestStore;
use lapse_aws::leases::DynamoDbLeases;
use lapse_aws::sns::SnsNotifier;
use lapse_aws::vault::SecretsManagerVault;
use lapse_core::ErrorKind;
use lapse_core::access::request::RequestId;
use lapse_core::access::usecase::checkout::{check_in, checkout, contain};
use lapse_core::ports::Clock;
use lapse_lambda::HandlerError;
use lapse_lambda::config::Env;
use lapse_lambda::metrics;
use lapse_lambda::wiring::{self, Auditing, InitError, Topic, vars};
use serde::Deserialize;
use serde_json::Value;

/// What the task needs: requests (to withdraw one whose credential is in use),
/// leases, the vault, the audit trail, and the requester's topic.
#[derive(Debug)]
pub struct Deps {
    pub store: DynamoDbRequestStore,
    pub leases: DynamoDbLeases,
    pub vault: SecretsManagerVault,
    pub notifier: SnsNotifier,
    pub auditing: Auditing,
    pub clock: Arc<dyn Clock>,
}

impl Deps {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        Ok(Self {
            store: wiring::request_store(env, sdk)?,
            leases: DynamoDbLeases::new(
                lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::dynamodb),
                env.required(vars::REVOCATIONS_TABLE)?,
            ),
            vault: SecretsManagerVault::new(lapse_aws::sdk::Lazy::new(
                sdk,
                lapse_aws::sdk::client::secretsmanager,
            )),
            notifier: wiring::notifier(env, sdk, &[Topic::Users])?,
            auditing: Auditing::from_env(env, sdk).await?,
            clock: wiring::system_clock(),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialTask {
    Checkout { request_id: RequestId },
    Checkin { request_id: RequestId },
    Contain { request_id: RequestId },
}

#[tracing::instrument(skip_all)]
pub async fn handler(
    deps: &Deps,
    event: LambdaEvent<CredentialTask>,
) -> Result<Value, HandlerError> {
    let trail = deps.auditing.trail();
    let answer = match event.payload {
        CredentialTask::Checkout { request_id } => serde_json::to_value(
            checkout(
                &deps.auditing.catalog,
                &deps.store,
                &deps.leases,
                &deps.vault,
                &trail,
                &deps.notifier,
                &request_id,
                deps.clock.now(),
            )
            .await?,
        ),
        CredentialTask::Checkin { request_id } => {
            let result =
                check_in(&deps.store, &deps.leases, &deps.vault, &trail, &request_id).await;
            if let Err(err) = &result
                && err.kind() == ErrorKind::VerificationFailed
            {
                metrics::emit(
                    &[("Workflow", "grant-lifecycle")],
                    &[("VerificationFailures", 1.0, "Count")],
                );
            }
            serde_json::to_value(result?)
        }
        CredentialTask::Contain { request_id } => serde_json::to_value(
            contain(
                &deps.store,
                &deps.leases,
                &deps.vault,
                &trail,
                &request_id,
                "its grant workflow failed",
            )
            .await?,
        ),
    };
    answer.map_err(|e| HandlerError::BadEvent(e.to_string()))
}
