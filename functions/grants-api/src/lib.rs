//! # grants-api
//!
//! `POST /v1/grants/{id}/revoke`: end a grant now. The holder, the resource's owners
//! and its approvers may do it, unless Lapse has revoked their own access (403). Revokes, then verifies against IAM before answering;
//! the grant's running workflow later finds it revoked and verifies again, harmlessly.

use std::convert::Infallible;
use std::sync::Arc;

use aws_config::SdkConfig;
use lambda_http::{Body, Request, Response};
use lapse_aws::dynamodb::{DynamoDbLedger, DynamoDbRequestStore};
use lapse_aws::iam::IamDirectory;
use lapse_aws::leases::DynamoDbLeases;
use lapse_aws::vault::SecretsManagerVault;
use lapse_core::access::request::RequestId;
use lapse_core::access::usecase::checkout::check_in;
use lapse_core::access::usecase::lifecycle::{Grants, revoke_now};
use lapse_core::identity::Principal;
use lapse_core::ports::Clock;
use lapse_core::ports::RequestStore;
use lapse_lambda::HandlerError;
use lapse_lambda::config::Env;
use lapse_lambda::http::{self, json};
use lapse_lambda::wiring::{self, Auditing, InitError, vars};

#[derive(Debug)]
pub struct Deps {
    pub store: DynamoDbRequestStore,
    pub ledger: DynamoDbLedger,
    pub directory: IamDirectory,
    /// Early check-in of a checked-out credential: its lease and its rotation.
    pub leases: DynamoDbLeases,
    pub vault: SecretsManagerVault,
    /// Whose access Lapse has revoked: they end nobody's grant.
    pub controls: lapse_aws::revocations::DynamoDbRevocations,
    pub auditing: Auditing,
    pub clock: Arc<dyn Clock>,
}

impl Deps {
    pub async fn from_env(env: &Env, sdk: &SdkConfig) -> Result<Self, InitError> {
        Ok(Self {
            store: wiring::request_store(env, sdk)?,
            ledger: wiring::ledger(env, sdk)?,
            directory: wiring::directory(env, sdk)?,
            leases: DynamoDbLeases::new(
                lapse_aws::sdk::Lazy::new(sdk, lapse_aws::sdk::client::dynamodb),
                env.required(vars::REVOCATIONS_TABLE)?,
            ),
            vault: SecretsManagerVault::new(lapse_aws::sdk::Lazy::new(
                sdk,
                lapse_aws::sdk::client::secretsmanager,
            )),
            controls: wiring::controls(env, sdk)?,
            auditing: Auditing::from_env(env, sdk).await?,
            clock: wiring::system_clock(),
        })
    }
}

#[tracing::instrument(skip_all, fields(method = %request.method(), path = %request.uri().path()))]
pub async fn handler(deps: &Deps, request: Request) -> Result<Response<Body>, Infallible> {
    Ok(
        http::respond(request, &deps.auditing.catalog, |who, request| async move {
            route(deps, &who, &request).await
        })
        .await,
    )
}

async fn route(
    deps: &Deps,
    who: &Principal,
    request: &Request,
) -> Result<Response<Body>, HandlerError> {
    let segments = http::segments(request);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let ("POST", ["v1", "grants", id, "revoke"]) = (request.method().as_str(), segments.as_slice())
    else {
        return Ok(http::no_route(request));
    };
    let id = RequestId::parse(id).map_err(|e| HandlerError::BadEvent(e.to_string()))?;
    // A person whose access Lapse revoked acts on nothing, whatever their token says.
    lapse_core::revocation::usecase::ensure_not_revoked(&deps.controls, who.id()).await?;
    let grants = Grants {
        store: &deps.store,
        ledger: &deps.ledger,
    };
    let (revoked, verified) = revoke_now(
        &grants,
        &deps.directory,
        &deps.auditing.trail(),
        &deps.auditing.catalog,
        who,
        &id,
        deps.clock.now(),
    )
    .await?;
    // A checked-out credential is checked in at once: the holder has seen its
    // value, so it is rotated now rather than at the window's original end.
    let request = grants
        .store
        .get(&id)
        .await
        .map_err(lapse_core::Error::from)?;
    let checkin = match request.as_ref().and_then(|r| r.checkout()) {
        Some(_) => Some(
            check_in(
                &deps.store,
                &deps.leases,
                &deps.vault,
                &deps.auditing.trail(),
                &id,
            )
            .await?,
        ),
        None => None,
    };
    Ok(json(
        200,
        &serde_json::json!({ "revoke": revoked, "verify": verified, "checkin": checkin }),
    ))
}
