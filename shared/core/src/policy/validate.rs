//! Validation: from the raw file to a [`Catalog`] that is valid by construction,
//! collecting every problem with its place in the file.

use std::collections::BTreeMap;

use serde_saphyr::Spanned;

use super::raw::*;
use super::*;
use crate::duration::Span;

/// Collects issues while validating.
pub(super) struct Issues(pub(super) Vec<PolicyIssue>);

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

pub(super) fn is_slug(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

pub(super) fn is_iam_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

/// Action families that let the holder raise their own (or anyone's) privileges,
/// keep access past its end, or escape a revocation, each with why. They are glob
/// patterns matched by overlap: a catalog action escalates when some action name
/// fits both it and a family (`iam:Delete*` overlaps `iam:Delete*Policy`, `*:Put*`
/// overlaps `*:Put*Policy`).
pub(super) const ESCALATING_ACTIONS: &[(&str, &str)] = &[
    // Permissions of users, groups and roles, and their guardrails.
    ("iam:Put*", "changes IAM permissions"),
    ("iam:Attach*", "changes IAM permissions"),
    ("iam:Detach*", "removes IAM guardrails"),
    ("iam:Delete*Policy", "removes IAM guardrails"),
    ("iam:Delete*PermissionsBoundary", "removes IAM guardrails"),
    ("iam:DeletePolicyVersion", "removes IAM guardrails"),
    ("iam:CreatePolicy*", "changes IAM permissions"),
    ("iam:SetDefaultPolicyVersion", "changes IAM permissions"),
    ("iam:AddUserToGroup", "changes IAM permissions"),
    ("iam:PassRole", "hands a role to a service"),
    (
        "iam:UpdateAssumeRolePolicy",
        "changes who may assume a role",
    ),
    // Identities and long-lived credentials.
    ("iam:CreateUser", "creates identities"),
    ("iam:CreateRole", "creates identities"),
    ("iam:CreateGroup", "creates identities"),
    ("iam:CreateAccessKey", "creates long-lived credentials"),
    ("iam:CreateLoginProfile", "creates long-lived credentials"),
    (
        "iam:CreateServiceSpecificCredential",
        "creates long-lived credentials",
    ),
    (
        "iam:ResetServiceSpecificCredential",
        "creates long-lived credentials",
    ),
    ("iam:Update*", "renames identities or revives credentials"),
    ("iam:Upload*", "creates long-lived credentials"),
    ("iam:Tag*", "changes the tags Lapse's guardrails key on"),
    ("iam:Untag*", "changes the tags Lapse's guardrails key on"),
    // The organization.
    ("organizations:CreateAccount", "changes the organization"),
    ("organizations:AttachPolicy", "changes the organization"),
    ("organizations:DetachPolicy", "changes the organization"),
    (
        "organizations:LeaveOrganization",
        "changes the organization",
    ),
    ("organizations:UpdatePolicy", "changes the organization"),
    ("organizations:DeletePolicy", "changes the organization"),
    // Running code as a role without iam:PassRole.
    (
        "lambda:UpdateFunctionCode",
        "runs code as a function's role",
    ),
    (
        "lambda:UpdateFunctionConfiguration",
        "runs code as a function's role",
    ),
    ("lambda:CreateFunction", "runs code as a role"),
    ("ssm:SendCommand", "runs commands as an instance's role"),
    ("ssm:StartSession", "runs commands as an instance's role"),
    ("ssm:StartAutomationExecution", "runs automation as a role"),
    ("cloudformation:CreateStack", "acts as a stack's role"),
    ("cloudformation:UpdateStack", "acts as a stack's role"),
    ("cloudformation:CreateChangeSet", "acts as a stack's role"),
    ("cloudformation:ExecuteChangeSet", "acts as a stack's role"),
    ("codebuild:StartBuild*", "runs code as a project's role"),
    ("codebuild:UpdateProject", "runs code as a project's role"),
    // Resource policies: access that outlives the grant.
    (
        "*:Put*Policy",
        "writes a resource policy that outlives the grant",
    ),
    (
        "*:AddPermission",
        "writes a resource policy that outlives the grant",
    ),
    (
        "kms:CreateGrant",
        "writes a key grant that outlives the grant",
    ),
    (
        "rds:ModifyDB*",
        "resets a master password or shares snapshots",
    ),
    // Identity providers and API Gateway (Lapse's own authorizer among them).
    ("identitystore:Create*", "changes identity-provider groups"),
    ("identitystore:Update*", "changes identity-provider groups"),
    ("identitystore:Delete*", "changes identity-provider groups"),
    ("sso:*", "changes IAM Identity Center assignments"),
    (
        "sso-directory:*",
        "changes IAM Identity Center users and groups",
    ),
    (
        "cognito-idp:Admin*",
        "changes identity-provider users and groups",
    ),
    ("apigateway:POST", "changes APIs and their authorizers"),
    ("apigateway:PUT", "changes APIs and their authorizers"),
    ("apigateway:PATCH", "changes APIs and their authorizers"),
    ("apigateway:DELETE", "changes APIs and their authorizers"),
];

/// Do two IAM wildcard patterns (`*` any run, `?` one character) match some
/// common text? Case-insensitive, as IAM action names are.
pub(super) fn globs_overlap(a: &str, b: &str) -> bool {
    fn go(a: &[u8], b: &[u8]) -> bool {
        match (a.first(), b.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&a[1..], b) || (!b.is_empty() && go(a, &b[1..])),
            (_, Some(b'*')) => go(a, &b[1..]) || (!a.is_empty() && go(&a[1..], b)),
            (Some(x), Some(y)) => {
                (*x == b'?' || *y == b'?' || x.eq_ignore_ascii_case(y)) && go(&a[1..], &b[1..])
            }
            _ => false,
        }
    }
    go(a.as_bytes(), b.as_bytes())
}

