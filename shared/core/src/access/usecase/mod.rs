//! Use cases: the core's operations over its ports. Handlers parse their event,
//! call one of these, and shape the answer; all the rules live here.
//!
//! Every use case is safe to run again with the same input (AWS delivers events at
//! least once): state changes go through versioned writes, and each audit event has
//! a key that is recorded only once per chain.

pub mod breakglass;
pub mod checkout;
pub mod decide;
pub mod intake;
pub mod lifecycle;
pub mod sweep;
pub mod vendor;

use serde_json::{Value, json};
use tracing::warn;

use crate::access::request::{AccessRequest, RequestId};
use crate::audit::{AuditDraft, AuditEvent, AuditSigner};
use crate::error::Error;
use crate::policy::PolicyHash;
use crate::ports::{AuditLog, Notice, Notifier, RequestStore, StoreError, WorkflowStarter};

/// How many times an audit append retries after losing a race for its sequence
/// number. Every round of a race has a winner, so among n writers on one chain a
/// writer loses at most n - 1 times: this covers fifty decisions landing on one
/// request at once (`lapse-bench reliability`, scenario races), where eight
/// attempts lost the sweeper's `request.expired` event after its state write.
const AUDIT_APPEND_ATTEMPTS: usize = 64;

/// How many times a read-modify-write retries after losing a race.
pub(crate) const WRITE_ATTEMPTS: usize = 5;

/// What one read-decide-write attempt came to.
#[derive(Debug)]
pub(crate) enum Attempt<T> {
    /// Finished: written, or nothing needed writing.
    Done(T),
    /// The conditional write lost a race: read again and decide again.
    Lost,
}

/// A conditional write's result as an attempt's outcome: `Ok(true)` written,
/// `Ok(false)` lost the race (the caller answers [`Attempt::Lost`]).
pub(crate) fn written(result: Result<(), StoreError>) -> Result<bool, Error> {
    match result {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(other) => Err(other.into()),
    }
}

/// The one versioned-update loop: runs `attempt` (read, decide, conditional write)
/// until it finishes, at most [`WRITE_ATTEMPTS`] times. A write that keeps losing
/// ends as [`StoreError::Conflict`] on `what`: a lost race, which a caller (or the
/// workflow's `Retry` on `Lapse.Conflict`) may try again later.
pub(crate) async fn versioned<T, Fut>(
    what: impl FnOnce() -> String,
    attempt: impl Fn() -> Fut,
) -> Result<T, Error>
where
    Fut: std::future::Future<Output = Result<Attempt<T>, Error>>,
{
    for _ in 0..WRITE_ATTEMPTS {
        if let Attempt::Done(out) = attempt().await? {
            return Ok(out);
        }
    }
    Err(StoreError::Conflict { what: what() }.into())
}

/// Where audit events go: a log, the key that signs them, and the policy in force.
#[derive(Debug)]
pub struct AuditTrail<'a, L> {
    pub log: &'a L,
    pub signer: &'a AuditSigner,
    pub policy_hash: &'a PolicyHash,
}

impl<L: AuditLog> AuditTrail<'_, L> {
    /// Seals and appends an event on top of its chain's current head, retrying when a
    /// concurrent writer took the sequence number first. An event whose key the chain
    /// already holds is not written again; the existing one is returned.
    pub async fn record(&self, draft: AuditDraft) -> Result<AuditEvent, Error> {
        let mut last_conflict = None;
        for _ in 0..AUDIT_APPEND_ATTEMPTS {
            // One read gives both the keys present and the head to append on: with a
            // separate head read, a concurrent writer of the same key could append
            // between the two reads and this one would append the key again on top.
            let chain = self.log.chain(&draft.chain).await?;
            if let Some(existing) = chain.iter().find(|e| e.key == draft.key) {
                // Anchored again: a crash may have come between append and anchor.
                self.log.anchor(&existing.head(), &existing.chain).await?;
                return Ok(existing.clone());
            }
            let head = chain.last().map(AuditEvent::head);
            let event = self
                .signer
                .seal(draft.clone(), self.policy_hash, head.as_ref())
                .await?;
            match self.log.append(&event).await {
                Ok(()) => {
                    self.log.anchor(&event.head(), &event.chain).await?;
                    return Ok(event);
                }
                Err(conflict @ StoreError::Conflict { .. }) => last_conflict = Some(conflict),
                Err(other) => return Err(other.into()),
            }
        }
        Err(last_conflict
            .unwrap_or(StoreError::Conflict {
                what: draft.chain.clone(),
            })
            .into())
    }
}

