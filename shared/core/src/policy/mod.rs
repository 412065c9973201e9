//! Policy as code: the catalog of entitlements, approver groups and tunables.
//!
//! The catalog is a YAML file (`infra/policy/catalog.yaml`). [`Catalog::parse`] checks
//! all of it and reports *every* problem with its line, column and path, so one run of
//! `lapse policy check` shows everything to fix. A loaded catalog is valid by
//! construction: the rest of the core never re-checks it.
//!
//! The catalog's SHA-256 content hash ([`PolicyHash`]) is stamped on every audit event,
//! so an auditor can tell which policy made each decision.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};

use crate::duration::Span;

/// The longest break-glass grant Lapse will ever issue, whatever the catalog says.
pub const BREAK_GLASS_HARD_CAP_SECONDS: i64 = 2 * 3600;

/// Longest resource id: grant artifacts are named `lapse-<resource>-<grant id>` and IAM
/// policy names stop at 128 characters.
const MAX_RESOURCE_ID_LEN: usize = 48;

/// Hex SHA-256 of the catalog file's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PolicyHash(String);

impl PolicyHash {
    /// The hash of some catalog text.
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PolicyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Deployment environment of a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Sandbox,
    Development,
    Staging,
    Production,
}

impl Environment {
    /// As the catalog spells it.
    pub fn label(self) -> &'static str {
        match self {
            Environment::Sandbox => "sandbox",
            Environment::Development => "development",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

/// How much harm misuse of a resource could do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    Low,
    Moderate,
    High,
    Critical,
}

impl Sensitivity {
    /// As the catalog spells it.
    pub fn label(self) -> &'static str {
        match self {
            Sensitivity::Low => "low",
            Sensitivity::Moderate => "moderate",
            Sensitivity::High => "high",
            Sensitivity::Critical => "critical",
        }
    }
}

/// Allow or Deny, as in an IAM statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

/// One statement of an inline-policy grant. Lapse adds the time condition itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub effect: Effect,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

/// What a grant of a resource means in IAM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantSpec {
    /// An inline policy, named for the grant, every statement bounded by `aws:CurrentTime`.
    InlinePolicy(Vec<Statement>),
    /// Membership of an existing IAM group (not time-bound in IAM itself: the
    /// workflow, the sweeper and the ledger end it).
    Group(String),
}

/// A privileged credential held in Secrets Manager, checked out exclusively.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Checkout {
    /// The secret's ARN without Secrets Manager's random suffix; its name starts
    /// with [`CHECKOUT_SECRET_PREFIX`].
    pub secret_arn: String,
    /// The Lambda function that rotates the secret (`arn:aws:lambda:…:function:…`):
    /// it changes what the database accepts, then makes the new value current.
    /// Check-in asks Secrets Manager to run it and waits for it to finish, and a
    /// checkout is refused unless the secret's rotation is on with this function.
    pub rotation_function: String,
}

/// Checked-out secrets live under this name prefix: the credentials function may
/// rotate those alone.
pub const CHECKOUT_SECRET_PREFIX: &str = "lapse/";

impl Checkout {
    /// The grant that reads this secret: its value and its description, nothing else.
    pub fn grant(&self) -> GrantSpec {
        GrantSpec::InlinePolicy(vec![Statement {
            effect: Effect::Allow,
            actions: vec![
                "secretsmanager:GetSecretValue".into(),
                "secretsmanager:DescribeSecret".into(),
            ],
            // Secrets Manager appends `-` and six characters to every secret's ARN.
            resources: vec![format!("{}-??????", self.secret_arn)],
        }])
    }
}

