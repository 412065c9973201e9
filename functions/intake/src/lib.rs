//! # intake
//!
//! The requester's HTTP API:
//! - `POST /v1/requests` `{resource, duration?, justification, ticket?}` → 201
//! - `GET /v1/requests/{id}`, `GET /v1/requests?mine`, `GET /v1/requests?pending-my-approval`
//! - `POST /v1/requests/{id}/cancel`
//! - `GET /v1/grants` (my active grants), `POST /v1/grants/{id}/extend` `{duration, justification}`
//! - `POST /v1/break-glass` `{resource, duration?, reason, ticket?}` → 201: granted at
//!   once (up to the policy's cap; longer is refused), security told, the
//!   justification timeline started
//! - `POST /v1/break-glass/{id}/justification` `{justification}`: the requester's account
//! - `POST /v1/vendors` `{vendor: {id, email}, resource, duration?, justification,
//!   project}` → 201: vendor access sponsored by the caller, routed to two approvers
//!

//! Who is asking comes from the JWT claims API Gateway verified, never from the body;
//! a body naming anyone (`requester`, `user`, ...) is rejected as an unknown field.

use std::convert::Infallible;

use aws_config::SdkConfig;
use lambda_http::{Body, Request, RequestExt, Response};
use lapse_aws::sfn::SfnWorkflowStarter;
use lapse_core::access::request::{NewRequest, RequestId, Status};
use lapse_core::access::usecase::Outbox;
use lapse_core::access::usecase::intake::{self, ExtensionAsk};
use lapse_core::access::usecase::{breakglass, vendor};
use lapse_core::access::vendor::VendorAsk;
use lapse_core::duration::Span;
use lapse_core::identity::Principal;
use lapse_core::ports::{RequestQueries, WorkflowStarter};
use lapse_lambda::HandlerError;
use lapse_lambda::config::Env;
use lapse_lambda::http::{self, json, json_body};
use lapse_lambda::metrics;
use lapse_lambda::wiring::{InitError, RequestApi};
use serde::Deserialize;

/// The break-glass justification timeline's state machine.
pub const BREAK_GLASS_STATE_MACHINE: &str = "LAPSE_BREAK_GLASS_STATE_MACHINE_ARN";

/// What the handler needs, built once at init: the request API (shared with
/// approval) and the break-glass timeline's starter.
#[derive(Debug)]
pub struct Deps<W> {
    pub api: RequestApi<W>,
    pub timelines: W,
}

