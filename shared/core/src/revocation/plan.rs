//! What a revocation removes, computed from what IAM holds now.
//!
//! Plans are computed from a fresh snapshot every time, so a revocation that was
//! interrupted half-way simply plans what is left: re-running is idempotent. The
//! same rules decide what may remain ([`residue`]), which is what verification checks.
//!
//! Verification reads content, never names. Lapse's own artifacts are recognised by
//! what they are, not by their `lapse-` prefix:
//! - a grant's inline policy is exempt only when the ledger records it for a live
//!   grant of this user ([`Expected::grant_policies`]); any other `lapse-*` policy is
//!   removed like any other;
//! - the session deny counts only when its document is exactly
//!   [`session_deny_document`] for a cutoff at or after the one the case recorded;
//! - a role's deny of the user's sessions counts only when the role's one deny
//!   ([`crate::access::role_denies`]) is exactly Lapse's and lists the user.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::request::RequestId;
use crate::access::role_denies::RoleDenies;
use crate::identity::PrincipalId;
use crate::policy::Role;

/// The inline policy that cuts off sessions issued before the revocation.
pub const SESSION_DENY_POLICY: &str = "lapse-revoke-older-sessions";

/// One credential and whether it is active.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub id: String,
    pub active: bool,
}

/// What IAM said about service-specific credentials (CodeCommit, Keyspaces, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ServiceCredentials {
    Listed {
        credentials: Vec<Credential>,
    },
    /// The listing failed in a way that is not an AWS error. On AWS this means the
    /// user's credentials are unknown: verification fails.
    Unreadable {
        reason: String,
    },
    /// The endpoint does not offer the API and the deployment declared that gap
    /// (an emulator only; never set by the template).
    NotOffered,
}

impl Default for ServiceCredentials {
    fn default() -> Self {
        ServiceCredentials::Listed {
            credentials: Vec::new(),
        }
    }
}

impl ServiceCredentials {
    pub fn listed(&self) -> &[Credential] {
        match self {
            ServiceCredentials::Listed { credentials } => credentials,
            _ => &[],
        }
    }
}

/// A role whose trust policy names the user: their sessions of it outlive their
/// own credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustingRole {
    pub name: String,
    /// Tagged `lapse:managed=true`: only those can be given a deny by Lapse.
    pub managed: bool,
    /// The role's inline policy [`crate::access::role_denies::ROLE_DENY_POLICY`] (everyone whose sessions of
    /// the role Lapse denies), if present.
    #[serde(default)]
    pub session_deny: Option<Value>,
}

/// Everything IAM holds for a user, read back directly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdentitySnapshot {
    pub user: PrincipalId,
    pub exists: bool,
    /// Tagged `lapse:managed=true`: a user Lapse administers.
    #[serde(default)]
    pub managed: bool,
    pub login_profile: bool,
    pub access_keys: Vec<Credential>,
    pub ssh_keys: Vec<Credential>,
    #[serde(default)]
    pub signing_certificates: Vec<Credential>,
    /// Serial numbers of enabled MFA devices.
    #[serde(default)]
    pub mfa_devices: Vec<String>,
    #[serde(default)]
    pub service_credentials: ServiceCredentials,
    #[serde(default)]
    pub trusting_roles: Vec<TrustingRole>,
    pub groups: BTreeSet<String>,
    pub inline_policies: BTreeMap<String, Value>,
    pub attached_policies: BTreeSet<String>,
    pub taken_at: DateTime<Utc>,
}

impl IdentitySnapshot {
    /// A user IAM does not know.
    pub fn absent(user: PrincipalId, at: DateTime<Utc>) -> Self {
        Self {
            user,
            exists: false,
            managed: false,
            login_profile: false,
            access_keys: Vec::new(),
            ssh_keys: Vec::new(),
            signing_certificates: Vec::new(),
            mfa_devices: Vec::new(),
            service_credentials: ServiceCredentials::default(),
            trusting_roles: Vec::new(),
            groups: BTreeSet::new(),
            inline_policies: BTreeMap::new(),
            attached_policies: BTreeSet::new(),
            taken_at: at,
        }
    }
}