/// An entitlement people can request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Resource {
    pub id: String,
    pub description: String,
    pub owner_group: String,
    pub environment: Environment,
    pub sensitivity: Sensitivity,
    pub privileged: bool,
    /// The longest grant of this resource (never above [`Tunables::max_duration`]).
    pub max_duration: Span,
    pub grant: GrantSpec,
    /// Groups whose approvals a high-risk request needs, one distinct person each.
    pub dual_approval_groups: Vec<String>,
    /// A privileged credential checked out for the grant: exclusive, rotated at
    /// check-in. The grant itself is the inline policy that reads it.
    pub checkout: Option<Checkout>,
    /// Why this grant may allow privilege escalation (`allows_escalation.reason`);
    /// such a grant always needs dual approval. `None`: the grant escalates nothing
    /// (the catalog refuses one that does without saying so).
    pub escalation_reason: Option<String>,
    /// Who may take this resource by break-glass; `None`: nobody (break-glass is
    /// opt-in per resource).
    pub break_glass: Option<BreakGlassPolicy>,
}

/// A resource's break-glass eligibility.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BreakGlassPolicy {
    /// Employees in one of these groups may break glass for the resource.
    pub eligible_groups: BTreeSet<String>,
    /// Why break-glass may take a grant that escalates privileges or checks out a
    /// credential; the catalog refuses break-glass on such a resource without one.
    pub high_risk_reason: Option<String>,
}

/// Does this action (a pattern: `sts:*`, `sts:Assume*`) allow assuming a role
/// (`sts:AssumeRole`, `sts:AssumeRoleWithSAML`, `sts:AssumeRoleWithWebIdentity`)?
pub fn is_assume_role(action: &str) -> bool {
    [
        "sts:AssumeRole",
        "sts:AssumeRoleWithSAML",
        "sts:AssumeRoleWithWebIdentity",
    ]
    .iter()
    .any(|a| validate::glob_matches(action, a))
}

/// The role name of an exact IAM role ARN (`arn:aws:iam::<account>:role/<path/>name`);
/// `None` for anything else, wildcards included.
pub fn role_name(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let (_partition, service, _region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let path = resource.strip_prefix("role/")?;
    let name = path.rsplit('/').next()?;
    let exact = service == "iam"
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && !arn.contains(['*', '?']);
    exact.then_some(name)
}

impl Resource {
    /// The roles this resource's grant lets its holder assume (exact ARNs: the
    /// catalog refuses wildcards there).
    pub fn assumable_roles(&self) -> Vec<String> {
        let GrantSpec::InlinePolicy(statements) = &self.grant else {
            return Vec::new();
        };
        let mut roles: Vec<String> = statements
            .iter()
            .filter(|s| s.effect == Effect::Allow && s.actions.iter().any(|a| is_assume_role(a)))
            .flat_map(|s| s.resources.iter().cloned())
            .collect();
        roles.sort();
        roles.dedup();
        roles
    }

    /// Privileged, production or escalation-capable resources always need dual
    /// approval.
    pub fn is_high_impact(&self) -> bool {
        self.privileged
            || self.environment == Environment::Production
            || self.escalation_reason.is_some()
    }
}

/// What a job role is entitled to hold standing (IAM groups and managed policies).
/// A role change removes whatever a person holds beyond their new role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub groups: BTreeSet<String>,
    pub managed_policies: BTreeSet<String>,
}

/// A group of approvers. Membership comes from the authenticated identity's groups
/// claim: a person is in the group when the claim carries one of `idp_groups`
/// exactly (the identity provider's immutable group identifiers, never display
/// names, which a person may be able to choose).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApproverGroup {
    pub name: String,
    pub description: String,
    pub idp_groups: BTreeSet<String>,
}

/// Is this a usable identity-provider group identifier? It must survive API
/// Gateway's flattening of array claims (`[a b]`) unambiguously: no whitespace,
/// commas, brackets, quotes or control characters.
pub fn is_idp_group_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && !id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || ",[]\"'".contains(c))
}

/// The shape of the identity provider's group ids, which every `idp_groups`
/// entry must have: API Gateway flattens the groups claim to `[a b]`, so an id
/// must be unmistakable (no display names, which may hold spaces).
#[derive(Clone, Debug)]
pub enum GroupIdFormat {
    /// Okta: `00g` and 17 letters or digits.
    Okta,
    /// Microsoft Entra ID: an object id (a GUID).
    Entra,
    /// Another provider: the whole id matches this pattern.
    Pattern(regex_lite::Regex),
}

