//! The local host: the Lambda Invoke API for task functions, and an API Gateway
//! stand-in for the HTTP functions.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, TimeDelta, Utc};
use lambda_runtime::{Context, LambdaEvent};
use lapse_core::ports::Clock;
use lapse_lambda::HandlerError;
use lapse_lambda::config::Env;
use lapse_lambda::wiring::{self, Lifecycle, Revocations};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::LocalError;
use crate::clock::LocalClock;
use crate::issuer::{Claims, DevIssuer};
use crate::provision::{OperatorCredentials, StackConfig, provision};
use crate::sigv4::{OperatorKey, OperatorKeys, Received};
use crate::workflows::{LocalWorkflows, RunOptions};

type Hook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Planned faults, for tests of retries and failure paths.
enum Fault {
    /// The next invocation fails with this error name, as a throttled handler would.
    Error { error_type: String, message: String },
    /// Run this before the next invocation (e.g. put a policy back behind Lapse's back).
    Before(Hook),
}

/// Faults and invocation counts per function.
#[derive(Default)]
pub struct Faults {
    planned: Mutex<HashMap<String, VecDeque<Fault>>>,
    invocations: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Faults {
    /// Fails the next invocation of `function` with `error_type`.
    pub fn fail_next(&self, function: &str, error_type: &str, message: &str) {
        lock(&self.planned)
            .entry(function.to_owned())
            .or_default()
            .push_back(Fault::Error {
                error_type: error_type.to_owned(),
                message: message.to_owned(),
            });
    }

    /// Runs `hook` before the next invocation of `function`.
    pub fn before_next<F, Fut>(&self, function: &str, hook: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: Hook = Arc::new(move || Box::pin(hook()));
        lock(&self.planned)
            .entry(function.to_owned())
            .or_default()
            .push_back(Fault::Before(hook));
    }

    /// How many times `function` was invoked.
    pub fn invocations(&self, function: &str) -> usize {
        lock(&self.invocations).get(function).copied().unwrap_or(0)
    }

    fn take(&self, function: &str) -> Option<Fault> {
        *lock(&self.invocations)
            .entry(function.to_owned())
            .or_default() += 1;
        lock(&self.planned)
            .get_mut(function)
            .and_then(VecDeque::pop_front)
    }
}

/// Every handler's dependencies, built by each function's own production
/// constructor (`Deps::from_env`) from that function's environment and AWS
/// identity, as its Lambda init phase would; only the clock (the stack's) and the
/// workflow starter (which also runs the ASL locally) are swapped in.
struct Functions {
    revocation: Revocations,
    inactivity: inactivity_check::Deps<LocalWorkflows>,
    hr_webhook: hr_webhook::Deps<lapse_aws::eventbridge::EventBridgeBus>,
    intake: intake::Deps<LocalWorkflows>,
    approval: approval::Deps<LocalWorkflows>,
    grants_api: grants_api::Deps,
    grant: wiring::Granting,
    revoke: Lifecycle,
    verify: Lifecycle,
    ttl_backstop: Lifecycle,
    notify: notify::Deps,
    sweeper: sweeper::Deps<LocalWorkflows>,
    operator: operator::Deps<LocalWorkflows>,
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
    default: Binding,
    functions: HashMap<String, Binding>,
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
    async fn build(
        bindings: &Bindings,
        workflows: &LocalWorkflows,
        revocations: &LocalWorkflows,
        clock: &Arc<dyn Clock>,
    ) -> Result<Self, LocalError> {
        let lifecycle = |name: &'static str| async move {
            let b = bindings.get(name);
            let mut deps = Lifecycle::from_env(&b.env, &b.sdk).await?;
            deps.clock = clock.clone();
            Ok::<_, LocalError>(deps)
        };
        let request_api = |name: &'static str| async move {
            let b = bindings.get(name);
            let api = wiring::RequestApi::from_env(&b.env, &b.sdk).await?;
            Ok::<_, LocalError>(wiring::RequestApi {
                store: api.store,
                controls: api.controls,
                auditing: api.auditing,
                notifier: api.notifier,
                workflows: workflows.for_caller(api.workflows),
                clock: clock.clone(),
            })
        };
        let b = bindings.get("revocation");
        let mut revocation = Revocations::from_env(&b.env, &b.sdk).await?;
        revocation.lifecycle.clock = clock.clone();
        let b = bindings.get("inactivity-check");
        let mut inactivity = inactivity_check::Deps::from_env(&b.env, &b.sdk).await?;
        inactivity.revocations.lifecycle.clock = clock.clone();
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
            inactivity: inactivity_check::Deps {
                revocations: inactivity.revocations,
                iam: inactivity.iam,
                workflows: revocations.for_caller(inactivity.workflows),
            },
            hr_webhook,
            intake: request_api("intake").await?,
            approval: request_api("approval").await?,
            grants_api,
            grant: {
                let b = bindings.get("grant");
                let mut deps = wiring::Granting::from_env(&b.env, &b.sdk).await?;
                deps.lifecycle.clock = clock.clone();
                deps
            },
            revoke: lifecycle("revoke").await?,
            verify: lifecycle("verify").await?,
            ttl_backstop: lifecycle("ttl-backstop").await?,
            notify,
            sweeper: sweeper::Deps {
                lifecycle: sweeper.lifecycle,
                notifier: sweeper.notifier,
                workflows: workflows.for_caller(sweeper.workflows),
                revocations: sweeper.revocations,
            },
            operator: operator::Deps {
                revocations: operator.revocations,
                workflows: revocations.for_caller(operator.workflows),
                scheduler: operator.scheduler,
            },
        })
    }
}

