//! In-memory fakes of every revocation port, and [`MemoryRevocations`], the
//! [`RevocationPorts`](super::usecase::RevocationPorts) over them, so the revocation use cases are tested in the core
//! without an emulator. The fakes keep the adapters' rules: versioned case and
//! control writes, idempotent IAM changes, one claim per event id.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::case::RevocationCase;
use super::hr::HrEvent;
use super::plan::{Action, IdentitySnapshot, SESSION_DENY_POLICY, session_deny_document};
use super::ports::{Archive, BusError, CaseStore, Claim, EventBus, EventClaims, IdentityDirectory};
use super::usecase::{
    Context, HasArchive, HasCases, HasClaims, HasControls, HasCustody, HasDirectory, HasGrants,
    HasNotifier, HasTrail,
};
use crate::access::usecase::AuditTrail;
use crate::access::usecase::lifecycle::Grants;
use crate::audit::AuditSigner;
use crate::identity::PrincipalId;
use crate::memory::{
    MemoryAuditLog, MemoryControls, MemoryDirectory, MemoryLedger, MemoryNotifier,
    MemoryRequestStore,
};
use crate::policy::Catalog;
use crate::ports::{Clock, DirectoryError, Removal, StoreError};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn removal(removed: bool) -> Removal {
    if removed {
        Removal::Removed
    } else {
        Removal::AlreadyAbsent
    }
}

/// Deactivates the credential `id` in `list`; `false` if it was inactive already.
fn deactivate(list: &mut [super::plan::Credential], id: &str) -> bool {
    list.iter_mut()
        .find(|c| c.id == id && c.active)
        .map(|c| c.active = false)
        .is_some()
}

impl IdentityDirectory for MemoryDirectory {
    async fn identity(
        &self,
        user: &PrincipalId,
        at: DateTime<Utc>,
    ) -> Result<IdentitySnapshot, DirectoryError> {
        Ok(match self.user(user) {
            Some(mut snapshot) => {
                snapshot.taken_at = at;
                snapshot
            }
            None => IdentitySnapshot::absent(user.clone(), at),
        })
    }

    async fn managed(&self, user: &PrincipalId) -> Result<bool, DirectoryError> {
        self.readable(user)?;
        Ok(self.user(user).is_some_and(|u| u.managed))
    }

    async fn apply(&self, user: &PrincipalId, action: &Action) -> Result<Removal, DirectoryError> {
        if let Action::DenyRoleSessions { role, at } = action {
            crate::access::role_denies::update(self, role, *at, |d| d.revoke(user, *at)).await?;
            return Ok(Removal::Removed);
        }
        self.with_user(user, |u| match action {
            Action::DeleteLoginProfile => removal(std::mem::take(&mut u.login_profile)),
            Action::DeactivateAccessKey { id } => removal(deactivate(&mut u.access_keys, id)),
            Action::DeactivateSshKey { id } => removal(deactivate(&mut u.ssh_keys, id)),
            Action::DeactivateSigningCertificate { id } => {
                removal(deactivate(&mut u.signing_certificates, id))
            }
            Action::DeactivateServiceCredential { id } => match &mut u.service_credentials {
                super::plan::ServiceCredentials::Listed { credentials } => {
                    removal(deactivate(credentials, id))
                }
                _ => Removal::AlreadyAbsent,
            },
            Action::DeactivateMfaDevice { serial } => {
                let before = u.mfa_devices.len();
                u.mfa_devices.retain(|s| s != serial);
                removal(u.mfa_devices.len() < before)
            }
            Action::RemoveFromGroup { group } => removal(u.groups.remove(group)),
            Action::DeleteInlinePolicy { name } => {
                removal(u.inline_policies.remove(name).is_some())
            }
            Action::DetachPolicy { arn } => removal(u.attached_policies.remove(arn)),
            Action::DenyOlderSessions { issued_before } => {
                u.inline_policies.insert(
                    SESSION_DENY_POLICY.to_owned(),
                    session_deny_document(*issued_before),
                );
                Removal::Removed
            }
            Action::DenyRoleSessions { .. }
            | Action::EndGrant { .. }
            | Action::CancelRequest { .. } => Removal::AlreadyAbsent,
        })
    }