impl Deps<SfnWorkflowStarter> {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        Ok(Self {
            api: RequestApi::from_env(env, sdk).await?,
            timelines: SfnWorkflowStarter::new(
                lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::sfn),
                env.required(BREAK_GLASS_STATE_MACHINE)?,
            ),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakGlassBody {
    resource: String,
    #[serde(default)]
    duration: Option<String>,
    /// The emergency: why the glass is broken now.
    reason: String,
    #[serde(default)]
    ticket: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorBody {
    vendor: VendorAsk,
    resource: String,
    #[serde(default)]
    duration: Option<String>,
    justification: String,
    /// The project the vendor works on (a ticket-like reference).
    project: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JustificationBody {
    justification: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    resource: String,
    #[serde(default)]
    duration: Option<String>,
    justification: String,
    #[serde(default)]
    ticket: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    duration: String,
    justification: String,
}

fn span(text: &str) -> Result<Span, HandlerError> {
    text.parse()
        .map_err(|e: lapse_core::duration::DurationError| HandlerError::BadEvent(e.to_string()))
}

fn request_id(segment: &str) -> Result<RequestId, HandlerError> {
    RequestId::parse(segment).map_err(|e| HandlerError::BadEvent(e.to_string()))
}

/// The Lambda entry point: every outcome is an HTTP response.
#[tracing::instrument(skip_all, fields(method = %request.method(), path = %request.uri().path()))]
pub async fn handler<W: WorkflowStarter>(
    deps: &Deps<W>,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    Ok(http::respond(
        request,
        &deps.api.auditing.catalog,
        |who, request| async move { route(deps, &who, &request).await },
    )
    .await)
}

async fn route<W: WorkflowStarter>(
    all: &Deps<W>,
    who: &Principal,
    request: &Request,
) -> Result<Response<Body>, HandlerError> {
    let deps = &all.api;
    lapse_core::revocation::usecase::ensure_not_revoked(&deps.controls, who.id()).await?;
    let segments = http::segments(request);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let now = deps.clock.now();
    let catalog = &deps.auditing.catalog;
    let trail = deps.auditing.trail();
    let outbox = Outbox {
        notifier: &deps.notifier,
        workflows: &deps.workflows,
    };
    let method = request.method().as_str();
    match (method, segments.as_slice()) {
        ("POST", ["v1", "requests"]) => {
            let body: SubmitBody = json_body(request)?;
            let input = NewRequest {
                resource: body.resource,
                duration: body.duration.as_deref().map(span).transpose()?,
                justification: body.justification,
                ticket: body.ticket,
            };
            let created =
                intake::submit(&deps.store, &trail, &outbox, catalog, who, input, now).await?;
            Ok(json(201, &created))
        }
        ("GET", ["v1", "requests"]) => {
            let query = request.query_string_parameters();
            let list = if query.first("pending-my-approval").is_some()
                || query.first("view") == Some("pending")
            {
                intake::pending_for(&deps.store, who).await?
            } else {
                deps.store
                    .by_requester(who.id())
                    .await
                    .map_err(lapse_core::Error::from)?
            };
            Ok(json(200, &serde_json::json!({ "requests": list })))
        }
        ("GET", ["v1", "requests", id]) => {
            let found = intake::view(&deps.store, catalog, who, &request_id(id)?).await?;
            Ok(json(200, &found))
        }
        ("POST", ["v1", "requests", id, "cancel"]) => {
            let cancelled =
                intake::cancel(&deps.store, &trail, catalog, who, &request_id(id)?, now).await?;
            Ok(json(200, &cancelled))
        }
        ("GET", ["v1", "grants"]) => {
            let grants: Vec<_> = deps
                .store
                .by_requester(who.id())
                .await
                .map_err(lapse_core::Error::from)?
                .into_iter()
                .filter(|r| r.status() == Status::Active && r.extends().is_none())
                .collect();
            Ok(json(200, &serde_json::json!({ "grants": grants })))
        }
        ("POST", ["v1", "grants", id, "extend"]) => {
            let body: ExtendBody = json_body(request)?;
            let ask = ExtensionAsk {
                grant_id: request_id(id)?,
                extra: span(&body.duration)?,
                justification: body.justification,
            };
            let extension =
                intake::extend(&deps.store, &trail, &outbox, catalog, who, ask, now).await?;
            Ok(json(201, &extension))
        }
        ("POST", ["v1", "break-glass"]) => {
            let body: BreakGlassBody = json_body(request)?;
            let input = NewRequest {
                resource: body.resource,
                duration: body.duration.as_deref().map(span).transpose()?,
                justification: body.reason,
                ticket: body.ticket,
            };
            let granted = breakglass::declare(
                &deps.store,
                &trail,
                &outbox,
                &all.timelines,
                catalog,
                who,
                input,
                now,
            )
            .await?;
            metrics::emit(
                &[("Path", "break-glass")],
                &[("BreakGlassUses", 1.0, "Count")],
            );
            Ok(json(201, &granted))
        }
        ("POST", ["v1", "vendors"]) => {
            let body: VendorBody = json_body(request)?;
            let input = NewRequest {
                resource: body.resource,
                duration: body.duration.as_deref().map(span).transpose()?,
                justification: body.justification,
                ticket: Some(body.project),
            };
            let sponsored = vendor::sponsor(
                &deps.store,
                &trail,
                &outbox,
                catalog,
                who,
                input,
                &body.vendor,
                now,
            )
            .await?;
            Ok(json(201, &sponsored))
        }
        ("POST", ["v1", "break-glass", id, "justification"]) => {
            let body: JustificationBody = json_body(request)?;
            let justified = breakglass::justify(
                &deps.store,
                &trail,
                who,
                &request_id(id)?,
                &body.justification,
                now,
            )
            .await?;
            Ok(json(200, &justified))
        }
        _ => Ok(http::no_route(request)),
    }
}
