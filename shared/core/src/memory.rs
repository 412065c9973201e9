//! In-memory implementations of the ports, for unit and property tests.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::access::grant::IamSnapshot;
use crate::access::ledger::{Artifact, Hold, Ledger, Release};
use crate::access::request::{AccessRequest, RequestId, Status};
use crate::access::role_denies::ROLE_DENY_POLICY;
use crate::audit::{AuditEvent, ChainHead};
use crate::identity::PrincipalId;
use crate::ports::{
    AccessInspector, AccessProvisioner, AuditLog, Bounded, Clock, DirectoryError, LedgerStore,
    Notice, Notifier, NotifyError, Removal, RequestQueries, RequestStore, StoreError,
    WorkflowError, WorkflowStarter,
};
use crate::revocation::plan::IdentitySnapshot;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep going.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Requests in a map, with the same version rules as the DynamoDB store.
#[derive(Debug, Default)]
pub struct MemoryRequestStore {
    items: Mutex<BTreeMap<RequestId, AccessRequest>>,
}

impl RequestStore for MemoryRequestStore {
    async fn create(&self, request: &mut AccessRequest) -> Result<(), StoreError> {
        let mut items = lock(&self.items);
        if items.contains_key(request.id()) {
            return Err(StoreError::AlreadyExists(request.id().to_string()));
        }
        request.committed_at_version(1);
        items.insert(request.id().clone(), request.clone());
        Ok(())
    }

    async fn get(&self, id: &RequestId) -> Result<Option<AccessRequest>, StoreError> {
        Ok(lock(&self.items).get(id).cloned())
    }

    async fn update(&self, request: &mut AccessRequest) -> Result<(), StoreError> {
        let mut items = lock(&self.items);
        match items.get(request.id()) {
            Some(stored) if stored.version() == request.version() => {
                request.committed_at_version(request.version() + 1);
                items.insert(request.id().clone(), request.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict {
                what: request.id().to_string(),
            }),
        }
    }
}

/// Audit chains in a map.
#[derive(Debug, Default)]
pub struct MemoryAuditLog {
    chains: Mutex<BTreeMap<String, Vec<AuditEvent>>>,
}

impl AuditLog for MemoryAuditLog {
    async fn head(&self, chain: &str) -> Result<Option<ChainHead>, StoreError> {
        Ok(lock(&self.chains)
            .get(chain)
            .and_then(|c| c.last())
            .map(AuditEvent::head))
    }

    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut chains = lock(&self.chains);
        let chain = chains.entry(event.chain.clone()).or_default();
        if event.seq != chain.len() as u64 {
            return Err(StoreError::Conflict {
                what: format!("{}#{}", event.chain, event.seq),
            });
        }
        chain.push(event.clone());
        Ok(())
    }

    async fn chain(&self, chain: &str) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(lock(&self.chains).get(chain).cloned().unwrap_or_default())
    }
}

impl RequestQueries for MemoryRequestStore {
    async fn by_requester(
        &self,
        requester: &PrincipalId,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        let mut found: Vec<_> = lock(&self.items)
            .values()
            .filter(|r| r.requester() == requester)
            .cloned()
            .collect();
        found.sort_by_key(|r| std::cmp::Reverse(r.created_at()));
        Ok(found)
    }

    async fn by_status(&self, status: Status) -> Result<Vec<AccessRequest>, StoreError> {
        Ok(lock(&self.items)
            .values()
            .filter(|r| r.status() == status)
            .cloned()
            .collect())
    }
}

/// The ledger behind a lock.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    ledger: Mutex<Ledger>,
}

impl LedgerStore for MemoryLedger {
    async fn hold(&self, hold: &Hold) -> Result<(), StoreError> {
        lock(&self.ledger).hold(hold.clone());
        Ok(())
    }

    async fn release(
        &self,
        principal: &PrincipalId,
        artifact: &Artifact,
        grant_id: &str,
    ) -> Result<Release, StoreError> {
        Ok(lock(&self.ledger).release(principal, artifact, grant_id))
    }

