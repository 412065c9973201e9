//! Creating the local stack's resources through the AWS APIs, in the shapes
//! `infra/template.yaml` declares. Re-running is harmless.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_iam::error::ProvideErrorMetadata;
use lapse_aws::sns::Topics;
use lapse_aws::tables::{Tables, provision_local};
use lapse_core::policy::{Catalog, GrantSpec};
use lapse_lambda::config::Env;
use lapse_lambda::wiring::vars;

use crate::LocalError;

/// The account moto answers as.
pub const ACCOUNT: &str = "123456789012";

/// The local stack's HR webhook credentials (development only).
pub const DEV_WEBHOOK_TOKEN: &str = "local-hr-token";
pub const DEV_WEBHOOK_SIGNING_SECRET: &str = "whsec_bG9jYWwtaHItc2lnbmluZy1zZWNyZXQtMzJi";

/// The task functions the state machine invokes, and the backstops.
pub const TASK_FUNCTIONS: [&str; 8] = [
    "grant",
    "credentials",
    "vendors",
    "revoke",
    "verify",
    "notify",
    "sweeper",
    "ttl-backstop",
];

/// Names and ARNs of one local stack.
#[derive(Clone, Debug)]
pub struct StackConfig {
    pub prefix: String,
    pub tables: Tables,
    pub revocations_table: String,
    /// The directory of people kept from HR.
    pub people_table: String,
    pub event_bus: String,
    pub webhook_secret_id: String,
    pub topics: Topics,
    /// The KMS key (ARN) that signs audit events.
    pub audit_key: String,
    /// The Object Lock bucket anchoring audit chain heads.
    pub audit_anchors: String,
    pub state_machine_arn: String,
    pub revocation_state_machine_arn: String,
    pub break_glass_state_machine_arn: String,
    /// Where managed users live, and the boundary each carries (vendors' users are
    /// made with them).
    pub managed_user_path: String,
    pub managed_user_boundary: String,
    /// Where the bus's rules deliver locally (the deployed rules target the
    /// revocation state machine; moto cannot run it, so the local host does).
    pub router_queue_url: String,
}

impl StackConfig {
    /// The ARN a task function answers to.
    pub fn function_arn(&self, function: &str) -> String {
        format!(
            "arn:aws:lambda:us-east-1:{ACCOUNT}:function:{}-{function}",
            self.prefix
        )
    }

    /// SAM's `DefinitionSubstitutions` for the state machine.
    pub fn substitutions(&self) -> serde_json::Value {
        serde_json::json!({
            "GrantFunctionArn": self.function_arn("grant"),
            "RevokeFunctionArn": self.function_arn("revoke"),
            "VerifyFunctionArn": self.function_arn("verify"),
            "NotifyFunctionArn": self.function_arn("notify"),
            "CredentialsFunctionArn": self.function_arn("credentials"),
            "VendorsFunctionArn": self.function_arn("vendors"),
            "RevocationFunctionArn": self.function_arn("revocation"),
        })
    }

    /// The variables the functions read, as the template sets them.
    pub fn env_pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            (vars::REQUESTS_TABLE, self.tables.requests.clone()),
            (vars::AUDIT_TABLE, self.tables.audit.clone()),
            (vars::LEDGER_TABLE, self.tables.ledger.clone()),
            (vars::AUDIT_KEY, self.audit_key.clone()),
            (vars::AUDIT_ANCHORS, self.audit_anchors.clone()),
            (vars::USERS_TOPIC, self.topics.users.clone()),
            (vars::APPROVERS_TOPIC, self.topics.approvers.clone()),
            (vars::SECURITY_TOPIC, self.topics.security.clone()),
            (vars::STATE_MACHINE, self.state_machine_arn.clone()),
            (vars::REVOCATIONS_TABLE, self.revocations_table.clone()),
            (vars::PEOPLE_TABLE, self.people_table.clone()),
            (vars::EVENT_BUS, self.event_bus.clone()),
            (vars::WEBHOOK_SECRET, self.webhook_secret_id.clone()),
            // moto has no service-specific credentials and keeps no user
            // permissions boundaries; declared, never assumed.
            (vars::EMULATOR_GAPS, lapse_aws::iam::moto_gaps()),
            (
                "LAPSE_REVOCATION_STATE_MACHINE_ARN",
                self.revocation_state_machine_arn.clone(),
            ),
            (
                intake::BREAK_GLASS_STATE_MACHINE,
                self.break_glass_state_machine_arn.clone(),
            ),
            (vars::MANAGED_USER_PATH, self.managed_user_path.clone()),
            (
                vars::MANAGED_USER_BOUNDARY,
                self.managed_user_boundary.clone(),
            ),
            (
                "LAPSE_SCHEDULER_ROLE_ARN",
                format!("arn:aws:iam::{ACCOUNT}:role/{}-scheduler", self.prefix),
            ),
            // The vendors function's role, which a vendor's password secret names.
            (
                "LAPSE_VENDORS_ROLE_ARN",
                format!("arn:aws:iam::{ACCOUNT}:role/{}-vendors", self.prefix),
            ),
            // The stack's operators: the two local operator users (restores and
            // overrides take two).
            ("LAPSE_OPERATORS", operator_arns(&self.prefix)),
        ]
    }

    /// The environment the functions read, as the template sets it.
    pub fn env(&self) -> Env {
        Env::from_pairs(self.env_pairs())
    }
}