struct HostState {
    functions: Functions,
    issuer: Arc<DevIssuer>,
    faults: Arc<Faults>,
    prefix: String,
    clock: Arc<LocalClock>,
    /// The operator keys the operator routes accept (the IAM authorizer's part).
    operators: OperatorKeys,
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
    pub faults: Arc<Faults>,
    /// The key the operator commands sign with (see [`LocalStack::operator_env`]).
    pub operator: OperatorCredentials,
    server: tokio::task::JoinHandle<()>,
    router: tokio::task::JoinHandle<()>,
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
    }
}

/// The state machine definitions a stack runs, and the substitutions to apply.
#[derive(Clone, Debug)]
pub struct Definitions {
    /// Paths under `infra/statemachines/`, or absolute.
    pub grant_lifecycle: std::path::PathBuf,
    pub revocation: std::path::PathBuf,
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
        let issuer = Arc::new(match options.issuer {
            Some(issuer) => issuer,
            None => DevIssuer::generate()?,
        });
        let faults = Arc::new(Faults::default());
        let operator = crate::provision::operator_credentials(
            &aws_sdk_iam::Client::new(&sdk),
            &options.prefix,
        )
        .await?;
        let mut operators = OperatorKeys::default();
        operators.insert(
            operator.access_key_id.clone(),
            OperatorKey {
                secret: operator.secret_access_key.clone(),
                arn: operator.arn.clone(),
            },
        );
        let functions = Functions::build(&bindings, &workflows, &revocations, &dyn_clock).await?;
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
            faults,
            operator,
            server,
            router,
        })
    }

    /// What the operator commands (`lapse revoke|restore|hold|check-user|verify`)
    /// need: the API and the operator's AWS key, which signs every call.
    pub fn operator_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LAPSE_API_URL", self.url.clone()),
            ("AWS_ACCESS_KEY_ID", self.operator.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY",
                self.operator.secret_access_key.clone(),
            ),
            ("AWS_REGION", "us-east-1".to_owned()),
        ]
    }

    /// A fresh token for a person (valid one hour).
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
        self.issuer
            .mint(user, idp_groups, employment, TimeDelta::hours(1))
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

/// Moves events the bus's rules delivered to the router queue into revocation
/// executions, as the deployed rules' state machine targets do.
async fn route_hr_events(sdk: SdkConfig, queue_url: String, revocations: LocalWorkflows) {
    use lapse_core::ports::WorkflowStarter;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await;
        let Ok(received) = received else {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            continue;
        };
        for message in received.messages() {
            let Some(body) = message.body() else { continue };
            let Ok(event) = serde_json::from_str::<serde_json::Value>(body) else {
                tracing::warn!("router: a message that is not an EventBridge event");
                continue;
            };
            let event_id = event["detail"]["event_id"].as_str().unwrap_or("unknown");
            let name: String = format!("hr-{event_id}")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .take(80)
                .collect();
            // Unique per delivery, as EventBridge's own at-least-once deliveries are.
            let delivery = format!("{name}-{}", message.message_id().unwrap_or_default());
            let delivery: String = delivery.chars().take(80).collect();
            match revocations.start(&delivery, &event).await {
                Ok(_) => {
                    if let Some(handle) = message.receipt_handle() {
                        let _ = sqs
                            .delete_message()
                            .queue_url(&queue_url)
                            .receipt_handle(handle)
                            .send()
                            .await;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "router: could not start a revocation; will retry")
                }
            }
        }
    }
}

