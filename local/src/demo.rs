//! The end-to-end demo: Lapse's three approval routes on the local stack, printed
//! for a person to read. Everything goes through the same paths as in AWS: HTTP with
//! JWTs, the handlers, DynamoDB, IAM, SNS and Secrets Manager on the emulator, and the
//! real state machine in an ASL interpreter. Time is the only thing faked: the
//! stack's clock jumps to each grant's end instead of waiting for it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use lapse_aws::iam::IamDirectory;
use lapse_cli::client::ApiClient;
use lapse_cli::show;
use lapse_core::access::grant::document_expiry;
use lapse_core::audit::verify_chain;
use lapse_core::identity::PrincipalId;
use lapse_core::policy::Catalog;
use lapse_core::ports::{AccessInspector, AuditLog};

use crate::host::{LocalStack, StackOptions};
use crate::issuer::DevIssuer;
use crate::workflows::RunOptions;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The policy catalog to show (the stack runs with the one built in).
    #[arg(long, default_value = "infra/policy/catalog.yaml")]
    policy: PathBuf,
    /// Prefix for everything the demo creates.
    #[arg(long, default_value = "lapse-demo")]
    prefix: String,
}

const WAIT: Duration = Duration::from_secs(60);

/// The demo's cast: id, groups, employment.
const PEOPLE: &[(&str, &[&str], &str)] = &[
    ("dana", &["on-call"], "employee"),
    ("carl", &["on-call"], "contractor"),
    ("erin", &["on-call"], "employee"),
    ("olga", &["platform-owners", "on-call"], "employee"),
    ("mia", &["managers"], "employee"),
    ("sam", &["security"], "employee"),
];

fn heading(text: &str) {
    println!("\n== {text}");
}

fn indent(text: &str) {
    for line in text.lines() {
        println!("   {line}");
    }
}

struct Demo {
    stack: LocalStack,
    directory: IamDirectory,
    sdk: aws_config::SdkConfig,
}

/// The stack's audit trail, as an auditor reads it.
struct Audit {
    log: lapse_aws::dynamodb::DynamoDbAuditLog,
    verifier: lapse_core::audit::AuditVerifier,
}

impl Demo {
    fn client(&self, user: &str) -> Result<ApiClient> {
        let (_, groups, employment) = PEOPLE
            .iter()
            .find(|(u, _, _)| *u == user)
            .context("unknown demo person")?;
        Ok(ApiClient::new(
            &self.stack.url,
            self.stack.token(user, groups, employment)?,
        ))
    }

    /// The audit table and a verifier holding only the KMS key's public half.
    async fn audit(&self) -> Result<Audit> {
        let reader = self.stack.audit_reader().await?;
        Ok(Audit {
            log: reader.log,
            verifier: reader.verifier,
        })
    }

    fn catalog_vendor_networks(&self) -> Result<String> {
        Ok(lapse_lambda::bundled_catalog()?
            .vendor_source_ips()
            .join(", "))
    }

    async fn show_iam(&self, user: &str) -> Result<()> {
        let snapshot = self.directory.snapshot(&PrincipalId::new(user)?).await?;
        if snapshot.inline_policies.is_empty() && snapshot.groups.is_empty() {
            println!("   IAM: {user} holds no Lapse grant");
        }
        for (name, document) in &snapshot.inline_policies {
            println!("   IAM: {user} holds inline policy {name}");
            let deny_only = document["Statement"]
                .as_array()
                .is_some_and(|all| all.iter().all(|st| st["Effect"] == "Deny"));
            match document_expiry(document) {
                Some(bound) => println!(
                    "        every statement: DateLessThan aws:CurrentTime {}",
                    bound.to_rfc3339()
                ),
                None if deny_only => println!("        deny statements only: grants nothing"),
                None => println!("        NO time bound"),
            }
        }
        for group in &snapshot.groups {
            println!("   IAM: {user} is in group {group}");
        }
        Ok(())
    }

