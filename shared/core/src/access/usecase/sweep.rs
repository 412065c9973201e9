//! The expiry backstop: whatever the workflows missed (a failed or cancelled
//! execution, a lost start), the scheduled sweep settles.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::lifecycle::{Grants, revoke, verify};
use super::{AuditTrail, Custody, Outbox, checkout, record_expiry, state_of, vendor};
use crate::access::request::{RequestId, RevokeCause, Status};
use crate::error::Error;
use crate::ports::{
    AccessInspector, AccessProvisioner, Audience, AuditLog, CredentialDrop, CredentialVault,
    Leases, LedgerStore, Notice, Notifier, RequestQueries, RequestStore, WorkflowStarter,
};
use crate::revocation::ports::IdentityDirectory;

/// Leave fresh work to the workflows; the sweep acts on what is this late.
pub const GRACE: TimeDelta = TimeDelta::minutes(5);

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    pub expired_pending: Vec<RequestId>,
    pub restarted: Vec<RequestId>,
    pub revoked: Vec<RequestId>,
    pub verified: Vec<RequestId>,
    /// Items that failed this time, with why; the next sweep tries again.
    pub failures: Vec<(RequestId, String)>,
}

/// Revokes and verifies one grant if it is past its end.
pub async fn settle_expired(
    grants: &Grants<'_, impl RequestStore, impl LedgerStore>,
    directory: &(impl AccessProvisioner + AccessInspector),
    trail: &AuditTrail<'_, impl AuditLog>,
    request_id: &RequestId,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let report = revoke(
        grants,
        directory,
        trail,
        request_id,
        RevokeCause::Expiry,
        "lapse-sweeper",
        now,
    )
    .await?;
    if report.outcome == super::lifecycle::RevokeOutcome::NotYetDue {
        return Ok(false);
    }
    verify(grants, directory, trail, request_id, now).await?;
    Ok(true)
}

/// After the sweep verified a grant its workflow did not: what the workflow
/// would have done next. A checked-out credential is checked in; a vendor's
/// user is deactivated (console login, keys, policies, groups; IAM read back).
pub async fn settle_custody(
    store: &impl RequestStore,
    directory: &impl IdentityDirectory,
    custody: &Custody<'_, impl Leases, impl CredentialVault, impl CredentialDrop>,
    trail: &AuditTrail<'_, impl AuditLog>,
    request_id: &RequestId,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    checkout::check_in_if_held(store, custody.leases, custody.vault, trail, request_id).await?;
    vendor::contain(
        store,
        directory,
        custody.drops,
        trail,
        request_id,
        "its workflow did not finish; the sweeper verified the revocation",
        now,
    )
    .await?;
    Ok(())
}

/// How long after an expiry the sweep still makes sure its event is recorded (the
/// sweep runs every five minutes).
pub const RECORD_AGAIN_WITHIN: TimeDelta = TimeDelta::hours(1);

/// How far behind its deadlines the sweep may fall with a crashed expiry's event
/// still recorded by the next sweep.
pub const SWEEP_LAG_COVERED: TimeDelta = TimeDelta::days(7);

/// One pass over every request that needs attention. `pending_timeout` is the
/// catalog's: the longest a request stays pending.
#[allow(clippy::too_many_arguments)]
pub async fn sweep(
    grants: &Grants<'_, impl RequestStore + RequestQueries, impl LedgerStore>,
    directory: &(impl AccessProvisioner + AccessInspector + IdentityDirectory),
    custody: &Custody<'_, impl Leases, impl CredentialVault, impl CredentialDrop>,
    trail: &AuditTrail<'_, impl AuditLog>,
    outbox: &Outbox<'_, impl Notifier, impl WorkflowStarter>,
    timelines: &impl WorkflowStarter,
    pending_timeout: TimeDelta,
    now: DateTime<Utc>,
) -> Result<SweepReport, Error> {
    let store = grants.store;
    let mut report = SweepReport::default();

    for mut request in store.by_status(Status::Pending).await? {
        let before = state_of(&request);
        if request.expire_if_overdue(now) {
            let id = request.id().clone();
            let result = async {
                store.update(&mut request).await?;
                record_expiry(trail, &request, before).await?;
                outbox
                    .notify(Notice {
                        audience: Audience::Person {
                            id: request.requester().clone(),
                        },
                        subject: format!("Expired: {}", request.resource()),
                        body: "Nobody decided on your request in time; ask again if you still need it.".into(),
                        request_id: Some(id.clone()),
                    })
                    .await;
                Ok::<_, Error>(())
            }
            .await;
            match result {
                Ok(()) => report.expired_pending.push(id),
                Err(err) => report.failures.push((id, err.to_string())),
            }
        }
    }

    // Expiries of the last hour, their events again (once, by key): a sweep or a
    // decision that stopped between an expiry's state write and its event is made
    // good by the next sweep. A request is expired by the first sweep or decision
    // after its deadline, `pending_timeout` after it was made: the query reaches
    // back that far and a week more, for sweeps that fell that far behind.
    let recent = now - RECORD_AGAIN_WITHIN;
    let made_since = recent - pending_timeout - SWEEP_LAG_COVERED;
    for request in store.by_status_since(Status::Expired, made_since).await? {
        if request.updated_at() < recent {
            continue;
        }
        let state = state_of(&request);
        if let Err(err) = record_expiry(trail, &request, state).await {
            report
                .failures
                .push((request.id().clone(), err.to_string()));
        }
    }

    for request in store.by_status(Status::Approved).await? {
        if now - request.updated_at() < GRACE {
            continue;
        }
        let id = request.id().clone();
        let restart = async {
            // A break-glass declaration cut short (security not told, no timeline,
            // no declared event) is finished before its grant is started.
            if request.break_glass_state().is_some() {
                super::breakglass::announce_declared(trail, outbox.notifier, timelines, &request)
                    .await?;
            }
            super::intake::start_workflow(&request, trail, outbox).await
        };
        match restart.await {
            Ok(_) => report.restarted.push(id),
            Err(err) => report.failures.push((id, err.to_string())),
        }
    }

    for request in store.by_status(Status::Active).await? {
        let overdue = request
            .window()
            .is_some_and(|w| w.expires_at + GRACE <= now);
        if !overdue || request.extends().is_some() {
            continue;
        }
        let id = request.id().clone();
        let settled = async {
            let done = settle_expired(grants, directory, trail, &id, now).await?;
            if done {
                settle_custody(store, directory, custody, trail, &id, now).await?;
            }
            Ok::<_, Error>(done)
        };
        match settled.await {
            Ok(true) => report.revoked.push(id),
            Ok(false) => {}
            Err(err) => report.failures.push((id, err.to_string())),
        }
    }

    for request in store.by_status(Status::Revoked).await? {
        if now - request.updated_at() < GRACE || request.extends().is_some() {
            continue;
        }
        let id = request.id().clone();
        let verified = async {
            verify(grants, directory, trail, &id, now).await?;
            settle_custody(store, directory, custody, trail, &id, now).await
        };
        match verified.await {
            Ok(_) => report.verified.push(id),
            Err(err) => report.failures.push((id, err.to_string())),
        }
    }
    Ok(report)
}
