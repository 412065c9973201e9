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
//! - [`dynamodb`]: `DynamoDbRequestStore` (also `RequestQueries`), `DynamoDbAuditLog`,
//!   `DynamoDbLedger`, and table provisioning for the local stack.
//! - [`iam`]: `IamDirectory` (grants in, snapshots out).
//! - [`sns`]: `SnsNotifier`, one topic per audience.
//! - [`sfn`]: starting workflows (`SfnWorkflowStarter`).
//! - [`secrets`]: the audit signing key from Secrets Manager.
//! - [`revocations`]: revocation cases, controls, the before-state archive and event
//!   claims in one table.
//! - [`eventbridge`]: the bus HR events (and incidents) are routed through.
//! - [`leases`]: credential leases (in the revocations table).
//! - [`vault`]: Secrets Manager as the credential vault: current version, rotation.
//! - [`vendors`]: vendors' temporary IAM users and their first password's hand-over.
//! - [`scheduler`]: one-time schedules for revocations set for later.

pub mod anchors;
pub mod dynamodb;
pub mod eventbridge;
pub mod iam;
pub mod kms;
pub mod leases;
pub mod people;
pub mod revocations;
pub mod scheduler;
pub mod sdk;
pub mod secrets;
pub mod sfn;
pub mod sns;
pub mod tables;
pub mod vault;
pub mod vendors;

mod errors;
