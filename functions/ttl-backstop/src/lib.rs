//! # ttl-backstop
//!
//! DynamoDB Streams handler on the ledger table. When DynamoDB's TTL deletes a
//! ledger hold (a while after the grant's end, and possibly up to two days late),
//! the grant is revoked and verified if it is somehow still active. A last resort,
//! not the timer: the workflow and the sweeper act first, and this does nothing when
//! they already did. Failures are reported per record (`batchItemFailures`), so one
//! bad record never holds back the others and none is lost.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use lambda_runtime::LambdaEvent;
use lapse_core::access::request::{RequestId, Status};
use lapse_core::access::usecase::sweep::settle_expired;
use lapse_core::ports::RequestStore;
use lapse_lambda::HandlerError;
use lapse_lambda::wiring::Lifecycle;
use serde::Serialize;

/// Partial batch response for stream event sources with `ReportBatchItemFailures`.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// Is this record a TTL deletion (rather than Lapse's own release)?
pub fn is_ttl_removal(record: &EventRecord) -> bool {
    record.event_name == "REMOVE"
        && record
            .user_identity
            .as_ref()
            .is_some_and(|u| u.type_ == "Service" && u.principal_id == "dynamodb.amazonaws.com")
}

/// The grant id in a removed ledger item.
pub fn grant_id(record: &EventRecord) -> Option<String> {
    let image = serde_json::to_value(&record.change.old_image).ok()?;
    image.pointer("/grant_id/S")?.as_str().map(str::to_owned)
}

#[tracing::instrument(skip_all, fields(records = event.payload.records.len()))]
pub async fn handler(
    deps: &Lifecycle,
    event: LambdaEvent<Event>,
) -> Result<BatchResponse, HandlerError> {
    let mut response = BatchResponse::default();
    for record in &event.payload.records {
        if !is_ttl_removal(record) {
            continue;
        }
        let Some(id) = grant_id(record).and_then(|g| RequestId::parse(&g).ok()) else {
            tracing::warn!(event_id = %record.event_id, "TTL removal without a grant id; skipped");
            continue;
        };
        let result = async {
            let still_active = deps
                .store
                .get(&id)
                .await?
                .is_some_and(|r| matches!(r.status(), Status::Active | Status::Revoked));
            if still_active {
                settle_expired(
                    &deps.grants(),
                    &deps.directory,
                    &deps.auditing.trail(),
                    &id,
                    deps.clock.now(),
                )
                .await?;
            }
            Ok::<_, lapse_core::Error>(())
        }
        .await;
        if let Err(err) = result {
            tracing::error!(grant = %id, error = %err, "backstop revocation failed; the record will be retried");
            response.batch_item_failures.push(ItemFailure {
                item_identifier: record
                    .change
                    .sequence_number
                    .clone()
                    .unwrap_or_else(|| record.event_id.clone()),
            });
        }
    }
    Ok(response)
}
