//! Who is acting. A [`Principal`] is only ever built from an authenticated context
//! (verified JWT claims, an IAM caller identity): never from a request body.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A person's stable identifier; also their IAM user name, so it follows IAM's rules.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PrincipalId(String);

/// A principal id that IAM would not accept as a user name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid principal id {0:?}: use 1-64 letters, digits or `+=,.@_-`")]
pub struct InvalidPrincipalId(pub String);

impl PrincipalId {
    /// Validates an id against IAM's user-name rules.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidPrincipalId> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        if ok {
            Ok(Self(id))
        } else {
            Err(InvalidPrincipalId(id))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as IAM compares user names: without case (`JDoe` and `jdoe` are one
    /// user). Stores keyed by a person use this, so that a token or an HR event that
    /// spells the name otherwise still finds the person's controls and cases.
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl TryFrom<String> for PrincipalId {
    type Error = InvalidPrincipalId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<PrincipalId> for String {
    fn from(value: PrincipalId) -> Self {
        value.0
    }
}

impl fmt::Display for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a person is engaged; vendors and contractors carry more risk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmploymentType {
    Employee,
    Contractor,
    Vendor,
}

impl EmploymentType {
    /// The type in words.
    pub fn label(self) -> &'static str {
        match self {
            EmploymentType::Employee => "employee",
            EmploymentType::Contractor => "contractor",
            EmploymentType::Vendor => "vendor",
        }
    }
}

/// An authenticated caller: their id, the groups their identity provider asserts,
/// and their employment type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    id: PrincipalId,
    groups: BTreeSet<String>,
    employment: EmploymentType,
}

impl Principal {
    /// Builds a principal from claims that an authenticator has already verified.
    pub fn authenticated(
        id: PrincipalId,
        groups: impl IntoIterator<Item = String>,
        employment: EmploymentType,
    ) -> Self {
        Self {
            id,
            groups: groups.into_iter().collect(),
            employment,
        }
    }

    pub fn id(&self) -> &PrincipalId {
        &self.id
    }

    pub fn employment(&self) -> EmploymentType {
        self.employment
    }

    pub fn groups(&self) -> &BTreeSet<String> {
        &self.groups
    }

    pub fn is_member(&self, group: &str) -> bool {
        self.groups.contains(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_ids_follow_iam_rules() {
        assert!(PrincipalId::new("alice.smith@example.com").is_ok());
        for bad in ["", "alice smith", "a/b", &"x".repeat(65)] {
            assert!(PrincipalId::new(bad).is_err(), "{bad:?}");
        }
        let err: Result<PrincipalId, _> = serde_json::from_str("\"bad id\"");
        assert!(err.is_err());
    }
}
