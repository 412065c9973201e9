//! Just-in-time access: someone asks for a resource, for how long and why; Lapse
//! scores the risk and routes the approval, grants time-bound IAM access, takes it
//! back at its end and verifies that it is gone. Break-glass, credential checkout
//! and sponsored vendor access are paths through the same lifecycle.

pub mod breakglass;
pub mod grant;
pub mod ledger;
pub mod request;
pub mod risk;
pub mod role_denies;
pub mod usecase;
pub mod vendor;
