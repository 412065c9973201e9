//! Vendor access: sponsoring (a request routed to two approvers), the vendor's
//! temporary user made before the grant, deactivated after the verified
//! revocation, and deleted after the retention unless a legal hold keeps it.
//! The grant, its time bound, revocation and verification are the ordinary
//! lifecycle's, on the vendor's user ([`AccessRequest::grantee`]).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::intake::{announce, record_submission, requester_context};
use super::{AuditTrail, Outbox, request_event};
use crate::access::request::{AccessRequest, NewRequest, RequestError, RequestId, Status};
use crate::access::vendor::{BASE_POLICY, Vendor, VendorAsk, base_policy, secret_name};
use crate::error::Error;
use crate::identity::{Principal, PrincipalId};
use crate::policy::Catalog;
use crate::ports::{
    AccessProvisioner, Audience, AuditLog, CredentialDrop, Notice, Notifier, RequestQueries,
    RequestStore, VendorAccounts, WorkflowStarter,
};
use crate::revocation::plan::{Action, Expected, RevocationKind, plan, residue};
use crate::revocation::ports::{IdentityDirectory, UserControls};
use crate::revocation::usecase::whole_second_after;

/// A sponsor asks for access for a vendor: validated, scored, routed to two
/// approvers, persisted, audited, the approvers told.
#[allow(clippy::too_many_arguments)]
pub async fn sponsor(
    store: &(impl RequestStore + RequestQueries),
    trail: &AuditTrail<'_, impl AuditLog>,
    outbox: &Outbox<'_, impl Notifier, impl WorkflowStarter>,
    catalog: &Catalog,
    sponsor: &Principal,
    input: NewRequest,
    vendor: &VendorAsk,
    now: DateTime<Utc>,
) -> Result<AccessRequest, Error> {
    let context = requester_context(store, sponsor, &input.resource, now).await?;
    let mut request = AccessRequest::vendor(input, vendor, sponsor, context, catalog, now)?;
    store.create(&mut request).await?;
    record_submission(&request, trail).await?;
    announce(&request, trail, outbox).await
}

async fn load(store: &impl RequestStore, id: &RequestId) -> Result<AccessRequest, Error> {
    store
        .get(id)
        .await?
        .ok_or_else(|| Error::NotFound(id.to_string()))
}

fn vendor_of<'a>(request: &'a AccessRequest, action: &'static str) -> Result<&'a Vendor, Error> {
    request.vendor_of().ok_or_else(|| {
        RequestError::InvalidTransition {
            from: request.status(),
            action,
        }
        .into()
    })
}

/// What provisioning made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Provisioned {
    pub user: PrincipalId,
    /// Where the sponsor reads the first password.
    pub secret: String,
    /// Whether this run set the console password (a retry finds it set).
    pub password_set: bool,
}

/// Makes the vendor's user for an approved request: created tagged under the
/// boundary, the base policy (MFA before anything, the vendor networks only), the
/// first password into a secret only the sponsor may read until the window ends,
/// the console login set from it. Safe to run again. The sponsor is told where the
/// password is; the password itself goes nowhere else.
#[allow(clippy::too_many_arguments)]
pub async fn provision(
    store: &impl RequestStore,
    accounts: &impl VendorAccounts,
    iam: &impl AccessProvisioner,
    drop: &impl CredentialDrop,
    trail: &AuditTrail<'_, impl AuditLog>,
    notifier: &impl Notifier,
    catalog: &Catalog,
    id: &RequestId,
    now: DateTime<Utc>,
) -> Result<Provisioned, Error> {
    let request = load(store, id).await?;
    let vendor = vendor_of(&request, "make a vendor user for")?;
    if !matches!(request.status(), Status::Approved | Status::Active) {
        return Err(RequestError::InvalidTransition {
            from: request.status(),
            action: "make a vendor user for",
        }
        .into());
    }
    let until = now + request.duration().delta();
    let user = vendor.user();
    let tags = vec![
        ("lapse:vendor".to_owned(), vendor.email().to_owned()),
        ("lapse:sponsor".to_owned(), request.requester().to_string()),
        ("lapse:project".to_owned(), vendor.project().to_owned()),
        ("lapse:request".to_owned(), id.to_string()),
        ("lapse:expires".to_owned(), until.to_rfc3339()),
    ];
    accounts.create_user(user, &tags).await?;
    iam.put_inline_policy(user, BASE_POLICY, &base_policy(catalog.vendor_source_ips()))
        .await?;
    let secret = secret_name(user);
    let password = drop.issue(&secret, id, request.requester(), until).await?;
    let password_set = accounts.set_console_password(user, &password).await?;
    // The password goes out of scope here: it is never kept or recorded.
    std::mem::drop(password);
    let mut event = request_event(
        &request,
        "vendor.provisioned",
        "lapse",
        "vendor.provisioned",
        format!("temporary user {user} for {}", vendor.email()),
        Value::Null,
    );
    event.after = json!({
        "state": event.after,
        "vendor_user": user,
        "tags": tags.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect::<Vec<_>>(),
        "base_policy": BASE_POLICY,
        "source_ips": catalog.vendor_source_ips(),
        "credential_secret": secret,
        "sponsor_may_read_until": until,
    });
    trail.record(event).await?;
    notifier
        .send(&Notice {
            audience: Audience::Person {
                id: request.requester().clone(),
            },
            subject: format!("Vendor access ready: {user} for {}", request.resource()),
            body: format!(
                "The first password of {user} ({}) is in Secrets Manager secret {secret}, readable by you until {}. The vendor signs in from an approved network, changes it, and enrols MFA before anything else works.",
                vendor.email(),
                until.to_rfc3339()
            ),
            request_id: Some(id.clone()),
        })
        .await?;
    Ok(Provisioned {
        user: user.clone(),
        secret,
        password_set,
    })
}