    async fn holders(
        &self,
        principal: &PrincipalId,
        artifact: &Artifact,
    ) -> Result<Vec<String>, StoreError> {
        Ok(lock(&self.ledger).holders(principal, artifact))
    }
}

/// IAM in memory: everything a user holds (credentials, groups, policies, roles
/// trusting them), as [`IdentitySnapshot`]s. Users must be created first, as in
/// IAM. The grant ports see their inline policies, groups and attached policies;
/// the revocation port ([`crate::revocation::ports::IdentityDirectory`], in
/// `revocation::memory`) sees all of it.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    pub(crate) users: Mutex<BTreeMap<PrincipalId, IdentitySnapshot>>,
    /// Tags of the users made through [`crate::ports::VendorAccounts`].
    tags: Mutex<BTreeMap<PrincipalId, Vec<(String, String)>>>,
    /// Roles by name: tagged `lapse:managed`, and their inline policies.
    pub(crate) roles: Mutex<BTreeMap<String, MemoryRole>>,
    /// Users Lapse's role may not read (outside its managed path): their reads are
    /// refused as IAM refuses them.
    pub(crate) unreadable: Mutex<std::collections::BTreeSet<PrincipalId>>,
    /// Users whose permissions boundary is not Lapse's: what they carry instead
    /// (`None`: no boundary). Everyone else carries Lapse's.
    unbounded: Mutex<BTreeMap<PrincipalId, Option<String>>>,
}

/// A role in [`MemoryDirectory`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemoryRole {
    pub managed: bool,
    pub policies: BTreeMap<String, serde_json::Value>,
}

impl MemoryDirectory {
    /// Gives the user another permissions boundary than Lapse's (`None`: none).
    pub fn set_foreign_boundary(&self, user: &PrincipalId, boundary: Option<&str>) {
        lock(&self.unbounded).insert(user.clone(), boundary.map(str::to_owned));
    }

    /// A managed user holding nothing yet.
    pub fn add_user(&self, user: &PrincipalId) {
        lock(&self.users).entry(user.clone()).or_insert_with(|| {
            let mut snapshot = IdentitySnapshot::absent(user.clone(), chrono::DateTime::UNIX_EPOCH);
            snapshot.exists = true;
            snapshot.managed = true;
            snapshot
        });
    }

    /// Puts a user in exactly this state (credentials, groups, policies, roles).
    /// The roles that trust them are kept with every other role, so that their
    /// deny of sessions is one document per role, shared by everyone it lists.
    pub fn put_user(&self, mut snapshot: IdentitySnapshot) {
        let mut roles = lock(&self.roles);
        for trusting in &mut snapshot.trusting_roles {
            let role = roles
                .entry(trusting.name.clone())
                .or_insert_with(|| MemoryRole {
                    managed: trusting.managed,
                    policies: BTreeMap::new(),
                });
            if let Some(deny) = trusting.session_deny.take() {
                role.policies.insert(ROLE_DENY_POLICY.to_owned(), deny);
            }
        }
        drop(roles);
        lock(&self.users).insert(snapshot.user.clone(), snapshot);
    }

    /// Makes this user's reads fail as IAM fails a role that may not read them.
    pub fn refuse_reads_of(&self, user: &PrincipalId) {
        lock(&self.unreadable).insert(user.clone());
    }

    pub(crate) fn readable(&self, user: &PrincipalId) -> Result<(), DirectoryError> {
        if lock(&self.unreadable).contains(user) {
            return Err(DirectoryError::Denied(
                format!("not authorized to read {user}").into(),
            ));
        }
        Ok(())
    }

    /// A role, tagged `lapse:managed` or not, with no inline policy.
    pub fn add_role(&self, name: &str, managed: bool) {
        lock(&self.roles).insert(
            name.to_owned(),
            MemoryRole {
                managed,
                policies: BTreeMap::new(),
            },
        );
    }

