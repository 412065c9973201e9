use super::*;

const CATALOG: &str = include_str!("../../../../infra/policy/catalog.yaml");

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
        catalog.approver_groups_for(["00gmanagers000000008", "everyone"]),
        BTreeSet::from(["managers".to_owned()])
    );
    // Display names, their words and the approver group's own name grant nothing.
    for claim in [
        "Engineering managers",
        "managers",
        "00gmanagers0000000082",
        "00GMANAGERS000000008",
    ] {
        assert!(catalog.approver_groups_for([claim]).is_empty(), "{claim}");
    }
    let spaced = CATALOG.replace("[00gmanagers000000008]", "[\"Engineering managers\"]");
    let issues = issues_of(&spaced);
    assert!(
        issues
            .iter()
            .any(|i| i.path == "approver_groups[0].idp_groups[0]"
                && i.message.contains("no whitespace")),
        "{issues:?}"
    );
    let shared = CATALOG.replace("[00gsecops00000000006]", "[00gmanagers000000008]");
    assert!(issues_of(&shared).iter().any(|i| {
        i.message
            .contains("already maps to approver group `managers`")
    }),);
    let none = CATALOG.replace("[00gbilling0000000007]", "[]");
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
            issues.iter().any(
                |i| i.path.starts_with("inactivity_exemptions[") && i.message.contains(message)
            ),
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
        (&["*"][..], "arn:aws:iam::123456789012:role/reporting"),
        (
            &["sts:AssumeRole"][..],
            "arn:aws:iam::123456789012:role/reporting",
        ),
        (&["sts:*"][..], "arn:aws:iam::123456789012:role/reporting"),
        (
            &["sts:AssumeRoleWithSAML"][..],
            "arn:aws:iam::123456789012:role/reporting",
        ),
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
    // Every action on every resource assumes every role: refused twice over, since
    // no role can be named for the deny at its end.
    let issues = issues_of(&with_billing_grant(&["*"], "*", Some("admins")));
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0].message.contains("names each role's ARN exactly"),
        "{issues:?}"
    );
    // Not escalation: reads, and other STS calls.
    for (actions, resource) in [
        (&["iam:GetUser", "iam:List*"][..], "*"),
        (&["sts:GetCallerIdentity"][..], "*"),
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
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() as u64 + 1;
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
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() as u64 + 1;
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

#[test]
fn a_credential_grant_reads_its_one_secret_and_names_it_under_lapse() {
    let catalog = Catalog::parse(CATALOG, "c.yaml").unwrap();
    let resource = catalog.resource("prod-db-root-credential").unwrap();
    let secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:lapse/prod-db-root";
    assert_eq!(resource.checkout.as_ref().unwrap().secret_arn, secret);
    let GrantSpec::InlinePolicy(statements) = &resource.grant else {
        panic!(
            "a credential grant is an inline policy: {:?}",
            resource.grant
        );
    };
    assert_eq!(statements.len(), 1);
    assert_eq!(
        statements[0].actions,
        [
            "secretsmanager:GetSecretValue",
            "secretsmanager:DescribeSecret"
        ]
    );
    assert_eq!(statements[0].resources, [format!("{secret}-??????")]);
    // Outside `lapse/`, and not a secret at all: refused at the line.
    for (arn, message) in [
        (
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod-db-root",
            "checked-out secrets are named `lapse/...`",
        ),
        (
            "arn:aws:s3:::lapse/prod-db-root",
            "is not a Secrets Manager secret ARN",
        ),
    ] {
        let text = CATALOG.replacen(secret, arn, 1);
        let issues = issues_of(&text);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert!(issues[0].message.contains(message), "{issues:?}");
        assert!(issues[0].path.ends_with("grant.credential.secret_arn"));
    }
}

#[test]
fn a_credential_names_the_function_that_rotates_it() {
    let catalog = Catalog::parse(CATALOG, "c.yaml").unwrap();
    let function = "arn:aws:lambda:us-east-1:123456789012:function:prod-db-root-rotation";
    let checkout = catalog
        .resource("prod-db-root-credential")
        .and_then(|r| r.checkout.clone())
        .unwrap();
    assert_eq!(checkout.rotation_function, function);
    // Without one, the check refuses the resource and says why.
    let line = format!("        rotation_function: {function}\n");
    let without = CATALOG.replacen(&line, "", 1);
    assert_ne!(without, CATALOG);
    let issues = issues_of(&without);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0].message.contains("needs `rotation_function`")
            && issues[0]
                .message
                .contains("the checked-out value keeps working"),
        "{issues:?}"
    );
    assert!(issues[0].line > 0, "{issues:?}");
    // Not one exact function: refused at its line.
    for bad in [
        "arn:aws:lambda:us-east-1:123456789012:function:*",
        "arn:aws:lambda:us-east-1:123456789012:function:rotate:live",
        "arn:aws:iam::123456789012:role/rotate",
        "prod-db-root-rotation",
    ] {
        let text = CATALOG.replacen(function, bad, 1);
        let issues = issues_of(&text);
        assert_eq!(issues.len(), 1, "{bad}: {issues:?}");
        assert!(
            issues[0].message.contains("is not a Lambda function ARN")
                && issues[0]
                    .path
                    .ends_with("grant.credential.rotation_function"),
            "{bad}: {issues:?}"
        );
    }
}