/// What a grant can leave outside IAM (a checked-out credential's lease and vault,
/// a vendor's password drop), for the paths that end grants outside their
/// workflow.
#[derive(Debug)]
pub struct Custody<'a, L, V, D> {
    pub leases: &'a L,
    pub vault: &'a V,
    pub drops: &'a D,
}

/// What leaves the system besides state: notices and workflow starts.
#[derive(Debug)]
pub struct Outbox<'a, N, W> {
    pub notifier: &'a N,
    pub workflows: &'a W,
}

impl<N: Notifier, W: WorkflowStarter> Outbox<'_, N, W> {
    /// Sends a notice. Delivery failures are logged and audited by the caller's
    /// flow, never allowed to undo a state change that already happened.
    pub async fn notify(&self, notice: Notice) -> bool {
        match self.notifier.send(&notice).await {
            Ok(()) => true,
            Err(err) => {
                let cause = std::error::Error::source(&err).map(|s| format!("{s:?}"));
                warn!(subject = %notice.subject, error = %err, cause = ?cause, "notice not delivered");
                false
            }
        }
    }
}

/// The audit chain for one request.
pub fn request_chain(id: &RequestId) -> String {
    format!("request#{id}")
}

/// The workflow input for a grant (or for merging an extension into one). A
/// credential checkout carries `checkout`, which sends the workflow through the
/// checkout before the grant and the check-in after the verification; vendor
/// access carries `vendor` (the vendor's user made before the grant, deactivated
/// after the verification, deleted after the retention).
pub fn workflow_input(request: &AccessRequest) -> (String, Value) {
    let name = request.id().to_string();
    match request.extends() {
        Some(grant) => (
            name,
            json!({ "request_id": grant, "extension_id": request.id() }),
        ),
        None if request.checkout().is_some() => (
            name,
            json!({ "request_id": request.id(), "checkout": true }),
        ),
        None if request.vendor_of().is_some() => {
            (name, json!({ "request_id": request.id(), "vendor": true }))
        }
        None => (name, json!({ "request_id": request.id() })),
    }
}

/// What withdrawing a revoked person's request found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Withdrawal {
    Cancelled,
    AlreadyCancelled,
    /// Granted meanwhile: it ends through the grant lifecycle instead.
    Active,
    /// Denied, expired, revoked, verified or gone: nothing to withdraw.
    Closed,
}