/// What deactivation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deactivated {
    pub user: PrincipalId,
    /// What was taken away (console login, keys, policies, groups).
    pub removed: Vec<String>,
    /// When the user is deleted, unless a legal hold keeps it.
    pub retire_at: DateTime<Utc>,
}

fn retire_at(request: &AccessRequest, catalog: &Catalog) -> DateTime<Utc> {
    let end = request
        .window()
        .map_or(request.updated_at(), |w| w.expires_at);
    end + catalog.tunables().vendor_retention.delta()
}

/// Once the grant is revoked: the vendor's user loses its console login, keys,
/// policies and groups (a full revocation's plan), the credential secret is
/// deleted, and IAM is read back: anything left is `VerificationFailed`.
pub async fn deactivate(
    store: &impl RequestStore,
    directory: &impl IdentityDirectory,
    drop: &impl CredentialDrop,
    trail: &AuditTrail<'_, impl AuditLog>,
    catalog: &Catalog,
    id: &RequestId,
    now: DateTime<Utc>,
) -> Result<Deactivated, Error> {
    let request = load(store, id).await?;
    vendor_of(&request, "deactivate the vendor user of")?;
    if !matches!(request.status(), Status::Revoked | Status::Verified) {
        return Err(RequestError::InvalidTransition {
            from: request.status(),
            action: "deactivate (revoke the grant first) the vendor user of",
        }
        .into());
    }
    let (user, removed) = take_everything(
        &request,
        directory,
        drop,
        trail,
        "vendor.deactivated",
        "console login, keys, policies and groups removed; IAM read back",
        now,
    )
    .await?;
    Ok(Deactivated {
        user,
        removed,
        retire_at: retire_at(&request, catalog),
    })
}

/// When the vendor's workflow failed, or the sponsor's access was revoked: the
/// vendor's user loses everything at once (console login, keys, policies, the
/// grant's among them, and groups), whatever state the request is in, the
/// password's secret is deleted, and IAM is read back. Answers `None` for a
/// request that is not vendor access, or a vendor user IAM does not have (never
/// made, or deleted) or Lapse does not manage. Safe to run again.
pub async fn contain(
    store: &impl RequestStore,
    directory: &impl IdentityDirectory,
    drop: &impl CredentialDrop,
    trail: &AuditTrail<'_, impl AuditLog>,
    id: &RequestId,
    why: &str,
    now: DateTime<Utc>,
) -> Result<Option<Vec<String>>, Error> {
    let request = load(store, id).await?;
    let Some(vendor) = request.vendor_of() else {
        return Ok(None);
    };
    let found = directory.identity(vendor.user(), now).await?;
    if !found.exists || !found.managed {
        // Never made (or deleted): only its password's secret may be left. A user
        // of that name Lapse does not manage is not Lapse's to strip (adopting one
        // is refused when it is made).
        drop.withdraw(&secret_name(vendor.user()), request.id())
            .await?;
        return Ok(None);
    }
    let (_, removed) = take_everything(
        &request,
        directory,
        drop,
        trail,
        "vendor.contained",
        &format!("console login, keys, policies and groups removed ({why}); IAM read back"),
        now,
    )
    .await?;
    Ok(Some(removed))
}