#[test]
fn vendor_networks_are_cidr_blocks() {
    let catalog = Catalog::parse(CATALOG, "c.yaml").unwrap();
    assert_eq!(
        catalog.vendor_source_ips(),
        ["203.0.113.0/24", "198.51.100.0/24"]
    );
    for (bad, why) in [
        ("203.0.113.0/33", "is not a CIDR block"),
        ("203.0.113.0", "is not a CIDR block"),
        ("example.com/24", "is not a CIDR block"),
    ] {
        let issues = issues_of(&CATALOG.replacen("203.0.113.0/24", bad, 1));
        assert_eq!(issues.len(), 1, "{bad}: {issues:?}");
        assert!(issues[0].message.contains(why), "{issues:?}");
        assert_eq!(issues[0].path, "vendor_access.source_ips[0]");
    }
}

#[test]
fn a_compiled_catalog_reads_back_as_the_catalog_its_text_parses_to() {
    let parsed = Catalog::parse(CATALOG, "catalog.yaml").unwrap();
    let compiled = Catalog::compile(CATALOG, "catalog.yaml").unwrap();
    let read = Catalog::from_compiled(&compiled, "catalog.yaml").unwrap();
    // Every field, the hash of the YAML text included.
    assert_eq!(format!("{read:?}"), format!("{parsed:?}"));
    assert_eq!(read.hash(), &PolicyHash::of(CATALOG.as_bytes()));
    // Without the optional sections (vendor access, exemptions, roles) too.
    let lines: Vec<&str> = CATALOG.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("vendor_access:"))
        .unwrap();
    let end = lines
        .iter()
        .position(|l| l.starts_with("resources:"))
        .unwrap();
    let trimmed = [&lines[..start], &lines[end..]].concat().join("\n");
    let parsed = Catalog::parse(&trimmed, "c.yaml").unwrap();
    assert!(parsed.vendor_source_ips().is_empty() && parsed.roles().count() == 0);
    let compiled = Catalog::compile(&trimmed, "c.yaml").unwrap();
    let read = Catalog::from_compiled(&compiled, "c.yaml").unwrap();
    assert_eq!(format!("{read:?}"), format!("{parsed:?}"));
}

#[test]
fn compiling_refuses_what_parsing_refuses() {
    let bad = CATALOG.replacen("max_duration: 8h", "max_duration: 8 fortnights", 1);
    let parsed = Catalog::parse(&bad, "c.yaml").unwrap_err();
    let compiled = Catalog::compile(&bad, "c.yaml").unwrap_err();
    assert!(!parsed.issues().is_empty());
    assert_eq!(compiled.issues(), parsed.issues());
}

