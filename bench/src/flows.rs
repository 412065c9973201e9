//! Benchmarks of Lapse's flows against the local emulator: termination to verified
//! revocation, a batch through the CLI (with and without throttling), the
//! inactivity scan, and expiry lateness.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use lapse_local::proxy::{Call, FaultKind, FaultRule};

use crate::local::{Local, WAIT, left_over, termination_event};
use crate::report::{Figure, ms, quantile};

/// Gives `user` ten groups, ten inline policies, two access keys and a console
/// password, as the termination benchmark asks.
async fn holdings(local: &Local, user: &str) -> Result<()> {
    let iam = aws_sdk_iam::Client::new(&local.stack.sdk);
    local.stack.add_users(&[user]).await?;
    for k in 0..10 {
        let group = format!("bench-team-{k}");
        lapse_local::provision::ensure_group(&iam, &group).await?;
        iam.add_user_to_group()
            .user_name(user)
            .group_name(&group)
            .send()
            .await?;
        iam.put_user_policy()
            .user_name(user)
            .policy_name(format!("team-policy-{k}"))
            .policy_document(
                serde_json::json!({
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                   "Resource": format!("arn:aws:s3:::team-{k}/*")}]
                })
                .to_string(),
            )
            .send()
            .await?;
    }
    for _ in 0..2 {
        iam.create_access_key().user_name(user).send().await?;
    }
    iam.create_login_profile()
        .user_name(user)
        .password("Initial-Passw0rd!")
        .send()
        .await?;
    Ok(())
}

/// The calls Lapse made: the router's queue polling is the local stand-in for
/// EventBridge's rule target, so it is left out.
fn lapse_calls(calls: Vec<Call>) -> Vec<Call> {
    calls.into_iter().filter(|c| c.service != "sqs").collect()
}

/// One termination, from the webhook call to the verified revocation, for a user
/// holding what benchmark 4 asks. Returns the wall time and the calls Lapse made.
async fn one_termination(local: &Local, run: usize) -> Result<(Duration, Vec<Call>)> {
    let iam = aws_sdk_iam::Client::new(&local.stack.sdk);
    let user = local.user(&format!("leaver{run}"));
    holdings(local, &user).await?;
    let requester = local.client(&user, &[])?;
    for resource in ["billing-reports-read", "staging-logs-read", "prod-readonly"] {
        local.live_grant(&requester, resource).await?;
    }
    let before = local.stack.revocations.launched();
    let now = lapse_core::ports::Clock::now(local.stack.clock.as_ref());
    let body = termination_event(&user, &format!("evt-bench-{run}-{user}"), now)?;
    local.quiesce().await;
    let started = Instant::now();
    let (status, answer) = local
        .stack
        .post_hr_event(&format!("msg-bench-{run}"), &body)
        .await?;
    ensure!(status == 202, "the webhook answered {status}: {answer}");
    let finished = local.next_revocation(&before).await?;
    let wall = started.elapsed();
    ensure!(
        finished.status == "SUCCEEDED",
        "termination run {run} did not verify: {finished:?}"
    );
    let calls = lapse_calls(local.proxy.take_calls());
    if std::env::var_os("LAPSE_BENCH_TRACE").is_some() {
        trace(&calls, started);
    }
    let faults = local.proxy.take_faults();
    let left = left_over(&iam, &user).await?;
    local.proxy.set_faults(faults);
    ensure!(left.is_empty(), "verified, yet IAM still holds {left:?}");
    Ok((wall, calls))
}

