//! The grant lifecycle: grant → (extend) → revoke → verify, and the failure path.
//! These are the Step Functions task bodies; the sweeper and the early-revoke API
//! reuse them, so there is one way to grant and one way to take access away.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Attempt, AuditTrail, request_event, state_of, versioned, written};
use crate::access::grant::{artifact_for, policy_document};
use crate::access::ledger::{Artifact, Hold};
use crate::access::request::{AccessRequest, RequestError, RequestId, RevokeCause, Status};
use crate::access::role_denies::{MAX_ROLE_SESSION, ROLE_DENY_POLICY, RoleDenies};
use crate::error::Error;
use crate::identity::{Principal, PrincipalId};
use crate::policy::{Catalog, GrantSpec, role_name};
use crate::ports::{
    AccessInspector, AccessProvisioner, Audience, AuditLog, Bounded, LedgerStore, Notice, Notifier,
    Removal, RequestStore, StoreError,
};
use crate::revocation::ports::UserControls;

/// A Wait state may wake a little early; within this, a grant counts as due.
pub const EXPIRY_SKEW: TimeDelta = TimeDelta::seconds(5);

/// The request store and the ledger, which every lifecycle step needs together.
#[derive(Debug)]
pub struct Grants<'a, S, G> {
    pub store: &'a S,
    pub ledger: &'a G,
}

impl<S: RequestStore, G: LedgerStore> Grants<'_, S, G> {
    /// The grants holding an artifact for a principal, as the ledger lists them and
    /// the request store confirms: each an active grant of that principal that
    /// recorded that artifact. A hold for anything else (a row no grant wrote, a
    /// grant that has ended, someone else's request) keeps nothing in IAM.
    pub async fn live_holders(
        &self,
        principal: &PrincipalId,
        artifact: &Artifact,
    ) -> Result<Vec<String>, Error> {
        let mut live = Vec::new();
        for holder in self.ledger.holders(principal, artifact).await? {
            let Ok(id) = RequestId::parse(&holder) else {
                continue;
            };
            if let Some(request) = self.store.get(&id).await?
                && request.status() == Status::Active
                && request.grantee() == principal
                && request.artifact() == Some(artifact)
            {
                live.push(holder);
            }
        }
        Ok(live)
    }
}

/// The state machine's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowInput {
    pub request_id: RequestId,
    /// Set when the execution merges an approved extension into a running grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_id: Option<RequestId>,
}

/// What the grant step did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantReport {
    pub request_id: RequestId,
    pub principal: PrincipalId,
    pub resource: String,
    pub artifact: Artifact,
    pub starts_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_id: Option<RequestId>,
}

/// What the revoke step found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeOutcome {
    /// Access was removed (or kept for another live grant) and the request marked revoked.
    Revoked,
    /// It had been revoked before; removal was re-checked.
    AlreadyRevoked,
    /// The grant was extended; wait again until the new expiry.
    NotYetDue,
}

/// What happened to the IAM artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IamEffect {
    Removed,
    AlreadyAbsent,
    /// Another live grant still holds it (overlapping group grants).
    KeptForOtherGrants,
    Untouched,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeReport {
    pub request_id: RequestId,
    pub outcome: RevokeOutcome,
    pub expires_at: Option<DateTime<Utc>>,
    pub iam: IamEffect,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub request_id: RequestId,
    pub verified: bool,
    /// Other live grants that legitimately keep a shared artifact in place.
    pub kept_for: Vec<String>,
}

async fn load(store: &impl RequestStore, id: &RequestId) -> Result<AccessRequest, Error> {
    store
        .get(id)
        .await?
        .ok_or_else(|| Error::NotFound(id.to_string()))
}

/// Puts the artifact in IAM (idempotent: re-putting a policy overwrites it, re-adding
/// to a group is a no-op), after recording the ledger hold.
async fn provision(
    ledger: &impl LedgerStore,
    iam: &impl AccessProvisioner,
    catalog: &Catalog,
    request: &AccessRequest,
    artifact: &Artifact,
    expires_at: DateTime<Utc>,
) -> Result<(), Error> {
    ledger
        .hold(&Hold {
            grant_id: request.id().to_string(),
            principal: request.grantee().clone(),
            artifact: artifact.clone(),
            expires_at,
        })
        .await?;
    match artifact {
        Artifact::InlinePolicy { name } => {
            let resource = catalog.resource(request.resource()).ok_or_else(|| {
                RequestError::UnknownResource {
                    resource: request.resource().to_owned(),
                }
            })?;
            let GrantSpec::InlinePolicy(statements) = &resource.grant else {
                return Err(RequestError::UnknownResource {
                    resource: format!("{} (its grant is no longer a policy)", request.resource()),
                }
                .into());
            };
            iam.put_inline_policy(
                request.grantee(),
                name,
                &policy_document(statements, expires_at),
            )
            .await?;
        }
        Artifact::GroupMembership { group } => iam.add_to_group(request.grantee(), group).await?,
    }
    Ok(())
}

