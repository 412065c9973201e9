//! Automated rights revocation: HR events in, verified revocations out.
//!
//! - [`webhook`]: authenticating HR deliveries (bearer + Standard-Webhooks HMAC).
//! - [`hr`]: the HR event payload, validated.
//! - [`plan`]: snapshots of what a user holds, the actions that take a kind of
//!   access away, and the residue verification looks for.
//! - [`case`]: a revocation case from trigger to verification.
//! - [`ports`]: cases, the identity directory, controls (legal hold, overrides),
//!   the before-state archive, event claims (replay), the event bus.
//! - [`memory`]: in-memory fakes of every port, and `MemoryRevocations` over them.
//! - [`operator`]: an operator's ask, checked and turned into a case.
//! - [`usecase`]: the workflow's steps, each idempotent, and the operator's tools.

pub mod batch;
pub mod case;
pub mod hr;
pub mod memory;
pub mod operator;
pub mod plan;
pub mod ports;
pub mod usecase;
pub mod webhook;
