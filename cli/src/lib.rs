//! # lapse-cli
//!
//! The `lapse` command (`src/main.rs`) and the pieces it is made of:
//! - [`audit`]: `lapse audit verify|export` for auditors.
//! - [`client`]: the HTTP API client.
//! - [`demo`]: the end-to-end demo on the local stack.

pub mod audit;
pub mod client;
pub mod demo;
pub mod operator;
pub mod show;
