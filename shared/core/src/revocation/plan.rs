//! What a revocation removes, computed from what IAM holds now.
//!
//! Plans are computed from a fresh snapshot every time, so a revocation that was
//! interrupted half-way simply plans what is left: re-running is idempotent. The
//! same rules decide what may remain ([`residue`]), which is what verification checks.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::grant::NAME_PREFIX;
use crate::identity::PrincipalId;
use crate::policy::Role;
use crate::request::RequestId;

/// The inline policy that cuts off sessions issued before the revocation.
pub const SESSION_DENY_POLICY: &str = "lapse-revoke-older-sessions";

/// One credential and whether it is active.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub id: String,
    pub active: bool,
}

/// Everything IAM holds for a user, read back directly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdentitySnapshot {
    pub user: PrincipalId,
    pub exists: bool,
    pub login_profile: bool,
    pub access_keys: Vec<Credential>,
    pub ssh_keys: Vec<Credential>,
    /// `None` when the endpoint cannot list service-specific credentials (some
    /// emulators and partitions); the plan then records that it could not check.
    pub service_credentials: Option<Vec<Credential>>,
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
            login_profile: false,
            access_keys: Vec::new(),
            ssh_keys: Vec::new(),
            service_credentials: Some(Vec::new()),
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
}

/// Which parallel branch of the workflow performs an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    Credentials,
    Permissions,
    Grants,
}