impl GroupIdFormat {
    pub fn matches(&self, id: &str) -> bool {
        match self {
            GroupIdFormat::Okta => {
                id.len() == 20
                    && id.starts_with("00g")
                    && id.bytes().all(|b| b.is_ascii_alphanumeric())
            }
            GroupIdFormat::Entra => {
                let groups: Vec<&str> = id.split('-').collect();
                groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
                    && groups
                        .iter()
                        .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
            }
            GroupIdFormat::Pattern(re) => re.is_match(id),
        }
    }

    /// What an id of this format looks like, for messages.
    pub fn describe(&self) -> String {
        match self {
            GroupIdFormat::Okta => "an Okta group id (00g and 17 letters or digits)".into(),
            GroupIdFormat::Entra => {
                "an Entra group object id (a GUID, 8-4-4-4-12 hex digits)".into()
            }
            GroupIdFormat::Pattern(re) => format!("a group id matching `{}`", re.as_str()),
        }
    }
}

/// The numbers a security team tunes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tunables {
    pub default_duration: Span,
    pub max_duration: Span,
    pub auto_approve_max_duration: Span,
    pub pending_timeout: Span,
    pub break_glass_cap: Span,
    pub break_glass_justification_window: Span,
    pub vendor_retention: Span,
    pub inactivity_threshold: Span,
    pub role_change_transition: Span,
    pub archive_retention: Span,
    pub contract_grace: Span,
}

/// Risk thresholds: a score below `medium` is low, below `high` is medium, else high.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RiskThresholds {
    pub medium: u8,
    pub high: u8,
}

/// Working hours in UTC; requests outside them score an off-hours factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BusinessHours {
    pub start_hour_utc: u8,
    pub end_hour_utc: u8,
    pub weekdays_only: bool,
}

/// A validated catalog.
#[derive(Clone, Debug, Serialize)]
pub struct Catalog {
    hash: PolicyHash,
    tunables: Tunables,
    thresholds: RiskThresholds,
    business_hours: BusinessHours,
    groups: BTreeMap<String, ApproverGroup>,
    roles: BTreeMap<String, Role>,
    resources: BTreeMap<String, Resource>,
    /// IAM users the inactivity check never suspends, with why.
    inactivity_exemptions: BTreeMap<String, String>,
    /// The networks vendors may reach AWS from (CIDR blocks); none: no vendor access.
    vendor_source_ips: Vec<String>,
}

/// One problem in a catalog file, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyIssue {
    /// 1-based line; 0 when the parser could not tell.
    pub line: u64,
    /// 1-based column; 0 when the parser could not tell.
    pub column: u64,
    /// Dotted path to the offending value, e.g. `resources[2].owner_group`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for PolicyIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy catalog {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name}: {} problem(s):\n{}", issues.len(), render(source_name, issues))]
    Invalid {
        source_name: String,
        issues: Vec<PolicyIssue>,
    },
}