#[test]
fn a_compiled_catalog_is_validated_again_when_read() {
    let compiled = Catalog::compile(CATALOG, "catalog.yaml").unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&compiled).unwrap();
    // A tampered or stale compiled form: thresholds the wrong way round.
    value["catalog"]["risk"]["thresholds"]["medium"] = 90.into();
    value["catalog"]["risk"]["thresholds"]["high"] = 10.into();
    let err = Catalog::from_compiled(&value.to_string(), "catalog.json").unwrap_err();
    assert!(
        err.issues().iter().any(|i| i.path.contains("thresholds")),
        "{err}"
    );
    // Not JSON at all, or not a catalog: a located error, never a default.
    let err = Catalog::from_compiled("{\"hash\": 1", "catalog.json").unwrap_err();
    assert_eq!(err.issues()[0].line, 1, "{err}");
    let err =
        Catalog::from_compiled("{\"hash\": \"ab\", \"catalog\": {}}", "catalog.json").unwrap_err();
    assert!(err.to_string().contains("missing field"), "{err}");
}

#[test]
fn break_glass_is_opt_in_with_known_groups_and_a_reason_for_high_risk_grants() {
    let catalog = Catalog::parse(CATALOG, "catalog.yaml").unwrap();
    let glass = catalog
        .resource("prod-db-admin")
        .unwrap()
        .break_glass
        .as_ref();
    assert_eq!(
        glass.map(|b| b.eligible_groups.iter().cloned().collect::<Vec<_>>()),
        Some(vec!["on-call".to_owned()])
    );
    assert!(
        catalog
            .resource("billing-reports-read")
            .unwrap()
            .break_glass
            .is_none(),
        "no section, no break-glass"
    );
    let offer = "    break_glass:\n      eligible_groups: [on-call]\n    grant:";
    let on_billing = |extra: &str| {
        CATALOG.replacen(
            "    max_duration: 8h\n    grant:",
            &format!(
                "    max_duration: 8h\n{}",
                offer.replace("    grant:", extra)
            ),
            1,
        )
    };
    Catalog::parse(&on_billing("    grant:"), "t.yaml").unwrap();

    let unknown = issues_of(&on_billing("    grant:").replacen(
        "eligible_groups: [on-call]",
        "eligible_groups: [oncall]",
        1,
    ));
    assert!(
        unknown
            .iter()
            .any(|i| i.path == "resources[0].break_glass.eligible_groups[0]"
                && i.message.contains("unknown group `oncall`")
                && i.line > 0),
        "{unknown:?}"
    );
    let empty = issues_of(&CATALOG.replacen(
        "    max_duration: 8h\n    grant:",
        "    max_duration: 8h\n    break_glass:\n      eligible_groups: []\n    grant:",
        1,
    ));
    assert!(
        empty
            .iter()
            .any(|i| i.path == "resources[0].break_glass.eligible_groups"),
        "{empty:?}"
    );
    // A reason where the grant is not high risk is refused too.
    let needless = issues_of(&on_billing("      high_risk_reason: because\n    grant:"));
    assert!(
        needless
            .iter()
            .any(|i| i.path == "resources[0].break_glass.high_risk_reason"),
        "{needless:?}"
    );

    // An escalating grant: refused without a reason, accepted with one.
    let escalating = with_billing_grant(&["iam:PutUserPolicy"], "*", Some("IAM admins"));
    let offered = escalating.replacen(
        "    allows_escalation:",
        "    break_glass:\n      eligible_groups: [on-call]\n    allows_escalation:",
        1,
    );
    let issues = issues_of(&offered);
    assert!(
        issues.iter().any(|i| i.path == "resources[0].break_glass"
            && i.message.contains("allows privilege escalation")),
        "{issues:?}"
    );
    let reasoned = offered.replacen(
        "      eligible_groups: [on-call]\n    allows_escalation:",
        "      eligible_groups: [on-call]\n      high_risk_reason: the IAM outage runbook\n    allows_escalation:",
        1,
    );
    let catalog = Catalog::parse(&reasoned, "t.yaml").unwrap();
    assert_eq!(
        catalog
            .resource("billing-reports-read")
            .unwrap()
            .break_glass
            .as_ref()
            .and_then(|b| b.high_risk_reason.as_deref()),
        Some("the IAM outage runbook")
    );

    // A credential checkout, likewise.
    let checkout = CATALOG.replacen(
        "    max_duration: 2h\n    grant:\n      credential:",
        "    max_duration: 2h\n    break_glass:\n      eligible_groups: [on-call]\n    grant:\n      credential:",
        1,
    );
    assert_ne!(checkout, CATALOG);
    assert!(
        issues_of(&checkout)
            .iter()
            .any(|i| i.message.contains("checks out a credential")),
        "checkout without a reason"
    );
}

