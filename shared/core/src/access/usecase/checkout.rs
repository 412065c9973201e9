//! Privileged credential checkout: an approved request for a credential resource
//! takes an exclusive lease on its secret before the grant (the grant is the inline
//! policy that reads that one secret, bounded by `aws:CurrentTime`), and after the
//! grant is revoked and verified, check-in has the secret's rotation function
//! rotate it (the function changes what the database accepts, then makes the new
//! value current), proves the rotation finished, and releases the lease. A secret
//! whose rotation is off, or runs another function than the catalog names, is
//! never checked out: Lapse hands out only what it can rotate.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::{AuditTrail, request_event, withdraw};
use crate::access::request::{AccessRequest, RequestError, RequestId, Status};
use crate::error::Error;
use crate::policy::Catalog;
use crate::ports::{
    Audience, AuditLog, CredentialVault, Lease, Leases, Notice, Notifier, RequestStore, VaultError,
};

/// What a checkout came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CheckoutOutcome {
    /// This request holds the lease; the grant may proceed.
    CheckedOut { version_id: String },
    /// Another request holds it: this one is withdrawn and its requester told.
    InUse { by: RequestId },
}

/// What a check-in came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CheckinOutcome {
    /// Rotated (the checked-out version is no longer current) and released.
    CheckedIn {
        rotated_from: String,
        current: String,
    },
    /// No lease of this request's is held: checked in before.
    AlreadyCheckedIn,
}

async fn load(store: &impl RequestStore, id: &RequestId) -> Result<AccessRequest, Error> {
    store
        .get(id)
        .await?
        .ok_or_else(|| Error::NotFound(id.to_string()))
}

/// The version a check-in makes current: named for the request, so a retried
/// check-in makes the same one.
pub fn rotated_version(id: &RequestId) -> String {
    format!("checkin-{id}")
}

/// Takes the secret's lease for an approved request. A lease another request
/// holds withdraws this one (two checkouts of one credential never both succeed)
/// and tells the requester when to ask again. The secret must rotate with the
/// function the catalog names (`VaultError::NoRotation` otherwise, before any
/// lease or grant).
#[allow(clippy::too_many_arguments)]
pub async fn checkout(
    catalog: &Catalog,
    store: &impl RequestStore,
    leases: &impl Leases,
    vault: &impl CredentialVault,
    trail: &AuditTrail<'_, impl AuditLog>,
    notifier: &impl Notifier,
    id: &RequestId,
    now: DateTime<Utc>,
) -> Result<CheckoutOutcome, Error> {
    let request = load(store, id).await?;
    let secret = request
        .checkout()
        .ok_or(RequestError::InvalidTransition {
            from: request.status(),
            action: "check out a credential for",
        })?
        .to_owned();
    match request.status() {
        Status::Approved | Status::Active => {}
        from => {
            return Err(RequestError::InvalidTransition {
                from,
                action: "check out a credential for",
            }
            .into());
        }
    }
    let expected = catalog
        .resource(request.resource())
        .and_then(|r| r.checkout.as_ref())
        .filter(|c| c.secret_arn == secret)
        .map(|c| c.rotation_function.clone())
        .ok_or_else(|| {
            Error::NotFound(format!(
                "the catalog's credential resource {} for {secret}",
                request.resource()
            ))
        })?;
    let state = vault.state(&secret).await?;
    if state.rotation_function.as_deref() != Some(expected.as_str()) {
        return Err(VaultError::NoRotation {
            secret,
            expected,
            found: match state.rotation_function {
                None => "its rotation is off".into(),
                Some(other) => format!("it rotates with {other}"),
            },
        }
        .into());
    }
    let held = leases
        .acquire(&Lease {
            secret_arn: secret.clone(),
            request_id: id.clone(),
            holder: request.requester().clone(),
            version_id: state.current,
            at: now,
            rotation_function: expected,
        })
        .await?;
    if &held.request_id != id {
        withdraw_for_checkout(store, trail, notifier, &request, &held, now).await?;
        return Ok(CheckoutOutcome::InUse {
            by: held.request_id,
        });
    }
    trail
        .record(request_event(
            &request,
            "credential.checked_out",
            "lapse",
            "credential.checked_out",
            format!("exclusive lease on {secret}"),
            Value::Null,
        ))
        .await?;
    Ok(CheckoutOutcome::CheckedOut {
        version_id: held.version_id,
    })
}

