//! # operator
//!
//! The operators' API, behind API Gateway's IAM authorizer: the caller signs with
//! SigV4 and needs an IAM policy allowing `execute-api:Invoke` on
//! `/v1/operator/*` (the stack's `OperatorAccessPolicy`). The executor audited for
//! everything below is the principal AWS authenticated, read from the request
//! context; no body names who acts. Only the stack's listed operators may call
//! (`OperatorArns`, [`ask::Operators`]: an IAM user, or a role's sessions; 403
//! for anyone else whatever their IAM policy allows), and nobody acts on their own access (a
//! revocation, hold, override, postponement or restore of the caller's own user
//! is refused, 403). The stack does the work with its own roles,
//! so operators need no IAM or KMS permissions of their own.
//!
//! | Route | Does |
//! |---|---|
//! | `POST /v1/operator/revocations` | open a case for a [`RevokeAsk`]; start its workflow now, or schedule it (202) |
//! | `POST /v1/operator/revocations/plan` | what that ask would change now; changes nothing |
//! | `GET /v1/operator/cases/{id}` | one case |
//! | `GET /v1/operator/users/{user}` | what IAM holds for the user, their controls and cases |
//! | `POST /v1/operator/users/{user}/verify` | read IAM again for their latest case: verified, no such user, or the residue (audited; security alerted on access back behind a finished case) |
//! | `POST /v1/operator/users/{user}/controls` | set or clear a legal hold or override; a cleared override resumes held cases; setting an override takes two operators (202 until the second makes the same call) |
//! | `POST /v1/operator/users/{user}/postponements` | postpone not-yet-effective cases, with an approval |
//! | `POST /v1/operator/users/{user}/restores` | restore from the archived before-state, with an approval, once a second, different operator makes the same call (202 until then); verified by read-back |

use std::convert::Infallible;

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use lapse_aws::scheduler::RevocationScheduler;
use lapse_aws::sfn::SfnWorkflowStarter;
use lapse_core::Error;
use lapse_core::duration::Span;
use lapse_core::identity::PrincipalId;
use lapse_core::ports::{RequestQueries as _, WorkflowError, WorkflowStarter};
use lapse_core::revocation::case::{CaseId, RevocationCase};
use lapse_core::revocation::operator::{self as ask, RevokeAsk};
use lapse_core::revocation::ports::{
    CaseStore, Controls, IdentityDirectory, Proposal, ProposedChange, UserControls,
};
use lapse_core::revocation::usecase::{self as steps, HasCases, RevocationPorts, SecondOperator};
use lapse_lambda::HandlerError;
use lapse_lambda::config::Env;
use lapse_lambda::http::{self, json};
use lapse_lambda::wiring::{InitError, Revocations, Topic};
use serde::Deserialize;
use serde_json::json;

pub const REVOCATION_STATE_MACHINE: &str = "LAPSE_REVOCATION_STATE_MACHINE_ARN";
pub const SCHEDULER_ROLE: &str = "LAPSE_SCHEDULER_ROLE_ARN";
/// The stack's operators: comma-separated IAM user and role ARNs (the template's
/// `OperatorArns` parameter). Empty admits nobody.
pub const OPERATORS: &str = "LAPSE_OPERATORS";

/// `verify` tells security when a case names a user IAM does not know; the
/// operator tools notify no one else.
pub const TOPICS: &[Topic] = &[Topic::Security];

#[derive(Debug)]
pub struct Deps<W, P = Revocations> {
    /// Every revocation port: the handler is written against the ports alone.
    pub revocations: P,
    /// Starts the revocation workflow.
    pub workflows: W,
    pub scheduler: RevocationScheduler,
    /// Who may call at all: the allow-list, checked before anything else.
    pub operators: ask::Operators,
    /// The directory of people, read by `check-user`.
    pub people: lapse_aws::people::DynamoDbPeople,
}