/// Grants an approved request (or merges an approved extension into its grant).
///
/// A requester whose access Lapse has revoked is refused (and their approved request
/// withdrawn). A revocation that races the grant wins: after writing IAM the step
/// reads the request again and, if it is no longer active, takes the artifact back out.
pub async fn grant(
    grants: &Grants<'_, impl RequestStore, impl LedgerStore>,
    iam: &(impl AccessProvisioner + AccessInspector),
    controls: &impl UserControls,
    trail: &AuditTrail<'_, impl AuditLog>,
    catalog: &Catalog,
    input: &WorkflowInput,
    now: DateTime<Utc>,
) -> Result<GrantReport, Error> {
    refuse_revoked_requester(grants, controls, trail, &input.request_id, now).await?;
    if let Some(extension_id) = &input.extension_id {
        return merge_extension(
            grants,
            iam,
            trail,
            catalog,
            &input.request_id,
            extension_id,
            now,
        )
        .await;
    }
    versioned(
        || input.request_id.to_string(),
        || async move {
            let mut request = load(grants.store, &input.request_id).await?;
            let before = state_of(&request);
            let mut reason = "approved request granted".to_owned();
            match request.status() {
                Status::Approved => {
                    let resource = catalog.resource(request.resource()).ok_or_else(|| {
                        RequestError::UnknownResource {
                            resource: request.resource().to_owned(),
                        }
                    })?;
                    ensure_approval_signed(trail, &request).await?;
                    if let Some(unchecked) = ensure_grantee_managed(iam, request.grantee()).await? {
                        reason = format!("{reason} ({unchecked})");
                    }
                    ensure_roles_managed(iam, request.assumable_roles()).await?;
                    request.activate(artifact_for(resource, request.id()), now)?;
                    if !written(grants.store.update(&mut request).await)? {
                        return Ok(Attempt::Lost);
                    }
                }
                Status::Active => {}
                from => {
                    return Err(RequestError::InvalidTransition {
                        from,
                        action: "grant",
                    }
                    .into());
                }
            }
            // Recorded on a retry too (the key makes it once): a crash between the state
            // write and this one loses no audit event.
            trail
                .record(request_event(
                    &request,
                    "grant.activated",
                    "lapse",
                    "grant.activated",
                    reason,
                    before,
                ))
                .await?;
            let (Some(window), Some(artifact)) = (request.window(), request.artifact().cloned())
            else {
                return Err(Error::NotFound(format!("grant window of {}", request.id())));
            };
            provision(
                grants.ledger,
                iam,
                catalog,
                &request,
                &artifact,
                window.expires_at,
            )
            .await?;
            // Revoked while being granted: the revocation's own steps (and this
            // workflow's revoke and verify at the end) take it from here.
            if still_active(grants, iam, &input.request_id).await? {
                trail
                    .record(request_event(
                        &request,
                        "grant.provisioned",
                        "lapse",
                        "grant.provisioned",
                        format!(
                            "IAM holds {artifact} until {}",
                            window.expires_at.to_rfc3339()
                        ),
                        Value::Null,
                    ))
                    .await?;
            }
            Ok(Attempt::Done(GrantReport {
                request_id: request.id().clone(),
                principal: request.grantee().clone(),
                resource: request.resource().to_owned(),
                artifact,
                starts_at: window.starts_at,
                expires_at: window.expires_at,
                extension_id: None,
            }))
        },
    )
    .await
}

