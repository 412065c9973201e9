//! Ports: the narrow interfaces the core needs from the outside world. Adapters in
//! `lapse-aws` implement them against AWS; [`crate::memory`] implements them in
//! memory for tests. A handler asks for the least it needs.

use std::future::Future;

use crate::audit::{AuditEvent, ChainHead};
use crate::request::{AccessRequest, RequestId};

/// Boxed source error from an adapter (an SDK error, an I/O error...).
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A storage failure, classified so callers know whether to retry.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A create found the item already there.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// An optimistic write lost a race: re-read and try again.
    #[error("{what} changed since it was read")]
    Conflict { what: String },
    /// The stored item cannot be read back into the domain type.
    #[error("stored item {id} is unreadable: {detail}")]
    Corrupt { id: String, detail: String },
    /// The service is throttling; retry with backoff.
    #[error("the store is throttling requests")]
    Throttled(#[source] Source),
    /// The service failed or could not be reached.
    #[error("the store is unavailable")]
    Unavailable(#[source] Source),
}

/// Access requests, with optimistic concurrency on a version number.
pub trait RequestStore: Send + Sync {
    /// Writes a new request; [`StoreError::AlreadyExists`] if its id is taken.
    fn create(
        &self,
        request: &mut AccessRequest,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads a request by id.
    fn get(
        &self,
        id: &RequestId,
    ) -> impl Future<Output = Result<Option<AccessRequest>, StoreError>> + Send;

    /// Writes a changed request if nobody else wrote it since it was read
    /// ([`StoreError::Conflict`] otherwise). Bumps the request's version on success.
    fn update(
        &self,
        request: &mut AccessRequest,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Append-only audit chains.
pub trait AuditLog: Send + Sync {
    /// The newest event of a chain.
    fn head(
        &self,
        chain: &str,
    ) -> impl Future<Output = Result<Option<ChainHead>, StoreError>> + Send;

    /// Appends an event; [`StoreError::Conflict`] if its sequence number is taken.
    fn append(&self, event: &AuditEvent) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A whole chain, in sequence order.
    fn chain(
        &self,
        chain: &str,
    ) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send;
}
