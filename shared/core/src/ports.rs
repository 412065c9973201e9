//! Ports: the narrow interfaces the core needs from the outside world. Adapters in
//! `lapse-aws` implement them against AWS; [`crate::memory`] implements them in
//! memory for tests. A handler asks for the least it needs.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::access::grant::IamSnapshot;
use crate::access::ledger::{Artifact, Hold, Release};
use crate::access::request::{AccessRequest, RequestId, Status};
use crate::audit::{AuditEvent, ChainHead};
use crate::identity::PrincipalId;

/// Boxed source error from an adapter (an SDK error, an I/O error...).
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A storage failure, classified so callers know whether to retry.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A create found the item already there.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// An optimistic write lost a race: re-read and try again.
    #[error("{what} changed since it was read")]
    Conflict { what: String },
    /// The stored item cannot be read back into the domain type.
    #[error("stored item {id} is unreadable: {detail}")]
    Corrupt { id: String, detail: String },
    /// The service is throttling; retry with backoff.
    #[error("the store is throttling requests")]
    Throttled(#[source] Source),
    /// The service failed or could not be reached.
    #[error("the store is unavailable")]
    Unavailable(#[source] Source),
}

/// Access requests, with optimistic concurrency on a version number.
pub trait RequestStore: Send + Sync {
    /// Writes a new request; [`StoreError::AlreadyExists`] if its id is taken.
    fn create(
        &self,
        request: &mut AccessRequest,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads a request by id.
    fn get(
        &self,
        id: &RequestId,
    ) -> impl Future<Output = Result<Option<AccessRequest>, StoreError>> + Send;

    /// Writes a changed request if nobody else wrote it since it was read
    /// ([`StoreError::Conflict`] otherwise). Bumps the request's version on success.
    fn update(
        &self,
        request: &mut AccessRequest,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Append-only audit chains.
pub trait AuditLog: Send + Sync {
    /// The newest event of a chain.
    fn head(
        &self,
        chain: &str,
    ) -> impl Future<Output = Result<Option<ChainHead>, StoreError>> + Send;

    /// Appends an event; [`StoreError::Conflict`] if its sequence number is taken.
    fn append(&self, event: &AuditEvent) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A whole chain, in sequence order.
    fn chain(
        &self,
        chain: &str,
    ) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send;

    /// Records a chain head where it cannot be deleted or changed (an S3 bucket under
    /// Object Lock), so removing the newest events, or a whole chain, is detected.
    /// Idempotent. A log without anchors does nothing.
    fn anchor(
        &self,
        _head: &ChainHead,
        _chain: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}

/// Listing requests (eventually consistent is fine: these feed lists and sweeps).
pub trait RequestQueries: Send + Sync {
    /// A person's requests, newest first.
    fn by_requester(
        &self,
        requester: &PrincipalId,
    ) -> impl Future<Output = Result<Vec<AccessRequest>, StoreError>> + Send;

    /// Requests in one status.
    fn by_status(
        &self,
        status: Status,
    ) -> impl Future<Output = Result<Vec<AccessRequest>, StoreError>> + Send;

    /// Requests in one status created at `since` or later. A store with an index
    /// on creation time answers from it; this default filters [`Self::by_status`].
    fn by_status_since(
        &self,
        status: Status,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<AccessRequest>, StoreError>> + Send {
        async move {
            let mut requests = self.by_status(status).await?;
            requests.retain(|r| r.created_at() >= since);
            Ok(requests)
        }
    }
}

/// The grant ledger, shared by every function that grants or revokes.
pub trait LedgerStore: Send + Sync {
    /// Records (or re-records, with a new expiry) a grant's hold.
    fn hold(&self, hold: &Hold) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Releases a grant's hold and says whether IAM should lose the artifact.
    fn release(
        &self,
        principal: &PrincipalId,
        artifact: &Artifact,
        grant_id: &str,
    ) -> impl Future<Output = Result<Release, StoreError>> + Send;

    /// Live grants holding an artifact.
    fn holders(
        &self,
        principal: &PrincipalId,
        artifact: &Artifact,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// A failure talking to the identity directory (IAM).
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("no such principal `{0}` in IAM")]
    NoSuchPrincipal(String),
    #[error("no such group `{0}` in IAM")]
    NoSuchGroup(String),
    #[error("IAM is throttling requests")]
    Throttled(#[source] Source),
    #[error("IAM is unavailable")]
    Unavailable(#[source] Source),
    /// IAM refused the call: the function's role lacks the permission, or the user
    /// is outside what Lapse may change (not tagged `lapse:managed`, no boundary).
    /// A configuration problem, never retried.
    #[error("IAM refused the call (Lapse's role may not do this to this user)")]
    Denied(#[source] Source),
    /// The endpoint does not implement this call (some emulators, some partitions).
    #[error("this IAM endpoint does not support {0}")]
    Unsupported(&'static str),
}

/// Did a removal remove something?
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    Removed,
    /// It was not there: removals are idempotent.
    AlreadyAbsent,
}

/// Writes grants into IAM. Needs `iam:PutUserPolicy`, `iam:DeleteUserPolicy`,
/// `iam:AddUserToGroup`, `iam:RemoveUserFromGroup`.
pub trait AccessProvisioner: Send + Sync {
    fn put_inline_policy(
        &self,
        user: &PrincipalId,
        name: &str,
        document: &serde_json::Value,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send;

    fn delete_inline_policy(
        &self,
        user: &PrincipalId,
        name: &str,
    ) -> impl Future<Output = Result<Removal, DirectoryError>> + Send;

    fn add_to_group(
        &self,
        user: &PrincipalId,
        group: &str,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send;

    fn remove_from_group(
        &self,
        user: &PrincipalId,
        group: &str,
    ) -> impl Future<Output = Result<Removal, DirectoryError>> + Send;

    /// Puts an inline policy on a role (its deny of sessions,
    /// [`crate::access::role_denies`]). Needs `iam:PutRolePolicy`, on roles tagged
    /// `lapse:managed` only.
    fn put_role_policy(
        &self,
        role: &str,
        name: &str,
        document: &serde_json::Value,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send;

    /// Deletes a role's inline policy (a deny with nobody left in it). Needs
    /// `iam:DeleteRolePolicy`, on roles tagged `lapse:managed` only.
    fn delete_role_policy(
        &self,
        role: &str,
        name: &str,
    ) -> impl Future<Output = Result<Removal, DirectoryError>> + Send;
}

/// Whether a user carries Lapse's permissions boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bounded {
    Yes,
    /// Another boundary, or none (`None`; also for a user IAM does not know).
    No {
        actual: Option<String>,
    },
    /// The IAM in use cannot report user boundaries (a declared emulator gap):
    /// not checked, and said so where the grant is audited.
    NotOffered,
}

/// Reads what IAM really holds. Needs `iam:ListUserPolicies`, `iam:GetUserPolicy`,
/// `iam:ListGroupsForUser`, `iam:ListAttachedUserPolicies`.
pub trait AccessInspector: Send + Sync {
    fn snapshot(
        &self,
        user: &PrincipalId,
    ) -> impl Future<Output = Result<IamSnapshot, DirectoryError>> + Send;

    /// Is the user tagged `lapse:managed=true`? `false` for a user IAM does not
    /// know. Needs `iam:ListUserTags`.
    fn user_managed(
        &self,
        user: &PrincipalId,
    ) -> impl Future<Output = Result<bool, DirectoryError>> + Send;

    /// Does the user carry the permissions boundary of Lapse's managed users (the
    /// one this inspector was configured with)? Needs `iam:GetUser`.
    fn user_bounded(
        &self,
        user: &PrincipalId,
    ) -> impl Future<Output = Result<Bounded, DirectoryError>> + Send;

    /// Is the role tagged `lapse:managed=true`? `None`: IAM has no such role.
    /// Needs `iam:ListRoleTags`.
    fn role_managed(
        &self,
        role: &str,
    ) -> impl Future<Output = Result<Option<bool>, DirectoryError>> + Send;

    /// A role's inline policy document, if it has one by that name. Needs
    /// `iam:GetRolePolicy`.
    fn role_policy(
        &self,
        role: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, DirectoryError>> + Send;

    /// Of `users`, those the role's trust policy names (by ARN or unique id) in an
    /// `Allow`; none if IAM has no such role. Needs `iam:GetRole` and `iam:GetUser`.
    fn role_trusts(
        &self,
        role: &str,
        users: &[String],
    ) -> impl Future<Output = Result<std::collections::BTreeSet<String>, DirectoryError>> + Send;
}

/// Who a notice is for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Audience {
    /// One person (the requester or grant holder).
    Person { id: PrincipalId },
    /// Everyone in these approver groups.
    Approvers { groups: Vec<String> },
    /// The security team.
    Security,
}

/// A message to people. Never carries secrets.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Notice {
    pub audience: Audience,
    pub subject: String,
    pub body: String,
    pub request_id: Option<RequestId>,
}

/// A failure delivering a notice.
#[derive(Debug, thiserror::Error)]
#[error("cannot deliver notice `{subject}`")]
pub struct NotifyError {
    pub subject: String,
    #[source]
    pub source: Source,
}

/// Sends notices (SNS in AWS). Needs `sns:Publish` on the Lapse topics.
pub trait Notifier: Send + Sync {
    fn send(&self, notice: &Notice) -> impl Future<Output = Result<(), NotifyError>> + Send;
}

/// A failure starting a workflow.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("an execution named `{0}` already exists with different input")]
    NameTaken(String),
    #[error("Step Functions is throttling requests")]
    Throttled(#[source] Source),
    #[error("Step Functions is unavailable")]
    Unavailable(#[source] Source),
    /// This deployment's role may not start (or schedule) the workflow.
    #[error("starting the workflow is denied to this role")]
    Denied(#[source] Source),
}

/// Starts the grant-lifecycle workflow. Needs `states:StartExecution`.
pub trait WorkflowStarter: Send + Sync {
    /// Starts the execution named `name` with `input`; idempotent for the same name
    /// and input (Step Functions' own rule), so a retried approval starts it once.
    fn start(
        &self,
        name: &str,
        input: &serde_json::Value,
    ) -> impl Future<Output = Result<String, WorkflowError>> + Send;
}

/// An exclusive checkout of a credential held in Secrets Manager.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    pub secret_arn: String,
    pub request_id: RequestId,
    pub holder: PrincipalId,
    /// The secret's current version when it was checked out: the value the holder
    /// may read, which check-in replaces.
    pub version_id: String,
    pub at: DateTime<Utc>,
    /// The function that rotates the secret, as the catalog named it and the
    /// secret was found rotating with at checkout: check-in and containment ask
    /// Secrets Manager to run this one. Empty in a lease taken before Lapse
    /// named it; the secret's configured function is used then.
    #[serde(default)]
    pub rotation_function: String,
}

/// Who holds which credential. One lease per secret.
pub trait Leases: Send + Sync {
    /// Takes the lease unless another request holds it, and returns the lease in
    /// force: this one (or this request's earlier one, unchanged), or the other
    /// request's.
    fn acquire(&self, lease: &Lease) -> impl Future<Output = Result<Lease, StoreError>> + Send;
    fn get(
        &self,
        secret_arn: &str,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send;
    /// Releases the lease if this request holds it; nothing otherwise.
    fn release(
        &self,
        secret_arn: &str,
        request_id: &RequestId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A failure reaching a secret. Never carries a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("secret {0} not found")]
    NotFound(String),
    #[error(
        "secret {secret} exists and is not Lapse's for request {request}: refused, not adopted"
    )]
    NotOurs { secret: String, request: String },
    #[error("not allowed to use secret {secret}")]
    Denied {
        secret: String,
        #[source]
        source: Source,
    },
    #[error("secrets service unavailable")]
    Unavailable(#[source] Source),
    /// The secret cannot be rotated the way the catalog says: a credential Lapse
    /// could not rotate at check-in is never handed out.
    #[error(
        "secret {secret} does not rotate with {expected} ({found}): Lapse will not check out a credential it cannot rotate"
    )]
    NoRotation {
        secret: String,
        expected: String,
        found: String,
    },
    /// A rotation was asked for and has not finished: its version is not current
    /// yet. Asked again later (the rotation function may still be running); if it
    /// never finishes, the rotation failed and the old value still works.
    #[error("the rotation of {secret} to version {version} has not finished ({state})")]
    RotationUnfinished {
        secret: String,
        version: String,
        state: String,
    },
}

/// Where a secret stands: the version in force, a rotation in flight, and the
/// function that rotates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretState {
    /// The version staged `AWSCURRENT`.
    pub current: String,
    /// A version staged `AWSPENDING` other than the current one: a rotation
    /// started and not finished (or failed part way).
    pub pending: Option<String>,
    /// The rotation function, when the secret's rotation is on.
    pub rotation_function: Option<String>,
}

/// The privileged credentials (Secrets Manager in AWS). Needs
/// `secretsmanager:DescribeSecret` and `secretsmanager:RotateSecret` on the
/// checked-out secrets, and `lambda:InvokeFunction` on their rotation functions.
pub trait CredentialVault: Send + Sync {
    /// Where the secret stands.
    fn state(
        &self,
        secret_arn: &str,
    ) -> impl Future<Output = Result<SecretState, VaultError>> + Send;
    /// The version staged `AWSCURRENT`.
    fn current_version(
        &self,
        secret_arn: &str,
    ) -> impl Future<Output = Result<String, VaultError>> + Send {
        async move { self.state(secret_arn).await.map(|s| s.current) }
    }
    /// Asks `rotation_function` (the secret's, named explicitly so no other runs)
    /// for a new value under version `version_id` (`RotateSecret`; the caller
    /// needs `lambda:InvokeFunction` on it). It returns once the rotation has started: the
    /// rotation is done when that version is current ([`Self::state`]). Asking
    /// again for a version that is current or in flight starts nothing. The value
    /// never passes through Lapse.
    fn rotate(
        &self,
        secret_arn: &str,
        version_id: &str,
        rotation_function: &str,
    ) -> impl Future<Output = Result<(), VaultError>> + Send;
}

/// A generated password on its way from the vault to IAM. Never printed: its
/// `Debug` is redacted and it has no `Display` or `Serialize`.
pub struct Password(String);

impl Password {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Vendors' temporary IAM users (IAM in AWS). Needs `iam:CreateUser`,
/// `iam:TagUser`, `iam:GetUser`, `iam:CreateLoginProfile` and, to delete,
/// `iam:DeleteUser` with what IAM requires gone first (`iam:ListAccessKeys`,
/// `iam:DeleteAccessKey`, `iam:DeleteLoginProfile`, `iam:ListUserPolicies`,
/// `iam:DeleteUserPolicy`, `iam:ListGroupsForUser`, `iam:RemoveUserFromGroup`,
/// `iam:ListMFADevices`, `iam:DeactivateMFADevice`, `iam:DeleteVirtualMFADevice`).
pub trait VendorAccounts: Send + Sync {
    /// Creates the user under the managed path and boundary, tagged
    /// `lapse:managed=true` and with `tags`, unless Lapse made it before. A user of
    /// that name Lapse does not manage is refused.
    fn create_user(
        &self,
        user: &PrincipalId,
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send;
    /// Sets the first console password (to be changed at first sign-in) unless the
    /// user has one. Returns whether it set one.
    fn set_console_password(
        &self,
        user: &PrincipalId,
        password: &Password,
    ) -> impl Future<Output = Result<bool, DirectoryError>> + Send;
    /// Deletes the user and everything IAM requires gone first.
    fn delete_user(
        &self,
        user: &PrincipalId,
    ) -> impl Future<Output = Result<Removal, DirectoryError>> + Send;
    fn exists(
        &self,
        user: &PrincipalId,
    ) -> impl Future<Output = Result<bool, DirectoryError>> + Send;
}

/// Where vendors' first credentials are handed over (Secrets Manager in AWS).
/// Needs `secretsmanager:CreateSecret`, `GetSecretValue`, `PutResourcePolicy`,
/// `DeleteSecret` on `lapse/vendor/*`, `GetRandomPassword`, and `iam:GetUser` on
/// the reader.
pub trait CredentialDrop: Send + Sync {
    /// A random password in secret `name`, made for `request` (tagged with it),
    /// readable by `reader`'s IAM user alone until `until`: everyone else is
    /// denied explicitly, whatever their identity policies allow. A secret of
    /// that name made for this request before (a retry) gives back its password;
    /// one that is not Lapse's for this request is refused, never adopted.
    fn issue(
        &self,
        name: &str,
        request: &crate::access::request::RequestId,
        reader: &PrincipalId,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Password, VaultError>> + Send;
    /// Deletes the secret made for `request` without a recovery window. A secret
    /// of that name not made for it is left alone (not Lapse's to delete).
    /// Idempotent.
    fn withdraw(
        &self,
        name: &str,
        request: &crate::access::request::RequestId,
    ) -> impl Future<Output = Result<(), VaultError>> + Send;
}

/// A security incident Lapse opens: an unjustified break-glass use. Its id is
/// stable for its cause, so a re-sent incident is recognisably the same one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Incident {
    pub id: String,
    pub kind: String,
    /// The person whose access it concerns.
    pub subject: PrincipalId,
    pub request_id: RequestId,
    pub summary: String,
    pub at: DateTime<Utc>,
}

/// Where incidents go (the event bus in AWS, for the incident tooling's rules).
/// Needs `events:PutEvents` on the bus.
pub trait Incidents: Send + Sync {
    fn open(
        &self,
        incident: &Incident,
    ) -> impl Future<Output = Result<(), crate::revocation::ports::BusError>> + Send;
}

/// The time. Handlers take it as a port so tests and the local stack can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

impl std::fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