/// The grant step trusts no stored status: the request table is writable by many
/// roles, and a request written there as `approved` would otherwise be granted. The
/// request's audit chain must verify (hash links and signatures, the audit key's
/// public half read from KMS), its signed submission must be its requester's and
/// ask for what is stored (resource, duration, routing, what it extends), and the
/// newest state an approving event signed (the submission, or an approver's
/// completing decision) must carry the stored approvals and vendor. Refused
/// otherwise, before anything touches IAM: the workflow's failure path audits it
/// and tells security.
async fn ensure_approval_signed(
    trail: &AuditTrail<'_, impl AuditLog>,
    request: &AccessRequest,
) -> Result<(), Error> {
    let refuse = |why: String| -> Error {
        RequestError::ApprovalUnsigned {
            request: request.id().clone(),
            why,
        }
        .into()
    };
    let chain = super::request_chain(request.id());
    let events = trail.log.chain(&chain).await?;
    let verifier = trail.signer.verifier().await?;
    crate::audit::verify_chain(&chain, &events, &verifier, None)
        .map_err(|e| refuse(format!("its audit trail does not verify: {e}")))?;
    let submission = events
        .iter()
        .find(|e| e.key == "request.submitted")
        .ok_or_else(|| refuse("its audit trail holds no signed submission".into()))?;
    let asked = &submission.after;
    let differs = [
        (
            "requester",
            json!(submission.actor),
            json!(request.requester()),
        ),
        (
            "resource",
            asked["resource"].clone(),
            json!(request.resource()),
        ),
        (
            "duration",
            asked["duration"].clone(),
            json!(request.duration()),
        ),
        (
            "routing",
            asked["routing"].clone(),
            json!(request.routing()),
        ),
        (
            "extends",
            asked["extends"].clone(),
            json!(request.extends()),
        ),
    ]
    .into_iter()
    .filter(|(_, signed, stored)| signed != stored)
    .map(|(what, _, _)| what)
    .collect::<Vec<_>>();
    if !differs.is_empty() {
        return Err(refuse(format!(
            "what the table holds differs from its signed submission ({})",
            differs.join(", ")
        )));
    }
    // Only the events that decide: the submission (auto-approval, break-glass) and
    // an approver's completing decision. Lapse's own later events (a workflow the
    // sweeper restarted, a grant step) sign whatever state the table holds, so
    // they are no evidence of an approval.
    let approved = events
        .iter()
        .rev()
        .filter_map(|e| match (e.key.as_str(), e.action.as_str()) {
            ("request.submitted", _) => Some(&e.after["state"]),
            (_, "request.approved") if e.actor != request.requester().as_str() => Some(&e.after),
            _ => None,
        })
        .find(|state| state["status"] == "approved")
        .ok_or_else(|| refuse("no signed decision approves it".into()))?;
    if approved["approvals"] != json!(request.approvals())
        || approved["vendor"] != json!(request.vendor_of())
    {
        return Err(refuse(
            "its stored approvals differ from the signed decision that approved it".into(),
        ));
    }
    Ok(())
}

/// Grants go to users Lapse manages (tagged `lapse:managed=true`), the ones its
/// revocations reach, and who carry Lapse's permissions boundary, which keeps a
/// grant's policies off Lapse itself. IAM's own conditions hold inline policies to
/// both, but a group membership is written on the group, where no condition sees
/// the user. Returns what could not be checked here (an IAM that reports no user
/// boundaries), for the grant's audit event.
async fn ensure_grantee_managed(
    iam: &impl AccessInspector,
    grantee: &PrincipalId,
) -> Result<Option<&'static str>, Error> {
    if !iam.user_managed(grantee).await? {
        return Err(RequestError::GranteeNotManaged(grantee.clone()).into());
    }
    match iam.user_bounded(grantee).await? {
        Bounded::Yes => Ok(None),
        Bounded::NotOffered => Ok(Some(
            "permissions boundary not checked: this IAM reports no user boundaries",
        )),
        Bounded::No { actual } => Err(RequestError::GranteeNotBounded {
            user: grantee.clone(),
            actual: actual.unwrap_or_else(|| "none".into()),
        }
        .into()),
    }
}

/// A grant may let its holder assume only roles Lapse manages (tagged
/// `lapse:managed=true`): those whose sessions it can deny when the grant ends.
async fn ensure_roles_managed(iam: &impl AccessInspector, roles: &[String]) -> Result<(), Error> {
    for arn in roles {
        let name = role_name(arn).ok_or_else(|| RequestError::RoleNotManaged {
            role: arn.clone(),
            why: "not an exact role ARN".into(),
        })?;
        match iam.role_managed(name).await? {
            Some(true) => {}
            Some(false) => {
                return Err(RequestError::RoleNotManaged {
                    role: arn.clone(),
                    why: "it is not tagged lapse:managed=true".into(),
                }
                .into());
            }
            None => {
                return Err(RequestError::RoleNotManaged {
                    role: arn.clone(),
                    why: "IAM has no such role".into(),
                }
                .into());
            }
        }
    }
    Ok(())
}