/// Case-insensitive IAM wildcard match (`*` any run, `?` one character).
pub(super) fn glob_matches(pattern: &str, text: &str) -> bool {
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

/// Why an allowed `action` escalates privileges, if it does: it matches an
/// escalating action (wildcards included: `iam:P*` matches `iam:PutUserPolicy`), or
/// it assumes a role (`sts:AssumeRole*`): a role session is a second identity whose
/// permissions are the role's, not the grant's, and it outlives the grant.
pub(super) fn escalates<'a>(
    action: &str,
    mut resources: impl Iterator<Item = &'a str>,
) -> Option<&'static str> {
    if action == "*" {
        return Some("every action");
    }
    if is_assume_role(action) {
        return Some("assumes a role, whose sessions outlive the grant");
    }
    // Service and action name apart: a `*` stands within one of them.
    let overlaps = |family: &str| match (action.split_once(':'), family.split_once(':')) {
        (Some((service, name)), Some((family_service, family_name))) => {
            globs_overlap(service, family_service) && globs_overlap(name, family_name)
        }
        _ => globs_overlap(action, family),
    };
    if let Some((_, why)) = ESCALATING_ACTIONS
        .iter()
        .find(|(family, _)| overlaps(family))
    {
        return Some(why);
    }
    // Reading every secret, or Lapse's own (checked-out credentials, a vendor's
    // first password): a credential checkout is the way to read one of those.
    if overlaps("secretsmanager:GetSecretValue") && resources.any(may_name_lapse_secret) {
        return Some("reads Lapse's secrets (or every secret)");
    }
    None
}

/// Could this resource pattern name a secret under `lapse/`? Compared field by
/// field (`arn:partition:service:region:account:resource`), so a `*` in one field
/// does not reach into the next; a pattern of fewer fields is compared whole.
fn may_name_lapse_secret(resource: &str) -> bool {
    const LAPSE: [&str; 6] = ["arn", "*", "secretsmanager", "*", "*", "secret:lapse/*"];
    let fields: Vec<&str> = resource.splitn(6, ':').collect();
    match fields.as_slice() {
        [_, _, _, _, _, _] => fields
            .iter()
            .zip(LAPSE)
            .all(|(field, lapse)| globs_overlap(field, lapse)),
        _ => globs_overlap(resource, "arn:*:secretsmanager:*:*:secret:lapse/*"),
    }
}

