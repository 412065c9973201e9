//! Every function's dependencies, built by its own production constructor from
//! its binding (environment and AWS identity).

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::SdkConfig;
use lapse_core::ports::Clock;
use lapse_lambda::config::Env;
use lapse_lambda::wiring::{self, Lifecycle, Revocations};

use crate::LocalError;
use crate::workflows::LocalWorkflows;

/// Every handler's dependencies, built by each function's own production
/// constructor (`Deps::from_env`) from that function's environment and AWS
/// identity, as its Lambda init phase would; only the clock (the stack's) and the
/// workflow starter (which also runs the ASL locally) are swapped in.
pub(crate) struct Functions {
    pub(crate) revocation: Revocations,
    pub(crate) revocation_people: lapse_aws::people::DynamoDbPeople,
    pub(crate) inactivity: inactivity_check::Deps<LocalWorkflows>,
    pub(crate) hr_webhook: hr_webhook::Deps<lapse_aws::eventbridge::EventBridgeBus>,
    pub(crate) intake: intake::Deps<LocalWorkflows>,
    pub(crate) approval: approval::Deps<LocalWorkflows>,
    pub(crate) grants_api: grants_api::Deps,
    pub(crate) grant: wiring::Granting,
    pub(crate) revoke: Lifecycle,
    pub(crate) verify: Lifecycle,
    pub(crate) credentials: credentials::Deps,
    pub(crate) vendors: vendors::Deps,
    pub(crate) ttl_backstop: Lifecycle,
    pub(crate) notify: notify::Deps,
    pub(crate) sweeper: sweeper::Deps<LocalWorkflows>,
    pub(crate) operator: operator::Deps<LocalWorkflows>,
}

/// What one function runs with: its environment variables and its AWS identity.
#[derive(Clone, Debug)]
pub struct Binding {
    pub env: Env,
    pub sdk: SdkConfig,
}

/// Each function's [`Binding`], by binary name (`intake`, `grant`, ...). The local
/// stack binds every function to the same environment and identity; the deploy
/// rehearsal binds each to what its CloudFormation stack gave it (its role's
/// credentials, its environment variables).
#[derive(Clone, Debug)]
pub struct Bindings {
    pub(crate) default: Binding,
    pub(crate) functions: HashMap<String, Binding>,
}

impl Bindings {
    /// Every function with the same environment and identity.
    pub fn uniform(env: Env, sdk: SdkConfig) -> Self {
        Self {
            default: Binding { env, sdk },
            functions: HashMap::new(),
        }
    }

    /// `function` runs with `binding`.
    pub fn bind(mut self, function: &str, binding: Binding) -> Self {
        self.functions.insert(function.to_owned(), binding);
        self
    }

    pub fn get(&self, function: &str) -> &Binding {
        self.functions.get(function).unwrap_or(&self.default)
    }
}

impl Functions {
    pub(crate) async fn build(
        bindings: &Bindings,
        workflows: &LocalWorkflows,
        revocations: &LocalWorkflows,
        break_glass: &LocalWorkflows,
        clock: &Arc<dyn Clock>,
    ) -> Result<Self, LocalError> {
        let lifecycle = |name: &'static str| async move {
            let b = bindings.get(name);
            let mut deps = Lifecycle::from_env(&b.env, &b.sdk).await?;
            deps.clock = clock.clone();
            Ok::<_, LocalError>(deps)
        };
        let local_api =
            |api: wiring::RequestApi<lapse_aws::sfn::SfnWorkflowStarter>| wiring::RequestApi {
                store: api.store,
                controls: api.controls,
                auditing: api.auditing,
                notifier: api.notifier,
                workflows: workflows.for_caller(api.workflows),
                clock: clock.clone(),
            };
        let b = bindings.get("revocation");
        let mut revocation = Revocations::from_env(&b.env, &b.sdk, revocation::TOPICS).await?;
        revocation.lifecycle.clock = clock.clone();
        let revocation_people = lapse_lambda::wiring::people(&b.env, &b.sdk)
            .map_err(lapse_lambda::wiring::InitError::from)?;
        let b = bindings.get("inactivity-check");
        let mut inactivity = inactivity_check::Deps::from_env(&b.env, &b.sdk).await?;
        inactivity.clock = clock.clone();
        let b = bindings.get("hr-webhook");
        let mut hr_webhook = hr_webhook::Deps::from_env(&b.env, &b.sdk).await?;
        hr_webhook.clock = clock.clone();
        let b = bindings.get("grants-api");
        let mut grants_api = grants_api::Deps::from_env(&b.env, &b.sdk).await?;
        grants_api.clock = clock.clone();
        let b = bindings.get("notify");
        let mut notify = notify::Deps::from_env(&b.env, &b.sdk).await?;
        notify.clock = clock.clone();
        let b = bindings.get("sweeper");
        let mut sweeper = sweeper::Deps::from_env(&b.env, &b.sdk).await?;
        sweeper.lifecycle.clock = clock.clone();
        let b = bindings.get("operator");
        let mut operator = operator::Deps::from_env(&b.env, &b.sdk).await?;
        operator.revocations.lifecycle.clock = clock.clone();
        Ok(Self {
            revocation,
            revocation_people,
            inactivity: inactivity_check::Deps {
                table: inactivity.table,
                directory: inactivity.directory,
                auditing: inactivity.auditing,
                clock: inactivity.clock,
                iam: inactivity.iam,
                workflows: revocations.for_caller(inactivity.workflows),
            },
            hr_webhook,
            intake: {
                let b = bindings.get("intake");
                let deps = intake::Deps::from_env(&b.env, &b.sdk).await?;
                intake::Deps {
                    api: local_api(deps.api),
                    timelines: break_glass.for_caller(deps.timelines),
                }
            },
            approval: {
                let b = bindings.get("approval");
                let deps = approval::Deps::from_env(&b.env, &b.sdk).await?;
                approval::Deps {
                    api: local_api(deps.api),
                    incidents: deps.incidents,
                }
            },
            grants_api,
            grant: {
                let b = bindings.get("grant");
                let mut deps = wiring::Granting::from_env(&b.env, &b.sdk).await?;
                deps.lifecycle.clock = clock.clone();
                deps
            },
            revoke: lifecycle("revoke").await?,
            verify: lifecycle("verify").await?,
            vendors: {
                let b = bindings.get("vendors");
                let mut deps = vendors::Deps::from_env(&b.env, &b.sdk).await?;
                deps.clock = clock.clone();
                deps
            },
            credentials: {
                let b = bindings.get("credentials");
                let mut deps = credentials::Deps::from_env(&b.env, &b.sdk).await?;
                deps.clock = clock.clone();
                deps
            },
            ttl_backstop: lifecycle("ttl-backstop").await?,
            notify,
            sweeper: sweeper::Deps {
                lifecycle: sweeper.lifecycle,
                notifier: sweeper.notifier,
                workflows: workflows.for_caller(sweeper.workflows),
                timelines: break_glass.for_caller(sweeper.timelines),
                revocations: sweeper.revocations,
                custody: sweeper.custody,
            },
            operator: operator::Deps {
                revocations: operator.revocations,
                workflows: revocations.for_caller(operator.workflows),
                scheduler: operator.scheduler,
                operators: operator.operators,
                people: operator.people,
            },
        })
    }
}
