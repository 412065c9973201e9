//! # lapse-aws
//!
//! Adapters from `lapse-core`'s ports to AWS services, and the one place SDK
//! configuration is built.
//!
//! **Invariants:** adapters map every SDK error into a core error
//! ([`lapse_core::ports::StoreError`]), classified as conflict, throttling or
//! unavailability: never a stringly-typed SDK error. Each adapter needs only the IAM
//! actions its doc comment lists; `infra/template.yaml` grants exactly those.
//!
//! ## Layout
//! - [`sdk`]: loading `SdkConfig` from the standard environment (`AWS_ENDPOINT_URL`
//!   and friends), or for an explicit local endpoint.
//! - [`dynamodb`]: `DynamoDbRequestStore`, `DynamoDbAuditLog`, and table provisioning
//!   for the local stack.

pub mod dynamodb;
pub mod sdk;

mod errors;
