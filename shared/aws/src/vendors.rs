//! Vendors' temporary IAM users and the hand-over of their first password.
//!
//! [`IamVendorAccounts`] needs, on `user<ManagedUserPath>vendor-*`:
//! `iam:CreateUser` and `iam:TagUser` (only with `lapse:managed=true` and the
//! stack's boundary), `iam:GetUser`, `iam:ListUserTags`, `iam:CreateLoginProfile`,
//! and to delete: `iam:DeleteUser`, `iam:ListAccessKeys`, `iam:DeleteAccessKey`,
//! `iam:DeleteLoginProfile`, `iam:ListUserPolicies`, `iam:DeleteUserPolicy`,
//! `iam:ListAttachedUserPolicies`, `iam:DetachUserPolicy`, `iam:ListGroupsForUser`,
//! `iam:RemoveUserFromGroup`, `iam:ListMFADevices`, `iam:DeactivateMFADevice`,
//! `iam:ListSSHPublicKeys`, `iam:DeleteSSHPublicKey`,
//! `iam:ListSigningCertificates`, `iam:DeleteSigningCertificate`,
//! `iam:ListServiceSpecificCredentials`, `iam:DeleteServiceSpecificCredential`.
//!
//! [`SecretsCredentialDrop`] needs `secretsmanager:CreateSecret`,
//! `GetSecretValue`, `PutResourcePolicy`, `DeleteSecret` on `lapse/vendor/*`,
//! `secretsmanager:GetRandomPassword`, and `iam:GetUser` on the reader. Passwords
//! go from `GetRandomPassword` into the secret and into IAM, never into a log,
//! an error or an answer.

use aws_sdk_iam::Client as Iam;
use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::Tag;
use aws_sdk_secretsmanager::Client as Secrets;
use chrono::{DateTime, Utc};
use lapse_core::identity::PrincipalId;
use lapse_core::ports::{
    CredentialDrop, DirectoryError, Password, Removal, VaultError, VendorAccounts,
};

use crate::iam::MANAGED_TAG;

#[derive(Clone, Debug)]
pub struct IamVendorAccounts {
    client: crate::sdk::Lazy<Iam>,
    path: String,
    boundary_arn: String,
    /// The deployment declared its endpoint has no service-specific credentials.
    service_credentials_not_offered: bool,
}

impl IamVendorAccounts {
    pub fn new(
        client: impl Into<crate::sdk::Lazy<Iam>>,
        path: impl Into<String>,
        boundary_arn: impl Into<String>,
    ) -> Self {
        Self {
            client: client.into(),
            path: path.into(),
            boundary_arn: boundary_arn.into(),
            service_credentials_not_offered: false,
        }
    }

    /// See [`crate::iam::IamDirectory::declaring_gaps`].
    pub fn declaring_gaps(mut self, gaps: &str) -> Result<Self, String> {
        for gap in gaps.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            match gap {
                crate::iam::GAP_SERVICE_CREDENTIALS => self.service_credentials_not_offered = true,
                // Vendors' users are created under the boundary; nothing here reads it.
                crate::iam::GAP_USER_BOUNDARIES => {}
                other => return Err(format!("unknown emulator gap `{other}`")),
            }
        }
        Ok(self)
    }
}

/// IAM's errors as the directory's (a refusal is `Denied`, never retried).
fn iam_error<E>(err: SdkError<E, HttpResponse>) -> DirectoryError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    crate::iam::directory_error(err, |m| DirectoryError::NoSuchPrincipal(m.to_owned()))
}

/// `Ok(())` for success or `NoSuchEntity` (already gone).
fn gone<T, E>(result: Result<T, SdkError<E, HttpResponse>>) -> Result<(), DirectoryError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("NoSuchEntity") => Ok(()),
        Err(e) => Err(iam_error(e)),
    }
}

fn tag(key: &str, value: &str) -> Result<Tag, DirectoryError> {
    Tag::builder()
        .key(key)
        .value(value)
        .build()
        .map_err(|e| DirectoryError::Unavailable(Box::new(e)))
}