    /// Waits for the grant to be live in IAM, lets its time pass, and follows the
    /// workflow to a verified revocation.
    async fn live_and_expire(&self, client: &ApiClient, id: &str, user: &str) -> Result<()> {
        let active = client.wait_for(id, "active", WAIT).await?;
        ensure!(
            active["status"] == "active",
            "grant never became active: {active}"
        );
        let policy = format!(
            "lapse-{}-{id}",
            active["resource"].as_str().unwrap_or_default()
        );
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self
            .directory
            .snapshot(&PrincipalId::new(user)?)
            .await?
            .inline_policies
            .contains_key(&policy)
        {
            ensure!(
                tokio::time::Instant::now() < deadline,
                "IAM never received the grant"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "   granted: active until {}",
            active["window"]["expires_at"].as_str().unwrap_or("-")
        );
        self.show_iam(user).await?;
        let expires: chrono::DateTime<chrono::Utc> = active["window"]["expires_at"]
            .as_str()
            .context("window")?
            .parse()?;
        println!("   ... time passes: the stack's clock moves to {expires} ...");
        self.stack
            .clock
            .advance_to(expires + chrono::TimeDelta::seconds(1));
        let run = self
            .stack
            .workflows
            .wait(id, WAIT)
            .await
            .context("workflow did not finish")?;
        println!("   workflow {}: {}", run.status, run.states.join(" → "));
        ensure!(run.status == "SUCCEEDED", "workflow failed: {run:?}");
        let done = client.get(id).await?;
        println!("   status: {}", done["status"].as_str().unwrap_or("-"));
        self.show_iam(user).await
    }
}

/// The emulator's endpoint from `AWS_ENDPOINT_URL`, which must be a loopback
/// address: the local stack creates tables, keys and IAM users, and must never do
/// so through the default AWS credential chain in a real account.
pub fn local_endpoint() -> Result<String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").map_err(|_| {
        anyhow::anyhow!(
            "AWS_ENDPOINT_URL is not set: the local stack runs only against a local AWS \
             emulator (scripts/demo starts one); without it the AWS SDK would use your real \
             AWS credentials and account"
        )
    })?;
    ensure_loopback(&endpoint)?;
    Ok(endpoint)
}

/// Refuses any endpoint that is not `http(s)://` on a loopback host.
pub fn ensure_loopback(endpoint: &str) -> Result<()> {
    let url = reqwest::Url::parse(endpoint)
        .with_context(|| format!("AWS_ENDPOINT_URL `{endpoint}` is not a URL"))?;
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !matches!(url.scheme(), "http" | "https") || !loopback {
        bail!(
            "AWS_ENDPOINT_URL `{endpoint}` is not a loopback address: the local stack only \
             talks to an emulator on this machine (127.0.0.1, ::1 or localhost)"
        );
    }
    Ok(())
}

pub async fn run(args: &DemoArgs) -> Result<()> {
    let endpoint = local_endpoint()?;
    println!("Lapse demo — AWS endpoint {endpoint} (moto's server)");
    policy_as_code(args)?;
    let demo = local_stack(args).await?;
    let dana = auto_approved(&demo).await?;
    let carl = owner_approves(&demo).await?;
    let erin = dual_approval(&demo).await?;
    refusals(&demo).await?;
    let audit = demo.audit().await?;
    termination(&demo, &audit).await?;
    let olga = break_glass(&demo).await?;
    let checkout = credential_checkout(&demo).await?;
    let vendor = vendor_access(&demo).await?;
    timeline(
        &demo,
        &audit,
        [
            ("dana", &dana),
            ("carl", &carl),
            ("erin", &erin),
            ("olga", &olga),
            ("dana", &checkout),
            ("acme", &vendor),
        ],
    )
    .await?;
    println!(
        "\nDemo complete: three access routes, break-glass, a credential checkout, vendor access and an HR termination, each ending in a verified revocation and a verified, signed audit chain."
    );
    Ok(())
}

/// Scene 1: the catalog, validated.
fn policy_as_code(args: &DemoArgs) -> Result<()> {
    heading("1. Policy as code");
    let catalog = Catalog::load(&args.policy)
        .with_context(|| format!("loading {}", args.policy.display()))?;
    println!(
        "   {} is valid; policy hash {}",
        args.policy.display(),
        catalog.hash()
    );
    for r in catalog.resources() {
        println!(
            "   - {:<23} {}, {} sensitivity{}, max {}",
            r.id,
            r.environment.label(),
            r.sensitivity.label(),
            if r.privileged { ", privileged" } else { "" },
            r.max_duration
        );
    }
    Ok(())
}

/// Scene 2: the stack, provisioned on the emulator.
async fn local_stack(args: &DemoArgs) -> Result<Demo> {
    heading("2. Local stack");
    let sdk = lapse_aws::sdk::load().await;
    let prefix = format!("{}-{}", args.prefix, chrono::Utc::now().format("%H%M%S"));
    let stack = LocalStack::start(
        sdk.clone(),
        StackOptions {
            prefix: prefix.clone(),
            issuer: None,
            run: RunOptions::default(),
            port: 0,
        },
    )
    .await?;
    let users: Vec<&str> = PEOPLE.iter().map(|(u, _, _)| *u).collect();
    stack.add_users(&users).await?;
    println!(
        "   DynamoDB tables, SNS topics, a KMS audit signing key (ECC P-256) and state machine `{prefix}-grant-lifecycle` provisioned"
    );
    println!(
        "   API (JWT-verified like API Gateway) and Lambda Invoke API at {}",
        stack.url
    );
    println!("   IAM users: {}", users.join(", "));
    Ok(Demo {
        directory: IamDirectory::new(aws_sdk_iam::Client::new(&sdk)),
        sdk,
        stack,
    })
}

