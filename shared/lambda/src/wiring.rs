//! Building adapters from the environment, once, in a binary's init phase. Each
//! builder reads only the variables it needs and names any that are missing.

use std::sync::Arc;

use aws_config::SdkConfig;
use lapse_aws::dynamodb::{DynamoDbAuditLog, DynamoDbLedger, DynamoDbRequestStore};
use lapse_aws::iam::IamDirectory;
use lapse_aws::secrets::SecretError;
use lapse_aws::sfn::SfnWorkflowStarter;
use lapse_aws::sns::{Reach, SnsNotifier};
use lapse_core::access::usecase::AuditTrail;
use lapse_core::audit::AuditSigner;
use lapse_core::policy::{Catalog, PolicyError};
use lapse_core::ports::{Clock, SystemClock};
use lapse_core::revocation::usecase::{
    Context, HasArchive, HasCases, HasClaims, HasControls, HasCustody, HasDirectory, HasGrants,
    HasNotifier, HasTrail,
};

use crate::config::{ConfigError, Env};

/// The environment variables the functions read.
pub mod vars {
    pub const REQUESTS_TABLE: &str = "LAPSE_REQUESTS_TABLE";
    pub const AUDIT_TABLE: &str = "LAPSE_AUDIT_TABLE";
    pub const LEDGER_TABLE: &str = "LAPSE_LEDGER_TABLE";
    /// The KMS key (ARN) that signs audit events.
    pub const AUDIT_KEY: &str = "LAPSE_AUDIT_KEY_ID";
    /// The S3 bucket (Object Lock) where audit chain heads are anchored.
    pub const AUDIT_ANCHORS: &str = "LAPSE_AUDIT_ANCHOR_BUCKET";
    pub const USERS_TOPIC: &str = "LAPSE_USERS_TOPIC_ARN";
    pub const APPROVERS_TOPIC: &str = "LAPSE_APPROVERS_TOPIC_ARN";
    pub const SECURITY_TOPIC: &str = "LAPSE_SECURITY_TOPIC_ARN";
    pub const STATE_MACHINE: &str = "LAPSE_STATE_MACHINE_ARN";
    pub const REVOCATIONS_TABLE: &str = "LAPSE_REVOCATIONS_TABLE";
    /// The directory of people kept from HR.
    pub const PEOPLE_TABLE: &str = "LAPSE_PEOPLE_TABLE";
    pub const EVENT_BUS: &str = "LAPSE_EVENT_BUS";
    pub const WEBHOOK_SECRET: &str = "LAPSE_WEBHOOK_SECRET";
    /// Where the IAM users Lapse manages live (`ManagedUserPath`).
    pub const MANAGED_USER_PATH: &str = "LAPSE_MANAGED_USER_PATH";
    /// The permissions boundary every managed user carries (`ManagedUserBoundary`).
    pub const MANAGED_USER_BOUNDARY: &str = "LAPSE_MANAGED_USER_BOUNDARY";
    /// Emulator gaps the deployment declares (never set by the template): see
    /// `lapse_aws::iam::IamDirectory::declaring_gaps`.
    pub const EMULATOR_GAPS: &str = "LAPSE_EMULATOR_GAPS";
}

/// Why a binary could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("the audit signing key is not usable")]
    AuditKey(#[from] lapse_core::audit::KeyError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

pub fn request_store(env: &Env, sdk: &SdkConfig) -> Result<DynamoDbRequestStore, ConfigError> {
    Ok(DynamoDbRequestStore::new(
        lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::dynamodb),
        env.required(vars::REQUESTS_TABLE)?,
    ))
}

/// The revocations table, for checking whose access has been revoked.
pub fn controls(
    env: &Env,
    sdk: &SdkConfig,
) -> Result<lapse_aws::revocations::DynamoDbRevocations, ConfigError> {
    Ok(lapse_aws::revocations::DynamoDbRevocations::new(
        lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::dynamodb),
        env.required(vars::REVOCATIONS_TABLE)?,
    ))
}

