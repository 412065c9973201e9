//! Deploy rehearsal: `infra/template.yaml`, translated as `sam deploy` would after
//! packaging, is created as a CloudFormation stack in the emulator
//! (`tools/rehearse_deploy.py`). Then a JIT grant and an HR termination run through
//! that stack's resources, named as the stack named them, each function with the
//! environment CloudFormation gave it and the credentials of its own role, while
//! the emulator enforces IAM on every call.
//!
//! What this cannot show (API Gateway's JWT authorizer, CloudWatch alarms, resource
//! and condition scoping, which moto does not evaluate) is listed in
//! `docs/deploy-rehearsal.md` and checked elsewhere (`tests/template.rs`).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use chrono::Utc;
use lapse_aws::sdk::{Credentials, load_local_as};
use lapse_aws::sns::Topics;
use lapse_aws::tables::Tables;
use lapse_cli::client::ApiClient;
use lapse_core::access::grant::document_expiry;
use lapse_core::ports::Clock;
use lapse_core::revocation::webhook::sign;
use lapse_lambda::config::Env;
use lapse_local::host::{Binding, Bindings, Definitions, LocalStack, StackOptions};
use lapse_local::provision::StackConfig;
use lapse_local::workflows::RunOptions;
use lapse_testkit::{Emulator, tools_python, workspace_root};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const STACK: &str = "lapse-rehearsal";
const WEBHOOK_TOKEN: &str = "rehearsal-hr-token";
const WEBHOOK_SECRET: &str = "whsec_cmVoZWFyc2FsLWhyLXNpZ25pbmctc2VjcmV0LTMyYg==";

/// What `tools/rehearse_deploy.py` read back from the stack.
struct Deployed {
    doc: Value,
}

impl Deployed {
    fn resource(&self, logical_id: &str) -> String {
        self.doc["resources"][logical_id]["physical_id"]
            .as_str()
            .unwrap_or_else(|| panic!("the stack has no {logical_id}"))
            .to_owned()
    }

    fn env(&self, function: &str) -> BTreeMap<String, String> {
        serde_json::from_value(self.doc["functions"][function]["environment"].clone()).unwrap()
    }