/// How much to take away.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RevocationKind {
    /// Termination, contract end, violation confirmed: everything.
    Full,
    /// Suspension (HR suspension, inactivity, violation pending investigation):
    /// no way in (login, keys, sessions, JIT grants); standing permissions stay so
    /// re-activation is a restore of credentials only.
    Suspend,
    /// Role change: whatever is held beyond the new role.
    Partial { new_role: String },
    /// An operator's pick: these groups, inline policy names or managed policy ARNs.
    Specific { permissions: Vec<String> },
}

impl RevocationKind {
    pub fn label(&self) -> &'static str {
        match self {
            RevocationKind::Full => "full",
            RevocationKind::Suspend => "suspend",
            RevocationKind::Partial { .. } => "partial",
            RevocationKind::Specific { .. } => "specific",
        }
    }

    /// Does this kind shut every way in (credentials, sessions, requests)?
    pub fn closes_doors(&self) -> bool {
        matches!(self, RevocationKind::Full | RevocationKind::Suspend)
    }
}

/// Which parallel branch of the workflow performs an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    Credentials,
    Permissions,
    Grants,
}

/// One change to IAM (or to a JIT grant or request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    DeleteLoginProfile,
    DeactivateAccessKey {
        id: String,
    },
    DeactivateSshKey {
        id: String,
    },
    DeactivateServiceCredential {
        id: String,
    },
    DeactivateSigningCertificate {
        id: String,
    },
    DeactivateMfaDevice {
        serial: String,
    },
    /// Deny the user's sessions of a role that trusts them.
    DenyRoleSessions {
        role: String,
        /// When the revocation planned it (the deny lists the user from that day).
        #[serde(default)]
        at: DateTime<Utc>,
    },
    RemoveFromGroup {
        group: String,
    },
    DeleteInlinePolicy {
        name: String,
    },
    DetachPolicy {
        arn: String,
    },
    /// Deny everything to sessions whose token was issued before this instant. The
    /// plan carries a placeholder; the credentials lane writes it last, with the
    /// time after every credential was deactivated.
    DenyOlderSessions {
        issued_before: DateTime<Utc>,
    },
    /// End a live just-in-time grant through the grant lifecycle.
    EndGrant {
        request_id: RequestId,
    },
    /// Cancel a pending or approved (not yet granted) request.
    CancelRequest {
        request_id: RequestId,
    },
}

impl Action {
    pub fn lane(&self) -> Lane {
        match self {
            Action::DeleteLoginProfile
            | Action::DeactivateAccessKey { .. }
            | Action::DeactivateSshKey { .. }
            | Action::DeactivateServiceCredential { .. }
            | Action::DeactivateSigningCertificate { .. }
            | Action::DeactivateMfaDevice { .. }
            | Action::DenyRoleSessions { .. }
            | Action::DenyOlderSessions { .. } => Lane::Credentials,
            Action::RemoveFromGroup { .. }
            | Action::DeleteInlinePolicy { .. }
            | Action::DetachPolicy { .. } => Lane::Permissions,
            Action::EndGrant { .. } | Action::CancelRequest { .. } => Lane::Grants,
        }
    }
}

impl std::fmt::Display for Action {
    /// The action in words, as a person reads it in a plan or a report.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::DeleteLoginProfile => write!(f, "delete the console login profile"),
            Action::DeactivateAccessKey { id } => write!(f, "deactivate access key {id}"),
            Action::DeactivateSshKey { id } => write!(f, "deactivate SSH key {id}"),
            Action::DeactivateServiceCredential { id } => {
                write!(f, "deactivate service-specific credential {id}")
            }
            Action::DeactivateSigningCertificate { id } => {
                write!(f, "deactivate signing certificate {id}")
            }
            Action::DeactivateMfaDevice { serial } => write!(f, "deactivate MFA device {serial}"),
            Action::DenyRoleSessions { role, .. } => {
                write!(f, "deny the user's sessions of role {role}")
            }
            Action::RemoveFromGroup { group } => write!(f, "remove from group {group}"),
            Action::DeleteInlinePolicy { name } => write!(f, "delete inline policy {name}"),
            Action::DetachPolicy { arn } => write!(f, "detach managed policy {arn}"),
            Action::DenyOlderSessions { issued_before } => write!(
                f,
                "deny sessions issued before {}",
                issued_before.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            Action::EndGrant { request_id } => write!(f, "end JIT grant {request_id}"),
            Action::CancelRequest { request_id } => write!(f, "cancel open request {request_id}"),
        }
    }
}

