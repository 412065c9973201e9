//! Grant ledger: which live grants hold which IAM artifact.
//!
//! Two grants can put the same artifact in place: two overlapping requests for a
//! group entitlement both add the principal to the same group. Revoking the first
//! must not strip access the second still grants (AWS TEAM shipped exactly that
//! bug). The ledger answers one question on every release: remove the artifact now,
//! or keep it because another live grant still holds it?
//!
//! Inline-policy grants are named per grant, so each has an artifact of its own and
//! never shares; group memberships are shared per (principal, group).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::identity::PrincipalId;

/// Something in IAM a grant put in place.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Artifact {
    /// An inline user policy, named for one grant.
    InlinePolicy { name: String },
    /// Membership of an IAM group.
    GroupMembership { group: String },
}

impl std::fmt::Display for Artifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Artifact::InlinePolicy { name } => write!(f, "inline policy {name}"),
            Artifact::GroupMembership { group } => write!(f, "membership of group {group}"),
        }
    }
}

/// One live grant's hold on an artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub grant_id: String,
    pub principal: PrincipalId,
    pub artifact: Artifact,
    pub expires_at: DateTime<Utc>,
}

/// What releasing a grant means for IAM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Release {
    /// No live grant holds the artifact any more: remove it from IAM.
    Remove { artifact: Artifact },
    /// Other live grants still hold it: leave IAM alone.
    Keep {
        artifact: Artifact,
        held_by: Vec<String>,
    },
    /// The grant was not (or no longer) in the ledger: nothing to do.
    NotHeld,
}