    /// A role's state now, if IAM knows it.
    pub fn role(&self, name: &str) -> Option<MemoryRole> {
        lock(&self.roles).get(name).cloned()
    }

    /// The tags a user was created with (vendor users).
    pub fn tags(&self, user: &PrincipalId) -> Vec<(String, String)> {
        lock(&self.tags).get(user).cloned().unwrap_or_default()
    }

    /// A user's state now, if IAM knows them (with each trusting role's deny of
    /// sessions as the role holds it now).
    pub fn user(&self, user: &PrincipalId) -> Option<IdentitySnapshot> {
        let mut snapshot = lock(&self.users).get(user).cloned()?;
        let roles = lock(&self.roles);
        for trusting in &mut snapshot.trusting_roles {
            trusting.session_deny = roles
                .get(&trusting.name)
                .and_then(|r| r.policies.get(ROLE_DENY_POLICY).cloned());
        }
        Some(snapshot)
    }

    pub(crate) fn with_user<T>(
        &self,
        user: &PrincipalId,
        change: impl FnOnce(&mut IdentitySnapshot) -> T,
    ) -> Result<T, DirectoryError> {
        let mut users = lock(&self.users);
        let snapshot = users
            .get_mut(user)
            .ok_or_else(|| DirectoryError::NoSuchPrincipal(user.to_string()))?;
        Ok(change(snapshot))
    }
}

fn removal(removed: bool) -> Removal {
    if removed {
        Removal::Removed
    } else {
        Removal::AlreadyAbsent
    }
}

impl AccessProvisioner for MemoryDirectory {
    async fn put_inline_policy(
        &self,
        user: &PrincipalId,
        name: &str,
        document: &serde_json::Value,
    ) -> Result<(), DirectoryError> {
        self.with_user(user, |u| {
            u.inline_policies.insert(name.to_owned(), document.clone());
        })
    }

    async fn delete_inline_policy(
        &self,
        user: &PrincipalId,
        name: &str,
    ) -> Result<Removal, DirectoryError> {
        self.with_user(user, |u| removal(u.inline_policies.remove(name).is_some()))
    }

    async fn add_to_group(&self, user: &PrincipalId, group: &str) -> Result<(), DirectoryError> {
        self.with_user(user, |u| {
            u.groups.insert(group.to_owned());
        })
    }

    async fn remove_from_group(
        &self,
        user: &PrincipalId,
        group: &str,
    ) -> Result<Removal, DirectoryError> {
        self.with_user(user, |u| removal(u.groups.remove(group)))
    }

    async fn put_role_policy(
        &self,
        role: &str,
        name: &str,
        document: &serde_json::Value,
    ) -> Result<(), DirectoryError> {
        let mut roles = lock(&self.roles);
        let role = roles
            .get_mut(role)
            .ok_or_else(|| DirectoryError::NoSuchPrincipal(format!("role {role}")))?;
        role.policies.insert(name.to_owned(), document.clone());
        Ok(())
    }

    async fn delete_role_policy(&self, role: &str, name: &str) -> Result<Removal, DirectoryError> {
        let mut roles = lock(&self.roles);
        let role = roles
            .get_mut(role)
            .ok_or_else(|| DirectoryError::NoSuchPrincipal(format!("role {role}")))?;
        Ok(removal(role.policies.remove(name).is_some()))
    }
}

impl AccessInspector for MemoryDirectory {
    async fn snapshot(&self, user: &PrincipalId) -> Result<IamSnapshot, DirectoryError> {
        self.with_user(user, |u| IamSnapshot {
            inline_policies: u.inline_policies.clone(),
            groups: u.groups.clone(),
            attached_policies: u.attached_policies.clone(),
        })
    }

    async fn user_managed(&self, user: &PrincipalId) -> Result<bool, DirectoryError> {
        self.readable(user)?;
        Ok(self.user(user).is_some_and(|u| u.exists && u.managed))
    }

