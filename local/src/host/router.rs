//! The bus's rule targets, locally: events the rules delivered to the router
//! queue start revocation executions.

use aws_config::SdkConfig;

use crate::workflows::LocalWorkflows;

/// Moves events the bus's rules delivered to the router queue into revocation
/// executions, as the deployed rules' state machine targets do.
pub(crate) async fn route_hr_events(
    sdk: SdkConfig,
    queue_url: String,
    revocations: LocalWorkflows,
) {
    use lapse_core::ports::WorkflowStarter;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await;
        let Ok(received) = received else {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            continue;
        };
        for message in received.messages() {
            let Some(body) = message.body() else { continue };
            let Ok(event) = serde_json::from_str::<serde_json::Value>(body) else {
                tracing::warn!("router: a message that is not an EventBridge event");
                continue;
            };
            let event_id = event["detail"]["event_id"].as_str().unwrap_or("unknown");
            let name: String = format!("hr-{event_id}")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .take(80)
                .collect();
            // Unique per delivery, as EventBridge's own at-least-once deliveries are.
            let delivery = format!("{name}-{}", message.message_id().unwrap_or_default());
            let delivery: String = delivery.chars().take(80).collect();
            match revocations.start(&delivery, &event).await {
                Ok(_) => {
                    if let Some(handle) = message.receipt_handle() {
                        let _ = sqs
                            .delete_message()
                            .queue_url(&queue_url)
                            .receipt_handle(handle)
                            .send()
                            .await;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "router: could not start a revocation; will retry")
                }
            }
        }
    }
}