async fn withdraw_for_checkout(
    store: &impl RequestStore,
    trail: &AuditTrail<'_, impl AuditLog>,
    notifier: &impl Notifier,
    request: &AccessRequest,
    held: &Lease,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let reason = format!(
        "credential in use: checked out by {} for request {} since {}",
        held.holder,
        held.request_id,
        held.at.to_rfc3339()
    );
    withdraw(store, trail, request.id(), "lapse", &reason, now).await?;
    notifier
        .send(&Notice {
            audience: Audience::Person {
                id: request.requester().clone(),
            },
            subject: format!("Not granted: {} is checked out", request.resource()),
            body: format!("{reason}. Ask again once it is checked in."),
            request_id: Some(request.id().clone()),
        })
        .await?;
    Ok(())
}

/// Checks a credential back in once the grant no longer reaches it (the request
/// is revoked or verified): rotates the secret, proves the checked-out version is
/// no longer current, audits the rotation (versions only, never values), and
/// releases the lease. Each step is safe to run again.
pub async fn check_in(
    store: &impl RequestStore,
    leases: &impl Leases,
    vault: &impl CredentialVault,
    trail: &AuditTrail<'_, impl AuditLog>,
    id: &RequestId,
) -> Result<CheckinOutcome, Error> {
    let request = load(store, id).await?;
    let Some(secret) = request.checkout() else {
        return Err(RequestError::InvalidTransition {
            from: request.status(),
            action: "check in a credential for",
        }
        .into());
    };
    if !matches!(request.status(), Status::Revoked | Status::Verified) {
        return Err(RequestError::InvalidTransition {
            from: request.status(),
            action: "check in (access must be revoked first) for",
        }
        .into());
    }
    let Some(lease) = leases.get(secret).await?.filter(|l| &l.request_id == id) else {
        return Ok(CheckinOutcome::AlreadyCheckedIn);
    };
    let current = rotate_and_prove(
        vault,
        trail,
        &request,
        &lease,
        &rotated_version(id),
        "credential.rotated",
        "",
    )
    .await?;
    release(leases, trail, &request, secret, "").await?;
    Ok(CheckinOutcome::CheckedIn {
        rotated_from: lease.version_id,
        current,
    })
}

/// Checks in the credential of a request verified revoked, if it is a checkout
/// whose lease it still holds: for the paths that verify a grant outside its
/// workflow (the sweeper, a revocation that found the grant made meanwhile).
pub async fn check_in_if_held(
    store: &impl RequestStore,
    leases: &impl Leases,
    vault: &impl CredentialVault,
    trail: &AuditTrail<'_, impl AuditLog>,
    id: &RequestId,
) -> Result<Option<CheckinOutcome>, Error> {
    let request = load(store, id).await?;
    if request.checkout().is_none() || request.status() != Status::Verified {
        return Ok(None);
    }
    check_in(store, leases, vault, trail, id).await.map(Some)
}

/// The version a containment makes current: named for the request, and distinct
/// from [`rotated_version`], so a later check-in rotates once more.
pub fn contained_version(id: &RequestId) -> String {
    format!("contain-{id}")
}

/// What a containment came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ContainOutcome {
    /// The checked-out value is dead (a new one is current). `released` says
    /// whether the lease went too: it stays while IAM may still let the holder
    /// read the secret (the grant not yet verified revoked), so nobody else is
    /// handed a value the holder could have read; the verification that ends it
    /// checks the credential in.
    Rotated { current: String, released: bool },
    /// This request holds no lease on its credential: nothing to contain.
    NotHeld,
}