    async fn user_bounded(&self, user: &PrincipalId) -> Result<Bounded, DirectoryError> {
        self.readable(user)?;
        if !self.user(user).is_some_and(|u| u.exists) {
            return Ok(Bounded::No { actual: None });
        }
        Ok(match lock(&self.unbounded).get(user) {
            Some(actual) => Bounded::No {
                actual: actual.clone(),
            },
            None => Bounded::Yes,
        })
    }

    async fn role_managed(&self, role: &str) -> Result<Option<bool>, DirectoryError> {
        Ok(lock(&self.roles).get(role).map(|r| r.managed))
    }

    async fn role_policy(
        &self,
        role: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, DirectoryError> {
        Ok(lock(&self.roles)
            .get(role)
            .and_then(|r| r.policies.get(name).cloned()))
    }

    async fn role_trusts(
        &self,
        role: &str,
        users: &[String],
    ) -> Result<std::collections::BTreeSet<String>, DirectoryError> {
        let all = lock(&self.users);
        Ok(users
            .iter()
            .filter(|name| {
                all.values().any(|u| {
                    u.exists
                        && u.user.as_str() == name.as_str()
                        && u.trusting_roles.iter().any(|r| r.name == role)
                })
            })
            .cloned()
            .collect())
    }
}

/// Collects notices; `fail_next` makes the next `send` fail (SNS down).
#[derive(Debug, Default)]
pub struct MemoryNotifier {
    sent: Mutex<Vec<Notice>>,
    fail_next: std::sync::atomic::AtomicBool,
}

impl MemoryNotifier {
    pub fn sent(&self) -> Vec<Notice> {
        lock(&self.sent).clone()
    }
    pub fn fail_next(&self) {
        self.fail_next
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Notifier for MemoryNotifier {
    async fn send(&self, notice: &Notice) -> Result<(), NotifyError> {
        if self
            .fail_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(NotifyError {
                subject: notice.subject.clone(),
                source: "the notification service is unavailable".into(),
            });
        }
        lock(&self.sent).push(notice.clone());
        Ok(())
    }
}

/// Collects incidents; `fail_next` makes the next `open` fail (a bus outage).
#[derive(Debug, Default)]
pub struct MemoryIncidents {
    opened: Mutex<Vec<crate::ports::Incident>>,
    fail_next: std::sync::atomic::AtomicBool,
}

impl MemoryIncidents {
    pub fn opened(&self) -> Vec<crate::ports::Incident> {
        lock(&self.opened).clone()
    }
    pub fn fail_next(&self) {
        self.fail_next
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl crate::ports::Incidents for MemoryIncidents {
    async fn open(
        &self,
        incident: &crate::ports::Incident,
    ) -> Result<(), crate::revocation::ports::BusError> {
        if self
            .fail_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(crate::revocation::ports::BusError {
                event_id: incident.id.clone(),
                source: "bus unavailable".into(),
            });
        }
        lock(&self.opened).push(incident.clone());
        Ok(())
    }
}

/// Leases in a map, with the store's conditional rule.
#[derive(Debug, Default)]
pub struct MemoryLeases {
    items: Mutex<BTreeMap<String, crate::ports::Lease>>,
}

impl crate::ports::Leases for MemoryLeases {
    async fn acquire(
        &self,
        lease: &crate::ports::Lease,
    ) -> Result<crate::ports::Lease, StoreError> {
        let mut items = lock(&self.items);
        Ok(items
            .entry(lease.secret_arn.clone())
            .or_insert_with(|| lease.clone())
            .clone())
    }
    async fn get(&self, secret_arn: &str) -> Result<Option<crate::ports::Lease>, StoreError> {
        Ok(lock(&self.items).get(secret_arn).cloned())
    }
    async fn release(&self, secret_arn: &str, request_id: &RequestId) -> Result<(), StoreError> {
        let mut items = lock(&self.items);
        if items
            .get(secret_arn)
            .is_some_and(|l| &l.request_id == request_id)
        {
            items.remove(secret_arn);
        }
        Ok(())
    }
}

/// Secrets as version lists (the last version is current) with their rotation
/// function. A rotation finishes at once. Values are not kept.
#[derive(Debug, Default)]
pub struct MemoryVault {
    secrets: Mutex<BTreeMap<String, MemorySecret>>,
}

#[derive(Debug, Default)]
struct MemorySecret {
    versions: Vec<String>,
    rotation_function: Option<String>,
}

impl MemoryVault {
    /// A secret at `version_id`, rotated by `rotation_function` (`None`: its
    /// rotation is off).
    pub fn add(&self, secret_arn: &str, version_id: &str, rotation_function: Option<&str>) {
        let mut secrets = lock(&self.secrets);
        let secret = secrets.entry(secret_arn.to_owned()).or_default();
        secret.versions.push(version_id.to_owned());
        secret.rotation_function = rotation_function.map(str::to_owned);
    }
    pub fn versions(&self, secret_arn: &str) -> Vec<String> {
        lock(&self.secrets)
            .get(secret_arn)
            .map(|s| s.versions.clone())
            .unwrap_or_default()
    }
}

impl crate::ports::CredentialVault for MemoryVault {
    async fn state(
        &self,
        secret_arn: &str,
    ) -> Result<crate::ports::SecretState, crate::ports::VaultError> {
        let secrets = lock(&self.secrets);
        let secret = secrets
            .get(secret_arn)
            .ok_or_else(|| crate::ports::VaultError::NotFound(secret_arn.to_owned()))?;
        Ok(crate::ports::SecretState {
            current: secret
                .versions
                .last()
                .cloned()
                .ok_or_else(|| crate::ports::VaultError::NotFound(secret_arn.to_owned()))?,
            pending: None,
            rotation_function: secret.rotation_function.clone(),
        })
    }
    async fn rotate(
        &self,
        secret_arn: &str,
        version_id: &str,
        rotation_function: &str,
    ) -> Result<(), crate::ports::VaultError> {
        let mut secrets = lock(&self.secrets);
        let secret = secrets
            .get_mut(secret_arn)
            .ok_or_else(|| crate::ports::VaultError::NotFound(secret_arn.to_owned()))?;
        // Naming a function turns rotation on with it, as `RotateSecret` does.
        secret.rotation_function = Some(rotation_function.to_owned());
        if !secret.versions.iter().any(|v| v == version_id) {
            secret.versions.push(version_id.to_owned());
        }
        Ok(())
    }
}

/// Vendor users live in the same [`MemoryDirectory`], so grants and the
/// deactivation reach them; their tags are kept beside.
impl crate::ports::VendorAccounts for MemoryDirectory {
    async fn create_user(
        &self,
        user: &PrincipalId,
        tags: &[(String, String)],
    ) -> Result<(), DirectoryError> {
        self.add_user(user);
        lock(&self.tags).insert(user.clone(), tags.to_vec());
        Ok(())
    }
    async fn set_console_password(
        &self,
        user: &PrincipalId,
        password: &crate::ports::Password,
    ) -> Result<bool, DirectoryError> {
        if password.expose().is_empty() {
            return Err(DirectoryError::Unsupported("an empty password"));
        }
        self.with_user(user, |u| !std::mem::replace(&mut u.login_profile, true))
    }
    async fn delete_user(&self, user: &PrincipalId) -> Result<Removal, DirectoryError> {
        lock(&self.tags).remove(user);
        Ok(match lock(&self.users).remove(user) {
            Some(_) => Removal::Removed,
            None => Removal::AlreadyAbsent,
        })
    }
    async fn exists(&self, user: &PrincipalId) -> Result<bool, DirectoryError> {
        Ok(lock(&self.users).contains_key(user))
    }
}

/// One handed-over secret: its value, its reader, the end of their access, the
/// request it was made for (`None`: made by someone else).
type Handed = (String, PrincipalId, DateTime<Utc>, Option<String>);

/// Secrets handed to their readers, in a map.
#[derive(Debug, Default)]
pub struct MemoryCredentialDrop {
    secrets: Mutex<BTreeMap<String, Handed>>,
}

impl MemoryCredentialDrop {
    /// The reader and the end of their access, never the value.
    pub fn reader(&self, name: &str) -> Option<(PrincipalId, DateTime<Utc>)> {
        lock(&self.secrets)
            .get(name)
            .map(|(_, reader, until, _)| (reader.clone(), *until))
    }
    /// A secret of that name someone else made first (a planted drop).
    pub fn plant(&self, name: &str, value: &str, reader: &PrincipalId, until: DateTime<Utc>) {
        lock(&self.secrets).insert(
            name.to_owned(),
            (value.to_owned(), reader.clone(), until, None),
        );
    }
}

impl crate::ports::CredentialDrop for MemoryCredentialDrop {
    async fn issue(
        &self,
        name: &str,
        request: &crate::access::request::RequestId,
        reader: &PrincipalId,
        until: DateTime<Utc>,
    ) -> Result<crate::ports::Password, crate::ports::VaultError> {
        let mut secrets = lock(&self.secrets);
        let entry = secrets.entry(name.to_owned()).or_insert_with(|| {
            (
                format!("pw-{name}"),
                reader.clone(),
                until,
                Some(request.to_string()),
            )
        });
        if entry.3.as_deref() != Some(request.as_str()) {
            return Err(crate::ports::VaultError::NotOurs {
                secret: name.to_owned(),
                request: request.to_string(),
            });
        }
        Ok(crate::ports::Password::new(entry.0.clone()))
    }
    async fn withdraw(
        &self,
        name: &str,
        request: &crate::access::request::RequestId,
    ) -> Result<(), crate::ports::VaultError> {
        let mut secrets = lock(&self.secrets);
        if secrets
            .get(name)
            .is_some_and(|s| s.3.as_deref() == Some(request.as_str()))
        {
            secrets.remove(name);
        }
        Ok(())
    }
}

/// Records started executions with Step Functions' name rule.
#[derive(Debug, Default)]
pub struct MemoryWorkflows {
    started: Mutex<BTreeMap<String, serde_json::Value>>,
}

impl MemoryWorkflows {
    pub fn started(&self) -> BTreeMap<String, serde_json::Value> {
        lock(&self.started).clone()
    }
}

impl WorkflowStarter for MemoryWorkflows {
    async fn start(&self, name: &str, input: &serde_json::Value) -> Result<String, WorkflowError> {
        let mut started = lock(&self.started);
        match started.get(name) {
            Some(existing) if existing != input => Err(WorkflowError::NameTaken(name.to_owned())),
            _ => {
                started.insert(name.to_owned(), input.clone());
                Ok(format!("memory:execution:{name}"))
            }
        }
    }
}

/// A clock tests move by hand.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(at),
        }
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *lock(&self.now) = at;
    }

    pub fn advance(&self, by: chrono::TimeDelta) {
        *lock(&self.now) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *lock(&self.now)
    }
}

/// Per-user controls in a map.
#[derive(Debug, Default)]
pub struct MemoryControls {
    /// Keyed by the folded name, as the DynamoDB table is.
    items: Mutex<BTreeMap<String, crate::revocation::ports::Controls>>,
}

impl crate::revocation::ports::UserControls for MemoryControls {
    async fn controls(
        &self,
        user: &PrincipalId,
    ) -> Result<crate::revocation::ports::Controls, StoreError> {
        Ok(lock(&self.items)
            .get(&user.folded())
            .cloned()
            .unwrap_or_default())
    }

    async fn set(
        &self,
        user: &PrincipalId,
        controls: &mut crate::revocation::ports::Controls,
    ) -> Result<(), StoreError> {
        let mut items = lock(&self.items);
        let stored = items.get(&user.folded()).map_or(0, |c| c.version);
        if stored != controls.version {
            return Err(StoreError::Conflict {
                what: format!("controls of {user}"),
            });
        }
        controls.version += 1;
        items.insert(user.folded(), controls.clone());
        Ok(())
    }
}
