//! IAM: writing grants and reading back what a user really holds.
//!
//! `AccessProvisioner` needs `iam:PutUserPolicy`, `iam:DeleteUserPolicy`,
//! `iam:AddUserToGroup`, `iam:RemoveUserFromGroup`; `AccessInspector` needs
//! `iam:ListUserPolicies`, `iam:GetUserPolicy`, `iam:ListGroupsForUser`,
//! `iam:ListAttachedUserPolicies`, and `iam:GetUser` to check a grantee's boundary.

use aws_sdk_iam::Client;
use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
// `identity` (below) reuses these helpers.
use lapse_core::access::grant::IamSnapshot;
use lapse_core::identity::PrincipalId;
use lapse_core::ports::{AccessInspector, AccessProvisioner, Bounded, DirectoryError, Removal};

/// IAM users and groups.
#[derive(Clone, Debug)]
pub struct IamDirectory {
    client: crate::sdk::Lazy<Client>,
    /// The deployment declared that its endpoint (an emulator) does not offer
    /// service-specific credentials. Never set on AWS, where an unreadable listing
    /// fails verification.
    service_credentials_not_offered: bool,
    /// The permissions boundary Lapse's managed users carry (its ARN), which
    /// [`AccessInspector::user_bounded`] checks against.
    boundary: Option<String>,
    /// The deployment declared that its endpoint (an emulator) reports no user
    /// permissions boundaries. Never set on AWS.
    user_boundaries_not_offered: bool,
}

/// The tag that marks a user Lapse manages (`lapse:managed=true`).
pub const MANAGED_TAG: &str = "lapse:managed";

/// The emulator gaps a deployment may declare (`LAPSE_EMULATOR_GAPS`): moto offers
/// no service-specific credentials, and keeps no user permissions boundaries.
pub const GAP_SERVICE_CREDENTIALS: &str = "iam:ListServiceSpecificCredentials";
pub const GAP_USER_BOUNDARIES: &str = "iam:UserPermissionsBoundary";

/// Every gap moto has, as `LAPSE_EMULATOR_GAPS` takes them: what the local stack
/// and the deploy rehearsal declare.
pub fn moto_gaps() -> String {
    [GAP_SERVICE_CREDENTIALS, GAP_USER_BOUNDARIES].join(",")
}

impl IamDirectory {
    pub fn new(client: impl Into<crate::sdk::Lazy<Client>>) -> Self {
        Self {
            client: client.into(),
            service_credentials_not_offered: false,
            boundary: None,
            user_boundaries_not_offered: false,
        }
    }

    /// The managed users' permissions boundary (its ARN), which grants check.
    pub fn with_boundary(mut self, boundary_arn: Option<String>) -> Self {
        self.boundary = boundary_arn;
        self
    }

    /// Declares emulator gaps (a comma-separated list); unknown names are refused so
    /// a typo cannot silently switch a check off.
    pub fn declaring_gaps(mut self, gaps: &str) -> Result<Self, String> {
        for gap in gaps.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            match gap {
                GAP_SERVICE_CREDENTIALS => self.service_credentials_not_offered = true,
                GAP_USER_BOUNDARIES => self.user_boundaries_not_offered = true,
                other => return Err(format!("unknown emulator gap `{other}`")),
            }
        }
        Ok(self)
    }
}

fn is_missing<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.code() == Some("NoSuchEntity")
}

/// Maps an IAM error; `missing` builds the error for `NoSuchEntity`.
pub(crate) fn directory_error<E>(
    err: SdkError<E, HttpResponse>,
    missing: impl FnOnce(&str) -> DirectoryError,
) -> DirectoryError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    // A refusal is 403 whether or not the body's error code could be read (moto
    // wraps it in an element real IAM does not use).
    let forbidden = err.raw_response().map(|r| r.status().as_u16()) == Some(403);
    match err.code() {
        Some("NoSuchEntity") => missing(err.message().unwrap_or_default()),
        Some("Throttling" | "ThrottlingException" | "TooManyRequestsException") => {
            DirectoryError::Throttled(Box::new(err))
        }
        Some("AccessDenied" | "AccessDeniedException") => DirectoryError::Denied(Box::new(err)),
        _ if forbidden => DirectoryError::Denied(Box::new(err)),
        _ => DirectoryError::Unavailable(Box::new(err)),
    }
}