/// When a grant's workflow failed, or a revocation ended the grant outside its
/// workflow: the checked-out value is made useless at once (rotated, and proven
/// no longer current), whatever state the request is in. The lease is released
/// only when the holder can no longer read the secret: the grant verified
/// revoked, or never granted. Safe to run again.
pub async fn contain(
    store: &impl RequestStore,
    leases: &impl Leases,
    vault: &impl CredentialVault,
    trail: &AuditTrail<'_, impl AuditLog>,
    id: &RequestId,
    why: &str,
) -> Result<ContainOutcome, Error> {
    let request = load(store, id).await?;
    let Some(secret) = request.checkout() else {
        return Ok(ContainOutcome::NotHeld);
    };
    let Some(lease) = leases.get(secret).await?.filter(|l| &l.request_id == id) else {
        return Ok(ContainOutcome::NotHeld);
    };
    let why = format!(" ({why})");
    let current = rotate_and_prove(
        vault,
        trail,
        &request,
        &lease,
        &contained_version(id),
        "credential.contained",
        &why,
    )
    .await?;
    let unreachable = request.status() == Status::Verified || request.window().is_none();
    if unreachable {
        release(leases, trail, &request, secret, &why).await?;
    }
    Ok(ContainOutcome::Rotated {
        current,
        released: unreachable,
    })
}

/// Has the secret's rotation function make `version` current, and proves it
/// did: the rotation is done only when `version` is current (its function's last
/// step), which also means the checked-out version no longer is. Until then
/// `VaultError::RotationUnfinished` (retried by the workflow; the lease kept).
/// Audited under `key` as `credential.rotated`, with version ids only.
async fn rotate_and_prove(
    vault: &impl CredentialVault,
    trail: &AuditTrail<'_, impl AuditLog>,
    request: &AccessRequest,
    lease: &Lease,
    version: &str,
    key: &str,
    why: &str,
) -> Result<String, Error> {
    let secret = &lease.secret_arn;
    let function = if lease.rotation_function.is_empty() {
        // A lease from before Lapse named the function: the secret's own.
        let state = vault.state(secret).await?;
        state
            .rotation_function
            .ok_or_else(|| VaultError::NoRotation {
                secret: secret.clone(),
                expected: "a rotation function".into(),
                found: "its rotation is off".into(),
            })?
    } else {
        lease.rotation_function.clone()
    };
    vault.rotate(secret, version, &function).await?;
    let state = vault.state(secret).await?;
    if state.current != version {
        let described = match &state.pending {
            Some(pending) if pending == version => {
                format!(
                    "{} is still current; the rotation is in flight",
                    state.current
                )
            }
            Some(other) => format!(
                "{} is still current; another rotation ({other}) is in flight",
                state.current
            ),
            None => format!("{} is current and no rotation is in flight", state.current),
        };
        return Err(VaultError::RotationUnfinished {
            secret: secret.clone(),
            version: version.to_owned(),
            state: described,
        }
        .into());
    }
    let mut event = request_event(
        request,
        key,
        "lapse",
        "credential.rotated",
        format!(
            "{secret}: rotated by {function}; the checked-out version is no longer current{why}"
        ),
        json!({ "secret": secret, "current_version": lease.version_id }),
    );
    event.after =
        json!({ "secret": secret, "current_version": state.current, "rotated_by": function });
    trail.record(event).await?;
    Ok(state.current)
}

/// Releases this request's lease, audited `credential.checked_in`.
async fn release(
    leases: &impl Leases,
    trail: &AuditTrail<'_, impl AuditLog>,
    request: &AccessRequest,
    secret: &str,
    why: &str,
) -> Result<(), Error> {
    leases.release(secret, request.id()).await?;
    trail
        .record(request_event(
            request,
            "credential.checked_in",
            "lapse",
            "credential.checked_in",
            format!("lease on {secret} released{why}"),
            Value::Null,
        ))
        .await?;
    Ok(())
}
