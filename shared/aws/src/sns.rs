//! SNS notices: one topic per audience. Needs `sns:Publish` on the three topics.
//!
//! Messages carry attributes that subscriptions filter on: `recipient` (a person's
//! id) on the users topic, `groups` (approver groups) on the approvers topic.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use lapse_core::ports::{Audience, Notice, Notifier, NotifyError};

/// The topic ARNs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    pub users: String,
    pub approvers: String,
    pub security: String,
}

#[derive(Clone, Debug)]
pub struct SnsNotifier {
    client: Client,
    topics: Topics,
}

impl SnsNotifier {
    pub fn new(client: Client, topics: Topics) -> Self {
        Self { client, topics }
    }
}

/// SNS subjects are at most 100 printable ASCII characters.
fn subject_line(subject: &str) -> String {
    let ascii: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    ascii.chars().take(100).collect()
}

impl Notifier for SnsNotifier {
    async fn send(&self, notice: &Notice) -> Result<(), NotifyError> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| NotifyError {
            subject: notice.subject.clone(),
            source,
        };
        let message = serde_json::to_string(notice).map_err(|e| fail(Box::new(e)))?;
        let mut publish = self
            .client
            .publish()
            .subject(subject_line(&notice.subject))
            .message(message);
        let string_attr = |data_type: &str, value: String| {
            MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(value)
                .build()
                .map_err(|e| fail(Box::new(e)))
        };
        publish = match &notice.audience {
            Audience::Person { id } => publish
                .topic_arn(&self.topics.users)
                .message_attributes("recipient", string_attr("String", id.to_string())?),
            Audience::Approvers { groups } => publish
                .topic_arn(&self.topics.approvers)
                .message_attributes(
                    "groups",
                    string_attr(
                        "String.Array",
                        serde_json::to_string(groups).map_err(|e| fail(Box::new(e)))?,
                    )?,
                ),
            Audience::Security => publish.topic_arn(&self.topics.security),
        };
        publish.send().await.map_err(|e| fail(Box::new(e)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::subject_line;

    #[test]
    fn subjects_fit_sns_rules() {
        assert_eq!(subject_line("Approved: x"), "Approved: x");
        assert_eq!(subject_line(&"a".repeat(150)).len(), 100);
        assert_eq!(subject_line("caf\u{e9}\nx"), "caf??x");
    }
}
