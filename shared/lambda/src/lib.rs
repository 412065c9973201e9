//! # lapse-lambda
//!
//! What every Lapse Lambda binary shares: JSON logs ([`init_tracing`]), configuration
//! read once at init ([`config`]), the policy catalog compiled into the binary
//! ([`bundled_catalog`]), and errors mapped to Lambda diagnostics whose names the
//! state machines' `Retry`/`Catch` clauses match ([`error`]).
//!
//! **Invariant:** a binary's `main.rs` is wiring only; the handler is a named async
//! function in the function crate's library, taking `&impl Port`s and a typed payload.
//!
//! ## Layout
//! - [`config`]: reading environment variables with clear errors.
//! - [`error`]: `HandlerError`, its `Diagnostic` mapping and the stable error names.
//! - [`wiring`]: adapters built from environment variables at init.
//! - [`http`]: identity from verified claims, JSON bodies, error responses.
//! - [`metrics`]: CloudWatch Embedded Metric Format records.

pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod wiring;

use lapse_core::policy::{Catalog, PolicyError};

pub use error::HandlerError;

/// The catalog this binary was built with (`infra/policy/catalog.yaml`). Compiling it
/// in ties each deployment to one policy hash, which every audit event records.
pub const BUNDLED_CATALOG: &str = include_str!("../../../infra/policy/catalog.yaml");

/// [`BUNDLED_CATALOG`] as `build.rs` compiled it ([`Catalog::compile`]): validated
/// at build time, and read at start-up without the YAML parser.
const COMPILED_CATALOG: &str = include_str!(concat!(env!("OUT_DIR"), "/catalog.json"));

/// The bundled catalog, validated (again: [`Catalog::from_compiled`] checks what
/// [`Catalog::parse`] checks).
pub fn bundled_catalog() -> Result<Catalog, PolicyError> {
    Catalog::from_compiled(COMPILED_CATALOG, "infra/policy/catalog.yaml")
}

/// JSON logs on stdout, filtered by `RUST_LOG` (default `info`). Safe to call twice.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