/// One change to IAM (or to a JIT grant).
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
    RemoveFromGroup {
        group: String,
    },
    DeleteInlinePolicy {
        name: String,
    },
    DetachPolicy {
        arn: String,
    },
    /// Deny everything to sessions whose token was issued before this instant.
    DenyOlderSessions {
        issued_before: DateTime<Utc>,
    },
    /// End a live just-in-time grant through the grant lifecycle.
    EndGrant {
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
            | Action::DenyOlderSessions { .. } => Lane::Credentials,
            Action::RemoveFromGroup { .. }
            | Action::DeleteInlinePolicy { .. }
            | Action::DetachPolicy { .. } => Lane::Permissions,
            Action::EndGrant { .. } => Lane::Grants,
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

fn session_cutoff(snapshot: &IdentitySnapshot) -> Option<DateTime<Utc>> {
    snapshot
        .inline_policies
        .get(SESSION_DENY_POLICY)?
        .pointer("/Statement/0/Condition/DateLessThan/aws:TokenIssueTime")?
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Is this inline policy one of a JIT grant's (ended through the lifecycle)?
fn is_grant_policy(name: &str) -> bool {
    name.starts_with(NAME_PREFIX) && name != SESSION_DENY_POLICY
}

fn credential_actions(snapshot: &IdentitySnapshot, cutoff: DateTime<Utc>) -> Vec<Action> {
    let mut actions = Vec::new();
    if snapshot.login_profile {
        actions.push(Action::DeleteLoginProfile);
    }
    for key in snapshot.access_keys.iter().filter(|k| k.active) {
        actions.push(Action::DeactivateAccessKey { id: key.id.clone() });
    }
    for key in snapshot.ssh_keys.iter().filter(|k| k.active) {
        actions.push(Action::DeactivateSshKey { id: key.id.clone() });
    }
    for credential in snapshot
        .service_credentials
        .iter()
        .flatten()
        .filter(|c| c.active)
    {
        actions.push(Action::DeactivateServiceCredential {
            id: credential.id.clone(),
        });
    }
    if session_cutoff(snapshot).is_none_or(|at| at < cutoff) {
        actions.push(Action::DenyOlderSessions {
            issued_before: cutoff,
        });
    }
    actions
}

/// The actions that take `kind` away from what `snapshot` shows, given the user's
/// live JIT grants and (for a role change) the new role.
pub fn plan(
    kind: &RevocationKind,
    snapshot: &IdentitySnapshot,
    role: Option<&Role>,
    live_grants: &[RequestId],
    cutoff: DateTime<Utc>,
) -> Vec<Action> {
    if !snapshot.exists {
        return live_grants
            .iter()
            .map(|id| Action::EndGrant {
                request_id: id.clone(),
            })
            .collect();
    }
    let mut actions = Vec::new();
    match kind {
        RevocationKind::Full => {
            actions.extend(credential_actions(snapshot, cutoff));
            actions.extend(
                snapshot
                    .groups
                    .iter()
                    .map(|g| Action::RemoveFromGroup { group: g.clone() }),
            );
            actions.extend(
                snapshot
                    .inline_policies
                    .keys()
                    .filter(|n| n.as_str() != SESSION_DENY_POLICY && !is_grant_policy(n))
                    .map(|n| Action::DeleteInlinePolicy { name: n.clone() }),
            );
            actions.extend(
                snapshot
                    .attached_policies
                    .iter()
                    .map(|a| Action::DetachPolicy { arn: a.clone() }),
            );
        }
        RevocationKind::Suspend => actions.extend(credential_actions(snapshot, cutoff)),
        RevocationKind::Specific { .. } => {}
        RevocationKind::Partial { .. } => {
            let (groups, policies) = role.map_or((BTreeSet::new(), BTreeSet::new()), |r| {
                (r.groups.clone(), r.managed_policies.clone())
            });
            actions.extend(
                snapshot
                    .groups
                    .iter()
                    .filter(|g| !groups.contains(*g))
                    .map(|g| Action::RemoveFromGroup { group: g.clone() }),
            );
            actions.extend(
                snapshot
                    .inline_policies
                    .keys()
                    .filter(|n| n.as_str() != SESSION_DENY_POLICY && !is_grant_policy(n))
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
    if let RevocationKind::Specific { permissions } = kind {
        // Only what was named; JIT grants and credentials are left alone.
        return specific_actions(snapshot, permissions);
    }
    actions.extend(live_grants.iter().map(|id| Action::EndGrant {
        request_id: id.clone(),
    }));
    actions
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

/// What should not be there any more, read from a fresh snapshot after the
/// revocation (JIT grants are verified by the grant lifecycle itself).
pub fn residue(
    kind: &RevocationKind,
    after: &IdentitySnapshot,
    role: Option<&Role>,
    cutoff: DateTime<Utc>,
) -> Vec<String> {
    if !after.exists {
        return Vec::new();
    }
    let mut left = Vec::new();
    let credentials = |left: &mut Vec<String>| {
        if after.login_profile {
            left.push("console login profile".to_owned());
        }
        for key in after.access_keys.iter().filter(|k| k.active) {
            left.push(format!("active access key {}", key.id));
        }
        for key in after.ssh_keys.iter().filter(|k| k.active) {
            left.push(format!("active SSH key {}", key.id));
        }
        for c in after
            .service_credentials
            .iter()
            .flatten()
            .filter(|c| c.active)
        {
            left.push(format!("active service credential {}", c.id));
        }
        if session_cutoff(after).is_none_or(|at| at < cutoff) {
            left.push("no deny on sessions issued before the revocation".to_owned());
        }
    };
    match kind {
        RevocationKind::Full => {
            credentials(&mut left);
            left.extend(after.groups.iter().map(|g| format!("group {g}")));
            left.extend(
                after
                    .inline_policies
                    .keys()
                    .filter(|n| n.as_str() != SESSION_DENY_POLICY && !is_grant_policy(n))
                    .map(|n| format!("inline policy {n}")),
            );
            left.extend(
                after
                    .attached_policies
                    .iter()
                    .map(|a| format!("attached policy {a}")),
            );
        }
        RevocationKind::Suspend => credentials(&mut left),
        RevocationKind::Specific { permissions } => {
            left.extend(
                specific_actions(after, permissions)
                    .into_iter()
                    .map(|a| format!("{a:?}")),
            );
        }
        RevocationKind::Partial { .. } => {
            let empty = BTreeSet::new();
            let (groups, policies) =
                role.map_or((&empty, &empty), |r| (&r.groups, &r.managed_policies));
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
            left.extend(
                after
                    .inline_policies
                    .keys()
                    .filter(|n| n.as_str() != SESSION_DENY_POLICY && !is_grant_policy(n))
                    .map(|n| format!("inline policy {n}")),
            );
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
            user: PrincipalId::new("jdoe").unwrap(),
            exists: true,
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
            service_credentials: None,
            groups: ["engineers", "finance-analysts", "admins"]
                .map(String::from)
                .into(),
            inline_policies: BTreeMap::from([
                ("legacy-s3".to_owned(), json!({})),
                ("lapse-prod-db-admin-req-x".to_owned(), json!({})),
            ]),
            attached_policies: [
                "arn:aws:iam::aws:policy/ReadOnlyAccess",
                "arn:aws:iam::aws:policy/AdministratorAccess",
            ]
            .map(String::from)
            .into(),
            taken_at: monday_at(10),
        }
    }

    #[test]
    fn full_revocation_takes_everything_and_verification_agrees() {
        let cutoff = monday_at(10);
        let grant = RequestId::generate();
        let actions = plan(
            &RevocationKind::Full,
            &snapshot(),
            None,
            std::slice::from_ref(&grant),
            cutoff,
        );
        assert!(actions.contains(&Action::DeleteLoginProfile));
        assert!(actions.contains(&Action::DeactivateAccessKey { id: "AKIA1".into() }));
        assert!(
            !actions.contains(&Action::DeactivateAccessKey { id: "AKIA2".into() }),
            "already inactive"
        );
        assert!(actions.contains(&Action::DenyOlderSessions {
            issued_before: cutoff
        }));
        assert_eq!(
            actions
                .iter()
                .filter(|a| matches!(a, Action::RemoveFromGroup { .. }))
                .count(),
            3
        );
        assert!(actions.contains(&Action::DeleteInlinePolicy {
            name: "legacy-s3".into()
        }));
        assert!(
            !actions.contains(&Action::DeleteInlinePolicy {
                name: "lapse-prod-db-admin-req-x".into()
            }),
            "grants end through the lifecycle"
        );
        assert!(actions.contains(&Action::EndGrant { request_id: grant }));
        assert!(!residue(&RevocationKind::Full, &snapshot(), None, cutoff).is_empty());

        let mut after = snapshot();
        after.login_profile = false;
        after.access_keys.iter_mut().for_each(|k| k.active = false);
        after.ssh_keys.iter_mut().for_each(|k| k.active = false);
        after.groups.clear();
        after.attached_policies.clear();
        after.inline_policies = BTreeMap::from([(
            SESSION_DENY_POLICY.to_owned(),
            session_deny_document(cutoff),
        )]);
        assert_eq!(
            residue(&RevocationKind::Full, &after, None, cutoff),
            Vec::<String>::new()
        );
        assert!(
            plan(&RevocationKind::Full, &after, None, &[], cutoff).is_empty(),
            "re-running plans nothing"
        );
    }

    #[test]
    fn role_change_removes_only_the_excess() {
        let c = catalog();
        let role = c.role("analyst").unwrap();
        let kind = RevocationKind::Partial {
            new_role: "analyst".into(),
        };
        let actions = plan(&kind, &snapshot(), Some(role), &[], monday_at(10));
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
    }

    #[test]
    fn suspension_closes_the_doors_but_keeps_permissions() {
        let actions = plan(
            &RevocationKind::Suspend,
            &snapshot(),
            None,
            &[],
            monday_at(10),
        );
        assert!(actions.iter().all(|a| a.lane() == Lane::Credentials));
        assert!(actions.contains(&Action::DeleteLoginProfile));
    }

    #[test]
    fn an_absent_user_needs_nothing_from_iam() {
        let absent = IdentitySnapshot::absent(PrincipalId::new("ghost").unwrap(), monday_at(10));
        assert!(plan(&RevocationKind::Full, &absent, None, &[], monday_at(10)).is_empty());
        assert!(residue(&RevocationKind::Full, &absent, None, monday_at(10)).is_empty());
    }
}
