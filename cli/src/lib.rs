//! # lapse-cli
//!
//! The `lapse` command (`src/main.rs`) and the pieces it is made of:
//! - [`client`]: the HTTP API client.
//! - [`demo`]: the end-to-end demo on the local stack.

pub mod client;
pub mod demo;
pub mod operator;
pub mod show;
