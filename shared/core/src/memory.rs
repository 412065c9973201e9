//! In-memory implementations of the ports, for unit and property tests.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::audit::{AuditEvent, ChainHead};
use crate::ports::{AuditLog, RequestStore, StoreError};
use crate::request::{AccessRequest, RequestId};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep going.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Requests in a map, with the same version rules as the DynamoDB store.
#[derive(Debug, Default)]
pub struct MemoryRequestStore {
    items: Mutex<BTreeMap<RequestId, AccessRequest>>,
}

impl RequestStore for MemoryRequestStore {
    async fn create(&self, request: &mut AccessRequest) -> Result<(), StoreError> {
        let mut items = lock(&self.items);
        if items.contains_key(request.id()) {
            return Err(StoreError::AlreadyExists(request.id().to_string()));
        }
        request.committed_at_version(1);
        items.insert(request.id().clone(), request.clone());
        Ok(())
    }

    async fn get(&self, id: &RequestId) -> Result<Option<AccessRequest>, StoreError> {
        Ok(lock(&self.items).get(id).cloned())
    }

    async fn update(&self, request: &mut AccessRequest) -> Result<(), StoreError> {
        let mut items = lock(&self.items);
        match items.get(request.id()) {
            Some(stored) if stored.version() == request.version() => {
                request.committed_at_version(request.version() + 1);
                items.insert(request.id().clone(), request.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict {
                what: request.id().to_string(),
            }),
        }
    }
}

/// Audit chains in a map.
#[derive(Debug, Default)]
pub struct MemoryAuditLog {
    chains: Mutex<BTreeMap<String, Vec<AuditEvent>>>,
}

impl AuditLog for MemoryAuditLog {
    async fn head(&self, chain: &str) -> Result<Option<ChainHead>, StoreError> {
        Ok(lock(&self.chains)
            .get(chain)
            .and_then(|c| c.last())
            .map(AuditEvent::head))
    }

    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut chains = lock(&self.chains);
        let chain = chains.entry(event.chain.clone()).or_default();
        if event.seq != chain.len() as u64 {
            return Err(StoreError::Conflict {
                what: format!("{}#{}", event.chain, event.seq),
            });
        }
        chain.push(event.clone());
        Ok(())
    }

    async fn chain(&self, chain: &str) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(lock(&self.chains).get(chain).cloned().unwrap_or_default())
    }
}