    fn functions(&self) -> Vec<String> {
        self.doc["functions"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }
}

/// A role session's (or the operator's) credentials from the rehearsal document.
fn credentials(value: &Value) -> Credentials {
    Credentials::new(
        value["access_key_id"].as_str().unwrap(),
        value["secret_access_key"].as_str().unwrap(),
        value["session_token"].as_str().map(str::to_owned),
        None,
        "rehearsal",
    )
}

/// What an operator does after `sam deploy`: set the webhook credentials (the stack
/// creates them empty) and onboard people as the docs say, tagged
/// `lapse:managed=true` with the stack's permissions boundary.
async fn onboard(
    stack: &LocalStack,
    operator: &SdkConfig,
    d: &Deployed,
    users: &[&str],
) -> aws_sdk_iam::Client {
    aws_sdk_secretsmanager::Client::new(operator)
        .put_secret_value()
        .secret_id(&stack.config.webhook_secret_id)
        .secret_string(
            serde_json::json!({"bearer_tokens": [WEBHOOK_TOKEN], "signing_secrets": [WEBHOOK_SECRET]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let iam = aws_sdk_iam::Client::new(operator);
    for user in users {
        iam.create_user()
            .user_name(*user)
            .tags(lapse_local::provision::managed_tag())
            .permissions_boundary(d.resource("ManagedUserBoundary"))
            .send()
            .await
            .unwrap();
    }
    iam
}

async fn deploy(emulator: &Emulator) -> Deployed {
    deploy_template(emulator, &workspace_root().join("infra/template.yaml")).await
}

async fn deploy_template(emulator: &Emulator, template: &std::path::Path) -> Deployed {
    let out = workspace_root().join(format!(
        "target/rehearsal-{}-{}.json",
        std::process::id(),
        emulator.endpoint().rsplit(':').next().unwrap_or_default()
    ));
    let status = std::process::Command::new(tools_python().unwrap())
        .arg(workspace_root().join("tools/rehearse_deploy.py"))
        .args(["--endpoint", emulator.endpoint(), "--stack", STACK, "--out"])
        .arg(&out)
        .arg("--template")
        .arg(template)
        .args([
            "--param",
            &format!("JwtIssuer={}", lapse_local::issuer::ISSUER),
            "--param",
            &format!("JwtAudience={}", lapse_local::issuer::AUDIENCE),
            "--param",
            &format!(
                "OperatorArns={}",
                lapse_local::provision::operator_arns(STACK)
            ),
            "--param",
            &format!("RotationFunctionArns={}", rotation_function()),
        ])
        .status()
        .unwrap();
    assert!(status.success(), "the stack could not be created: {status}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    Deployed { doc }
}

/// The shipped catalog's rotation function for its checked-out credential.
fn rotation_function() -> String {
    credential().rotation_function
}

/// The shipped catalog's checked-out credential.
fn credential() -> lapse_core::policy::Checkout {
    lapse_core::testing::catalog()
        .resources()
        .find_map(|r| r.checkout.clone())
        .expect("the shipped catalog checks out a credential")
}

/// The stack's names, from the stack's own resources.
fn stack_config(d: &Deployed) -> StackConfig {
    // The two secrets are created by the harness (moto's CloudFormation does not
    // create secrets); the functions' environment carries their ARNs.
    let webhook_env = d.env("hr-webhook");
    StackConfig {
        prefix: STACK.to_owned(),
        tables: Tables {
            requests: d.resource("RequestsTable"),
            audit: d.resource("AuditTable"),
            ledger: d.resource("LedgerTable"),
        },
        revocations_table: d.resource("RevocationsTable"),
        people_table: d.resource("PeopleTable"),
        event_bus: d.resource("HrEventBus"),
        webhook_secret_id: webhook_env["LAPSE_WEBHOOK_SECRET"].clone(),
        topics: Topics {
            users: d.resource("UsersTopic"),
            approvers: d.resource("ApproversTopic"),
            security: d.resource("SecurityTopic"),
        },
        audit_key: d.env("grant")["LAPSE_AUDIT_KEY_ID"].clone(),
        audit_anchors: d.env("grant")["LAPSE_AUDIT_ANCHOR_BUCKET"].clone(),
        state_machine_arn: d.doc["state_machines"]["GrantLifecycle"]["arn"]
            .as_str()
            .unwrap()
            .to_owned(),
        revocation_state_machine_arn: d.doc["state_machines"]["RevocationWorkflow"]["arn"]
            .as_str()
            .unwrap()
            .to_owned(),
        break_glass_state_machine_arn: d.doc["state_machines"]["BreakGlassReview"]["arn"]
            .as_str()
            .unwrap()
            .to_owned(),
        managed_user_path: d.env("vendors")["LAPSE_MANAGED_USER_PATH"].clone(),
        managed_user_boundary: d.resource("ManagedUserBoundary"),
        router_queue_url: d.doc["router_queue_url"].as_str().unwrap().to_owned(),
    }
}

async fn start(emulator: &Emulator, d: &Deployed) -> (LocalStack, SdkConfig) {
    let operator = load_local_as(emulator.endpoint(), credentials(&d.doc["operator"])).await;
    let mut bindings = Bindings::uniform(
        Env::from_pairs(Vec::<(String, String)>::new()),
        operator.clone(),
    );
    let mut envs = BTreeMap::new();
    for function in d.functions() {
        let role = load_local_as(
            emulator.endpoint(),
            credentials(&d.doc["functions"][&function]["credentials"]),
        )
        .await;
        // The behaviour gaps the harness declares to the functions: see
        // `iam:ListServiceSpecificCredentials` and `iam:UserPermissionsBoundary` in
        // docs/deploy-rehearsal.md.
        let env = Env::from_pairs(d.env(&function).into_iter().chain([(
            "LAPSE_EMULATOR_GAPS".to_owned(),
            lapse_aws::iam::moto_gaps(),
        )]));
        envs.insert(function.clone(), env.clone());
        bindings = bindings.bind(&function, Binding { env, sdk: role });
    }
    // The deployed definitions, substituted by CloudFormation.
    let dir = workspace_root().join(format!(
        "target/rehearsal-{}-{}",
        std::process::id(),
        emulator.endpoint().rsplit(':').next().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = BTreeMap::new();
    for logical_id in ["GrantLifecycle", "RevocationWorkflow", "BreakGlassReview"] {
        let path = dir.join(format!("{logical_id}.asl.json"));
        std::fs::write(
            &path,
            d.doc["state_machines"][logical_id]["definition"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        paths.insert(logical_id, path);
    }
    let stack = LocalStack::serve(
        stack_config(d),
        bindings,
        Definitions {
            grant_lifecycle: paths["GrantLifecycle"].clone(),
            revocation: paths["RevocationWorkflow"].clone(),
            break_glass_review: paths["BreakGlassReview"].clone(),
            substitutions: serde_json::json!({}),
        },
        operator.clone(),
        StackOptions {
            prefix: STACK.to_owned(),
            issuer: None,
            run: RunOptions::default(),
            port: 0,
        },
    )
    .await
    .unwrap();
    // Each function, built by its own constructor, read every variable it was given.
    let never_read: Vec<String> = envs
        .iter()
        .flat_map(|(function, env)| unread(function, &d.env(function), env))
        .collect();
    assert_eq!(never_read, Vec::<String>::new());
    // And the check can fail: the inactivity check, had it been given the ledger,
    // would never have read it.
    let mut broader = d.env("inactivity-check");
    broader.insert("LAPSE_LEDGER_TABLE".into(), d.resource("LedgerTable"));
    assert_eq!(
        unread("inactivity-check", &broader, &envs["inactivity-check"]),
        ["inactivity-check is given LAPSE_LEDGER_TABLE and never reads it"]
    );
    (stack, operator)
}

/// The `LAPSE_*` variables CloudFormation gave `function` that its constructor
/// never asked for: a resource named in its environment (and so, by
/// `tests/template.rs`, reached by its role) that no code of its uses.
fn unread(function: &str, given: &BTreeMap<String, String>, env: &Env) -> Vec<String> {
    let asked = env.asked();
    given
        .keys()
        .filter(|name| name.starts_with("LAPSE_") && !asked.contains(name.as_str()))
        .map(|name| format!("{function} is given {name} and never reads it"))
        .collect()
}

/// Every `LAPSE_*` value a function reads names something the stack holds: a
/// resource's physical id or ARN, or one of the secrets the harness created (or is
/// a parameter: the managed users' IAM path, the operators' ARNs, the HR
/// sender's networks).
fn environment_names_the_stack(d: &Deployed) {
    let mut known: Vec<String> = d.doc["resources"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|r| r["physical_id"].as_str().map(str::to_owned))
        .collect();
    for machine in d.doc["state_machines"].as_object().unwrap().values() {
        known.push(machine["arn"].as_str().unwrap().to_owned());
    }
    for function in d.functions() {
        for (name, value) in d.env(&function) {
            if !name.starts_with("LAPSE_") {
                continue;
            }
            let secret =
                value.contains(":secretsmanager:") && value.contains(&format!(":secret:{STACK}-"));
            // The parameters a function reads: the managed users' IAM path, and
            // the operators (IAM users and roles outside the stack, by ARN).
            let path =
                name == "LAPSE_MANAGED_USER_PATH" && value.starts_with('/') && value.ends_with('/');
            let operators = name == "LAPSE_OPERATORS"
                && value.split(',').all(|arn| arn.starts_with("arn:aws:iam::"));
            // The HR sender's networks: CIDR blocks, or none.
            let networks = name == "LAPSE_HR_SENDER_NETWORKS"
                && lapse_core::revocation::webhook::SenderNetworks::parse(&value).is_ok();
            assert!(
                secret
                    || path
                    || operators
                    || networks
                    || known.iter().any(|k| *k == value
                        || value.ends_with(&format!(":{k}"))
                        || value.ends_with(&format!("/{k}"))),
                "{function}: {name}={value} names nothing the stack created"
            );
        }
    }
}

fn sample(path: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events").join(path)).unwrap(),
    )
    .unwrap()
}

/// Invokes a function through the host's Lambda Invoke API by its deployed name;
/// returns the function error name (if any) and the body.
async fn invoke(stack: &LocalStack, function: &str, payload: &Value) -> (Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/2015-03-31/functions/{STACK}-{function}/invocations",
            stack.url
        ))
        .json(payload)
        .send()
        .await
        .unwrap();
    let failed = response.headers().contains_key("x-amz-function-error");
    let body: Value = response.json().await.unwrap();
    let error = failed.then(|| body["errorType"].as_str().unwrap_or_default().to_owned());
    (error, body)
}

/// Waits until IAM holds `policy` on `user` (read as the operator); its document.
/// The user may not exist yet: a vendor's is made by the workflow the approval starts.
async fn policy_in_iam(operator: &SdkConfig, user: &str, policy: &str) -> Value {
    use lapse_core::ports::{AccessInspector, DirectoryError};
    let directory = lapse_aws::iam::IamDirectory::new(aws_sdk_iam::Client::new(operator));
    let principal = lapse_core::identity::PrincipalId::new(user).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let held = match directory.snapshot(&principal).await {
            Ok(snapshot) => snapshot.inline_policies.get(policy).cloned(),
            Err(DirectoryError::NoSuchPrincipal(_)) => None,
            Err(other) => panic!("reading {user}: {other:?}"),
        };
        if let Some(document) = held {
            return document;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "IAM never received {policy}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Posts a signed termination of `user` to the webhook, waits for the stack's rule
/// to start the revocation workflow, and returns the finished run.
async fn terminate(stack: &LocalStack, user: &str) -> lapse_local::workflows::WorkflowRun {
    let (status, answer) = post_termination(stack, user).await;
    assert_eq!(status, 202, "{answer}");
    let deadline = tokio::time::Instant::now() + WAIT;
    let name = loop {
        if let Some(name) = stack.revocations.launched().first().cloned() {
            break name;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rule never started a revocation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stack
        .revocations
        .wait(&name, WAIT)
        .await
        .unwrap_or_else(|| panic!("revocation {name} did not finish (a step refused?)"))
}

async fn post_termination(stack: &LocalStack, user: &str) -> (u16, Value) {
    let mut body: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/hr-webhook/termination-body.json"))
            .unwrap(),
    )
    .unwrap();
    body["user"]["username"] = serde_json::json!(user);
    body["event_id"] = serde_json::json!(lapse_testkit::unique_name("evt"));
    // Signed at the stack's time (its clock has moved past the grant's end).
    let now = stack.clock.now();
    body["timestamp"] = serde_json::json!(now.to_rfc3339());
    let body = body.to_string();
    let timestamp = now.timestamp();
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/hr-events", stack.url))
        .bearer_auth(WEBHOOK_TOKEN)
        .header("webhook-id", "msg_rehearsal")
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            sign(WEBHOOK_SECRET, "msg_rehearsal", timestamp, body.as_bytes()).unwrap(),
        )
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// IAM's wildcard match (`*` spans any characters, `/` included).
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// The ARN of a stack resource from its type and physical id, as IAM names it.
fn arn_of(kind: &str, id: &str) -> Option<String> {
    let last = id.rsplit('/').next().unwrap_or(id);
    Some(match kind {
        "AWS::DynamoDB::Table" => format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{id}"),
        "AWS::SNS::Topic" | "AWS::StepFunctions::StateMachine" | "AWS::IAM::ManagedPolicy" => {
            id.to_owned()
        }
        "AWS::SQS::Queue" => format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{last}"),
        "AWS::Lambda::Function" => format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{id}"),
        "AWS::IAM::Role" => format!("arn:aws:iam::{ACCOUNT}:role/{id}"),
        "AWS::Events::EventBus" => format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{id}"),
        "AWS::Events::Rule" => {
            format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{STACK}-hr-events/{id}")
        }
        "AWS::Logs::LogGroup" => format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{id}"),
        "AWS::CloudWatch::Dashboard" => format!("arn:aws:cloudwatch::{ACCOUNT}:dashboard/{id}"),
        "AWS::KMS::Key" => id.to_owned(),
        "AWS::S3::Bucket" => format!("arn:aws:s3:::{id}"),
        "AWS::ApiGatewayV2::Api" => format!("arn:aws:apigateway:{REGION}::/apis/{id}"),
        _ => return None,
    })
}

/// The managed users' permissions boundary denies every resource the stack
/// created (and the secrets the functions read): no grant can reach Lapse itself.
fn boundary_covers_the_stack(d: &Deployed) -> Vec<String> {
    let statements = d.doc["translated_template"]["Resources"]["ManagedUserBoundary"]["Properties"]
        ["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    let deny = statements
        .iter()
        .find(|s| s["Sid"] == "NotLapseItself")
        .expect("the boundary has its NotLapseItself statement");
    assert_eq!(deny["Effect"], "Deny");
    assert_eq!(deny["Action"], "*");
    let patterns: Vec<String> = deny["Resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            // GetAtt X.Arn (alone or in a Sub): the ARN of what the stack created for X.
            let arn = |logical_id: &str| {
                let created = &d.doc["resources"][logical_id];
                arn_of(
                    created["type"].as_str().unwrap_or_default(),
                    created["physical_id"].as_str().unwrap_or_default(),
                )
                .unwrap_or_else(|| panic!("the stack created no {logical_id} with an ARN"))
            };
            if let Some(logical_id) = r["Fn::GetAtt"][0].as_str() {
                return arn(logical_id);
            }
            let mut text = r["Fn::Sub"]
                .as_str()
                .unwrap_or_else(|| r.as_str().unwrap())
                .to_owned();
            while let Some(start) = text.find("${").filter(|i| text[*i..].contains(".Arn}")) {
                let end = start + text[start..].find('}').unwrap();
                let logical_id = text[start + 2..end].trim_end_matches(".Arn").to_owned();
                if logical_id.starts_with("AWS::") {
                    break;
                }
                text.replace_range(start..=end, &arn(&logical_id));
            }
            // ${X}: what the stack created for X (the API's id).
            for (logical_id, created) in d.doc["resources"].as_object().unwrap() {
                if let Some(id) = created["physical_id"].as_str() {
                    text = text.replace(&format!("${{{logical_id}}}"), id);
                }
            }
            text.replace("${AWS::Partition}", "aws")
                .replace("${AWS::Region}", REGION)
                .replace("${AWS::AccountId}", ACCOUNT)
                .replace("${AWS::StackName}", STACK)
        })
        .collect();
    let mut arns: Vec<String> = d.doc["resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(logical_id, _)| *logical_id != "RehearsalRouterQueue")
        .filter_map(|(_, r)| arn_of(r["type"].as_str()?, r["physical_id"].as_str()?))
        .collect();
    for function in d.functions() {
        for (name, value) in d.env(&function) {
            if name.ends_with("_SECRET") {
                arns.push(value);
            }
        }
    }
    // What hangs off the API: its control plane (an authorizer whose issuer is
    // swapped forges any person) and the operator routes.
    for (_, created) in d.doc["resources"].as_object().unwrap() {
        if created["type"] == "AWS::ApiGatewayV2::Api" {
            let id = created["physical_id"].as_str().unwrap();
            for child in [
                "authorizers/a1",
                "routes/r1",
                "integrations/i1",
                "stages/$default",
            ] {
                arns.push(format!("arn:aws:apigateway:{REGION}::/apis/{id}/{child}"));
            }
            arns.push(format!(
                "arn:aws:execute-api:{REGION}:{ACCOUNT}:{id}/$default/POST/v1/operator/revocations"
            ));
        }
    }
    // What Lapse grants and drops: its groups, checked-out and vendors' secrets.
    arns.push(format!("arn:aws:iam::{ACCOUNT}:group/lapse-prod-readers"));
    arns.push(format!(
        "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:lapse/vendor/vendor-acme-db-6f1c2a4e-AbCdEf"
    ));
    arns.sort();
    arns.dedup();
    assert!(arns.len() > 40, "{arns:?}");
    arns.into_iter()
        .filter(|arn| !patterns.iter().any(|p| glob(p, arn)))
        .collect()
}

fn rehearsal_doc() -> String {
    std::fs::read_to_string(workspace_root().join("docs/deploy-rehearsal.md")).unwrap()
}

/// Every resource type the harness knows moto skips is explained in the docs.
#[test]
fn every_known_emulator_gap_is_documented() {
    let harness =
        std::fs::read_to_string(workspace_root().join("tools/rehearse_deploy.py")).unwrap();
    let start = harness.find("EMULATOR_GAPS = {").unwrap();
    let end = start + harness[start..].find("\n}\n").unwrap();
    let known: Vec<&str> = harness[start..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
        .collect();
    assert!(known.len() >= 5, "{known:?}");
    let doc = rehearsal_doc();
    for gap in known {
        assert!(
            doc.contains(&format!("`{gap}`")),
            "docs/deploy-rehearsal.md does not explain {gap}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_deploys_and_runs_under_its_own_roles_with_iam_enforced() {
    if std::env::var_os("RUST_LOG").is_some() {
        lapse_lambda::init_tracing();
    }
    // See tools/moto_guard.py: identities and policies are enforced; moto's
    // re-derived signature, which disagrees with the Rust SDK's, is not compared.
    let emulator = Emulator::start_with(&[("LAPSE_MOTO_TRUST_SIGNATURES", "1")]).unwrap();
    let d = deploy(&emulator).await;
    environment_names_the_stack(&d);
    assert_eq!(
        boundary_covers_the_stack(&d),
        Vec::<String>::new(),
        "the managed users' boundary leaves these Lapse resources reachable"
    );
    let doc = rehearsal_doc();
    for gap in d.doc["emulator_gaps"].as_object().unwrap().keys() {
        assert!(
            doc.contains(gap.as_str()),
            "the rehearsal met a gap docs/deploy-rehearsal.md does not explain: {gap}"
        );
    }
    let (stack, operator) = start(&emulator, &d).await;

    // Enforcement is on: a role is refused what its policy does not grant (the
    // verify function may read the ledger, not delete from it).
    let verify_sdk = load_local_as(
        emulator.endpoint(),
        credentials(&d.doc["functions"]["verify"]["credentials"]),
    )
    .await;
    let refused = aws_sdk_dynamodb::Client::new(&verify_sdk)
        .delete_item()
        .table_name(d.resource("LedgerTable"))
        .key(
            "holder",
            aws_sdk_dynamodb::types::AttributeValue::S("x".into()),
        )
        .key(
            "grant_id",
            aws_sdk_dynamodb::types::AttributeValue::S("y".into()),
        )
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{:?}", refused).contains("AccessDenied"),
        "the emulator must refuse an action the role lacks: {refused:?}"
    );

    let iam = onboard(&stack, &operator, &d, &["dana", "jdoe"]).await;
    for group in ["engineers", "billing-readers"] {
        lapse_local::provision::ensure_group(&iam, group)
            .await
            .unwrap();
    }

    // A JIT grant: intake (its role) starts the deployed grant lifecycle; grant,
    // notify, revoke and verify each run under their own roles.
    let dana = ApiClient::new(
        &stack.url,
        stack.token("dana", &["on-call"], "employee").unwrap(),
    );
    let created = dana
        .request(
            "billing-reports-read",
            Some("30m"),
            "reconcile invoices",
            None,
        )
        .await
        .unwrap();
    assert_eq!(created["status"], "approved", "{created}");
    let rid = created["id"].as_str().unwrap().to_owned();
    let active = dana.wait_for(&rid, "active", WAIT).await.unwrap();
    assert_eq!(active["status"], "active", "{active}");
    let policy = format!("lapse-billing-reports-read-{rid}");
    let document = policy_in_iam(&operator, "dana", &policy).await;
    let expires: chrono::DateTime<Utc> = active["window"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(document_expiry(&document), Some(expires), "{document}");
    stack
        .clock
        .advance_to(expires + chrono::TimeDelta::seconds(1));
    let run = stack
        .workflows
        .wait(&rid, WAIT)
        .await
        .unwrap_or_else(|| panic!("grant lifecycle {rid} did not finish (a step refused?)"));
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    assert_eq!(dana.get(&rid).await.unwrap()["status"], "verified");
    let left = iam
        .list_user_policies()
        .user_name("dana")
        .send()
        .await
        .unwrap();
    assert!(left.policy_names().is_empty(), "{left:?}");

    // The owner route: the approval function (its role) records olga's decision
    // and starts the workflow; dana ends the grant early through grants-api (its
    // role), which answers only once IAM no longer holds it.
    let owned = dana
        .request(
            "staging-logs-read",
            Some("4h"),
            "debug the deploy",
            Some("INC-7"),
        )
        .await
        .unwrap();
    assert_eq!(owned["status"], "pending", "{owned}");
    let oid = owned["id"].as_str().unwrap().to_owned();
    let olga = ApiClient::new(
        &stack.url,
        stack
            .token("olga", &["platform-owners"], "employee")
            .unwrap(),
    );
    let decided = olga.decide(&oid, true, "ok for INC-7").await.unwrap();
    assert_eq!(decided["outcome"]["outcome"], "approved", "{decided}");
    let owned_policy = format!("lapse-staging-logs-read-{oid}");
    policy_in_iam(&operator, "dana", &owned_policy).await;
    let ended = dana.revoke(&oid).await.unwrap();
    assert_eq!(ended["verify"]["verified"], true, "{ended}");
    assert_eq!(dana.get(&oid).await.unwrap()["status"], "verified");
    assert!(
        iam.get_user_policy()
            .user_name("dana")
            .policy_name(&owned_policy)
            .send()
            .await
            .is_err(),
        "the early revoke left the policy in IAM"
    );

    // A credential checkout: the credentials function (its role) takes the lease
    // before the grant; grants-api (its role) checks it in early, rotating the
    // secret. The secret is the organisation's, created here as an administrator
    // would.
    aws_sdk_secretsmanager::Client::new(&operator)
        .create_secret()
        .name("lapse/prod-db-root")
        .secret_string("initial")
        .send()
        .await
        .unwrap();
    lapse_local::provision::enable_rotation(&operator, &credential())
        .await
        .unwrap();
    let approver = |name: &str, group: &str| {
        ApiClient::new(&stack.url, stack.token(name, &[group], "employee").unwrap())
    };
    let checkout = dana
        .request(
            "prod-db-root-credential",
            Some("1h"),
            "rotate the replica password",
            Some("CHG-9"),
        )
        .await
        .unwrap();
    let cid = checkout["id"].as_str().unwrap().to_owned();
    approver("mia", "managers")
        .decide(&cid, true, "ok")
        .await
        .unwrap();
    approver("sam", "security")
        .decide(&cid, true, "ok")
        .await
        .unwrap();
    policy_in_iam(
        &operator,
        "dana",
        &format!("lapse-prod-db-root-credential-{cid}"),
    )
    .await;
    let ended = dana.revoke(&cid).await.unwrap();
    assert_eq!(ended["checkin"]["outcome"], "checked_in", "{ended}");

    // Vendor access: the vendors function (its role) makes the temporary user and
    // hands the first password to the sponsor, deactivates it after the verified
    // revocation, and deletes it after the retention.
    let sponsored = dana
        .sponsor_vendor(
            ("acme", "ops@acme.example"),
            "staging-logs-read",
            Some("1h"),
            "migrate the log pipeline",
            "PRJ-42",
        )
        .await
        .unwrap();
    let vid = sponsored["id"].as_str().unwrap().to_owned();
    let vendor_user = sponsored["vendor"]["user"].as_str().unwrap().to_owned();
    approver("mia", "managers")
        .decide(&vid, true, "ok")
        .await
        .unwrap();
    approver("sam", "security")
        .decide(&vid, true, "ok")
        .await
        .unwrap();
    policy_in_iam(
        &operator,
        &vendor_user,
        &format!("lapse-staging-logs-read-{vid}"),
    )
    .await;
    let window: chrono::DateTime<Utc> =
        dana.wait_for(&vid, "active", WAIT).await.unwrap()["window"]["expires_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    stack
        .clock
        .advance_to(window + chrono::TimeDelta::days(30) + chrono::TimeDelta::seconds(2));
    let run = stack
        .workflows
        .wait(&vid, WAIT)
        .await
        .unwrap_or_else(|| panic!("vendor workflow {vid} did not finish (a step refused?)"));
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    assert!(run.states.contains(&"RetireVendor".to_owned()), "{run:?}");
    assert!(
        iam.get_user().user_name(&vendor_user).send().await.is_err(),
        "the vendor's user is deleted"
    );

    // Break-glass: intake (its role) starts the grant and the justification
    // timeline; at the deadline notify (its role) tells the reviewers and security;
    // security's unjustified finding puts an incident on the bus (approval's role).
    let glass = dana
        .break_glass(
            "staging-logs-read",
            Some("1h"),
            "INC-8: logs needed now",
            None,
        )
        .await
        .unwrap();
    let gid = glass["id"].as_str().unwrap().to_owned();
    policy_in_iam(&operator, "dana", &format!("lapse-staging-logs-read-{gid}")).await;
    let due: chrono::DateTime<Utc> = glass["break_glass"]["due"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    stack.clock.advance_to(due + chrono::TimeDelta::seconds(1));
    let timeline = stack
        .break_glass
        .wait(&gid, WAIT)
        .await
        .unwrap_or_else(|| panic!("break-glass timeline {gid} did not finish"));
    assert_eq!(timeline.status, "SUCCEEDED", "{timeline:?}");
    let output = timeline.output.clone().unwrap_or_default();
    assert_eq!(output["escalate"]["sent"], true, "{timeline:?}");
    let sam = ApiClient::new(
        &stack.url,
        stack.token("sam", &["security"], "employee").unwrap(),
    );
    let found = sam
        .review(&gid, "unjustified", "no incident on record")
        .await
        .unwrap();
    assert_eq!(found["outcome"], "unjustified", "{found}");

    // The backstops, driven with their sample events, under their own roles: the
    // sweeper (requests' status index, the open-cases gauge), the TTL stream
    // handler (a removed hold of a grant already verified: nothing to do) and the
    // daily inactivity check (the credential report).
    let mut ttl_remove = sample("ttl-backstop/ttl-remove.json");
    ttl_remove["Records"][0]["dynamodb"]["OldImage"]["grant_id"]["S"] = serde_json::json!(rid);
    for (function, event) in [
        ("sweeper", sample("sweeper/scheduled.json")),
        ("ttl-backstop", ttl_remove),
        ("inactivity-check", sample("inactivity-check/daily.json")),
    ] {
        let (error, body) = invoke(&stack, function, &event).await;
        assert_eq!(error, None, "{function} under its own role: {body}");
    }

    // An HR termination: the webhook (its role) puts the event on the stack's bus;
    // the stack's rule pattern matches it; the deployed revocation workflow runs
    // its steps under the revocation function's role.
    iam.create_login_profile()
        .user_name("jdoe")
        .password("Initial-Passw0rd!")
        .send()
        .await
        .unwrap();
    iam.create_access_key()
        .user_name("jdoe")
        .send()
        .await
        .unwrap();
    iam.add_user_to_group()
        .user_name("jdoe")
        .group_name("engineers")
        .send()
        .await
        .unwrap();
    // jdoe holds a checked-out credential and sponsors a vendor: the termination
    // (the revocation function's role) rotates the one and deactivates the other.
    let jdoe = ApiClient::new(
        &stack.url,
        stack.token("jdoe", &["on-call"], "employee").unwrap(),
    );
    let held = jdoe
        .request(
            "prod-db-root-credential",
            Some("1h"),
            "rotate the replica password",
            Some("CHG-10"),
        )
        .await
        .unwrap();
    let hid = held["id"].as_str().unwrap().to_owned();
    let sponsored = jdoe
        .sponsor_vendor(
            ("globex", "ops@globex.example"),
            "staging-logs-read",
            Some("1h"),
            "audit the log pipeline",
            "PRJ-43",
        )
        .await
        .unwrap();
    let jvid = sponsored["id"].as_str().unwrap().to_owned();
    let jdoe_vendor = sponsored["vendor"]["user"].as_str().unwrap().to_owned();
    for id in [&hid, &jvid] {
        approver("mia", "managers")
            .decide(id, true, "ok")
            .await
            .unwrap();
        approver("sam", "security")
            .decide(id, true, "ok")
            .await
            .unwrap();
    }
    policy_in_iam(
        &operator,
        "jdoe",
        &format!("lapse-prod-db-root-credential-{hid}"),
    )
    .await;
    policy_in_iam(
        &operator,
        &jdoe_vendor,
        &format!("lapse-staging-logs-read-{jvid}"),
    )
    .await;
    let run = terminate(&stack, "jdoe").await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    assert!(run.states.contains(&"Verify".to_owned()), "{run:?}");
    let secret = aws_sdk_secretsmanager::Client::new(&operator)
        .describe_secret()
        .secret_id("lapse/prod-db-root")
        .send()
        .await
        .unwrap();
    let current: Vec<&String> = secret
        .version_ids_to_stages()
        .into_iter()
        .flatten()
        .filter(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
        .map(|(v, _)| v)
        .collect();
    assert_eq!(current, [&format!("checkin-{hid}")], "{secret:?}");
    assert!(
        iam.get_login_profile()
            .user_name(&jdoe_vendor)
            .send()
            .await
            .is_err(),
        "the vendor jdoe sponsored keeps a console login"
    );
    assert!(
        iam.get_login_profile()
            .user_name("jdoe")
            .send()
            .await
            .is_err(),
        "login profile removed"
    );
    let keys = iam
        .list_access_keys()
        .user_name("jdoe")
        .send()
        .await
        .unwrap();
    assert!(
        keys.access_key_metadata()
            .iter()
            .all(|k| k.status() == Some(&aws_sdk_iam::types::StatusType::Inactive)),
        "{keys:?}"
    );
    let groups = iam
        .list_groups_for_user()
        .user_name("jdoe")
        .send()
        .await
        .unwrap();
    assert!(groups.groups().is_empty(), "{groups:?}");

    // Operators act through the operator API: SigV4 with their own key (the local
    // gateway's IAM authorizer), then the operator function under its own role
    // restores jdoe (one operator proposes, the other confirms) and schedules
    // dana's contract end.
    let ops = stack.operator_api().unwrap();
    let restore = serde_json::json!({
        "from_backup": stack.clock.now() + chrono::TimeDelta::minutes(1),
        "approval": "CHG-1",
    });
    let proposed = ops
        .operator_post("users/jdoe/restores", restore.clone())
        .await
        .unwrap_or_else(|e| panic!("restore proposed under the operator role: {e}"));
    assert!(proposed["proposed"].is_object(), "{proposed}");
    let restored = stack
        .second_operator_api()
        .unwrap()
        .operator_post("users/jdoe/restores", restore)
        .await
        .unwrap_or_else(|e| panic!("restore under the operator role: {e}"));
    assert!(
        restored["restored"].to_string().contains("engineers"),
        "{restored}"
    );
    let groups = iam
        .list_groups_for_user()
        .user_name("jdoe")
        .send()
        .await
        .unwrap();
    assert_eq!(groups.groups().len(), 1, "{groups:?}");
    let contract_end = serde_json::json!({
        "request_id": "rehearsal-contract-end",
        "user": "dana",
        "reason": "contract ends",
        "kind": {"kind": "full"},
        "schedule": stack.clock.now() + chrono::TimeDelta::days(3),
    });
    let scheduled = ops
        .operator_post("revocations", contract_end.clone())
        .await
        .unwrap_or_else(|e| panic!("schedule under the operator role: {e}"));
    assert!(
        scheduled["scheduled"]["schedule"]
            .as_str()
            .is_some_and(|s| s.contains(":schedule/")),
        "{scheduled}"
    );
    // A retried call (its answer lost) finds the same case and the same schedule.
    let again = ops
        .operator_post("revocations", contract_end)
        .await
        .unwrap_or_else(|e| panic!("retried schedule: {e}"));
    assert_eq!(again["case"]["id"], scheduled["case"]["id"]);
    assert_eq!(
        again["scheduled"]["schedule"],
        scheduled["scheduled"]["schedule"]
    );
}

/// The rehearsal proves least privilege by failing: with one action its code calls
/// taken out of the revocation role (a broken copy of the template), the
/// termination is refused by the emulator's IAM, ends in the failure path, and the
/// person keeps the login profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_missing_an_action_its_code_calls_fails_the_rehearsal() {
    if std::env::var_os("RUST_LOG").is_some() {
        lapse_lambda::init_tracing();
    }
    let text = std::fs::read_to_string(workspace_root().join("infra/template.yaml")).unwrap();
    let from = "Action: [iam:DeleteLoginProfile, ";
    assert!(text.contains(from));
    let dir = workspace_root().join(format!("target/rehearsal-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("template.yaml");
    // And the operator role without scheduler:CreateSchedule.
    let schedule_from = "Action: [scheduler:CreateSchedule, scheduler:GetSchedule]";
    assert!(text.contains(schedule_from));
    std::fs::write(
        &broken,
        text.replacen(from, "Action: [", 1).replacen(
            schedule_from,
            "Action: [scheduler:GetSchedule]",
            1,
        ),
    )
    .unwrap();
    // The state machine definitions are found relative to the template.
    let statemachines = dir.join("statemachines");
    std::fs::create_dir_all(&statemachines).unwrap();
    for entry in std::fs::read_dir(workspace_root().join("infra/statemachines")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), statemachines.join(entry.file_name())).unwrap();
    }

    let emulator = Emulator::start_with(&[("LAPSE_MOTO_TRUST_SIGNATURES", "1")]).unwrap();
    let d = deploy_template(&emulator, &broken).await;
    let (stack, operator) = start(&emulator, &d).await;
    let iam = onboard(&stack, &operator, &d, &["jdoe"]).await;
    iam.create_login_profile()
        .user_name("jdoe")
        .password("Initial-Passw0rd!")
        .send()
        .await
        .unwrap();
    let run = terminate(&stack, "jdoe").await;
    // Refused by IAM: a configuration failure, so not retried; the failure path
    // records it and alerts security; the execution fails (alarmed).
    assert_eq!(run.status, "FAILED", "{run:?}");
    assert!(
        run.retries.is_empty(),
        "a refusal must not be retried: {run:?}"
    );
    assert_eq!(run.caught, ["Revoke"], "{run:?}");
    assert!(run.states.contains(&"RecordFailure".to_owned()), "{run:?}");
    assert!(
        iam.get_login_profile()
            .user_name("jdoe")
            .send()
            .await
            .is_ok(),
        "the refused removal did not happen"
    );
    // An operator's schedule refused by IAM is the deployment's fault, said so
    // (500, Lapse.Configuration), never a 503 the operator would retry.
    let err = stack
        .operator_api()
        .unwrap()
        .operator_post(
            "revocations",
            serde_json::json!({
                "request_id": "rehearsal-denied-schedule",
                "user": "jdoe",
                "reason": "contract ends",
                "kind": {"kind": "full"},
                "schedule": stack.clock.now() + chrono::TimeDelta::days(3),
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500), "{err}");
    assert!(err.to_string().contains("Lapse.Configuration"), "{err}");
}