/// Live holds, keyed by (principal, artifact).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    holds: BTreeMap<(PrincipalId, Artifact), BTreeMap<String, DateTime<Utc>>>,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a grant's hold; recording the same grant again only updates its expiry.
    pub fn hold(&mut self, hold: Hold) {
        self.holds
            .entry((hold.principal, hold.artifact))
            .or_default()
            .insert(hold.grant_id, hold.expires_at);
    }

    /// Releases a grant; idempotent (a second release is `NotHeld`).
    pub fn release(
        &mut self,
        principal: &PrincipalId,
        artifact: &Artifact,
        grant_id: &str,
    ) -> Release {
        let key = (principal.clone(), artifact.clone());
        let Some(holders) = self.holds.get_mut(&key) else {
            return Release::NotHeld;
        };
        if holders.remove(grant_id).is_none() {
            return Release::NotHeld;
        }
        if holders.is_empty() {
            self.holds.remove(&key);
            Release::Remove {
                artifact: artifact.clone(),
            }
        } else {
            Release::Keep {
                artifact: artifact.clone(),
                held_by: holders.keys().cloned().collect(),
            }
        }
    }

    /// Grants holding this artifact for this principal.
    pub fn holders(&self, principal: &PrincipalId, artifact: &Artifact) -> Vec<String> {
        self.holds
            .get(&(principal.clone(), artifact.clone()))
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Holds whose expiry is at or before `now`, for the sweeper.
    pub fn overdue(&self, now: DateTime<Utc>) -> Vec<Hold> {
        self.holds
            .iter()
            .flat_map(|((principal, artifact), holders)| {
                holders
                    .iter()
                    .filter(|(_, at)| **at <= now)
                    .map(|(grant_id, at)| Hold {
                        grant_id: grant_id.clone(),
                        principal: principal.clone(),
                        artifact: artifact.clone(),
                        expires_at: *at,
                    })
            })
            .collect()
    }

    /// All live holds of one principal.
    pub fn holds_of(&self, principal: &PrincipalId) -> Vec<Hold> {
        self.holds
            .iter()
            .filter(|((p, _), _)| p == principal)
            .flat_map(|((p, artifact), holders)| {
                holders.iter().map(|(grant_id, at)| Hold {
                    grant_id: grant_id.clone(),
                    principal: p.clone(),
                    artifact: artifact.clone(),
                    expires_at: *at,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::monday_at;
    use proptest::prelude::*;

    fn alice() -> PrincipalId {
        PrincipalId::new("alice").unwrap()
    }

    fn group(name: &str) -> Artifact {
        Artifact::GroupMembership { group: name.into() }
    }

    #[test]
    fn overlapping_group_grants_do_not_revoke_each_other() {
        let mut ledger = Ledger::new();
        for (id, hour) in [("g1", 12), ("g2", 14)] {
            ledger.hold(Hold {
                grant_id: id.into(),
                principal: alice(),
                artifact: group("admins"),
                expires_at: monday_at(hour),
            });
        }
        assert_eq!(
            ledger.release(&alice(), &group("admins"), "g1"),
            Release::Keep {
                artifact: group("admins"),
                held_by: vec!["g2".into()]
            }
        );
        assert_eq!(
            ledger.release(&alice(), &group("admins"), "g1"),
            Release::NotHeld
        );
        assert_eq!(
            ledger.release(&alice(), &group("admins"), "g2"),
            Release::Remove {
                artifact: group("admins")
            }
        );
        assert_eq!(
            ledger.release(&alice(), &group("admins"), "g2"),
            Release::NotHeld
        );
    }

    #[test]
    fn overdue_lists_only_expired_holds() {
        let mut ledger = Ledger::new();
        ledger.hold(Hold {
            grant_id: "old".into(),
            principal: alice(),
            artifact: group("a"),
            expires_at: monday_at(9),
        });
        ledger.hold(Hold {
            grant_id: "new".into(),
            principal: alice(),
            artifact: group("a"),
            expires_at: monday_at(15),
        });
        let overdue = ledger.overdue(monday_at(10));
        assert_eq!(overdue.len(), 1);
        assert_eq!(overdue[0].grant_id, "old");
        assert_eq!(ledger.holds_of(&alice()).len(), 2);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Hold { grant: u8, artifact: u8 },
        Release { grant: u8, artifact: u8 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..6, 0u8..3).prop_map(|(grant, artifact)| Op::Hold { grant, artifact }),
            (0u8..6, 0u8..3).prop_map(|(grant, artifact)| Op::Release { grant, artifact }),
        ]
    }

    proptest! {
        /// Against a simple model (a set of live (grant, artifact) pairs), the ledger
        /// says Remove exactly when the last holder goes, and never while one remains.
        #[test]
        fn artifact_removed_only_when_last_holder_releases(ops in proptest::collection::vec(op(), 1..60)) {
            let mut ledger = Ledger::new();
            let mut model: std::collections::BTreeSet<(u8, u8)> = Default::default();
            let mut present: std::collections::BTreeSet<u8> = Default::default();
            for op in ops {
                match op {
                    Op::Hold { grant, artifact } => {
                        ledger.hold(Hold {
                            grant_id: format!("g{grant}"),
                            principal: alice(),
                            artifact: group(&format!("a{artifact}")),
                            expires_at: monday_at(12),
                        });
                        model.insert((grant, artifact));
                        present.insert(artifact);
                    }
                    Op::Release { grant, artifact } => {
                        let release = ledger.release(&alice(), &group(&format!("a{artifact}")), &format!("g{grant}"));
                        let was_held = model.remove(&(grant, artifact));
                        let others = model.iter().filter(|(_, a)| *a == artifact).count();
                        match release {
                            Release::NotHeld => prop_assert!(!was_held),
                            Release::Keep { held_by, .. } => {
                                prop_assert!(was_held);
                                prop_assert_eq!(held_by.len(), others);
                                prop_assert!(others > 0);
                            }
                            Release::Remove { .. } => {
                                prop_assert!(was_held);
                                prop_assert_eq!(others, 0);
                                present.remove(&artifact);
                            }
                        }
                    }
                }
                // Access is in IAM exactly while some live grant holds it.
                for artifact in 0u8..3 {
                    let held = model.iter().any(|(_, a)| *a == artifact);
                    prop_assert_eq!(held, present.contains(&artifact));
                    prop_assert_eq!(held, !ledger.holders(&alice(), &group(&format!("a{artifact}"))).is_empty());
                }
            }
        }
    }
}