/// The instant before which a revoked grant's role sessions are denied: the first
/// whole second after its revocation (session issue times carry whole seconds).
fn session_cutoff(request: &AccessRequest, now: DateTime<Utc>) -> DateTime<Utc> {
    crate::revocation::usecase::whole_second_after(request.revoked_at().unwrap_or(now))
}

/// Each role the grant could assume that IAM has, with the cutoff of the deny of
/// the holder's ended-grant sessions its one deny ([`crate::access::role_denies`]) lists,
/// if that deny is exactly Lapse's (judged by content: anything else under the
/// name counts as none).
async fn grant_role_denies(
    iam: &impl AccessInspector,
    request: &AccessRequest,
) -> Result<Vec<(String, Option<DateTime<Utc>>)>, Error> {
    let user = request.grantee();
    let mut roles = Vec::new();
    for name in request
        .assumable_roles()
        .iter()
        .filter_map(|a| role_name(a))
    {
        if iam.role_managed(name).await?.is_none() {
            continue; // No role, no session.
        }
        let denied_until = iam
            .role_policy(name, ROLE_DENY_POLICY)
            .await?
            .as_ref()
            .and_then(RoleDenies::parse)
            .and_then(|d| d.ended_cutoff(user));
        roles.push((name.to_owned(), denied_until));
    }
    Ok(roles)
}

/// Denies, on each role the grant could assume, the holder's sessions issued
/// before the grant's revocation (raising an earlier grant's cutoff, never
/// lowering a later one). Returns the roles whose deny was written.
async fn deny_ended_sessions(
    iam: &(impl AccessProvisioner + AccessInspector),
    request: &AccessRequest,
    now: DateTime<Utc>,
) -> Result<Vec<String>, Error> {
    let user = request.grantee();
    let cutoff = session_cutoff(request, now);
    let mut denied = Vec::new();
    for (name, denied_until) in grant_role_denies(iam, request).await? {
        if denied_until.is_some_and(|at| at >= cutoff) {
            continue;
        }
        crate::access::role_denies::update(iam, &name, now, |d| d.end_grant(user, cutoff)).await?;
        denied.push(name);
    }
    Ok(denied)
}

/// What remains of a revoked grant's role sessions: each role it could assume
/// must carry, by content, a deny of the holder's sessions issued before the
/// revocation.
async fn undenied_sessions(
    iam: &impl AccessInspector,
    request: &AccessRequest,
    now: DateTime<Utc>,
) -> Result<Vec<String>, Error> {
    let cutoff = session_cutoff(request, now);
    if cutoff + MAX_ROLE_SESSION <= now {
        // Every session issued before the cutoff has expired: nothing to deny.
        return Ok(Vec::new());
    }
    Ok(grant_role_denies(iam, request)
        .await?
        .into_iter()
        .filter(|(_, denied_until)| denied_until.is_none_or(|at| at < cutoff))
        .map(|(name, _)| {
            format!(
                "sessions of role {name} opened by {} before {} are not denied",
                request.grantee(),
                cutoff.to_rfc3339()
            )
        })
        .collect())
}

/// Refuses to grant to someone whose access Lapse has revoked; an approved request
/// of theirs is withdrawn (audited) so nothing grants it later.
async fn refuse_revoked_requester(
    grants: &Grants<'_, impl RequestStore, impl LedgerStore>,
    controls: &impl UserControls,
    trail: &AuditTrail<'_, impl AuditLog>,
    request_id: &RequestId,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let request = load(grants.store, request_id).await?;
    let Some(case) = controls.controls(request.requester()).await?.revoked_by else {
        return Ok(());
    };
    super::withdraw_for_revocation(grants.store, trail, request_id, "lapse", &case, now).await?;
    Err(RequestError::AccessRevoked(request.requester().clone()).into())
}

/// After IAM was written: if a revocation ended the grant meanwhile (its state is
/// written before its IAM removal), take the artifact out again. `false` then.
async fn still_active(
    grants: &Grants<'_, impl RequestStore, impl LedgerStore>,
    iam: &impl AccessProvisioner,
    request_id: &RequestId,
) -> Result<bool, Error> {
    let request = load(grants.store, request_id).await?;
    if request.status() == Status::Active {
        return Ok(true);
    }
    remove_recorded_artifact(grants, iam, &request).await?;
    Ok(false)
}

