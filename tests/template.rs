//! Checks over `infra/template.yaml` as CloudFormation will see it: translated by
//! SAM's own translator (`tools/sam_translate.py`, what `sam deploy` runs).
//!
//! - the translator, `cfn-lint` of the translation and `sam validate --lint` each
//!   refuse a deliberately broken copy (the test command runs them on the real one);
//! - IAM scoping: no IAM write on `*`, user writes only to users tagged
//!   `lapse:managed=true`, policy writes only to users under Lapse's boundary,
//!   group writes only to `lapse-*` groups (one documented exception), no wildcard
//!   actions, `*` resources only for actions that have no resource;
//! - every alarm on Lapse's namespace and every dashboard metric is one the code
//!   emits (`lapse_lambda::metrics::EMITTED`) with the same dimensions, and the
//!   failures that matter are alarmed.
//!
//! Each check is a function returning its problems, run on the real template (no
//! problems) and on broken copies (the problem is named).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use lapse_lambda::metrics::is_registered;
use lapse_testkit::{tools_python, workspace_root};
use serde_json::Value;

const PARAMS: [&str; 4] = [
    "--param",
    "JwtIssuer=https://idp.example.com",
    "--param",
    "JwtAudience=lapse",
];

pub(crate) fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = workspace_root().join(format!(
        "target/template-checks/{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn template_text() -> String {
    std::fs::read_to_string(workspace_root().join("infra/template.yaml")).unwrap()
}

/// A copy of the template with one edit; the edit must change something.
fn broken_copy(from: &str, to: &str) -> PathBuf {
    let text = template_text();
    assert!(
        text.contains(from),
        "the template no longer contains {from:?}"
    );
    let path = scratch().join("template.yaml");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    path
}

/// Translates a template; Err carries the translator's messages.
pub(crate) fn translate(template: &Path) -> Result<(Value, PathBuf), String> {
    let out = scratch().join("translated.json");
    let run = Command::new(tools_python().unwrap())
        .arg(workspace_root().join("tools/sam_translate.py"))
        .arg(template)
        .arg(&out)
        .args(PARAMS)
        .output()
        .unwrap();
    if !run.status.success() {
        return Err(String::from_utf8_lossy(&run.stderr).into_owned());
    }
    let value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    Ok((value, out))
}

fn real() -> Value {
    translate(&workspace_root().join("infra/template.yaml"))
        .unwrap()
        .0
}

fn venv_tool(name: &str) -> PathBuf {
    tools_python().unwrap().with_file_name(name)
}

fn run_tool(name: &str, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(venv_tool(name))
        .args(args)
        .env("SAM_CLI_TELEMETRY", "0")
        .env("AWS_DEFAULT_REGION", "us-east-1")
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

// ---- The translator, cfn-lint and sam validate --lint fail on broken copies ----

/// The defect that shipped once: the grant function's statements from its
/// second on stand outside their `Statement` list, as siblings in `Policies`.
fn outdented_statements() -> PathBuf {
    let text = template_text();
    let start = text.find("            - Sid: LedgerHold").unwrap();
    let end = start + text[start..].find("      CodeUri:").unwrap();
    let outdented: String = text[start..end]
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let path = scratch().join("template.yaml");
    std::fs::write(
        &path,
        format!("{}{}{}", &text[..start], outdented, &text[end..]),
    )
    .unwrap();
    path
}

#[test]
fn the_translator_refuses_statements_outside_their_list() {
    let broken = outdented_statements();
    let err = translate(&broken).unwrap_err();
    assert!(
        err.contains("GrantFunction") && err.contains("is not valid"),
        "{err}"
    );
    let (ok, output) = run_tool(
        "sam",
        &[
            "validate".as_ref(),
            "--template-file".as_ref(),
            broken.as_os_str(),
        ],
    );
    assert!(!ok, "sam validate accepted the broken copy: {output}");
    assert!(output.contains("Policy at index"), "{output}");
}

#[test]
fn cfn_lint_of_the_translation_passes_and_catches_an_unknown_action() {
    let (_, translated) = translate(&workspace_root().join("infra/template.yaml")).unwrap();
    let (ok, output) = run_tool("cfn-lint", &[translated.as_os_str()]);
    assert!(ok, "{output}");
    let broken = broken_copy(
        "Action: [dynamodb:GetItem, dynamodb:PutItem]",
        "Action: [dynamodb:GetItems, dynamodb:PutItem]",
    );
    let (_, translated) = translate(&broken).unwrap();
    let (ok, output) = run_tool("cfn-lint", &[translated.as_os_str()]);
    assert!(!ok, "cfn-lint accepted an unknown action");
    assert!(
        output.contains("W3037") && output.contains("getitems"),
        "{output}"
    );
}

#[test]
fn sam_validate_lint_catches_an_out_of_range_timeout() {
    let broken = broken_copy("    Timeout: 30\n", "    Timeout: 9000\n");
    let (ok, output) = run_tool(
        "sam",
        &[
            "validate".as_ref(),
            "--lint".as_ref(),
            "--template-file".as_ref(),
            broken.as_os_str(),
        ],
    );
    assert!(
        !ok,
        "sam validate --lint accepted a 9000 s timeout: {output}"
    );
    assert!(
        output.contains("E3034") && output.contains("9000"),
        "{output}"
    );
}

/// `sam validate --lint` misses a reference to a resource that does not exist;
/// linting the translation catches it, which is why the test command does both.
#[test]
fn cfn_lint_of_the_translation_catches_a_dangling_reference() {
    let broken = broken_copy(
        "Resource: !GetAtt LedgerTable.Arn",
        "Resource: !GetAtt LedgerTabel.Arn",
    );
    let (_, translated) = translate(&broken).unwrap();
    let (ok, output) = run_tool("cfn-lint", &[translated.as_os_str()]);
    assert!(!ok, "cfn-lint accepted a dangling GetAtt");
    assert!(
        output.contains("E1010") && output.contains("LedgerTabel"),
        "{output}"
    );
}

// ---- IAM scoping ------------------------------------------------------------------

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// A resource as text: literals as they are, `Fn::Sub` as its template,
/// `Fn::GetAtt`/`Ref` as `<Logical.Attr>`.
fn resource_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) if o.contains_key("Fn::Sub") => match &o["Fn::Sub"] {
            Value::String(s) => s.clone(),
            Value::Array(a) => a[0].as_str().unwrap_or_default().to_owned(),
            _ => String::new(),
        },
        Value::Object(o) if o.contains_key("Fn::GetAtt") => {
            format!(
                "<{}>",
                o["Fn::GetAtt"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .map(|x| x.as_str().unwrap_or(""))
                        .collect::<Vec<_>>()
                        .join("."))
                    .unwrap_or_default()
            )
        }
        Value::Object(o) if o.contains_key("Ref") => {
            format!("<{}>", o["Ref"].as_str().unwrap_or(""))
        }
        other => other.to_string(),
    }
}

fn is_iam_write(action: &str) -> bool {
    let Some(op) = action.strip_prefix("iam:") else {
        return false;
    };
    !["Get", "List", "Generate", "Simulate"]
        .iter()
        .any(|p| op.starts_with(p))
}

/// Actions that act on no resource, so `*` is their only possible scope.
const RESOURCELESS: &[&str] = &[
    "iam:GenerateCredentialReport",
    "secretsmanager:GetRandomPassword",
    "iam:GetCredentialReport",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
];

/// Managed policies a role may carry: Lambda's logging and tracing, the stream
/// reads SAM adds to the TTL backstop (read-only on streams), Chatbot's read-only
/// guardrail.
const MANAGED_POLICIES: &[&str] = &[
    "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "arn:${AWS::Partition}:iam::aws:policy/CloudWatchReadOnlyAccess",
];

/// Group writes allowed beyond `lapse-*` groups, because IAM offers no way to scope
/// them by the user (their resource is the group, and groups take no tags): a full
/// revocation takes a person out of every group, and a restore puts them back in
/// the groups their archived before-state records, whichever those are. Documented
/// in ARCHITECTURE.md.
const UNSCOPED_GROUP_WRITES: &[(&str, &str)] = &[
    ("RevocationFunctionRole", "iam:RemoveUserFromGroup"),
    ("OperatorFunctionRole", "iam:AddUserToGroup"),
];

