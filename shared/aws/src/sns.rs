//! SNS notices: one topic per audience. A notifier holds only the topics its
//! function publishes to (its role allows `sns:Publish` on those alone); a notice
//! for any other audience fails as a configuration error rather than an
//! AccessDenied at run time.
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

/// The topics one notifier may publish to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    pub users: Option<String>,
    pub approvers: Option<String>,
    pub security: Option<String>,
}

impl From<Topics> for Reach {
    fn from(t: Topics) -> Self {
        Self {
            users: Some(t.users),
            approvers: Some(t.approvers),
            security: Some(t.security),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SnsNotifier {
    client: crate::sdk::Lazy<Client>,
    reach: Reach,
}

impl SnsNotifier {
    pub fn new(client: impl Into<crate::sdk::Lazy<Client>>, reach: impl Into<Reach>) -> Self {
        Self {
            client: client.into(),
            reach: reach.into(),
        }
    }
}

/// The notice's audience has no topic here.
#[derive(Debug, thiserror::Error)]
#[error("this function has no topic for {0} notices (not in its configuration)")]
struct Unreachable(&'static str);

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
        let topic = |topic: &Option<String>, label: &'static str| {
            topic
                .clone()
                .ok_or_else(|| fail(Box::new(Unreachable(label))))
        };
        publish = match &notice.audience {
            Audience::Person { id } => publish
                .topic_arn(topic(&self.reach.users, "users")?)
                .message_attributes("recipient", string_attr("String", id.to_string())?),
            Audience::Approvers { groups } => publish
                .topic_arn(topic(&self.reach.approvers, "approvers")?)
                .message_attributes(
                    "groups",
                    string_attr(
                        "String.Array",
                        serde_json::to_string(groups).map_err(|e| fail(Box::new(e)))?,
                    )?,
                ),
            Audience::Security => publish.topic_arn(topic(&self.reach.security, "security")?),
        };
        publish.send().await.map_err(|e| fail(Box::new(e)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_notice_outside_the_reach_is_refused_before_any_call() {
        let config = aws_sdk_sns::Config::builder()
            .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
            .region(aws_sdk_sns::config::Region::new("us-east-1"))
            // Nothing listens here: a call that went out would fail differently.
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let notifier = SnsNotifier::new(
            Client::from_conf(config),
            Reach {
                users: Some("arn:aws:sns:us-east-1:123456789012:users".into()),
                ..Reach::default()
            },
        );
        let err = notifier
            .send(&Notice {
                audience: Audience::Security,
                subject: "s".into(),
                body: "b".into(),
                request_id: None,
            })
            .await
            .unwrap_err();
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(
            source.as_deref(),
            Some("this function has no topic for security notices (not in its configuration)")
        );
    }

    #[test]
    fn subjects_fit_sns_rules() {
        assert_eq!(subject_line("Approved: x"), "Approved: x");
        assert_eq!(subject_line(&"a".repeat(150)).len(), 100);
        assert_eq!(subject_line("caf\u{e9}\nx"), "caf??x");
    }
}