async fn merge_extension(
    grants: &Grants<'_, impl RequestStore, impl LedgerStore>,
    iam: &impl AccessProvisioner,
    trail: &AuditTrail<'_, impl AuditLog>,
    catalog: &Catalog,
    grant_id: &RequestId,
    extension_id: &RequestId,
    now: DateTime<Utc>,
) -> Result<GrantReport, Error> {
    versioned(
        || grant_id.to_string(),
        || async move {
            let mut grant = load(grants.store, grant_id).await?;
            let mut extension = load(grants.store, extension_id).await?;
            let before = state_of(&grant);
            let already = grant.extensions().contains(extension_id);
            if !already {
                ensure_approval_signed(trail, &extension).await?;
            }
            let window = grant.merge_extension(&mut extension, catalog, now)?;
            // The grant first: once it lists the extension, a retry completes the rest.
            if !already && !written(grants.store.update(&mut grant).await)? {
                return Ok(Attempt::Lost);
            }
            if extension.status() == Status::Active && extension.version() > 0 {
                match grants.store.update(&mut extension).await {
                    Ok(()) | Err(StoreError::Conflict { .. }) => {}
                    Err(other) => return Err(other.into()),
                }
            }
            let artifact = grant
                .artifact()
                .cloned()
                .ok_or_else(|| Error::NotFound(format!("artifact of {grant_id}")))?;
            provision(
                grants.ledger,
                iam,
                catalog,
                &grant,
                &artifact,
                window.expires_at,
            )
            .await?;
            if !still_active(grants, iam, grant_id).await? {
                return Err(RequestError::InvalidTransition {
                    from: Status::Revoked,
                    action: "extend (the grant was revoked meanwhile)",
                }
                .into());
            }
            trail
                .record(request_event(
                    &grant,
                    format!("grant.extended:{extension_id}"),
                    "lapse",
                    "grant.extended",
                    format!(
                        "extension {extension_id} merged; now ends {}",
                        window.expires_at.to_rfc3339()
                    ),
                    before,
                ))
                .await?;
            Ok(Attempt::Done(GrantReport {
                request_id: grant.id().clone(),
                principal: grant.grantee().clone(),
                resource: grant.resource().to_owned(),
                artifact,
                starts_at: window.starts_at,
                expires_at: window.expires_at,
                extension_id: Some(extension_id.clone()),
            }))
        },
    )
    .await
}

/// Takes an artifact out of IAM unless another live grant still holds it.
/// Idempotent: a second call finds nothing held and nothing in IAM.
async fn remove_artifact(
    grants: &Grants<'_, impl RequestStore, impl LedgerStore>,
    iam: &impl AccessProvisioner,
    principal: &PrincipalId,
    artifact: &Artifact,
    grant_id: &str,
) -> Result<IamEffect, Error> {
    // Released now or before (a retry): either way IAM keeps the artifact only for
    // another grant the request store confirms is live, never on the ledger's word.
    grants.ledger.release(principal, artifact, grant_id).await?;
    let others_live = |holders: Vec<String>| holders.iter().any(|h| h != grant_id);
    if others_live(grants.live_holders(principal, artifact).await?) {
        return Ok(IamEffect::KeptForOtherGrants);
    }
    let removal = match artifact {
        Artifact::InlinePolicy { name } => iam.delete_inline_policy(principal, name).await?,
        Artifact::GroupMembership { group } => {
            let removal = iam.remove_from_group(principal, group).await?;
            // A grant that took hold between our release and the removal must not
            // lose access: put the membership back for it.
            if others_live(grants.live_holders(principal, artifact).await?) {
                iam.add_to_group(principal, group).await?;
                return Ok(IamEffect::KeptForOtherGrants);
            }
            removal
        }
    };
    Ok(match removal {
        Removal::Removed => IamEffect::Removed,
        Removal::AlreadyAbsent => IamEffect::AlreadyAbsent,
    })
}

/// Removes the artifact a request recorded when it was granted (none: untouched).
async fn remove_recorded_artifact(
    grants: &Grants<'_, impl RequestStore, impl LedgerStore>,
    iam: &impl AccessProvisioner,
    request: &AccessRequest,
) -> Result<IamEffect, Error> {
    match request.artifact() {
        Some(artifact) => {
            remove_artifact(
                grants,
                iam,
                request.grantee(),
                artifact,
                request.id().as_str(),
            )
            .await
        }
        None => Ok(IamEffect::Untouched),
    }
}