fn failed(
    what: impl Into<String>,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> LocalError {
    let what = what.into();
    move |source| LocalError::Provision { what, source }
}

/// The handler of the local database's rotation function: the emulator runs it
/// (`tools/moto_guard.py`), since moto runs no function code without Docker.
pub const LOCAL_DATABASE_ROTATION_HANDLER: &str = "lapse_local.rotate_database";

/// The organisation's side of a checked-out credential, as an administrator sets
/// it up: the database's rotation function (named by the catalog's
/// `rotation_function`; its code is the local database's, run by the emulator)
/// and the secret's rotation turned on with it, which rotates once at once.
/// Re-running is harmless: a secret already rotating with that function is left.
pub async fn enable_rotation(
    sdk: &SdkConfig,
    checkout: &lapse_core::policy::Checkout,
) -> Result<(), LocalError> {
    enable_rotation_with(sdk, checkout, LOCAL_DATABASE_ROTATION_HANDLER).await
}

/// [`enable_rotation`] with a function whose code is `handler`: any other than
/// [`LOCAL_DATABASE_ROTATION_HANDLER`] does nothing when invoked (moto's default),
/// a rotation function that never finishes.
pub async fn enable_rotation_with(
    sdk: &SdkConfig,
    checkout: &lapse_core::policy::Checkout,
    handler: &str,
) -> Result<(), LocalError> {
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    let secret = checkout
        .secret_arn
        .split(":secret:")
        .nth(1)
        .unwrap_or_default();
    let function_arn = &checkout.rotation_function;
    let described = secrets
        .describe_secret()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| failed(format!("secret {secret}"))(Box::new(e)))?;
    if described.rotation_enabled() == Some(true)
        && described.rotation_lambda_arn() == Some(function_arn.as_str())
    {
        return Ok(());
    }
    let function = function_arn.rsplit(':').next().unwrap_or_default();
    let iam = aws_sdk_iam::Client::new(sdk);
    let role = format!("{function}-execution");
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "lambda.amazonaws.com" },
            "Action": "sts:AssumeRole",
        }],
    });
    match iam
        .create_role()
        .role_name(&role)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) if e.code() == Some("EntityAlreadyExists") => {}
        Err(e) => return Err(failed(format!("role {role}"))(Box::new(e))),
    }
    // The code is the emulator's; an empty archive stands for the package.
    let empty_zip = [&b"PK\x05\x06"[..], &[0u8; 18]].concat();
    let lambda = aws_sdk_lambda::Client::new(sdk);
    match lambda
        .create_function()
        .function_name(function)
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role(format!("arn:aws:iam::{ACCOUNT}:role/{role}"))
        .handler(handler)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(empty_zip))
                .build(),
        )
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceConflictException") => {}
        Err(e) => return Err(failed(format!("rotation function {function}"))(Box::new(e))),
    }
    let rotated = secrets
        .rotate_secret()
        .secret_id(secret)
        .rotation_lambda_arn(function_arn)
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .rotate_immediately(true)
        .send()
        .await;
    if let Err(e) = rotated {
        // Another stack on the same emulator turned it on meanwhile.
        let now = secrets.describe_secret().secret_id(secret).send().await;
        let on = now.as_ref().is_ok_and(|d| {
            d.rotation_enabled() == Some(true)
                && d.rotation_lambda_arn() == Some(function_arn.as_str())
        });
        if !on {
            return Err(failed(format!("rotation of {secret}"))(Box::new(e)));
        }
    }
    Ok(())
}