impl Deps<SfnWorkflowStarter, Revocations> {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        let state_machine = env.required(REVOCATION_STATE_MACHINE)?;
        Ok(Self {
            revocations: Revocations::from_env(env, sdk, TOPICS).await?,
            workflows: SfnWorkflowStarter::new(
                lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::sfn),
                &state_machine,
            ),
            scheduler: RevocationScheduler::new(
                lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::scheduler),
                state_machine,
                env.required(SCHEDULER_ROLE)?,
            ),
            operators: ask::Operators::parse(&env.optional(OPERATORS).unwrap_or_default())
                .map_err(|reason| {
                    InitError::Config(lapse_lambda::config::ConfigError::Invalid {
                        name: OPERATORS,
                        reason,
                    })
                })?,
            people: lapse_lambda::wiring::people(env, sdk)?,
        })
    }
}

#[tracing::instrument(skip_all, fields(method = %request.method(), path = %request.uri().path()))]
pub async fn handler<W: WorkflowStarter, P: RevocationPorts>(
    deps: &Deps<W, P>,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    let executor = match http::iam_caller(&request) {
        Ok(executor) => executor,
        Err(err) => return Ok(http::unauthorized(&err)),
    };
    if let Err(err) = deps.operators.ensure_admitted(&executor) {
        tracing::warn!(%executor, "refused: not on the stack's operator list");
        return Ok(http::error(&HandlerError::Core(err)));
    }
    tracing::info!(%executor, "operator call");
    Ok(route(deps, &executor, &request)
        .await
        .unwrap_or_else(|err| http::error(&err)))
}

/// `POST /v1/operator/users/{user}/controls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlsBody {
    #[serde(default)]
    legal_hold: Option<bool>,
    /// Hold back automated revocation for this reason.
    #[serde(default)]
    r#override: Option<String>,
    #[serde(default)]
    clear_override: bool,
    reason: String,
}

/// `POST /v1/operator/users/{user}/postponements`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostponeBody {
    /// `7d`, `12h`, `PT36H`...
    by: String,
    /// The approval reference.
    reason: String,
}

/// `POST /v1/operator/users/{user}/restores`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    /// The latest snapshot taken at or before this time.
    from_backup: DateTime<Utc>,
    /// The ticket that approved the restore.
    approval: String,
}

fn core(err: impl Into<Error>) -> HandlerError {
    HandlerError::Core(err.into())
}

/// A partial revocation's role: the ask's, or the person's job role of record
/// from the directory of people when the ask names none.
async fn keep_role<W, P>(
    deps: &Deps<W, P>,
    ask: &mut RevokeAsk,
) -> Result<Option<lapse_core::revocation::operator::KeptRole>, HandlerError> {
    if !matches!(
        ask.kind,
        lapse_core::revocation::plan::RevocationKind::Partial { .. }
    ) {
        return Ok(None);
    }
    let user = ask::user(&ask.user).map_err(core)?;
    let record = lapse_core::people::ports::PeopleStore::get(&deps.people, &user)
        .await
        .map_err(core)?;
    ask.keep_role(record.as_ref()).map_err(core)
}

