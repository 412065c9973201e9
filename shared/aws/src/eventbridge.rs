//! The EventBridge bus HR events are routed through. Needs `events:PutEvents` on the bus.
//! Events go out as `source = "lapse.hr"`, `detail-type = <event_type>`, `detail` = the
//! validated HR event; the template's rules match on `detail-type`. Incidents go on
//! the same bus as `source = "lapse.incident"`, `detail-type = <kind>`, for the
//! incident tooling's own rules.

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use lapse_core::ports::{Incident, Incidents};
use lapse_core::revocation::hr::HrEvent;
use lapse_core::revocation::ports::{BusError, EventBus};

/// The `source` of every HR event Lapse puts on the bus.
pub const SOURCE: &str = "lapse.hr";

/// The `source` of the incidents Lapse opens.
pub const INCIDENT_SOURCE: &str = "lapse.incident";

#[derive(Clone, Debug)]
pub struct EventBridgeBus {
    client: crate::sdk::Lazy<Client>,
    bus: String,
}

impl EventBridgeBus {
    pub fn new(client: impl Into<crate::sdk::Lazy<Client>>, bus: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            bus: bus.into(),
        }
    }
}

impl EventBridgeBus {
    /// Puts one event; an entry the bus refused is an error too.
    async fn put(
        &self,
        id: &str,
        source: &str,
        detail_type: &str,
        detail: &impl serde::Serialize,
    ) -> Result<(), BusError> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| BusError {
            event_id: id.to_owned(),
            source,
        };
        let detail = serde_json::to_string(detail).map_err(|e| fail(Box::new(e)))?;
        let out = self
            .client
            .put_events()
            .entries(
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(source)
                    .detail_type(detail_type)
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

impl EventBus for EventBridgeBus {
    async fn publish(&self, event: &HrEvent) -> Result<(), BusError> {
        self.put(&event.event_id, SOURCE, event.event_type.as_str(), event)
            .await
    }
}

impl Incidents for EventBridgeBus {
    async fn open(&self, incident: &Incident) -> Result<(), BusError> {
        self.put(&incident.id, INCIDENT_SOURCE, &incident.kind, incident)
            .await
    }
}

/// The rule pattern that routes one HR event type to the revocation workflow. The
/// template declares exactly these; the local stack creates them on moto's bus.
pub fn rule_pattern(event_type: lapse_core::revocation::hr::HrEventType) -> String {
    serde_json::json!({ "source": [SOURCE], "detail-type": [event_type.as_str()] }).to_string()
}

/// The event types routed to the revocation workflow: every one, since its open
/// step records each in the directory of people (a hire then opens no case).
pub const ROUTED: [lapse_core::revocation::hr::HrEventType; 6] = [
    lapse_core::revocation::hr::HrEventType::UserHired,
    lapse_core::revocation::hr::HrEventType::UserTerminated,
    lapse_core::revocation::hr::HrEventType::UserRoleChanged,
    lapse_core::revocation::hr::HrEventType::UserSuspended,
    lapse_core::revocation::hr::HrEventType::ContractorExpired,
    lapse_core::revocation::hr::HrEventType::PolicyViolation,
];