/// Creates everything for a stack named `prefix`.
pub async fn provision(
    sdk: &SdkConfig,
    prefix: &str,
    catalog: &Catalog,
) -> Result<StackConfig, LocalError> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let tables = Tables::with_prefix(prefix);
    provision_local(&dynamo, &tables)
        .await
        .map_err(|e| failed("tables")(Box::new(e)))?;

    let sns = aws_sdk_sns::Client::new(sdk);
    let mut arns = BTreeMap::new();
    for audience in ["users", "approvers", "security"] {
        let out = sns
            .create_topic()
            .name(format!("{prefix}-{audience}"))
            .send()
            .await
            .map_err(|e| failed(format!("topic {audience}"))(Box::new(e)))?;
        arns.insert(audience, out.topic_arn().unwrap_or_default().to_owned());
    }
    let topics = Topics {
        users: arns["users"].clone(),
        approvers: arns["approvers"].clone(),
        security: arns["security"].clone(),
    };

    let audit_key = lapse_aws::kms::ensure_audit_key(
        &aws_sdk_kms::Client::new(sdk),
        &format!("alias/{prefix}-audit"),
    )
    .await
    .map_err(|e| failed("audit signing key")(Box::new(e)))?;
    let audit_anchors = format!("{prefix}-audit-anchors").to_ascii_lowercase();
    lapse_aws::anchors::S3Anchors::new(aws_sdk_s3::Client::new(sdk), &audit_anchors)
        .provision(1)
        .await
        .map_err(|e| failed("audit anchor bucket")(Box::new(e)))?;
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);

    let iam = aws_sdk_iam::Client::new(sdk);
    for resource in catalog.resources() {
        if let GrantSpec::Group(group) = &resource.grant {
            ensure_group(&iam, group).await?;
        }
    }

    let revocations_table = format!("{prefix}-revocations");
    lapse_aws::revocations::DynamoDbRevocations::new(dynamo.clone(), &revocations_table)
        .provision_local()
        .await
        .map_err(|e| failed("revocations table")(Box::new(e)))?;
    let people_table = format!("{prefix}-people");
    lapse_aws::people::DynamoDbPeople::new(dynamo.clone(), &people_table)
        .provision_local()
        .await
        .map_err(|e| failed("people table")(Box::new(e)))?;
    let event_bus = format!("{prefix}-hr-events");
    let events = aws_sdk_eventbridge::Client::new(sdk);
    match events.create_event_bus().name(&event_bus).send().await {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceAlreadyExistsException") => {}
        Err(e) => return Err(failed("event bus")(Box::new(e))),
    }
    let webhook_secret_id = format!("{prefix}/hr-webhook");
    let webhook_secret = serde_json::json!({
        "bearer_tokens": [DEV_WEBHOOK_TOKEN],
        "signing_secrets": [DEV_WEBHOOK_SIGNING_SECRET],
    });
    match secrets
        .create_secret()
        .name(&webhook_secret_id)
        .secret_string(webhook_secret.to_string())
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceExistsException") => {}
        Err(e) => return Err(failed("webhook secret")(Box::new(e))),
    }
    // The catalog's checked-out credentials, as an administrator would create them
    // (the template does not: their values are the organisation's).
    for checkout in catalog.resources().filter_map(|r| r.checkout.as_ref()) {
        let name = checkout
            .secret_arn
            .split(":secret:")
            .nth(1)
            .unwrap_or_default();
        let initial = secrets
            .get_random_password()
            .password_length(40)
            .exclude_punctuation(true)
            .send()
            .await
            .map_err(|e| failed("random password")(Box::new(e)))?;
        match secrets
            .create_secret()
            .name(name)
            .secret_string(initial.random_password().unwrap_or_default())
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceExistsException") => {}
            Err(e) => return Err(failed(format!("secret {name}"))(Box::new(e))),
        }
        enable_rotation(sdk, checkout).await?;
    }
    // Rules: one per routed HR event type, the same patterns the template declares.
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queue = sqs
        .create_queue()
        .queue_name(format!("{prefix}-hr-router"))
        .send()
        .await
        .map_err(|e| failed("router queue")(Box::new(e)))?;
    let router_queue_url = queue.queue_url().unwrap_or_default().to_owned();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&router_queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| failed("router queue")(Box::new(e)))?;
    let queue_arn = attributes
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_default();
    for event_type in lapse_aws::eventbridge::ROUTED {
        let rule = format!("{prefix}-{}", event_type.as_str().replace('_', "-"));
        events
            .put_rule()
            .name(&rule)
            .event_bus_name(&event_bus)
            .event_pattern(lapse_aws::eventbridge::rule_pattern(event_type))
            .send()
            .await
            .map_err(|e| failed(format!("rule {rule}"))(Box::new(e)))?;
        events
            .put_targets()
            .rule(&rule)
            .event_bus_name(&event_bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("router")
                    .arn(&queue_arn)
                    .build()
                    .map_err(|e| failed("rule target")(Box::new(e)))?,
            )
            .send()
            .await
            .map_err(|e| failed(format!("rule target {rule}"))(Box::new(e)))?;
    }
    let mut config = StackConfig {
        prefix: prefix.to_owned(),
        tables,
        revocations_table,
        people_table,
        event_bus,
        webhook_secret_id,
        topics,
        audit_key,
        audit_anchors,
        state_machine_arn: String::new(),
        revocation_state_machine_arn: String::new(),
        break_glass_state_machine_arn: String::new(),
        managed_user_path: "/".to_owned(),
        managed_user_boundary: managed_user_boundary(&aws_sdk_iam::Client::new(sdk), prefix)
            .await?,
        router_queue_url,
    };
    config.state_machine_arn = state_machine(sdk, &config, "grant-lifecycle").await?;
    config.revocation_state_machine_arn = state_machine(sdk, &config, "revocation").await?;
    config.break_glass_state_machine_arn =
        state_machine(sdk, &config, "break-glass-review").await?;
    Ok(config)
}

