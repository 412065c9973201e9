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
use chrono::TimeDelta;
use lambda_runtime::{Context, LambdaEvent};
use lapse_core::ports::Clock;
use lapse_lambda::HandlerError;
use lapse_lambda::wiring::{self, Auditing, Lifecycle, Revocations};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::LocalError;
use crate::clock::LocalClock;
use crate::issuer::{Claims, DevIssuer};
use crate::provision::{StackConfig, provision};
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

/// Every handler's dependencies, built from the stack's environment like Lambda would.
struct Functions {
    revocation: Revocations,
    inactivity: inactivity_check::Deps<LocalWorkflows>,
    hr_webhook: hr_webhook::Deps<lapse_aws::eventbridge::EventBridgeBus>,
    intake: intake::Deps<LocalWorkflows>,
    approval: approval::Deps<LocalWorkflows>,
    grants_api: grants_api::Deps,
    lifecycle: Lifecycle,
    notify: notify::Deps,
    sweeper: sweeper::Deps<LocalWorkflows>,
}

struct HostState {
    functions: Functions,
    issuer: Arc<DevIssuer>,
    faults: Arc<Faults>,
    prefix: String,
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

impl LocalStack {
    /// Provisions the stack against the AWS endpoint in `sdk` and starts the host.
    pub async fn start(sdk: SdkConfig, options: StackOptions) -> Result<Self, LocalError> {
        let catalog =
            lapse_lambda::bundled_catalog().map_err(lapse_lambda::wiring::InitError::from)?;
        let config = provision(&sdk, &options.prefix, &catalog).await?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let env = config.env();
        let clock = Arc::new(LocalClock::default());
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let workflows = LocalWorkflows::new(
            wiring::workflows(&env, &sdk).map_err(lapse_lambda::wiring::InitError::from)?,
            "grant-lifecycle.asl.json",
            url.clone(),
            config.substitutions(),
            options.run,
        );
        let revocations = LocalWorkflows::new(
            lapse_aws::sfn::SfnWorkflowStarter::new(
                aws_sdk_sfn::Client::new(&sdk),
                &config.revocation_state_machine_arn,
            ),
            "revocation.asl.json",
            url.clone(),
            config.substitutions(),
            options.run,
        );
        let issuer = Arc::new(match options.issuer {
            Some(issuer) => issuer,
            None => DevIssuer::generate()?,
        });
        let faults = Arc::new(Faults::default());
        let cfg = |e: lapse_lambda::config::ConfigError| LocalError::Init(e.into());
        let functions = Functions {
            intake: lapse_lambda::wiring::RequestApi {
                store: wiring::request_store(&env, &sdk).map_err(cfg)?,
                controls: wiring::controls(&env, &sdk).map_err(cfg)?,
                auditing: Auditing::from_env(&env, &sdk).await?,
                notifier: wiring::notifier(&env, &sdk).map_err(cfg)?,
                workflows: workflows.clone(),
                clock: dyn_clock.clone(),
            },
            approval: lapse_lambda::wiring::RequestApi {
                store: wiring::request_store(&env, &sdk).map_err(cfg)?,
                controls: wiring::controls(&env, &sdk).map_err(cfg)?,
                auditing: Auditing::from_env(&env, &sdk).await?,
                notifier: wiring::notifier(&env, &sdk).map_err(cfg)?,
                workflows: workflows.clone(),
                clock: dyn_clock.clone(),
            },
            grants_api: grants_api::Deps {
                store: wiring::request_store(&env, &sdk).map_err(cfg)?,
                ledger: wiring::ledger(&env, &sdk).map_err(cfg)?,
                directory: wiring::directory(&sdk),
                auditing: Auditing::from_env(&env, &sdk).await?,
                clock: dyn_clock.clone(),
            },
            lifecycle: lifecycle_deps(&env, &sdk, dyn_clock.clone()).await?,
            notify: notify::Deps {
                store: wiring::request_store(&env, &sdk).map_err(cfg)?,
                notifier: wiring::notifier(&env, &sdk).map_err(cfg)?,
                auditing: Auditing::from_env(&env, &sdk).await?,
                clock: dyn_clock.clone(),
            },
            revocation: revocations_deps(&env, &sdk, dyn_clock.clone()).await?,
            inactivity: inactivity_check::Deps {
                revocations: revocations_deps(&env, &sdk, dyn_clock.clone()).await?,
                iam: aws_sdk_iam::Client::new(&sdk),
                workflows: revocations.clone(),
            },
            hr_webhook: hr_webhook::Deps {
                secrets: hr_webhook::SecretSource::from_secrets_manager(
                    aws_sdk_secretsmanager::Client::new(&sdk),
                    config.webhook_secret_id.clone(),
                ),
                claims: lapse_aws::revocations::DynamoDbRevocations::new(
                    aws_sdk_dynamodb::Client::new(&sdk),
                    &config.revocations_table,
                ),
                bus: lapse_aws::eventbridge::EventBridgeBus::new(
                    aws_sdk_eventbridge::Client::new(&sdk),
                    &config.event_bus,
                ),
                clock: dyn_clock.clone(),
            },
            sweeper: sweeper::Deps {
                lifecycle: lifecycle_deps(&env, &sdk, dyn_clock.clone()).await?,
                notifier: wiring::notifier(&env, &sdk).map_err(cfg)?,
                workflows: workflows.clone(),
            },
        };
        let state = Arc::new(HostState {
            functions,
            issuer: issuer.clone(),
            faults: faults.clone(),
            prefix: options.prefix.clone(),
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
            server,
            router,
        })
    }