/// Revokes a grant: removes exactly what it added (respecting overlapping grants)
/// and marks it revoked. Not reported done until [`verify`] passes.
pub async fn revoke(
    grants: &Grants<'_, impl RequestStore, impl LedgerStore>,
    iam: &(impl AccessProvisioner + AccessInspector),
    trail: &AuditTrail<'_, impl AuditLog>,
    request_id: &RequestId,
    cause: RevokeCause,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<RevokeReport, Error> {
    versioned(
        || request_id.to_string(),
        || async move {
            let mut request = load(grants.store, request_id).await?;
            let expires_at = request.window().map(|w| w.expires_at);
            let done = |outcome, iam| -> Result<Attempt<RevokeReport>, Error> {
                Ok(Attempt::Done(RevokeReport {
                    request_id: request_id.clone(),
                    outcome,
                    expires_at,
                    iam,
                }))
            };
            match request.status() {
                Status::Active => {}
                Status::Revoked | Status::Verified => {
                    let effect = remove_recorded_artifact(grants, iam, &request).await?;
                    let roles = deny_ended_sessions(iam, &request, now).await?;
                    // The revocation's event, if a crash lost it after the state write.
                    let mut draft = request_event(
                        &request,
                        "grant.revoked",
                        actor,
                        "grant.revoked",
                        request.revoke_cause().unwrap_or(cause).label(),
                        state_of(&request),
                    );
                    draft.after = json!({
                        "state": draft.after,
                        "iam": effect,
                        "artifact": request.artifact(),
                        "role_sessions_denied": roles,
                    });
                    trail.record(draft).await?;
                    return done(RevokeOutcome::AlreadyRevoked, effect);
                }
                from => {
                    return Err(RequestError::InvalidTransition {
                        from,
                        action: "revoke",
                    }
                    .into());
                }
            }
            if cause == RevokeCause::Expiry && expires_at.is_some_and(|at| now + EXPIRY_SKEW < at) {
                return done(RevokeOutcome::NotYetDue, IamEffect::Untouched);
            }
            let before = state_of(&request);
            // The state first, with a versioned write: a grant or extension step that
            // writes IAM concurrently reads it afterwards and undoes its own write, so
            // nothing it does can outlive this revocation.
            request.mark_revoked(cause, now)?;
            if !written(grants.store.update(&mut request).await)? {
                return Ok(Attempt::Lost);
            }
            let effect = remove_recorded_artifact(grants, iam, &request).await?;
            let roles = deny_ended_sessions(iam, &request, now).await?;
            settle_extensions(grants.store, &request, now, |ext, at| {
                ext.mark_revoked(cause, at)
            })
            .await?;
            let mut draft = request_event(
                &request,
                "grant.revoked",
                actor,
                "grant.revoked",
                cause.label(),
                before,
            );
            draft.after = json!({
                "state": draft.after,
                "iam": effect,
                "artifact": request.artifact(),
                "role_sessions_denied": roles,
            });
            trail.record(draft).await?;
            done(RevokeOutcome::Revoked, effect)
        },
    )
    .await
}

/// Applies a transition to every extension merged into a grant.
async fn settle_extensions(
    store: &impl RequestStore,
    grant: &AccessRequest,
    now: DateTime<Utc>,
    step: impl Fn(&mut AccessRequest, DateTime<Utc>) -> Result<bool, RequestError>,
) -> Result<(), Error> {
    let step = &step;
    for id in grant.extensions() {
        versioned(
            || id.to_string(),
            || async move {
                let Some(mut extension) = store.get(id).await? else {
                    return Ok(Attempt::Done(()));
                };
                if !step(&mut extension, now).unwrap_or(false) {
                    return Ok(Attempt::Done(()));
                }
                Ok(if written(store.update(&mut extension).await)? {
                    Attempt::Done(())
                } else {
                    Attempt::Lost
                })
            },
        )
        .await?;
    }
    Ok(())
}

/// Reads IAM back and confirms nothing of the grant remains. A failure is audited and
/// returned as [`Error::VerificationFailed`], never passed over.
pub async fn verify(
    grants: &Grants<'_, impl RequestStore, impl LedgerStore>,
    iam: &impl AccessInspector,
    trail: &AuditTrail<'_, impl AuditLog>,
    request_id: &RequestId,
    now: DateTime<Utc>,
) -> Result<VerifyReport, Error> {
    versioned(
        || request_id.to_string(),
        || async move {
            let mut request = load(grants.store, request_id).await?;
            refuse_extension(&request)?;
            if !matches!(request.status(), Status::Revoked | Status::Verified) {
                return Err(RequestError::InvalidTransition {
                    from: request.status(),
                    action: "verify",
                }
                .into());
            }
            if request.window().is_some() && request.artifact().is_none() {
                // A grant that started records what it put in IAM; without it
                // nothing can be checked, and nothing is reported verified.
                let residue = format!(
                    "{} has a grant window but no recorded artifact: what IAM holds for it is unknown",
                    request.id()
                );
                return Err(verification_failed(trail, &request, residue, now).await?);
            }
            let snapshot = iam.snapshot(request.grantee()).await?;
            let sessions = undenied_sessions(iam, &request, now).await?;
            if !sessions.is_empty() {
                let residue = sessions.join("; ");
                return Err(verification_failed(trail, &request, residue, now).await?);
            }
            let mut kept_for = Vec::new();
            if let Some(artifact) = request.artifact()
                && snapshot.holds(artifact)
            {
                let holders = match artifact {
                    Artifact::GroupMembership { .. } => {
                        grants.live_holders(request.grantee(), artifact).await?
                    }
                    Artifact::InlinePolicy { .. } => Vec::new(),
                };
                if holders.is_empty() {
                    let residue = format!("{artifact} for {}", request.grantee());
                    return Err(verification_failed(trail, &request, residue, now).await?);
                }
                kept_for = holders;
            }
            let before = state_of(&request);
            if request.mark_verified(now)? {
                if !written(grants.store.update(&mut request).await)? {
                    return Ok(Attempt::Lost);
                }
                settle_extensions(grants.store, &request, now, |ext, at| ext.mark_verified(at))
                    .await?;
            }
            let mut draft = request_event(
                &request,
                "grant.verified",
                "lapse",
                "grant.verified",
                "IAM read back: nothing of the grant remains",
                before,
            );
            draft.after = json!({
                "state": draft.after,
                "iam_inline_policies": snapshot.inline_policies.keys().collect::<Vec<_>>(),
                "iam_groups": snapshot.groups,
                "kept_for_other_grants": kept_for,
            });
            trail.record(draft).await?;
            Ok(Attempt::Done(VerifyReport {
                request_id: request_id.clone(),
                verified: true,
                kept_for,
            }))
        },
    )
    .await
}

/// Audits a failed verification of `request` and returns the error that reports it
/// (the workflow's `Lapse.VerificationFailed`): what IAM still holds, never passed over.
async fn verification_failed(
    trail: &AuditTrail<'_, impl AuditLog>,
    request: &AccessRequest,
    residue: String,
    now: DateTime<Utc>,
) -> Result<Error, Error> {
    let mut draft = request_event(
        request,
        format!("grant.verification_failed@{}", now.to_rfc3339()),
        "lapse",
        "grant.verification_failed",
        format!("IAM still holds {residue}"),
        Value::Null,
    );
    draft.at = now;
    trail.record(draft).await?;
    Ok(Error::VerificationFailed {
        request: request.id().to_string(),
        residue,
    })
}

/// Ends a grant now, at a person's request: revoke, then verify.
pub async fn revoke_now(
    grants: &Grants<'_, impl RequestStore, impl LedgerStore>,
    directory: &(impl AccessProvisioner + AccessInspector),
    trail: &AuditTrail<'_, impl AuditLog>,
    catalog: &Catalog,
    who: &Principal,
    request_id: &RequestId,
    now: DateTime<Utc>,
) -> Result<(RevokeReport, VerifyReport), Error> {
    let request = super::intake::view(grants.store, catalog, who, request_id).await?;
    if !request.may_revoke(who, catalog) {
        return Err(Error::NotFound(request_id.to_string()));
    }
    refuse_extension(&request)?;
    let revoked = revoke(
        grants,
        directory,
        trail,
        request_id,
        RevokeCause::EarlyRevoke,
        who.id().as_str(),
        now,
    )
    .await?;
    let verified = verify(grants, directory, trail, request_id, now).await?;
    Ok((revoked, verified))
}

/// An extension is part of its grant: it is revoked and verified with the grant,
/// never on its own (it holds no artifact of its own to remove or check).
fn refuse_extension(request: &AccessRequest) -> Result<(), Error> {
    match request.extends() {
        Some(grant) => Err(RequestError::IsExtension {
            extension: request.id().clone(),
            grant: grant.clone(),
        }
        .into()),
        None => Ok(()),
    }
}

/// What a failed workflow reports to the failure path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowFailure {
    pub request_id: RequestId,
    /// The error name (`Lapse.VerificationFailed`, `States.Timeout`, ...).
    pub error: String,
    pub cause: String,
}