/// The inline deny that cuts off older sessions.
pub fn session_deny_document(issued_before: DateTime<Utc>) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "LapseRevokeOlderSessions",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": { "DateLessThan": {
                "aws:TokenIssueTime": issued_before.to_rfc3339_opts(SecondsFormat::Secs, true)
            } }
        }]
    })
}

/// The cutoff of a session deny, if `document` is exactly a session deny.
pub fn session_deny_cutoff(document: &Value) -> Option<DateTime<Utc>> {
    let at = document
        .pointer("/Statement/0/Condition/DateLessThan/aws:TokenIssueTime")?
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
        .with_timezone(&Utc);
    (session_deny_document(at) == *document).then_some(at)
}

/// Does a role's trust policy name this user (by ARN or unique id) in an Allow?
/// A trust of the whole account (`:root`) does not name anyone.
pub fn trust_names_user(trust: &Value, user_arn: &str, user_id: &str) -> bool {
    let statements = match trust.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    statements.into_iter().any(|statement| {
        statement.get("Effect").and_then(Value::as_str) == Some("Allow")
            && match statement.pointer("/Principal/AWS") {
                Some(Value::String(p)) => p == user_arn || p == user_id,
                Some(Value::Array(list)) => list
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|p| p == user_arn || p == user_id),
                _ => false,
            }
    })
}

/// What a revocation expects to find besides what it removes.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// For a role change: the new role.
    pub role: Option<&'a Role>,
    /// The user's live JIT grants (ended through the grant lifecycle).
    pub live_grants: &'a [RequestId],
    /// Inline policies the ledger records for one of those live grants.
    pub grant_policies: &'a BTreeSet<String>,
    /// The user's pending or approved requests (cancelled by a closing revocation).
    pub open_requests: &'a [RequestId],
    /// The session cutoff the case recorded (verification only).
    pub cutoff: Option<DateTime<Utc>>,
}

/// Is this inline policy one Lapse may leave in place for this kind?
fn exempt_policy(name: &str, document: &Value, expected: &Expected<'_>) -> bool {
    expected.grant_policies.contains(name)
        || (name == SESSION_DENY_POLICY && session_deny_cutoff(document).is_some())
}

/// Inline policies a full or partial revocation removes.
fn removable_policies<'s>(
    snapshot: &'s IdentitySnapshot,
    expected: &'s Expected<'_>,
) -> impl Iterator<Item = &'s String> {
    snapshot
        .inline_policies
        .iter()
        .filter(|(name, document)| !exempt_policy(name, document, expected))
        .map(|(name, _)| name)
}

/// Does the role's deny, as read, list all of `user`'s sessions (by content)?
fn denies_sessions(role: &TrustingRole, user: &PrincipalId) -> bool {
    RoleDenies::document_denies_all_of(role.session_deny.as_ref(), user)
}

/// The managed roles whose deny of `snapshot`'s user a revocation added (they were
/// not denied before it): what a restore lifts. A deny that was there before stays.
pub fn roles_to_lift(snapshot: &IdentitySnapshot) -> impl Iterator<Item = &str> {
    snapshot
        .trusting_roles
        .iter()
        .filter(|r| r.managed && !denies_sessions(r, &snapshot.user))
        .map(|r| r.name.as_str())
}