fn no_user(user: &PrincipalId) -> impl FnOnce(&str) -> DirectoryError + '_ {
    move |_| DirectoryError::NoSuchPrincipal(user.to_string())
}

/// IAM returns policy documents URL-encoded; anything that is not JSON is kept as
/// a string, which matches no expected document.
fn decode_policy(encoded: &str) -> serde_json::Value {
    let decoded = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
    serde_json::from_str(&decoded).unwrap_or(serde_json::Value::String(decoded.into_owned()))
}

/// `Removed`, or `AlreadyAbsent` when IAM says there was nothing to remove: removals
/// are idempotent.
fn removal<T, E>(
    result: Result<T, aws_sdk_iam::error::SdkError<E, HttpResponse>>,
    user: &PrincipalId,
) -> Result<Removal, DirectoryError>
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(Removal::Removed),
        Err(e) if is_missing(&e) => Ok(Removal::AlreadyAbsent),
        Err(e) => Err(directory_error(e, no_user(user))),
    }
}

impl AccessProvisioner for IamDirectory {
    async fn put_inline_policy(
        &self,
        user: &PrincipalId,
        name: &str,
        document: &serde_json::Value,
    ) -> Result<(), DirectoryError> {
        self.client
            .put_user_policy()
            .user_name(user.as_str())
            .policy_name(name)
            .policy_document(document.to_string())
            .send()
            .await
            .map_err(|e| directory_error(e, no_user(user)))?;
        Ok(())
    }

    async fn delete_inline_policy(
        &self,
        user: &PrincipalId,
        name: &str,
    ) -> Result<Removal, DirectoryError> {
        // A missing policy (or a missing user) means nothing is held.
        let result = self
            .client
            .delete_user_policy()
            .user_name(user.as_str())
            .policy_name(name)
            .send()
            .await;
        removal(result, user)
    }

    async fn add_to_group(&self, user: &PrincipalId, group: &str) -> Result<(), DirectoryError> {
        self.client
            .add_user_to_group()
            .user_name(user.as_str())
            .group_name(group)
            .send()
            .await
            .map_err(|e| {
                directory_error(e, |message| {
                    if message.to_ascii_lowercase().contains("group") {
                        DirectoryError::NoSuchGroup(group.to_owned())
                    } else {
                        DirectoryError::NoSuchPrincipal(user.to_string())
                    }
                })
            })?;
        Ok(())
    }

    async fn remove_from_group(
        &self,
        user: &PrincipalId,
        group: &str,
    ) -> Result<Removal, DirectoryError> {
        let result = self
            .client
            .remove_user_from_group()
            .user_name(user.as_str())
            .group_name(group)
            .send()
            .await;
        removal(result, user)
    }

    async fn put_role_policy(
        &self,
        role: &str,
        name: &str,
        document: &serde_json::Value,
    ) -> Result<(), DirectoryError> {
        self.client
            .put_role_policy()
            .role_name(role)
            .policy_name(name)
            .policy_document(document.to_string())
            .send()
            .await
            .map_err(|e| directory_error(e, no_role(role)))?;
        Ok(())
    }

    async fn delete_role_policy(&self, role: &str, name: &str) -> Result<Removal, DirectoryError> {
        match self
            .client
            .delete_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(Removal::Removed),
            Err(e) if is_missing(&e) => Ok(Removal::AlreadyAbsent),
            Err(e) => Err(directory_error(e, no_role(role))),
        }
    }
}

/// Do these tags carry `lapse:managed=true`?
pub(crate) fn managed_tag(tags: &[aws_sdk_iam::types::Tag]) -> bool {
    tags.iter()
        .any(|t| t.key() == MANAGED_TAG && t.value() == "true")
}

fn no_role(role: &str) -> impl FnOnce(&str) -> DirectoryError + '_ {
    move |_| DirectoryError::NoSuchPrincipal(format!("role {role}"))
}

impl AccessInspector for IamDirectory {
    async fn user_managed(&self, user: &PrincipalId) -> Result<bool, DirectoryError> {
        lapse_core::revocation::ports::IdentityDirectory::managed(self, user).await
    }

