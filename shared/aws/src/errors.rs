//! Classifying SDK errors into core store errors.

use std::fmt::Debug;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use lapse_core::ports::StoreError;

/// Error codes AWS uses when it throttles a caller.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];

/// Maps an SDK error; `on_condition` builds the error for a failed condition check.
pub(crate) fn store_error<E, R>(
    err: SdkError<E, R>,
    on_condition: impl FnOnce() -> StoreError,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    match err.code() {
        Some("ConditionalCheckFailedException") => on_condition(),
        Some(code) if THROTTLING_CODES.contains(&code) => StoreError::Throttled(Box::new(err)),
        _ => StoreError::Unavailable(Box::new(err)),
    }
}

/// The record an item keeps as JSON in its `doc` attribute; a missing or
/// unreadable one is `StoreError::Corrupt` naming `id`.
pub(crate) fn doc<T: serde::de::DeserializeOwned>(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    id: &str,
) -> Result<T, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        id: id.to_owned(),
        detail,
    };
    match item.get("doc") {
        Some(aws_sdk_dynamodb::types::AttributeValue::S(text)) => {
            serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))
        }
        _ => Err(corrupt("attribute `doc` is missing".into())),
    }
}
