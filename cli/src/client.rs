//! A client for Lapse's HTTP API, for people (the CLI) and programs (the demo, tests).
//! People's routes take a bearer token; who the caller is comes from that token
//! alone. The operator routes (`/v1/operator/*`) take an AWS Signature Version 4
//! made with the operator's own AWS credentials, which API Gateway's IAM
//! authorizer checks; the secret never leaves this process.

use aws_credential_types::provider::SharedCredentialsProvider;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// `name: message`, or the one of them when they say the same (API Gateway's
/// `Unauthorized` is both).
fn name_and_message(name: &str, message: &str) -> String {
    if name == message || message.is_empty() {
        name.to_owned()
    } else if name.is_empty() {
        message.to_owned()
    } else {
        format!("{name}: {message}")
    }
}

/// A failed API call, with the status and the API's error name and message.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("HTTP {status}: {}", name_and_message(name, message))]
    Status {
        status: u16,
        name: String,
        message: String,
    },
    /// The call could not be made (no credentials, a body that does not encode).
    #[error("cannot call {url}: {message}")]
    Client { url: String, message: String },
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
            ApiError::Transport { .. } | ApiError::Client { .. } => None,
        }
    }
}

/// How calls are authenticated.
#[derive(Clone)]
enum Auth {
    /// A JWT from the identity provider.
    Bearer(String),
    /// SigV4 (`execute-api`) with these AWS credentials.
    Aws {
        credentials: SharedCredentialsProvider,
        region: String,
    },
}

#[derive(Clone)]
pub struct ApiClient {
    base: String,
    auth: Auth,
    http: reqwest::Client,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.auth {
            Auth::Bearer(_) => "bearer <redacted>".to_owned(),
            Auth::Aws { region, .. } => format!("sigv4 execute-api {region}"),
        };
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("auth", &auth)
            .finish()
    }
}

fn client_error(url: &str, message: String) -> ApiError {
    ApiError::Client {
        url: url.to_owned(),
        message,
    }
}

impl ApiClient {
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            auth: Auth::Bearer(token.into()),
            http: reqwest::Client::new(),
        }
    }

    /// A client that signs every call with the AWS credentials and region of `sdk`
    /// (the operator's profile, role or environment).
    pub fn aws(base: impl Into<String>, sdk: &aws_config::SdkConfig) -> Result<Self, ApiError> {
        let base = base.into().trim_end_matches('/').to_owned();
        let credentials = sdk
            .credentials_provider()
            .ok_or_else(|| client_error(&base, "no AWS credentials are configured".into()))?;
        let region = sdk
            .region()
            .ok_or_else(|| client_error(&base, "no AWS region is configured".into()))?
            .to_string();
        Ok(Self {
            base,
            auth: Auth::Aws {
                credentials,
                region,
            },
            http: reqwest::Client::new(),
        })
    }

    /// The headers that authenticate one call.
    async fn authorize(
        &self,
        method: &reqwest::Method,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, ApiError> {
        use aws_credential_types::provider::ProvideCredentials;
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        match &self.auth {
            Auth::Bearer(token) => Ok(vec![("authorization".into(), format!("Bearer {token}"))]),
            Auth::Aws {
                credentials,
                region,
            } => {
                let identity = credentials
                    .provide_credentials()
                    .await
                    .map_err(|e| client_error(url, format!("AWS credentials: {e}")))?
                    .into();
                let params = aws_sigv4::sign::v4::SigningParams::builder()
                    .identity(&identity)
                    .region(region)
                    .name("execute-api")
                    .time(std::time::SystemTime::now())
                    .settings(SigningSettings::default())
                    .build()
                    .map_err(|e| client_error(url, format!("signing: {e}")))?
                    .into();
                let signable = SignableRequest::new(
                    method.as_str(),
                    url,
                    headers.iter().map(|(k, v)| (*k, v.as_str())),
                    SignableBody::Bytes(body),
                )
                .map_err(|e| client_error(url, format!("signing: {e}")))?;
                let (instructions, _) = sign(signable, &params)
                    .map_err(|e| client_error(url, format!("signing: {e}")))?
                    .into_parts();
                Ok(instructions
                    .headers()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect())
            }
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut headers: Vec<(&str, String)> = Vec::new();
        let bytes = match body {
            Some(body) => {
                headers.push(("content-type", "application/json".into()));
                serde_json::to_vec(&body).map_err(|e| client_error(&url, e.to_string()))?
            }
            None => Vec::new(),
        };
        let auth = self.authorize(&method, &url, &headers, &bytes).await?;
        let mut request = self.http.request(method, &url);
        for (name, value) in headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .chain(auth)
        {
            request = request.header(name, value);
        }
        if !bytes.is_empty() {
            request = request.body(bytes);
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

    /// `POST /v1/break-glass`: emergency access, granted at once.
    pub async fn break_glass(
        &self,
        resource: &str,
        duration: Option<&str>,
        reason: &str,
        ticket: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut body = json!({ "resource": resource, "reason": reason });
        if let Some(duration) = duration {
            body["duration"] = json!(duration);
        }
        if let Some(ticket) = ticket {
            body["ticket"] = json!(ticket);
        }
        self.send(reqwest::Method::POST, "/v1/break-glass", Some(body))
            .await
    }

    /// `POST /v1/vendors`: vendor access, sponsored by the caller.
    pub async fn sponsor_vendor(
        &self,
        vendor: (&str, &str),
        resource: &str,
        duration: Option<&str>,
        justification: &str,
        project: &str,
    ) -> Result<Value, ApiError> {
        let (id, email) = vendor;
        let mut body = json!({
            "vendor": { "id": id, "email": email },
            "resource": resource,
            "justification": justification,
            "project": project,
        });
        if let Some(duration) = duration {
            body["duration"] = json!(duration);
        }
        self.send(reqwest::Method::POST, "/v1/vendors", Some(body))
            .await
    }

    /// `POST /v1/break-glass/{id}/justification`.
    pub async fn justify(&self, id: &str, justification: &str) -> Result<Value, ApiError> {
        self.send(
            reqwest::Method::POST,
            &format!("/v1/break-glass/{id}/justification"),
            Some(json!({ "justification": justification })),
        )
        .await
    }

    /// `POST /v1/break-glass/{id}/reviews`: `justified` or `unjustified`.
    pub async fn review(&self, id: &str, finding: &str, note: &str) -> Result<Value, ApiError> {
        self.send(
            reqwest::Method::POST,
            &format!("/v1/break-glass/{id}/reviews"),
            Some(json!({ "finding": finding, "note": note })),
        )
        .await
    }

    /// `POST /v1/operator/{path}` (IAM-authorised operator routes).
    pub async fn operator_post(&self, path: &str, body: Value) -> Result<Value, ApiError> {
        self.send(
            reqwest::Method::POST,
            &format!("/v1/operator/{path}"),
            Some(body),
        )
        .await
    }

    /// `GET /v1/operator/{path}`.
    pub async fn operator_get(&self, path: &str) -> Result<Value, ApiError> {
        self.send(reqwest::Method::GET, &format!("/v1/operator/{path}"), None)
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