impl IamVendorAccounts {
    async fn managed(&self, user: &PrincipalId) -> Result<bool, DirectoryError> {
        let tags = self
            .client
            .list_user_tags()
            .user_name(user.as_str())
            .send()
            .await
            .map_err(iam_error)?;
        Ok(crate::iam::managed_tag(tags.tags()))
    }
}

impl VendorAccounts for IamVendorAccounts {
    async fn create_user(
        &self,
        user: &PrincipalId,
        tags: &[(String, String)],
    ) -> Result<(), DirectoryError> {
        let mut create = self
            .client
            .create_user()
            .user_name(user.as_str())
            .path(&self.path)
            .permissions_boundary(&self.boundary_arn)
            .tags(tag(MANAGED_TAG, "true")?);
        for (key, value) in tags {
            create = create.tags(tag(key, value)?);
        }
        match create.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("EntityAlreadyExists") => {
                if self.managed(user).await? {
                    Ok(())
                } else {
                    Err(DirectoryError::Denied(
                        format!("{user} exists and Lapse does not manage it").into(),
                    ))
                }
            }
            Err(e) => Err(iam_error(e)),
        }
    }

    async fn set_console_password(
        &self,
        user: &PrincipalId,
        password: &Password,
    ) -> Result<bool, DirectoryError> {
        match self
            .client
            .create_login_profile()
            .user_name(user.as_str())
            .password(password.expose())
            .password_reset_required(true)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("EntityAlreadyExists") => Ok(false),
            // The error may quote the request; only its code is kept.
            Err(e) => Err(DirectoryError::Unavailable(
                format!(
                    "CreateLoginProfile failed: {}",
                    e.code().unwrap_or("no error code")
                )
                .into(),
            )),
        }
    }

    async fn delete_user(&self, user: &PrincipalId) -> Result<Removal, DirectoryError> {
        if !self.exists(user).await? {
            return Ok(Removal::AlreadyAbsent);
        }
        let name = user.as_str();
        let c = &self.client;
        gone(c.delete_login_profile().user_name(name).send().await)?;
        let keys = c
            .list_access_keys()
            .user_name(name)
            .send()
            .await
            .map_err(iam_error)?;
        for key in keys.access_key_metadata() {
            if let Some(id) = key.access_key_id() {
                gone(
                    c.delete_access_key()
                        .user_name(name)
                        .access_key_id(id)
                        .send()
                        .await,
                )?;
            }
        }
        let policies = c
            .list_user_policies()
            .user_name(name)
            .send()
            .await
            .map_err(iam_error)?;
        for policy in policies.policy_names() {
            gone(
                c.delete_user_policy()
                    .user_name(name)
                    .policy_name(policy)
                    .send()
                    .await,
            )?;
        }
        let attached = c
            .list_attached_user_policies()
            .user_name(name)
            .send()
            .await
            .map_err(iam_error)?;
        for policy in attached.attached_policies() {
            if let Some(arn) = policy.policy_arn() {
                gone(
                    c.detach_user_policy()
                        .user_name(name)
                        .policy_arn(arn)
                        .send()
                        .await,
                )?;
            }
        }
        let groups = c
            .list_groups_for_user()
            .user_name(name)
            .send()
            .await
            .map_err(iam_error)?;
        for group in groups.groups() {
            gone(
                c.remove_user_from_group()
                    .user_name(name)
                    .group_name(group.group_name())
                    .send()
                    .await,
            )?;
        }
        let devices = c
            .list_mfa_devices()
            .user_name(name)
            .send()
            .await
            .map_err(iam_error)?;
        for device in devices.mfa_devices() {
            gone(
                c.deactivate_mfa_device()
                    .user_name(name)
                    .serial_number(device.serial_number())
                    .send()
                    .await,
            )?;
        }
        let ssh = c
            .list_ssh_public_keys()
            .user_name(name)
            .send()
            .await
            .map_err(iam_error)?;
        for key in ssh.ssh_public_keys() {
            gone(
                c.delete_ssh_public_key()
                    .user_name(name)
                    .ssh_public_key_id(key.ssh_public_key_id())
                    .send()
                    .await,
            )?;
        }
        let certificates = c
            .list_signing_certificates()
            .user_name(name)
            .send()
            .await
            .map_err(iam_error)?;
        for certificate in certificates.certificates() {
            gone(
                c.delete_signing_certificate()
                    .user_name(name)
                    .certificate_id(certificate.certificate_id())
                    .send()
                    .await,
            )?;
        }
        if !self.service_credentials_not_offered {
            let credentials = c
                .list_service_specific_credentials()
                .user_name(name)
                .send()
                .await
                .map_err(iam_error)?;
            for credential in credentials.service_specific_credentials() {
                gone(
                    c.delete_service_specific_credential()
                        .user_name(name)
                        .service_specific_credential_id(credential.service_specific_credential_id())
                        .send()
                        .await,
                )?;
            }
        }
        gone(c.delete_user().user_name(name).send().await)?;
        Ok(Removal::Removed)
    }

    async fn exists(&self, user: &PrincipalId) -> Result<bool, DirectoryError> {
        match self.client.get_user().user_name(user.as_str()).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("NoSuchEntity") => Ok(false),
            Err(e) => Err(iam_error(e)),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SecretsCredentialDrop {
    secrets: crate::sdk::Lazy<Secrets>,
    iam: crate::sdk::Lazy<Iam>,
    /// The role that makes and withdraws drops (the vendors function's): besides
    /// the sponsor, the only principal the secret's policy does not deny.
    keeper: Option<String>,
}

/// The tag naming the request a drop was made for.
pub const REQUEST_TAG: &str = "lapse:request";

impl SecretsCredentialDrop {
    pub fn new(
        secrets: impl Into<crate::sdk::Lazy<Secrets>>,
        iam: impl Into<crate::sdk::Lazy<Iam>>,
    ) -> Self {
        Self {
            secrets: secrets.into(),
            iam: iam.into(),
            keeper: None,
        }
    }

    /// The role ARN of the function that issues drops; required to issue one.
    pub fn kept_by(mut self, role_arn: impl Into<String>) -> Self {
        self.keeper = Some(role_arn.into());
        self
    }

    /// The request a secret of this name was made for, from its tag (`None`: no
    /// such tag, so not Lapse's).
    async fn made_for(&self, name: &str) -> Result<Option<String>, VaultError> {
        let out = self
            .secrets
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| vault_error(name, e))?;
        Ok(out
            .tags()
            .iter()
            .find(|t| t.key() == Some(REQUEST_TAG))
            .and_then(|t| t.value())
            .map(str::to_owned))
    }
}