async fn route<W: WorkflowStarter, P: RevocationPorts>(
    deps: &Deps<W, P>,
    executor: &str,
    request: &Request,
) -> Result<Response<Body>, HandlerError> {
    let r = &deps.revocations;
    let now = r.clock().now();
    let segments = http::segments(request);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (request.method().as_str(), segments.as_slice()) {
        ("POST", ["v1", "operator", "revocations", "plan"]) => {
            let mut ask: RevokeAsk = http::json_body(request)?;
            let kept_role = keep_role(deps, &mut ask).await?;
            let case = ask.case(r.catalog(), executor, now)?;
            let preview = steps::preview(r, &case, now).await?;
            Ok(json(
                200,
                &json!({
                    "user": case.user(),
                    "exists": preview.exists,
                    "effective_at": case.effective_at(),
                    "plan": preview.plan,
                    "summary": preview.plan.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "kept_role": kept_role,
                }),
            ))
        }
        ("POST", ["v1", "operator", "revocations"]) => {
            let mut ask: RevokeAsk = http::json_body(request)?;
            let kept_role = keep_role(deps, &mut ask).await?;
            let case = ask.case(r.catalog(), executor, now)?;
            ask::ensure_not_self(executor, case.user())?;
            let case = steps::open(r, case, now).await?;
            if case.effective_at() > now {
                let schedule = deps
                    .scheduler
                    .schedule(case.id(), case.effective_at())
                    .await
                    .map_err(|e| {
                        core(if e.denied {
                            WorkflowError::Denied(Box::new(e))
                        } else {
                            WorkflowError::Unavailable(Box::new(e))
                        })
                    })?;
                return Ok(json(
                    202,
                    &json!({ "case": case, "scheduled": { "at": case.effective_at(), "schedule": schedule }, "kept_role": kept_role }),
                ));
            }
            let execution = ask::start(&deps.workflows, &case).await?;
            Ok(json(
                202,
                &json!({ "case": case, "execution": execution, "kept_role": kept_role }),
            ))
        }
        ("GET", ["v1", "operator", "cases", id]) => {
            let id = CaseId::parse(id).map_err(core)?;
            match r.cases().get(&id).await.map_err(core)? {
                Some(case) => Ok(json(200, &json!({ "case": case }))),
                None => Err(core(Error::NotFound(format!("case {id}")))),
            }
        }
        ("GET", ["v1", "operator", "users", user]) => {
            let user = ask::user(user).map_err(core)?;
            let identity = r.directory().identity(&user, now).await.map_err(core)?;
            let controls = r.controls().controls(&user).await.map_err(core)?;
            let cases = r.cases().cases_of(&user).await.map_err(core)?;
            // What HR last said about them, field by field (none before their
            // first HR event).
            let person = lapse_core::people::ports::PeopleStore::get(&deps.people, &user)
                .await
                .map_err(core)?;
            // The person's grants live now: what Lapse itself has given them.
            let grants: Vec<serde_json::Value> = r
                .grants()
                .store
                .by_requester(&user)
                .await
                .map_err(core)?
                .into_iter()
                .filter(|g| {
                    g.status() == lapse_core::access::request::Status::Active
                        && g.grantee() == &user
                })
                .map(|g| {
                    json!({
                        "id": g.id(),
                        "resource": g.resource(),
                        "until": g.window().map(|w| w.expires_at),
                    })
                })
                .collect();
            Ok(json(
                200,
                &json!({ "user": user, "identity": identity, "controls": controls, "cases": cases, "grants": grants, "person": person }),
            ))
        }
        ("POST", ["v1", "operator", "users", user, "verify"]) => {
            let user = ask::user(user).map_err(core)?;
            let latest = latest_case(deps, &user).await?;
            let report = steps::reverify(r, latest.id(), executor, now).await?;
            Ok(json(200, &report))
        }
        ("POST", ["v1", "operator", "users", user, "controls"]) => {
            let user = ask::user(user).map_err(core)?;
            ask::ensure_not_self(executor, &user)?;
            let body: ControlsBody = http::json_body(request)?;
            controls(deps, executor, &user, body, now).await
        }
        ("POST", ["v1", "operator", "users", user, "postponements"]) => {
            let user = ask::user(user).map_err(core)?;
            ask::ensure_not_self(executor, &user)?;
            let body: PostponeBody = http::json_body(request)?;
            let by: Span = body
                .by
                .parse()
                .map_err(|e| HandlerError::BadEvent(format!("`by`: {e}")))?;
            let approval = ask::reason("reason", &body.reason).map_err(core)?;
            let moved = steps::postpone(r, &user, by.delta(), &approval, executor, now).await?;
            if moved.is_empty() {
                return Err(core(Error::NotFound(format!(
                    "a revocation of {user} that is not yet effective"
                ))));
            }
            Ok(json(200, &json!({ "postponed": moved })))
        }
        ("POST", ["v1", "operator", "users", user, "restores"]) => {
            let user = ask::user(user).map_err(core)?;
            ask::ensure_not_self(executor, &user)?;
            let body: RestoreBody = http::json_body(request)?;
            let approval = ask::reason("approval", &body.approval).map_err(core)?;
            let change = ProposedChange::Restore {
                from_backup: body.from_backup,
                approval: approval.clone(),
            };
            match steps::propose_or_confirm(r, &user, change, executor, now).await? {
                SecondOperator::Proposed(proposal) => Ok(proposed(&user, &proposal)),
                SecondOperator::Confirmed(proposal) => {
                    let approval = format!(
                        "{approval}; proposed by {}, confirmed by {executor}",
                        proposal.proposed_by
                    );
                    let restored =
                        steps::restore(r, &user, body.from_backup, &approval, executor, now)
                            .await?;
                    Ok(json(
                        200,
                        &json!({ "user": user, "restored": restored.restored, "left_out": restored.left_out }),
                    ))
                }
            }
        }
        _ => Ok(http::no_route(request)),
    }
}