    /// A fresh token for a person (valid one hour).
    pub fn token(
        &self,
        user: &str,
        groups: &[&str],
        employment: &str,
    ) -> Result<String, LocalError> {
        self.issuer
            .mint(user, groups, employment, TimeDelta::hours(1))
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

/// What the lifecycle functions share, on the stack's clock.
async fn lifecycle_deps(
    env: &lapse_lambda::config::Env,
    sdk: &SdkConfig,
    clock: Arc<dyn Clock>,
) -> Result<Lifecycle, LocalError> {
    let cfg = |e: lapse_lambda::config::ConfigError| LocalError::Init(e.into());
    Ok(Lifecycle {
        store: wiring::request_store(env, sdk).map_err(cfg)?,
        ledger: wiring::ledger(env, sdk).map_err(cfg)?,
        directory: wiring::directory(sdk),
        auditing: Auditing::from_env(env, sdk).await?,
        clock,
    })
}

/// The revocation function's dependencies, on the stack's clock.
async fn revocations_deps(
    env: &lapse_lambda::config::Env,
    sdk: &SdkConfig,
    clock: Arc<dyn Clock>,
) -> Result<Revocations, LocalError> {
    let cfg = |e: lapse_lambda::config::ConfigError| LocalError::Init(e.into());
    Ok(Revocations {
        table: lapse_aws::revocations::DynamoDbRevocations::new(
            aws_sdk_dynamodb::Client::new(sdk),
            env.required(wiring::vars::REVOCATIONS_TABLE).map_err(cfg)?,
        ),
        lifecycle: lifecycle_deps(env, sdk, clock).await?,
        notifier: wiring::notifier(env, sdk).map_err(cfg)?,
    })
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
    match function.as_str() {
        "grant" => call(&body, |e| grant::handler(&f.lifecycle, e)).await,
        "revoke" => call(&body, |e| revoke::handler(&f.lifecycle, e)).await,
        "verify" => call(&body, |e| verify::handler(&f.lifecycle, e)).await,
        "ttl-backstop" => call(&body, |e| ttl_backstop::handler(&f.lifecycle, e)).await,
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

/// The HR webhook route: no JWT authorizer (HR systems authenticate with the
/// bearer token and HMAC signature the handler checks), as in the template.
async fn webhook(
    state: &HostState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header_map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_owned(),
                serde_json::Value::String(v.to_str().ok()?.to_owned()),
            ))
        })
        .collect();
    let now = chrono::Utc::now();
    let event = serde_json::json!({
        "version": "2.0", "routeKey": "POST /api/v1/webhooks/hr-events", "rawPath": uri.path(), "rawQueryString": "",
        "headers": header_map,
        "requestContext": {
            "accountId": crate::provision::ACCOUNT, "apiId": "lapse-local", "domainName": "localhost", "domainPrefix": "localhost",
            "http": { "method": method.as_str(), "path": uri.path(), "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "hr-system" },
            "requestId": format!("local-{}", now.timestamp_nanos_opt().unwrap_or_default()),
            "routeKey": "POST /api/v1/webhooks/hr-events", "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(), "timeEpoch": now.timestamp_millis()
        },
        "body": String::from_utf8_lossy(&body),
        "isBase64Encoded": false
    });
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(request) => request,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
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
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let mut query_params = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query_params.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
    }
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
            "authorizer": { "jwt": { "claims": claim_strings(&claims), "scopes": null } }
        },
        "body": String::from_utf8_lossy(&body),
        "isBase64Encoded": false
    });
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(request) => request,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
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
