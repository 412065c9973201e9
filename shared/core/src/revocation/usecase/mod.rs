//! Revocation use cases. Each workflow step is its own function and idempotent, so
//! a duplicated or interrupted run converges: plans come from a fresh snapshot,
//! case ids come from triggers, audit events are keyed.
//!
//! Split by caller: [`intake`] (events in), [`steps`] (the workflow), [`tools`]
//! (operators), [`inactivity`] (the daily check); everything is re-exported here.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::case::RevocationCase;
use super::plan::{Expected, IdentitySnapshot, RevocationKind};
use super::ports::{Archive, CaseStore, EventClaims, IdentityDirectory, UserControls};
use crate::access::grant::NAME_PREFIX;
use crate::access::ledger::Artifact;
use crate::access::request::{RequestId, Status};
use crate::access::usecase::AuditTrail;
use crate::access::usecase::lifecycle::Grants;
use crate::audit::AuditDraft;
use crate::error::Error;
use crate::identity::PrincipalId;
use crate::policy::Catalog;
use crate::ports::{
    AccessInspector, AccessProvisioner, AuditLog, Clock, CredentialDrop, CredentialVault, Leases,
    LedgerStore, Notifier, RequestQueries, RequestStore,
};

pub mod inactivity;
pub mod intake;
pub mod steps;
pub mod tools;

pub use inactivity::*;
pub use intake::*;
pub use steps::*;
pub use tools::*;

/// The cases table.
pub trait HasCases: Sync {
    type Cases: CaseStore;
    fn cases(&self) -> &Self::Cases;
}

/// IAM: reading identities and changing them.
pub trait HasDirectory: Sync {
    type Directory: IdentityDirectory + AccessProvisioner + AccessInspector;
    fn directory(&self) -> &Self::Directory;
}

/// Whose access Lapse has revoked or suspended, and their holds.
pub trait HasControls: Sync {
    type Controls: UserControls;
    fn controls(&self) -> &Self::Controls;
}

/// The backups taken before a revocation, for restore.
pub trait HasArchive: Sync {
    type Archive: Archive;
    fn archive(&self) -> &Self::Archive;
}

/// The JIT side: requests and the grant ledger.
pub trait HasGrants: Sync {
    type Requests: RequestStore + RequestQueries;
    type Ledger: LedgerStore;
    fn grants(&self) -> Grants<'_, Self::Requests, Self::Ledger>;
}

/// The signed audit trail.
pub trait HasTrail: Sync {
    type Log: AuditLog;
    fn trail(&self) -> AuditTrail<'_, Self::Log>;
}

/// Notices to people, approvers and security.
pub trait HasNotifier: Sync {
    type Notifier: Notifier;
    fn notifier(&self) -> &Self::Notifier;
}

/// The webhook's claims of HR events: the workflow opens a case only for an
/// event whose content the webhook claimed.
pub trait HasClaims: Sync {
    type Claims: EventClaims;
    fn claims(&self) -> &Self::Claims;
}

/// What a grant can leave outside IAM: a checked-out credential (its lease and
/// its vault) and a vendor's password drop. Ending a grant contains them.
pub trait HasCustody: Sync {
    type Leases: Leases;
    type Vault: CredentialVault;
    type Drops: CredentialDrop;
    fn leases(&self) -> &Self::Leases;
    fn vault(&self) -> &Self::Vault;
    fn drops(&self) -> &Self::Drops;
}

/// What every step reads that is not a service: the policy catalog and the clock.
pub trait Context: Sync {
    fn catalog(&self) -> &Catalog;
    /// Read again mid-step where an instant must follow an IAM change (the cutoff).
    fn clock(&self) -> &dyn Clock;
}

/// Every revocation port. Each use case asks for the ports it reaches and no more,
/// so a function's dependencies (and so its IAM role) can be as narrow as the use
/// cases it runs: the inactivity check, for one, has no requests, ledger, archive
/// or notices. The workflow's steps and the operator tools take all of them.
pub trait RevocationPorts:
    HasCases
    + HasDirectory
    + HasControls
    + HasArchive
    + HasGrants
    + HasCustody
    + HasClaims
    + HasTrail
    + HasNotifier
    + Context
{
}

impl<T> RevocationPorts for T where
    T: HasCases
        + HasDirectory
        + HasControls
        + HasArchive
        + HasGrants
        + HasCustody
        + HasClaims
        + HasTrail
        + HasNotifier
        + Context
{
}

pub(super) fn case_event(
    case: &RevocationCase,
    key: &str,
    action: &str,
    reason: String,
    before: Value,
    after: Value,
    at: DateTime<Utc>,
) -> AuditDraft {
    AuditDraft {
        chain: case.chain(),
        key: format!("{}:{key}", case.id()),
        actor: case.trigger().executor.clone(),
        action: action.to_owned(),
        subject: case.user().to_string(),
        reason,
        before,
        after,
        at,
    }
}

pub(super) async fn load(p: &impl HasCases, id: &str) -> Result<RevocationCase, Error> {
    p.cases()
        .get(id)
        .await?
        .ok_or_else(|| Error::NotFound(id.to_owned()))
}