/// Whether `resource` is the ARN of a role this template declares.
fn own_role(template: &Value, resource: &str) -> bool {
    resource
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix(".Arn>"))
        .is_some_and(|name| template["Resources"][name]["Type"] == "AWS::IAM::Role")
}

/// How the template names the managed users' boundary outside its own resource: by
/// its fixed name, since a `Ref` would close a cycle (the boundary names the API).
fn boundary_arn() -> Value {
    serde_json::json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/${AWS::StackName}-managed-user-boundary"})
}

fn condition_equals<'a>(statement: &'a Value, key: &str) -> Option<&'a Value> {
    statement["Condition"]["StringEquals"].get(key)
}

fn iam_problems(template: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (role, resource) in template["Resources"].as_object().unwrap() {
        if resource["Type"] != "AWS::IAM::Role" {
            continue;
        }
        for arn in as_list(&resource["Properties"]["ManagedPolicyArns"]) {
            let text = resource_text(&arn);
            if !MANAGED_POLICIES.contains(&text.as_str()) {
                problems.push(format!(
                    "{role}: managed policy {text} is not an allowed one"
                ));
            }
        }
        for policy in as_list(&resource["Properties"]["Policies"]) {
            for statement in as_list(&policy["PolicyDocument"]["Statement"]) {
                if statement["Effect"] != "Allow" {
                    continue;
                }
                let actions: Vec<String> = as_list(&statement["Action"])
                    .iter()
                    .map(|a| a.as_str().unwrap_or_default().to_owned())
                    .collect();
                let resources: Vec<String> = as_list(&statement["Resource"])
                    .iter()
                    .map(resource_text)
                    .collect();
                for action in &actions {
                    if action == "*" || action.ends_with(":*") {
                        problems.push(format!("{role}: wildcard action {action}"));
                    }
                    for res in &resources {
                        if res == "*" && !RESOURCELESS.contains(&action.as_str()) {
                            problems.push(format!("{role}: {action} on Resource \"*\""));
                        }
                    }
                    if !is_iam_write(action) {
                        continue;
                    }
                    for res in &resources {
                        // A user being created has no tags yet: the request's tags
                        // must make it managed, under the boundary, named vendor-*.
                        let creates = matches!(action.as_str(), "iam:CreateUser" | "iam:TagUser");
                        if res.contains(":user") && creates {
                            let managed =
                                condition_equals(&statement, "aws:RequestTag/lapse:managed")
                                    == Some(&Value::String("true".into()));
                            let bounded = condition_equals(&statement, "iam:PermissionsBoundary")
                                == Some(&boundary_arn());
                            if !managed || !bounded || !res.ends_with("vendor-*") {
                                problems.push(format!(
                                    "{role}: {action} on {res} without lapse:managed=true, Lapse's boundary and a vendor-* name"
                                ));
                            }
                        } else if res.contains(":user") {
                            if condition_equals(&statement, "aws:ResourceTag/lapse:managed")
                                != Some(&Value::String("true".into()))
                            {
                                problems.push(format!(
                                    "{role}: {action} on users without the lapse:managed=true condition"
                                ));
                            }
                            let puts_policy = matches!(
                                action.as_str(),
                                "iam:PutUserPolicy"
                                    | "iam:AttachUserPolicy"
                                    | "iam:PutUserPermissionsBoundary"
                            );
                            if puts_policy
                                && condition_equals(&statement, "iam:PermissionsBoundary")
                                    != Some(&boundary_arn())
                            {
                                problems.push(format!(
                                    "{role}: {action} without requiring Lapse's permissions boundary"
                                ));
                            }
                        } else if res.contains(":group/") {
                            let exempt = UNSCOPED_GROUP_WRITES
                                .iter()
                                .any(|(r, a)| r == role && a == action);
                            if !res.ends_with(":group/lapse-*") && !exempt {
                                problems.push(format!("{role}: {action} on {res}"));
                            }
                        } else if action == "iam:PassRole" {
                            // Only the stack's own roles, to the one service named.
                            if !own_role(template, res)
                                || statement["Condition"]["StringEquals"]["iam:PassedToService"]
                                    .as_str()
                                    .is_none()
                            {
                                problems.push(format!(
                                    "{role}: {action} on {res}: only the stack's own roles, to a named service"
                                ));
                            }
                        } else if res.contains(":role/")
                            && matches!(
                                action.as_str(),
                                "iam:PutRolePolicy" | "iam:DeleteRolePolicy"
                            )
                        {
                            // The deny of a revoked user's sessions (and its removal by a
                            // restore), on roles Lapse manages.
                            if condition_equals(&statement, "aws:ResourceTag/lapse:managed")
                                != Some(&Value::String("true".into()))
                            {
                                problems.push(format!(
                                    "{role}: {action} on roles without the lapse:managed=true condition"
                                ));
                            }
                        } else if res != "*" {
                            problems.push(format!("{role}: {action} on {res}: Lapse writes only managed users, lapse-* groups and managed roles"));
                        }
                    }
                }
            }
        }
    }
    problems
}

/// The statement with `sid` in the inline policy of `role`.
fn statement_mut<'a>(template: &'a mut Value, role: &str, sid: &str) -> &'a mut Value {
    let statements =
        template["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array_mut()
            .unwrap();
    statements
        .iter_mut()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("{role} has no statement {sid}"))
}

/// A copy of `template` whose statement `sid` in `role`'s policy lost its Condition.
fn without_condition(template: &Value, role: &str, sid: &str) -> Value {
    let mut t = template.clone();
    statement_mut(&mut t, role, sid)
        .as_object_mut()
        .unwrap()
        .remove("Condition");
    t
}