/// Scene 3: low risk, approved automatically. Returns the request id.
async fn auto_approved(demo: &Demo) -> Result<String> {
    heading("3. Low risk: approved automatically");
    let dana = demo.client("dana")?;
    let req = dana
        .request(
            "billing-reports-read",
            Some("30m"),
            "Reconcile the October invoice",
            Some("FIN-204"),
        )
        .await?;
    indent(&show::detail(&req));
    let dana_id = req["id"].as_str().context("id")?.to_owned();
    demo.live_and_expire(&dana, &dana_id, "dana").await?;
    Ok(dana_id)
}

/// Scene 4: medium risk, the resource owner approves; ended early. Returns the request id.
async fn owner_approves(demo: &Demo) -> Result<String> {
    heading("4. Medium risk: the resource owner approves");
    let carl = demo.client("carl")?;
    let req = carl
        .request(
            "staging-logs-read",
            Some("4h"),
            "Debug the failing staging deploy",
            Some("INC-77"),
        )
        .await?;
    indent(&show::detail(&req));
    let carl_id = req["id"].as_str().context("id")?.to_owned();
    let olga = demo.client("olga")?;
    let pending = olga.pending().await?;
    println!(
        "   olga's queue: {} request(s) waiting",
        pending["requests"].as_array().map_or(0, Vec::len)
    );
    let out = olga.decide(&carl_id, true, "OK for INC-77").await?;
    println!(
        "   olga approves: {}",
        out["outcome"]["outcome"].as_str().unwrap_or("-")
    );
    let active = carl.wait_for(&carl_id, "active", WAIT).await?;
    println!(
        "   granted until {}",
        active["window"]["expires_at"].as_str().unwrap_or("-")
    );
    let revoked = carl.revoke(&carl_id).await?;
    println!(
        "   carl is done early and revokes: {}, verified against IAM: {}",
        revoked["revoke"]["outcome"].as_str().unwrap_or("-"),
        revoked["verify"]["verified"]
    );
    demo.show_iam("carl").await?;
    demo.stack.clock.advance_to(
        active["window"]["expires_at"]
            .as_str()
            .context("window")?
            .parse::<chrono::DateTime<chrono::Utc>>()?
            + chrono::TimeDelta::seconds(1),
    );
    let run = demo
        .stack
        .workflows
        .wait(&carl_id, WAIT)
        .await
        .context("workflow")?;
    println!(
        "   the running workflow wakes at the old end, finds it revoked, verifies: {}",
        run.status
    );
    Ok(carl_id)
}

/// Scene 5: high risk, two distinct approvers. Returns the request id.
async fn dual_approval(demo: &Demo) -> Result<String> {
    heading("5. High risk: two distinct approvers");
    let erin = demo.client("erin")?;
    let req = erin
        .request(
            "prod-db-admin",
            Some("2h"),
            "CHG-1042: rotate the replica",
            Some("CHG-1042"),
        )
        .await?;
    indent(&show::detail(&req));
    let erin_id = req["id"].as_str().context("id")?.to_owned();
    let mia = demo.client("mia")?;
    let out = mia.decide(&erin_id, true, "Manager approval").await?;
    println!(
        "   mia (managers) approves: {}",
        out["outcome"]["outcome"].as_str().unwrap_or("-")
    );
    match erin.decide(&erin_id, true, "I approve myself").await {
        Ok(_) => bail!("self-approval was accepted"),
        Err(err) => println!("   erin tries to approve her own request: refused ({err})"),
    }
    let out = demo
        .client("sam")?
        .decide(&erin_id, true, "Security approval")
        .await?;
    println!(
        "   sam (security) approves: {}",
        out["outcome"]["outcome"].as_str().unwrap_or("-")
    );
    demo.live_and_expire(&erin, &erin_id, "erin").await?;
    Ok(erin_id)
}

/// Scene 6: what Lapse refuses, and a denial with its reason.
async fn refusals(demo: &Demo) -> Result<()> {
    heading("6. Refused with a reason");
    let (carl, olga, erin) = (
        demo.client("carl")?,
        demo.client("olga")?,
        demo.client("erin")?,
    );
    match erin
        .request("prod-db-admin", Some("6h"), "all day", None)
        .await
    {
        Ok(_) => bail!("an over-long request was accepted"),
        Err(err) => println!("   6h of prod-db-admin: {err}"),
    }
    match ApiClient::new(&demo.stack.url, "not-a-token").mine().await {
        Ok(_) => bail!("an unauthenticated call was accepted"),
        Err(err) => println!("   no valid token: {err}"),
    }
    let denied = carl
        .request("staging-logs-read", Some("8h"), "just in case", None)
        .await?;
    let denied_id = denied["id"].as_str().context("id")?;
    olga.decide(denied_id, false, "No ticket, no access")
        .await?;
    println!("   carl asks for 8h \"just in case\": denied by olga");
    Ok(())
}