#[test]
fn a_grant_that_assumes_roles_names_each_role_exactly() {
    for wildcard in [
        "*",
        "arn:aws:iam::123456789012:role/*",
        "arn:aws:iam::123456789012:role/ops-*",
        "arn:aws:iam::*:role/reporting",
        "arn:aws:iam::123456789012:*",
    ] {
        let issues = issues_of(&with_billing_grant(
            &["sts:AssumeRole"],
            wildcard,
            Some("ops read the reporting role"),
        ));
        assert!(
            issues.iter().any(
                |i| i.path == "resources[0].grant.inline_policy[0].resources[0]"
                    && i.message.contains("names each role's ARN exactly")
            ),
            "{wildcard}: {issues:?}"
        );
    }
    let exact = with_billing_grant(
        &["sts:AssumeRole"],
        "arn:aws:iam::123456789012:role/team/reporting",
        Some("ops read the reporting role"),
    );
    let catalog = Catalog::parse(&exact, "t.yaml").unwrap();
    let resource = catalog.resource("billing-reports-read").unwrap();
    assert_eq!(
        resource.assumable_roles(),
        ["arn:aws:iam::123456789012:role/team/reporting"]
    );
    assert!(resource.is_high_impact(), "always two approvers");
    assert_eq!(
        role_name("arn:aws:iam::123456789012:role/team/reporting"),
        Some("reporting")
    );
    for not_a_role in [
        "arn:aws:iam::123456789012:user/reporting",
        "arn:aws:s3:::bucket",
        "arn:aws:iam::12345:role/x",
        "reporting",
    ] {
        assert_eq!(role_name(not_a_role), None, "{not_a_role}");
    }
}