fn credential_actions(snapshot: &IdentitySnapshot) -> Vec<Action> {
    let mut actions = Vec::new();
    if snapshot.login_profile {
        actions.push(Action::DeleteLoginProfile);
    }
    let active = |list: &[Credential]| -> Vec<String> {
        list.iter()
            .filter(|c| c.active)
            .map(|c| c.id.clone())
            .collect()
    };
    actions.extend(
        active(&snapshot.access_keys)
            .into_iter()
            .map(|id| Action::DeactivateAccessKey { id }),
    );
    actions.extend(
        active(&snapshot.ssh_keys)
            .into_iter()
            .map(|id| Action::DeactivateSshKey { id }),
    );
    actions.extend(
        active(snapshot.service_credentials.listed())
            .into_iter()
            .map(|id| Action::DeactivateServiceCredential { id }),
    );
    actions.extend(
        active(&snapshot.signing_certificates)
            .into_iter()
            .map(|id| Action::DeactivateSigningCertificate { id }),
    );
    actions.extend(
        snapshot
            .mfa_devices
            .iter()
            .map(|serial| Action::DeactivateMfaDevice {
                serial: serial.clone(),
            }),
    );
    actions.extend(
        snapshot
            .trusting_roles
            .iter()
            .filter(|r| r.managed && !denies_sessions(r, &snapshot.user))
            .map(|r| Action::DenyRoleSessions {
                role: r.name.clone(),
                at: snapshot.taken_at,
            }),
    );
    // Written every time, and last: its cutoff is taken after the rest is done.
    actions.push(Action::DenyOlderSessions {
        issued_before: snapshot.taken_at,
    });
    actions
}

/// The actions that take `kind` away from what `snapshot` shows.
pub fn plan(
    kind: &RevocationKind,
    snapshot: &IdentitySnapshot,
    expected: &Expected<'_>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    if snapshot.exists {
        match kind {
            RevocationKind::Full => {
                actions.extend(credential_actions(snapshot));
                actions.extend(
                    snapshot
                        .groups
                        .iter()
                        .map(|g| Action::RemoveFromGroup { group: g.clone() }),
                );
                actions.extend(
                    removable_policies(snapshot, expected)
                        // The credentials lane overwrites it with the real deny.
                        .filter(|n| n.as_str() != SESSION_DENY_POLICY)
                        .map(|n| Action::DeleteInlinePolicy { name: n.clone() }),
                );
                actions.extend(
                    snapshot
                        .attached_policies
                        .iter()
                        .map(|a| Action::DetachPolicy { arn: a.clone() }),
                );
            }
            RevocationKind::Suspend => actions.extend(credential_actions(snapshot)),
            RevocationKind::Specific { permissions } => {
                // Only what was named; JIT grants and credentials are left alone.
                return specific_actions(snapshot, permissions);
            }
            RevocationKind::Partial { .. } => {
                let (groups, policies) = role_entitlements(expected.role);
                actions.extend(
                    snapshot
                        .groups
                        .iter()
                        .filter(|g| !groups.contains(*g))
                        .map(|g| Action::RemoveFromGroup { group: g.clone() }),
                );
                actions.extend(
                    removable_policies(snapshot, expected)
                        .map(|n| Action::DeleteInlinePolicy { name: n.clone() }),
                );
                actions.extend(
                    snapshot
                        .attached_policies
                        .iter()
                        .filter(|a| !policies.contains(*a))
                        .map(|a| Action::DetachPolicy { arn: a.clone() }),
                );
            }
        }
    } else if let RevocationKind::Specific { .. } = kind {
        return Vec::new();
    }
    if kind.closes_doors() {
        actions.extend(
            expected
                .open_requests
                .iter()
                .map(|id| Action::CancelRequest {
                    request_id: id.clone(),
                }),
        );
    }
    actions.extend(expected.live_grants.iter().map(|id| Action::EndGrant {
        request_id: id.clone(),
    }));
    actions
}

fn role_entitlements(role: Option<&Role>) -> (BTreeSet<String>, BTreeSet<String>) {
    role.map_or((BTreeSet::new(), BTreeSet::new()), |r| {
        (r.groups.clone(), r.managed_policies.clone())
    })
}