    async fn user_bounded(&self, user: &PrincipalId) -> Result<Bounded, DirectoryError> {
        if self.user_boundaries_not_offered {
            return Ok(Bounded::NotOffered);
        }
        let Some(expected) = &self.boundary else {
            return Err(DirectoryError::Unsupported(
                "no managed-user boundary is configured (LAPSE_MANAGED_USER_BOUNDARY)",
            ));
        };
        match self.client.get_user().user_name(user.as_str()).send().await {
            Ok(out) => {
                let actual = out
                    .user()
                    .and_then(|u| u.permissions_boundary())
                    .and_then(|b| b.permissions_boundary_arn())
                    .map(str::to_owned);
                Ok(if actual.as_deref() == Some(expected.as_str()) {
                    Bounded::Yes
                } else {
                    Bounded::No { actual }
                })
            }
            Err(e) if is_missing(&e) => Ok(Bounded::No { actual: None }),
            Err(e) => Err(directory_error(e, no_user(user))),
        }
    }

    async fn role_managed(&self, role: &str) -> Result<Option<bool>, DirectoryError> {
        match self.client.list_role_tags().role_name(role).send().await {
            Ok(out) => Ok(Some(managed_tag(out.tags()))),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(directory_error(e, no_role(role))),
        }
    }

    async fn role_policy(
        &self,
        role: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, DirectoryError> {
        match self
            .client
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(Some(decode_policy(out.policy_document()))),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(directory_error(e, no_role(role))),
        }
    }

    /// Reads the trust policy once and each user's ARN and unique id side by side.
    /// A user IAM no longer has is named by no trust policy (IAM rewrites a deleted
    /// user's ARN in a trust policy to an id nobody can use again).
    async fn role_trusts(
        &self,
        role: &str,
        users: &[String],
    ) -> Result<std::collections::BTreeSet<String>, DirectoryError> {
        let trust = match self.client.get_role().role_name(role).send().await {
            Ok(out) => out
                .role
                .and_then(|r| r.assume_role_policy_document)
                .map(|doc| decode_policy(&doc)),
            Err(e) if is_missing(&e) => None,
            Err(e) => return Err(directory_error(e, no_role(role))),
        };
        let Some(trust) = trust else {
            return Ok(std::collections::BTreeSet::new());
        };
        let trust = &trust;
        let read = users.iter().map(|name| async move {
            match self.client.get_user().user_name(name).send().await {
                Ok(out) => Ok(out
                    .user
                    .filter(|u| {
                        lapse_core::revocation::plan::trust_names_user(trust, &u.arn, &u.user_id)
                    })
                    .map(|_| name.clone())),
                Err(e) if is_missing(&e) => Ok(None),
                Err(e) => Err(directory_error(e, no_role(role))),
            }
        });
        futures_util::future::join_all(read)
            .await
            .into_iter()
            .filter_map(Result::transpose)
            .collect()
    }

    /// Three listings side by side, then every inline policy's document side by
    /// side: two round trips, however much the user holds.
    async fn snapshot(&self, user: &PrincipalId) -> Result<IamSnapshot, DirectoryError> {
        let (policies, groups, attached) = tokio::join!(
            self.inline_policies(user),
            self.groups(user),
            self.attached_policies(user)
        );
        let Some(inline_policies) = policies? else {
            // A user that no longer exists holds nothing.
            return Ok(IamSnapshot::default());
        };
        Ok(IamSnapshot {
            inline_policies,
            groups: groups?,
            attached_policies: attached?,
        })
    }
}

impl IamDirectory {
    /// Every inline policy and its document (`None` when the user does not exist):
    /// the names, then all the documents at once.
    async fn inline_policies(
        &self,
        user: &PrincipalId,
    ) -> Result<Option<std::collections::BTreeMap<String, serde_json::Value>>, DirectoryError> {
        let names: Vec<String> = match self
            .client
            .list_user_policies()
            .user_name(user.as_str())
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
        {
            Ok(names) => names,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(directory_error(e, no_user(user))),
        };
        let documents = futures_util::future::join_all(names.iter().map(|name| {
            self.client
                .get_user_policy()
                .user_name(user.as_str())
                .policy_name(name)
                .send()
        }))
        .await;
        let mut policies = std::collections::BTreeMap::new();
        for (name, document) in names.into_iter().zip(documents) {
            let policy = document.map_err(|e| directory_error(e, no_user(user)))?;
            policies.insert(name, decode_policy(policy.policy_document()));
        }
        Ok(Some(policies))
    }