/// Withdraws a pending or approved request because the revocation `case` took its
/// requester's access, by a versioned write, audited. The event is recorded when
/// the request was cancelled already too, in case a crash lost it after the state
/// write (its key makes it once).
pub(crate) async fn withdraw_for_revocation(
    store: &impl RequestStore,
    trail: &AuditTrail<'_, impl AuditLog>,
    request_id: &RequestId,
    actor: &str,
    case: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Withdrawal, Error> {
    let reason = format!("the requester's access was revoked (case {case})");
    withdraw(store, trail, request_id, actor, &reason, now).await
}

/// Withdraws a pending or approved request for `reason`, by a versioned write,
/// audited (again, keyed, when it was withdrawn already: in the name of whoever
/// withdrew it first).
pub(crate) async fn withdraw(
    store: &impl RequestStore,
    trail: &AuditTrail<'_, impl AuditLog>,
    request_id: &RequestId,
    actor: &str,
    reason: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Withdrawal, Error> {
    versioned(
        || request_id.to_string(),
        || async move {
            let Some(mut request) = store.get(request_id).await? else {
                return Ok(Attempt::Done(Withdrawal::Closed));
            };
            let before = state_of(&request);
            let changed = match request.withdraw(actor, reason, now) {
                Ok(changed) => changed,
                Err(crate::access::request::RequestError::InvalidTransition {
                    from: crate::access::request::Status::Active,
                    ..
                }) => return Ok(Attempt::Done(Withdrawal::Active)),
                Err(crate::access::request::RequestError::InvalidTransition { .. }) => {
                    return Ok(Attempt::Done(Withdrawal::Closed));
                }
                Err(other) => return Err(other.into()),
            };
            if changed && !written(store.update(&mut request).await)? {
                return Ok(Attempt::Lost);
            }
            record_cancellation(trail, &request, before).await?;
            Ok(Attempt::Done(if changed {
                Withdrawal::Cancelled
            } else {
                Withdrawal::AlreadyCancelled
            }))
        },
    )
    .await
}

/// The part of a request an audit event records as before/after state.
/// Break-glass and vendor requests carry their break-glass state or their vendor
/// in every event, so each is flagged as such in the trail.
pub fn state_of(request: &AccessRequest) -> Value {
    let mut state = json!({
        "status": request.status(),
        "version": request.version(),
        "approvals": request.approvals(),
        "denial": request.denial(),
        "window": request.window(),
        "revoke_cause": request.revoke_cause(),
        "extensions": request.extensions(),
    });
    if let Some(break_glass) = request.break_glass_state() {
        state["break_glass"] = json!(break_glass);
    }
    if let Some(vendor) = request.vendor_of() {
        state["vendor"] = json!(vendor);
    }
    state
}

/// Whether an audit event is about a break-glass request: its state, before or
/// after, carries the break-glass part ([`state_of`] puts it there). What
/// `lapse audit export --break-glass` keeps.
pub fn carries_break_glass(event: &crate::audit::AuditEvent) -> bool {
    [&event.before, &event.after, &event.after["state"]]
        .iter()
        .any(|state| state.get("break_glass").is_some_and(|b| !b.is_null()))
}

/// An audit draft about one request.
/// The audit event of a withdrawal, keyed `request.cancelled` and in the name of
/// whoever withdrew the request (kept on it): recorded after the state write and
/// again by every retry, so a crash between the two loses nothing and a retry by
/// someone else (the requester's cancel after a revocation's, or the other way)
/// does not put its own name on it.
pub(crate) async fn record_cancellation(
    trail: &AuditTrail<'_, impl AuditLog>,
    request: &AccessRequest,
    before: Value,
) -> Result<(), Error> {
    // A request cancelled before Lapse kept the canceller: its event was recorded
    // then, or the retry cannot say by whom.
    let Some(cancellation) = request.cancellation() else {
        return Ok(());
    };
    trail
        .record(request_event(
            request,
            "request.cancelled",
            &cancellation.by,
            "request.cancelled",
            cancellation.reason.clone(),
            before,
        ))
        .await?;
    Ok(())
}

/// The audit event of a pending request's expiry, keyed `request.expired`: recorded
/// after the state write by whoever expired it (a late decision or the sweep) and
/// again by the next of them to see the request expired, so a crash between the two
/// writes loses nothing.
pub(crate) async fn record_expiry(
    trail: &AuditTrail<'_, impl AuditLog>,
    request: &AccessRequest,
    before: Value,
) -> Result<(), Error> {
    trail
        .record(request_event(
            request,
            "request.expired",
            "lapse",
            "request.expired",
            "no decision before the pending deadline",
            before,
        ))
        .await?;
    Ok(())
}

pub(crate) fn request_event(
    request: &AccessRequest,
    key: impl Into<String>,
    actor: &str,
    action: &str,
    reason: impl Into<String>,
    before: Value,
) -> AuditDraft {
    AuditDraft {
        chain: request_chain(request.id()),
        key: key.into(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        subject: request.id().to_string(),
        reason: reason.into(),
        before,
        after: state_of(request),
        at: request.updated_at(),
    }
}

#[cfg(test)]
mod tests;