/// The added latency per IAM call when measuring the critical path
/// (`LAPSE_BENCH_ROUND_TRIP_MS` to change it).
fn round_trip() -> Duration {
    let ms = std::env::var("LAPSE_BENCH_ROUND_TRIP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    Duration::from_millis(ms)
}

/// Benchmark 4: an HR termination to a verified revocation, for a user with 10
/// groups, 10 inline policies, 2 access keys, a console password and 3 live JIT
/// grants, `runs` times. Then the critical path: the same with every IAM call
/// held [`round_trip`] longer; the extra wall time over the plain median, divided
/// by that delay, is the number of IAM round trips made one after another
/// (calls made side by side add one delay between them).
pub async fn termination(runs: usize) -> Result<Vec<Figure>> {
    const BENCH: &str = "4. termination → verified";
    let delayed_runs = 3;
    let round_trip_delay = round_trip();
    // Each run leaves three grant executions waiting for their expiry.
    let local = Local::start(8 + 3 * (runs + delayed_runs)).await?;
    let (mut walls, mut totals, mut iam_totals) = (Vec::new(), Vec::new(), Vec::new());
    let mut by_service: BTreeMap<String, usize> = BTreeMap::new();
    for run in 0..runs {
        let (wall, calls) = one_termination(&local, run).await?;
        walls.push(wall);
        totals.push(calls.len());
        iam_totals.push(calls.iter().filter(|c| c.service == "iam").count());
        for call in &calls {
            *by_service.entry(call.service.clone()).or_insert(0) += 1;
        }
    }
    let mut delayed = Vec::new();
    for run in runs..runs + delayed_runs {
        local.proxy.set_faults(vec![FaultRule {
            service: Some("iam".into()),
            operations: Vec::new(),
            rate: 1.0,
            kinds: vec![FaultKind::Delay(round_trip_delay)],
            limit: None,
        }]);
        // Set-up runs delayed too; only the termination is timed.
        let (wall, _) = one_termination(&local, run).await?;
        local.proxy.set_faults(Vec::new());
        delayed.push(wall);
    }
    let plain = quantile(&walls, 0.5);
    let extra = quantile(&delayed, 0.5).saturating_sub(plain);
    let round_trips = extra.as_secs_f64() / round_trip_delay.as_secs_f64();
    let median = |v: &[usize]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let services = by_service
        .iter()
        .map(|(s, n)| format!("{s} {}", n / runs.max(1)))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(vec![
        Figure::info(BENCH, &format!("wall time p50 ({runs} runs)"), ms(plain)),
        Figure::info(
            BENCH,
            &format!("wall time p99 ({runs} runs)"),
            ms(quantile(&walls, 0.99)),
        ),
        Figure::info(
            BENCH,
            "AWS calls per termination (median)",
            median(&totals).to_string(),
        ),
        Figure::info(
            BENCH,
            "  of which IAM (median)",
            median(&iam_totals).to_string(),
        ),
        Figure::info(BENCH, "  per service (mean)", services),
        Figure::info(
            BENCH,
            &format!(
                "wall time p50, each IAM call +{} ms ({delayed_runs} runs)",
                round_trip_delay.as_millis()
            ),
            ms(quantile(&delayed, 0.5)),
        ),
        Figure::checked(
            BENCH,
            "IAM critical path: extra time ÷ added delay",
            format!("{round_trips:.1} round trips"),
            "≤ 6",
            round_trips.round() <= 6.0,
        ),
    ])
}

/// Prints every call with its start and end, for finding what is sequential.
fn trace(calls: &[Call], origin: Instant) {
    let mut sorted: Vec<&Call> = calls.iter().collect();
    sorted.sort_by_key(|c| c.started);
    for c in sorted {
        println!(
            "    {:>8.1} {:>8.1}  {}:{}",
            (c.started - origin).as_secs_f64() * 1000.0,
            (c.ended - origin).as_secs_f64() * 1000.0,
            c.service,
            c.operation
        );
    }
}

/// Users with a console password, an access key and one group, for the batch.
async fn batch_users(local: &Local, prefix: &str, count: usize) -> Result<Vec<String>> {
    let iam = aws_sdk_iam::Client::new(&local.stack.sdk);
    lapse_local::provision::ensure_group(&iam, "bench-batch").await?;
    let users: Vec<String> = (0..count)
        .map(|i| local.user(&format!("{prefix}{i:04}")))
        .collect();
    for chunk in users.chunks(16) {
        let mut set = tokio::task::JoinSet::new();
        for user in chunk {
            let (iam, user, stack_sdk) = (iam.clone(), user.clone(), local.stack.sdk.clone());
            set.spawn(async move {
                lapse_local::provision::ensure_user(&aws_sdk_iam::Client::new(&stack_sdk), &user)
                    .await?;
                iam.create_login_profile()
                    .user_name(&user)
                    .password("Initial-Passw0rd!")
                    .send()
                    .await?;
                iam.create_access_key().user_name(&user).send().await?;
                iam.add_user_to_group()
                    .user_name(&user)
                    .group_name("bench-batch")
                    .send()
                    .await?;
                anyhow::Ok(())
            });
        }
        while let Some(done) = set.join_next().await {
            done??;
        }
    }
    Ok(users)
}

/// What one batch run came to.
#[derive(Debug)]
pub struct BatchOutcome {
    pub wall: Duration,
    pub verified: usize,
    pub reported: usize,
    /// Rows the CLI said nothing about.
    pub lost: usize,
    /// Rows reported verified whose user IAM still gives something.
    pub false_success: usize,
}

/// Runs `lapse revoke --batch` (the CLI binary next to this one) over `users`.
pub async fn run_batch(local: &Local, users: &[String], csv_dir: &Path) -> Result<BatchOutcome> {
    let mut csv = String::from("username,reason,revocation_type,preserve_data\n");
    for user in users {
        csv.push_str(&format!("{user},benchmark batch,full,false\n"));
    }
    let path = csv_dir.join(format!("batch-{}.csv", users.len()));
    std::fs::write(&path, csv)?;
    let lapse = std::env::current_exe()?
        .parent()
        .context("no folder")?
        .join("lapse");
    let started = Instant::now();
    let out = tokio::process::Command::new(&lapse)
        .args(["revoke", "--batch"])
        .arg(&path)
        .envs(local.stack.operator_env())
        .output()
        .await
        .with_context(|| format!("running {}", lapse.display()))?;
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Data rows start on line 2.
    let mut seen = vec![false; users.len()];
    let (mut verified, mut reported) = (0, 0);
    let mut verified_users = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("line ") else {
            continue;
        };
        let Some((number, message)) = rest.split_once(": ") else {
            continue;
        };
        let Some(row) = number.parse::<usize>().ok().and_then(|n| n.checked_sub(2)) else {
            continue;
        };
        let Some(user) = users.get(row) else { continue };
        seen[row] = true;
        if message.contains("revocation verified") && message.starts_with(user.as_str()) {
            verified += 1;
            verified_users.push(user.clone());
        } else {
            reported += 1;
        }
    }
    let lost = seen.iter().filter(|s| !**s).count();
    // Read IAM back without faults: a row reported verified must hold nothing.
    let faults = local.proxy.take_faults();
    let iam = aws_sdk_iam::Client::new(&local.stack.sdk);
    let mut false_success = 0;
    for user in &verified_users {
        if !left_over(&iam, user).await?.is_empty() {
            false_success += 1;
        }
    }
    local.proxy.set_faults(faults);
    Ok(BatchOutcome {
        wall,
        verified,
        reported,
        lost,
        false_success,
    })
}

