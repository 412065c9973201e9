//! KMS: the audit signing key, an asymmetric ECC_NIST_P256 key used with
//! ECDSA_SHA_256. Functions need `kms:Sign` on the one key, and `kms:GetPublicKey`
//! for when they verify the trail they act on (a grant, a restore; read once per
//! warm function); the private key never leaves KMS, so no function, log or operator can
//! read signing material. Verifiers need only the public key (`kms:GetPublicKey`,
//! or the DER exported once).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use aws_sdk_kms::Client;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use lapse_core::audit::{AuditSigner, KeyError, RemoteSigner};

/// Signs with a KMS key.
#[derive(Debug)]
pub struct KmsSigner {
    client: crate::sdk::Lazy<Client>,
    key_id: String,
    /// Read by [`KmsSigner::load`]; a [`KmsSigner::deferred`] signer reads it the
    /// first time it must verify (a grant, a restore) and keeps it.
    public_key_der: Option<Vec<u8>>,
    read_later: std::sync::OnceLock<Vec<u8>>,
}

/// The service's code and message, or why the call never got an answer.
fn why<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_sdk_kms::error::DisplayErrorContext(err).to_string(),
    }
}

fn key_error<E, R>(err: &SdkError<E, R>, key_id: &str) -> KeyError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = format!("{key_id}: {}", why(err));
    match err.code() {
        Some(
            "AccessDeniedException"
            | "DisabledException"
            | "InvalidKeyUsageException"
            | "KMSInvalidStateException"
            | "NotFoundException",
        ) => KeyError::Refused(message),
        _ => KeyError::Unavailable(message),
    }
}

impl KmsSigner {
    /// Reads the key's public half (and checks it is an ECC_NIST_P256 signing key).
    pub async fn load(
        client: impl Into<crate::sdk::Lazy<Client>>,
        key_id: &str,
    ) -> Result<Self, KeyError> {
        let client = client.into();
        let out = client
            .get_public_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| key_error(&e, key_id))?;
        // Judged by what the key can do, not by its spec field (which some endpoints
        // send only under its deprecated name): a signing key offering ECDSA_SHA_256
        // whose public key parses as P-256 (checked by the verifier below).
        if out.key_usage() != Some(&KeyUsageType::SignVerify)
            || !out
                .signing_algorithms()
                .contains(&SigningAlgorithmSpec::EcdsaSha256)
        {
            return Err(KeyError::Refused(format!(
                "{key_id} is not an ECC_NIST_P256 SIGN_VERIFY key"
            )));
        }
        let public_key_der = out
            .public_key()
            .map(|b| b.as_ref().to_vec())
            .ok_or(KeyError::BadPublicKey)?;
        lapse_core::audit::AuditVerifier::new().trust_p256_der(key_id, &public_key_der)?;
        Ok(Self {
            client,
            // The ARN, so events name the key unambiguously even when loaded by alias.
            key_id: out
                .key_id()
                .filter(|id| id.starts_with("arn:"))
                .unwrap_or(key_id)
                .to_owned(),
            public_key_der: Some(public_key_der),
            read_later: std::sync::OnceLock::new(),
        })
    }

    /// A signer for the key `key_arn` made without calling KMS: what a function's
    /// start-up uses, so a cold start waits for no round trip to KMS. The key's kind
    /// is then checked by KMS at the first `Sign` (a key that is not an ECC_NIST_P256
    /// signing key refuses ECDSA_SHA_256, reported as [`KeyError::Refused`]). Needs
    /// the ARN, which names the key in events; an alias goes through
    /// [`KmsSigner::load`].
    pub fn deferred(
        client: impl Into<crate::sdk::Lazy<Client>>,
        key_arn: &str,
    ) -> Result<Self, KeyError> {
        if !key_arn.starts_with("arn:") || key_arn.contains(":alias/") {
            return Err(KeyError::Refused(format!(
                "{key_arn}: a deferred signer needs the key's ARN"
            )));
        }
        Ok(Self {
            client: client.into(),
            key_id: key_arn.to_owned(),
            public_key_der: None,
            read_later: std::sync::OnceLock::new(),
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The audit signer for this key.
    pub fn into_audit_signer(self) -> AuditSigner {
        let id = self.key_id.clone();
        AuditSigner::remote(id, Arc::new(self))
    }
}

impl RemoteSigner for KmsSigner {
    fn sign<'a>(
        &'a self,
        message: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, KeyError>> + Send + 'a>> {
        Box::pin(async move {
            let out = self
                .client
                .sign()
                .key_id(&self.key_id)
                .message(Blob::new(message))
                .message_type(MessageType::Raw)
                .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                .send()
                .await
                .map_err(|e| key_error(&e, &self.key_id))?;
            out.signature()
                .map(|b| b.as_ref().to_vec())
                .ok_or_else(|| KeyError::Unavailable(format!("{}: no signature", self.key_id)))
        })
    }

    fn public_key_der(&self) -> Option<&[u8]> {
        self.public_key_der
            .as_deref()
            .or(self.read_later.get().map(Vec::as_slice))
    }

    fn read_public_key_der<'a>(
        &'a self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, KeyError>> + Send + 'a>> {
        Box::pin(async move {
            if let Some(der) = self.public_key_der() {
                return Ok(der.to_vec());
            }
            let out = self
                .client
                .get_public_key()
                .key_id(&self.key_id)
                .send()
                .await
                .map_err(|e| KeyError::Unreadable(format!("{}: {}", self.key_id, why(&e))))?;
            let der = out
                .public_key()
                .map(|b| b.as_ref().to_vec())
                .ok_or(KeyError::BadPublicKey)?;
            Ok(self.read_later.get_or_init(|| der).clone())
        })
    }
}

/// The audit signing key named by `alias` (`alias/…`), created if missing (local
/// stack; the template creates it on AWS). Returns its ARN.
pub async fn ensure_audit_key(client: &Client, alias: &str) -> Result<String, KeyError> {
    if let Ok(found) = client.describe_key().key_id(alias).send().await
        && let Some(arn) = found.key_metadata().and_then(|m| m.arn())
    {
        return Ok(arn.to_owned());
    }
    let arn = create_audit_key(client, "Signs Lapse's audit events").await?;
    client
        .create_alias()
        .alias_name(alias)
        .target_key_id(&arn)
        .send()
        .await
        .map_err(|e| key_error(&e, alias))?;
    Ok(arn)
}

/// Creates an ECC_NIST_P256 signing key. Returns its ARN.
pub async fn create_audit_key(client: &Client, description: &str) -> Result<String, KeyError> {
    let out = client
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .description(description)
        .send()
        .await
        .map_err(|e| key_error(&e, "new audit key"))?;
    out.key_metadata()
        .and_then(|m| m.arn())
        .map(str::to_owned)
        .ok_or_else(|| KeyError::Unavailable("CreateKey returned no ARN".into()))
}

/// A verifier trusting the key's public half: all a verifier needs (`kms:GetPublicKey`).
pub async fn audit_verifier(
    client: &Client,
    key_id: &str,
) -> Result<lapse_core::audit::AuditVerifier, KeyError> {
    let signer = KmsSigner::load(client.clone(), key_id)
        .await
        .map_err(|e| match e {
            KeyError::Unavailable(why) | KeyError::Refused(why) => KeyError::Unreadable(why),
            other => other,
        })?;
    let der = signer
        .public_key_der
        .as_deref()
        .ok_or(KeyError::BadPublicKey)?;
    lapse_core::audit::AuditVerifier::new().trust_p256_der(signer.key_id(), der)
}
