//! CloudWatch Embedded Metric Format: one JSON log line per metric batch, which
//! CloudWatch turns into metrics without an API call. The template's alarms watch
//! these (namespace `Lapse`).

use serde_json::{Map, Value, json};

/// The metric namespace.
pub const NAMESPACE: &str = "Lapse";

/// One metric Lapse emits: its name and its dimensions, each with its fixed value
/// or `None` where the value varies (a revocation's kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Emitted {
    pub name: &'static str,
    pub dimensions: &'static [(&'static str, Option<&'static str>)],
}

const GRANT: &[(&str, Option<&str>)] = &[("Workflow", Some("grant-lifecycle"))];
const REVOCATION: &[(&str, Option<&str>)] = &[("Workflow", Some("revocation"))];
const REVOCATION_KIND: &[(&str, Option<&str>)] =
    &[("Workflow", Some("revocation")), ("Kind", None)];
const SWEEPER: &[(&str, Option<&str>)] = &[("Workflow", Some("sweeper"))];
const BREAK_GLASS: &[(&str, Option<&str>)] = &[("Path", Some("break-glass"))];

const fn m(
    name: &'static str,
    dimensions: &'static [(&'static str, Option<&'static str>)],
) -> Emitted {
    Emitted { name, dimensions }
}

/// Every metric the functions emit. [`emit`] refuses anything else in debug
/// builds (so a test that reaches an unlisted emission fails), and the template's
/// alarms and dashboard are checked against this list (`tests/template.rs`).
pub const EMITTED: &[Emitted] = &[
    m("VerificationSuccesses", GRANT),
    m("VerificationFailures", GRANT),
    m("WorkflowFailures", GRANT),
    m("RevocationsStarted", REVOCATION),
    m("RevocationDuration", REVOCATION),
    m("RevocationDuration", REVOCATION_KIND),
    m("Revocations", REVOCATION_KIND),
    m("VerificationSuccesses", REVOCATION),
    m("VerificationFailures", REVOCATION),
    m("WorkflowFailures", REVOCATION),
    // A termination or suspension held back by an override.
    m("RevocationsHeld", REVOCATION),
    m("SweptExpiredRequests", SWEEPER),
    m("SweptRevocations", SWEEPER),
    m("SweptRestarts", SWEEPER),
    m("SweepFailures", SWEEPER),
    // Gauges, measured by the sweeper every run.
    m("GrantsActive", SWEEPER),
    m("ApprovalsWaiting", SWEEPER),
    m("RevocationsInProgress", SWEEPER),
    m("BreakGlassUses", BREAK_GLASS),
    m("BreakGlassIncidents", BREAK_GLASS),
];

/// Whether `EMITTED` lists this metric with exactly these dimensions.
pub fn is_registered(name: &str, dimensions: &[(&str, &str)]) -> bool {
    EMITTED.iter().any(|e| {
        e.name == name
            && e.dimensions.len() == dimensions.len()
            && e.dimensions
                .iter()
                .zip(dimensions)
                .all(|((n, v), (dn, dv))| n == dn && v.is_none_or(|v| v == *dv))
    })
}

/// One EMF record with dimensions and metrics (count or milliseconds).
pub fn record(dimensions: &[(&str, &str)], metrics: &[(&str, f64, &str)]) -> Value {
    let mut root = Map::new();
    for (name, value) in dimensions {
        root.insert((*name).to_owned(), Value::String((*value).to_owned()));
    }
    for (name, value, _) in metrics {
        root.insert((*name).to_owned(), json!(value));
    }
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": chrono::Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(n, _)| *n).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(n, _, unit)| json!({"Name": n, "Unit": unit})).collect::<Vec<_>>(),
            }]
        }),
    );
    Value::Object(root)
}

/// Writes a record to stdout, where Lambda's log agent turns EMF into metrics.
/// Outside Lambda (the local stack, tests) the record goes to the debug log instead,
/// so it does not mix with a program's own output.
pub fn emit(dimensions: &[(&str, &str)], metrics: &[(&str, f64, &str)]) {
    for (name, _, _) in metrics {
        debug_assert!(
            is_registered(name, dimensions),
            "metric {name} with dimensions {dimensions:?} is not in metrics::EMITTED"
        );
    }
    let record = record(dimensions, metrics);
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        println!("{record}");
    } else {
        tracing::debug!(emf = %record, "metric");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_checks_names_dimensions_and_fixed_values() {
        assert!(is_registered("SweepFailures", &[("Workflow", "sweeper")]));
        assert!(is_registered(
            "Revocations",
            &[("Workflow", "revocation"), ("Kind", "full")]
        ));
        assert!(!is_registered(
            "SweepFailures",
            &[("Workflow", "revocation")]
        ));
        assert!(!is_registered("SweepFailure", &[("Workflow", "sweeper")]));
        assert!(!is_registered("Revocations", &[("Workflow", "revocation")]));
        assert!(!is_registered(
            "SweepFailures",
            &[("Workflow", "sweeper"), ("Kind", "x")]
        ));
    }

    #[test]
    fn records_follow_the_emf_shape() {
        let r = record(
            &[("Function", "verify")],
            &[("VerificationFailures", 1.0, "Count")],
        );
        assert_eq!(r["Function"], "verify");
        assert_eq!(r["VerificationFailures"], 1.0);
        assert_eq!(r["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Lapse");
        assert_eq!(
            r["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "Function"
        );
        assert_eq!(
            r["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Count"
        );
    }
}
