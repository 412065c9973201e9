//! The EventBridge bus HR events are routed through. Needs `events:PutEvents` on the bus.
//! Events go out as `source = "lapse.hr"`, `detail-type = <event_type>`, `detail` = the
//! validated HR event; the template's rules match on `detail-type`.

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use lapse_core::revocation::hr::HrEvent;
use lapse_core::revocation::ports::{BusError, EventBus};

/// The `source` of every event Lapse puts on the bus.
pub const SOURCE: &str = "lapse.hr";

#[derive(Clone, Debug)]
pub struct EventBridgeBus {
    client: Client,
    bus: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

impl EventBus for EventBridgeBus {
    async fn publish(&self, event: &HrEvent) -> Result<(), BusError> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| BusError {
            event_id: event.event_id.clone(),
            source,
        };
        let detail = serde_json::to_string(event).map_err(|e| fail(Box::new(e)))?;
        let out = self
            .client
            .put_events()
            .entries(
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(event.event_type.as_str())
                    .detail(detail)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| fail(Box::new(e)))?;
        if out.failed_entry_count() > 0 {
            let reason = out
                .entries()
                .iter()
                .filter_map(|e| e.error_message())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(fail(reason.into()));
        }
        Ok(())
    }
}

/// The rule pattern that routes one HR event type to the revocation workflow. The
/// template declares exactly these; the local stack creates them on moto's bus.
pub fn rule_pattern(event_type: lapse_core::revocation::hr::HrEventType) -> String {
    serde_json::json!({ "source": [SOURCE], "detail-type": [event_type.as_str()] }).to_string()
}

/// The event types that start a revocation (hires do not).
pub const ROUTED: [lapse_core::revocation::hr::HrEventType; 5] = [
    lapse_core::revocation::hr::HrEventType::UserTerminated,
    lapse_core::revocation::hr::HrEventType::UserRoleChanged,
    lapse_core::revocation::hr::HrEventType::UserSuspended,
    lapse_core::revocation::hr::HrEventType::ContractorExpired,
    lapse_core::revocation::hr::HrEventType::PolicyViolation,
];