/// The drop's resource policy: the sponsor may read until `until`; everyone
/// else is denied reading it, and everyone but the keeper is denied changing
/// its value or its policy, whatever their identity policies allow (a reader of
/// `lapse/*` or `*` included).
pub fn drop_policy(reader_arn: &str, keeper_arn: &str, until: DateTime<Utc>) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SponsorReadsUntilTheWindowEnds",
                "Effect": "Allow",
                "Principal": { "AWS": reader_arn },
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Condition": { "DateLessThan": { "aws:CurrentTime": until.to_rfc3339() } }
            },
            {
                "Sid": "NobodyElseReads",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Condition": { "ArnNotEquals": { "aws:PrincipalArn": [reader_arn, keeper_arn] } }
            },
            {
                "Sid": "TheSponsorNotAfterTheWindow",
                "Effect": "Deny",
                "Principal": { "AWS": reader_arn },
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Condition": { "DateGreaterThan": { "aws:CurrentTime": until.to_rfc3339() } }
            },
            {
                "Sid": "OnlyLapseChangesIt",
                "Effect": "Deny",
                "Principal": "*",
                "Action": [
                    "secretsmanager:PutSecretValue",
                    "secretsmanager:UpdateSecret",
                    "secretsmanager:PutResourcePolicy",
                    "secretsmanager:DeleteResourcePolicy",
                    "secretsmanager:UpdateSecretVersionStage"
                ],
                "Resource": "*",
                "Condition": { "ArnNotEquals": { "aws:PrincipalArn": keeper_arn } }
            }
        ]
    })
}

