//! # approval
//!
//! `POST /v1/requests/{id}/decisions` `{decision: "approve"|"deny", comment}`.
//! The approver is the authenticated caller; the rules (no self-approval, distinct
//! approvers per slot, any deny ends it, nothing after the deadline) are the core's.
//! Racing decisions are settled by DynamoDB conditional writes. Neither a revoked
//! approver nor a revoked requester's request gets a decision (403). When the route is
//! satisfied, the grant workflow starts, named for the request, so exactly once.
//!
//! `POST /v1/break-glass/{id}/reviews` `{finding: "justified"|"unjustified", note}`:
//! the post-facto review of a break-glass use, one reviewer per review group, never
//! the requester. `unjustified` opens a security incident on the event bus and
//! alerts security.

use std::convert::Infallible;

use aws_config::SdkConfig;
use lambda_http::{Body, Request, Response};
use lapse_aws::eventbridge::EventBridgeBus;
use lapse_aws::sfn::SfnWorkflowStarter;
use lapse_core::access::breakglass::{Finding, ReviewOutcome};
use lapse_core::access::request::{RequestId, Verdict};
use lapse_core::access::usecase::Outbox;
use lapse_core::access::usecase::breakglass;
use lapse_core::access::usecase::decide::{Decision, decide};
use lapse_core::identity::Principal;
use lapse_core::ports::WorkflowStarter;
use lapse_lambda::HandlerError;
use lapse_lambda::config::Env;
use lapse_lambda::http::{self, json, json_body};
use lapse_lambda::metrics;
use lapse_lambda::wiring::{InitError, RequestApi, vars};
use serde::Deserialize;

/// What the handler needs, built once at init: the request API (shared with
/// intake) and the bus incidents go to.
#[derive(Debug)]
pub struct Deps<W> {
    pub api: RequestApi<W>,
    pub incidents: EventBridgeBus,
}

impl Deps<SfnWorkflowStarter> {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        Ok(Self {
            api: RequestApi::from_env(env, sdk).await?,
            incidents: EventBridgeBus::new(
                lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::eventbridge),
                env.required(vars::EVENT_BUS)?,
            ),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    finding: Finding,
    #[serde(default)]
    note: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: Verdict,
    #[serde(default)]
    comment: String,
}

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
    let parse = |id: &str| RequestId::parse(id).map_err(|e| HandlerError::BadEvent(e.to_string()));
    let id = match (request.method().as_str(), segments.as_slice()) {
        ("POST", ["v1", "requests", id, "decisions"]) => parse(id)?,
        ("POST", ["v1", "break-glass", id, "reviews"]) => {
            let body: ReviewBody = json_body(request)?;
            let (reviewed, outcome) = breakglass::review(
                &deps.store,
                &deps.auditing.trail(),
                &deps.notifier,
                &all.incidents,
                who,
                &parse(id)?,
                body.finding,
                &body.note,
                deps.clock.now(),
            )
            .await?;
            if outcome == ReviewOutcome::Unjustified {
                metrics::emit(
                    &[("Path", "break-glass")],
                    &[("BreakGlassIncidents", 1.0, "Count")],
                );
            }
            return Ok(json(
                200,
                &serde_json::json!({ "outcome": outcome, "request": reviewed }),
            ));
        }
        _ => return Ok(http::no_route(request)),
    };
    let body: DecisionBody = json_body(request)?;
    let decision = Decision {
        request_id: id,
        verdict: body.decision,
        comment: body.comment,
    };
    let outbox = Outbox {
        notifier: &deps.notifier,
        workflows: &deps.workflows,
    };
    let (request, outcome) = decide(
        &deps.store,
        &deps.controls,
        &deps.auditing.trail(),
        &outbox,
        who,
        &decision,
        deps.clock.now(),
    )
    .await?;
    Ok(json(
        200,
        &serde_json::json!({ "outcome": outcome, "request": request }),
    ))
}
