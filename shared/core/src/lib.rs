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
//!
//! Three domains side by side, over a shared kernel:
//!
//! - [`access`]: just-in-time access. [`access::request`] (the request lifecycle and
//!   its invariants), [`access::risk`] (explainable scoring and routing),
//!   [`access::grant`] (time-bound IAM documents), [`access::ledger`] (which live
//!   grants hold which IAM artifact), [`access::breakglass`], [`access::vendor`],
//!   [`access::role_denies`] (the one deny per role of sessions that must not live
//!   on), and its operations over the ports, [`access::usecase`].
//! - [`people`]: the directory of people kept from HR, field by field with where
//!   each value came from ([`people::person`]); every accepted HR event updates it
//!   ([`people::usecase::record_hr_event`]). Standing access builds on it.
//! - [`revocation`]: rights revocation. HR webhook authentication, revocation
//!   planning, cases, operator tools and their steps ([`revocation::usecase`]).
//!
//! The two meet where a grant meets a revocation: revocation ends what access
//! granted (its requests, ledger and custody); access asks revocation's controls
//! whether a person is revoked, and a vendor's deactivation runs a revocation plan.
//!
//! The kernel both stand on:
//! - [`policy`]: the catalog, its validation with located errors, its content hash.
//! - [`identity`]: authenticated principals; [`duration`]: `4h` / `PT4H` durations.
//! - [`audit`]: hash-linked, signed audit chains.
//! - [`ports`]: the traits adapters implement; [`memory`]: in-memory fakes of them;
//!   [`testing`]: fixtures for tests.
//! - [`error`]: the crate error and its [`error::ErrorKind`].

pub mod access;
pub mod people;
pub mod revocation;

pub mod audit;
pub mod duration;
pub mod error;
pub mod identity;
pub mod memory;
pub mod policy;
pub mod ports;
pub mod testing;

pub use error::{Error, ErrorKind};
