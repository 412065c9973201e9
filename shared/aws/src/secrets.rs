//! Secrets Manager: the audit signing key. Needs `secretsmanager:GetSecretValue` on
//! the one secret. The secret's value is JSON: `{"key_id": "...", "seed_hex": "..."}`.
//! The seed never leaves this function: it is not logged and not returned.

use aws_sdk_secretsmanager::Client;
use lapse_core::audit::{AuditSigner, KeyError};
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
    #[error("secret {id} holds an invalid key")]
    Key {
        id: String,
        #[source]
        source: KeyError,
    },
}

#[derive(Deserialize)]
struct SigningSecret {
    key_id: String,
    seed_hex: String,
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

/// Loads the audit signer from a secret.
pub async fn load_audit_signer(
    client: &Client,
    secret_id: &str,
) -> Result<AuditSigner, SecretError> {
    let secret: SigningSecret = read_json(client, secret_id).await?;
    AuditSigner::from_seed_hex(secret.key_id, &secret.seed_hex).map_err(|source| SecretError::Key {
        id: secret_id.to_owned(),
        source,
    })
}

/// Stores a fresh signing key (local stack and first deployment bootstrap);
/// returns the signer. An existing secret is left alone and loaded instead.
pub async fn ensure_audit_signer(
    client: &Client,
    secret_id: &str,
    key_id: &str,
) -> Result<AuditSigner, SecretError> {
    if let Ok(signer) = load_audit_signer(client, secret_id).await {
        return Ok(signer);
    }
    let (_, seed_hex) = AuditSigner::generate(key_id).map_err(|source| SecretError::Key {
        id: secret_id.to_owned(),
        source,
    })?;
    let value = serde_json::json!({ "key_id": key_id, "seed_hex": seed_hex }).to_string();
    client
        .create_secret()
        .name(secret_id)
        .secret_string(value)
        .send()
        .await
        .map_err(|e| SecretError::Read {
            id: secret_id.to_owned(),
            source: Box::new(e),
        })?;
    load_audit_signer(client, secret_id).await
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