/// A Lambda function error, as the Invoke API reports it.
fn function_error(error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    (
        StatusCode::OK,
        [
            ("x-amz-function-error", "Unhandled"),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn call<T, O, Fut>(body: &Bytes, handler: impl FnOnce(LambdaEvent<T>) -> Fut) -> Response
where
    T: DeserializeOwned,
    O: Serialize,
    Fut: Future<Output = Result<O, HandlerError>>,
{
    let payload: T = match serde_json::from_slice(body) {
        Ok(payload) => payload,
        Err(err) => return function_error(lapse_lambda::error::names::BAD_EVENT, &err.to_string()),
    };
    match handler(LambdaEvent::new(payload, Context::default())).await {
        Ok(output) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            serde_json::to_string(&output).unwrap_or_else(|_| "null".into()),
        )
            .into_response(),
        Err(err) => function_error(err.name(), &err.to_string()),
    }
}

/// `POST /2015-03-31/functions/{name}/invocations`, as Step Functions calls Lambda.
/// A Wait state of a local execution: answers once the stack's clock passes
/// `until` (or `seconds` from now), so local Waits behave as on AWS however far
/// the time is. Tests and the demo move the clock.
async fn clock_wait(clock: &LocalClock, body: &Bytes) -> Response {
    let now = clock.now();
    let input: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let until = match (input["until"].as_str(), input["seconds"].as_i64()) {
        (Some(at), _) => match DateTime::parse_from_rfc3339(at) {
            Ok(at) => at.with_timezone(&Utc),
            Err(e) => return function_error("States.Runtime", &format!("bad Wait time {at}: {e}")),
        },
        (None, Some(seconds)) => now + TimeDelta::seconds(seconds),
        _ => return function_error("States.Runtime", "a Wait needs until or seconds"),
    };
    while clock.now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    (StatusCode::OK, "{}").into_response()
}

async fn invoke(
    State(state): State<Arc<HostState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let name = percent_encoding::percent_decode_str(&name)
        .decode_utf8_lossy()
        .into_owned();
    let short = name.rsplit(':').next().unwrap_or(&name);
    let function = short
        .strip_prefix(&format!("{}-", state.prefix))
        .unwrap_or(short)
        .to_owned();
    let mut keys = vec![function.clone()];
    if function == "revocation"
        && let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&body)
    {
        let step = payload["step"].as_str().unwrap_or_default();
        keys.push(match payload["lane"].as_str() {
            Some(lane) => format!("revocation/{step}/{lane}"),
            None => format!("revocation/{step}"),
        });
    }
    for key in keys {
        match state.faults.take(&key) {
            Some(Fault::Error {
                error_type,
                message,
            }) => return function_error(&error_type, &message),
            Some(Fault::Before(hook)) => hook().await,
            None => {}
        }
    }
    let f = &state.functions;
    if short == crate::workflows::CLOCK_WAIT_FUNCTION {
        return clock_wait(&state.clock, &body).await;
    }
    match function.as_str() {
        "grant" => call(&body, |e| grant::handler(&f.grant, e)).await,
        "revoke" => call(&body, |e| revoke::handler(&f.revoke, e)).await,
        "verify" => call(&body, |e| verify::handler(&f.verify, e)).await,
        "ttl-backstop" => call(&body, |e| ttl_backstop::handler(&f.ttl_backstop, e)).await,
        "notify" => call(&body, |e| notify::handler(&f.notify, e)).await,
        "sweeper" => call(&body, |e| sweeper::handler(&f.sweeper, e)).await,
        "revocation" => call(&body, |e| revocation::handler(&f.revocation, e)).await,
        "inactivity-check" => call(&body, |e| inactivity_check::handler(&f.inactivity, e)).await,
        _ => (
            StatusCode::NOT_FOUND,
            [("x-amzn-errortype", "ResourceNotFoundException")],
            serde_json::json!({ "Type": "User", "message": format!("Function not found: {name}") })
                .to_string(),
        )
            .into_response(),
    }
}

/// An API Gateway (HTTP API, payload 2.0) event for a request, with what the
/// route's authorizer established (`null` for none).
fn api_event(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    authorizer: serde_json::Value,
) -> Result<lambda_http::Request, Box<Response>> {
    let path = uri.path();
    let query = uri.query().unwrap_or_default();
    let mut query_params = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query_params.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
    }
    // API Gateway does not pass the credential on to the function.
    let header_map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .filter(|(k, _)| k.as_str() != "authorization")
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_owned(),
                serde_json::Value::String(v.to_str().ok()?.to_owned()),
            ))
        })
        .collect();
    let now = chrono::Utc::now();
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": header_map,
        "queryStringParameters": if query_params.is_empty() { serde_json::Value::Null } else { serde_json::Value::Object(query_params) },
        "requestContext": {
            "accountId": crate::provision::ACCOUNT,
            "apiId": "lapse-local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": { "method": method.as_str(), "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "lapse-local" },
            "requestId": format!("local-{}", now.timestamp_nanos_opt().unwrap_or_default()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
            "authorizer": authorizer
        },
        "body": String::from_utf8_lossy(body),
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string())
        .map_err(|err| Box::new((StatusCode::BAD_REQUEST, err.to_string()).into_response()))
}