/// Benchmark 5: a batch of `count` users through the CLI, then another of
/// `throttled_count` with 30 % of IAM calls throttled.
pub async fn batch(count: usize, throttled_count: usize, csv_dir: &Path) -> Result<Vec<Figure>> {
    const BENCH: &str = "5. batch revocation";
    let local = Local::start(16).await?;
    let clean = batch_users(&local, "batch", count).await?;
    let calm = run_batch(&local, &clean, csv_dir).await?;
    let throttled_users = batch_users(&local, "throttled", throttled_count).await?;
    local.proxy.set_faults(vec![FaultRule {
        service: Some("iam".into()),
        operations: Vec::new(),
        rate: 0.3,
        kinds: vec![FaultKind::Throttle],
        limit: None,
    }]);
    let throttled = run_batch(&local, &throttled_users, csv_dir).await?;
    local.proxy.set_faults(Vec::new());
    let injected = local
        .proxy
        .take_calls()
        .iter()
        .filter(|c| c.fault.is_some())
        .count();
    let rate =
        |o: &BatchOutcome, n: usize| format!("{:.1} users/s", n as f64 / o.wall.as_secs_f64());
    Ok(vec![
        Figure::info(
            BENCH,
            &format!("{count} users, no faults"),
            rate(&calm, count),
        ),
        Figure::checked(
            BENCH,
            "  rows verified (no faults)",
            format!("{}/{count}", calm.verified),
            "all",
            calm.verified == count,
        ),
        Figure::info(
            BENCH,
            &format!("{throttled_count} users, 30 % of IAM calls throttled"),
            rate(&throttled, throttled_count),
        ),
        Figure::info(BENCH, "  throttling errors injected", injected.to_string()),
        Figure::info(
            BENCH,
            "  rows verified / reported failed",
            format!("{} / {}", throttled.verified, throttled.reported),
        ),
        Figure::checked(
            BENCH,
            "  rows lost (neither verified nor reported)",
            throttled.lost.to_string(),
            "0",
            throttled.lost == 0 && calm.lost == 0,
        ),
        Figure::checked(
            BENCH,
            "  rows reported verified that IAM contradicts",
            (throttled.false_success + calm.false_success).to_string(),
            "0",
            throttled.false_success + calm.false_success == 0,
        ),
    ])
}