    async fn groups(
        &self,
        user: &PrincipalId,
    ) -> Result<std::collections::BTreeSet<String>, DirectoryError> {
        let groups = self
            .client
            .list_groups_for_user()
            .user_name(user.as_str())
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| directory_error(e, no_user(user)))?;
        Ok(groups.into_iter().map(|g| g.group_name).collect())
    }

    async fn attached_policies(
        &self,
        user: &PrincipalId,
    ) -> Result<std::collections::BTreeSet<String>, DirectoryError> {
        let attached = self
            .client
            .list_attached_user_policies()
            .user_name(user.as_str())
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| directory_error(e, no_user(user)))?;
        Ok(attached.into_iter().filter_map(|p| p.policy_arn).collect())
    }
}

mod identity {
    use super::managed_tag;
    use aws_sdk_iam::error::ProvideErrorMetadata;
    use aws_sdk_iam::types::StatusType;
    use chrono::{DateTime, Utc};
    use lapse_core::access::role_denies::{self, ROLE_DENY_POLICY};
    use lapse_core::identity::PrincipalId;
    use lapse_core::ports::AccessInspector;
    use lapse_core::ports::{DirectoryError, Removal};
    use lapse_core::revocation::plan::{
        Action, Credential, IdentitySnapshot, SESSION_DENY_POLICY, ServiceCredentials,
        TrustingRole, roles_to_lift, session_deny_document, trust_names_user,
    };
    use lapse_core::revocation::ports::IdentityDirectory;

    use super::{IamDirectory, decode_policy, directory_error, is_missing, no_user, removal};

    /// An endpoint that does not implement an operation answers with something that
    /// is not an AWS error at all (moto: an HTML 404). Only that counts as
    /// "unsupported"; real AWS errors still fail the call.
    fn unsupported<E, R>(err: &aws_sdk_iam::error::SdkError<E, R>) -> bool
    where
        E: aws_sdk_iam::error::ProvideErrorMetadata,
    {
        matches!(err, aws_sdk_iam::error::SdkError::ResponseError(_))
            || (matches!(err, aws_sdk_iam::error::SdkError::ServiceError(_))
                && err.code().is_none())
    }

    impl IamDirectory {
        async fn access_keys(&self, user: &PrincipalId) -> Result<Vec<Credential>, DirectoryError> {
            let keys = self
                .client
                .list_access_keys()
                .user_name(user.as_str())
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| directory_error(e, no_user(user)))?;
            Ok(keys
                .into_iter()
                .map(|k| Credential {
                    active: k.status() == Some(&StatusType::Active),
                    id: k.access_key_id.unwrap_or_default(),
                })
                .collect())
        }

