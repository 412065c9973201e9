//! A client for Lapse's HTTP API, for people (the CLI) and programs (the demo, tests).
//! It sends a bearer token; who the caller is comes from that token alone.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A failed API call, with the status and the API's error name and message.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("HTTP {status}: {name}: {message}")]
    Status {
        status: u16,
        name: String,
        message: String,
    },
    #[error("cannot reach {url}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::Transport { .. } => None,
        }
    }
}

#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl ApiClient {
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            http: reqwest::Client::new(),
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|source| ApiError::Transport {
            url: url.clone(),
            source,
        })?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|source| ApiError::Transport { url, source })?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 300 {
            return Err(ApiError::Status {
                status,
                name: value["error"].as_str().unwrap_or("Unauthorized").to_owned(),
                message: value["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
        serde_json::from_value(value).map_err(|e| ApiError::Status {
            status,
            name: "Lapse.BadResponse".into(),
            message: e.to_string(),
        })
    }

    /// `POST /v1/requests`.
    pub async fn request(
        &self,
        resource: &str,
        duration: Option<&str>,
        justification: &str,
        ticket: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut body = json!({ "resource": resource, "justification": justification });
        if let Some(duration) = duration {
            body["duration"] = json!(duration);
        }
        if let Some(ticket) = ticket {
            body["ticket"] = json!(ticket);
        }
        self.send(reqwest::Method::POST, "/v1/requests", Some(body))
            .await
    }

    /// A raw call, for clients that need a shape the helpers do not cover.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ApiError> {
        self.send(method, path, body).await
    }

    /// `POST /v1/requests/{id}/decisions`.
    pub async fn decide(&self, id: &str, approve: bool, comment: &str) -> Result<Value, ApiError> {
        let decision = if approve { "approve" } else { "deny" };
        self.send(
            reqwest::Method::POST,
            &format!("/v1/requests/{id}/decisions"),
            Some(json!({ "decision": decision, "comment": comment })),
        )
        .await
    }

    /// `GET /v1/requests/{id}`.
    pub async fn get(&self, id: &str) -> Result<Value, ApiError> {
        self.send(reqwest::Method::GET, &format!("/v1/requests/{id}"), None)
            .await
    }

    /// `GET /v1/requests?mine`.
    pub async fn mine(&self) -> Result<Value, ApiError> {
        self.send(reqwest::Method::GET, "/v1/requests?mine", None)
            .await
    }

    /// `GET /v1/requests?pending-my-approval`.
    pub async fn pending(&self) -> Result<Value, ApiError> {
        self.send(
            reqwest::Method::GET,
            "/v1/requests?pending-my-approval",
            None,
        )
        .await
    }

    /// `POST /v1/requests/{id}/cancel`.
    pub async fn cancel(&self, id: &str) -> Result<Value, ApiError> {
        self.send(
            reqwest::Method::POST,
            &format!("/v1/requests/{id}/cancel"),
            None,
        )
        .await
    }

    /// `GET /v1/grants`.
    pub async fn grants(&self) -> Result<Value, ApiError> {
        self.send(reqwest::Method::GET, "/v1/grants", None).await
    }

    /// `POST /v1/grants/{id}/revoke`.
    pub async fn revoke(&self, id: &str) -> Result<Value, ApiError> {
        self.send(
            reqwest::Method::POST,
            &format!("/v1/grants/{id}/revoke"),
            None,
        )
        .await
    }

    /// `POST /v1/grants/{id}/extend`.
    pub async fn extend(
        &self,
        id: &str,
        duration: &str,
        justification: &str,
    ) -> Result<Value, ApiError> {
        self.send(
            reqwest::Method::POST,
            &format!("/v1/grants/{id}/extend"),
            Some(json!({ "duration": duration, "justification": justification })),
        )
        .await
    }

    /// Polls a request until it reaches `status` (or `timeout` passes).
    pub async fn wait_for(
        &self,
        id: &str,
        status: &str,
        timeout: std::time::Duration,
    ) -> Result<Value, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let request = self.get(id).await?;
            if request["status"] == status || tokio::time::Instant::now() >= deadline {
                return Ok(request);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ApiClient;

    #[test]
    fn debug_output_never_shows_the_token() {
        let client = ApiClient::new("http://localhost", "secret-token-value");
        assert!(!format!("{client:?}").contains("secret-token-value"));
    }
}