/// Benchmark 6: the inactivity check over `users` IAM users, through the deployed
/// handler (the credential report), against reading each user's activity.
pub async fn inactivity(users: usize) -> Result<Vec<Figure>> {
    const BENCH: &str = "6. inactivity scan";
    let local = Local::start(4).await?;
    // Made straight against the emulator: set-up is not measured.
    let direct = lapse_aws::sdk::load_local(local.emulator.endpoint()).await;
    let iam = aws_sdk_iam::Client::new(&direct);
    let names: Vec<String> = (0..users).map(|i| format!("scan-{i:05}")).collect();
    for chunk in names.chunks(32) {
        let mut set = tokio::task::JoinSet::new();
        for name in chunk {
            let (iam, name) = (iam.clone(), name.clone());
            set.spawn(async move { iam.create_user().user_name(name).send().await });
        }
        while let Some(done) = set.join_next().await {
            done??;
        }
    }
    // The handler, invoked as the daily schedule does.
    let event = std::fs::read_to_string(
        lapse_testkit::workspace_root().join("events/inactivity-check/daily.json"),
    )?;
    local.proxy.take_calls();
    let started = Instant::now();
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/2015-03-31/functions/inactivity-check/invocations",
            local.stack.url
        ))
        .body(event)
        .send()
        .await?;
    ensure!(
        answer.headers().get("x-amz-function-error").is_none(),
        "the inactivity check failed: {}",
        answer.text().await?
    );
    let report_wall = started.elapsed();
    let report_calls = lapse_calls(local.proxy.take_calls());
    let report_iam = report_calls.iter().filter(|c| c.service == "iam").count();
    // The per-user way: list the users, then each user's keys and their last use.
    let proxied = aws_sdk_iam::Client::new(&local.stack.sdk);
    let started = Instant::now();
    let listed: Vec<_> = proxied
        .list_users()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await?;
    for chunk in listed.chunks(16) {
        let mut set = tokio::task::JoinSet::new();
        for user in chunk {
            let (iam, name) = (proxied.clone(), user.user_name().to_owned());
            set.spawn(async move {
                let keys = iam.list_access_keys().user_name(&name).send().await?;
                for key in keys.access_key_metadata() {
                    if let Some(id) = key.access_key_id() {
                        iam.get_access_key_last_used()
                            .access_key_id(id)
                            .send()
                            .await?;
                    }
                }
                anyhow::Ok(())
            });
        }
        while let Some(done) = set.join_next().await {
            done??;
        }
    }
    let per_user_wall = started.elapsed();
    let per_user_calls = local
        .proxy
        .take_calls()
        .iter()
        .filter(|c| c.service == "iam")
        .count();
    ensure!(listed.len() >= users, "only {} users listed", listed.len());
    Ok(vec![
        Figure::info(
            BENCH,
            &format!("{users} users: IAM calls, credential report"),
            report_iam.to_string(),
        ),
        Figure::info(
            BENCH,
            &format!("{users} users: IAM calls, per user (16 at a time)"),
            per_user_calls.to_string(),
        ),
        Figure::checked(
            BENCH,
            "calls: per user ÷ credential report",
            format!("{:.0}×", per_user_calls as f64 / report_iam.max(1) as f64),
            "report uses fewer",
            report_iam < per_user_calls,
        ),
        Figure::info(
            BENCH,
            "wall time, the deployed handler (report)",
            ms(report_wall),
        ),
        Figure::info(BENCH, "wall time, per user", ms(per_user_wall)),
        Figure::info(
            BENCH,
            "  all AWS calls of the handler",
            report_calls.len().to_string(),
        ),
    ])
}

/// Benchmark 7: grants expiring, `grants` times: from the stack's clock passing
/// `expires_at` to the workflow finishing with the revocation verified.
pub async fn expiry(grants: usize) -> Result<Vec<Figure>> {
    const BENCH: &str = "7. expiry lateness";
    let local = Local::start(8).await?;
    let mut lateness = Vec::new();
    for i in 0..grants {
        let user = local.user(&format!("expiring{i}"));
        local.stack.add_users(&[&user]).await?;
        let client = local.client(&user, &[])?;
        let id = local.live_grant(&client, "billing-reports-read").await?;
        let active = client.get(&id).await?;
        let expires: chrono::DateTime<chrono::Utc> = active["window"]["expires_at"]
            .as_str()
            .context("no window")?
            .parse()?;
        let started = Instant::now();
        local.stack.clock.advance_to(expires);
        let run = local
            .stack
            .workflows
            .wait(&id, WAIT)
            .await
            .context("the grant's workflow did not finish")?;
        let late = started.elapsed();
        ensure!(run.status == "SUCCEEDED", "expiry run failed: {run:?}");
        let done = client.get(&id).await?;
        ensure!(done["status"] == "verified", "not verified: {done}");
        lateness.push(late);
    }
    let p99 = quantile(&lateness, 0.99);
    Ok(vec![
        Figure::info(
            BENCH,
            &format!("p50 ({grants} grants)"),
            ms(quantile(&lateness, 0.5)),
        ),
        Figure::checked(
            BENCH,
            &format!("p99 ({grants} grants)"),
            ms(p99),
            "≤ 2 s",
            p99 <= Duration::from_secs(2),
        ),
    ])
}
