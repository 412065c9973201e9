//! # lapse-cli
//!
//! The `lapse` command (`src/main.rs`) and the pieces it is made of:
//! - [`audit`]: `lapse audit verify|export` for auditors.
//! - [`client`]: the HTTP API client (bearer tokens for people, SigV4 for operators).
//! - [`operator`]: the operator's revocation tools, over the operator API.
//! - [`show`]: printing requests and grants.
//!
//! Nothing here knows the local stack: the demo and `serve|token` are the
//! development binary `lapse-dev` in `local/`.

pub mod audit;
pub mod client;
pub mod operator;
pub mod show;