fn vault_error<E, R>(name: &str, err: SdkError<E, R>) -> VaultError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match err.code() {
        Some("ResourceNotFoundException") | Some("NoSuchEntity") => {
            VaultError::NotFound(name.to_owned())
        }
        Some("AccessDeniedException" | "AccessDenied") => VaultError::Denied {
            secret: name.to_owned(),
            source: Box::new(err),
        },
        // The request carried the value: keep only the code.
        code => {
            VaultError::Unavailable(format!("{name}: {}", code.unwrap_or("no error code")).into())
        }
    }
}

impl CredentialDrop for SecretsCredentialDrop {
    async fn issue(
        &self,
        name: &str,
        request: &lapse_core::access::request::RequestId,
        reader: &PrincipalId,
        until: DateTime<Utc>,
    ) -> Result<Password, VaultError> {
        let reader_arn = self
            .iam
            .get_user()
            .user_name(reader.as_str())
            .send()
            .await
            .map_err(|e| vault_error(reader.as_str(), e))?
            .user()
            .map(|u| u.arn().to_owned())
            .ok_or_else(|| VaultError::NotFound(reader.to_string()))?;
        let random = self
            .secrets
            .get_random_password()
            .password_length(32)
            .require_each_included_type(true)
            .send()
            .await
            .map_err(|e| vault_error(name, e))?;
        let fresh = random
            .random_password()
            .ok_or_else(|| VaultError::Unavailable("no random password returned".into()))?;
        let keeper = self.keeper.as_deref().ok_or_else(|| {
            VaultError::Unavailable("the drop's keeper role is not configured".into())
        })?;
        let created = self
            .secrets
            .create_secret()
            .name(name)
            .client_request_token(request.as_str())
            .secret_string(fresh)
            .description("A vendor's first console password, for their sponsor (Lapse).")
            .tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key(REQUEST_TAG)
                    .value(request.as_str())
                    .build(),
            )
            .send()
            .await;
        let password = match created {
            Ok(_) => Password::new(fresh.to_owned()),
            // Made before: a retry of this request's, or someone else's under the
            // predictable name, which is refused, never adopted.
            Err(e) if e.code() == Some("ResourceExistsException") => {
                if self.made_for(name).await?.as_deref() != Some(request.as_str()) {
                    return Err(VaultError::NotOurs {
                        secret: name.to_owned(),
                        request: request.to_string(),
                    });
                }
                let out = self
                    .secrets
                    .get_secret_value()
                    .secret_id(name)
                    .send()
                    .await
                    .map_err(|e| vault_error(name, e))?;
                Password::new(
                    out.secret_string()
                        .ok_or_else(|| VaultError::NotFound(format!("{name} (no value)")))?
                        .to_owned(),
                )
            }
            Err(e) => return Err(vault_error(name, e)),
        };
        let policy = drop_policy(&reader_arn, keeper, until);
        self.secrets
            .put_resource_policy()
            .secret_id(name)
            .resource_policy(policy.to_string())
            .send()
            .await
            .map_err(|e| vault_error(name, e))?;
        Ok(password)
    }

    async fn withdraw(
        &self,
        name: &str,
        request: &lapse_core::access::request::RequestId,
    ) -> Result<(), VaultError> {
        match self.made_for(name).await {
            Ok(Some(made_for)) if made_for == request.as_str() => {}
            // Someone else's under the name: not Lapse's to delete.
            Ok(_) => return Ok(()),
            Err(VaultError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
        match self
            .secrets
            .delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(vault_error(name, e)),
        }
    }
}
