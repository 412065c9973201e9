//! The template's security rules (`infra/guard/lapse.guard`, AWS CloudFormation
//! Guard) over the SAM translation of the real template, and each rule failing on a
//! copy of that translation with one defect put in.

use std::path::Path;
use std::process::Command;

use crate::template::{scratch, translate};
use lapse_testkit::workspace_root;
use serde_json::{Value, json};

fn guard(data: &Path) -> (bool, String) {
    let binary = workspace_root().join(".tools/cargo/bin/cfn-guard");
    assert!(
        binary.exists(),
        "{} is missing: scripts/bootstrap installs it",
        binary.display()
    );
    let out = Command::new(binary)
        .args(["validate", "--show-summary", "fail", "--rules"])
        .arg(workspace_root().join("infra/guard"))
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The first statement of `role` whose actions include `action`.
fn statement<'a>(template: &'a mut Value, role: &str, action: &str) -> &'a mut Value {
    let statements = template["Resources"][role]["Properties"]["Policies"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .flat_map(|p| {
            p["PolicyDocument"]["Statement"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
        });
    statements
        .into_iter()
        .find(|s| {
            let actions = &s["Action"];
            actions == action
                || actions
                    .as_array()
                    .is_some_and(|a| a.contains(&json!(action)))
        })
        .unwrap_or_else(|| panic!("{role} has no statement with {action}"))
}

#[test]
fn the_template_meets_its_security_rules_and_each_rule_can_fail() {
    let (real, path) = translate(&workspace_root().join("infra/template.yaml")).unwrap();
    let (ok, output) = guard(&path);
    assert!(ok, "{output}");

    type Defect = fn(&mut Value);
    let defects: [(&str, Defect, &str); 9] = [
        (
            "every IAM action",
            |t| {
                statement(t, "RevokeFunctionRole", "iam:DeleteUserPolicy")["Action"] =
                    json!("iam:*")
            },
            "grants every IAM action",
        ),
        (
            "an IAM write by wildcard",
            |t| {
                statement(t, "RevokeFunctionRole", "iam:DeleteUserPolicy")["Action"] =
                    json!(["iam:Delete*"])
            },
            "granted by wildcard",
        ),
        (
            "an IAM write on every resource",
            |t| statement(t, "RevokeFunctionRole", "iam:DeleteUserPolicy")["Resource"] = json!("*"),
            "applies to every resource",
        ),
        (
            "a user write outside the managed path",
            |t| {
                statement(t, "RevokeFunctionRole", "iam:DeleteUserPolicy")["Resource"] =
                    json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*"})
            },
            "not confined to the managed user path",
        ),
        (
            "a group addition beyond lapse-*",
            |t| {
                statement(t, "GrantFunctionRole", "iam:AddUserToGroup")["Resource"] =
                    json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:group/*"})
            },
            "reaches groups other than lapse-*",
        ),
        (
            "a table without point-in-time recovery",
            |t| {
                t["Resources"]["AuditTable"]["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] =
                    json!(false)
            },
            "without point-in-time recovery",
        ),
        (
            "a state machine that does not log",
            |t| {
                t["Resources"]["RevocationWorkflow"]["Properties"]["LoggingConfiguration"]["Level"] =
                    json!("OFF")
            },
            "a state machine without logging",
        ),
        (
            "an API without access logs",
            |t| {
                t["Resources"]["ApiApiGatewayDefaultStage"]["Properties"]
                    .as_object_mut()
                    .unwrap()
                    .remove("AccessLogSettings");
            },
            "without access logs",
        ),
        (
            "a bucket that may be made public",
            |t| {
                t["Resources"]["AuditAnchorBucket"]["Properties"]["PublicAccessBlockConfiguration"]
                    ["BlockPublicPolicy"] = json!(false)
            },
            "may be made public",
        ),
    ];
    for (name, defect, message) in defects {
        let mut broken = real.clone();
        defect(&mut broken);
        assert_ne!(broken, real, "{name}: the defect changed nothing");
        let path = scratch().join("guarded.json");
        std::fs::write(&path, serde_json::to_string_pretty(&broken).unwrap()).unwrap();
        let (ok, output) = guard(&path);
        assert!(!ok, "{name}: the rules passed a broken template");
        assert!(output.contains(message), "{name}: {output}");
    }
}