impl WorkflowFailure {
    /// The cause as a person reads it: Step Functions gives a Lambda error's cause
    /// as the function's JSON (`{"errorType":…,"errorMessage":…}`), and a local
    /// runner as `<name>: <message>`; either way, the message alone.
    pub fn readable_cause(&self) -> String {
        let message = serde_json::from_str::<Value>(&self.cause)
            .ok()
            .and_then(|v| v["errorMessage"].as_str().map(str::to_owned))
            .unwrap_or_else(|| self.cause.clone());
        message
            .strip_prefix(&format!("{}: ", self.error))
            .map_or(message.clone(), str::to_owned)
    }
}

/// The failure path: audit it and tell security, and, when the request was never
/// granted, tell the requester too (their request would otherwise sit approved
/// with no word). Returns security's notice.
pub async fn record_failure(
    store: &impl RequestStore,
    trail: &AuditTrail<'_, impl AuditLog>,
    notifier: &impl Notifier,
    failure: &WorkflowFailure,
    now: DateTime<Utc>,
) -> Result<Notice, Error> {
    let request = load(store, &failure.request_id).await?;
    let cause = failure.readable_cause();
    let mut draft = request_event(
        &request,
        format!("workflow.failed@{}", now.to_rfc3339()),
        "lapse",
        "workflow.failed",
        format!("{}: {cause}", failure.error),
        Value::Null,
    );
    draft.at = now;
    trail.record(draft).await?;
    let notice = Notice {
        audience: Audience::Security,
        subject: format!(
            "Lapse workflow failed for {}: {}",
            failure.request_id, failure.error
        ),
        body: format!(
            "{} held by {} (status {}). {}",
            request.resource(),
            request.grantee(),
            request.status(),
            cause
        ),
        request_id: Some(failure.request_id.clone()),
    };
    notifier.send(&notice).await?;
    if request.status() == Status::Approved && request.window().is_none() {
        notifier
            .send(&Notice {
                audience: Audience::Person {
                    id: request.requester().clone(),
                },
                subject: format!("Not granted: {}", request.resource()),
                body: format!(
                    "Your approved request {} for {} could not be granted: {cause}. Security has been told; nothing was granted.",
                    request.id(),
                    request.resource()
                ),
                request_id: Some(request.id().clone()),
            })
            .await?;
    }
    Ok(notice)
}

