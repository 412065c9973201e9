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
use serde_saphyr::Spanned;
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

/// How much harm misuse of a resource could do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    Low,
    Moderate,
    High,
    Critical,
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
    /// Why this grant may allow privilege escalation (`allows_escalation.reason`);
    /// such a grant always needs dual approval. `None`: the grant escalates nothing
    /// (the catalog refuses one that does without saying so).
    pub escalation_reason: Option<String>,
}

impl Resource {
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

// ---- Raw, span-carrying shape of the file ------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    version: Spanned<u32>,
    tunables: RawTunables,
    risk: RawRisk,
    routing: RawRouting,
    approver_groups: Spanned<Vec<RawGroup>>,
    #[serde(default)]
    roles: Vec<RawRole>,
    resources: Spanned<Vec<RawResource>>,
    #[serde(default)]
    inactivity_exemptions: Vec<RawExemption>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExemption {
    user: Spanned<String>,
    reason: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    groups: Vec<Spanned<String>>,
    #[serde(default)]
    managed_policies: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTunables {
    default_duration: Spanned<String>,
    max_duration: Spanned<String>,
    auto_approve_max_duration: Spanned<String>,
    pending_timeout: Spanned<String>,
    break_glass_cap: Spanned<String>,
    break_glass_justification_window: Spanned<String>,
    vendor_retention: Spanned<String>,
    inactivity_threshold: Spanned<String>,
    role_change_transition: Spanned<String>,
    archive_retention: Spanned<String>,
    contract_grace: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRisk {
    thresholds: RawThresholds,
    business_hours: RawBusinessHours,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    medium: Spanned<u8>,
    high: Spanned<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBusinessHours {
    start_hour_utc: Spanned<u8>,
    end_hour_utc: Spanned<u8>,
    weekdays_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouting {
    dual_approval_groups: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    description: String,
    idp_groups: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    id: Spanned<String>,
    description: String,
    owner_group: Spanned<String>,
    environment: Environment,
    sensitivity: Sensitivity,
    #[serde(default)]
    privileged: bool,
    max_duration: Option<Spanned<String>>,
    grant: Spanned<RawGrant>,
    dual_approval_groups: Option<Spanned<Vec<Spanned<String>>>>,
    allows_escalation: Option<Spanned<RawEscalation>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    reason: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum RawGrant {
    InlinePolicy(Vec<Spanned<RawStatement>>),
    Group(Spanned<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatement {
    effect: Effect,
    actions: Vec<Spanned<String>>,
    resources: Vec<Spanned<String>>,
}

/// Collects issues while validating.
struct Issues(Vec<PolicyIssue>);

impl Issues {
    fn at<T>(&mut self, spanned: &Spanned<T>, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(PolicyIssue {
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
            path: path.into(),
            message: message.into(),
        });
    }
}

fn is_slug(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

fn is_iam_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

/// Actions that let the holder raise their own (or anyone's) privileges.
const ESCALATING_ACTIONS: &[&str] = &[
    "iam:PutUserPolicy",
    "iam:PutRolePolicy",
    "iam:PutGroupPolicy",
    "iam:AttachUserPolicy",
    "iam:AttachRolePolicy",
    "iam:AttachGroupPolicy",
    "iam:CreateUser",
    "iam:CreateRole",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:CreatePolicy",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:PassRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:AddUserToGroup",
    "iam:PutUserPermissionsBoundary",
    "iam:DeleteUserPermissionsBoundary",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "organizations:CreateAccount",
    "organizations:AttachPolicy",
    "organizations:DetachPolicy",
    "organizations:LeaveOrganization",
    "organizations:UpdatePolicy",
];

/// Case-insensitive IAM wildcard match (`*` any run, `?` one character).
fn glob_matches(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// Why an allowed `action` on `resources` escalates privileges, if it does: it
/// matches an escalating action (wildcards included: `iam:P*` matches
/// `iam:PutUserPolicy`), or it is `sts:AssumeRole` on any role.
fn escalates<'a>(action: &str, resources: impl Iterator<Item = &'a str>) -> Option<&'static str> {
    if action == "*" {
        return Some("every action");
    }
    if let Some(hit) = ESCALATING_ACTIONS.iter().find(|a| glob_matches(action, a)) {
        return Some(if hit.starts_with("organizations:") {
            "changes the organization"
        } else {
            "changes IAM permissions"
        });
    }
    let any_role = |r: &str| r == "*" || r.ends_with(":role/*") || r.ends_with(":*");
    if glob_matches(action, "sts:AssumeRole") && resources.into_iter().any(any_role) {
        return Some("assumes any role");
    }
    None
}

fn is_iam_action(text: &str) -> bool {
    match text.split_once(':') {
        Some((service, action)) => {
            !service.is_empty()
                && service
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !action.is_empty()
                && action
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '*')
        }
        None => text == "*",
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
        let invalid = |issues| PolicyError::Invalid {
            source_name: source_name.to_owned(),
            issues,
        };
        let raw: RawCatalog = serde_saphyr::from_str(text).map_err(|err| {
            let (line, column) = err
                .location()
                .map(|loc| (loc.line(), loc.column()))
                .unwrap_or((0, 0));
            invalid(vec![PolicyIssue {
                line,
                column,
                path: String::new(),
                message: first_line(&err.to_string()),
            }])
        })?;
        let mut issues = Issues(Vec::new());
        let catalog = Self::validate(raw, PolicyHash::of(text.as_bytes()), &mut issues);
        if issues.0.is_empty() {
            Ok(catalog)
        } else {
            issues.0.sort_by_key(|issue| (issue.line, issue.column));
            Err(invalid(issues.0))
        }
    }

    fn validate(raw: RawCatalog, hash: PolicyHash, issues: &mut Issues) -> Catalog {
        if raw.version.value != 1 {
            issues.at(
                &raw.version,
                "version",
                "only catalog version 1 is supported",
            );
        }
        let tunables = validate_tunables(&raw.tunables, issues);
        let thresholds = RiskThresholds {
            medium: raw.risk.thresholds.medium.value,
            high: raw.risk.thresholds.high.value,
        };
        if thresholds.medium == 0 || thresholds.medium >= thresholds.high {
            issues.at(
                &raw.risk.thresholds.medium,
                "risk.thresholds.medium",
                "must be above 0 and below risk.thresholds.high",
            );
        }
        if thresholds.high > 100 {
            issues.at(
                &raw.risk.thresholds.high,
                "risk.thresholds.high",
                "scores run from 0 to 100",
            );
        }
        let hours = &raw.risk.business_hours;
        let business_hours = BusinessHours {
            start_hour_utc: hours.start_hour_utc.value,
            end_hour_utc: hours.end_hour_utc.value,
            weekdays_only: hours.weekdays_only,
        };
        if business_hours.end_hour_utc > 24 {
            issues.at(
                &hours.end_hour_utc,
                "risk.business_hours.end_hour_utc",
                "must be at most 24",
            );
        }
        if business_hours.start_hour_utc >= business_hours.end_hour_utc {
            issues.at(
                &hours.start_hour_utc,
                "risk.business_hours.start_hour_utc",
                "must be before end_hour_utc",
            );
        }

        let mut groups = BTreeMap::new();
        let mut idp_owner: BTreeMap<&str, &str> = BTreeMap::new();
        for (i, group) in raw.approver_groups.value.iter().enumerate() {
            if group.idp_groups.value.is_empty() {
                issues.at(
                    &group.idp_groups,
                    format!("approver_groups[{i}].idp_groups"),
                    "list the identity provider group ids whose members approve as this group",
                );
            }
            for (j, id) in group.idp_groups.value.iter().enumerate() {
                let path = format!("approver_groups[{i}].idp_groups[{j}]");
                if !is_idp_group_id(&id.value) {
                    issues.at(
                        id,
                        path,
                        "an identity provider group id has no whitespace, commas, brackets or quotes (use the immutable id, not the display name)",
                    );
                } else if let Some(other) = idp_owner.insert(&id.value, &group.name.value) {
                    issues.at(
                        id,
                        path,
                        format!("`{}` already maps to approver group `{other}`", id.value),
                    );
                }
            }
            let path = format!("approver_groups[{i}].name");
            if !is_slug(&group.name.value) {
                issues.at(
                    &group.name,
                    path,
                    "group names use lowercase letters, digits and `-`",
                );
            } else if groups.contains_key(&group.name.value) {
                issues.at(
                    &group.name,
                    path,
                    format!("group `{}` is defined twice", group.name.value),
                );
            } else {
                groups.insert(
                    group.name.value.clone(),
                    ApproverGroup {
                        name: group.name.value.clone(),
                        description: group.description.clone(),
                        idp_groups: group
                            .idp_groups
                            .value
                            .iter()
                            .map(|g| g.value.clone())
                            .collect(),
                    },
                );
            }
        }
        if groups.is_empty() {
            issues.at(
                &raw.approver_groups,
                "approver_groups",
                "define at least one approver group",
            );
        }
        let known = |name: &str| groups.contains_key(name);
        let known_list = || groups.keys().cloned().collect::<Vec<_>>().join(", ");
        let default_dual = check_dual(
            &groups,
            &raw.routing.dual_approval_groups,
            "routing.dual_approval_groups",
            issues,
        );

        let mut resources = BTreeMap::new();
        for (i, res) in raw.resources.value.iter().enumerate() {
            let at = |field: &str| format!("resources[{i}].{field}");
            let id = &res.id.value;
            if !is_slug(id) || id.len() > MAX_RESOURCE_ID_LEN {
                issues.at(
                    &res.id,
                    at("id"),
                    format!("resource ids use lowercase letters, digits and `-`, at most {MAX_RESOURCE_ID_LEN} characters"),
                );
            } else if resources.contains_key(id) {
                issues.at(
                    &res.id,
                    at("id"),
                    format!("resource `{id}` is defined twice"),
                );
            }
            if !known(&res.owner_group.value) {
                issues.at(
                    &res.owner_group,
                    at("owner_group"),
                    format!(
                        "unknown approver group `{}` (known: {})",
                        res.owner_group.value,
                        known_list()
                    ),
                );
            }
            let max_duration = match &res.max_duration {
                Some(raw) => match duration(raw, &at("max_duration"), issues) {
                    Some(max) if max > tunables.max_duration => {
                        issues.at(
                            raw,
                            at("max_duration"),
                            format!("exceeds tunables.max_duration ({})", tunables.max_duration),
                        );
                        max
                    }
                    Some(max) => max,
                    None => tunables.max_duration,
                },
                None => tunables.max_duration,
            };
            let mut escalations: Vec<(&Spanned<String>, &'static str)> = Vec::new();
            let grant = match &res.grant.value {
                RawGrant::InlinePolicy(statements) => {
                    if statements.is_empty() {
                        issues.at(
                            &res.grant,
                            at("grant.inline_policy"),
                            "needs at least one statement",
                        );
                    }
                    let mut out = Vec::new();
                    for (s, statement) in statements.iter().enumerate() {
                        let spath = at(&format!("grant.inline_policy[{s}]"));
                        let st = &statement.value;
                        if st.actions.is_empty() {
                            issues.at(
                                statement,
                                format!("{spath}.actions"),
                                "needs at least one action",
                            );
                        }
                        if st.resources.is_empty() {
                            issues.at(
                                statement,
                                format!("{spath}.resources"),
                                "needs at least one resource",
                            );
                        }
                        for (a, action) in st.actions.iter().enumerate() {
                            if !is_iam_action(&action.value) {
                                issues.at(
                                    action,
                                    format!("{spath}.actions[{a}]"),
                                    format!(
                                        "`{}` is not an IAM action like `s3:GetObject`",
                                        action.value
                                    ),
                                );
                            }
                        }
                        for (r, arn) in st.resources.iter().enumerate() {
                            if arn.value != "*" && !arn.value.starts_with("arn:") {
                                issues.at(
                                    arn,
                                    format!("{spath}.resources[{r}]"),
                                    format!("`{}` is neither `*` nor an ARN", arn.value),
                                );
                            }
                        }
                        if st.effect == Effect::Allow {
                            for action in &st.actions {
                                if let Some(why) = escalates(
                                    &action.value,
                                    st.resources.iter().map(|r| r.value.as_str()),
                                ) {
                                    escalations.push((action, why));
                                }
                            }
                        }
                        out.push(Statement {
                            effect: st.effect,
                            actions: st.actions.iter().map(|a| a.value.clone()).collect(),
                            resources: st.resources.iter().map(|r| r.value.clone()).collect(),
                        });
                    }
                    GrantSpec::InlinePolicy(out)
                }
                RawGrant::Group(group) => {
                    if !is_iam_name(&group.value) {
                        issues.at(
                            group,
                            at("grant.group"),
                            format!("`{}` is not a valid IAM group name", group.value),
                        );
                    }
                    GrantSpec::Group(group.value.clone())
                }
            };
            let escalation_reason = match (&res.allows_escalation, escalations.first()) {
                (None, None) => None,
                (None, Some((action, why))) => {
                    issues.at(
                        *action,
                        at("grant"),
                        format!(
                            "`{}` allows privilege escalation ({why}); declare \
                             `allows_escalation: {{reason: ...}}` to grant it (it then \
                             always needs dual approval)",
                            action.value
                        ),
                    );
                    None
                }
                (Some(declared), found) => {
                    let reason = declared.value.reason.value.trim();
                    if reason.is_empty() {
                        issues.at(
                            &declared.value.reason,
                            at("allows_escalation.reason"),
                            "say why this grant may escalate privileges",
                        );
                    }
                    if found.is_none() {
                        issues.at(
                            declared,
                            at("allows_escalation"),
                            "declared, but the grant allows no privilege escalation: remove it",
                        );
                    }
                    Some(reason.to_owned())
                }
            };
            let dual_approval_groups = match &res.dual_approval_groups {
                Some(list) => check_dual(&groups, list, &at("dual_approval_groups"), issues),
                None => default_dual.clone(),
            };
            resources.insert(
                id.clone(),
                Resource {
                    id: id.clone(),
                    description: res.description.clone(),
                    owner_group: res.owner_group.value.clone(),
                    environment: res.environment,
                    sensitivity: res.sensitivity,
                    privileged: res.privileged,
                    max_duration,
                    grant,
                    dual_approval_groups,
                    escalation_reason,
                },
            );
        }
        if raw.resources.value.is_empty() {
            issues.at(&raw.resources, "resources", "define at least one resource");
        }

        let mut roles = BTreeMap::new();
        for (i, role) in raw.roles.iter().enumerate() {
            if !is_slug(&role.name.value) {
                issues.at(
                    &role.name,
                    format!("roles[{i}].name"),
                    "role names use lowercase letters, digits and `-`",
                );
            } else if roles.contains_key(&role.name.value) {
                issues.at(
                    &role.name,
                    format!("roles[{i}].name"),
                    format!("role `{}` is defined twice", role.name.value),
                );
            }
            for (g, group) in role.groups.iter().enumerate() {
                if !is_iam_name(&group.value) {
                    issues.at(
                        group,
                        format!("roles[{i}].groups[{g}]"),
                        format!("`{}` is not a valid IAM group name", group.value),
                    );
                }
            }
            for (p, policy) in role.managed_policies.iter().enumerate() {
                if !policy.value.starts_with("arn:") || !policy.value.contains(":policy/") {
                    issues.at(
                        policy,
                        format!("roles[{i}].managed_policies[{p}]"),
                        format!("`{}` is not a managed policy ARN", policy.value),
                    );
                }
            }
            roles.insert(
                role.name.value.clone(),
                Role {
                    name: role.name.value.clone(),
                    description: role.description.clone(),
                    groups: role.groups.iter().map(|g| g.value.clone()).collect(),
                    managed_policies: role
                        .managed_policies
                        .iter()
                        .map(|p| p.value.clone())
                        .collect(),
                },
            );
        }

        let mut inactivity_exemptions = BTreeMap::new();
        for (i, exemption) in raw.inactivity_exemptions.iter().enumerate() {
            if crate::identity::PrincipalId::new(exemption.user.value.clone()).is_err() {
                issues.at(
                    &exemption.user,
                    format!("inactivity_exemptions[{i}].user"),
                    format!("`{}` is not a valid IAM user name", exemption.user.value),
                );
            } else if exemption.reason.value.trim().is_empty() {
                issues.at(
                    &exemption.reason,
                    format!("inactivity_exemptions[{i}].reason"),
                    "say why this user is exempt (a break-glass account, say)",
                );
            } else if inactivity_exemptions
                .insert(exemption.user.value.clone(), exemption.reason.value.clone())
                .is_some()
            {
                issues.at(
                    &exemption.user,
                    format!("inactivity_exemptions[{i}].user"),
                    format!("`{}` is listed twice", exemption.user.value),
                );
            }
        }

        Catalog {
            hash,
            tunables,
            thresholds,
            business_hours,
            groups,
            roles,
            resources,
            inactivity_exemptions,
        }
    }

    /// Why the inactivity check leaves this user alone, if it does.
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

fn check_dual(
    groups: &BTreeMap<String, ApproverGroup>,
    list: &Spanned<Vec<Spanned<String>>>,
    path: &str,
    issues: &mut Issues,
) -> Vec<String> {
    if list.value.len() < 2 {
        issues.at(
            list,
            path,
            "dual approval needs at least two groups (they may repeat)",
        );
    }
    for (i, name) in list.value.iter().enumerate() {
        if !groups.contains_key(&name.value) {
            issues.at(
                name,
                format!("{path}[{i}]"),
                format!(
                    "unknown approver group `{}` (known: {})",
                    name.value,
                    groups.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    list.value.iter().map(|name| name.value.clone()).collect()
}

/// A duration from the catalog; a bad one is an issue (at its place in the file)
/// and `None`, so every bad duration is reported in one run.
fn duration(raw: &Spanned<String>, path: &str, issues: &mut Issues) -> Option<Span> {
    match raw.value.parse::<Span>() {
        Ok(span) => Some(span),
        Err(err) => {
            issues.at(raw, path, err.to_string());
            None
        }
    }
}

fn validate_tunables(raw: &RawTunables, issues: &mut Issues) -> Tunables {
    let mut read = |spanned: &Spanned<String>, name: &str| {
        duration(spanned, &format!("tunables.{name}"), issues)
    };
    let default_duration = read(&raw.default_duration, "default_duration");
    let max_duration = read(&raw.max_duration, "max_duration");
    let auto_approve_max_duration =
        read(&raw.auto_approve_max_duration, "auto_approve_max_duration");
    let pending_timeout = read(&raw.pending_timeout, "pending_timeout");
    let break_glass_cap = read(&raw.break_glass_cap, "break_glass_cap");
    let break_glass_justification_window = read(
        &raw.break_glass_justification_window,
        "break_glass_justification_window",
    );
    let vendor_retention = read(&raw.vendor_retention, "vendor_retention");
    let inactivity_threshold = read(&raw.inactivity_threshold, "inactivity_threshold");
    let role_change_transition = read(&raw.role_change_transition, "role_change_transition");
    let archive_retention = read(&raw.archive_retention, "archive_retention");
    let contract_grace = read(&raw.contract_grace, "contract_grace");
    // Relations are checked only between durations that parsed (a bad one is
    // reported already); the placeholder never leaves an invalid catalog.
    if let (Some(default), Some(max)) = (default_duration, max_duration)
        && default > max
    {
        issues.at(
            &raw.default_duration,
            "tunables.default_duration",
            "must not exceed tunables.max_duration",
        );
    }
    if let (Some(auto), Some(max)) = (auto_approve_max_duration, max_duration)
        && auto > max
    {
        issues.at(
            &raw.auto_approve_max_duration,
            "tunables.auto_approve_max_duration",
            "must not exceed tunables.max_duration",
        );
    }
    if break_glass_cap.is_some_and(|cap| cap.seconds() > BREAK_GLASS_HARD_CAP_SECONDS) {
        issues.at(
            &raw.break_glass_cap,
            "tunables.break_glass_cap",
            "break-glass is capped at 2h by design",
        );
    }
    let placeholder = Span::from_seconds(3600).expect("one hour is a valid span");
    Tunables {
        default_duration: default_duration.unwrap_or(placeholder),
        max_duration: max_duration.unwrap_or(placeholder),
        auto_approve_max_duration: auto_approve_max_duration.unwrap_or(placeholder),
        pending_timeout: pending_timeout.unwrap_or(placeholder),
        break_glass_cap: break_glass_cap.unwrap_or(placeholder),
        break_glass_justification_window: break_glass_justification_window.unwrap_or(placeholder),
        vendor_retention: vendor_retention.unwrap_or(placeholder),
        inactivity_threshold: inactivity_threshold.unwrap_or(placeholder),
        role_change_transition: role_change_transition.unwrap_or(placeholder),
        archive_retention: archive_retention.unwrap_or(placeholder),
        contract_grace: contract_grace.unwrap_or(placeholder),
    }
}

/// The parser's message without its own `error: line N column M:` prefix (the
/// location is reported separately) and without any source snippet after it.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    let line = line.strip_prefix("error:").map_or(line, str::trim_start);
    match line
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((location, rest)) if location.contains("column") => rest.to_owned(),
        _ => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = include_str!("../../../infra/policy/catalog.yaml");

    #[test]
    fn shipped_catalog_is_valid() {
        let catalog = Catalog::parse(CATALOG, "catalog.yaml").unwrap();
        assert!(catalog.resources().count() >= 3);
        assert_eq!(catalog.tunables().default_duration.to_string(), "4h");
        assert_eq!(catalog.tunables().max_duration.to_string(), "8h");
        assert_eq!(catalog.tunables().break_glass_cap.to_string(), "2h");
        assert_eq!(catalog.hash(), &PolicyHash::of(CATALOG.as_bytes()));
        assert_eq!(catalog.hash().as_str().len(), 64);
    }

    #[test]
    fn approvers_come_from_exact_identity_provider_group_ids() {
        let catalog = Catalog::parse(CATALOG, "catalog.yaml").unwrap();
        assert_eq!(
            catalog.approver_groups_for(["idp-grp-managers", "everyone"]),
            BTreeSet::from(["managers".to_owned()])
        );
        // Display names, their words and the approver group's own name grant nothing.
        for claim in [
            "Engineering managers",
            "managers",
            "idp-grp-managers2",
            "IDP-GRP-MANAGERS",
        ] {
            assert!(catalog.approver_groups_for([claim]).is_empty(), "{claim}");
        }
        let spaced = CATALOG.replace("[idp-grp-managers]", "[\"Engineering managers\"]");
        let issues = issues_of(&spaced);
        assert!(
            issues
                .iter()
                .any(|i| i.path == "approver_groups[0].idp_groups[0]"
                    && i.message.contains("no whitespace")),
            "{issues:?}"
        );
        let shared = CATALOG.replace("[idp-grp-security-ops]", "[idp-grp-managers]");
        assert!(issues_of(&shared).iter().any(|i| {
            i.message
                .contains("already maps to approver group `managers`")
        }),);
        let none = CATALOG.replace("[idp-grp-billing-owners]", "[]");
        assert!(
            issues_of(&none)
                .iter()
                .any(|i| i.path == "approver_groups[2].idp_groups"),
        );
    }

    #[test]
    fn inactivity_exemptions_name_valid_users_with_a_reason() {
        let catalog = Catalog::parse(CATALOG, "catalog.yaml").unwrap();
        assert!(catalog.inactivity_exemption("breakglass-admin").is_some());
        assert!(catalog.inactivity_exemption("jdoe").is_none());
        let entry = "  - user: breakglass-admin\n    reason: Break-glass account; unused by design, its use is alarmed separately.\n";
        assert!(CATALOG.contains(entry));
        for (broken, message) in [
            (
                entry.replace("user: breakglass-admin", "user: bad user"),
                "not a valid IAM user name",
            ),
            (
                entry.replace(
                    "reason: Break-glass account; unused by design, its use is alarmed separately.",
                    "reason: \" \"",
                ),
                "say why",
            ),
            (format!("{entry}{entry}"), "listed twice"),
        ] {
            let issues = issues_of(&CATALOG.replace(entry, &broken));
            assert!(
                issues
                    .iter()
                    .any(|i| i.path.starts_with("inactivity_exemptions[")
                        && i.message.contains(message)),
                "{message}: {issues:?}"
            );
        }
    }

    /// The shipped catalog with billing-reports-read granting `actions` on `resource`
    /// (and an optional `allows_escalation` block).
    fn with_billing_grant(actions: &[&str], resource: &str, escalation: Option<&str>) -> String {
        let old = "          actions:\n            - s3:GetObject\n            - s3:ListBucket\n          resources:\n            - arn:aws:s3:::lapse-billing-reports\n            - arn:aws:s3:::lapse-billing-reports/*";
        assert!(CATALOG.contains(old));
        let list: String = actions
            .iter()
            .map(|a| format!("            - \"{a}\"\n"))
            .collect();
        let new =
            format!("          actions:\n{list}          resources:\n            - \"{resource}\"");
        let mut text = CATALOG.replacen(old, &new, 1);
        if let Some(reason) = escalation {
            text = text.replacen(
                "    max_duration: 8h\n    grant:",
                &format!("    max_duration: 8h\n    allows_escalation:\n      reason: \"{reason}\"\n    grant:"),
                1,
            );
        }
        text
    }

    #[test]
    fn escalating_grants_are_refused_unless_declared() {
        for (actions, resource) in [
            (&["iam:PutUserPolicy"][..], "*"),
            (&["iam:*"][..], "*"),
            (&["iam:P*"][..], "arn:aws:iam::123456789012:user/x"),
            (&["iam:passrole"][..], "arn:aws:iam::123456789012:role/x"),
            (&["iam:CreateAccessKey"][..], "*"),
            (&["organizations:*"][..], "*"),
            (&["*"][..], "*"),
            (&["sts:AssumeRole"][..], "*"),
            (&["s3:GetObject", "iam:Attach*"][..], "*"),
        ] {
            let issues = issues_of(&with_billing_grant(actions, resource, None));
            assert_eq!(issues.len(), 1, "{actions:?}: {issues:?}");
            assert!(
                issues[0].message.contains("allows privilege escalation") && issues[0].line > 0,
                "{actions:?}: {issues:?}"
            );
            assert_eq!(issues[0].path, "resources[0].grant");
        }
        // Not escalation: reads, and assuming one named role.
        for (actions, resource) in [
            (&["iam:GetUser", "iam:List*"][..], "*"),
            (
                &["sts:AssumeRole"][..],
                "arn:aws:iam::123456789012:role/reporting",
            ),
        ] {
            Catalog::parse(&with_billing_grant(actions, resource, None), "t.yaml")
                .unwrap_or_else(|e| panic!("{actions:?}: {e}"));
        }
    }

    #[test]
    fn a_declared_escalation_needs_a_reason_and_forces_dual_approval() {
        let text = with_billing_grant(
            &["iam:PutUserPolicy"],
            "*",
            Some("IAM admins rotate break-glass policies"),
        );
        let catalog = Catalog::parse(&text, "t.yaml").unwrap();
        let resource = catalog.resource("billing-reports-read").unwrap();
        assert_eq!(
            resource.escalation_reason.as_deref(),
            Some("IAM admins rotate break-glass policies")
        );
        assert!(resource.is_high_impact());

        let issues = issues_of(&with_billing_grant(&["iam:PutUserPolicy"], "*", Some("  ")));
        assert!(
            issues
                .iter()
                .any(|i| i.path == "resources[0].allows_escalation.reason"),
            "{issues:?}"
        );

        let issues = issues_of(&with_billing_grant(
            &["s3:GetObject"],
            "*",
            Some("just in case"),
        ));
        assert!(
            issues
                .iter()
                .any(|i| i.message.contains("allows no privilege escalation")),
            "{issues:?}"
        );
    }

    fn issues_of(text: &str) -> Vec<PolicyIssue> {
        match Catalog::parse(text, "t.yaml") {
            Err(err) => err.issues().to_vec(),
            Ok(_) => panic!("expected errors"),
        }
    }

    #[test]
    fn syntax_error_is_located() {
        let text = CATALOG.replacen("version: 1", "version: [1", 1);
        let issues = issues_of(&text);
        assert_eq!(issues.len(), 1);
        assert!(issues[0].line >= 1, "{issues:?}");
    }

    #[test]
    fn unknown_field_is_located() {
        let text = CATALOG.replacen("  default_duration:", "  default_durtion:", 1);
        let issues = issues_of(&text);
        let line = CATALOG
            .lines()
            .position(|l| l.starts_with("  default_duration:"))
            .unwrap() as u64
            + 1;
        assert_eq!(issues[0].line, line, "{issues:?}");
        assert!(issues[0].message.contains("default_durtion"), "{issues:?}");
    }

    #[test]
    fn bad_duration_is_located() {
        let text = CATALOG.replacen("max_duration: 8h", "max_duration: 8 hours", 1);
        let issues = issues_of(&text);
        let line = CATALOG
            .lines()
            .position(|l| l.contains("max_duration: 8h"))
            .unwrap() as u64
            + 1;
        assert_eq!(issues[0].line, line, "{issues:?}");
        assert!(issues[0].message.contains("invalid duration"), "{issues:?}");
    }

    #[test]
    fn every_bad_duration_is_reported_in_one_run() {
        let text = CATALOG
            .replacen("  default_duration: 4h", "  default_duration: -1h", 1)
            .replacen(
                "  auto_approve_max_duration: 1h",
                "  auto_approve_max_duration: 1 hour",
                1,
            )
            .replacen("    max_duration: 4h", "    max_duration: 4x", 1)
            .replacen("owner_group: billing-owners", "owner_group: nobody", 1);
        let issues = issues_of(&text);
        let line_of =
            |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() as u64 + 1;
        let found = |needle: &str, message: &str| {
            issues
                .iter()
                .any(|i| i.line == line_of(needle) && i.message.contains(message))
        };
        assert!(found("default_duration: -1h", "negative"), "{issues:?}");
        assert!(
            found("auto_approve_max_duration: 1 hour", "unknown unit"),
            "{issues:?}"
        );
        assert!(found("max_duration: 4x", "unknown unit"), "{issues:?}");
        assert!(
            found("owner_group: nobody", "unknown approver group"),
            "{issues:?}"
        );
        assert_eq!(
            issues.len(),
            4,
            "no knock-on problems from the bad ones: {issues:?}"
        );
    }

    #[test]
    fn every_semantic_error_is_reported_with_its_line() {
        let text = CATALOG
            .replacen("owner_group: billing-owners", "owner_group: nobody", 1)
            .replacen("s3:GetObject", "GetObject", 1)
            .replacen("break_glass_cap: 2h", "break_glass_cap: 3h", 1);
        let issues = issues_of(&text);
        let line_of =
            |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() as u64 + 1;
        let find = |path_part: &str| {
            issues
                .iter()
                .find(|i| i.path.contains(path_part))
                .unwrap_or_else(|| panic!("no issue for {path_part}: {issues:?}"))
        };
        assert_eq!(find("owner_group").line, line_of("owner_group: nobody"));
        assert!(
            find("owner_group")
                .message
                .contains("unknown approver group `nobody`")
        );
        assert_eq!(find("actions[0]").line, line_of("- GetObject"));
        assert_eq!(find("break_glass_cap").line, line_of("break_glass_cap: 3h"));
        assert_eq!(issues.len(), 3, "{issues:?}");
        let rendered = Catalog::parse(&text, "t.yaml").unwrap_err().to_string();
        assert!(
            rendered.contains(&format!("t.yaml:{}:", line_of("owner_group: nobody"))),
            "{rendered}"
        );
    }

    #[test]
    fn duplicate_ids_and_groups_are_rejected() {
        let text = format!(
            "{CATALOG}\n  - id: billing-reports-read\n    description: dup\n    owner_group: billing-owners\n    environment: sandbox\n    sensitivity: low\n    grant:\n      group: x\n"
        );
        let issues = issues_of(&text);
        assert!(
            issues.iter().any(|i| i.message.contains("defined twice")),
            "{issues:?}"
        );
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let err = Catalog::load(Path::new("/nonexistent/catalog.yaml")).unwrap_err();
        assert!(matches!(err, PolicyError::Read { .. }));
        assert!(err.issues().is_empty());
    }
}
