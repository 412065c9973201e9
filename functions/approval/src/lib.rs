//! # approval
//!
//! `POST /v1/requests/{id}/decisions` `{decision: "approve"|"deny", comment}`.
//! The approver is the authenticated caller; the rules (no self-approval, distinct
//! approvers per slot, any deny ends it, nothing after the deadline) are the core's.
//! Racing decisions are settled by DynamoDB conditional writes. Neither a revoked
//! approver nor a revoked requester's request gets a decision (403). When the route is
//! satisfied, the grant workflow starts, named for the request, so exactly once.

use std::convert::Infallible;

use lambda_http::{Body, Request, Response};
use lapse_core::identity::Principal;
use lapse_core::ports::WorkflowStarter;
use lapse_core::request::{RequestId, Verdict};
use lapse_core::usecase::Outbox;
use lapse_core::usecase::decide::{Decision, decide};
use lapse_lambda::HandlerError;
use lapse_lambda::http::{self, json, json_body};
use serde::Deserialize;

/// What the handler needs, built once at init (shared with the other request API).
pub type Deps<W> = lapse_lambda::wiring::RequestApi<W>;

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
    Ok(
        http::respond(request, &deps.auditing.catalog, |who, request| async move {
            route(deps, &who, &request).await
        })
        .await,
    )
}

async fn route<W: WorkflowStarter>(
    deps: &Deps<W>,
    who: &Principal,
    request: &Request,
) -> Result<Response<Body>, HandlerError> {
    lapse_core::revocation::usecase::ensure_not_revoked(&deps.controls, who.id()).await?;
    let segments = http::segments(request);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let ("POST", ["v1", "requests", id, "decisions"]) =
        (request.method().as_str(), segments.as_slice())
    else {
        return Ok(http::no_route(request));
    };
    let body: DecisionBody = json_body(request)?;
    let decision = Decision {
        request_id: RequestId::parse(id).map_err(|e| HandlerError::BadEvent(e.to_string()))?,
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
