//! CloudWatch Embedded Metric Format: one JSON log line per metric batch, which
//! CloudWatch turns into metrics without an API call. The template's alarms watch
//! these (namespace `Lapse`).

use serde_json::{Map, Value, json};

/// The metric namespace.
pub const NAMESPACE: &str = "Lapse";

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