/// Scene 7: an HR termination through the signed webhook, to a verified revocation.
async fn termination(demo: &Demo, audit: &Audit) -> Result<()> {
    heading("7. Rights revocation: HR posts a termination");
    let jdoe = "jdoe";
    demo.stack.add_users(&[jdoe]).await?;
    let iam = aws_sdk_iam::Client::new(&demo.sdk);
    crate::provision::ensure_group(&iam, "engineers").await?;
    iam.create_login_profile()
        .user_name(jdoe)
        .password("Initial-Passw0rd!")
        .send()
        .await?;
    iam.create_access_key().user_name(jdoe).send().await?;
    iam.add_user_to_group()
        .user_name(jdoe)
        .group_name("engineers")
        .send()
        .await?;
    let jdoe_api = ApiClient::new(&demo.stack.url, demo.stack.token(jdoe, &[], "employee")?);
    let grant = jdoe_api
        .request("billing-reports-read", Some("30m"), "Close the books", None)
        .await?;
    let grant_id = grant["id"].as_str().context("id")?.to_owned();
    jdoe_api.wait_for(&grant_id, "active", WAIT).await?;
    println!("   jdoe: console login, an access key, group engineers, and a live JIT grant");
    let body = std::fs::read_to_string(
        crate::repo_root().join("events/hr-webhook/termination-body.json"),
    )?;
    let mut event: serde_json::Value = serde_json::from_str(&body)?;
    event["timestamp"] =
        serde_json::json!(lapse_core::ports::Clock::now(demo.stack.clock.as_ref()).to_rfc3339());
    let body = event.to_string();
    // The HR system's clock agrees with the stack's (which the demo moved forward).
    let post = |body: String| async move { demo.stack.post_hr_event("msg_demo", &body).await };
    let (status, answer) = post(body.clone()).await?;
    println!("   POST /api/v1/webhooks/hr-events (bearer + HMAC signed): {status} {answer}");
    let deadline = tokio::time::Instant::now() + WAIT;
    let execution = loop {
        if let Some(name) = demo.stack.revocations.launched().first().cloned() {
            break name;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no revocation started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("   EventBridge rule matched user_terminated → revocation workflow {execution}");
    let run = demo
        .stack
        .revocations
        .wait(&execution, WAIT)
        .await
        .context("revocation workflow")?;
    println!("   workflow {}: {}", run.status, run.states.join(" → "));
    ensure!(run.status == "SUCCEEDED", "revocation failed: {run:?}");
    let login = iam.get_login_profile().user_name(jdoe).send().await.is_ok();
    let keys = iam.list_access_keys().user_name(jdoe).send().await?;
    let active = keys
        .access_key_metadata()
        .iter()
        .filter(|k| k.status() == Some(&aws_sdk_iam::types::StatusType::Active))
        .count();
    let groups = iam.list_groups_for_user().user_name(jdoe).send().await?;
    let inline = iam.list_user_policies().user_name(jdoe).send().await?;
    println!(
        "   IAM read back: console login {login}, active keys {active}, groups {}, inline policies: {}",
        groups.groups().len(),
        inline.policy_names().join(", ")
    );
    let security = demo.client("sam")?;
    println!(
        "   jdoe's JIT grant: {}",
        security.get(&grant_id).await?["status"]
            .as_str()
            .unwrap_or("-")
    );
    match jdoe_api
        .request("billing-reports-read", Some("30m"), "one more thing", None)
        .await
    {
        Ok(_) => bail!("a terminated user's request was accepted"),
        Err(err) => {
            println!("   jdoe's identity-provider token is still valid, but Lapse refuses: {err}")
        }
    }
    let (status, answer) = post(body).await?;
    println!(
        "   the same event delivered again: {status} {}",
        answer["status"].as_str().unwrap_or("(no status)")
    );
    let chain = format!("user#{jdoe}");
    let events = audit.log.chain(&chain).await?;
    let head = verify_chain(&chain, &events, &audit.verifier, None)?.context("empty chain")?;
    println!(
        "   signed audit record for jdoe ({} events, verified, head #{}):",
        events.len(),
        head.seq
    );
    for event in &events {
        let detail = match event.action.as_str() {
            "revocation.applied" => format!(
                " — before: login {}, {} group(s); {} action(s)",
                event.before["before_state"]["login_profile"],
                event.before["before_state"]["groups"]
                    .as_array()
                    .map_or(0, Vec::len),
                event.after["actions"].as_array().map_or(0, Vec::len)
            ),
            "revocation.verified" => format!(
                " — after, read back: login {}, {} group(s)",
                event.after["after_state"]["login_profile"],
                event.after["after_state"]["groups"]
                    .as_array()
                    .map_or(0, Vec::len),
            ),
            "person.updated" => format!(
                " — the directory of people: status {}",
                event.after["status"]["value"]
                    .as_str()
                    .unwrap_or("unchanged")
            ),
            _ => String::new(),
        };
        println!(
            "     #{} {} by {}{detail}",
            event.seq, event.action, event.actor
        );
    }
    Ok(())
}

/// Scene 8: break-glass, granted at once and answered for afterwards; then one
/// left unanswered, escalated, and found unjustified. Returns the first's id.
async fn break_glass(demo: &Demo) -> Result<String> {
    heading("8. Break-glass: access now, answers afterwards");
    // Opt-in per resource, for employees in its eligible groups only.
    match demo
        .client("carl")?
        .break_glass("prod-db-admin", Some("1h"), "INC-2291: I can fix it", None)
        .await
    {
        Ok(_) => bail!("a contractor broke glass"),
        Err(err) => println!("   carl (a contractor, on call) breaks glass: {err}"),
    }
    let olga = demo.client("olga")?;
    match olga
        .break_glass(
            "prod-db-admin",
            Some("3h"),
            "INC-2291: primary refusing writes",
            None,
        )
        .await
    {
        Ok(_) => bail!("a break-glass ask over the cap was accepted"),
        Err(err) => println!("   3h of break-glass: {err}"),
    }
    let glass = olga
        .break_glass(
            "prod-db-admin",
            Some("1h"),
            "INC-2291: primary refusing writes",
            Some("INC-2291"),
        )
        .await?;
    indent(&show::detail(&glass));
    let id = glass["id"].as_str().context("id")?.to_owned();
    println!("   granted with no approver; security was told at once");
    let justified = olga
        .justify(
            &id,
            "Failed the primary over; the runbook step needs admin.",
        )
        .await?;
    println!("   olga justifies it: {}", show::line(&justified));
    match olga.review(&id, "justified", "mine").await {
        Ok(_) => bail!("a self-review was accepted"),
        Err(err) => println!("   olga reviews her own use: refused ({err})"),
    }
    for (who, group) in [("mia", "managers"), ("sam", "security")] {
        let out = demo
            .client(who)?
            .review(&id, "justified", "matches the incident timeline")
            .await?;
        println!(
            "   {who} ({group}) finds it justified: {}",
            show::review_outcome(&out["outcome"])
        );
    }
    demo.live_and_expire(&olga, &id, "olga").await?;

    let erin = demo.client("erin")?;
    let unanswered = erin
        .break_glass("prod-readonly", None, "checking a customer's order", None)
        .await?;
    let uid = unanswered["id"].as_str().context("id")?.to_owned();
    let due: chrono::DateTime<chrono::Utc> = unanswered["break_glass"]["due"]
        .as_str()
        .context("due")?
        .parse()?;
    let active = erin.wait_for(&uid, "active", WAIT).await?;
    ensure!(active["status"] == "active", "never granted: {active}");
    println!(
        "\n   erin takes prod-readonly for {} (until {}) and never justifies it",
        unanswered["duration"].as_str().unwrap_or("-"),
        active["window"]["expires_at"].as_str().unwrap_or("-")
    );
    println!("   ... time passes: the stack's clock moves past the deadline {due} ...");
    demo.stack
        .clock
        .advance_to(due + chrono::TimeDelta::seconds(1));
    let run = demo
        .stack
        .break_glass
        .wait(&uid, WAIT)
        .await
        .context("break-glass timeline did not finish")?;
    println!(
        "   justification timeline {}: {}",
        run.status,
        run.states.join(" → ")
    );
    ensure!(run.status == "SUCCEEDED", "timeline failed: {run:?}");
    println!("   erin was reminded; the reviewers and security were told it is overdue");
    let grant = demo
        .stack
        .workflows
        .wait(&uid, WAIT)
        .await
        .context("grant workflow did not finish")?;
    ensure!(
        grant.status == "SUCCEEDED",
        "grant workflow failed: {grant:?}"
    );
    println!(
        "   her grant's workflow SUCCEEDED long before: {}",
        erin.get(&uid).await?["status"].as_str().unwrap_or("-")
    );
    let found = demo
        .client("sam")?
        .review(&uid, "unjustified", "no incident on record")
        .await?;
    println!(
        "   sam (security) finds it {}: incident breakglass-{uid} put on the event bus, security alerted",
        found["outcome"]
    );
    indent(&show::detail(&found["request"]));
    Ok(id)
}

/// Scene 9: a privileged credential checked out exclusively and rotated at
/// check-in. Returns the request id.
async fn credential_checkout(demo: &Demo) -> Result<String> {
    heading("9. Privileged credential checkout");
    let dana = demo.client("dana")?;
    let req = dana
        .request(
            "prod-db-root-credential",
            Some("1h"),
            "CHG-1107: reset the replica's replication user",
            Some("CHG-1107"),
        )
        .await?;
    let id = req["id"].as_str().context("id")?.to_owned();
    for (who, group) in [("mia", "managers"), ("sam", "security")] {
        demo.client(who)?.decide(&id, true, "approved").await?;
        println!("   {who} ({group}) approves");
    }
    let active = dana.wait_for(&id, "active", WAIT).await?;
    ensure!(active["status"] == "active", "never granted: {active}");
    let secrets = aws_sdk_secretsmanager::Client::new(&demo.sdk);
    let current = || async {
        let out = secrets
            .describe_secret()
            .secret_id("lapse/prod-db-root")
            .send()
            .await?;
        let version = out
            .version_ids_to_stages()
            .into_iter()
            .flatten()
            .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
            .map(|(v, _)| v.clone())
            .context("no current version")?;
        anyhow::Ok(version)
    };
    let checked_out = current().await?;
    println!("   checked out: lease on lapse/prod-db-root, version {checked_out} (exclusive)");
    demo.show_iam("dana").await?;
    let erin = demo.client("erin")?;
    let other = erin
        .request("prod-db-root-credential", Some("1h"), "also need it", None)
        .await?;
    let other_id = other["id"].as_str().context("id")?;
    for who in ["mia", "sam"] {
        demo.client(who)?.decide(other_id, true, "approved").await?;
    }
    let withdrawn = erin.wait_for(other_id, "cancelled", WAIT).await?;
    println!(
        "   erin's approved request for it too: {} (the credential is checked out; she is told to ask again)",
        withdrawn["status"].as_str().unwrap_or("-")
    );
    let ended = dana.revoke(&id).await?;
    println!(
        "   dana checks it in early: IAM revoked and verified ({}); the secret's rotation function rotated it from {} to {}",
        ended["verify"]["verified"],
        ended["checkin"]["rotated_from"].as_str().unwrap_or("-"),
        ended["checkin"]["current"].as_str().unwrap_or("-")
    );
    let now_current = current().await?;
    ensure!(
        now_current != checked_out,
        "the checked-out value is still current"
    );
    let described = secrets
        .describe_secret()
        .secret_id("lapse/prod-db-root")
        .send()
        .await?;
    let function = described
        .rotation_lambda_arn()
        .and_then(|arn| arn.rsplit(':').next())
        .unwrap_or("-");
    println!(
        "   Secrets Manager: {checked_out} is no longer AWSCURRENT (now {now_current}, made by {function}, the database's rotation function)"
    );
    demo.show_iam("dana").await?;
    Ok(id)
}

/// Scene 10: a vendor's temporary user, from sponsorship to deletion. Returns the
/// request id.
async fn vendor_access(demo: &Demo) -> Result<String> {
    heading("10. Vendor access");
    let dana = demo.client("dana")?;
    let req = dana
        .sponsor_vendor(
            ("acme", "ops@acme.example"),
            "staging-logs-read",
            Some("2h"),
            "Acme migrates the log pipeline",
            "PRJ-42",
        )
        .await?;
    indent(&show::detail(&req));
    let id = req["id"].as_str().context("id")?.to_owned();
    let vendor = req["vendor"]["user"]
        .as_str()
        .context("vendor user")?
        .to_owned();
    for (who, group) in [("mia", "managers"), ("sam", "security")] {
        demo.client(who)?.decide(&id, true, "approved").await?;
        println!("   {who} ({group}) approves");
    }
    let active = dana.wait_for(&id, "active", WAIT).await?;
    ensure!(active["status"] == "active", "never granted: {active}");
    let iam = aws_sdk_iam::Client::new(&demo.sdk);
    let tags: Vec<String> = iam
        .list_user_tags()
        .user_name(&vendor)
        .send()
        .await?
        .tags()
        .iter()
        .map(|t| format!("{}={}", t.key(), t.value()))
        .collect();
    println!("   IAM user {vendor}: {}", tags.join(", "));
    println!(
        "   base policy lapse-vendor-base: nothing but MFA enrolment until MFA is present; nothing from outside {}",
        demo.catalog_vendor_networks()?
    );
    println!(
        "   first password: Secrets Manager lapse/vendor/{vendor}, readable by dana alone until the window ends"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while !demo
        .directory
        .snapshot(&PrincipalId::new(vendor.clone())?)
        .await?
        .inline_policies
        .keys()
        .any(|k| k.starts_with("lapse-staging-logs-read-"))
    {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "IAM never received the grant"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    demo.show_iam(&vendor).await?;
    let expires: chrono::DateTime<chrono::Utc> = active["window"]["expires_at"]
        .as_str()
        .context("window")?
        .parse()?;
    let retire_at = expires + chrono::TimeDelta::days(30);
    println!(
        "   ... time passes: the stack's clock moves past the 30-day retention, to {retire_at} ..."
    );
    demo.stack
        .clock
        .advance_to(retire_at + chrono::TimeDelta::seconds(2));
    let run = demo
        .stack
        .workflows
        .wait(&id, WAIT)
        .await
        .context("vendor workflow did not finish")?;
    println!("   workflow {}: {}", run.status, run.states.join(" → "));
    ensure!(run.status == "SUCCEEDED", "workflow failed: {run:?}");
    let gone = iam.get_user().user_name(&vendor).send().await.is_err();
    ensure!(gone, "the vendor's user was not deleted");
    println!(
        "   deactivated at the end, deleted after the retention: IAM no longer knows {vendor}"
    );
    Ok(id)
}

/// Scene 11: every request's signed chain, verified, as one timeline.
async fn timeline(demo: &Demo, audit: &Audit, requests: [(&str, &String); 6]) -> Result<()> {
    heading("11. Timeline and signed audit trail");
    let mut timeline = Vec::new();
    for (who, id) in requests {
        let chain = format!("request#{id}");
        let events = audit.log.chain(&chain).await?;
        let head = verify_chain(&chain, &events, &audit.verifier, None)?.context("empty chain")?;
        println!(
            "   {who}'s request: {} events, hash-linked and signed by KMS key {} (ECDSA P-256); verified with its public key only (head #{} {}…)",
            events.len(),
            demo.stack.config.audit_key,
            head.seq,
            &head.hash[..16]
        );
        timeline.extend(events.into_iter().map(|e| (e.at, who, e.action, e.actor)));
    }
    timeline.sort();
    println!();
    for (at, who, action, actor) in timeline {
        println!(
            "   {}  {:<5} {:<26} by {actor}",
            at.format("%H:%M:%S"),
            who,
            action
        );
    }
    Ok(())
}

/// `lapse-dev serve`: the local stack for a person at a terminal.
/// Writes a file only its owner can read.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// The people `serve` creates, with the approver groups their tokens carry and
/// what they are for: enough to try every path by hand.
pub const CAST: &[(&str, &[&str], &str)] = &[
    ("dana", &[], "an engineer: asks for access"),
    (
        "mia",
        &["managers"],
        "a manager: first of two approvers for high risk",
    ),
    (
        "sam",
        &["security"],
        "security: second approver, reviews break-glass",
    ),
    (
        "bo",
        &["billing-owners"],
        "owns billing-reports-read: approves medium risk on it",
    ),
    ("olga", &["on-call"], "on call: may break glass"),
    ("jdoe", &[], "someone HR is about to terminate"),
];

pub async fn serve(
    port: u16,
    prefix: &str,
    key_file: &Path,
    users: &[String],
    task_timeout_default: Option<u64>,
) -> Result<()> {
    let endpoint = local_endpoint()?;
    let sdk = lapse_aws::sdk::load().await;
    let issuer = DevIssuer::load_or_create(key_file)?;
    let stack = LocalStack::start(
        sdk,
        StackOptions {
            prefix: prefix.to_owned(),
            issuer: Some(issuer),
            run: RunOptions {
                retry_ms: 1000,
                // Waits follow the clock a person moves: no bound in real time.
                timeout_ms: 0,
                task_timeout_default,
                ..RunOptions::default()
            },
            port,
        },
    )
    .await?;
    stack.alarm_failed_executions();
    stack.run_schedules();
    let mut everyone: Vec<&str> = CAST.iter().map(|(name, _, _)| *name).collect();
    everyone.extend(users.iter().map(String::as_str));
    stack.add_users(&everyone).await?;
    let iam = aws_sdk_iam::Client::new(&stack.sdk);
    // Something for a termination to take away: a console login, a key, a group.
    crate::provision::ensure_group(&iam, "engineers").await?;
    let _ = iam
        .create_login_profile()
        .user_name("jdoe")
        .password("Initial-Passw0rd!")
        .send()
        .await;
    if iam
        .list_access_keys()
        .user_name("jdoe")
        .send()
        .await
        .is_ok_and(|k| k.access_key_metadata().is_empty())
    {
        iam.create_access_key().user_name("jdoe").send().await?;
    }
    iam.add_user_to_group()
        .user_name("jdoe")
        .group_name("engineers")
        .send()
        .await?;

    let dir = key_file.parent().unwrap_or_else(|| Path::new("."));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let key_file = std::fs::canonicalize(key_file).unwrap_or_else(|_| key_file.to_path_buf());
    let bin = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .context("where lapse-dev runs from")?;
    // Named for who sources them, beside the issuer's key: one stack per directory.
    let env_file_of = |name: &str| dir.join(format!("{name}.env"));
    // People's shells: the binaries on PATH, the API, and the issuer's key.
    let people_file = env_file_of("people");
    write_private(
        &people_file,
        &format!(
            "export PATH=\"{}:$PATH\"\nexport LAPSE_API_URL={}\nexport LAPSE_DEV_KEY_FILE={}\n",
            bin.display(),
            stack.url,
            key_file.display()
        ),
    )?;
    // Operators' shells: also their AWS key (which signs every call) and the
    // emulator (`lapse audit verify` reads the audit table and the anchors). Their
    // secrets go to files only their owner can read, not to the terminal.
    let exports_of = |operator| {
        let mut exports = format!(
            "export PATH=\"{}:$PATH\"\nexport AWS_ENDPOINT_URL={endpoint}\n",
            bin.display()
        );
        for (name, value) in stack.operator_env_of(operator).into_iter().chain(
            stack
                .config
                .env_pairs()
                .into_iter()
                .filter(|(name, _)| name.starts_with("LAPSE_AUDIT")),
        ) {
            exports.push_str(&format!("export {name}={value}\n"));
        }
        exports
    };
    let operator_file = env_file_of("operator");
    write_private(&operator_file, &exports_of(&stack.operator))?;
    let second_file = env_file_of("operator2");
    write_private(&second_file, &exports_of(&stack.second_operator))?;

    let now = lapse_core::ports::Clock::now(stack.clock.as_ref());
    let mut out = String::new();
    let mut say = |line: String| {
        out.push_str(&line);
        out.push('\n');
    };
    say(format!(
        "Lapse is running at {} on the AWS emulator at {endpoint}; the stack's clock reads {}.",
        stack.url,
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    say(String::new());
    say("In another terminal, for a person (requests, approvals, grants):".into());
    say(format!("  source {}", people_file.display()));
    say("  Then be one of these people (a token lasts 8 hours of the stack's clock):".into());
    for (name, groups, what) in CAST {
        let groups = if groups.is_empty() {
            String::new()
        } else {
            format!(" --groups {}", groups.join(","))
        };
        say(format!(
            "    export LAPSE_TOKEN=$(lapse-dev token --user {name}{groups})   # {what}"
        ));
    }
    say("  e.g. lapse request --resource billing-reports-read --duration 30m --justification \"month end\"".into());
    say(String::new());
    say(format!(
        "For an operator (revoke, restore, hold, check-user, verify; signed as {}) or an auditor (audit verify|export):",
        stack.operator.arn
    ));
    say(format!("  source {}", operator_file.display()));
    say(format!(
        "  A second operator ({}), who confirms restores and overrides the first asks for:",
        stack.second_operator.arn
    ));
    say(format!("  source {}", second_file.display()));
    say(String::new());
    say(
        "As the HR system (development token and signing secret, signed on the stack's clock):"
            .into(),
    );
    say(format!(
        "  lapse-dev hr-event @{}",
        crate::repo_root()
            .join("events/hr-webhook/termination-body.json")
            .display()
    ));
    say(String::new());
    say("The stack's clock (grants' ends, waits, schedules, the sweeper, tokens and the webhook follow it):".into());
    say("  lapse-dev clock                 # where it is".into());
    say("  lapse-dev clock in 1h           # the time an hour from it (lapse revoke --schedule ...)".into());
    say("  lapse-dev clock advance 4h      # forward by 90s, 45m, 4h, 2d ...".into());
    say("  lapse-dev clock set 2026-12-24T09:00:00Z".into());
    say(String::new());
    say("Ctrl-C stops the stack (and the emulator, when scripts/serve started it).".into());
    print!("{out}");
    use std::io::Write as _;
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ensure_loopback;

    #[test]
    fn the_local_stack_talks_only_to_a_loopback_emulator() {
        for ok in [
            "http://127.0.0.1:5000",
            "http://127.8.9.10:1",
            "http://localhost:4566",
            "http://[::1]:5000",
        ] {
            ensure_loopback(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "https://iam.amazonaws.com",
            "http://10.0.0.5:5000",
            "http://192.168.1.2:5000",
            "http://localhost.example.com:5000",
            "ftp://127.0.0.1/",
            "127.0.0.1:5000",
            "",
        ] {
            let err = ensure_loopback(bad).unwrap_err().to_string();
            assert!(err.contains("AWS_ENDPOINT_URL"), "{bad}: {err}");
        }
    }
}