#[test]
fn escalation_is_matched_by_action_family_not_a_short_list() {
    // Each path the second security review found passing undeclared.
    for (actions, resource) in [
        (&["iam:UpdateUser"][..], "*"),
        (&["iam:UpdateAccessKey"][..], "*"),
        (&["iam:UploadSSHPublicKey"][..], "*"),
        (&["iam:CreateServiceSpecificCredential"][..], "*"),
        (&["iam:DeleteUserPolicy"][..], "*"),
        (&["iam:DetachRolePolicy"][..], "*"),
        (&["iam:Delete*"][..], "*"),
        (&["iam:TagRole"][..], "arn:aws:iam::123456789012:role/x"),
        (&["iam:UntagUser"][..], "*"),
        (&["lambda:UpdateFunctionCode"][..], "*"),
        (&["lambda:Update*"][..], "*"),
        (&["ssm:SendCommand"][..], "*"),
        (&["ssm:StartSession"][..], "*"),
        (&["cloudformation:UpdateStack"][..], "*"),
        (&["cloudformation:CreateChangeSet"][..], "*"),
        (&["codebuild:StartBuild"][..], "*"),
        (&["s3:PutBucketPolicy"][..], "arn:aws:s3:::b"),
        (&["s3:Put*"][..], "arn:aws:s3:::b"),
        (&["sqs:AddPermission"][..], "*"),
        (&["kms:CreateGrant"][..], "*"),
        (&["kms:PutKeyPolicy"][..], "*"),
        (&["secretsmanager:PutResourcePolicy"][..], "*"),
        (&["secretsmanager:GetSecretValue"][..], "*"),
        (
            &["secretsmanager:GetSecretValue"][..],
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:lapse/*",
        ),
        (&["identitystore:CreateGroupMembership"][..], "*"),
        (&["identitystore:*"][..], "*"),
        (&["sso:CreateAccountAssignment"][..], "*"),
        (&["cognito-idp:AdminAddUserToGroup"][..], "*"),
        (&["apigateway:PATCH"][..], "*"),
        (&["apigateway:*"][..], "*"),
        (&["rds:*"][..], "*"),
        (&["rds:ModifyDBInstance"][..], "*"),
    ] {
        let issues = issues_of(&with_billing_grant(actions, resource, None));
        assert!(
            issues
                .iter()
                .any(|i| i.message.contains("allows privilege escalation")),
            "{actions:?} on {resource}: {issues:?}"
        );
    }
    // Reads stay plain, including a named application secret.
    for (actions, resource) in [
        (&["iam:List*", "iam:Get*"][..], "*"),
        (&["s3:GetObject", "s3:ListBucket"][..], "arn:aws:s3:::b"),
        (&["lambda:GetFunction"][..], "*"),
        (&["ssm:GetParameter"][..], "*"),
        (&["rds:Describe*"][..], "*"),
        (&["identitystore:ListUsers"][..], "*"),
        (&["apigateway:GET"][..], "*"),
        (
            &["secretsmanager:GetSecretValue"][..],
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/reporting-*",
        ),
    ] {
        Catalog::parse(&with_billing_grant(actions, resource, None), "t.yaml")
            .unwrap_or_else(|e| panic!("{actions:?}: {e}"));
    }
}

#[test]
fn a_group_grant_must_be_declared_since_its_policies_are_out_of_sight() {
    let undeclared = CATALOG.replacen(
        "    # A group's policies live in IAM, where the catalog check cannot read them.\n    allows_escalation:\n      reason: the group is meant to hold ReadOnlyAccess only; its policies are reviewed with the account, not here.\n",
        "",
        1,
    );
    assert_ne!(undeclared, CATALOG, "the shipped group grant declares it");
    let issues = issues_of(&undeclared);
    assert!(
        issues
            .iter()
            .any(|i| i.message.contains("a group's policies are not visible")),
        "{issues:?}"
    );
    let catalog = Catalog::parse(CATALOG, "catalog.yaml").unwrap();
    assert!(catalog.resource("prod-readonly").unwrap().is_high_impact());
}

#[test]
fn two_patterns_overlap_when_some_action_fits_both() {
    use super::validate::globs_overlap;
    for (a, b) in [
        ("iam:Delete*", "iam:Delete*Policy"),
        ("iam:*", "iam:PutUserPolicy"),
        ("*", "anything"),
        ("iam:Put?serPolicy", "iam:Put*"),
        ("IAM:putuserpolicy", "iam:PutUserPolicy"),
    ] {
        assert!(globs_overlap(a, b), "{a} ~ {b}");
        assert!(globs_overlap(b, a), "{b} ~ {a}");
    }
    for (a, b) in [
        ("iam:List*", "iam:Put*"),
        ("iam:Get*", "iam:Delete*Policy"),
        ("s3:GetObject", "s3:GetObjectAcl"),
    ] {
        assert!(!globs_overlap(a, b), "{a} !~ {b}");
    }
}

#[test]
fn idp_group_ids_have_the_declared_providers_shape() {
    let okta = CATALOG;
    assert!(Catalog::parse(okta, "catalog.yaml").is_ok());
    // A display-name-like id, or another provider's id, under okta.
    for (bad, expect) in [
        ("[00gmanagers000000008]", None),
        ("[managers-group]", Some("is not an Okta group id")),
        (
            "[3f2504e0-4f89-11d3-9a0c-0305e82c3301]",
            Some("is not an Okta group id"),
        ),
        ("[00gmanagers00000000]", Some("is not an Okta group id")),
    ] {
        let text = CATALOG.replace("[00gmanagers000000008]", bad);
        match expect {
            None => assert!(Catalog::parse(&text, "c.yaml").is_ok(), "{bad}"),
            Some(message) => assert!(
                issues_of(&text)
                    .iter()
                    .any(|i| i.path == "approver_groups[0].idp_groups[0]"
                        && i.message.contains(message)),
                "{bad}: {:?}",
                issues_of(&text)
            ),
        }
    }
    // Entra ids under entra; a pattern of one's own.
    let entra = CATALOG
        .replace("group_ids: okta", "group_ids: entra")
        .replace(
            "[00gmanagers000000008]",
            "[3f2504e0-4f89-11d3-9a0c-0305e82c3301]",
        );
    let issues = issues_of(&entra);
    assert!(
        !issues
            .iter()
            .any(|i| i.path == "approver_groups[0].idp_groups[0]"),
        "{issues:?}"
    );
    assert!(
        issues
            .iter()
            .any(|i| i.path == "approver_groups[1].idp_groups[0]"
                && i.message.contains("is not an Entra group object id")),
        "{issues:?}"
    );
    let pattern = CATALOG.replace(
        "group_ids: okta",
        "group_ids: pattern\n  pattern: \"00g[a-z0-9]{17}\"",
    );
    assert!(Catalog::parse(&pattern, "c.yaml").is_ok());
    let narrow = CATALOG.replace(
        "group_ids: okta",
        "group_ids: pattern\n  pattern: \"grp-[0-9]+\"",
    );
    assert!(
        issues_of(&narrow).iter().any(|i| i
            .message
            .contains("is not a group id matching `^(?:grp-[0-9]+)$`")),
        "{:?}",
        issues_of(&narrow)
    );
    // Undeclared: refused, with what to write.
    let undeclared = CATALOG.replace("identity_provider:\n  group_ids: okta\n", "");
    assert!(
        issues_of(&undeclared)
            .iter()
            .any(|i| i.path == "identity_provider"),
        "{:?}",
        issues_of(&undeclared)
    );
    for (bad, path) in [
        ("group_ids: ldap", "identity_provider.group_ids"),
        ("group_ids: pattern", "identity_provider.pattern"),
        (
            "group_ids: pattern\n  pattern: \"(\"",
            "identity_provider.pattern",
        ),
    ] {
        let text = CATALOG.replace("group_ids: okta", bad);
        assert!(
            issues_of(&text).iter().any(|i| i.path == path),
            "{bad}: {:?}",
            issues_of(&text)
        );
    }
}

/// Issue 22: the checker speaks to the person editing the catalog: a key written
/// twice is said in words (not the parser's advice about its own options), and
/// one invalid tunable is one problem, not one more for every resource held to it.
#[test]
fn problems_are_said_once_in_words() {
    let twice = CATALOG.replacen(
        "  max_duration: 8h\n",
        "  max_duration: 8h\n  max_duration: 9h\n",
        1,
    );
    let issues = issues_of(&twice);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(
        issues[0].message,
        "`max_duration` appears twice here: keep one"
    );

    let bad_max = CATALOG.replacen("  max_duration: 8h\n", "  max_duration: eight hours\n", 1);
    let issues = issues_of(&bad_max);
    assert_eq!(issues.len(), 1, "one problem, at the tunable: {issues:?}");
    assert_eq!(issues[0].path, "tunables.max_duration");
}
