//! The local host: the Lambda Invoke API for task functions, and an API Gateway
//! stand-in for the HTTP functions.

//!
//! `faults` (planned failures), `functions` (each handler's dependencies),
//! `invoke` (the Lambda Invoke API), `gateway` (API Gateway), `router` (the bus's
//! rule targets); the stack itself is here.

use std::sync::Arc;

use aws_config::SdkConfig;
use axum::Router;
use axum::routing::post;
use chrono::TimeDelta;
use lapse_core::ports::Clock;

use crate::LocalError;
use crate::clock::LocalClock;
use crate::issuer::DevIssuer;
use crate::provision::{OperatorCredentials, StackConfig, provision};
use crate::sigv4::{OperatorKey, OperatorKeys};
use crate::workflows::{LocalWorkflows, RunOptions};

mod clock_api;
mod faults;
mod functions;
mod gateway;
mod invoke;
mod router;
mod schedules;

pub use faults::Faults;
use faults::*;
use functions::*;
pub use functions::{Binding, Bindings};
use gateway::*;
use invoke::*;
use router::*;
pub use schedules::{STACK_SCHEDULES, at_time};

pub(crate) struct HostState {
    pub(crate) functions: Functions,
    pub(crate) issuer: Arc<DevIssuer>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) prefix: String,
    pub(crate) clock: Arc<LocalClock>,
    /// The operator keys the operator routes accept (the IAM authorizer's part).
    pub(crate) operators: OperatorKeys,
}

/// Options for [`LocalStack::start`].
#[derive(Debug)]
pub struct StackOptions {
    pub prefix: String,
    pub issuer: Option<DevIssuer>,
    pub run: RunOptions,
    /// 0 picks a free port.
    pub port: u16,
}

/// A running local stack.
pub struct LocalStack {
    pub config: StackConfig,
    pub url: String,
    pub sdk: SdkConfig,
    pub issuer: Arc<DevIssuer>,
    pub clock: Arc<LocalClock>,
    pub workflows: LocalWorkflows,
    /// Revocation executions (started by the router from the bus, or directly).
    pub revocations: LocalWorkflows,
    /// Break-glass justification timelines.
    pub break_glass: LocalWorkflows,
    pub faults: Arc<Faults>,
    /// The key the operator commands sign with (see [`LocalStack::operator_env`]).
    pub operator: OperatorCredentials,
    /// A second operator: restores and overrides one operator proposes, another
    /// confirms (see [`LocalStack::operator_env_of`]).
    pub second_operator: OperatorCredentials,
    pub(crate) server: tokio::task::JoinHandle<()>,
    pub(crate) router: tokio::task::JoinHandle<()>,
    /// Background tasks started later ([`LocalStack::run_schedules`]).
    pub(crate) tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for LocalStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStack")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.server.abort();
        self.router.abort();
        for task in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            task.abort();
        }
    }
}

/// The state machine definitions a stack runs, and the substitutions to apply.
#[derive(Clone, Debug)]
pub struct Definitions {
    /// Paths under `infra/statemachines/`, or absolute.
    pub grant_lifecycle: std::path::PathBuf,
    pub revocation: std::path::PathBuf,
    pub break_glass_review: std::path::PathBuf,
    /// SAM's `DefinitionSubstitutions` (empty when the definitions are already
    /// substituted, as the deployed ones are).
    pub substitutions: serde_json::Value,
}

impl LocalStack {
    /// Provisions the stack against the AWS endpoint in `sdk` and starts the host.
    pub async fn start(sdk: SdkConfig, options: StackOptions) -> Result<Self, LocalError> {
        let catalog =
            lapse_lambda::bundled_catalog().map_err(lapse_lambda::wiring::InitError::from)?;
        let config = provision(&sdk, &options.prefix, &catalog).await?;
        let bindings = Bindings::uniform(config.env(), sdk.clone());
        let definitions = Definitions {
            grant_lifecycle: "grant-lifecycle.asl.json".into(),
            revocation: "revocation.asl.json".into(),
            break_glass_review: "break-glass-review.asl.json".into(),
            substitutions: config.substitutions(),
        };
        Self::serve(config, bindings, definitions, sdk, options).await
    }