pub(super) async fn save(
    p: &impl HasCases,
    case: &mut RevocationCase,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    case.touch(now);
    p.cases().update(case).await?;
    Ok(())
}

/// Changes a user's controls by a versioned write, re-reading on a lost race.
/// Returns the controls before and after.
pub(super) async fn update_controls(
    p: &impl HasControls,
    user: &PrincipalId,
    change: impl Fn(&mut crate::revocation::ports::Controls),
) -> Result<
    (
        crate::revocation::ports::Controls,
        crate::revocation::ports::Controls,
    ),
    Error,
> {
    use crate::access::usecase::{Attempt, versioned, written};
    let change = &change;
    versioned(
        || format!("controls of {user}"),
        || async move {
            let before = p.controls().controls(user).await?;
            let mut after = before.clone();
            change(&mut after);
            if after != before && !written(p.controls().set(user, &mut after).await)? {
                return Ok(Attempt::Lost);
            }
            Ok(Attempt::Done((before, after)))
        },
    )
    .await
}

/// IAM's view of a user, with the roles their grants could assume added to the
/// roles whose trust policies name them: a role session outlives the grant that
/// opened it, and a termination must close it whether or not the role's trust
/// policy names the person (the ledger of requests says which roles, not IAM).
pub(super) async fn identity(
    p: &(impl HasDirectory + HasGrants),
    user: &PrincipalId,
    now: DateTime<Utc>,
) -> Result<IdentitySnapshot, Error> {
    let mut snapshot = p.directory().identity(user, now).await?;
    if !snapshot.exists {
        return Ok(snapshot);
    }
    let requests = p.grants().store.by_requester(user).await?;
    let roles: std::collections::BTreeSet<&str> = requests
        .iter()
        .filter(|r| r.grantee() == user && role_sessions_may_live(r, now))
        .flat_map(|r| r.assumable_roles())
        .filter_map(|arn| crate::policy::role_name(arn))
        .collect();
    for name in roles {
        if snapshot.trusting_roles.iter().any(|r| r.name == name) {
            continue;
        }
        let Some(managed) = p.directory().role_managed(name).await? else {
            continue; // No role, no session.
        };
        let session_deny = p
            .directory()
            .role_policy(name, crate::access::role_denies::ROLE_DENY_POLICY)
            .await?;
        snapshot.trusting_roles.push(super::plan::TrustingRole {
            name: name.to_owned(),
            managed,
            session_deny,
        });
    }
    Ok(snapshot)
}

/// Could a session the grant opened on a role still be live at `now`? A role
/// session lasts at most [`crate::access::role_denies::MAX_ROLE_SESSION`] after the grant
/// ended (its revocation, or its expiry).
fn role_sessions_may_live(
    request: &crate::access::request::AccessRequest,
    now: DateTime<Utc>,
) -> bool {
    request.window().is_some_and(|window| {
        let ended = request
            .revoked_at()
            .map_or(window.expires_at, |at| at.min(window.expires_at));
        ended + crate::access::role_denies::MAX_ROLE_SESSION > now
    })
}

/// What the request store and the ledger know about a user, beside IAM.
pub(super) struct Known {
    /// Active grants (extensions are merged into theirs).
    live: Vec<RequestId>,
    /// Pending or approved requests, not yet granted.
    open: Vec<RequestId>,
    /// Inline policies the ledger records for one of the live grants.
    grant_policies: std::collections::BTreeSet<String>,
}

impl Known {
    fn expected<'a>(&'a self, p: &'a impl Context, case: &RevocationCase) -> Expected<'a> {
        Expected {
            role: match &case.kind() {
                RevocationKind::Partial { new_role } => p.catalog().role(new_role),
                _ => None,
            },
            live_grants: &self.live,
            grant_policies: &self.grant_policies,
            open_requests: &self.open,
            cutoff: case.cutoff(),
        }
    }
}

pub(super) async fn known(
    p: &impl HasGrants,
    user: &PrincipalId,
    current: &IdentitySnapshot,
) -> Result<Known, Error> {
    let requests = p.grants().store.by_requester(user).await?;
    let live: Vec<RequestId> = requests
        .iter()
        .filter(|r| r.status() == Status::Active && r.extends().is_none())
        .map(|r| r.id().clone())
        .collect();
    let open = requests
        .iter()
        .filter(|r| matches!(r.status(), Status::Pending | Status::Approved))
        .map(|r| r.id().clone())
        .collect();
    let mut grant_policies = std::collections::BTreeSet::new();
    for name in current
        .inline_policies
        .keys()
        .filter(|n| n.starts_with(NAME_PREFIX))
    {
        let artifact = Artifact::InlinePolicy { name: name.clone() };
        if !p.grants().live_holders(user, &artifact).await?.is_empty() {
            grant_policies.insert(name.clone());
        }
    }
    Ok(Known {
        live,
        open,
        grant_policies,
    })
}

#[cfg(test)]
mod tests;