fn specific_actions(snapshot: &IdentitySnapshot, permissions: &[String]) -> Vec<Action> {
    let named = |p: &str| permissions.iter().any(|n| n == p);
    let mut actions: Vec<Action> = snapshot
        .groups
        .iter()
        .filter(|g| named(g))
        .map(|g| Action::RemoveFromGroup { group: g.clone() })
        .collect();
    actions.extend(
        snapshot
            .inline_policies
            .keys()
            .filter(|n| named(n))
            .map(|n| Action::DeleteInlinePolicy { name: n.clone() }),
    );
    actions.extend(
        snapshot
            .attached_policies
            .iter()
            .filter(|a| named(a))
            .map(|a| Action::DetachPolicy { arn: a.clone() }),
    );
    actions
}

fn credential_residue(after: &IdentitySnapshot, expected: &Expected<'_>, left: &mut Vec<String>) {
    if after.login_profile {
        left.push("console login profile".to_owned());
    }
    let active = |list: &[Credential], what: &str, left: &mut Vec<String>| {
        left.extend(
            list.iter()
                .filter(|c| c.active)
                .map(|c| format!("active {what} {}", c.id)),
        );
    };
    active(&after.access_keys, "access key", left);
    active(&after.ssh_keys, "SSH key", left);
    active(&after.signing_certificates, "signing certificate", left);
    match &after.service_credentials {
        ServiceCredentials::Listed { credentials } => {
            active(credentials, "service-specific credential", left);
        }
        ServiceCredentials::Unreadable { reason } => left.push(format!(
            "service-specific credentials could not be read ({reason})"
        )),
        ServiceCredentials::NotOffered => {}
    }
    left.extend(
        after
            .mfa_devices
            .iter()
            .map(|serial| format!("enabled MFA device {serial}")),
    );
    for role in &after.trusting_roles {
        if !role.managed {
            left.push(format!(
                "role {} trusts the user but is not tagged lapse:managed=true, so Lapse cannot deny their sessions of it",
                role.name
            ));
        } else if !denies_sessions(role, &after.user) {
            left.push(format!(
                "role {} trusts the user and carries no exact deny of their sessions",
                role.name
            ));
        }
    }
    let written = after
        .inline_policies
        .get(SESSION_DENY_POLICY)
        .and_then(session_deny_cutoff);
    match (written, expected.cutoff) {
        (_, None) => left.push("no session cutoff was recorded for this revocation".to_owned()),
        (Some(at), Some(cutoff)) if at >= cutoff => {}
        _ => left.push(
            "no exact deny of sessions issued before the credentials were deactivated".to_owned(),
        ),
    }
}