/// The managed users' permissions boundary, `<prefix>-managed-user-boundary`:
/// everything, as far as the local stack is concerned (the deployed one also denies
/// Lapse's own resources; the deploy rehearsal checks that one).
async fn managed_user_boundary(
    iam: &aws_sdk_iam::Client,
    prefix: &str,
) -> Result<String, LocalError> {
    let name = format!("{prefix}-managed-user-boundary");
    let document = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Action": "*", "Resource": "*" }]
    });
    match iam
        .create_policy()
        .policy_name(&name)
        .policy_document(document.to_string())
        .send()
        .await
    {
        Ok(out) => Ok(out
            .policy()
            .and_then(|p| p.arn())
            .unwrap_or_default()
            .to_owned()),
        Err(e) if e.code() == Some("EntityAlreadyExists") => {
            Ok(format!("arn:aws:iam::{ACCOUNT}:policy/{name}"))
        }
        Err(e) => Err(failed("managed user boundary")(Box::new(e))),
    }
}

/// Creates (or finds) `<prefix>-<name>` from `infra/statemachines/<name>.asl.json`.
async fn state_machine(
    sdk: &SdkConfig,
    config: &StackConfig,
    name: &str,
) -> Result<String, LocalError> {
    let prefix = &config.prefix;
    let definition = std::fs::read_to_string(
        crate::repo_root().join(format!("infra/statemachines/{name}.asl.json")),
    )?;
    let substitutions = config.substitutions();
    let definition =
        substitutions
            .as_object()
            .into_iter()
            .flatten()
            .fold(definition, |text, (key, value)| {
                text.replace(&format!("${{{key}}}"), value.as_str().unwrap_or_default())
            });
    let sfn = aws_sdk_sfn::Client::new(sdk);
    let name = format!("{prefix}-{name}");
    let existing = sfn
        .list_state_machines()
        .send()
        .await
        .map_err(|e| failed("state machines")(Box::new(e)))?
        .state_machines()
        .iter()
        .find(|m| m.name() == name)
        .map(|m| m.state_machine_arn().to_owned());
    Ok(match existing {
        Some(arn) => arn,
        None => sfn
            .create_state_machine()
            .name(&name)
            .definition(definition)
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/{prefix}-states"))
            .send()
            .await
            .map_err(|e| failed("state machine")(Box::new(e)))?
            .state_machine_arn()
            .to_owned(),
    })
}