pub(super) fn is_iam_action(text: &str) -> bool {
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
    pub(super) fn validate(raw: RawCatalog, hash: PolicyHash, issues: &mut Issues) -> Catalog {
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

        let format = match &raw.identity_provider {
            None => {
                issues.at(
                    &raw.approver_groups,
                    "identity_provider",
                    "declare the identity provider whose group ids idp_groups holds: identity_provider: {group_ids: okta | entra | pattern} (with pattern: a regex the whole id matches)",
                );
                None
            }
            Some(idp) => match idp.group_ids.value.as_str() {
                "okta" => Some(super::GroupIdFormat::Okta),
                "entra" => Some(super::GroupIdFormat::Entra),
                "pattern" => match &idp.pattern {
                    Some(p) => match regex_lite::Regex::new(&format!("^(?:{})$", p.value)) {
                        Ok(re) => Some(super::GroupIdFormat::Pattern(re)),
                        Err(e) => {
                            issues.at(
                                p,
                                "identity_provider.pattern",
                                format!("not a regular expression: {e}"),
                            );
                            None
                        }
                    },
                    None => {
                        issues.at(
                            &idp.group_ids,
                            "identity_provider.pattern",
                            "group_ids: pattern needs a pattern the whole id matches",
                        );
                        None
                    }
                },
                other => {
                    issues.at(
                        &idp.group_ids,
                        "identity_provider.group_ids",
                        format!("`{other}` is not okta, entra or pattern"),
                    );
                    None
                }
            },
        };
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
                } else if let Some(format) = format.as_ref().filter(|f| !f.matches(&id.value)) {
                    issues.at(
                        id,
                        path,
                        format!(
                            "`{}` is not {} (use the immutable id, not the display name)",
                            id.value,
                            format.describe()
                        ),
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
            let mut checkout = None;
            let grant = match &res.grant.value {
                RawGrant::Credential(credential) => {
                    let arn = &credential.secret_arn;
                    let name = arn.value.split(":secret:").nth(1).unwrap_or_default();
                    let well_formed = arn.value.starts_with("arn:")
                        && arn.value.split(':').nth(2) == Some("secretsmanager")
                        && !name.is_empty();
                    if !well_formed {
                        issues.at(
                            arn,
                            at("grant.credential.secret_arn"),
                            format!("`{}` is not a Secrets Manager secret ARN", arn.value),
                        );
                    } else if !name.starts_with(CHECKOUT_SECRET_PREFIX) {
                        issues.at(
                            arn,
                            at("grant.credential.secret_arn"),
                            format!(
                                "checked-out secrets are named `{CHECKOUT_SECRET_PREFIX}...`; Lapse rotates those alone"
                            ),
                        );
                    }
                    let rotation_function = match &credential.rotation_function {
                        None => {
                            issues.at(
                                &res.grant,
                                at("grant.credential"),
                                "needs `rotation_function`: the Lambda that changes what the database accepts. \
                                 Without one, check-in could only replace the stored copy while the checked-out value keeps working",
                            );
                            String::new()
                        }
                        Some(function) => {
                            if !is_lambda_function_arn(&function.value) {
                                issues.at(
                                    function,
                                    at("grant.credential.rotation_function"),
                                    format!(
                                        "`{}` is not a Lambda function ARN (arn:aws:lambda:<region>:<account>:function:<name>)",
                                        function.value
                                    ),
                                );
                            }
                            function.value.clone()
                        }
                    };
                    let spec = Checkout {
                        secret_arn: arn.value.clone(),
                        rotation_function,
                    };
                    let grant = spec.grant();
                    checkout = Some(spec);
                    grant
                }
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
                            if st.actions.iter().any(|a| is_assume_role(&a.value)) {
                                for (r, arn) in st.resources.iter().enumerate() {
                                    if role_name(&arn.value).is_none() {
                                        issues.at(
                                            arn,
                                            format!("{spath}.resources[{r}]"),
                                            format!(
                                                "a grant that assumes roles names each role's ARN exactly \
                                                 (`arn:aws:iam::<account>:role/<name>`, no wildcard), not `{}`: \
                                                 Lapse checks each role is tagged `lapse:managed` and denies \
                                                 the grant's sessions of it when the grant ends",
                                                arn.value
                                            ),
                                        );
                                    }
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
                    // A group's policies live in IAM, out of this check's sight: a
                    // group grant is treated as escalating and must say why it is not
                    // (or why it may be).
                    escalations.push((group, "a group's policies are not visible to this check"));
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
            let break_glass = res.break_glass.as_ref().map(|bg| {
                let high_risk = if escalation_reason.is_some() {
                    Some("allows privilege escalation")
                } else if checkout.is_some() {
                    Some("checks out a credential")
                } else {
                    None
                };
                break_glass_policy(bg, high_risk, &groups, &at("break_glass"), issues)
            });
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
                    checkout,
                    dual_approval_groups,
                    escalation_reason,
                    break_glass,
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

        let mut vendor_source_ips = Vec::new();
        if let Some(vendor) = &raw.vendor_access {
            if vendor.source_ips.value.is_empty() {
                issues.at(
                    &vendor.source_ips,
                    "vendor_access.source_ips",
                    "list the networks vendors connect from, or leave vendor_access out",
                );
            }
            for (i, cidr) in vendor.source_ips.value.iter().enumerate() {
                if !is_cidr(&cidr.value) {
                    issues.at(
                        cidr,
                        format!("vendor_access.source_ips[{i}]"),
                        format!("`{}` is not a CIDR block like 203.0.113.0/24", cidr.value),
                    );
                }
                vendor_source_ips.push(cidr.value.clone());
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
            vendor_source_ips,
        }
    }
}

/// `address/prefix`, IPv4 or IPv6, the prefix within the address's width.
fn is_cidr(text: &str) -> bool {
    let Some((address, prefix)) = text.split_once('/') else {
        return false;
    };
    let Ok(prefix) = prefix.parse::<u8>() else {
        return false;
    };
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => prefix <= 32,
        Ok(std::net::IpAddr::V6(_)) => prefix <= 128,
        Err(_) => false,
    }
}

pub(super) fn check_dual(
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

/// A resource's `break_glass` section: eligible groups that exist, and a reason
/// exactly when the grant is high risk (`high_risk` says why it is).
fn break_glass_policy(
    raw: &Spanned<RawBreakGlass>,
    high_risk: Option<&str>,
    groups: &BTreeMap<String, ApproverGroup>,
    path: &str,
    issues: &mut Issues,
) -> BreakGlassPolicy {
    let list = &raw.value.eligible_groups;
    if list.value.is_empty() {
        issues.at(
            list,
            format!("{path}.eligible_groups"),
            "name at least one group whose members may break glass",
        );
    }
    for (i, name) in list.value.iter().enumerate() {
        if !groups.contains_key(&name.value) {
            issues.at(
                name,
                format!("{path}.eligible_groups[{i}]"),
                format!(
                    "unknown group `{}` (known: {})",
                    name.value,
                    groups.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    let reason = raw
        .value
        .high_risk_reason
        .as_ref()
        .map(|r| (r, r.value.trim().to_owned()));
    match (high_risk, &reason) {
        (Some(why), None) => issues.at(
            raw,
            path.to_owned(),
            format!(
                "this grant {why}: break-glass on it must say why with `high_risk_reason`, or be removed"
            ),
        ),
        (Some(_), Some((spanned, text))) if text.is_empty() => issues.at(
            *spanned,
            format!("{path}.high_risk_reason"),
            "say why break-glass may take this grant",
        ),
        (None, Some((spanned, _))) => issues.at(
            *spanned,
            format!("{path}.high_risk_reason"),
            "the grant neither escalates privileges nor checks out a credential: remove it",
        ),
        _ => {}
    }
    BreakGlassPolicy {
        eligible_groups: list.value.iter().map(|g| g.value.clone()).collect(),
        high_risk_reason: reason.map(|(_, text)| text),
    }
}

/// A duration from the catalog; a bad one is an issue (at its place in the file)
/// and `None`, so every bad duration is reported in one run.
pub(super) fn duration(raw: &Spanned<String>, path: &str, issues: &mut Issues) -> Option<Span> {
    match raw.value.parse::<Span>() {
        Ok(span) => Some(span),
        Err(err) => {
            issues.at(raw, path, err.to_string());
            None
        }
    }
}

pub(super) fn validate_tunables(raw: &RawTunables, issues: &mut Issues) -> Tunables {
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
        // An invalid maximum is reported once, at its own line: nothing is held to
        // a stand-in for it (each resource's maximum would be "exceeding" it).
        max_duration: max_duration.unwrap_or_else(|| {
            Span::from_seconds(10 * 365 * 86_400).expect("ten years is a valid span")
        }),
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
pub(super) fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    let line = line.strip_prefix("error:").map_or(line, str::trim_start);
    let line = match line
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((location, rest)) if location.contains("column") => rest,
        _ => line,
    };
    in_words(line)
}

/// The parser's wording, said for a person editing the catalog (no advice about
/// the parser's own options).
fn in_words(message: &str) -> String {
    if let Some(key) = message.strip_prefix("duplicate mapping key: ") {
        let key = key.split_once(", set ").map_or(key, |(key, _)| key).trim();
        return format!("`{key}` appears twice here: keep one");
    }
    message.to_owned()
}

/// `arn:<partition>:lambda:<region>:<account>:function:<name>`, one exact function
/// (no wildcard, no alias or version: Secrets Manager calls the function itself).
fn is_lambda_function_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    parts.len() == 7
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "lambda"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5] == "function"
        && !parts[6].is_empty()
        && parts[6]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
