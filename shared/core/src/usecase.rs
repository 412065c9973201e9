//! Use cases: the core's operations over its ports. Handlers call these.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{AuditDraft, AuditEvent, AuditSigner};
use crate::error::Error;
use crate::identity::Principal;
use crate::policy::{Catalog, PolicyHash};
use crate::ports::{AuditLog, RequestStore, StoreError};
use crate::request::{AccessRequest, NewRequest};
use crate::risk::RequesterContext;

/// How many times an audit append retries after losing a race for its sequence number.
const AUDIT_APPEND_ATTEMPTS: usize = 8;

/// Where audit events go: a log, the key that signs them, and the policy in force.
#[derive(Debug)]
pub struct AuditTrail<'a, L> {
    pub log: &'a L,
    pub signer: &'a AuditSigner,
    pub policy_hash: &'a PolicyHash,
}

impl<L: AuditLog> AuditTrail<'_, L> {
    /// Seals and appends an event on top of its chain's current head, retrying when a
    /// concurrent writer took the sequence number first.
    pub async fn record(&self, draft: AuditDraft) -> Result<AuditEvent, Error> {
        let mut last_conflict = None;
        for _ in 0..AUDIT_APPEND_ATTEMPTS {
            let head = self.log.head(&draft.chain).await?;
            let event = self
                .signer
                .seal(draft.clone(), self.policy_hash, head.as_ref());
            match self.log.append(&event).await {
                Ok(()) => return Ok(event),
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

/// The audit chain for one request.
pub fn request_chain(request: &AccessRequest) -> String {
    format!("request#{}", request.id())
}

/// Validates, scores, routes and persists a new request, and audits it.
pub async fn submit_request(
    store: &impl RequestStore,
    trail: &AuditTrail<'_, impl AuditLog>,
    catalog: &Catalog,
    requester: &Principal,
    context: RequesterContext,
    input: NewRequest,
    now: DateTime<Utc>,
) -> Result<AccessRequest, Error> {
    let mut request = AccessRequest::submit(input, requester, context, catalog, now)?;
    store.create(&mut request).await?;
    trail
        .record(AuditDraft {
            chain: request_chain(&request),
            actor: requester.id().to_string(),
            action: "request.submitted".into(),
            subject: request.id().to_string(),
            reason: request.justification().to_owned(),
            before: serde_json::Value::Null,
            after: json!({
                "status": request.status(),
                "resource": request.resource(),
                "duration": request.duration(),
                "risk": request.risk(),
                "routing": request.routing(),
            }),
            at: now,
        })
        .await?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditVerifier, verify_chain};
    use crate::memory::{MemoryAuditLog, MemoryRequestStore};
    use crate::ports::RequestStore;
    use crate::request::Status;
    use crate::testing::{catalog, employee_context, monday_at, person};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        // The in-memory ports never suspend, so one poll completes them.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("in-memory future suspended"),
        }
    }

    #[test]
    fn submit_persists_and_audits() {
        let store = MemoryRequestStore::default();
        let log = MemoryAuditLog::default();
        let signer = AuditSigner::from_seed_hex("k1", &"33".repeat(32)).unwrap();
        let input = NewRequest {
            resource: "staging-logs-read".into(),
            duration: Some("2h".parse().unwrap()),
            justification: "debug the deploy".into(),
            ticket: None,
        };
        let catalog = catalog();
        let trail = AuditTrail {
            log: &log,
            signer: &signer,
            policy_hash: catalog.hash(),
        };
        let req = block_on(submit_request(
            &store,
            &trail,
            &catalog,
            &person("rita", &[]),
            employee_context(),
            input,
            monday_at(10),
        ))
        .unwrap();
        assert_eq!(req.version(), 1);
        let stored = block_on(store.get(req.id())).unwrap().unwrap();
        assert_eq!(stored, req);
        assert_eq!(stored.status(), Status::Pending);
        let chain = block_on(log.chain(&request_chain(&req))).unwrap();
        assert_eq!(chain.len(), 1);
        assert_eq!(chain[0].policy_hash, *catalog.hash());
        assert_eq!(chain[0].action, "request.submitted");
        let verifier = AuditVerifier::new()
            .trust("k1", &signer.public_key_hex())
            .unwrap();
        assert!(verify_chain(&request_chain(&req), &chain, &verifier, None).is_ok());
    }

    #[test]
    fn stale_updates_conflict() {
        let store = MemoryRequestStore::default();
        let mut req = AccessRequest::submit(
            NewRequest {
                resource: "staging-logs-read".into(),
                duration: None,
                justification: "x".into(),
                ticket: None,
            },
            &person("rita", &[]),
            employee_context(),
            &catalog(),
            monday_at(10),
        )
        .unwrap();
        block_on(store.create(&mut req)).unwrap();
        assert!(matches!(
            block_on(store.create(&mut req)),
            Err(StoreError::AlreadyExists(_))
        ));
        let mut a = req.clone();
        let mut b = req.clone();
        block_on(store.update(&mut a)).unwrap();
        assert!(matches!(
            block_on(store.update(&mut b)),
            Err(StoreError::Conflict { .. })
        ));
    }

    #[test]
    fn concurrent_audit_writers_on_one_chain_both_land() {
        let log = MemoryAuditLog::default();
        let signer = AuditSigner::from_seed_hex("k1", &"33".repeat(32)).unwrap();
        let policy = PolicyHash::of(b"p");
        let draft = |actor: &str| AuditDraft {
            chain: "user#x".into(),
            actor: actor.into(),
            action: "a".into(),
            subject: "x".into(),
            reason: "r".into(),
            before: serde_json::Value::Null,
            after: serde_json::Value::Null,
            at: monday_at(10),
        };
        // Writer B seals on the same head as A, loses the race, and retries on top.
        let trail = AuditTrail {
            log: &log,
            signer: &signer,
            policy_hash: &policy,
        };
        let head = block_on(log.head("user#x")).unwrap();
        let stale = signer.seal(draft("b"), &policy, head.as_ref());
        block_on(trail.record(draft("a"))).unwrap();
        assert!(matches!(
            block_on(log.append(&stale)),
            Err(StoreError::Conflict { .. })
        ));
        block_on(trail.record(draft("b"))).unwrap();
        let chain = block_on(log.chain("user#x")).unwrap();
        assert_eq!(
            chain.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let verifier = AuditVerifier::new()
            .trust("k1", &signer.public_key_hex())
            .unwrap();
        assert!(verify_chain("user#x", &chain, &verifier, None).is_ok());
    }
}