/// Tells the holder that access started (with its end) or ended.
pub async fn tell_holder(
    store: &impl RequestStore,
    notifier: &impl Notifier,
    request_id: &RequestId,
) -> Result<Notice, Error> {
    let request = load(store, request_id).await?;
    let (subject, body) = match (request.status(), request.window()) {
        (Status::Active, Some(window)) => (
            format!("Access granted: {}", request.resource()),
            format!(
                "Your access to {} is active until {} (UTC). It is revoked automatically then.",
                request.resource(),
                window.expires_at.to_rfc3339()
            ),
        ),
        (Status::Verified, _) => (
            format!("Access ended: {}", request.resource()),
            format!(
                "Your access to {} has been revoked and the revocation verified.",
                request.resource()
            ),
        ),
        // Revoked, not yet verified: e.g. the holder revoked early while the grant
        // step ran, and the workflow's "granted" notice comes before its Verify.
        // A revocation is never reported done before verification.
        (Status::Revoked, _) => (
            format!("Access ended: {}", request.resource()),
            format!(
                "Your access to {} has been revoked; the check that IAM no longer \
                 grants it has not run yet.",
                request.resource()
            ),
        ),
        (status, _) => (
            format!("Request {}: {status}", request.id()),
            format!("Your request for {} is {status}.", request.resource()),
        ),
    };
    let notice = Notice {
        audience: Audience::Person {
            id: request.requester().clone(),
        },
        subject,
        body,
        request_id: Some(request.id().clone()),
    };
    notifier.send(&notice).await?;
    Ok(notice)
}
