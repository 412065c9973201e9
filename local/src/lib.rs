//! # lapse-local
//!
//! The local stack, so that the demo, the CLI and the workflow tests run Lapse the
//! way AWS does, against moto's server:
//!
//! - [`provision`]: the tables, topics, audit key secret, IAM groups and the state
//!   machine, created through the same AWS APIs the SAM template declares.
//! - [`issuer`]: a development JWT issuer (Ed25519 keys made by the scripts/tests).
//! - [`host`]: one HTTP server that serves the Lambda Invoke API for the task
//!   functions (what Step Functions calls) and an API Gateway stand-in for the HTTP
//!   functions: it verifies the bearer JWT exactly as the deployed JWT authorizer
//!   does (signature, issuer, audience, expiry) and hands the handlers a real API
//!   Gateway v2 event with the verified claims, or answers 401.
//! - [`sigv4`]: the IAM authorizer of the operator routes: SigV4 checked over the
//!   request as received, against the operator keys the local stack issued.
//! - [`workflows`]: starts executions through the Step Functions API (moto records
//!   them and enforces names) and runs the real `grant-lifecycle.asl.json` in
//!   `aws-local-stepfunctions`, whose Task states invoke the host's Lambda API.
//! - [`clock`]: the stack's clock, which the demo, the tests and `lapse-dev clock`
//!   move forward; the host serves it at `/_local/clock`.
//! - [`stack_client`]: what `lapse-dev` asks a running stack: its clock, and the HR
//!   webhook signed as an HR system signs.
//! - [`demo`]: the end-to-end demo and `lapse-dev serve` (the `lapse-dev` binary:
//!   demo, serve, token).
//!
//! Nothing here is deployed; it exists so local runs exercise the deployed code
//! paths end to end.

pub mod clock;
pub mod demo;
pub mod host;
pub mod issuer;
pub mod provision;
pub mod proxy;
pub mod sigv4;
pub mod stack_client;
pub mod workflows;

use std::path::{Path, PathBuf};

/// Anything that stops the local stack from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot provision {what}")]
    Provision {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Init(#[from] lapse_lambda::wiring::InitError),
    #[error("local host I/O failed")]
    Io(#[from] std::io::Error),
    #[error("local HTTP call failed")]
    Http(#[from] reqwest::Error),
    #[error("dev issuer: {0}")]
    Issuer(String),
    /// A call to the running stack failed; the text says which and why.
    #[error("{0}")]
    Call(String),
}

/// The repository root (for the ASL file and the Node tools).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
