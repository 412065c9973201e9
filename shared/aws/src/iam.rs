//! IAM: writing grants and reading back what a user really holds.
//!
//! `AccessProvisioner` needs `iam:PutUserPolicy`, `iam:DeleteUserPolicy`,
//! `iam:AddUserToGroup`, `iam:RemoveUserFromGroup`; `AccessInspector` needs
//! `iam:ListUserPolicies`, `iam:GetUserPolicy`, `iam:ListGroupsForUser`,
//! `iam:ListAttachedUserPolicies`.

use aws_sdk_iam::Client;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use lapse_core::grant::IamSnapshot;
use lapse_core::identity::PrincipalId;
use lapse_core::ports::{AccessInspector, AccessProvisioner, DirectoryError, Removal};

/// IAM users and groups.
#[derive(Clone, Debug)]
pub struct IamDirectory {
    client: Client,
}

impl IamDirectory {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn is_missing<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.code() == Some("NoSuchEntity")
}

/// Maps an IAM error; `missing` builds the error for `NoSuchEntity`.
fn directory_error<E, R>(
    err: SdkError<E, R>,
    missing: impl FnOnce(&str) -> DirectoryError,
) -> DirectoryError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match err.code() {
        Some("NoSuchEntity") => missing(err.message().unwrap_or_default()),
        Some("Throttling" | "ThrottlingException" | "TooManyRequestsException") => {
            DirectoryError::Throttled(Box::new(err))
        }
        _ => DirectoryError::Unavailable(Box::new(err)),
    }
}

fn no_user(user: &PrincipalId) -> impl FnOnce(&str) -> DirectoryError + '_ {
    move |_| DirectoryError::NoSuchPrincipal(user.to_string())
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
        match self
            .client
            .delete_user_policy()
            .user_name(user.as_str())
            .policy_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(Removal::Removed),
            // The policy (or the whole user) is gone: nothing is held.
            Err(e) if is_missing(&e) => Ok(Removal::AlreadyAbsent),
            Err(e) => Err(directory_error(e, no_user(user))),
        }
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
        match self
            .client
            .remove_user_from_group()
            .user_name(user.as_str())
            .group_name(group)
            .send()
            .await
        {
            Ok(_) => Ok(Removal::Removed),
            Err(e) if is_missing(&e) => Ok(Removal::AlreadyAbsent),
            Err(e) => Err(directory_error(e, no_user(user))),
        }
    }
}

impl AccessInspector for IamDirectory {
    async fn snapshot(&self, user: &PrincipalId) -> Result<IamSnapshot, DirectoryError> {
        let mut snapshot = IamSnapshot::default();

        let mut marker = None;
        loop {
            let page = match self
                .client
                .list_user_policies()
                .user_name(user.as_str())
                .set_marker(marker.take())
                .send()
                .await
            {
                Ok(page) => page,
                // A user that no longer exists holds nothing.
                Err(e) if is_missing(&e) => return Ok(IamSnapshot::default()),
                Err(e) => return Err(directory_error(e, no_user(user))),
            };
            for name in page.policy_names() {
                let policy = self
                    .client
                    .get_user_policy()
                    .user_name(user.as_str())
                    .policy_name(name)
                    .send()
                    .await
                    .map_err(|e| directory_error(e, no_user(user)))?;
                // IAM returns policy documents URL-encoded.
                let decoded = percent_encoding::percent_decode_str(policy.policy_document())
                    .decode_utf8_lossy();
                let document = serde_json::from_str(&decoded)
                    .unwrap_or(serde_json::Value::String(decoded.into_owned()));
                snapshot.inline_policies.insert(name.clone(), document);
            }
            match page.marker() {
                Some(next) if page.is_truncated() => marker = Some(next.to_owned()),
                _ => break,
            }
        }

        let mut marker = None;
        loop {
            let page = self
                .client
                .list_groups_for_user()
                .user_name(user.as_str())
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| directory_error(e, no_user(user)))?;
            snapshot
                .groups
                .extend(page.groups().iter().map(|g| g.group_name().to_owned()));
            match page.marker() {
                Some(next) if page.is_truncated() => marker = Some(next.to_owned()),
                _ => break,
            }
        }

        let mut marker = None;
        loop {
            let page = self
                .client
                .list_attached_user_policies()
                .user_name(user.as_str())
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| directory_error(e, no_user(user)))?;
            snapshot.attached_policies.extend(
                page.attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn().map(str::to_owned)),
            );
            match page.marker() {
                Some(next) if page.is_truncated() => marker = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(snapshot)
    }
}