/// What should not be there any more, read from a fresh snapshot after the
/// revocation. Live JIT grants and open requests are listed by the caller, which
/// knows them from the request store.
pub fn residue(
    kind: &RevocationKind,
    after: &IdentitySnapshot,
    expected: &Expected<'_>,
) -> Vec<String> {
    if !after.exists {
        return Vec::new();
    }
    let mut left = Vec::new();
    match kind {
        RevocationKind::Full => {
            credential_residue(after, expected, &mut left);
            left.extend(after.groups.iter().map(|g| format!("group {g}")));
            left.extend(removable_policies(after, expected).map(|n| format!("inline policy {n}")));
            left.extend(
                after
                    .attached_policies
                    .iter()
                    .map(|a| format!("attached policy {a}")),
            );
        }
        RevocationKind::Suspend => credential_residue(after, expected, &mut left),
        RevocationKind::Specific { permissions } => {
            left.extend(
                specific_actions(after, permissions)
                    .into_iter()
                    .map(|a| format!("not done: {a}")),
            );
        }
        RevocationKind::Partial { .. } => {
            let (groups, policies) = role_entitlements(expected.role);
            left.extend(
                after
                    .groups
                    .iter()
                    .filter(|g| !groups.contains(*g))
                    .map(|g| format!("group {g}")),
            );
            left.extend(
                after
                    .attached_policies
                    .iter()
                    .filter(|a| !policies.contains(*a))
                    .map(|a| format!("attached policy {a}")),
            );
            left.extend(removable_policies(after, expected).map(|n| format!("inline policy {n}")));
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{catalog, monday_at};

    fn snapshot() -> IdentitySnapshot {
        IdentitySnapshot {
            login_profile: true,
            access_keys: vec![
                Credential {
                    id: "AKIA1".into(),
                    active: true,
                },
                Credential {
                    id: "AKIA2".into(),
                    active: false,
                },
            ],
            ssh_keys: vec![Credential {
                id: "APKA1".into(),
                active: true,
            }],
            signing_certificates: vec![Credential {
                id: "CERT1".into(),
                active: true,
            }],
            mfa_devices: vec!["arn:aws:iam::123456789012:mfa/jdoe".into()],
            trusting_roles: vec![
                TrustingRole {
                    name: "deployer".into(),
                    managed: true,
                    session_deny: None,
                },
                TrustingRole {
                    name: "legacy".into(),
                    managed: false,
                    session_deny: None,
                },
            ],
            groups: ["engineers", "finance-analysts", "admins"]
                .map(String::from)
                .into(),
            inline_policies: BTreeMap::from([
                ("legacy-s3".to_owned(), json!({})),
                ("lapse-prod-db-admin-req-x".to_owned(), json!({})),
                (
                    "lapse-planted".to_owned(),
                    json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
                ),
            ]),
            attached_policies: [
                "arn:aws:iam::aws:policy/ReadOnlyAccess",
                "arn:aws:iam::aws:policy/AdministratorAccess",
            ]
            .map(String::from)
            .into(),
            ..IdentitySnapshot::absent(PrincipalId::new("jdoe").unwrap(), monday_at(10))
        }
        .existing()
    }

    impl IdentitySnapshot {
        fn existing(mut self) -> Self {
            self.exists = true;
            self
        }
    }

    fn ledger_records(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn full_revocation_takes_everything_and_verification_agrees() {
        let cutoff = monday_at(10);
        let grant = RequestId::generate();
        let pending = RequestId::generate();
        let policies = ledger_records(&["lapse-prod-db-admin-req-x"]);
        let expected = Expected {
            role: None,
            live_grants: std::slice::from_ref(&grant),
            grant_policies: &policies,
            open_requests: std::slice::from_ref(&pending),
            cutoff: Some(cutoff),
        };
        let actions = plan(&RevocationKind::Full, &snapshot(), &expected);
        for wanted in [
            Action::DeleteLoginProfile,
            Action::DeactivateAccessKey { id: "AKIA1".into() },
            Action::DeactivateSigningCertificate { id: "CERT1".into() },
            Action::DeactivateMfaDevice {
                serial: "arn:aws:iam::123456789012:mfa/jdoe".into(),
            },
            Action::DenyRoleSessions {
                role: "deployer".into(),
                at: snapshot().taken_at,
            },
            Action::DeleteInlinePolicy {
                name: "legacy-s3".into(),
            },
            Action::DeleteInlinePolicy {
                name: "lapse-planted".into(),
            },
            Action::EndGrant {
                request_id: grant.clone(),
            },
            Action::CancelRequest {
                request_id: pending.clone(),
            },
        ] {
            assert!(
                actions.contains(&wanted),
                "{wanted:?} missing from {actions:?}"
            );
        }
        assert!(
            !actions.contains(&Action::DeactivateAccessKey { id: "AKIA2".into() }),
            "already inactive"
        );
        assert!(
            !actions.contains(&Action::DeleteInlinePolicy {
                name: "lapse-prod-db-admin-req-x".into()
            }),
            "a ledger-recorded live grant ends through the lifecycle"
        );
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::DenyRoleSessions { role, .. } if role == "legacy")),
            "an unmanaged role cannot be written"
        );
        let credentials: Vec<_> = actions
            .iter()
            .filter(|a| a.lane() == Lane::Credentials)
            .collect();
        assert!(
            matches!(credentials.last(), Some(Action::DenyOlderSessions { .. })),
            "the session deny is written last: {credentials:?}"
        );
        assert_eq!(
            actions
                .iter()
                .filter(|a| matches!(a, Action::RemoveFromGroup { .. }))
                .count(),
            3
        );

        let mut after = snapshot();
        after.login_profile = false;
        after.access_keys.iter_mut().for_each(|k| k.active = false);
        after.ssh_keys.iter_mut().for_each(|k| k.active = false);
        after
            .signing_certificates
            .iter_mut()
            .for_each(|k| k.active = false);
        after.mfa_devices.clear();
        after.groups.clear();
        after.attached_policies.clear();
        let mut denies = RoleDenies::default();
        denies.revoke(&after.user, after.taken_at);
        after.trusting_roles[0].session_deny = denies.document();
        after.trusting_roles.remove(1);
        after.inline_policies = BTreeMap::from([(
            SESSION_DENY_POLICY.to_owned(),
            session_deny_document(cutoff),
        )]);
        let done = Expected {
            live_grants: &[],
            open_requests: &[],
            ..expected
        };
        assert_eq!(
            residue(&RevocationKind::Full, &after, &done),
            Vec::<String>::new()
        );
        let again = plan(&RevocationKind::Full, &after, &done);
        assert_eq!(
            again,
            [Action::DenyOlderSessions {
                issued_before: after.taken_at
            }],
            "re-running only re-writes the session deny"
        );
    }

    #[test]
    fn verification_reads_content_not_names() {
        let cutoff = monday_at(10);
        let none = BTreeSet::new();
        let expected = Expected {
            role: None,
            live_grants: &[],
            grant_policies: &none,
            open_requests: &[],
            cutoff: Some(cutoff),
        };
        let clean = || {
            let mut after =
                IdentitySnapshot::absent(PrincipalId::new("jdoe").unwrap(), cutoff).existing();
            after.inline_policies.insert(
                SESSION_DENY_POLICY.to_owned(),
                session_deny_document(cutoff),
            );
            after
        };
        assert!(residue(&RevocationKind::Full, &clean(), &expected).is_empty());

        // A `lapse-` name the ledger does not record is an ordinary policy.
        let mut planted = clean();
        planted
            .inline_policies
            .insert("lapse-anything".into(), json!({"Statement": []}));
        assert_eq!(
            residue(&RevocationKind::Full, &planted, &expected),
            ["inline policy lapse-anything"]
        );

        // The session deny by name, but not by content.
        for tamper in [
            "/Statement/0/Effect",
            "/Statement/0/Action",
            "/Statement/0/Condition/DateLessThan/aws:TokenIssueTime",
        ] {
            let mut forged = clean();
            let doc = forged.inline_policies.get_mut(SESSION_DENY_POLICY).unwrap();
            *doc.pointer_mut(tamper).unwrap() = json!(if tamper.ends_with("Time") {
                "not a time"
            } else {
                "Allow"
            });
            let left = residue(&RevocationKind::Full, &forged, &expected);
            assert!(
                left.iter().any(|l| l.contains("sessions issued before")),
                "{tamper}: {left:?}"
            );
            let mut extra = clean();
            extra.inline_policies.get_mut(SESSION_DENY_POLICY).unwrap()["Statement"]
                .as_array_mut()
                .unwrap()
                .push(json!({"Effect": "Allow", "Action": "*", "Resource": "*"}));
            assert!(!residue(&RevocationKind::Full, &extra, &expected).is_empty());
        }
        // An older cutoff than the case recorded does not count.
        let mut stale = clean();
        stale.inline_policies.insert(
            SESSION_DENY_POLICY.to_owned(),
            session_deny_document(cutoff - chrono::TimeDelta::seconds(1)),
        );
        assert!(!residue(&RevocationKind::Suspend, &stale, &expected).is_empty());
        // Service-specific credentials nobody could read are not clean.
        let mut unread = clean();
        unread.service_credentials = ServiceCredentials::Unreadable {
            reason: "not an AWS answer".into(),
        };
        assert!(!residue(&RevocationKind::Suspend, &unread, &expected).is_empty());
        let mut declared = clean();
        declared.service_credentials = ServiceCredentials::NotOffered;
        assert!(residue(&RevocationKind::Suspend, &declared, &expected).is_empty());
        // A partial revocation removes a planted lapse-* policy too.
        let c = catalog();
        let partial = Expected {
            role: c.role("analyst"),
            ..expected
        };
        let kind = RevocationKind::Partial {
            new_role: "analyst".into(),
        };
        assert!(
            plan(&kind, &planted, &partial).contains(&Action::DeleteInlinePolicy {
                name: "lapse-anything".into()
            })
        );
    }

    #[test]
    fn trust_policies_name_a_user_only_explicitly() {
        let arn = "arn:aws:iam::123456789012:user/staff/jdoe";
        let trust = |principal: Value, effect: &str| json!({"Version": "2012-10-17", "Statement": [{"Effect": effect, "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}]});
        assert!(trust_names_user(&trust(json!(arn), "Allow"), arn, "AIDA1"));
        assert!(trust_names_user(
            &trust(
                json!(["arn:aws:iam::123456789012:user/x", "AIDA1"]),
                "Allow"
            ),
            arn,
            "AIDA1"
        ));
        assert!(!trust_names_user(&trust(json!(arn), "Deny"), arn, "AIDA1"));
        assert!(!trust_names_user(
            &trust(json!("arn:aws:iam::123456789012:root"), "Allow"),
            arn,
            "AIDA1"
        ));
        assert!(!trust_names_user(
            &trust(json!("arn:aws:iam::123456789012:user/staff/jdoe2"), "Allow"),
            arn,
            "AIDA1"
        ));
        assert!(!trust_names_user(
            &json!({"Statement": {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}}),
            arn,
            "AIDA1"
        ));
    }

    #[test]
    fn role_change_removes_only_the_excess() {
        let c = catalog();
        let none = BTreeSet::new();
        let expected = Expected {
            role: c.role("analyst"),
            live_grants: &[],
            grant_policies: &none,
            open_requests: &[RequestId::generate()],
            cutoff: None,
        };
        let kind = RevocationKind::Partial {
            new_role: "analyst".into(),
        };
        let actions = plan(&kind, &snapshot(), &expected);
        assert!(actions.contains(&Action::RemoveFromGroup {
            group: "engineers".into()
        }));
        assert!(actions.contains(&Action::RemoveFromGroup {
            group: "admins".into()
        }));
        assert!(!actions.contains(&Action::RemoveFromGroup {
            group: "finance-analysts".into()
        }));
        assert!(actions.contains(&Action::DetachPolicy {
            arn: "arn:aws:iam::aws:policy/AdministratorAccess".into()
        }));
        assert!(!actions.contains(&Action::DetachPolicy {
            arn: "arn:aws:iam::aws:policy/ReadOnlyAccess".into()
        }));
        assert!(
            !actions.iter().any(|a| a.lane() == Lane::Credentials),
            "credentials stay"
        );
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::CancelRequest { .. })),
            "a role change leaves requests to their approvers"
        );
    }

    #[test]
    fn suspension_closes_the_doors_but_keeps_permissions() {
        let none = BTreeSet::new();
        let expected = Expected {
            role: None,
            live_grants: &[],
            grant_policies: &none,
            open_requests: &[],
            cutoff: None,
        };
        let actions = plan(&RevocationKind::Suspend, &snapshot(), &expected);
        assert!(actions.iter().all(|a| a.lane() == Lane::Credentials));
        assert!(actions.contains(&Action::DeleteLoginProfile));
    }

    #[test]
    fn an_absent_user_needs_nothing_from_iam() {
        let absent = IdentitySnapshot::absent(PrincipalId::new("ghost").unwrap(), monday_at(10));
        let none = BTreeSet::new();
        let expected = Expected {
            role: None,
            live_grants: &[],
            grant_policies: &none,
            open_requests: &[],
            cutoff: None,
        };
        assert!(plan(&RevocationKind::Full, &absent, &expected).is_empty());
        assert!(residue(&RevocationKind::Full, &absent, &expected).is_empty());
    }
}
