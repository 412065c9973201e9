//! # vendors
//!
//! Step Functions task of the grant lifecycle, for vendor access only:
//! - `{"step": "provision", "request_id"}` before the grant: the engagement's
//!   temporary IAM user (tagged, under the boundary, the MFA-and-network base
//!   policy), its first password handed to the sponsor through Secrets Manager;
//! - `{"step": "deactivate", "request_id"}` after the verified revocation: console
//!   login, keys, policies and groups removed, IAM read back, the secret deleted;
//!   answers `retire_at`, when the user is deleted;
//! - `{"step": "contain", "request_id"}` on the failure path, whatever step
//!   failed: the same removal as `deactivate` in any state of the request;
//! - `{"step": "retire", "request_id"}` after the retention: deleted and read back,
//!   or `held` under a legal hold.
//!
//! No password passes through this function's logs or answers.

use std::sync::Arc;

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;
use lapse_aws::dynamodb::DynamoDbRequestStore;
use lapse_aws::iam::IamDirectory;
use lapse_aws::revocations::DynamoDbRevocations;
use lapse_aws::sns::SnsNotifier;
use lapse_aws::vendors::{IamVendorAccounts, SecretsCredentialDrop};
use lapse_core::access::request::RequestId;
use lapse_core::access::usecase::vendor::{contain, deactivate, provision, retire};
use lapse_core::ports::Clock;
use lapse_lambda::HandlerError;
use lapse_lambda::config::{ConfigError, Env};
use lapse_lambda::wiring::{self, Auditing, InitError, Topic, vars};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug)]
pub struct Deps {
    pub store: DynamoDbRequestStore,
    /// The base policy in, and the deactivation's plan applied and read back.
    pub directory: IamDirectory,
    pub accounts: IamVendorAccounts,
    pub drop: SecretsCredentialDrop,
    /// Legal holds.
    pub controls: DynamoDbRevocations,
    pub notifier: SnsNotifier,
    pub auditing: Auditing,
    pub clock: Arc<dyn Clock>,
}

impl Deps {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        let gaps = env.optional(vars::EMULATOR_GAPS).unwrap_or_default();
        let accounts = IamVendorAccounts::new(
            lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::iam),
            env.required(vars::MANAGED_USER_PATH)?,
            env.required(vars::MANAGED_USER_BOUNDARY)?,
        )
        .declaring_gaps(&gaps)
        .map_err(|reason| ConfigError::Invalid {
            name: vars::EMULATOR_GAPS,
            reason,
        })?;
        Ok(Self {
            store: wiring::request_store(env, sdk)?,
            directory: wiring::directory(env, sdk)?,
            accounts,
            drop: SecretsCredentialDrop::new(
                lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::secretsmanager),
                lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::iam),
            )
            .kept_by(env.required(KEEPER_ROLE)?),
            controls: wiring::controls(env, sdk)?,
            notifier: wiring::notifier(env, sdk, &[Topic::Users])?,
            auditing: Auditing::from_env(env, sdk).await?,
            clock: wiring::system_clock(),
        })
    }
}

/// This function's own role: with the sponsor, the only principal a vendor's
/// password secret does not deny.
pub const KEEPER_ROLE: &str = "LAPSE_VENDORS_ROLE_ARN";

#[derive(Debug, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum VendorTask {
    Provision { request_id: RequestId },
    Deactivate { request_id: RequestId },
    Contain { request_id: RequestId },
    Retire { request_id: RequestId },
}

#[tracing::instrument(skip_all)]
pub async fn handler(deps: &Deps, event: LambdaEvent<VendorTask>) -> Result<Value, HandlerError> {
    let trail = deps.auditing.trail();
    let catalog = &deps.auditing.catalog;
    let now = deps.clock.now();
    let answer = match event.payload {
        VendorTask::Provision { request_id } => serde_json::to_value(
            provision(
                &deps.store,
                &deps.accounts,
                &deps.directory,
                &deps.drop,
                &trail,
                &deps.notifier,
                catalog,
                &request_id,
                now,
            )
            .await?,
        ),
        VendorTask::Deactivate { request_id } => serde_json::to_value(
            deactivate(
                &deps.store,
                &deps.directory,
                &deps.drop,
                &trail,
                catalog,
                &request_id,
                now,
            )
            .await?,
        ),
        VendorTask::Contain { request_id } => serde_json::to_value(
            contain(
                &deps.store,
                &deps.directory,
                &deps.drop,
                &trail,
                &request_id,
                "its grant workflow failed",
                now,
            )
            .await?,
        ),
        VendorTask::Retire { request_id } => serde_json::to_value(
            retire(
                &deps.store,
                &deps.accounts,
                &deps.controls,
                &trail,
                catalog,
                &request_id,
                now,
            )
            .await?,
        ),
    };
    answer.map_err(|e| HandlerError::BadEvent(e.to_string()))
}
