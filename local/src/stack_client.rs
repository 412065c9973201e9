//! What `lapse-dev` asks a running local stack (`lapse-dev serve`) over HTTP: its
//! clock (read, moved) and the HR webhook, signed as an HR system signs.

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};

/// A running local stack, by its URL (what `serve` prints as `LAPSE_API_URL`).
#[derive(Clone, Debug)]
pub struct StackClient {
    url: String,
    http: reqwest::Client,
}

/// Where the clock is after a move, and where it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moved {
    pub from: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

fn time_of(answer: &serde_json::Value, field: &str) -> Result<DateTime<Utc>> {
    let text = answer[field]
        .as_str()
        .with_context(|| format!("the stack's answer has no `{field}`: {answer}"))?;
    Ok(DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("the stack's `{field}` is not a time: {text}"))?
        .with_timezone(&Utc))
}

impl StackClient {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    fn unreachable(&self) -> String {
        format!(
            "cannot reach the local stack at {} (is `scripts/serve` running?)",
            self.url
        )
    }

    /// The stack's clock now.
    pub async fn now(&self) -> Result<DateTime<Utc>> {
        let response = self
            .http
            .get(format!("{}/_local/clock", self.url))
            .send()
            .await
            .with_context(|| self.unreachable())?;
        if !response.status().is_success() {
            bail!(
                "{} has no local clock (HTTP {}): it is not a local stack",
                self.url,
                response.status().as_u16()
            );
        }
        time_of(&response.json().await?, "now")
    }

    async fn move_clock(&self, body: serde_json::Value) -> Result<Moved> {
        let response = self
            .http
            .post(format!("{}/_local/clock", self.url))
            .json(&body)
            .send()
            .await
            .with_context(|| self.unreachable())?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "the stack refused to move its clock: {}",
                answer["message"].as_str().unwrap_or("no reason given")
            );
        }
        Ok(Moved {
            from: time_of(&answer, "from")?,
            now: time_of(&answer, "now")?,
        })
    }

    /// Moves the clock forward by a duration (`90s`, `4h`, `1d2h`).
    pub async fn advance(&self, by: &str) -> Result<Moved> {
        self.move_clock(serde_json::json!({ "advance": by })).await
    }

    /// Moves the clock forward to a time.
    pub async fn set(&self, to: DateTime<Utc>) -> Result<Moved> {
        self.move_clock(serde_json::json!({ "set": to.to_rfc3339() }))
            .await
    }

    /// Posts `body` to the HR webhook with the development bearer token and an HMAC
    /// signature over `message_id`, the stack clock's time and the body, as the HR
    /// system does. Returns the status and the answer.
    pub async fn post_hr_event(
        &self,
        message_id: &str,
        body: &str,
    ) -> Result<(u16, serde_json::Value)> {
        let timestamp = self.now().await?.timestamp();
        post_hr_event(&self.http, &self.url, message_id, timestamp, body).await
    }
}

/// Posts a signed HR event to the webhook at `url`, stamped `timestamp`.
pub async fn post_hr_event(
    http: &reqwest::Client,
    url: &str,
    message_id: &str,
    timestamp: i64,
    body: &str,
) -> Result<(u16, serde_json::Value)> {
    let signature = lapse_core::revocation::webhook::sign(
        crate::provision::DEV_WEBHOOK_SIGNING_SECRET,
        message_id,
        timestamp,
        body.as_bytes(),
    )
    .context("the development webhook signing secret is not base64")?;
    let response = http
        .post(format!("{url}/api/v1/webhooks/hr-events"))
        .bearer_auth(crate::provision::DEV_WEBHOOK_TOKEN)
        .header("webhook-id", message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .with_context(|| format!("cannot reach the HR webhook at {url}"))?;
    let status = response.status().as_u16();
    let answer = response.json().await.unwrap_or(serde_json::Value::Null);
    Ok((status, answer))
}