fn render(source_name: &str, issues: &[PolicyIssue]) -> String {
    issues
        .iter()
        .map(|issue| format!("  {source_name}:{issue}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl PolicyError {
    /// The located problems (empty for read errors).
    pub fn issues(&self) -> &[PolicyIssue] {
        match self {
            PolicyError::Read { .. } => &[],
            PolicyError::Invalid { issues, .. } => issues,
        }
    }
}

mod raw;
mod validate;

use raw::RawCatalog;
use validate::{Issues, first_line};

fn invalid(source_name: &str, line: u64, column: u64, message: String) -> PolicyError {
    PolicyError::Invalid {
        source_name: source_name.to_owned(),
        issues: vec![PolicyIssue {
            line,
            column,
            path: String::new(),
            message,
        }],
    }
}

impl Catalog {
    /// Reads and validates a catalog file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Validates catalog text; `source_name` names it in error messages.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, PolicyError> {
        let raw = Self::read_yaml(text, source_name)?;
        Self::validated(raw, PolicyHash::of(text.as_bytes()), source_name)
    }

    /// The compiled form of catalog text, for a binary to embed: the file as it
    /// was read, as JSON, with the text's hash. Reading it back
    /// ([`Catalog::from_compiled`]) skips the YAML parser, most of a Lambda
    /// function's start-up otherwise, and validates again. Refuses what
    /// [`Catalog::parse`] refuses.
    pub fn compile(text: &str, source_name: &str) -> Result<String, PolicyError> {
        let raw = Self::read_yaml(text, source_name)?;
        let hash = PolicyHash::of(text.as_bytes());
        let compiled = serde_json::to_string(&raw::Compiled {
            hash: hash.clone(),
            catalog: &raw,
        })
        .map_err(|err| invalid(source_name, 0, 0, format!("cannot compile: {err}")))?;
        Self::validated(raw, hash, source_name)?;
        Ok(compiled)
    }

    /// A catalog from [`Catalog::compile`]'s output, validated as [`Catalog::parse`]
    /// validates; its hash is that of the text it was compiled from.
    pub fn from_compiled(compiled: &str, source_name: &str) -> Result<Self, PolicyError> {
        let read: raw::Compiled<RawCatalog> = serde_json::from_str(compiled).map_err(|err| {
            invalid(
                source_name,
                err.line() as u64,
                err.column() as u64,
                format!("compiled catalog: {err}"),
            )
        })?;
        Self::validated(read.catalog, read.hash, source_name)
    }

    fn read_yaml(text: &str, source_name: &str) -> Result<RawCatalog, PolicyError> {
        serde_saphyr::from_str(text).map_err(|err| {
            let (line, column) = err
                .location()
                .map(|loc| (loc.line(), loc.column()))
                .unwrap_or((0, 0));
            invalid(source_name, line, column, first_line(&err.to_string()))
        })
    }

    fn validated(
        raw: RawCatalog,
        hash: PolicyHash,
        source_name: &str,
    ) -> Result<Self, PolicyError> {
        let mut issues = Issues(Vec::new());
        let catalog = Self::validate(raw, hash, &mut issues);
        if issues.0.is_empty() {
            Ok(catalog)
        } else {
            issues.0.sort_by_key(|issue| (issue.line, issue.column));
            Err(PolicyError::Invalid {
                source_name: source_name.to_owned(),
                issues: issues.0,
            })
        }
    }

    /// Why the inactivity check leaves this user alone, if it does.
    /// The networks vendors may reach AWS from (`vendor_access.source_ips`, CIDR).
    /// Empty when the catalog allows no vendor access.
    pub fn vendor_source_ips(&self) -> &[String] {
        &self.vendor_source_ips
    }

    pub fn inactivity_exemption(&self, user: &str) -> Option<&str> {
        self.inactivity_exemptions.get(user).map(String::as_str)
    }

    /// The content hash stamped on audit events.
    pub fn hash(&self) -> &PolicyHash {
        &self.hash
    }

    pub fn tunables(&self) -> &Tunables {
        &self.tunables
    }

    pub fn thresholds(&self) -> RiskThresholds {
        self.thresholds
    }

    pub fn business_hours(&self) -> BusinessHours {
        self.business_hours
    }

    /// A resource by id.
    pub fn resource(&self, id: &str) -> Option<&Resource> {
        self.resources.get(id)
    }

    /// All resources, ordered by id.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.resources.values()
    }

    /// A job role by name.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// All job roles, ordered by name.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// All approver groups, ordered by name.
    pub fn groups(&self) -> impl Iterator<Item = &ApproverGroup> {
        self.groups.values()
    }

    /// The approver groups a groups claim makes someone a member of: exact matches
    /// of identity-provider group ids only.
    pub fn approver_groups_for<'a>(
        &self,
        idp_groups: impl IntoIterator<Item = &'a str>,
    ) -> BTreeSet<String> {
        let claimed: BTreeSet<&str> = idp_groups.into_iter().collect();
        self.groups
            .values()
            .filter(|g| g.idp_groups.iter().any(|id| claimed.contains(id.as_str())))
            .map(|g| g.name.clone())
            .collect()
    }

    /// Every group name that appears in any approval rule.
    pub fn approver_group_names(&self) -> BTreeSet<&str> {
        self.groups.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests;