    async fn restore(
        &self,
        snapshot: &IdentitySnapshot,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, DirectoryError> {
        let mut lifted = Vec::new();
        for role in super::plan::roles_to_lift(snapshot) {
            crate::access::role_denies::update(self, role, at, |d| d.lift(&snapshot.user)).await?;
            lifted.push(format!("deny of sessions of role {role} removed"));
        }
        self.with_user(&snapshot.user, |u| {
            let mut restored = lifted;
            let reactivate = |now: &mut [super::plan::Credential],
                              then: &[super::plan::Credential],
                              what: &str,
                              restored: &mut Vec<String>| {
                for credential in then.iter().filter(|c| c.active) {
                    if let Some(c) = now.iter_mut().find(|c| c.id == credential.id) {
                        c.active = true;
                        restored.push(format!("{what} {} reactivated", c.id));
                    }
                }
            };
            reactivate(
                &mut u.access_keys,
                &snapshot.access_keys,
                "access key",
                &mut restored,
            );
            reactivate(
                &mut u.ssh_keys,
                &snapshot.ssh_keys,
                "SSH key",
                &mut restored,
            );
            reactivate(
                &mut u.signing_certificates,
                &snapshot.signing_certificates,
                "signing certificate",
                &mut restored,
            );
            for group in &snapshot.groups {
                u.groups.insert(group.clone());
                restored.push(format!("group {group}"));
            }
            for (name, document) in snapshot
                .inline_policies
                .iter()
                .filter(|(n, _)| n.as_str() != SESSION_DENY_POLICY)
            {
                u.inline_policies.insert(name.clone(), document.clone());
                restored.push(format!("inline policy {name}"));
            }
            for arn in &snapshot.attached_policies {
                u.attached_policies.insert(arn.clone());
                restored.push(format!("attached policy {arn}"));
            }
            if !snapshot.inline_policies.contains_key(SESSION_DENY_POLICY)
                && u.inline_policies.remove(SESSION_DENY_POLICY).is_some()
            {
                restored.push("session deny removed".into());
            }
            if snapshot.login_profile {
                u.login_profile = true;
                restored.push("console login (password reset required)".into());
            }
            restored
        })
    }
}

/// Cases in a map, versioned like the DynamoDB table.
#[derive(Debug, Default)]
pub struct MemoryCases {
    cases: Mutex<BTreeMap<String, RevocationCase>>,
}

impl CaseStore for MemoryCases {
    async fn create(&self, case: &mut RevocationCase) -> Result<(), StoreError> {
        let mut cases = lock(&self.cases);
        if cases.contains_key(case.id().as_str()) {
            return Err(StoreError::AlreadyExists(case.id().to_string()));
        }
        case.committed_at_version(1);
        cases.insert(case.id().to_string(), case.clone());
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<RevocationCase>, StoreError> {
        Ok(lock(&self.cases).get(id).cloned())
    }

    async fn update(&self, case: &mut RevocationCase) -> Result<(), StoreError> {
        let mut cases = lock(&self.cases);
        let stored = cases
            .get(case.id().as_str())
            .map_or(0, RevocationCase::version);
        if stored != case.version() {
            return Err(StoreError::Conflict {
                what: case.id().to_string(),
            });
        }
        case.committed_at_version(stored + 1);
        cases.insert(case.id().to_string(), case.clone());
        Ok(())
    }

    async fn cases_of(&self, user: &PrincipalId) -> Result<Vec<RevocationCase>, StoreError> {
        let mut found: Vec<RevocationCase> = lock(&self.cases)
            .values()
            .filter(|c| c.user().folded() == user.folded())
            .cloned()
            .collect();
        found.sort_by_key(RevocationCase::created_at);
        Ok(found)
    }
}

/// Archived before-states with their retention.
#[derive(Debug, Default)]
pub struct MemoryArchive {
    items: Mutex<Vec<(IdentitySnapshot, Option<DateTime<Utc>>)>>,
}

impl MemoryArchive {
    /// Each archived snapshot of a user with its expiry (`None`: kept for ever).
    pub fn retention_of(&self, user: &PrincipalId) -> Vec<Option<DateTime<Utc>>> {
        lock(&self.items)
            .iter()
            .filter(|(s, _)| &s.user == user)
            .map(|(_, until)| *until)
            .collect()
    }
}

impl Archive for MemoryArchive {
    async fn store(
        &self,
        snapshot: &IdentitySnapshot,
        retain_until: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        lock(&self.items).push((snapshot.clone(), retain_until));
        Ok(())
    }

    async fn snapshots(&self, user: &PrincipalId) -> Result<Vec<IdentitySnapshot>, StoreError> {
        let mut found: Vec<IdentitySnapshot> = lock(&self.items)
            .iter()
            .filter(|(s, _)| s.user.folded() == user.folded())
            .map(|(s, _)| s.clone())
            .collect();
        found.sort_by_key(|s| s.taken_at);
        Ok(found)
    }

    async fn retain_forever(&self, user: &PrincipalId) -> Result<(), StoreError> {
        for (snapshot, until) in lock(&self.items).iter_mut() {
            if snapshot.user.folded() == user.folded() {
                *until = None;
            }
        }
        Ok(())
    }
}

/// Claimed event ids with their body hash, content hash and whether they were
/// published.
#[derive(Debug, Default)]
pub struct MemoryClaims {
    claims: Mutex<BTreeMap<String, (String, String, bool)>>,
}

impl EventClaims for MemoryClaims {
    async fn claim(
        &self,
        event_id: &str,
        body_hash: &str,
        content_hash: &str,
        _now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let mut claims = lock(&self.claims);
        Ok(match claims.get(event_id) {
            None => {
                claims.insert(
                    event_id.to_owned(),
                    (body_hash.to_owned(), content_hash.to_owned(), false),
                );
                Claim::New
            }
            Some((hash, _, published)) if hash == body_hash => Claim::Duplicate {
                published: *published,
            },
            Some(_) => Claim::Mismatch,
        })
    }