/// The operator routes: API Gateway's IAM authorizer (SigV4 against the keys the
/// stack issued), then the operator function with the caller in the context.
async fn operator_route(
    state: &HostState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let received = Received {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        headers: &received_headers,
        body: &body,
    };
    let arn = match state.operators.verify(&received, chrono::Utc::now()) {
        Ok(arn) => arn.to_owned(),
        // What API Gateway answers when IAM authorization fails.
        Err(err) => {
            return (
                StatusCode::FORBIDDEN,
                [("content-type", "application/json")],
                serde_json::json!({ "message": err.to_string() }).to_string(),
            )
                .into_response();
        }
    };
    let authorizer = serde_json::json!({ "iam": {
        "accessKey": null, "accountId": crate::provision::ACCOUNT, "callerId": null,
        "cognitoIdentity": null, "principalOrgId": null, "userArn": arn, "userId": null
    }});
    let request = match api_event(&method, &uri, &headers, &body, authorizer) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let Ok(response) = operator::handler(&state.functions.operator, request).await;
    into_axum(response)
}

/// The HR webhook route: no JWT authorizer (HR systems authenticate with the
/// bearer token and HMAC signature the handler checks), as in the template.
async fn webhook(
    state: &HostState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The handler checks the bearer token itself, so it is passed on.
    let mut headers = headers;
    let bearer = headers.remove("authorization");
    let request = match api_event(&method, &uri, &headers, &body, serde_json::Value::Null) {
        Ok(mut request) => {
            if let Some(value) = bearer {
                request.headers_mut().insert("authorization", value);
            }
            request
        }
        Err(response) => return *response,
    };
    let Ok(response) = hr_webhook::handler(&state.functions.hr_webhook, request).await;
    into_axum(response)
}

fn into_axum(response: lambda_http::Response<lambda_http::Body>) -> Response {
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = match body {
        lambda_http::Body::Empty => Vec::new(),
        lambda_http::Body::Text(text) => text.into_bytes(),
        lambda_http::Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    let mut out = (parts.status, bytes).into_response();
    for (k, v) in parts.headers.iter() {
        out.headers_mut().insert(k.clone(), v.clone());
    }
    out
}

/// API Gateway claims are strings; arrays are flattened to `[a b]`, as the JWT
/// authorizer does.
fn claim_strings(claims: &Claims) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    let mut put = |k: &str, v: String| {
        map.insert(k.to_owned(), serde_json::Value::String(v));
    };
    put("sub", claims.sub.clone());
    put("groups", format!("[{}]", claims.groups.join(" ")));
    if let Some(employment) = &claims.employment_type {
        put("employment_type", employment.clone());
    }
    put("iss", claims.iss.clone());
    put("aud", claims.aud.clone());
    put("exp", claims.exp.to_string());
    put("iat", claims.iat.to_string());
    map
}

/// Everything that is not the Invoke API: the HTTP API behind a JWT authorizer.
async fn gateway(
    State(state): State<Arc<HostState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path() == "/api/v1/webhooks/hr-events" {
        return webhook(&state, method, uri, headers, body).await;
    }
    if uri.path() == "/v1/operator" || uri.path().starts_with("/v1/operator/") {
        return operator_route(&state, method, uri, headers, body).await;
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(claims) = token.and_then(|t| state.issuer.verify(t)) else {
        // What API Gateway's JWT authorizer answers.
        return (
            StatusCode::UNAUTHORIZED,
            [
                ("content-type", "application/json"),
                ("www-authenticate", "Bearer"),
            ],
            r#"{"message":"Unauthorized"}"#,
        )
            .into_response();
    };
    let authorizer =
        serde_json::json!({ "jwt": { "claims": claim_strings(&claims), "scopes": null } });
    let request = match api_event(&method, &uri, &headers, &body, authorizer) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let path = uri.path();
    let f = &state.functions;
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let response = match segments.as_slice() {
        ["v1", "requests", _, "decisions"] => approval::handler(&f.approval, request).await,
        ["v1", "grants", _, "revoke"] => grants_api::handler(&f.grants_api, request).await,
        _ => intake::handler(&f.intake, request).await,
    };
    let Ok(response) = response;
    into_axum(response)
}
