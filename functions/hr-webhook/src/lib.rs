//! # hr-webhook
//!
//! `POST /api/v1/webhooks/hr-events`, called by HR systems (no JWT: its own
//! authentication). In order, before any work on the body:
//! 0. the source address, when the stack lists the HR sender's networks
//!    (`HrSenderNetworks`): anyone else is refused (403) before a secret is read;
//! 1. size (256 KiB, 413), bearer token and Standard-Webhooks HMAC over
//!    `<webhook-id>.<webhook-timestamp>.<body>` with a 5-minute window, all compared
//!    in constant time against the current and previous secrets (401);
//! 2. the payload, validated with a precise message (400);
//! 3. the event id claimed: a replay is acknowledged (200) without re-processing, a
//!    different body under a seen id is refused (409);
//! 4. the normalized event put on the EventBridge bus (202).
//!
//! If its credentials cannot be read it answers 503 with `Retry-After` (the sender
//! retries; a 4xx would make it give up), naming neither the secret nor the error.
//!
//! Logs carry event ids and types, never bodies, tokens or signatures.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use lambda_http::{Body, Request, RequestExt, Response};
use lapse_aws::eventbridge::EventBridgeBus;
use lapse_aws::revocations::DynamoDbRevocations;
use lapse_core::ports::Clock;
use lapse_core::revocation::hr::HrEvent;
use lapse_core::revocation::ports::EventBus;
use lapse_core::revocation::usecase::{Receipt, receive};
use lapse_core::revocation::webhook::{
    SenderNetworks, WebhookHeaders, WebhookSecrets, authenticate,
};
use lapse_lambda::HandlerError;
use lapse_lambda::config::Env;
use lapse_lambda::http::json;
use lapse_lambda::wiring::{self, InitError, vars};
use tokio::sync::RwLock;

/// How long loaded secrets are trusted before they are read again (rotation).
pub const SECRET_REFRESH: Duration = Duration::from_secs(300);

/// The webhook credentials, re-read from Secrets Manager every few minutes so a
/// rotation takes effect without a deployment.
#[derive(Debug)]
pub struct SecretSource {
    client: Option<lapse_aws::sdk::Lazy<aws_sdk_secretsmanager::Client>>,
    secret_id: String,
    cached: RwLock<Option<(Instant, WebhookSecrets)>>,
}

impl SecretSource {
    pub fn from_secrets_manager(
        client: impl Into<lapse_aws::sdk::Lazy<aws_sdk_secretsmanager::Client>>,
        secret_id: String,
    ) -> Self {
        Self {
            client: Some(client.into()),
            secret_id,
            cached: RwLock::new(None),
        }
    }

    /// The current credentials. An error is logged here with its detail (the
    /// secret's id, the service's answer); callers answer without it.
    async fn get(&self) -> Result<WebhookSecrets, SecretsUnavailable> {
        if let Some((at, secrets)) = self.cached.read().await.as_ref()
            && at.elapsed() < SECRET_REFRESH
        {
            return Ok(secrets.clone());
        }
        let Some(client) = &self.client else {
            return Ok(WebhookSecrets::default());
        };
        let secrets = lapse_aws::secrets::load_webhook_secrets(client, &self.secret_id)
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "webhook credentials cannot be read");
                SecretsUnavailable
            })?;
        *self.cached.write().await = Some((Instant::now(), secrets.clone()));
        Ok(secrets)
    }
}

/// The webhook credentials could not be read (Secrets Manager unreachable,
/// throttled, the secret missing or not readable by this function's role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretsUnavailable;

/// The HR sender's networks: comma-separated CIDR blocks (empty: any source).
pub const SENDER_NETWORKS: &str = "LAPSE_HR_SENDER_NETWORKS";

#[derive(Debug)]
pub struct Deps<B> {
    pub secrets: SecretSource,
    /// Where HR events may come from, checked first.
    pub networks: SenderNetworks,
    pub claims: DynamoDbRevocations,
    pub bus: B,
    pub clock: Arc<dyn Clock>,
}

