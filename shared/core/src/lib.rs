//! # lapse-core
//!
//! The domain of Lapse, just-in-time access and rights revocation for AWS: policy,
//! risk, the request lifecycle, the grant ledger, the signed audit chain, and the
//! ports through which all of it reaches the outside world.
//!
//! **Architecture invariant:** this crate depends on no `aws-*` and no `lambda_*`
//! crate (checked by `tests/architecture.rs`). It knows nothing about DynamoDB, IAM
//! or Lambda; `lapse-aws` adapts the ports to AWS, and the binaries wire them.
//!
//! ## Layout
//! - [`duration`]: `4h` / `PT4H` durations.
//! - [`policy`]: the catalog, its validation with located errors, its content hash.
//! - [`identity`]: authenticated principals.
//! - [`risk`]: explainable scoring and approval routing.
//! - [`request`]: the request lifecycle state machine and its invariants.
//! - [`breakglass`]: emergency access: the cap, the justification owed, the review.
//! - [`vendor`]: third-party access: the vendor's temporary user, its base policy.
//! - [`ledger`]: which live grants hold which IAM artifact.
//! - [`role_denies`]: the one deny per role of sessions that must not live on.
//! - [`audit`]: hash-linked, Ed25519-signed audit chains.
//! - [`ports`]: the traits adapters implement; [`memory`]: in-memory fakes of them.
//! - [`usecase`]: operations over the ports, called by handlers.
//! - [`revocation`]: HR webhook authentication, revocation planning, cases and steps.
//! - [`error`]: the crate error and its [`error::ErrorKind`].

pub mod audit;
pub mod breakglass;
pub mod duration;
pub mod error;
pub mod grant;
pub mod identity;
pub mod ledger;
pub mod memory;
pub mod policy;
pub mod ports;
pub mod request;
pub mod revocation;
pub mod risk;
pub mod role_denies;
pub mod testing;
pub mod usecase;
pub mod vendor;

pub use error::{Error, ErrorKind};