/// 202: stored as a proposal, waiting for a second, different operator.
fn proposed(user: &PrincipalId, proposal: &Proposal) -> Response<Body> {
    json(
        202,
        &json!({
            "user": user,
            "proposed": proposal,
            "needs": "a second, different operator to make the same call",
            "until": (proposal.at + steps::PROPOSAL_LIFETIME)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }),
    )
}

async fn latest_case<W, P: HasCases>(
    deps: &Deps<W, P>,
    user: &PrincipalId,
) -> Result<RevocationCase, HandlerError> {
    deps.revocations
        .cases()
        .cases_of(user)
        .await
        .map_err(core)?
        .into_iter()
        .max_by_key(|c| c.created_at())
        .ok_or_else(|| core(Error::NotFound(format!("a revocation case for {user}"))))
}

async fn controls<W: WorkflowStarter, P: RevocationPorts>(
    deps: &Deps<W, P>,
    executor: &str,
    user: &PrincipalId,
    body: ControlsBody,
    now: DateTime<Utc>,
) -> Result<Response<Body>, HandlerError> {
    let r = &deps.revocations;
    if body.clear_override && body.r#override.is_some() {
        return Err(HandlerError::BadEvent(
            "`override` and `clear_override` cannot both be given".into(),
        ));
    }
    if body.legal_hold.is_none() && body.r#override.is_none() && !body.clear_override {
        return Err(HandlerError::BadEvent(
            "nothing to change: give `legal_hold`, `override` or `clear_override`".into(),
        ));
    }
    if body.r#override.is_some() && body.legal_hold.is_some() {
        return Err(HandlerError::BadEvent(
            "an override needs a second operator; set `legal_hold` in a call of its own".into(),
        ));
    }
    let reason = ask::reason("reason", &body.reason).map_err(core)?;
    let override_reason = match (&body.r#override, body.clear_override) {
        (Some(text), _) => Some(Some(ask::reason("override", text).map_err(core)?)),
        (None, true) => Some(None),
        (None, false) => None,
    };
    // Holding back revocations (a termination among them) takes two operators;
    // clearing an override or a legal hold takes one.
    if let Some(Some(text)) = &override_reason {
        let change = ProposedChange::Override {
            reason: text.clone(),
        };
        if let SecondOperator::Proposed(proposal) =
            steps::propose_or_confirm(r, user, change, executor, now).await?
        {
            return Ok(proposed(user, &proposal));
        }
    }
    let controls = steps::set_controls(
        r,
        user,
        |c: &mut Controls| {
            if let Some(on) = body.legal_hold {
                c.legal_hold = on;
            }
            if let Some(value) = &override_reason {
                c.override_reason = value.clone();
            }
        },
        &reason,
        executor,
        now,
    )
    .await?;
    // Held cases resume in the workflow, which waits for their time again.
    let resumed = if body.clear_override {
        steps::resume_held(r, &deps.workflows, user).await?
    } else {
        Vec::new()
    };
    Ok(json(
        200,
        &json!({ "user": user, "controls": controls, "resumed": resumed }),
    ))
}