    async fn claimed_content(&self, event_id: &str) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.claims).get(event_id).map(|c| c.1.clone()))
    }

    async fn mark_published(&self, event_id: &str) -> Result<(), StoreError> {
        if let Some(claim) = lock(&self.claims).get_mut(event_id) {
            claim.2 = true;
        }
        Ok(())
    }
}

/// Events published to the bus, in order; `fail_next` makes the next publish fail.
#[derive(Debug, Default)]
pub struct MemoryBus {
    published: Mutex<Vec<HrEvent>>,
    fail_next: Mutex<bool>,
}

impl MemoryBus {
    pub fn published(&self) -> Vec<HrEvent> {
        lock(&self.published).clone()
    }
    pub fn fail_next(&self) {
        *lock(&self.fail_next) = true;
    }
}

impl EventBus for MemoryBus {
    async fn publish(&self, event: &HrEvent) -> Result<(), BusError> {
        if std::mem::take(&mut *lock(&self.fail_next)) {
            return Err(BusError {
                event_id: event.event_id.clone(),
                source: "the bus is unavailable".into(),
            });
        }
        lock(&self.published).push(event.clone());
        Ok(())
    }
}

/// A fixed clock.
#[derive(Debug)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// Every revocation port in memory.
#[derive(Debug)]
pub struct MemoryRevocations {
    pub cases: MemoryCases,
    pub directory: MemoryDirectory,
    pub controls: MemoryControls,
    pub archive: MemoryArchive,
    pub requests: MemoryRequestStore,
    pub ledger: MemoryLedger,
    pub leases: crate::memory::MemoryLeases,
    pub vault: crate::memory::MemoryVault,
    pub drops: crate::memory::MemoryCredentialDrop,
    /// The webhook's claims (the tests claim what they put on the "bus").
    pub claims: MemoryClaims,
    pub log: MemoryAuditLog,
    pub notifier: MemoryNotifier,
    pub signer: AuditSigner,
    pub catalog: Catalog,
    pub clock: FixedClock,
}

impl MemoryRevocations {
    pub fn new(catalog: Catalog, signer: AuditSigner, now: DateTime<Utc>) -> Self {
        Self {
            cases: MemoryCases::default(),
            directory: MemoryDirectory::default(),
            controls: MemoryControls::default(),
            archive: MemoryArchive::default(),
            requests: MemoryRequestStore::default(),
            ledger: MemoryLedger::default(),
            leases: Default::default(),
            vault: Default::default(),
            drops: Default::default(),
            claims: MemoryClaims::default(),
            log: MemoryAuditLog::default(),
            notifier: MemoryNotifier::default(),
            signer,
            catalog,
            clock: FixedClock(now),
        }
    }
}

impl HasCases for MemoryRevocations {
    type Cases = MemoryCases;
    fn cases(&self) -> &Self::Cases {
        &self.cases
    }
}

impl HasDirectory for MemoryRevocations {
    type Directory = MemoryDirectory;
    fn directory(&self) -> &Self::Directory {
        &self.directory
    }
}

impl HasControls for MemoryRevocations {
    type Controls = MemoryControls;
    fn controls(&self) -> &Self::Controls {
        &self.controls
    }
}

impl HasArchive for MemoryRevocations {
    type Archive = MemoryArchive;
    fn archive(&self) -> &Self::Archive {
        &self.archive
    }
}

impl HasGrants for MemoryRevocations {
    type Requests = MemoryRequestStore;
    type Ledger = MemoryLedger;
    fn grants(&self) -> Grants<'_, Self::Requests, Self::Ledger> {
        Grants {
            store: &self.requests,
            ledger: &self.ledger,
        }
    }
}

impl HasClaims for MemoryRevocations {
    type Claims = MemoryClaims;
    fn claims(&self) -> &Self::Claims {
        &self.claims
    }
}

impl HasCustody for MemoryRevocations {
    type Leases = crate::memory::MemoryLeases;
    type Vault = crate::memory::MemoryVault;
    type Drops = crate::memory::MemoryCredentialDrop;
    fn leases(&self) -> &Self::Leases {
        &self.leases
    }
    fn vault(&self) -> &Self::Vault {
        &self.vault
    }
    fn drops(&self) -> &Self::Drops {
        &self.drops
    }
}

impl HasTrail for MemoryRevocations {
    type Log = MemoryAuditLog;
    fn trail(&self) -> AuditTrail<'_, Self::Log> {
        AuditTrail {
            log: &self.log,
            signer: &self.signer,
            policy_hash: self.catalog.hash(),
        }
    }
}

impl HasNotifier for MemoryRevocations {
    type Notifier = MemoryNotifier;
    fn notifier(&self) -> &Self::Notifier {
        &self.notifier
    }
}

impl Context for MemoryRevocations {
    fn catalog(&self) -> &Catalog {
        &self.catalog
    }
    fn clock(&self) -> &dyn Clock {
        &self.clock
    }
}