/// Creates an IAM group unless it exists.
pub async fn ensure_group(iam: &aws_sdk_iam::Client, group: &str) -> Result<(), LocalError> {
    match iam.create_group().group_name(group).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("EntityAlreadyExists") => Ok(()),
        Err(e) => Err(failed(format!("group {group}"))(Box::new(e))),
    }
}

/// The tag that marks an IAM user as managed by Lapse (the template's IAM writes
/// are conditioned on it).
pub fn managed_tag() -> aws_sdk_iam::types::Tag {
    aws_sdk_iam::types::Tag::builder()
        .key("lapse:managed")
        .value("true")
        .build()
        .unwrap_or_else(|_| unreachable!("key and value are set"))
}

/// Creates an IAM user, tagged as managed by Lapse, unless it exists.
pub async fn ensure_user(iam: &aws_sdk_iam::Client, user: &str) -> Result<(), LocalError> {
    match iam
        .create_user()
        .user_name(user)
        .tags(managed_tag())
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("EntityAlreadyExists") => Ok(()),
        Err(e) => Err(failed(format!("user {user}"))(Box::new(e))),
    }
}

/// The local operator's AWS key: what the operator commands sign with, and the
/// only key the local gateway's operator routes accept.
#[derive(Clone)]
pub struct OperatorCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The IAM user that owns the key: the executor the stack audits.
    pub arn: String,
}

impl std::fmt::Debug for OperatorCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("arn", &self.arn)
            .finish_non_exhaustive()
    }
}

/// The IAM user name of the local stack's `n`th operator (1 or 2).
pub fn operator_user(prefix: &str, n: u8) -> String {
    match n {
        1 => format!("{prefix}-local-operator"),
        n => format!("{prefix}-local-operator-{n}"),
    }
}

/// The local stack's operator list (`LAPSE_OPERATORS`, the template's
/// `OperatorArns`): its two operator users, so a restore or an override can be
/// proposed by one and confirmed by the other.
pub fn operator_arns(prefix: &str) -> String {
    [1, 2]
        .map(|n| {
            format!(
                "arn:aws:iam::{ACCOUNT}:user/lapse-operators/{}",
                operator_user(prefix, n)
            )
        })
        .join(",")
}

/// An operator IAM user ([`operator_user`]; path `/lapse-operators/`, outside the people
/// Lapse manages) with a fresh access key; older keys of that user are deleted, so
/// restarting a stack never hits IAM's two-key limit.
pub async fn operator_credentials(
    iam: &aws_sdk_iam::Client,
    user: &str,
) -> Result<OperatorCredentials, LocalError> {
    let user = user.to_owned();
    let fail = |what: &str| failed(format!("{what} of {user}"));
    let arn = match iam
        .create_user()
        .user_name(&user)
        .path("/lapse-operators/")
        .send()
        .await
    {
        Ok(out) => out.user().map(|u| u.arn().to_owned()),
        Err(e) if e.code() == Some("EntityAlreadyExists") => iam
            .get_user()
            .user_name(&user)
            .send()
            .await
            .map_err(|e| fail("the user")(Box::new(e)))?
            .user()
            .map(|u| u.arn().to_owned()),
        Err(e) => return Err(fail("the user")(Box::new(e))),
    }
    .ok_or_else(|| fail("the user")("IAM returned no user".into()))?;
    let existing = iam
        .list_access_keys()
        .user_name(&user)
        .send()
        .await
        .map_err(|e| fail("the keys")(Box::new(e)))?;
    for key in existing.access_key_metadata() {
        if let Some(id) = key.access_key_id() {
            iam.delete_access_key()
                .user_name(&user)
                .access_key_id(id)
                .send()
                .await
                .map_err(|e| fail("an old key")(Box::new(e)))?;
        }
    }
    let key = iam
        .create_access_key()
        .user_name(&user)
        .send()
        .await
        .map_err(|e| fail("a key")(Box::new(e)))?;
    let key = key
        .access_key()
        .ok_or_else(|| fail("a key")("IAM returned no key".into()))?;
    Ok(OperatorCredentials {
        access_key_id: key.access_key_id().to_owned(),
        secret_access_key: key.secret_access_key().to_owned(),
        arn,
    })
}
