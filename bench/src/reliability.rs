//! Reliability scenarios, each against a stack of its own: real faults on the wire
//! (the proxy answers throttling and 5xx errors, drops connections, delays), a
//! process lost between its IAM writes and its state write, duplicated and
//! reordered deliveries, and fifty decisions racing on one request. Each returns
//! checked figures: the tests run them small, `make reliability` runs them large.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use futures_util::future::join_all;
use lapse_core::ports::AuditLog;
use lapse_core::revocation::case::CaseStatus;
use lapse_local::proxy::{FaultKind, FaultRule};
use lapse_local::workflows::WorkflowRun;

use crate::local::{Local, WAIT, left_over, termination_event};
use crate::report::Figure;

/// Every service but the local router's queue (the stand-in for EventBridge's
/// rule target), at `rate`, with every kind of fault that leaves the request's
/// effect certain: throttling, 503, a connection dropped before the request is
/// forwarded, a 100 ms delay.
pub fn wire_faults_at(rate: f64) -> Vec<FaultRule> {
    vec![
        FaultRule {
            service: Some("sqs".into()),
            operations: Vec::new(),
            rate: 0.0,
            kinds: Vec::new(),
            limit: None,
        },
        FaultRule {
            service: None,
            operations: Vec::new(),
            rate,
            kinds: vec![
                FaultKind::Throttle,
                FaultKind::ServerError,
                FaultKind::DropBefore,
                FaultKind::Delay(Duration::from_millis(100)),
            ],
            limit: None,
        },
    ]
}

/// A user with a console password, an access key, a group and an inline policy.
async fn staff(local: &Local, user: &str) -> Result<()> {
    let iam = aws_sdk_iam::Client::new(&local.stack.sdk);
    local.stack.add_users(&[user]).await?;
    lapse_local::provision::ensure_group(&iam, "engineers").await?;
    iam.add_user_to_group()
        .user_name(user)
        .group_name("engineers")
        .send()
        .await?;
    iam.put_user_policy()
        .user_name(user)
        .policy_name("team")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
        )
        .send()
        .await?;
    iam.create_access_key().user_name(user).send().await?;
    iam.create_login_profile()
        .user_name(user)
        .password("Initial-Passw0rd!")
        .send()
        .await?;
    Ok(())
}