/// The directory of people (`LAPSE_PEOPLE_TABLE`).
pub fn people(
    env: &Env,
    sdk: &SdkConfig,
) -> Result<lapse_aws::people::DynamoDbPeople, ConfigError> {
    Ok(lapse_aws::people::DynamoDbPeople::new(
        lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::dynamodb),
        env.required(vars::PEOPLE_TABLE)?,
    ))
}

pub fn ledger(env: &Env, sdk: &SdkConfig) -> Result<DynamoDbLedger, ConfigError> {
    Ok(DynamoDbLedger::new(
        lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::dynamodb),
        env.required(vars::LEDGER_TABLE)?,
    ))
}

pub fn directory(env: &Env, sdk: &SdkConfig) -> Result<IamDirectory, ConfigError> {
    IamDirectory::new(lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::iam))
        .with_boundary(env.optional(vars::MANAGED_USER_BOUNDARY))
        .declaring_gaps(&env.optional(vars::EMULATOR_GAPS).unwrap_or_default())
        .map_err(|reason| ConfigError::Invalid {
            name: vars::EMULATOR_GAPS,
            reason,
        })
}

/// An SNS topic a function publishes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    Users,
    Approvers,
    Security,
}

/// A notifier for `topics` alone: it reads only their variables, as the function's
/// role allows publishing to them alone, and refuses notices for any other.
pub fn notifier(env: &Env, sdk: &SdkConfig, topics: &[Topic]) -> Result<SnsNotifier, ConfigError> {
    let arn = |topic: Topic, name: &'static str| {
        if topics.contains(&topic) {
            env.required(name).map(Some)
        } else {
            Ok(None)
        }
    };
    Ok(SnsNotifier::new(
        lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::sns),
        Reach {
            users: arn(Topic::Users, vars::USERS_TOPIC)?,
            approvers: arn(Topic::Approvers, vars::APPROVERS_TOPIC)?,
            security: arn(Topic::Security, vars::SECURITY_TOPIC)?,
        },
    ))
}

pub fn workflows(env: &Env, sdk: &SdkConfig) -> Result<SfnWorkflowStarter, ConfigError> {
    Ok(SfnWorkflowStarter::new(
        lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::sfn),
        env.required(vars::STATE_MACHINE)?,
    ))
}

/// Everything a function needs to write audit events: the log, the signer (a KMS
/// key: the function can ask it to sign, never read it) and the policy whose hash
/// each event records.
#[derive(Debug)]
pub struct Auditing {
    pub log: DynamoDbAuditLog,
    pub signer: AuditSigner,
    pub catalog: Catalog,
}

impl Auditing {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        let log = DynamoDbAuditLog::new(
            lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::dynamodb),
            env.required(vars::AUDIT_TABLE)?,
        )
        .with_anchors(lapse_aws::anchors::S3Anchors::new(
            lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::s3),
            env.required(vars::AUDIT_ANCHORS)?,
        ));
        // The template gives the key's ARN: no call to KMS at start-up. An alias
        // (an operator's override) is resolved once here.
        let key = env.required(vars::AUDIT_KEY)?;
        let kms = lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::kms);
        let signer = if key.starts_with("arn:") && !key.contains(":alias/") {
            lapse_aws::kms::KmsSigner::deferred(kms, &key)?
        } else {
            lapse_aws::kms::KmsSigner::load(kms, &key).await?
        }
        .into_audit_signer();
        Ok(Self {
            log,
            signer,
            catalog: crate::bundled_catalog()?,
        })
    }

    pub fn trail(&self) -> AuditTrail<'_, DynamoDbAuditLog> {
        AuditTrail {
            log: &self.log,
            signer: &self.signer,
            policy_hash: self.catalog.hash(),
        }
    }
}

/// The production clock.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// What the two request-handling HTTP functions (intake, approval) need: requests,
/// whose access is revoked, the audit trail, notices, workflow starts, the clock.
#[derive(Debug)]
pub struct RequestApi<W> {
    pub store: DynamoDbRequestStore,
    /// Whose access Lapse has revoked (the revocations table).
    pub controls: lapse_aws::revocations::DynamoDbRevocations,
    pub auditing: Auditing,
    pub notifier: SnsNotifier,
    pub workflows: W,
    pub clock: Arc<dyn Clock>,
}

