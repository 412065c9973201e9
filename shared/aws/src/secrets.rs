//! Secrets Manager: the HR webhook's credentials. Needs `secretsmanager:GetSecretValue`
//! on the one secret. Values are never logged and never returned in errors. (The
//! audit signing key is a KMS key: see [`crate::kms`].)

use aws_sdk_secretsmanager::Client;
use serde::Deserialize;

/// Why the signing key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret {id}")]
    Read {
        id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("secret {id} does not have the expected JSON shape")]
    Shape { id: String },
}

/// Reads a secret whose value is JSON of shape `T`. Neither the value nor the parse
/// error reaches the returned error.
async fn read_json<T: serde::de::DeserializeOwned>(
    client: &Client,
    secret_id: &str,
) -> Result<T, SecretError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| SecretError::Read {
            id: secret_id.to_owned(),
            source: Box::new(e),
        })?;
    let shape = || SecretError::Shape {
        id: secret_id.to_owned(),
    };
    serde_json::from_str(out.secret_string().ok_or_else(shape)?).map_err(|_| shape())
}

#[derive(Deserialize)]
struct WebhookSecretValue {
    bearer_tokens: Vec<String>,
    signing_secrets: Vec<String>,
}

/// Loads the HR webhook's credentials: JSON `{"bearer_tokens": [current, previous],
/// "signing_secrets": ["whsec_…", "whsec_…"]}` (two of each while rotating).
pub async fn load_webhook_secrets(
    client: &Client,
    secret_id: &str,
) -> Result<lapse_core::revocation::webhook::WebhookSecrets, SecretError> {
    let value: WebhookSecretValue = read_json(client, secret_id).await?;
    let tokens: Vec<&str> = value.bearer_tokens.iter().map(String::as_str).collect();
    let signing: Vec<&str> = value.signing_secrets.iter().map(String::as_str).collect();
    lapse_core::revocation::webhook::WebhookSecrets::new(&tokens, &signing).map_err(|_| {
        SecretError::Shape {
            id: secret_id.to_owned(),
        }
    })
}