impl Deps<EventBridgeBus> {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        Ok(Self {
            secrets: SecretSource::from_secrets_manager(
                lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::secretsmanager),
                env.required(vars::WEBHOOK_SECRET)?,
            ),
            networks: SenderNetworks::parse(&env.optional(SENDER_NETWORKS).unwrap_or_default())
                .map_err(|reason| {
                    InitError::Config(lapse_lambda::config::ConfigError::Invalid {
                        name: SENDER_NETWORKS,
                        reason,
                    })
                })?,
            claims: DynamoDbRevocations::new(
                lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::dynamodb),
                env.required(vars::REVOCATIONS_TABLE)?,
            ),
            bus: EventBridgeBus::new(
                lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::eventbridge),
                env.required(vars::EVENT_BUS)?,
            ),
            clock: wiring::system_clock(),
        })
    }
}

fn refuse(status: u16, name: &str, message: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "error": name, "message": message }),
    )
}

#[tracing::instrument(skip_all)]
pub async fn handler<B: EventBus>(
    deps: &Deps<B>,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    if request.method() != "POST"
        || request.uri().path().trim_end_matches('/') != "/api/v1/webhooks/hr-events"
    {
        return Ok(refuse(404, "Lapse.NotFound", "no such route"));
    }
    let source = match request.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => {
            ctx.http.source_ip.as_deref()
        }
        _ => None,
    };
    if !deps.networks.admits(source) {
        tracing::warn!(
            source = source.unwrap_or("unknown"),
            "refused: not from an HR sender network"
        );
        return Ok(refuse(
            403,
            "Lapse.Forbidden",
            "this address is not one of the HR sender's networks",
        ));
    }
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let headers = WebhookHeaders {
        authorization: header("authorization"),
        webhook_id: header("webhook-id"),
        webhook_timestamp: header("webhook-timestamp"),
        webhook_signature: header("webhook-signature"),
    };
    let body: &[u8] = request.body().as_ref();
    let now = deps.clock.now();
    // 503, not 4xx: the sender did nothing wrong and must retry (HR systems do not
    // retry a 4xx). The body names no secret and no service error.
    let secrets = match deps.secrets.get().await {
        Ok(secrets) => secrets,
        Err(SecretsUnavailable) => {
            let mut response = refuse(
                503,
                "Lapse.Unavailable",
                "the webhook cannot check credentials right now; retry later",
            );
            response.headers_mut().insert(
                "retry-after",
                lambda_http::http::HeaderValue::from_static("30"),
            );
            return Ok(response);
        }
    };
    if let Err(err) = authenticate(&secrets, &headers, body, now) {
        tracing::warn!(reason = %err, "webhook call refused");
        let name = match err.status() {
            413 => lapse_lambda::error::names::TOO_LARGE,
            500 => "Lapse.Configuration",
            _ => "Lapse.Unauthenticated",
        };
        return Ok(refuse(err.status(), name, &err.to_string()));
    }
    let event = match HrEvent::parse(body) {
        Ok(event) => event,
        Err(err) => return Ok(refuse(400, "Lapse.Validation", &err.to_string())),
    };
    tracing::info!(event_id = %event.event_id, event_type = event.event_type.as_str(), "HR event authenticated");
    Ok(
        match receive(&deps.claims, &deps.bus, &event, body, now).await {
            Ok(Receipt::Accepted) => json(
                202,
                &serde_json::json!({ "status": "accepted", "event_id": event.event_id }),
            ),
            Ok(Receipt::AlreadyAccepted) => json(
                200,
                &serde_json::json!({ "status": "already_accepted", "event_id": event.event_id }),
            ),
            Err(err) => lapse_lambda::http::error(&HandlerError::from(err)),
        },
    )
}
