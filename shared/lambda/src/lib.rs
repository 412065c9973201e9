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

/// JSON logs on stdout, filtered by `RUST_LOG` ([`log_filter`]). Safe to call twice.
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_ansi(false)
        .with_target(false)
        .finish()
        .with(log_filter(std::env::var("RUST_LOG").ok().as_deref()))
        .try_init();
}

/// What `RUST_LOG` lets through: a level (`warn`) and per-target levels
/// (`info,lapse_aws=warn`), as `tracing_subscriber`'s `Targets` reads them. Unset,
/// empty or unreadable: `info`, as the template sets it. Release builds compile out
/// `debug` and `trace` events (the workspace's `tracing` feature
/// `release_max_level_info`): the SDK logs requests at those levels.
pub fn log_filter(var: Option<&str>) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::Targets;
    var.filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn rust_log_sets_the_level_and_per_target_levels() {
        let warn = log_filter(Some("warn"));
        assert!(warn.would_enable("lapse_aws::iam", &Level::WARN));
        assert!(!warn.would_enable("lapse_aws::iam", &Level::INFO));

        let mixed = log_filter(Some("info,aws_smithy_runtime=error"));
        assert!(mixed.would_enable("lapse_core", &Level::INFO));
        assert!(!mixed.would_enable("aws_smithy_runtime::client", &Level::WARN));
        assert!(mixed.would_enable("aws_smithy_runtime::client", &Level::ERROR));
    }

    #[test]
    fn unset_empty_or_unreadable_rust_log_means_info() {
        for var in [None, Some(""), Some("  "), Some("lapse=loud"), Some("=[")] {
            let filter = log_filter(var);
            assert!(filter.would_enable("lapse_core", &Level::INFO), "{var:?}");
            assert!(!filter.would_enable("lapse_core", &Level::DEBUG), "{var:?}");
        }
    }
}