#[test]
fn lapse_writes_only_to_managed_users_and_its_own_groups() {
    let template = real();
    assert_eq!(iam_problems(&template), Vec::<String>::new());

    // Broken copies, each a way the scoping could regress.
    let t = without_condition(&template, "GrantFunctionRole", "GrantInlinePolicies");
    let p = iam_problems(&t);
    assert!(
        p.iter().any(|p| p.contains(
            "GrantFunctionRole: iam:PutUserPolicy on users without the lapse:managed=true condition"
        )),
        "{p:?}"
    );
    assert!(
        p.iter().any(|p| p.contains(
            "GrantFunctionRole: iam:PutUserPolicy without requiring Lapse's permissions boundary"
        )),
        "{p:?}"
    );

    // Vendor users are created managed, under the boundary, named vendor-*.
    let t = without_condition(&template, "VendorsFunctionRole", "CreateVendorUsers");
    let p = iam_problems(&t);
    assert!(
        p.iter().any(|p| p.starts_with(
            "VendorsFunctionRole: iam:CreateUser on arn:${AWS::Partition}:iam::${AWS::AccountId}:user${ManagedUserPath}vendor-* without lapse:managed=true"
        )),
        "{p:?}"
    );
    let mut t = template.clone();
    statement_mut(&mut t, "VendorsFunctionRole", "CreateVendorUsers")["Resource"] = serde_json::json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user${ManagedUserPath}*"});
    let p = iam_problems(&t);
    assert!(
        p.iter()
            .any(|p| p.starts_with("VendorsFunctionRole: iam:CreateUser on")
                && p.ends_with("a vendor-* name")),
        "{p:?}"
    );

    let t = without_condition(
        &template,
        "RevocationFunctionRole",
        "DenyTheUsersRoleSessions",
    );
    let p = iam_problems(&t);
    assert!(
        p.iter().any(|p| p
            == "RevocationFunctionRole: iam:PutRolePolicy on roles without the lapse:managed=true condition"),
        "{p:?}"
    );

    let t = without_condition(&template, "OperatorFunctionRole", "RestoreRoleSessions");
    let p = iam_problems(&t);
    assert!(
        p.iter().any(|p| p
            == "OperatorFunctionRole: iam:DeleteRolePolicy on roles without the lapse:managed=true condition"),
        "{p:?}"
    );
    let mut t = template.clone();
    statement_mut(&mut t, "OperatorFunctionRole", "PassTheSchedulerRole")["Resource"] =
        serde_json::json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*"});
    let p = iam_problems(&t);
    assert!(
        p.iter()
            .any(|p| p.starts_with("OperatorFunctionRole: iam:PassRole on arn:")),
        "{p:?}"
    );
    let t = without_condition(&template, "OperatorFunctionRole", "PassTheSchedulerRole");
    assert!(
        iam_problems(&t)
            .iter()
            .any(|p| p.contains("iam:PassRole on <SchedulerToRevocationRole.Arn>")),
    );
    let mut t = template.clone();
    statement_mut(&mut t, "OperatorFunctionRole", "RestoreGroups")["Action"] =
        serde_json::json!(["iam:AddUserToGroup", "iam:RemoveUserFromGroup"]);
    assert!(
        iam_problems(&t)
            .iter()
            .any(|p| p.contains("OperatorFunctionRole: iam:RemoveUserFromGroup on arn:")),
        "the exemption is per role and action"
    );

    let mut t = template.clone();
    statement_mut(&mut t, "RevokeFunctionRole", "RevokeInlinePolicies")["Resource"] = "*".into();
    let p = iam_problems(&t);
    assert!(
        p.iter()
            .any(|p| p == "RevokeFunctionRole: iam:DeleteUserPolicy on Resource \"*\""),
        "{p:?}"
    );

    let mut t = template.clone();
    statement_mut(&mut t, "GrantFunctionRole", "GrantGroups")["Resource"] =
        serde_json::json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:group/*"});
    let p = iam_problems(&t);
    assert!(p.iter().any(|p| p.contains("GrantFunctionRole: iam:AddUserToGroup on arn:${AWS::Partition}:iam::${AWS::AccountId}:group/*")), "{p:?}");

    let mut t = template.clone();
    statement_mut(&mut t, "VerifyFunctionRole", "ReadIam")["Action"] = serde_json::json!(["iam:*"]);
    let p = iam_problems(&t);
    assert!(
        p.iter()
            .any(|p| p == "VerifyFunctionRole: wildcard action iam:*"),
        "{p:?}"
    );

    let mut t = template.clone();
    t["Resources"]["NotifyFunctionRole"]["Properties"]["ManagedPolicyArns"]
        .as_array_mut()
        .unwrap()
        .push("arn:aws:iam::aws:policy/AdministratorAccess".into());
    let p = iam_problems(&t);
    assert!(
        p.iter()
            .any(|p| p.contains("AdministratorAccess is not an allowed one")),
        "{p:?}"
    );

    let mut t = template.clone();
    statement_mut(&mut t, "SweeperFunctionRole", "Requests")["Resource"] = "*".into();
    let p = iam_problems(&t);
    assert!(
        p.iter()
            .any(|p| p == "SweeperFunctionRole: dynamodb:GetItem on Resource \"*\""),
        "{p:?}"
    );
}

// ---- Alarms and the dashboard watch what the code emits -------------------------

fn dimensions(alarm: &Value) -> Vec<(String, String)> {
    as_list(&alarm["Properties"]["Dimensions"])
        .iter()
        .map(|d| {
            (
                d["Name"].as_str().unwrap_or_default().to_owned(),
                d["Value"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| d["Value"].to_string()),
            )
        })
        .collect()
}

/// Alarms that must exist: (metric, its first dimension's value: the workflow,
/// or the path for break-glass).
const MUST_ALARM: &[(&str, &str)] = &[
    ("VerificationFailures", "grant-lifecycle"),
    ("VerificationFailures", "revocation"),
    ("WorkflowFailures", "grant-lifecycle"),
    ("RevocationDuration", "revocation"),
    ("SweepFailures", "sweeper"),
    // Every break-glass use, not only an unjustified one.
    ("BreakGlassUses", "break-glass"),
    ("BreakGlassIncidents", "break-glass"),
    // A termination or suspension held back by an override.
    ("RevocationsHeld", "revocation"),
];

fn alarm_problems(template: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut alarmed = Vec::new();
    for (name, resource) in template["Resources"].as_object().unwrap() {
        if resource["Type"] != "AWS::CloudWatch::Alarm"
            || resource["Properties"]["Namespace"] != "Lapse"
        {
            continue;
        }
        let metric = resource["Properties"]["MetricName"]
            .as_str()
            .unwrap_or_default();
        let dims = dimensions(resource);
        let pairs: Vec<(&str, &str)> = dims.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        if !is_registered(metric, &pairs) {
            problems.push(format!(
                "{name}: no code emits {metric} with dimensions {pairs:?}"
            ));
        }
        if let Some((_, scope)) = pairs.first() {
            alarmed.push((metric.to_owned(), (*scope).to_owned()));
        }
    }
    for (metric, scope) in MUST_ALARM {
        if !alarmed.iter().any(|(m, w)| m == metric && w == scope) {
            problems.push(format!("no alarm on {metric} for {scope}"));
        }
    }
    problems
}

/// Every `["Lapse", Metric, Dim, Value, ...]` line of the dashboard.
fn dashboard_problems(template: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = 0;
    for (name, resource) in template["Resources"].as_object().unwrap() {
        if resource["Type"] != "AWS::CloudWatch::Dashboard" {
            continue;
        }
        let body = resource_text(&resource["Properties"]["DashboardBody"]);
        // ${...} substitutions stand in string positions only.
        let mut text = String::new();
        let mut rest = body.as_str();
        while let Some(start) = rest.find("${") {
            text.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .map(|e| start + e + 1)
                .unwrap_or(rest.len());
            text.push_str("substituted");
            rest = &rest[end..];
        }
        text.push_str(rest);
        let body: Value = match serde_json::from_str(&text) {
            Ok(body) => body,
            Err(err) => {
                problems.push(format!("{name}: DashboardBody is not JSON: {err}"));
                continue;
            }
        };
        for widget in as_list(&body["widgets"]) {
            for line in as_list(&widget["properties"]["metrics"]) {
                let strings: Vec<String> = as_list(&line)
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                if strings.first().map(String::as_str) != Some("Lapse") {
                    continue;
                }
                seen += 1;
                let metric = strings.get(1).cloned().unwrap_or_default();
                let pairs: Vec<(&str, &str)> = strings[2..]
                    .chunks(2)
                    .map(|c| (c[0].as_str(), c.get(1).map(String::as_str).unwrap_or("")))
                    .collect();
                if !is_registered(&metric, &pairs) {
                    problems.push(format!(
                        "{name}: no code emits {metric} with dimensions {pairs:?}"
                    ));
                }
            }
        }
    }
    if seen == 0 {
        problems.push("no dashboard shows a Lapse metric".into());
    }
    problems
}

#[test]
fn alarms_watch_metrics_the_code_emits() {
    let template = real();
    assert_eq!(alarm_problems(&template), Vec::<String>::new());

    // The defect that shipped once: the slow-revocation alarm on dimensions no
    // code emits.
    let mut t = template.clone();
    t["Resources"]["RevocationSlowAlarm"]["Properties"]["MetricName"] = "Revocations".into();
    let p = alarm_problems(&t);
    assert!(
        p.iter()
            .any(|p| p.contains("RevocationSlowAlarm: no code emits Revocations")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|p| p == "no alarm on RevocationDuration for revocation"),
        "{p:?}"
    );

    let mut t = template.clone();
    t["Resources"]["SweeperFailureAlarm"]["Properties"]["Dimensions"][0]["Value"] = "sweep".into();
    let p = alarm_problems(&t);
    assert!(
        p.iter()
            .any(|p| p.contains("SweeperFailureAlarm: no code emits SweepFailures")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|p| p == "no alarm on SweepFailures for sweeper"),
        "{p:?}"
    );
}

#[test]
fn every_break_glass_use_is_alarmed() {
    let template = real();
    let alarm = &template["Resources"]["BreakGlassUseAlarm"]["Properties"];
    assert_eq!(alarm["MetricName"], "BreakGlassUses", "{alarm}");
    assert_eq!(alarm["Threshold"], 1, "one use is enough: {alarm}");
    let mut t = template.clone();
    t["Resources"]
        .as_object_mut()
        .unwrap()
        .remove("BreakGlassUseAlarm");
    assert!(
        alarm_problems(&t)
            .iter()
            .any(|p| p == "no alarm on BreakGlassUses for break-glass"),
        "removing the alarm is caught"
    );
}

#[test]
fn every_held_termination_is_alarmed() {
    let template = real();
    let alarm = &template["Resources"]["RevocationHeldAlarm"]["Properties"];
    assert_eq!(alarm["MetricName"], "RevocationsHeld", "{alarm}");
    assert_eq!(alarm["Threshold"], 1, "one hold is enough: {alarm}");
    let mut t = template.clone();
    t["Resources"]
        .as_object_mut()
        .unwrap()
        .remove("RevocationHeldAlarm");
    assert!(
        alarm_problems(&t)
            .iter()
            .any(|p| p == "no alarm on RevocationsHeld for revocation"),
        "removing the alarm is caught"
    );
}

#[test]
fn the_dashboard_shows_metrics_the_code_emits() {
    let template = real();
    assert_eq!(dashboard_problems(&template), Vec::<String>::new());
    let broken = broken_copy(
        r#"["Lapse", "RevocationsInProgress", "Workflow", "sweeper"]"#,
        r#"["Lapse", "RevocationsInProgress", "Workflow", "revocation"]"#,
    );
    let p = dashboard_problems(&translate(&broken).unwrap().0);
    assert!(
        p.iter()
            .any(|p| p.contains("no code emits RevocationsInProgress")),
        "{p:?}"
    );
}

/// Writes to the revocations table by a role, and the leading keys each may touch
/// (`None`: any item).
fn revocations_table_writes(template: &Value, role: &str) -> Vec<(String, Option<Value>)> {
    let mut writes = Vec::new();
    for policy in as_list(&template["Resources"][role]["Properties"]["Policies"]) {
        for statement in as_list(&policy["PolicyDocument"]["Statement"]) {
            let on_table = as_list(&statement["Resource"])
                .iter()
                .any(|r| r.to_string().contains("RevocationsTable"));
            if statement["Effect"] != "Allow" || !on_table {
                continue;
            }
            for action in as_list(&statement["Action"]) {
                let action = action.as_str().unwrap_or_default();
                if [
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                ]
                .contains(&action)
                {
                    let keys = statement["Condition"]["ForAllValues:StringLike"]
                        .get("dynamodb:LeadingKeys")
                        .cloned();
                    writes.push((action.to_owned(), keys));
                }
            }
        }
    }
    writes
}

/// The webhook is exposed to the internet: its role may write event claims only,
/// never a person's controls (the revoked mark, legal hold, override) or cases.
#[test]
fn the_webhook_role_writes_only_event_claims() {
    let only_claims = |template: &Value| {
        let writes = revocations_table_writes(template, "HrWebhookFunctionRole");
        !writes.is_empty()
            && writes
                .iter()
                .all(|(_, keys)| keys.as_ref() == Some(&serde_json::json!(["event#*"])))
    };
    let template = real();
    assert!(
        only_claims(&template),
        "{:?}",
        revocations_table_writes(&template, "HrWebhookFunctionRole")
    );
    let broken = without_condition(&template, "HrWebhookFunctionRole", "Claims");
    assert!(!only_claims(&broken));
    let mut broader = template;
    statement_mut(&mut broader, "HrWebhookFunctionRole", "Claims")["Condition"]["ForAllValues:StringLike"]
        ["dynamodb:LeadingKeys"] = serde_json::json!(["event#*", "user#*"]);
    assert!(!only_claims(&broader));
}

/// Which partitions of the revocations table each function role may write, by
/// the partition prefix (`user#` for `user#*`): every write is narrowed by
/// `dynamodb:LeadingKeys` (`"any"` when one is not).
fn revocations_writers(template: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut writers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (role, resource) in template["Resources"].as_object().unwrap() {
        if resource["Type"] != "AWS::IAM::Role" || !role.ends_with("FunctionRole") {
            continue;
        }
        for (_, keys) in revocations_table_writes(template, role) {
            let prefixes = match keys {
                None => vec!["any".to_owned()],
                Some(keys) => as_list(&keys)
                    .iter()
                    .map(|k| k.as_str().unwrap_or("any").trim_end_matches('*').to_owned())
                    .collect(),
            };
            writers.entry(role.clone()).or_default().extend(prefixes);
        }
    }
    writers
}

/// IAM narrows a role to partition keys, not sort keys, so who may write what in
/// the revocations table is said by partition: a person's controls (the revoked
/// mark, legal hold, override) and archived before-state (`user#`) by the
/// revocation workflow and the operators alone; HR event claims (`event#`) by the
/// webhook alone; leases by the functions that check credentials out and in; and
/// the daily inactivity check only opens cases (`case#`, `cases#`).
#[test]
fn each_role_writes_only_its_own_partitions_of_the_revocations_table() {
    fn problems(template: &Value) -> Vec<String> {
        let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
            (
                "RevocationFunctionRole",
                &["case#", "cases#", "user#", "lease#"][..],
            ),
            ("OperatorFunctionRole", &["case#", "cases#", "user#"][..]),
            ("InactivityCheckFunctionRole", &["case#", "cases#"][..]),
            ("HrWebhookFunctionRole", &["event#"][..]),
            ("CredentialsFunctionRole", &["lease#"][..]),
            ("GrantsApiFunctionRole", &["lease#"][..]),
            ("SweeperFunctionRole", &["lease#"][..]),
        ]);
        let mut problems = Vec::new();
        for (role, prefixes) in revocations_writers(template) {
            let may = allowed.get(role.as_str()).copied().unwrap_or(&[]);
            for prefix in prefixes {
                if !may.contains(&prefix.as_str()) {
                    problems.push(format!("{role} may write {prefix}"));
                }
            }
        }
        problems
    }
    let template = real();
    assert_eq!(problems(&template), Vec::<String>::new());
    assert_eq!(
        revocations_writers(&template)["InactivityCheckFunctionRole"],
        BTreeSet::from(["case#".to_owned(), "cases#".to_owned()])
    );
    // Broken: the inactivity check unnarrowed, or reaching people's controls.
    let broken = without_condition(&template, "InactivityCheckFunctionRole", "Revocations");
    assert_eq!(
        problems(&broken),
        ["InactivityCheckFunctionRole may write any"]
    );
    let mut broader = template.clone();
    statement_mut(&mut broader, "InactivityCheckFunctionRole", "Revocations")["Condition"]["ForAllValues:StringLike"]
        ["dynamodb:LeadingKeys"] = serde_json::json!(["case#*", "cases#*", "user#*"]);
    assert_eq!(
        problems(&broader),
        ["InactivityCheckFunctionRole may write user#"]
    );
    // The operators reaching HR event claims.
    let mut broader = template;
    statement_mut(&mut broader, "OperatorFunctionRole", "Revocations")["Condition"]["ForAllValues:StringLike"]
        ["dynamodb:LeadingKeys"] = serde_json::json!(["case#*", "cases#*", "user#*", "event#*"]);
    assert_eq!(
        problems(&broader),
        ["OperatorFunctionRole may write event#"]
    );
}

/// Who may sign with the audit key, by its key policy: (principal, condition) for
/// each statement that allows `kms:Sign` (directly or by a wildcard or a grant).
fn audit_key_signers(template: &Value) -> Vec<(Value, Value)> {
    let statements =
        &template["Resources"]["AuditSigningKey"]["Properties"]["KeyPolicy"]["Statement"];
    as_list(statements)
        .into_iter()
        // A statement that exists only under a condition: its "true" branch.
        .map(|s| match s["Fn::If"].as_array() {
            Some(branches) => branches[1].clone(),
            None => s,
        })
        .filter(|s| s["Effect"] == "Allow")
        .filter(|s| {
            as_list(&s["Action"]).iter().any(|a| {
                let a = a.as_str().unwrap_or_default();
                a == "kms:Sign"
                    || a == "kms:*"
                    || a == "*"
                    || a.starts_with("kms:Sign")
                    || a == "kms:CreateGrant"
                    || a == "kms:Create*"
                    // Whoever may change the key policy may grant themselves Sign.
                    || a == "kms:PutKeyPolicy"
                    || a == "kms:Put*"
            })
        })
        .map(|s| (s["Principal"].clone(), s["Condition"].clone()))
        .collect()
}

fn key_policy(t: &mut Value) -> &mut Vec<Value> {
    t["Resources"]["AuditSigningKey"]["Properties"]["KeyPolicy"]["Statement"]
        .as_array_mut()
        .unwrap()
}

/// The audit key signs for this stack's functions only: no administrator, operator
/// or grant can make a signature an auditor would accept.
#[test]
fn only_the_stacks_functions_may_sign_audit_events() {
    let only_functions = |template: &Value| {
        let signers = audit_key_signers(template);
        !signers.is_empty()
            && signers.iter().all(|(_, condition)| {
                condition["ArnLike"]["aws:PrincipalArn"]
                    == serde_json::json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AWS::StackName}-*FunctionRole-*"})
            })
    };
    let template = real();
    assert_eq!(
        template["Resources"]["AuditSigningKey"]["Properties"]["KeySpec"],
        "ECC_NIST_P256"
    );
    assert!(
        only_functions(&template),
        "{:?}",
        audit_key_signers(&template)
    );
    let mut admins_sign = template.clone();
    key_policy(&mut admins_sign)[0]["Action"]
        .as_array_mut()
        .unwrap()
        .push("kms:*".into());
    assert!(!only_functions(&admins_sign));
    let mut granted = template.clone();
    key_policy(&mut granted)[0]["Action"]
        .as_array_mut()
        .unwrap()
        .push("kms:CreateGrant".into());
    assert!(!only_functions(&granted));
    let mut repolicied = template.clone();
    key_policy(&mut repolicied)[0]["Action"]
        .as_array_mut()
        .unwrap()
        .push("kms:PutKeyPolicy".into());
    assert!(!only_functions(&repolicied));
    // An operator role that may sign (operators act through the operator API).
    let mut operators_sign = template.clone();
    let mut extra = key_policy(&mut operators_sign)[1].clone();
    extra["Condition"] =
        serde_json::json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Operators"}});
    key_policy(&mut operators_sign).push(extra);
    assert!(!only_functions(&operators_sign));
    let mut anyone = template;
    key_policy(&mut anyone)[1]
        .as_object_mut()
        .unwrap()
        .remove("Condition");
    assert!(!only_functions(&anyone));
}

/// Anything wrong with how the anchor bucket keeps chain heads: Object Lock in
/// COMPLIANCE mode, and no role that could delete, overwrite the retention of, or
/// unlock an anchor.
fn anchor_problems(template: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let bucket = &template["Resources"]["AuditAnchorBucket"]["Properties"];
    if bucket["ObjectLockEnabled"] != true {
        problems.push("Object Lock is not enabled".to_owned());
    }
    if bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"] != "COMPLIANCE" {
        problems.push("default retention is not COMPLIANCE".to_owned());
    }
    // Object Lock keeps versions, not keys: every anchor write must ask S3 to
    // refuse an existing key, or a writer could add a newer version of an anchor.
    let policy = &template["Resources"]["AuditAnchorBucketPolicy"]["Properties"];
    let written_once = policy["Bucket"] == serde_json::json!({"Ref": "AuditAnchorBucket"})
        && as_list(&policy["PolicyDocument"]["Statement"])
            .iter()
            .any(|s| {
                s["Effect"] == "Deny"
                    && s["Principal"] == "*"
                    && as_list(&s["Action"]).contains(&"s3:PutObject".into())
                    && s["Resource"]
                        == serde_json::json!({"Fn::Sub": "${AuditAnchorBucket.Arn}/heads/*"})
                    && s["Condition"] == serde_json::json!({"Null": {"s3:if-none-match": "true"}})
            });
    if !written_once {
        problems.push("anchor writes without If-None-Match are not denied".to_owned());
    }
    for (role, resource) in template["Resources"].as_object().unwrap() {
        if resource["Type"] != "AWS::IAM::Role" {
            continue;
        }
        for policy in as_list(&resource["Properties"]["Policies"]) {
            for statement in as_list(&policy["PolicyDocument"]["Statement"]) {
                if !statement["Resource"]
                    .to_string()
                    .contains("AuditAnchorBucket")
                {
                    continue;
                }
                for action in as_list(&statement["Action"]) {
                    let action = action.as_str().unwrap_or_default();
                    if action != "s3:PutObject" {
                        problems.push(format!("{role}: {action} on the anchor bucket"));
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn audit_anchors_cannot_be_removed_by_anyone_lapse_deploys() {
    let template = real();
    assert_eq!(anchor_problems(&template), Vec::<String>::new());
    let mut governance = template.clone();
    governance["Resources"]["AuditAnchorBucket"]["Properties"]["ObjectLockConfiguration"]["Rule"]
        ["DefaultRetention"]["Mode"] = "GOVERNANCE".into();
    assert_eq!(
        anchor_problems(&governance),
        ["default retention is not COMPLIANCE"]
    );
    let mut overwriter = template.clone();
    overwriter["Resources"]["AuditAnchorBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        [0]["Condition"] = serde_json::json!({"Null": {"s3:if-match": "true"}});
    assert_eq!(
        anchor_problems(&overwriter),
        ["anchor writes without If-None-Match are not denied"]
    );
    let mut deleter = template;
    statement_mut(&mut deleter, "SweeperFunctionRole", "AuditAnchors")["Action"] =
        serde_json::json!(["s3:PutObject", "s3:DeleteObjectVersion"]);
    assert_eq!(
        anchor_problems(&deleter),
        ["SweeperFunctionRole: s3:DeleteObjectVersion on the anchor bucket"]
    );
}

/// Every route's authorizer: `(path, method, authorizer)`.
fn route_auth(template: &Value) -> Vec<(String, String, String)> {
    let body = &template["Resources"]["Api"]["Properties"]["Body"];
    let mut routes = Vec::new();
    for (path, operations) in body["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let auth: Vec<String> = as_list(&operation["security"])
                .iter()
                .flat_map(|s| s.as_object().unwrap().keys().cloned().collect::<Vec<_>>())
                .collect();
            routes.push((path.clone(), method.clone(), auth.join(",")));
        }
    }
    routes
}

/// Anything wrong with how the API authenticates: the operator routes take SigV4
/// (API Gateway's IAM authorizer, so the executor is who AWS authenticated), people's
/// routes take the JWT, only the HR webhook takes neither (it checks its own
/// bearer and HMAC), and the operators' policy reaches the operator routes only.
fn api_auth_problems(template: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let schemes =
        &template["Resources"]["Api"]["Properties"]["Body"]["components"]["securitySchemes"];
    if schemes["AWS_IAM"]["x-amazon-apigateway-authtype"] != "awsSigv4" {
        problems.push("no SigV4 security scheme".to_owned());
    }
    for (path, method, auth) in route_auth(template) {
        let expected = if path.starts_with("/v1/operator/") {
            "AWS_IAM"
        } else if path == "/api/v1/webhooks/hr-events" {
            "NONE"
        } else {
            "Jwt"
        };
        if auth != expected {
            problems.push(format!("{method} {path}: {auth}, expected {expected}"));
        }
    }
    let policy = &template["Resources"]["OperatorAccessPolicy"]["Properties"]["PolicyDocument"];
    for statement in as_list(&policy["Statement"]) {
        let resources: Vec<String> = as_list(&statement["Resource"])
            .iter()
            .map(resource_text)
            .collect();
        if as_list(&statement["Action"]) != [Value::String("execute-api:Invoke".into())]
            || resources.iter().any(|r| !r.ends_with("/*/*/v1/operator/*"))
        {
            problems.push(format!(
                "OperatorAccessPolicy reaches beyond the operator routes: {statement}"
            ));
        }
    }
    problems
}

#[test]
fn operator_routes_take_sigv4_and_people_take_the_jwt() {
    let template = real();
    assert_eq!(api_auth_problems(&template), Vec::<String>::new());
    assert!(
        route_auth(&template)
            .iter()
            .any(|(path, _, auth)| path == "/v1/operator/{proxy+}" && auth == "AWS_IAM")
    );
    // Broken copies: an operator route left to the JWT default, or opened up.
    for (from, to, expected) in [
        (
            "            Auth:\n              Authorizer: AWS_IAM\n",
            "",
            "x-amazon-apigateway-any-method /v1/operator/{proxy+}: Jwt, expected AWS_IAM",
        ),
        (
            "Authorizer: AWS_IAM",
            "Authorizer: NONE",
            ": NONE, expected AWS_IAM",
        ),
    ] {
        let (broken, _) = translate(&broken_copy(from, to)).unwrap();
        let problems = api_auth_problems(&broken);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{problems:?}"
        );
    }
    let mut broader = template;
    broader["Resources"]["OperatorAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
        ["Resource"] = serde_json::json!({"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/*"});
    assert!(
        api_auth_problems(&broader)
            .iter()
            .any(|p| p.starts_with("OperatorAccessPolicy reaches beyond"))
    );
}

// ---- each function's environment and role name the same resources ---------------

/// The template's own resources a value names: `Ref`, `Fn::GetAtt` and `${...}` in
/// `Fn::Sub`, plus a state machine or managed policy named by its ARN (the functions
/// cannot `Ref` the state machines that invoke them, nor the boundary that names
/// their API, without a cycle).
fn named_resources(template: &Value, v: &Value, into: &mut std::collections::BTreeSet<String>) {
    let resources = template["Resources"].as_object().unwrap();
    let add = |into: &mut std::collections::BTreeSet<String>, id: &str| {
        if resources.contains_key(id) {
            into.insert(id.to_owned());
        }
    };
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("Ref", Value::String(id)) => add(into, id),
                    ("Fn::GetAtt", Value::Array(a)) => add(into, a[0].as_str().unwrap_or_default()),
                    ("Fn::Sub", x) => {
                        let text = match x {
                            Value::Array(a) => a[0].as_str().unwrap_or_default(),
                            other => other.as_str().unwrap_or_default(),
                        };
                        for part in text.split("${").skip(1) {
                            let id = part.split(['}', '.']).next().unwrap_or_default();
                            add(into, id);
                        }
                        let by_name = [
                            (
                                ":stateMachine:",
                                "AWS::StepFunctions::StateMachine",
                                "StateMachineName",
                            ),
                            (":policy/", "AWS::IAM::ManagedPolicy", "ManagedPolicyName"),
                        ];
                        for (marker, kind, name_key) in by_name {
                            let Some(name) = text.split(marker).nth(1) else {
                                continue;
                            };
                            for (id, r) in resources {
                                if r["Type"] == kind && r["Properties"][name_key]["Fn::Sub"] == name
                                {
                                    add(into, id);
                                }
                            }
                        }
                        if let Value::Array(a) = x {
                            named_resources(template, &a[1], into);
                        }
                    }
                    (_, x) => named_resources(template, x, into),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| named_resources(template, x, into)),
        _ => {}
    }
}

/// For each function, what its environment names that its role does not reach, and
/// what its role reaches that its environment does not name. The code builds its
/// adapters from its environment alone (the deploy rehearsal checks it reads every
/// variable it is given), so a resource only in the role is a permission no code
/// uses, and one only in the environment fails at run time. Resources the Lambda
/// service itself uses for the function (its dead-letter queue, a stream mapping's
/// failure destination) are not the code's.
fn environment_role_mismatches(template: &Value) -> Vec<String> {
    let resources = template["Resources"].as_object().unwrap();
    let mut problems = Vec::new();
    for (id, function) in resources {
        if function["Type"] != "AWS::Lambda::Function" {
            continue;
        }
        let props = &function["Properties"];
        let mut named = std::collections::BTreeSet::new();
        named_resources(template, &props["Environment"]["Variables"], &mut named);
        let mut service = std::collections::BTreeSet::new();
        named_resources(template, &props["DeadLetterConfig"], &mut service);
        for mapping in resources.values() {
            if mapping["Type"] == "AWS::Lambda::EventSourceMapping"
                && mapping["Properties"]["FunctionName"]["Ref"] == id.as_str()
            {
                let config = &mapping["Properties"]["DestinationConfig"];
                named_resources(template, config, &mut service);
            }
        }
        let role = props["Role"]["Fn::GetAtt"][0].as_str().unwrap();
        // The function's own role, named so a resource policy it writes can admit
        // it (a vendor's password secret), is not a resource the code calls.
        named.remove(role);
        let mut reached = std::collections::BTreeSet::new();
        let mut conditioned = std::collections::BTreeSet::new();
        for policy in as_list(&resources[role]["Properties"]["Policies"]) {
            for statement in as_list(&policy["PolicyDocument"]["Statement"]) {
                named_resources(template, &statement["Resource"], &mut reached);
                named_resources(template, &statement["Condition"], &mut conditioned);
            }
        }
        // A resource a condition requires (the users' boundary) is reached when
        // the code names it too; a condition alone grants nothing.
        reached.extend(conditioned.intersection(&named).cloned());
        reached.retain(|r| !service.contains(r));
        for r in named.difference(&reached) {
            problems.push(format!(
                "{id}: its environment names {r}, its role reaches it not"
            ));
        }
        for r in reached.difference(&named) {
            problems.push(format!(
                "{id}: its role reaches {r}, its environment names it not"
            ));
        }
    }
    problems
}

#[test]
fn each_functions_environment_names_what_its_role_reaches() {
    let template = real();
    assert_eq!(environment_role_mismatches(&template), Vec::<String>::new());
    // A permission no code uses: the inactivity check's old reach into requests.
    let mut broader = template.clone();
    let statements = broader["Resources"]["InactivityCheckFunctionRole"]["Properties"]["Policies"]
        [0]["PolicyDocument"]["Statement"]
        .as_array_mut()
        .unwrap();
    statements.push(serde_json::json!({
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem"],
        "Resource": {"Fn::GetAtt": ["RequestsTable", "Arn"]},
    }));
    assert_eq!(
        environment_role_mismatches(&broader),
        ["InactivityCheckFunction: its role reaches RequestsTable, its environment names it not"]
    );
    // A resource only a condition names (the vendors' boundary) counts as reached
    // only while the code names it: without its variable nothing is left over, and
    // with the condition gone the variable is unmatched.
    let mut unbound = template.clone();
    let vendor_env =
        &mut unbound["Resources"]["VendorsFunction"]["Properties"]["Environment"]["Variables"];
    vendor_env
        .as_object_mut()
        .unwrap()
        .remove("LAPSE_MANAGED_USER_BOUNDARY");
    assert_eq!(environment_role_mismatches(&unbound), Vec::<String>::new());
    let unconditioned = without_condition(
        &without_condition(&template, "VendorsFunctionRole", "CreateVendorUsers"),
        "VendorsFunctionRole",
        "VendorPolicies",
    );
    assert_eq!(
        environment_role_mismatches(&unconditioned),
        ["VendorsFunction: its environment names ManagedUserBoundary, its role reaches it not"]
    );
    // A resource the code would build a client for and be refused at run time.
    let mut narrower = template;
    narrower["Resources"]["InactivityCheckFunction"]["Properties"]["Environment"]["Variables"]["LAPSE_USERS_TOPIC_ARN"] =
        serde_json::json!({"Ref": "UsersTopic"});
    assert_eq!(
        environment_role_mismatches(&narrower),
        ["InactivityCheckFunction: its environment names UsersTopic, its role reaches it not"]
    );
}

/// Roles that may put events on the HR bus, with the `events:source` values their
/// statement is limited to (`None`: any source). An HR event (`lapse.hr`) starts a
/// revocation, so only the webhook may put one.
fn bus_writers(template: &Value) -> Vec<(String, Option<Value>)> {
    let mut writers = Vec::new();
    for (role, resource) in template["Resources"].as_object().unwrap() {
        if resource["Type"] != "AWS::IAM::Role" {
            continue;
        }
        for policy in as_list(&resource["Properties"]["Policies"]) {
            for statement in as_list(&policy["PolicyDocument"]["Statement"]) {
                let puts = as_list(&statement["Action"])
                    .iter()
                    .any(|a| matches!(a.as_str(), Some("events:PutEvents" | "events:*" | "*")));
                let on_bus = as_list(&statement["Resource"])
                    .iter()
                    .any(|r| resource_text(r).contains("HrEventBus") || r == "*");
                if statement["Effect"] == "Allow" && puts && on_bus {
                    let source = condition_equals(&statement, "events:source").cloned();
                    writers.push((role.clone(), source));
                }
            }
        }
    }
    writers.sort_by(|a, b| a.0.cmp(&b.0));
    writers
}

fn bus_problems(template: &Value) -> Vec<String> {
    // The bus itself refuses lapse.hr events from anyone but the webhook's role.
    let policy = &template["Resources"]["HrEventBusPolicy"]["Properties"];
    let statement = &policy["Statement"];
    let guarded = policy["EventBusName"] == serde_json::json!({"Ref": "HrEventBus"})
        && statement["Effect"] == "Deny"
        && statement["Principal"] == "*"
        && statement["Action"] == "events:PutEvents"
        && statement["Condition"]["StringEquals"]["events:source"] == "lapse.hr"
        && statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
            == serde_json::json!({"Fn::GetAtt": ["HrWebhookFunctionRole", "Arn"]});
    let unguarded =
        (!guarded).then(|| "the bus does not refuse others' lapse.hr events".to_owned());
    bus_writers(template)
        .into_iter()
        .filter(|(role, source)| {
            role != "HrWebhookFunctionRole"
                && source.as_ref().is_none_or(|s| {
                    as_list(s).iter().any(|v| {
                        v.as_str()
                            .is_none_or(|v| v == "lapse.hr" || v.contains('*'))
                    })
                })
        })
        .map(|(role, source)| format!("{role} may put HR events on the bus (source {source:?})"))
        .chain(unguarded)
        .collect()
}

#[test]
fn only_the_webhook_may_put_hr_events_on_the_bus() {
    let template = real();
    let writers = bus_writers(&template);
    assert!(
        writers
            .iter()
            .any(|(role, source)| role == "ApprovalFunctionRole"
                && source == &Some(serde_json::json!("lapse.incident"))),
        "{writers:?}"
    );
    assert_eq!(bus_problems(&template), Vec::<String>::new());
    // A bus anyone in the account may put HR events on.
    let mut open = template.clone();
    open["Resources"]
        .as_object_mut()
        .unwrap()
        .remove("HrEventBusPolicy");
    assert_eq!(
        bus_problems(&open),
        ["the bus does not refuse others' lapse.hr events"]
    );
    // The approval role without its source condition could start revocations.
    let broken = without_condition(&template, "ApprovalFunctionRole", "Incidents");
    assert_eq!(
        bus_problems(&broken),
        ["ApprovalFunctionRole may put HR events on the bus (source None)"]
    );
}

/// What is wrong with how the HR webhook is shielded: its own throttle on the
/// route the webhook function serves, its refusals and throttling counted from
/// the access log and alarmed to security, and the sender networks passed to it.
fn webhook_shield_problems(template: &Value) -> Vec<String> {
    let route = "POST /api/v1/webhooks/hr-events";
    let mut problems = Vec::new();
    let resources = template["Resources"].as_object().unwrap();
    let throttled = resources.values().any(|r| {
        r["Type"] == "AWS::ApiGatewayV2::Stage"
            && r["Properties"]["RouteSettings"][route]["ThrottlingRateLimit"]
                == serde_json::json!({"Ref": "WebhookRateLimit"})
    });
    if !throttled {
        problems.push(format!("{route} has no throttle of its own"));
    }
    for metric in ["WebhookRejected", "WebhookThrottled"] {
        let counted = resources.values().any(|r| {
            r["Type"] == "AWS::Logs::MetricFilter"
                && r["Properties"]["LogGroupName"] == serde_json::json!({"Ref": "ApiAccessLogs"})
                && r["Properties"]["FilterPattern"]
                    .as_str()
                    .is_some_and(|p| p.contains(&format!("$.route = \"{route}\"")))
                && r["Properties"]["MetricTransformations"][0]["MetricName"] == metric
        });
        let alarmed = resources.values().any(|r| {
            r["Type"] == "AWS::CloudWatch::Alarm"
                && r["Properties"]["MetricName"] == metric
                && r["Properties"]["AlarmActions"]
                    .to_string()
                    .contains("SecurityTopic")
        });
        if !counted || !alarmed {
            problems.push(format!("{metric}: counted {counted}, alarmed {alarmed}"));
        }
    }
    let networks = &template["Resources"]["HrWebhookFunction"]["Properties"]["Environment"]["Variables"]
        ["LAPSE_HR_SENDER_NETWORKS"];
    if networks != &serde_json::json!({"Ref": "HrSenderNetworks"}) {
        problems.push("the webhook is not given HrSenderNetworks".to_owned());
    }
    problems
}

#[test]
fn the_webhook_is_throttled_alone_and_its_refusals_are_alarmed() {
    let template = real();
    assert_eq!(webhook_shield_problems(&template), Vec::<String>::new());
    let mut t = template.clone();
    for resource in t["Resources"].as_object_mut().unwrap().values_mut() {
        if resource["Type"] == "AWS::ApiGatewayV2::Stage" {
            resource["Properties"]
                .as_object_mut()
                .unwrap()
                .remove("RouteSettings");
        }
    }
    assert_eq!(
        webhook_shield_problems(&t),
        ["POST /api/v1/webhooks/hr-events has no throttle of its own"]
    );
    let mut t = template.clone();
    t["Resources"]
        .as_object_mut()
        .unwrap()
        .remove("WebhookThrottledAlarm");
    assert_eq!(
        webhook_shield_problems(&t),
        ["WebhookThrottled: counted true, alarmed false"]
    );
}

/// The template's `ScheduleV2` events as (function name suffix, interval): read
/// from the template's text, each under the function whose `FunctionName` is
/// `${AWS::StackName}-<suffix>`.
fn declared_schedules(text: &str) -> Vec<(String, chrono::TimeDelta)> {
    let mut found = Vec::new();
    let mut function = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line
            .strip_prefix("FunctionName: !Sub \"${AWS::StackName}-")
            .and_then(|n| n.strip_suffix('"'))
        {
            function = Some(name.to_owned());
        }
        if let Some(rate) = line
            .strip_prefix("ScheduleExpression: rate(")
            .and_then(|r| r.strip_suffix(')'))
        {
            let (n, unit) = rate.split_once(' ').unwrap();
            let n: i64 = n.parse().unwrap();
            let every = match unit.trim_end_matches('s') {
                "minute" => chrono::TimeDelta::minutes(n),
                "hour" => chrono::TimeDelta::hours(n),
                "day" => chrono::TimeDelta::days(n),
                other => panic!("unknown rate unit {other}"),
            };
            found.push((
                function.clone().expect("a schedule outside a function"),
                every,
            ));
        }
    }
    found
}

/// Issue 22: the local stack runs the stack's own schedules (`serve`), and they are
/// exactly the template's: a schedule added to, or changed in, one and not the
/// other fails here.
#[test]
fn the_local_stack_runs_exactly_the_templates_schedules() {
    let local: Vec<(String, chrono::TimeDelta)> = lapse_local::host::STACK_SCHEDULES
        .iter()
        .map(|(f, every)| ((*f).to_owned(), *every))
        .collect();
    assert_eq!(declared_schedules(&template_text()), local);
    let changed = template_text().replacen("rate(1 day)", "rate(12 hours)", 1);
    assert_ne!(
        declared_schedules(&changed),
        local,
        "a changed rate is seen"
    );
}

// ---- the managed users' boundary keeps them off Lapse --------------------------------

/// What a managed person's boundary must keep them from, beyond the stack's own
/// resources (the deploy rehearsal compares those with what the stack created): the
/// API's control plane, the groups and secrets Lapse grants and drops, renaming
/// themselves, lifting a boundary, making a user or role outside the boundary, and
/// re-pointing the functions' event-source mappings.
fn boundary_gaps(template: &Value) -> Vec<String> {
    let boundary = &template["Resources"]["ManagedUserBoundary"]["Properties"];
    let mut gaps = Vec::new();
    let name = boundary["ManagedPolicyName"]["Fn::Sub"]
        .as_str()
        .unwrap_or_default();
    if !resource_text(&boundary_arn()).ends_with(&format!(":policy/{name}")) {
        gaps.push(format!(
            "the boundary is named {name}, the roles name another"
        ));
    }
    let statements = as_list(&boundary["PolicyDocument"]["Statement"]);
    let denied = |action: &str, resource: &str, condition: Option<(&str, &str, Value)>| {
        statements.iter().any(|s| {
            s["Effect"] == "Deny"
                && as_list(&s["Action"])
                    .iter()
                    .any(|a| a == action || a == "*")
                && as_list(&s["Resource"])
                    .iter()
                    .any(|r| resource_text(r) == resource)
                && match &condition {
                    None => s["Condition"].is_null(),
                    Some((op, key, value)) => s["Condition"][op][key] == *value,
                }
        })
    };
    let everything = [
        "arn:${AWS::Partition}:apigateway:${AWS::Region}::/apis/${Api}",
        "arn:${AWS::Partition}:apigateway:${AWS::Region}::/apis/${Api}/*",
        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/*/*/v1/operator/*",
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:group/lapse-*",
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:lapse/*",
    ];
    for resource in everything {
        if !denied("*", resource, None) {
            gaps.push(format!("{resource} is not denied"));
        }
    }
    for action in [
        "iam:UpdateUser",
        "iam:DeleteUserPermissionsBoundary",
        "iam:DeleteRolePermissionsBoundary",
        "iam:TagUser",
        "iam:UntagUser",
    ] {
        if !denied(action, "*", None) {
            gaps.push(format!("{action} is not denied"));
        }
    }
    for action in [
        "iam:CreateUser",
        "iam:CreateRole",
        "iam:PutUserPermissionsBoundary",
        "iam:PutRolePermissionsBoundary",
    ] {
        let unbounded = ("StringNotEquals", "iam:PermissionsBoundary", boundary_arn());
        if !denied(action, "*", Some(unbounded)) {
            gaps.push(format!("{action} is not denied without the boundary"));
        }
    }
    let functions = serde_json::json!({"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-*"});
    for action in [
        "lambda:CreateEventSourceMapping",
        "lambda:UpdateEventSourceMapping",
        "lambda:DeleteEventSourceMapping",
    ] {
        let lapse = ("ArnLike", "lambda:FunctionArn", functions.clone());
        if !denied(action, "*", Some(lapse)) {
            gaps.push(format!("{action} is not denied on Lapse's functions"));
        }
    }
    gaps
}

#[test]
fn the_boundary_keeps_managed_people_off_lapse() {
    let template = real();
    assert_eq!(boundary_gaps(&template), Vec::<String>::new());
    let statement = |t: &Value, sid: &str| -> usize {
        let list =
            t["Resources"]["ManagedUserBoundary"]["Properties"]["PolicyDocument"]["Statement"]
                .as_array()
                .unwrap();
        list.iter().position(|s| s["Sid"] == sid).unwrap()
    };
    // The API's control plane left out: its authorizer could be re-pointed.
    let mut open_api = template.clone();
    let i = statement(&open_api, "NotLapseItself");
    let resources =
        open_api["Resources"]["ManagedUserBoundary"]["Properties"]["PolicyDocument"]["Statement"]
            [i]["Resource"]
            .as_array_mut()
            .unwrap();
    resources.retain(|r| !resource_text(r).contains(":apigateway:"));
    assert_eq!(
        boundary_gaps(&open_api),
        [
            "arn:${AWS::Partition}:apigateway:${AWS::Region}::/apis/${Api} is not denied",
            "arn:${AWS::Partition}:apigateway:${AWS::Region}::/apis/${Api}/* is not denied",
        ]
    );
    // Creating a role without the boundary: a managed person could make an
    // unbounded role and assume it.
    let mut unbounded = template.clone();
    let i = statement(&unbounded, "WhatTheyMakeIsBounded");
    unbounded["Resources"]["ManagedUserBoundary"]["Properties"]["PolicyDocument"]["Statement"][i]
        ["Condition"]["StringNotEquals"]["iam:PermissionsBoundary"] =
        serde_json::json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/other"});
    assert_eq!(
        boundary_gaps(&unbounded).len(),
        4,
        "{:?}",
        boundary_gaps(&unbounded)
    );
    // Renaming oneself: a termination would find nobody.
    let mut rename = template.clone();
    let i = statement(&rename, "NotTheirOwnBoundaryOrTag");
    rename["Resources"]["ManagedUserBoundary"]["Properties"]["PolicyDocument"]["Statement"][i]
        ["Action"]
        .as_array_mut()
        .unwrap()
        .retain(|a| a != "iam:UpdateUser");
    assert_eq!(boundary_gaps(&rename), ["iam:UpdateUser is not denied"]);
    // The roles naming a boundary of another name.
    let mut renamed = template;
    renamed["Resources"]["ManagedUserBoundary"]["Properties"]["ManagedPolicyName"] =
        serde_json::json!({"Fn::Sub": "${AWS::StackName}-boundary"});
    assert_eq!(
        boundary_gaps(&renamed),
        ["the boundary is named ${AWS::StackName}-boundary, the roles name another"]
    );
}

// ---- no emulator gap is declared on AWS ------------------------------------------------

/// The functions that declare `LAPSE_EMULATOR_GAPS` in the template: a declared gap
/// switches a check off (a grantee's boundary, a credential listing), which only an
/// emulator may ask for.
fn declared_gaps(template: &Value) -> Vec<String> {
    template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| {
            r["Properties"]["Environment"]["Variables"]
                .get("LAPSE_EMULATOR_GAPS")
                .is_some()
        })
        .map(|(id, _)| id.clone())
        .collect()
}

#[test]
fn no_deployed_function_declares_an_emulator_gap() {
    let template = real();
    assert_eq!(declared_gaps(&template), Vec::<String>::new());
    let mut gapped = template;
    gapped["Resources"]["GrantFunction"]["Properties"]["Environment"]["Variables"]["LAPSE_EMULATOR_GAPS"] =
        serde_json::json!("iam:UserPermissionsBoundary");
    assert_eq!(declared_gaps(&gapped), ["GrantFunction"]);
}

/// Who may invoke which Lambda function, per function role: `(role, resource)`
/// for every `lambda:InvokeFunction` allowed, a statement under `Fn::If` named
/// with its condition (`If(Cond):<resource>`).
fn function_invokers(template: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (role, resource) in template["Resources"].as_object().unwrap() {
        if resource["Type"] != "AWS::IAM::Role" || !role.ends_with("FunctionRole") {
            continue;
        }
        for policy in as_list(&resource["Properties"]["Policies"]) {
            for statement in as_list(&policy["PolicyDocument"]["Statement"]) {
                let (statement, prefix) = match statement.get("Fn::If") {
                    Some(branches) => (
                        branches[1].clone(),
                        format!("If({}):", branches[0].as_str().unwrap_or_default()),
                    ),
                    None => (statement, String::new()),
                };
                let invokes = as_list(&statement["Action"]).iter().any(|a| {
                    matches!(a.as_str(), Some("lambda:InvokeFunction" | "lambda:*" | "*"))
                });
                if statement["Effect"] == "Allow" && invokes {
                    for r in as_list(&statement["Resource"]) {
                        found.push((role.clone(), format!("{prefix}{}", resource_text(&r))));
                    }
                }
            }
        }
    }
    found
}

/// `RotateSecret` needs the caller allowed to invoke the rotation function: each
/// role that rotates checked-out credentials may invoke exactly the functions the
/// stack lists in `RotationFunctionArns` (none when empty), and no function role
/// may invoke anything else.
#[test]
fn roles_that_rotate_may_invoke_the_listed_rotation_functions_alone() {
    fn problems(template: &Value) -> Vec<String> {
        let invokers = function_invokers(template);
        let mut problems: Vec<String> = invokers
            .iter()
            .filter(|(_, r)| r != "If(HasRotationFunctions):<RotationFunctionArns>")
            .map(|(role, r)| format!("{role} may invoke {r}"))
            .collect();
        for (role, resource) in template["Resources"].as_object().unwrap() {
            if resource["Type"] != "AWS::IAM::Role" {
                continue;
            }
            let rotates = resource["Properties"]["Policies"]
                .to_string()
                .contains("secretsmanager:RotateSecret");
            let may_invoke = invokers.iter().any(|(r, _)| r == role);
            if rotates && !may_invoke {
                problems.push(format!(
                    "{role} rotates secrets but may not invoke their functions"
                ));
            }
        }
        problems
    }
    let template = real();
    assert_eq!(problems(&template), Vec::<String>::new());
    assert_eq!(
        function_invokers(&template).len(),
        4,
        "{:?}",
        function_invokers(&template)
    );
    assert_eq!(
        template["Conditions"]["HasRotationFunctions"],
        serde_json::json!({"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "RotationFunctionArns"}]}, ""]}]})
    );
    // Broken: the credentials role loses its statement; the sweeper may invoke any
    // function.
    let mut broken = template.clone();
    let statements = broken["Resources"]["CredentialsFunctionRole"]["Properties"]["Policies"][0]
        ["PolicyDocument"]["Statement"]
        .as_array_mut()
        .unwrap();
    statements.retain(|s| s.get("Fn::If").is_none());
    let found = problems(&broken);
    assert!(
        found.contains(
            &"CredentialsFunctionRole rotates secrets but may not invoke their functions"
                .to_owned()
        ),
        "{found:?}"
    );
    let mut broken = template.clone();
    broken["Resources"]["SweeperFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        ["Statement"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"}));
    let found = problems(&broken);
    assert!(
        found.contains(&"SweeperFunctionRole may invoke *".to_owned()),
        "{found:?}"
    );
}
