//! The directory's store (DynamoDB in AWS: `lapse_aws::people`).

use std::future::Future;

use crate::identity::PrincipalId;
use crate::people::person::Person;
use crate::ports::StoreError;

/// One record per person, keyed by user name without case (as IAM compares names).
pub trait PeopleStore: Send + Sync {
    fn get(
        &self,
        username: &PrincipalId,
    ) -> impl Future<Output = Result<Option<Person>, StoreError>> + Send;
    /// Writes `person` if the stored version is still `person.version` (0: none
    /// stored), and bumps it; `StoreError::Conflict` when another writer came first.
    fn put(&self, person: &mut Person) -> impl Future<Output = Result<(), StoreError>> + Send;
}