        async fn ssh_keys(&self, user: &PrincipalId) -> Result<Vec<Credential>, DirectoryError> {
            let keys = self
                .client
                .list_ssh_public_keys()
                .user_name(user.as_str())
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| directory_error(e, no_user(user)))?;
            Ok(keys
                .into_iter()
                .map(|k| Credential {
                    active: k.status() == &StatusType::Active,
                    id: k.ssh_public_key_id,
                })
                .collect())
        }

        /// Decided on every call: an answer that is not an AWS response is
        /// `NotOffered` only where the deployment declared that gap, and otherwise
        /// `Unreadable`, which verification refuses.
        async fn service_credentials(
            &self,
            user: &PrincipalId,
        ) -> Result<ServiceCredentials, DirectoryError> {
            // No SDK retries for this call: an endpoint without the operation would
            // be asked again with backoff. A real service error fails the step,
            // which the workflow retries.
            match self
                .client
                .list_service_specific_credentials()
                .user_name(user.as_str())
                .customize()
                .config_override(
                    aws_sdk_iam::config::Config::builder()
                        .retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled()),
                )
                .send()
                .await
            {
                Ok(out) => Ok(ServiceCredentials::Listed {
                    credentials: out
                        .service_specific_credentials()
                        .iter()
                        .map(|c| Credential {
                            id: c.service_specific_credential_id().to_owned(),
                            active: c.status() == &StatusType::Active,
                        })
                        .collect(),
                }),
                Err(e) if unsupported(&e) && self.service_credentials_not_offered => {
                    Ok(ServiceCredentials::NotOffered)
                }
                Err(e) if unsupported(&e) => {
                    tracing::warn!(user = %user, "service-specific credentials could not be read");
                    Ok(ServiceCredentials::Unreadable {
                        reason: "the endpoint's answer to ListServiceSpecificCredentials was not an AWS response".into(),
                    })
                }
                Err(e) => Err(directory_error(e, no_user(user))),
            }
        }

        async fn signing_certificates(
            &self,
            user: &PrincipalId,
        ) -> Result<Vec<Credential>, DirectoryError> {
            let certificates = self
                .client
                .list_signing_certificates()
                .user_name(user.as_str())
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| directory_error(e, no_user(user)))?;
            Ok(certificates
                .into_iter()
                .map(|c| Credential {
                    active: c.status() == &StatusType::Active,
                    id: c.certificate_id().to_owned(),
                })
                .collect())
        }

        async fn mfa_devices(&self, user: &PrincipalId) -> Result<Vec<String>, DirectoryError> {
            let devices = self
                .client
                .list_mfa_devices()
                .user_name(user.as_str())
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| directory_error(e, no_user(user)))?;
            Ok(devices
                .into_iter()
                .map(|d| d.serial_number().to_owned())
                .collect())
        }

        /// Every role in the account (their trust policies name who may assume them).
        async fn roles(
            &self,
            user: &PrincipalId,
        ) -> Result<Vec<aws_sdk_iam::types::Role>, DirectoryError> {
            self.client
                .list_roles()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| directory_error(e, no_user(user)))
        }

        /// Of `roles`, those whose trust policy names the user, with whether Lapse
        /// manages each and the deny of the user's sessions it carries (read for all
        /// of them at once).
        async fn trusting_roles(
            &self,
            user: &PrincipalId,
            roles: Vec<aws_sdk_iam::types::Role>,
            arn: &str,
            id: &str,
        ) -> Result<Vec<TrustingRole>, DirectoryError> {
            let trusting = roles.into_iter().filter(|role| {
                role.assume_role_policy_document()
                    .map(decode_policy)
                    .is_some_and(|trust| trust_names_user(&trust, arn, id))
            });
            let read = trusting.map(|role| async move {
                let name = role.role_name();
                let (tags, deny) = tokio::join!(
                    self.client.list_role_tags().role_name(name).send(),
                    self.role_policy(name, ROLE_DENY_POLICY)
                );
                let managed =
                    managed_tag(tags.map_err(|e| directory_error(e, no_user(user)))?.tags());
                let session_deny = deny?;
                Ok(TrustingRole {
                    name: name.to_owned(),
                    managed,
                    session_deny,
                })
            });
            futures_util::future::join_all(read)
                .await
                .into_iter()
                .collect()
        }
    }

    impl IdentityDirectory for IamDirectory {
        /// Everything that needs only the user's name is read side by side, then
        /// the inline policies' documents and the trusting roles' details: two
        /// round trips to IAM, however much the user holds.
        async fn identity(
            &self,
            user: &PrincipalId,
            at: DateTime<Utc>,
        ) -> Result<IdentitySnapshot, DirectoryError> {
            let name = user.as_str();
            let (
                found,
                login_profile,
                inline_policies,
                groups,
                attached_policies,
                managed,
                access_keys,
                ssh_keys,
                signing_certificates,
                mfa_devices,
                service_credentials,
                roles,
            ) = tokio::join!(
                self.client.get_user().user_name(name).send(),
                self.client.get_login_profile().user_name(name).send(),
                self.inline_policies(user),
                self.groups(user),
                self.attached_policies(user),
                self.managed(user),
                self.access_keys(user),
                self.ssh_keys(user),
                self.signing_certificates(user),
                self.mfa_devices(user),
                self.service_credentials(user),
                self.roles(user),
            );
            let found = match found {
                Ok(out) => out.user,
                // Whatever the other reads said, a user IAM does not have holds nothing.
                Err(e) if is_missing(&e) => return Ok(IdentitySnapshot::absent(user.clone(), at)),
                Err(e) => return Err(directory_error(e, no_user(user))),
            };
            let (arn, id) = found.map(|u| (u.arn, u.user_id)).unwrap_or_default();
            let login_profile = match login_profile {
                Ok(_) => true,
                Err(e) if is_missing(&e) => false,
                Err(e) => return Err(directory_error(e, no_user(user))),
            };
            Ok(IdentitySnapshot {
                user: user.clone(),
                exists: true,
                managed: managed?,
                login_profile,
                access_keys: access_keys?,
                ssh_keys: ssh_keys?,
                signing_certificates: signing_certificates?,
                mfa_devices: mfa_devices?,
                service_credentials: service_credentials?,
                trusting_roles: self.trusting_roles(user, roles?, &arn, &id).await?,
                groups: groups?,
                // Deleted between the reads: it holds no inline policy.
                inline_policies: inline_policies?.unwrap_or_default(),
                attached_policies: attached_policies?,
                taken_at: at,
            })
        }

        async fn managed(&self, user: &PrincipalId) -> Result<bool, DirectoryError> {
            match self
                .client
                .list_user_tags()
                .user_name(user.as_str())
                .send()
                .await
            {
                Ok(tags) => Ok(managed_tag(tags.tags())),
                Err(e) if is_missing(&e) => Ok(false),
                Err(e) => Err(directory_error(e, no_user(user))),
            }
        }

        async fn apply(
            &self,
            user: &PrincipalId,
            action: &Action,
        ) -> Result<Removal, DirectoryError> {
            let name = user.as_str();
            let c = &self.client;
            match action {
                Action::DeleteLoginProfile => {
                    removal(c.delete_login_profile().user_name(name).send().await, user)
                }
                Action::DeactivateAccessKey { id } => removal(
                    c.update_access_key()
                        .user_name(name)
                        .access_key_id(id)
                        .status(StatusType::Inactive)
                        .send()
                        .await,
                    user,
                ),
                Action::DeactivateSshKey { id } => removal(
                    c.update_ssh_public_key()
                        .user_name(name)
                        .ssh_public_key_id(id)
                        .status(StatusType::Inactive)
                        .send()
                        .await,
                    user,
                ),
                Action::DeactivateServiceCredential { id } => {
                    let result = c
                        .update_service_specific_credential()
                        .user_name(name)
                        .service_specific_credential_id(id)
                        .status(StatusType::Inactive)
                        .send()
                        .await;
                    match result {
                        Err(e) if unsupported(&e) => {
                            Err(DirectoryError::Unsupported("service-specific credentials"))
                        }
                        other => removal(other, user),
                    }
                }
                Action::RemoveFromGroup { group } => removal(
                    c.remove_user_from_group()
                        .user_name(name)
                        .group_name(group)
                        .send()
                        .await,
                    user,
                ),
                Action::DeleteInlinePolicy { name: policy } => removal(
                    c.delete_user_policy()
                        .user_name(name)
                        .policy_name(policy)
                        .send()
                        .await,
                    user,
                ),
                Action::DetachPolicy { arn } => removal(
                    c.detach_user_policy()
                        .user_name(name)
                        .policy_arn(arn)
                        .send()
                        .await,
                    user,
                ),
                Action::DenyOlderSessions { issued_before } => {
                    c.put_user_policy()
                        .user_name(name)
                        .policy_name(SESSION_DENY_POLICY)
                        .policy_document(session_deny_document(*issued_before).to_string())
                        .send()
                        .await
                        .map_err(|e| directory_error(e, no_user(user)))?;
                    Ok(Removal::Removed)
                }
                Action::DeactivateSigningCertificate { id } => removal(
                    c.update_signing_certificate()
                        .user_name(name)
                        .certificate_id(id)
                        .status(StatusType::Inactive)
                        .send()
                        .await,
                    user,
                ),
                Action::DeactivateMfaDevice { serial } => removal(
                    c.deactivate_mfa_device()
                        .user_name(name)
                        .serial_number(serial)
                        .send()
                        .await,
                    user,
                ),
                Action::DenyRoleSessions { role, at } => {
                    role_denies::update(self, role, *at, |d| d.revoke(user, *at)).await?;
                    Ok(Removal::Removed)
                }
                Action::EndGrant { .. } | Action::CancelRequest { .. } => {
                    Ok(Removal::AlreadyAbsent)
                }
            }
        }

        async fn restore(
            &self,
            snapshot: &IdentitySnapshot,
            at: DateTime<Utc>,
        ) -> Result<Vec<String>, DirectoryError> {
            let user = &snapshot.user;
            let name = user.as_str();
            let c = &self.client;
            let mut restored = Vec::new();
            for key in snapshot.access_keys.iter().filter(|k| k.active) {
                c.update_access_key()
                    .user_name(name)
                    .access_key_id(&key.id)
                    .status(StatusType::Active)
                    .send()
                    .await
                    .map_err(|e| directory_error(e, no_user(user)))?;
                restored.push(format!("access key {} reactivated", key.id));
            }
            for key in snapshot.ssh_keys.iter().filter(|k| k.active) {
                c.update_ssh_public_key()
                    .user_name(name)
                    .ssh_public_key_id(&key.id)
                    .status(StatusType::Active)
                    .send()
                    .await
                    .map_err(|e| directory_error(e, no_user(user)))?;
                restored.push(format!("SSH key {} reactivated", key.id));
            }
            for certificate in snapshot.signing_certificates.iter().filter(|k| k.active) {
                c.update_signing_certificate()
                    .user_name(name)
                    .certificate_id(&certificate.id)
                    .status(StatusType::Active)
                    .send()
                    .await
                    .map_err(|e| directory_error(e, no_user(user)))?;
                restored.push(format!(
                    "signing certificate {} reactivated",
                    certificate.id
                ));
            }
            for serial in &snapshot.mfa_devices {
                // Re-enabling needs two codes from the device: the person re-enrols.
                restored.push(format!(
                    "MFA device {serial}: to be re-enrolled by its owner"
                ));
            }
            // A deny that was already there before the revocation stays.
            for role in roles_to_lift(snapshot) {
                role_denies::update(self, role, at, |d| d.lift(user)).await?;
                restored.push(format!("deny of sessions of role {role} removed"));
            }
            for group in &snapshot.groups {
                c.add_user_to_group()
                    .user_name(name)
                    .group_name(group)
                    .send()
                    .await
                    .map_err(|e| directory_error(e, no_user(user)))?;
                restored.push(format!("group {group}"));
            }
            for (policy, document) in snapshot
                .inline_policies
                .iter()
                .filter(|(n, _)| n.as_str() != SESSION_DENY_POLICY)
            {
                c.put_user_policy()
                    .user_name(name)
                    .policy_name(policy)
                    .policy_document(document.to_string())
                    .send()
                    .await
                    .map_err(|e| directory_error(e, no_user(user)))?;
                restored.push(format!("inline policy {policy}"));
            }
            for arn in &snapshot.attached_policies {
                c.attach_user_policy()
                    .user_name(name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map_err(|e| directory_error(e, no_user(user)))?;
                restored.push(format!("attached policy {arn}"));
            }
            if !snapshot.inline_policies.contains_key(SESSION_DENY_POLICY) {
                removal(
                    c.delete_user_policy()
                        .user_name(name)
                        .policy_name(SESSION_DENY_POLICY)
                        .send()
                        .await,
                    user,
                )?;
                restored.push("session deny removed".into());
            }
            if snapshot.login_profile {
                // The old password is not known (nor should it be): a random one that
                // must be reset at first sign-in; it is never logged or returned.
                let mut bytes = [0u8; 24];
                getrandom::fill(&mut bytes).map_err(|e| {
                    DirectoryError::Unavailable(Box::new(std::io::Error::other(e.to_string())))
                })?;
                let password = format!("Lp{}!9a", hex::encode(bytes));
                match c
                    .create_login_profile()
                    .user_name(name)
                    .password(password)
                    .password_reset_required(true)
                    .send()
                    .await
                {
                    Ok(_) => restored.push("console login (password reset required)".into()),
                    Err(e) if e.code() == Some("EntityAlreadyExists") => {}
                    Err(e) => return Err(directory_error(e, no_user(user))),
                }
            }
            Ok(restored)
        }
    }
}
