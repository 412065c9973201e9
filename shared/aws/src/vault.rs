//! Secrets Manager as the credential vault. Needs `secretsmanager:DescribeSecret` and
//! `secretsmanager:PutSecretValue` on the checked-out secrets, and
//! `secretsmanager:GetRandomPassword`. A rotated value goes from
//! `GetRandomPassword` straight into `PutSecretValue`: it is never logged, returned
//! or kept.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use lapse_core::ports::{CredentialVault, VaultError};

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
    async fn current_version(&self, secret_arn: &str) -> Result<String, VaultError> {
        let out = self
            .client
            .describe_secret()
            .secret_id(secret_arn)
            .send()
            .await
            .map_err(|e| vault_error(secret_arn, e))?;
        out.version_ids_to_stages()
            .into_iter()
            .flatten()
            .find(|(_, stages)| stages.iter().any(|s| s == CURRENT))
            .map(|(version, _)| version.clone())
            .ok_or_else(|| VaultError::NotFound(format!("{secret_arn} (no current version)")))
    }

    async fn rotate(&self, secret_arn: &str, version_id: &str) -> Result<(), VaultError> {
        if self.current_version(secret_arn).await? == version_id {
            return Ok(());
        }
        let password = self
            .client
            .get_random_password()
            .password_length(40)
            .exclude_punctuation(true)
            .send()
            .await
            .map_err(|e| vault_error(secret_arn, e))?;
        let value = password
            .random_password()
            .ok_or_else(|| VaultError::Unavailable("no random password returned".into()))?;
        let put = self
            .client
            .put_secret_value()
            .secret_id(secret_arn)
            .client_request_token(version_id)
            .secret_string(value)
            .version_stages(CURRENT)
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            // This version exists: a retried check-in made it before.
            Err(e) if e.code() == Some("ResourceExistsException") => Ok(()),
            Err(e) => Err(vault_error(secret_arn, e)),
        }
    }
}
