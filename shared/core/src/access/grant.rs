//! What a grant is in IAM, and how to tell that it is gone.
//!
//! A policy grant is an inline user policy named `lapse-<resource>-<request id>` whose
//! every statement carries `DateLessThan: {aws:CurrentTime: <expiry>}`: IAM itself
//! stops honouring it at expiry even if every other part of Lapse has failed. A group
//! grant is a group membership, shared between overlapping grants through the
//! [`crate::access::ledger`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::ledger::Artifact;
use crate::access::request::RequestId;
use crate::policy::{GrantSpec, Resource, Statement, is_assume_role};

/// Every artifact Lapse creates starts with this, and its IAM permissions are scoped to it.
pub const NAME_PREFIX: &str = "lapse-";

/// The inline policy name for one grant.
pub fn policy_name(resource: &str, request: &RequestId) -> String {
    format!("{NAME_PREFIX}{resource}-{request}")
}

/// The artifact a grant of `resource` creates.
pub fn artifact_for(resource: &Resource, request: &RequestId) -> Artifact {
    match &resource.grant {
        GrantSpec::InlinePolicy(_) => Artifact::InlinePolicy {
            name: policy_name(&resource.id, request),
        },
        GrantSpec::Group(group) => Artifact::GroupMembership {
            group: group.clone(),
        },
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The policy document for a grant that ends at `expires_at`.
///
/// A statement that assumes roles also requires the session's source identity to
/// be the holder's own user name (and allows setting it): every session it opens
/// is then marked with who opened it, for good, so that the grant's end can deny
/// exactly those sessions on each role ([`role_grant_deny_document`]).
pub fn policy_document(statements: &[Statement], expires_at: DateTime<Utc>) -> Value {
    let statements: Vec<Value> = statements
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut condition =
                json!({ "DateLessThan": { "aws:CurrentTime": timestamp(expires_at) } });
            let mut actions = s.actions.clone();
            if s.effect == crate::policy::Effect::Allow
                && s.actions.iter().any(|a| is_assume_role(a))
            {
                condition["StringEquals"] = json!({ "sts:SourceIdentity": "${aws:username}" });
                if !actions.iter().any(|a| a == SET_SOURCE_IDENTITY) {
                    actions.push(SET_SOURCE_IDENTITY.to_owned());
                }
            }
            json!({
                "Sid": format!("LapseGrant{i}"),
                "Effect": match s.effect {
                    crate::policy::Effect::Allow => "Allow",
                    crate::policy::Effect::Deny => "Deny",
                },
                "Action": actions,
                "Resource": s.resources,
                "Condition": condition,
            })
        })
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements })
}

const SET_SOURCE_IDENTITY: &str = "sts:SetSourceIdentity";

/// The expiry every statement of a document is bounded by, or `None` if any
/// statement lacks the `aws:CurrentTime` bound or they disagree.
pub fn document_expiry(document: &Value) -> Option<DateTime<Utc>> {
    let statements = document.get("Statement")?.as_array()?;
    let mut expiry = None;
    for statement in statements {
        let at = statement
            .pointer("/Condition/DateLessThan/aws:CurrentTime")?
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())?
            .with_timezone(&Utc);
        match expiry {
            None => expiry = Some(at),
            Some(seen) if seen == at => {}
            Some(_) => return None,
        }
    }
    expiry
}

/// What IAM holds for one user, read back directly (moto and real IAM alike).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IamSnapshot {
    /// Inline policy name → document.
    pub inline_policies: BTreeMap<String, Value>,
    pub groups: BTreeSet<String>,
    /// Attached managed policy ARNs.
    pub attached_policies: BTreeSet<String>,
}

impl IamSnapshot {
    /// Does IAM still hold this artifact?
    pub fn holds(&self, artifact: &Artifact) -> bool {
        match artifact {
            Artifact::InlinePolicy { name } => self.inline_policies.contains_key(name),
            Artifact::GroupMembership { group } => self.groups.contains(group),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{catalog, monday_at};

    #[test]
    fn every_statement_is_time_bound() {
        let c = catalog();
        let res = c.resource("staging-logs-read").unwrap();
        let GrantSpec::InlinePolicy(statements) = &res.grant else {
            panic!("inline")
        };
        let doc = policy_document(statements, monday_at(14));
        assert_eq!(doc["Version"], "2012-10-17");
        assert_eq!(
            doc["Statement"][0]["Condition"]["DateLessThan"]["aws:CurrentTime"],
            "2026-11-23T14:00:00Z"
        );
        assert_eq!(document_expiry(&doc), Some(monday_at(14)));
        let mut unbounded = doc.clone();
        unbounded["Statement"][0]
            .as_object_mut()
            .unwrap()
            .remove("Condition");
        assert_eq!(document_expiry(&unbounded), None);
    }

    #[test]
    fn artifacts_follow_the_catalog() {
        let c = catalog();
        let id = RequestId::generate();
        let policy = artifact_for(c.resource("prod-db-admin").unwrap(), &id);
        assert_eq!(
            policy,
            Artifact::InlinePolicy {
                name: format!("lapse-prod-db-admin-{id}")
            }
        );
        assert!(policy_name("prod-db-admin", &id).len() <= 128);
        let group = artifact_for(c.resource("prod-readonly").unwrap(), &id);
        assert_eq!(
            group,
            Artifact::GroupMembership {
                group: "lapse-prod-readonly".into()
            }
        );
        let mut snapshot = IamSnapshot::default();
        assert!(!snapshot.holds(&group));
        snapshot.groups.insert("lapse-prod-readonly".into());
        assert!(snapshot.holds(&group));
    }
}