/// Posts an HR event as an HR system does under faults: a 5xx answer is retried
/// (the webhook is idempotent by event id). Returns the number of attempts.
async fn deliver(local: &Local, message_id: &str, body: &str) -> Result<usize> {
    for attempt in 1..=30 {
        let (status, answer) = local.stack.post_hr_event(message_id, body).await?;
        if (200..300).contains(&status) {
            return Ok(attempt);
        }
        ensure!(
            status >= 500,
            "the webhook refused the event: {status} {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the webhook never accepted {message_id}")
}

/// Scenario: `terminations` HR terminations and `expiries` expiring JIT grants with
/// `rate` of every AWS call faulted. Each flow must end verified, or failed with its
/// failure recorded and then completed by a re-drive (faults off); nothing may be
/// reported verified while IAM still holds it.
pub async fn wire_faults(terminations: usize, expiries: usize, rate: f64) -> Result<Vec<Figure>> {
    let bench = format!("faults on the wire ({:.0} %)", rate * 100.0);
    let bench = bench.as_str();
    let local = Local::start(16 + terminations + expiries).await?;
    let iam = aws_sdk_iam::Client::new(&local.stack.sdk);
    let mut leavers = Vec::new();
    for i in 0..terminations {
        let user = local.user(&format!("wleaver{i}"));
        staff(&local, &user).await?;
        leavers.push(user);
    }
    let mut grants = Vec::new();
    for i in 0..expiries {
        let user = local.user(&format!("wexpiry{i}"));
        local.stack.add_users(&[&user]).await?;
        let client = local.client(&user, &[])?;
        let id = local.live_grant(&client, "billing-reports-read").await?;
        grants.push((user, client, id));
    }
    local.quiesce().await;
    local.proxy.set_faults(wire_faults_at(rate));

    // Terminations, delivered with retries; expiries, by moving the clock.
    let before = local.stack.revocations.launched();
    let mut attempts = 0;
    for (i, user) in leavers.iter().enumerate() {
        let now = lapse_core::ports::Clock::now(local.stack.clock.as_ref());
        let body = termination_event(user, &format!("evt-wire-{i}-{user}"), now)?;
        attempts += deliver(&local, &format!("msg-wire-{i}"), &body).await?;
    }
    let latest = grants.len();
    if latest > 0 {
        local.stack.clock.advance(chrono::TimeDelta::minutes(31));
    }
    // Every leaver's event has reached the workflow (a delivery retried after a lost
    // answer may start a second execution for the same event).
    let deadline = tokio::time::Instant::now() + WAIT;
    let names_user =
        |input: &serde_json::Value, user: &str| input.to_string().contains(&format!("\"{user}\""));
    let revocations = loop {
        let started: Vec<String> = local.revocations_since(&before);
        let inputs: Vec<serde_json::Value> = started
            .iter()
            .filter_map(|n| local.stack.revocations.input(n))
            .collect();
        let waiting: Vec<&String> = leavers
            .iter()
            .filter(|u| !inputs.iter().any(|i| names_user(i, u)))
            .collect();
        if waiting.is_empty() {
            break started;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no revocation started for {waiting:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut runs = Vec::new();
    for name in &revocations {
        runs.push(
            local
                .stack
                .revocations
                .wait(name, WAIT)
                .await
                .with_context(|| format!("revocation {name} never finished"))?,
        );
    }
    let mut grant_runs = Vec::new();
    for (_, _, id) in &grants {
        grant_runs.push(
            local
                .stack
                .workflows
                .wait(id, WAIT)
                .await
                .with_context(|| format!("grant workflow {id} never finished"))?,
        );
    }
    let injected = local
        .proxy
        .take_calls()
        .iter()
        .filter(|c| c.fault.is_some())
        .count();
    local.proxy.set_faults(Vec::new());

    // What each flow came to, read back without faults. A run that failed is
    // alarmed by the template's RevocationExecutionsFailedAlarm whether or not its
    // failure path could also mark the case failed under the same faults.
    let failed_runs = runs.iter().filter(|r| r.status != "SUCCEEDED").count();
    let (mut completed, mut recorded_failures, mut unrecorded, mut redriven, mut false_success) =
        (0, 0, 0, 0, 0);
    let mut stuck = Vec::new();
    let mut caseless = 0;
    for user in &leavers {
        let cases = local.cases_of(user).await?;
        ensure!(cases.len() <= 1, "{user}: {} cases", cases.len());
        let Some(case) = cases.first() else {
            // Every run for this event failed before the case was opened: alarmed as
            // a failed execution; the re-drive starts it again with its input, as
            // Step Functions' RedriveExecution does.
            let mine: Vec<(&String, &WorkflowRun)> = revocations
                .iter()
                .zip(&runs)
                .filter(|(n, _)| {
                    local
                        .stack
                        .revocations
                        .input(n)
                        .is_some_and(|i| names_user(&i, user))
                })
                .collect();
            if mine.iter().any(|(_, r)| r.status == "SUCCEEDED") {
                stuck.push(format!("{user}: a run succeeded and opened no case"));
                continue;
            }
            unrecorded += 1;
            caseless += 1;
            let input = local
                .stack
                .revocations
                .input(mine[0].0)
                .context("the failed run's input")?;
            let name = format!("redrive-{}", mine[0].0);
            lapse_core::ports::WorkflowStarter::start(&local.stack.revocations, &name, &input)
                .await?;
            let run = local
                .stack
                .revocations
                .wait(&name, WAIT)
                .await
                .with_context(|| format!("re-drive {name} did not finish"))?;
            let after = local.cases_of(user).await?;
            if run.status == "SUCCEEDED"
                && after.len() == 1
                && after[0].status() == CaseStatus::Verified
                && left_over(&iam, user).await?.is_empty()
            {
                redriven += 1;
            } else {
                stuck.push(format!(
                    "{user}: no case after the failed runs; re-drive {}, {} cases",
                    run.status,
                    after.len()
                ));
            }
            continue;
        };
        let clean = left_over(&iam, user).await?.is_empty();
        let failed = match case.status() {
            CaseStatus::Verified if clean => {
                completed += 1;
                continue;
            }
            CaseStatus::Verified => {
                false_success += 1;
                continue;
            }
            CaseStatus::Failed => {
                recorded_failures += 1;
                true
            }
            _ => {
                unrecorded += 1;
                false
            }
        };
        let run = local
            .redrive(case.id(), &format!("redrive-{}", case.id()))
            .await?;
        let after = local.cases_of(user).await?;
        if run.status == "SUCCEEDED"
            && after[0].status() == CaseStatus::Verified
            && left_over(&iam, user).await?.is_empty()
        {
            redriven += 1;
        } else {
            stuck.push(format!(
                "{user}: case {:?} (recorded failure: {failed}), re-drive {}",
                case.status(),
                run.status
            ));
        }
    }
    if recorded_failures + unrecorded > failed_runs {
        stuck.push(format!(
            "{} cases unsettled but only {failed_runs} runs failed",
            recorded_failures + unrecorded
        ));
    }
    let sweep_needed = grant_runs.iter().any(|r| r.status != "SUCCEEDED");
    if sweep_needed {
        // The scheduled sweeper is the re-drive of grant workflows: it acts on
        // what is older than its grace period, so its run comes that much later.
        local
            .stack
            .clock
            .advance(lapse_core::access::usecase::sweep::GRACE + chrono::TimeDelta::minutes(1));
        let (error, answer) = local
            .invoke("sweeper", &Local::sample("sweeper/scheduled.json")?)
            .await?;
        ensure!(error.is_none(), "the sweeper failed: {answer}");
    }
    for ((user, client, id), run) in grants.iter().zip(&grant_runs) {
        let request = client.get(id).await?;
        let holds = aws_sdk_iam::Client::new(&local.stack.sdk)
            .list_user_policies()
            .user_name(user)
            .send()
            .await?
            .policy_names()
            .iter()
            .any(|n| n.ends_with(id.as_str()));
        match (run.status.as_str(), request["status"].as_str()) {
            ("SUCCEEDED", Some("verified")) if !holds => completed += 1,
            (_, Some("verified")) if holds => false_success += 1,
            (_, Some("verified")) => {
                recorded_failures += usize::from(run.states.contains(&"RecordFailure".into()));
                redriven += 1;
            }
            (status, other) => stuck.push(format!("grant {id}: run {status}, request {other:?}")),
        }
    }
    let flows = terminations + expiries;
    Ok(vec![
        Figure::info(
            bench,
            "flows (terminations + expiring grants)",
            flows.to_string(),
        ),
        Figure::info(bench, "faults injected", injected.to_string()),
        Figure::info(
            bench,
            "webhook deliveries (with HR's retries)",
            attempts.to_string(),
        ),
        Figure::info(bench, "verified under faults", completed.to_string()),
        Figure::info(
            bench,
            "failed and alarmed: case marked failed / execution failed only (before the case opened)",
            format!("{recorded_failures} / {unrecorded} ({caseless})"),
        ),
        Figure::checked(
            bench,
            "verified after a re-drive (faults off)",
            redriven.to_string(),
            "every failure",
            completed + redriven == flows,
        ),
        Figure::checked(
            bench,
            "neither verified nor re-driven",
            if stuck.is_empty() {
                "0".to_owned()
            } else {
                stuck.join("; ")
            },
            "0",
            stuck.is_empty(),
        ),
        Figure::checked(
            bench,
            "reported verified while IAM still held it",
            false_success.to_string(),
            "0",
            false_success == 0,
        ),
    ])
}

/// Scenario: the process is lost after the revocation's IAM writes and before its
/// state write (the record step dies, not retryably). The run fails on its failure
/// path; a re-drive converges; the trail has each write once.
pub async fn lost_between_writes() -> Result<Vec<Figure>> {
    const BENCH: &str = "lost between IAM and state write";
    let local = Local::start(8).await?;
    let iam = aws_sdk_iam::Client::new(&local.stack.sdk);
    let user = local.user("lost");
    staff(&local, &user).await?;
    local
        .stack
        .faults
        .fail_next("revocation/record", "Lambda.Unknown", "process exited");
    let before = local.stack.revocations.launched();
    let now = lapse_core::ports::Clock::now(local.stack.clock.as_ref());
    deliver(
        &local,
        "msg-lost",
        &termination_event(&user, &format!("evt-lost-{user}"), now)?,
    )
    .await?;
    let first = local.next_revocation(&before).await?;
    let iam_done = left_over(&iam, &user).await?.is_empty();
    let cases = local.cases_of(&user).await?;
    ensure!(cases.len() == 1, "{} cases", cases.len());
    let unrecorded = cases[0].applied().is_empty() && cases[0].status() != CaseStatus::Verified;
    let run = local
        .redrive(cases[0].id(), &format!("redrive-{}", cases[0].id()))
        .await?;
    let after = local.cases_of(&user).await?;
    let trail = local.stack.audit_reader().await?;
    let chain = trail.log.chain(&format!("user#{user}")).await?;
    let once = |action: &str| chain.iter().filter(|e| e.action == action).count();
    Ok(vec![
        Figure::checked(
            BENCH,
            "first run: failed after IAM changed, nothing recorded",
            format!(
                "{} (IAM done: {iam_done}, unrecorded: {unrecorded})",
                first.status
            ),
            "FAILED, IAM done, unrecorded",
            first.status == "FAILED" && iam_done && unrecorded,
        ),
        Figure::checked(
            BENCH,
            "re-drive",
            format!("{} / case {:?}", run.status, after[0].status()),
            "SUCCEEDED / Verified",
            run.status == "SUCCEEDED" && after[0].status() == CaseStatus::Verified,
        ),
        Figure::checked(
            BENCH,
            "applied and verified events in the trail",
            format!(
                "{} / {}",
                once("revocation.applied"),
                once("revocation.verified")
            ),
            "1 / 1",
            once("revocation.applied") == 1 && once("revocation.verified") == 1,
        ),
    ])
}

/// Scenario: HR events for two people delivered twice each, out of order and side
/// by side (one redelivered under a new message id); a TTL stream record delivered
/// three times around another; the daily inactivity check and the sweeper
/// triggered three times at once. Each has one effect.
pub async fn duplicates() -> Result<Vec<Figure>> {
    const BENCH: &str = "duplicated and reordered deliveries";
    let local = Local::start(16).await?;
    let mut figures = Vec::new();

    // HR events.
    let (ada, bob) = (local.user("dupada"), local.user("dupbob"));
    staff(&local, &ada).await?;
    staff(&local, &bob).await?;
    let now = lapse_core::ports::Clock::now(local.stack.clock.as_ref());
    let ada_event = termination_event(&ada, &format!("evt-dup-{ada}"), now)?;
    let bob_event = termination_event(&bob, &format!("evt-dup-{bob}"), now)?;
    let before = local.stack.revocations.launched();
    let deliveries = [
        ("msg-b1", &bob_event),
        ("msg-a1", &ada_event),
        ("msg-b1", &bob_event),
        ("msg-a2", &ada_event),
        ("msg-a1", &ada_event),
    ];
    let posted = join_all(deliveries.iter().map(|(m, b)| deliver(&local, m, b))).await;
    for p in posted {
        p?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started: Vec<String> = local.revocations_since(&before);
    for name in &started {
        local.stack.revocations.wait(name, WAIT).await;
    }
    let trail = local.stack.audit_reader().await?;
    // Each delivery may publish (an HR retry races the first publish); the
    // effect, a case and its revocation, happens once per event.
    let mut hr_ok = (2..=deliveries.len()).contains(&started.len());
    let mut detail = vec![format!("{} executions", started.len())];
    for user in [&ada, &bob] {
        let cases = local.cases_of(user).await?;
        let chain = trail.log.chain(&format!("user#{user}")).await?;
        let applied = chain
            .iter()
            .filter(|e| e.action == "revocation.applied")
            .count();
        hr_ok &= cases.len() == 1 && cases[0].status() == CaseStatus::Verified && applied == 1;
        detail.push(format!("{} case(s), applied {applied}×", cases.len()));
    }
    figures.push(Figure::checked(
        BENCH,
        "HR: 2 events × 5 deliveries (out of order, concurrent)",
        detail.join(", "),
        "1 verified case each, applied once",
        hr_ok,
    ));

    // A TTL stream record three times, around another record. The grant's workflow
    // has failed for good, so only the backstop can take the grant away.
    let carol = local.user("dupcarol");
    local.stack.add_users(&[&carol]).await?;
    let client = local.client(&carol, &[])?;
    for _ in 0..10 {
        local
            .stack
            .faults
            .fail_next("revoke", "Lapse.Validation", "simulated permanent failure");
    }
    let id = local.live_grant(&client, "billing-reports-read").await?;
    let expires: chrono::DateTime<chrono::Utc> = client.get(&id).await?["window"]["expires_at"]
        .as_str()
        .context("no window")?
        .parse()?;
    local
        .stack
        .clock
        .advance_to(expires + chrono::TimeDelta::seconds(1));
    let failed = local.stack.workflows.wait(&id, WAIT).await;
    ensure!(
        failed.as_ref().is_some_and(|r| r.status == "FAILED"),
        "the grant's workflow was meant to fail: {failed:?}"
    );
    let mut record = Local::sample("ttl-backstop/ttl-remove.json")?;
    record["Records"][0]["dynamodb"]["OldImage"]["grant_id"]["S"] = serde_json::json!(id);
    let other = Local::sample("ttl-backstop/release-not-ttl.json")?;
    let order = [&record, &other, &record, &record];
    let answers = join_all(order.iter().map(|e| local.invoke("ttl-backstop", e))).await;
    let mut stream_ok = true;
    for answer in answers {
        let (error, body) = answer?;
        stream_ok &= error.is_none() && body["batchItemFailures"] == serde_json::json!([]);
    }
    let request = client.get(&id).await?;
    let chain = trail.log.chain(&format!("request#{id}")).await?;
    let revoked = chain.iter().filter(|e| e.action == "grant.revoked").count();
    stream_ok &= revoked == 1 && request["status"] == "verified";
    figures.push(Figure::checked(
        BENCH,
        "TTL stream: one record × 3, reordered",
        format!("request {}, revoke events {revoked}", request["status"]),
        "revoked once",
        stream_ok,
    ));

    // The schedule's triggers: the inactivity check and the sweeper, three at once.
    let idle: Vec<String> = (0..3).map(|i| local.user(&format!("dupidle{i}"))).collect();
    let refs: Vec<&str> = idle.iter().map(String::as_str).collect();
    local.stack.add_users(&refs).await?;
    local.stack.clock.advance(chrono::TimeDelta::days(120));
    let mut daily = Local::sample("inactivity-check/daily.json")?;
    daily["time"] =
        serde_json::json!(lapse_core::ports::Clock::now(local.stack.clock.as_ref()).to_rfc3339());
    let triggers = [&daily, &daily, &daily];
    let answers = join_all(triggers.iter().map(|e| local.invoke("inactivity-check", e))).await;
    let mut errors = 0;
    for answer in answers {
        errors += usize::from(answer?.0.is_some());
    }
    let mut per_user = Vec::new();
    for user in &idle {
        per_user.push(local.cases_of(user).await?.len());
    }
    figures.push(Figure::checked(
        BENCH,
        "daily inactivity check × 3 at once",
        format!("cases per idle user {per_user:?}, failed triggers {errors}"),
        "1 case each",
        per_user.iter().all(|n| *n == 1),
    ));
    let sweep = Local::sample("sweeper/scheduled.json")?;
    let answers = join_all((0..3).map(|_| local.invoke("sweeper", &sweep))).await;
    let mut sweeps = Vec::new();
    for answer in answers {
        let (error, body) = answer?;
        sweeps.push(error.map_or_else(|| body.to_string(), |e| format!("error {e}")));
    }
    let launched = local.stack.workflows.launched();
    let unique: std::collections::BTreeSet<_> = launched.iter().collect();
    figures.push(Figure::checked(
        BENCH,
        "sweeper × 3 at once",
        format!("{} executions, {} distinct", launched.len(), unique.len()),
        "no execution started twice",
        launched.len() == unique.len() && sweeps.iter().all(|s| !s.starts_with("error")),
    ));
    Ok(figures)
}

/// An API answer in a word: the status, or the error's name.
fn describe(answer: Result<serde_json::Value, lapse_cli::client::ApiError>) -> String {
    match answer {
        Ok(v) => format!("ok {}", v["status"].as_str().unwrap_or("?")),
        Err(e) => e.to_string().chars().take(80).collect(),
    }
}

/// Scenario: fifty decisions on one request at once (approvals by two owners,
/// cancels by the requester), then fifty on another whose deadline has passed
/// (approvals, cancels and the sweeper's expiry). Exactly one outcome each, at most
/// one execution and one grant in IAM, and one terminal event in the trail.
pub async fn racing_decisions(concurrency: usize) -> Result<Vec<Figure>> {
    const BENCH: &str = "decisions racing on one request";
    let local = Local::start(8).await?;
    let owners = [local.user("olga"), local.user("olga2")];
    local.stack.add_users(&[&owners[1]]).await?;
    let approvers = [
        local.client(&owners[0], &["platform-owners"])?,
        local.client(&owners[1], &["platform-owners"])?,
    ];
    let mut figures = Vec::new();
    for round in ["before the deadline", "after the deadline"] {
        let user = local.user(&format!("racer{}", figures.len()));
        local.stack.add_users(&[&user]).await?;
        let requester = local.client(&user, &[])?;
        let asked = requester
            .request("staging-logs-read", Some("2h"), "racing decisions", None)
            .await?;
        let id = asked["id"].as_str().context("id")?.to_owned();
        ensure!(asked["status"] == "pending", "not pending: {asked}");
        if round == "after the deadline" {
            let deadline: chrono::DateTime<chrono::Utc> = asked["pending_deadline"]
                .as_str()
                .context("no pending deadline in the request")?
                .parse()?;
            local
                .stack
                .clock
                .advance_to(deadline + chrono::TimeDelta::seconds(1));
        }
        let sweep = Local::sample("sweeper/scheduled.json")?;
        let decisions = (0..concurrency).map(|i| {
            let (approvers, requester, local, id, sweep) =
                (&approvers, &requester, &local, &id, &sweep);
            async move {
                match i % 5 {
                    0 | 1 => describe(approvers[0].decide(id, true, "race").await),
                    2 => describe(approvers[1].decide(id, true, "race").await),
                    3 => describe(requester.cancel(id).await),
                    _ => match local.invoke("sweeper", sweep).await {
                        Ok((None, _)) => "sweep ok".to_owned(),
                        Ok((Some(e), _)) => format!("sweep {e}"),
                        Err(e) => format!("sweep {e}"),
                    },
                }
            }
        });
        let answers = join_all(decisions).await;
        if std::env::var_os("LAPSE_BENCH_TRACE").is_some() {
            let mut counts = std::collections::BTreeMap::new();
            for a in &answers {
                *counts.entry(a.clone()).or_insert(0) += 1;
            }
            println!("    answers: {counts:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let request = requester.get(&id).await?;
        let status = request["status"].as_str().unwrap_or("?").to_owned();
        let executions = local
            .stack
            .workflows
            .launched()
            .iter()
            .filter(|n| n.contains(id.as_str()))
            .count();
        if executions == 1 {
            requester.wait_for(&id, "active", WAIT).await?;
            local.quiesce().await;
        }
        let grants_in_iam = aws_sdk_iam::Client::new(&local.stack.sdk)
            .list_user_policies()
            .user_name(&user)
            .send()
            .await?
            .policy_names()
            .iter()
            .filter(|n| n.ends_with(id.as_str()))
            .count();
        let trail = local.stack.audit_reader().await?;
        let chain = trail.log.chain(&format!("request#{id}")).await?;
        let count = |action: &str| chain.iter().filter(|e| e.action == action).count();
        let terminal = ["request.approved", "request.cancelled", "request.expired"]
            .iter()
            .map(|a| count(a))
            .sum::<usize>();
        if std::env::var_os("LAPSE_BENCH_TRACE").is_some() {
            let actions: Vec<&str> = chain.iter().map(|e| e.action.as_str()).collect();
            println!("    trail of {id}: {actions:?}");
        }
        // Approved and then cancelled before the grant is one legitimate history;
        // whatever the end, it is in the trail exactly once and IAM agrees.
        let consistent = match status.as_str() {
            "approved" | "active" => {
                executions == 1
                    && count("request.approved") == 1
                    && count("request.cancelled") + count("request.expired") == 0
            }
            "cancelled" => {
                grants_in_iam == 0
                    && count("request.cancelled") == 1
                    && count("request.expired") == 0
            }
            "expired" => {
                grants_in_iam == 0
                    && count("request.expired") == 1
                    && count("request.cancelled") == 0
            }
            _ => false,
        } && count("request.approved") <= 1;
        figures.push(Figure::checked(
            BENCH,
            &format!("{concurrency} at once, {round}"),
            format!(
                "{status}; executions {executions}, grants in IAM {grants_in_iam}, terminal events {terminal}"
            ),
            "one outcome, ≤ 1 grant",
            consistent && grants_in_iam <= 1,
        ));
    }
    Ok(figures)
}
