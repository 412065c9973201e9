//! The `lapse` binary, run as a person would run it.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

fn lapse() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lapse"));
    cmd.current_dir(lapse_testkit::workspace_root());
    cmd
}

#[test]
fn policy_check_accepts_the_shipped_catalog() {
    let out = lapse()
        .args(["policy", "check", "infra/policy/catalog.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("valid"), "{stdout}");
    assert!(stdout.contains("policy hash"), "{stdout}");
}

#[test]
fn policy_check_reports_every_problem_with_its_line() {
    let dir = lapse_testkit::Scratch::new("policy");
    let text =
        std::fs::read_to_string(lapse_testkit::workspace_root().join("infra/policy/catalog.yaml"))
            .unwrap()
            .replacen("owner_group: billing-owners", "owner_group: nobody", 1)
            .replacen("- s3:GetObject", "- GetObject", 1);
    let file = dir.join("catalog.yaml");
    std::fs::write(&file, &text).unwrap();
    let out = lapse()
        .args(["policy", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(
        stderr.contains(&format!("catalog.yaml:{}:", line_of("owner_group: nobody"))),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("catalog.yaml:{}:", line_of("- GetObject"))),
        "{stderr}"
    );
    assert!(stderr.contains("2 problem(s)"), "{stderr}");

    std::fs::write(&file, "version: 1\ntunables: [\n").unwrap();
    let out = lapse()
        .args(["policy", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "syntax errors fail cleanly, without a panic"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("catalog.yaml:2:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_approve_status_and_revoke_from_the_command_line() {
    use lapse_local::host::{LocalStack, StackOptions};
    let sdk = lapse_aws::sdk::load_local(lapse_testkit::shared().endpoint()).await;
    let stack = LocalStack::start(
        sdk,
        StackOptions {
            prefix: lapse_testkit::unique_name("cli"),
            issuer: None,
            run: Default::default(),
            port: 0,
        },
    )
    .await
    .unwrap();
    let carl = lapse_testkit::unique_name("carl");
    let olga = lapse_testkit::unique_name("olga");
    stack.add_users(&[&carl, &olga]).await.unwrap();
    let as_user = |user: &str, groups: &[&str]| {
        let mut cmd = lapse();
        cmd.env("LAPSE_API_URL", &stack.url).env(
            "LAPSE_TOKEN",
            stack.token(user, groups, "contractor").unwrap(),
        );
        cmd
    };
    let run = |mut cmd: Command, args: &[&str]| {
        let out = cmd.args(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let shaped = lapse_testkit::debug_shaped(&text);
        assert!(
            shaped.is_empty(),
            "Debug text for a person: {shaped:#?}\n{text}"
        );
        (out.status.success(), text)
    };

    let (ok, text) = run(
        as_user(&carl, &[]),
        &[
            "request",
            "--resource",
            "staging-logs-read",
            "--duration",
            "2h",
            "--justification",
            "debug deploy",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("status    pending"), "{text}");
    assert!(
        text.contains("+10 employment"),
        "risk factors are shown: {text}"
    );
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("request   "))
        .unwrap()
        .trim()
        .to_owned();

    let (ok, text) = run(as_user(&olga, &["platform-owners"]), &["pending"]);
    assert!(ok && text.contains(&id), "{text}");
    let (ok, text) = run(as_user(&carl, &[]), &["approve", &id]);
    assert!(!ok && text.contains("403"), "no self-approval: {text}");
    let (ok, text) = run(
        as_user(&olga, &["platform-owners"]),
        &["approve", &id, "--comment", "ok"],
    );
    assert!(ok && text.contains("approved"), "{text}");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, text) = run(as_user(&carl, &[]), &["grants"]);
        if text.contains(&id) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "grant never became active"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (ok, text) = run(as_user(&carl, &[]), &["status", &id]);
    assert!(
        ok && text.contains("status    active") && text.contains("window"),
        "{text}"
    );
    let (ok, text) = run(as_user(&carl, &[]), &["grants", "revoke", &id]);
    assert!(
        ok && text.contains("revoked") && text.contains("verified: true"),
        "{text}"
    );
    let (ok, text) = run(as_user(&carl, &[]), &["status"]);
    assert!(ok && text.contains("verified"), "{text}");

    let (ok, text) = run(lapse(), &["status"]);
    assert!(
        !ok && text.contains("LAPSE_API_URL"),
        "a clear error without configuration: {text}"
    );
}

/// The operator's revocation tools, driven as a person would, against the local stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_revoke_dry_run_batch_check_verify_restore_and_hold() {
    use lapse_local::host::{LocalStack, StackOptions};
    let emulator = lapse_testkit::shared();
    let sdk = lapse_aws::sdk::load_local(emulator.endpoint()).await;
    let stack = LocalStack::start(
        sdk.clone(),
        StackOptions {
            prefix: lapse_testkit::unique_name("ops"),
            issuer: None,
            run: Default::default(),
            port: 0,
        },
    )
    .await
    .unwrap();
    let iam = aws_sdk_iam::Client::new(&sdk);
    let users: Vec<String> = ["gone", "moved", "held"]
        .iter()
        .map(|u| lapse_testkit::unique_name(u))
        .collect();
    lapse_local::provision::ensure_group(&iam, "engineers")
        .await
        .unwrap();
    for user in &users {
        stack.add_users(&[user]).await.unwrap();
        iam.create_login_profile()
            .user_name(user)
            .password("Initial-Passw0rd!")
            .send()
            .await
            .unwrap();
        iam.create_access_key()
            .user_name(user)
            .send()
            .await
            .unwrap();
        iam.add_user_to_group()
            .user_name(user)
            .group_name("engineers")
            .send()
            .await
            .unwrap();
    }
    // `lapse` with the emulator and these variables set.
    let run_in = |env: Vec<(&str, String)>, args: &[&str]| {
        let out = lapse()
            .args(args)
            .envs(emulator.env())
            .envs(env)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let shaped = lapse_testkit::debug_shaped(&text);
        assert!(
            shaped.is_empty(),
            "Debug text for a person: {shaped:#?}\n{text}"
        );
        (out.status.success(), text)
    };
    // An operator has the stack's API and their own AWS key, nothing else: the
    // stack's roles do the work, so no table, key or state machine is named here.
    let run_as = |extra: &[(&'static str, &str)], args: &[&str]| {
        let env = stack
            .operator_env()
            .into_iter()
            .chain(extra.iter().map(|(k, v)| (*k, v.to_string())))
            .collect();
        run_in(env, args)
    };
    let run = |args: &[&str]| run_as(&[], args);
    // The other operator: restores and overrides take two.
    let run_second = |args: &[&str]| run_in(stack.operator_env_of(&stack.second_operator), args);
    let gone = users[0].as_str();

    // API Gateway's IAM authorizer: a signature made with a key the stack does not
    // know, or with the wrong secret, is refused before any function runs.
    let (ok, text) = run_as(
        &[("AWS_SECRET_ACCESS_KEY", "not-the-secret")],
        &["check-user", "--user", gone],
    );
    assert!(
        !ok && text.contains("HTTP 403") && text.contains("signature"),
        "{text}"
    );
    let (ok, text) = run_as(
        &[("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN")],
        &["check-user", "--user", gone],
    );
    assert!(!ok && text.contains("HTTP 403"), "{text}");

    let (ok, text) = run(&["revoke", "--user", gone, "--reason", "left", "--dry-run"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("nothing applied")
            && text.contains("would delete the console login profile")
            && text.contains("would remove from group ")
            && !text.contains(" { "),
        "{text}"
    );
    assert!(
        iam.get_login_profile().user_name(gone).send().await.is_ok(),
        "a dry run changes nothing"
    );

    let (ok, text) = run(&[
        "revoke",
        "--user",
        gone,
        "--reason",
        "left the company",
        "--preserve-data",
    ]);
    assert!(ok && text.contains("full revocation verified"), "{text}");
    assert!(
        iam.get_login_profile()
            .user_name(gone)
            .send()
            .await
            .is_err()
    );
    let (ok, text) = run(&["check-user", "--user", gone]);
    assert!(
        ok && text.contains("console login: false") && text.contains(" full verified "),
        "{text}"
    );
    let (ok, text) = run(&["verify", "--user", gone]);
    assert!(ok && text.contains("verified"), "{text}");

    // One operator's restore only proposes it; the same command by the other
    // carries it out.
    // Whole seconds, rounded up: the snapshot taken within this second is at or
    // before it (rounded down, it was not, a flaky failure seen in CI).
    let backup = (chrono::Utc::now() + chrono::TimeDelta::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let restore = [
        "restore",
        "--user",
        gone,
        "--from-backup",
        &backup,
        "--approval",
        "CHG-88",
    ];
    let (ok, text) = run(&restore);
    assert!(
        ok && text.contains("proposed by operator:arn:aws:iam::123456789012:user/lapse-operators/")
            && text.contains("Nothing changes until a second, different operator runs")
            && text.contains(&format!(
                "lapse restore --user {gone} --from-backup {backup}"
            )),
        "{text}"
    );
    assert!(
        iam.get_login_profile()
            .user_name(gone)
            .send()
            .await
            .is_err(),
        "a proposal restores nothing"
    );
    let (ok, text) = run(&restore);
    assert!(
        !ok && text.contains("HTTP 403")
            && text.contains("a second, different operator must confirm it"),
        "{text}"
    );
    let (ok, text) = run_second(&restore);
    assert!(ok && text.contains("restored"), "{text}");
    assert!(
        iam.get_login_profile().user_name(gone).send().await.is_ok(),
        "restored with a reset-required password"
    );

    let held = users[2].as_str();
    let hold = [
        "hold",
        "--user",
        held,
        "--override",
        "INC-3 investigation",
        "--reason",
        "security lead",
    ];
    let (ok, text) = run(&hold);
    assert!(ok && text.contains("proposed by"), "{text}");
    let (ok, text) = run_second(&hold);
    assert!(
        ok && text.contains("override INC-3 investigation"),
        "{text}"
    );
    let scratch = lapse_testkit::Scratch::new("batch");
    let csv = scratch.join("batch.csv");
    std::fs::write(
        &csv,
        format!(
            "username,reason,revocation_type,preserve_data,role\n{},\"role change, to finance\",partial,false,analyst\nbad row\n{held},left,full,false,\n{},again,full,false,\n",
            users[1],
            users[1].to_uppercase()
        ),
    )
    .unwrap();
    // A dry run says something for every row: the one IAM does not have too.
    let dry = scratch.join("dry.csv");
    std::fs::write(
        &dry,
        format!("{held},check,full,false,\nnobody-here,check,full,false,\n"),
    )
    .unwrap();
    let (ok, text) = run(&["revoke", "--batch", dry.to_str().unwrap(), "--dry-run"]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("line 1: {held}: "))
            && text.contains("would deactivate access key")
            && text.contains("line 2: nobody-here: nothing to revoke: IAM has no such user")
            && text.contains("2 row(s): 2 previewed, 0 failed"),
        "{text}"
    );
    let (ok, text) = run(&["revoke", "--batch", csv.to_str().unwrap(), "--emergency"]);
    assert!(!ok, "a failed row fails the command: {text}");
    assert!(
        text.contains("line 2:") && text.contains("partial revocation verified"),
        "{text}"
    );
    assert!(
        text.contains("line 3: ERROR `username` \"bad row\" is not an IAM user name"),
        "{text}"
    );
    assert!(text.contains("held back: INC-3"), "{text}");
    // The same person twice (names have no case): revoked once, the later row
    // warned about, and the summary counts each ending apart.
    assert!(
        text.contains("line 5:")
            && text
                .contains("WARNING duplicate of line 2 (and it asks for something else): skipped"),
        "{text}"
    );
    assert!(
        text.contains(
            "4 row(s): 1 revoked and verified, 1 held back, 1 duplicate(s) skipped, 1 failed"
        ),
        "{text}"
    );
    let groups = iam
        .list_groups_for_user()
        .user_name(&users[1])
        .send()
        .await
        .unwrap();
    assert!(
        groups.groups().is_empty(),
        "the analyst role has no engineers group"
    );
    assert!(
        iam.get_login_profile().user_name(held).send().await.is_ok(),
        "the override held it back"
    );

    let (ok, text) = run(&["revoke", "--user", gone]);
    assert!(!ok && text.contains("--reason"), "{text}");

    // A contract end scheduled through the revocation workflow, then a grace period
    // granted with an approval reference.
    let contractor = users[1].as_str();
    let at = (chrono::Utc::now() + chrono::TimeDelta::days(3)).to_rfc3339();
    let (ok, text) = run(&[
        "revoke",
        "--user",
        contractor,
        "--reason",
        "contract ends",
        "--schedule",
        &at,
    ]);
    assert!(ok && text.contains("scheduled for"), "{text}");
    let case_id = text
        .split("as case ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let schedule = aws_sdk_scheduler::Client::new(&sdk)
        .get_schedule()
        .name(format!("lapse-{case_id}"))
        .send()
        .await
        .unwrap();
    assert!(
        schedule.schedule_expression().unwrap().starts_with("at("),
        "a one-time schedule"
    );
    let target = schedule.target().unwrap();
    assert_eq!(target.arn(), stack.config.revocation_state_machine_arn);
    assert!(target.input().unwrap().contains(&case_id));
    let (ok, text) = run(&[
        "revoke",
        "--user",
        contractor,
        "--reason",
        "grace approved in CHG-12",
        "--extend",
        "7d",
    ]);
    assert!(ok && text.contains("now effective at"), "{text}");
    // An operator's schedule can move again (with another approval); only a contract
    // end's grace is capped and single-use (tested in the core).
    let (ok, text) = run(&[
        "revoke",
        "--user",
        contractor,
        "--reason",
        "moved again CHG-13",
        "--extend",
        "1d",
    ]);
    assert!(ok && text.contains("now effective at"), "{text}");
    let (ok, text) = run(&["check-user", "--user", contractor]);
    assert!(
        ok && text.contains(" full received (contract ends)"),
        "{text}"
    );

    // A role change honours the transition period unless it is an emergency, and an
    // emergency is now: it cannot be scheduled.
    let (ok, text) = run(&[
        "revoke", "--user", gone, "--reason", "moved", "--role", "analyst",
    ]);
    assert!(ok && text.contains("scheduled for"), "{text}");
    let at = (chrono::Utc::now() + chrono::TimeDelta::days(1)).to_rfc3339();
    let (ok, text) = run(&[
        "revoke",
        "--user",
        gone,
        "--reason",
        "moved",
        "--role",
        "analyst",
        "--emergency",
        "--schedule",
        &at,
    ]);
    assert!(!ok && text.contains("cannot be used with"), "{text}");

    // Auditors: every chain this stack wrote verifies against its anchors, and
    // exports as JSON Lines.
    // Auditors read the trail with their own read-only access.
    let auditor = |args: &[&str]| run_in(stack.config.env_pairs(), args);
    let (ok, text) = auditor(&["audit", "verify"]);
    assert!(
        ok && text.contains(" 0 failed") && text.contains("ok      user#"),
        "{text}"
    );
    let scratch = lapse_testkit::Scratch::new("audit");
    let export = scratch.join("audit.jsonl");
    let (ok, text) = auditor(&["audit", "export", "--out", export.to_str().unwrap()]);
    assert!(ok && text.contains("event(s) exported"), "{text}");
    let exported = std::fs::read_to_string(&export).unwrap();
    assert!(exported.lines().count() > 5);
    for line in exported.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(event["signature"].as_str().is_some_and(|s| !s.is_empty()));
    }
    // The executor of every operator action is the principal AWS authenticated.
    let executor = format!("operator:{}", stack.operator.arn);
    let confirmer = format!("operator:{}", stack.second_operator.arn);
    assert!(stack.operator.arn.contains(":user/lapse-operators/"));
    for (action, by) in [
        ("revocation.received", &executor),
        ("revocation.change_proposed", &executor),
        // What two operators asked for is carried out by the one who confirmed.
        ("revocation.change_confirmed", &confirmer),
        ("revocation.restored", &confirmer),
        ("revocation.controls_changed", &confirmer),
        ("revocation.postponed", &executor),
    ] {
        assert!(
            exported.lines().any(|line| {
                let event: serde_json::Value = serde_json::from_str(line).unwrap();
                event["action"] == action && event["actor"] == by.as_str()
            }),
            "no {action} by {by}"
        );
    }
}

/// Output piped into a reader that is gone (`lapse … | head` once head has its
/// lines) ends the command quietly with 141, as `SIGPIPE` ends a Unix tool: no
/// panic, no backtrace.
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = lapse()
        .args(["policy", "check", "infra/policy/catalog.yaml"])
        .stdout(writer)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