    /// Starts the host for resources that already exist (`config`), each function
    /// running with its own binding. `sdk` is the operator's identity: what the
    /// stack itself does (the bus router standing in for EventBridge's rule
    /// targets, user set-up in tests).
    pub async fn serve(
        config: StackConfig,
        bindings: Bindings,
        definitions: Definitions,
        sdk: SdkConfig,
        options: StackOptions,
    ) -> Result<Self, LocalError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let clock = Arc::new(LocalClock::default());
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let workflows = LocalWorkflows::new(
            lapse_aws::sfn::SfnWorkflowStarter::new(
                aws_sdk_sfn::Client::new(&sdk),
                &config.state_machine_arn,
            ),
            &definitions.grant_lifecycle,
            url.clone(),
            definitions.substitutions.clone(),
            options.run,
        );
        let revocations = LocalWorkflows::new(
            lapse_aws::sfn::SfnWorkflowStarter::new(
                aws_sdk_sfn::Client::new(&sdk),
                &config.revocation_state_machine_arn,
            ),
            &definitions.revocation,
            url.clone(),
            definitions.substitutions.clone(),
            options.run,
        );
        let break_glass = LocalWorkflows::new(
            lapse_aws::sfn::SfnWorkflowStarter::new(
                aws_sdk_sfn::Client::new(&sdk),
                &config.break_glass_state_machine_arn,
            ),
            &definitions.break_glass_review,
            url.clone(),
            definitions.substitutions.clone(),
            options.run,
        );
        let issuer = Arc::new(match options.issuer {
            Some(issuer) => issuer,
            None => DevIssuer::generate()?,
        });
        let faults = Arc::new(Faults::default());
        let iam = aws_sdk_iam::Client::new(&sdk);
        let operator = crate::provision::operator_credentials(
            &iam,
            &crate::provision::operator_user(&options.prefix, 1),
        )
        .await?;
        let second_operator = crate::provision::operator_credentials(
            &iam,
            &crate::provision::operator_user(&options.prefix, 2),
        )
        .await?;
        let mut operators = OperatorKeys::default();
        for credentials in [&operator, &second_operator] {
            operators.insert(
                credentials.access_key_id.clone(),
                OperatorKey {
                    secret: credentials.secret_access_key.clone(),
                    arn: credentials.arn.clone(),
                },
            );
        }
        let functions = Functions::build(
            &bindings,
            &workflows,
            &revocations,
            &break_glass,
            &dyn_clock,
        )
        .await?;
        let state = Arc::new(HostState {
            functions,
            issuer: issuer.clone(),
            faults: faults.clone(),
            prefix: options.prefix.clone(),
            clock: clock.clone(),
            operators,
        });
        let app = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .route(
                "/_local/clock",
                axum::routing::get(clock_api::read).post(clock_api::moved),
            )
            .fallback(gateway)
            .with_state(state);
        let server = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "local host stopped");
            }
        });
        let router = tokio::spawn(route_hr_events(
            sdk.clone(),
            config.router_queue_url.clone(),
            revocations.clone(),
        ));
        Ok(Self {
            config,
            url,
            sdk,
            issuer,
            clock,
            workflows,
            revocations,
            break_glass,
            faults,
            operator,
            second_operator,
            server,
            router,
            tasks: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Publishes every execution that does not succeed to the security topic, as
    /// the deployed stack's `ExecutionsFailed` alarms do (`serve`; the tests' stacks
    /// only log them, since many fail on purpose).
    pub fn alarm_failed_executions(&self) {
        let sns = aws_sdk_sns::Client::new(&self.sdk);
        for (handle, workflow) in [
            (&self.workflows, "grant lifecycle"),
            (&self.revocations, "revocation"),
            (&self.break_glass, "break-glass review"),
        ] {
            handle.alarm_on_failure(crate::workflows::Alarm {
                sns: sns.clone(),
                topic_arn: self.config.topics.security.clone(),
                workflow,
            });
        }
    }

    /// Runs every schedule at its time on the stack's clock, as EventBridge
    /// Scheduler does for the deployed stack (`serve`): the stack's own (the
    /// sweeper, the inactivity check) and the one-time schedules Lapse creates.
    /// The tests' stacks run them by hand instead, to keep each test's state its own.
    pub fn run_schedules(&self) {
        let targets = schedules::Targets {
            url: self.url.clone(),
            prefix: self.config.prefix.clone(),
            clock: self.clock.clone(),
            scheduler: aws_sdk_scheduler::Client::new(&self.sdk),
            machines: [
                (
                    self.config.state_machine_arn.clone(),
                    self.workflows.clone(),
                ),
                (
                    self.config.revocation_state_machine_arn.clone(),
                    self.revocations.clone(),
                ),
                (
                    self.config.break_glass_state_machine_arn.clone(),
                    self.break_glass.clone(),
                ),
            ]
            .into(),
        };
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tokio::spawn(schedules::run(targets)));
    }

    /// A client of the operator API that signs as the local operator (its key
    /// against this stack's emulator), as `lapse` does with `operator_env`.
    pub fn operator_api(
        &self,
    ) -> Result<lapse_cli::client::ApiClient, lapse_cli::client::ApiError> {
        self.operator_api_as(&self.operator)
    }

    /// The same, signed as the second operator: the one who confirms what the
    /// first proposes.
    pub fn second_operator_api(
        &self,
    ) -> Result<lapse_cli::client::ApiClient, lapse_cli::client::ApiError> {
        self.operator_api_as(&self.second_operator)
    }

    fn operator_api_as(
        &self,
        operator: &OperatorCredentials,
    ) -> Result<lapse_cli::client::ApiClient, lapse_cli::client::ApiError> {
        let credentials = lapse_aws::sdk::Credentials::new(
            &operator.access_key_id,
            &operator.secret_access_key,
            None,
            None,
            "local-operator",
        );
        let sdk = self
            .sdk
            .to_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
            )
            .build();
        lapse_cli::client::ApiClient::aws(&self.url, &sdk)
    }

    /// What the operator commands (`lapse revoke|restore|hold|check-user|verify`)
    /// need: the API and the operator's AWS key, which signs every call.
    pub fn operator_env(&self) -> Vec<(&'static str, String)> {
        self.operator_env_of(&self.operator)
    }

    /// What `operator_env` gives, for either operator.
    pub fn operator_env_of(&self, operator: &OperatorCredentials) -> Vec<(&'static str, String)> {
        vec![
            ("LAPSE_API_URL", self.url.clone()),
            ("AWS_ACCESS_KEY_ID", operator.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", operator.secret_access_key.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
        ]
    }

    /// A token for a person, issued on the stack's clock and valid for a year of it.
    pub fn token(
        &self,
        user: &str,
        groups: &[&str],
        employment: &str,
    ) -> Result<String, LocalError> {
        // The development identity provider puts people in the catalog's IdP
        // groups for the approver groups named.
        let catalog =
            lapse_lambda::bundled_catalog().map_err(lapse_lambda::wiring::InitError::from)?;
        let idp: Vec<String> = catalog
            .groups()
            .filter(|g| groups.contains(&g.name.as_str()))
            .filter_map(|g| g.idp_groups.first().cloned())
            .collect();
        if idp.len() != groups.len() {
            return Err(LocalError::Issuer(format!(
                "unknown approver group in {groups:?}"
            )));
        }
        let idp: Vec<&str> = idp.iter().map(String::as_str).collect();
        self.token_with_idp_groups(user, &idp, employment)
    }

    /// A token whose groups claim carries these identity-provider group ids as
    /// they are (for tests of what an IdP might send).
    pub fn token_with_idp_groups(
        &self,
        user: &str,
        idp_groups: &[&str],
        employment: &str,
    ) -> Result<String, LocalError> {
        // Issued on the stack's clock. A year: tests and the demo move the clock
        // by weeks and keep their people's clients.
        self.issuer.mint_at(
            user,
            idp_groups,
            employment,
            TimeDelta::days(366),
            self.clock.now(),
        )
    }

    /// Posts `body` to the HR webhook as the HR system does: the bearer token and an
    /// HMAC signature over `message_id`, the stack clock's time and the body.
    /// Returns the status and the JSON answer.
    pub async fn post_hr_event(
        &self,
        message_id: &str,
        body: &str,
    ) -> Result<(u16, serde_json::Value), LocalError> {
        crate::stack_client::post_hr_event(
            &reqwest::Client::new(),
            &self.url,
            message_id,
            self.clock.now().timestamp(),
            body,
        )
        .await
        .map_err(|e| LocalError::Call(format!("{e:#}")))
    }

    /// The stack's audit trail as an auditor reads it: the table, the anchors and a
    /// verifier holding only the signing key's public half.
    pub async fn audit_reader(&self) -> Result<lapse_cli::audit::AuditReader, LocalError> {
        let config = &self.config;
        let verifier =
            lapse_aws::kms::audit_verifier(&aws_sdk_kms::Client::new(&self.sdk), &config.audit_key)
                .await
                .map_err(|e| LocalError::Provision {
                    what: "the audit verifier".into(),
                    source: Box::new(e),
                })?;
        Ok(lapse_cli::audit::AuditReader {
            log: lapse_aws::dynamodb::DynamoDbAuditLog::new(
                aws_sdk_dynamodb::Client::new(&self.sdk),
                &config.tables.audit,
            ),
            anchors: lapse_aws::anchors::S3Anchors::new(
                aws_sdk_s3::Client::new(&self.sdk),
                &config.audit_anchors,
            ),
            verifier,
        })
    }

    /// Creates IAM users (people must exist in IAM to be granted anything).
    pub async fn add_users(&self, users: &[&str]) -> Result<(), LocalError> {
        let iam = aws_sdk_iam::Client::new(&self.sdk);
        for user in users {
            crate::provision::ensure_user(&iam, user).await?;
        }
        Ok(())
    }
}