impl RequestApi<SfnWorkflowStarter> {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        Ok(Self {
            store: request_store(env, sdk)?,
            controls: controls(env, sdk)?,
            auditing: Auditing::from_env(env, sdk).await?,
            notifier: notifier(env, sdk, &[Topic::Users, Topic::Approvers, Topic::Security])?,
            workflows: workflows(env, sdk)?,
            clock: system_clock(),
        })
    }
}

/// What the grant, revoke, verify and backstop functions share: the requests table,
/// the ledger, IAM, the audit trail and the clock. Their IAM roles differ (the verify
/// role can only read IAM, for one); the code asks for the same adapters.
#[derive(Debug)]
pub struct Lifecycle {
    pub store: DynamoDbRequestStore,
    pub ledger: DynamoDbLedger,
    pub directory: IamDirectory,
    pub auditing: Auditing,
    pub clock: Arc<dyn Clock>,
}

impl Lifecycle {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        Ok(Self {
            store: request_store(env, sdk)?,
            ledger: ledger(env, sdk)?,
            directory: directory(env, sdk)?,
            auditing: Auditing::from_env(env, sdk).await?,
            clock: system_clock(),
        })
    }

    pub fn grants(
        &self,
    ) -> lapse_core::access::usecase::lifecycle::Grants<'_, DynamoDbRequestStore, DynamoDbLedger>
    {
        lapse_core::access::usecase::lifecycle::Grants {
            store: &self.store,
            ledger: &self.ledger,
        }
    }
}

/// The grant step: the lifecycle, plus whose access Lapse has revoked (it refuses
/// to grant to them).
#[derive(Debug)]
pub struct Granting {
    pub lifecycle: Lifecycle,
    pub controls: lapse_aws::revocations::DynamoDbRevocations,
}

impl Granting {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        Ok(Self {
            lifecycle: Lifecycle::from_env(env, sdk).await?,
            controls: controls(env, sdk)?,
        })
    }
}

/// What a grant can leave outside IAM, over the real adapters: checked-out
/// credentials' leases (the revocations table) and secrets, vendors' password
/// drops. Each client is made by its first call, so a function that never ends a
/// checkout or vendor grant makes none.
#[derive(Debug)]
pub struct Custody {
    pub leases: lapse_aws::leases::DynamoDbLeases,
    pub vault: lapse_aws::vault::SecretsManagerVault,
    pub drops: lapse_aws::vendors::SecretsCredentialDrop,
}

impl Custody {
    pub fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        use lapse_aws::sdk::{Lazy, client};
        Ok(Self {
            leases: lapse_aws::leases::DynamoDbLeases::new(
                Lazy::new(sdk, client::dynamodb),
                env.required(vars::REVOCATIONS_TABLE)?,
            ),
            vault: lapse_aws::vault::SecretsManagerVault::new(Lazy::new(
                sdk,
                client::secretsmanager,
            )),
            drops: lapse_aws::vendors::SecretsCredentialDrop::new(
                Lazy::new(sdk, client::secretsmanager),
                Lazy::new(sdk, client::iam),
            ),
        })
    }

    pub fn ports(
        &self,
    ) -> lapse_core::access::usecase::Custody<
        '_,
        lapse_aws::leases::DynamoDbLeases,
        lapse_aws::vault::SecretsManagerVault,
        lapse_aws::vendors::SecretsCredentialDrop,
    > {
        lapse_core::access::usecase::Custody {
            leases: &self.leases,
            vault: &self.vault,
            drops: &self.drops,
        }
    }
}

/// Every revocation port over the real adapters: the workflow's steps and the
/// operator tools, which differ only in whom they notify.
#[derive(Debug)]
pub struct Revocations {
    pub table: lapse_aws::revocations::DynamoDbRevocations,
    pub lifecycle: Lifecycle,
    pub custody: Custody,
    pub notifier: SnsNotifier,
}

impl Revocations {
    pub async fn from_env(env: &Env, sdk: &SdkConfig, topics: &[Topic]) -> Result<Self, InitError> {
        Ok(Self {
            table: controls(env, sdk)?,
            lifecycle: Lifecycle::from_env(env, sdk).await?,
            custody: Custody::from_env(env, sdk)?,
            notifier: notifier(env, sdk, topics)?,
        })
    }
}

