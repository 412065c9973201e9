//! Secrets Manager as the credential vault. Needs `secretsmanager:DescribeSecret` and
//! `secretsmanager:RotateSecret` on the checked-out secrets and
//! `lambda:InvokeFunction` on their rotation functions; Secrets Manager then
//! invokes the rotation function (the organisation's: it changes the
//! database's password, then moves `AWSCURRENT`). No value passes through Lapse.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use lapse_core::ports::{CredentialVault, SecretState, VaultError};

#[derive(Clone, Debug)]
pub struct SecretsManagerVault {
    client: crate::sdk::Lazy<Client>,
}

impl SecretsManagerVault {
    pub fn new(client: impl Into<crate::sdk::Lazy<Client>>) -> Self {
        Self {
            client: client.into(),
        }
    }
}

/// Secrets Manager's stage for the value in force.
const CURRENT: &str = "AWSCURRENT";
/// Secrets Manager's stage for the value a rotation is making.
const PENDING: &str = "AWSPENDING";

fn vault_error<E, R>(secret: &str, err: SdkError<E, R>) -> VaultError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match err.code() {
        Some("ResourceNotFoundException") => VaultError::NotFound(secret.to_owned()),
        Some("AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation") => {
            VaultError::Denied {
                secret: secret.to_owned(),
                source: Box::new(err),
            }
        }
        _ => VaultError::Unavailable(Box::new(err)),
    }
}

impl CredentialVault for SecretsManagerVault {
    async fn state(&self, secret_arn: &str) -> Result<SecretState, VaultError> {
        let out = self
            .client
            .describe_secret()
            .secret_id(secret_arn)
            .send()
            .await
            .map_err(|e| vault_error(secret_arn, e))?;
        let staged = |stage: &str| {
            out.version_ids_to_stages()
                .into_iter()
                .flatten()
                .find(|(_, stages)| stages.iter().any(|s| s == stage))
                .map(|(version, _)| version.clone())
        };
        let current = staged(CURRENT)
            .ok_or_else(|| VaultError::NotFound(format!("{secret_arn} (no current version)")))?;
        // A finished rotation may leave AWSPENDING on the version it made current.
        let pending = staged(PENDING).filter(|p| *p != current);
        let rotation_function = out
            .rotation_enabled()
            .unwrap_or(false)
            .then(|| out.rotation_lambda_arn().map(str::to_owned))
            .flatten();
        Ok(SecretState {
            current,
            pending,
            rotation_function,
        })
    }

    async fn rotate(
        &self,
        secret_arn: &str,
        version_id: &str,
        rotation_function: &str,
    ) -> Result<(), VaultError> {
        let state = self.state(secret_arn).await?;
        if state.current == version_id || state.pending.as_deref() == Some(version_id) {
            return Ok(());
        }
        // Named, so that no other function than the one checked at checkout runs
        // (it is the secret's: checkout refuses one rotating with another), at
        // once; the request token names the new version, so a retried check-in
        // asks for the same one.
        let started = self
            .client
            .rotate_secret()
            .secret_id(secret_arn)
            .client_request_token(version_id)
            .rotation_lambda_arn(rotation_function)
            .rotate_immediately(true)
            .send()
            .await;
        match started {
            Ok(_) => Ok(()),
            // Another rotation is in flight: the caller reads the state and waits.
            Err(e) if e.code() == Some("InvalidRequestException") && state.pending.is_some() => {
                Ok(())
            }
            Err(e) => Err(vault_error(secret_arn, e)),
        }
    }
}