/// A full revocation's plan on the vendor's user, the password's secret deleted,
/// IAM read back (anything left is `VerificationFailed`), audited under `key`.
async fn take_everything(
    request: &AccessRequest,
    directory: &impl IdentityDirectory,
    drop: &impl CredentialDrop,
    trail: &AuditTrail<'_, impl AuditLog>,
    key: &str,
    what: &str,
    now: DateTime<Utc>,
) -> Result<(PrincipalId, Vec<String>), Error> {
    let id = request.id();
    let vendor = vendor_of(request, "deactivate the vendor user of")?;
    let user = vendor.user();
    let none = BTreeSet::new();
    let mut expected = Expected {
        role: None,
        live_grants: &[],
        grant_policies: &none,
        open_requests: &[],
        cutoff: None,
    };
    let before = directory.identity(user, now).await?;
    let mut removed = Vec::new();
    for action in plan(&RevocationKind::Full, &before, &expected) {
        // Planned last: every credential is off by now, so no session can have
        // been issued after this instant.
        let action = match action {
            Action::DenyOlderSessions { .. } => {
                let cutoff = whole_second_after(now);
                expected.cutoff = Some(cutoff);
                Action::DenyOlderSessions {
                    issued_before: cutoff,
                }
            }
            other => other,
        };
        directory.apply(user, &action).await?;
        removed.push(action.to_string());
    }
    drop.withdraw(&secret_name(user), id).await?;
    let after = directory.identity(user, now).await?;
    let left = residue(&RevocationKind::Full, &after, &expected);
    if !left.is_empty() {
        return Err(Error::VerificationFailed {
            request: id.to_string(),
            residue: left.join("; "),
        });
    }
    let mut event = request_event(
        request,
        key,
        "lapse",
        key,
        format!("{user}: {what}"),
        json!({ "vendor_user": before }),
    );
    event.after = json!({ "vendor_user": after, "removed": removed });
    trail.record(event).await?;
    Ok((user.clone(), removed))
}

/// What the retention's end came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Retired {
    /// Deleted, and IAM no longer knows the user.
    Deleted { user: PrincipalId },
    /// A legal hold keeps the user; asked again later.
    Held { user: PrincipalId },
}

/// After the retention: deletes the deactivated vendor user, unless a legal hold
/// on it (the operator's `lapse hold --user <vendor user> --legal-hold true`)
/// keeps it. Not before the retention ends.
pub async fn retire(
    store: &impl RequestStore,
    accounts: &impl VendorAccounts,
    controls: &impl UserControls,
    trail: &AuditTrail<'_, impl AuditLog>,
    catalog: &Catalog,
    id: &RequestId,
    now: DateTime<Utc>,
) -> Result<Retired, Error> {
    let request = load(store, id).await?;
    let vendor = vendor_of(&request, "delete the vendor user of")?;
    let user = vendor.user();
    let due = retire_at(&request, catalog);
    if now < due {
        return Err(Error::NotDue {
            case: id.to_string(),
            reason: format!("{user} is kept until {}", due.to_rfc3339()),
        });
    }
    if controls.controls(user).await?.legal_hold {
        trail
            .record(request_event(
                &request,
                format!("vendor.retained@{}", now.date_naive()),
                "lapse",
                "vendor.retained",
                format!("{user} is under legal hold: not deleted"),
                Value::Null,
            ))
            .await?;
        return Ok(Retired::Held { user: user.clone() });
    }
    accounts.delete_user(user).await?;
    if accounts.exists(user).await? {
        return Err(Error::VerificationFailed {
            request: id.to_string(),
            residue: format!("IAM still has {user}"),
        });
    }
    trail
        .record(request_event(
            &request,
            "vendor.deleted",
            "lapse",
            "vendor.deleted",
            format!(
                "{user} deleted after the {} retention",
                catalog.tunables().vendor_retention
            ),
            Value::Null,
        ))
        .await?;
    Ok(Retired::Deleted { user: user.clone() })
}