impl HasClaims for Revocations {
    type Claims = lapse_aws::revocations::DynamoDbRevocations;
    fn claims(&self) -> &Self::Claims {
        &self.table
    }
}

impl HasCustody for Revocations {
    type Leases = lapse_aws::leases::DynamoDbLeases;
    type Vault = lapse_aws::vault::SecretsManagerVault;
    type Drops = lapse_aws::vendors::SecretsCredentialDrop;
    fn leases(&self) -> &Self::Leases {
        &self.custody.leases
    }
    fn vault(&self) -> &Self::Vault {
        &self.custody.vault
    }
    fn drops(&self) -> &Self::Drops {
        &self.custody.drops
    }
}

impl HasCases for Revocations {
    type Cases = lapse_aws::revocations::DynamoDbRevocations;
    fn cases(&self) -> &Self::Cases {
        &self.table
    }
}

impl HasControls for Revocations {
    type Controls = lapse_aws::revocations::DynamoDbRevocations;
    fn controls(&self) -> &Self::Controls {
        &self.table
    }
}

impl HasArchive for Revocations {
    type Archive = lapse_aws::revocations::DynamoDbRevocations;
    fn archive(&self) -> &Self::Archive {
        &self.table
    }
}

impl HasDirectory for Revocations {
    type Directory = IamDirectory;
    fn directory(&self) -> &Self::Directory {
        &self.lifecycle.directory
    }
}

impl HasGrants for Revocations {
    type Requests = DynamoDbRequestStore;
    type Ledger = DynamoDbLedger;
    fn grants(
        &self,
    ) -> lapse_core::access::usecase::lifecycle::Grants<'_, DynamoDbRequestStore, DynamoDbLedger>
    {
        self.lifecycle.grants()
    }
}

impl HasTrail for Revocations {
    type Log = DynamoDbAuditLog;
    fn trail(&self) -> AuditTrail<'_, DynamoDbAuditLog> {
        self.lifecycle.auditing.trail()
    }
}

impl HasNotifier for Revocations {
    type Notifier = SnsNotifier;
    fn notifier(&self) -> &Self::Notifier {
        &self.notifier
    }
}

impl Context for Revocations {
    fn catalog(&self) -> &Catalog {
        &self.lifecycle.auditing.catalog
    }
    fn clock(&self) -> &dyn Clock {
        self.lifecycle.clock.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Start-up makes no SDK client: each is made by its first call.
    #[tokio::test]
    async fn start_up_makes_no_sdk_client() {
        let env = Env::from_pairs([
            (vars::REQUESTS_TABLE, "requests"),
            (vars::LEDGER_TABLE, "ledger"),
            (vars::AUDIT_TABLE, "audit"),
            (vars::AUDIT_ANCHORS, "anchors"),
            (
                vars::AUDIT_KEY,
                "arn:aws:kms:us-east-1:123456789012:key/7f2f4e39-692b-4d92-9402-af12b4448624",
            ),
            (vars::REVOCATIONS_TABLE, "revocations"),
            (
                vars::USERS_TOPIC,
                "arn:aws:sns:us-east-1:123456789012:users",
            ),
            (
                vars::APPROVERS_TOPIC,
                "arn:aws:sns:us-east-1:123456789012:approvers",
            ),
            (
                vars::SECURITY_TOPIC,
                "arn:aws:sns:us-east-1:123456789012:security",
            ),
            (
                vars::STATE_MACHINE,
                "arn:aws:states:us-east-1:123456789012:stateMachine:g",
            ),
        ]);
        let sdk = SdkConfig::builder().build();
        let api = RequestApi::from_env(&env, &sdk).await.unwrap();
        let lifecycle = Lifecycle::from_env(&env, &sdk).await.unwrap();
        for deps in [format!("{api:?}"), format!("{lifecycle:?}")] {
            // A made client shows its handle; one not made yet says so.
            assert!(deps.contains("Lazy(not yet made)"), "{deps}");
            assert!(
                !deps.contains("handle"),
                "a client was made at start-up: {deps}"
            );
        }
    }
}
