//! The `lapse-dev` binary (the local stack, development tokens, the demo), run as a
//! developer would run it.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

fn lapse_dev() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lapse-dev"));
    cmd.current_dir(lapse_testkit::workspace_root());
    cmd
}

/// The demo talks to AWS only through the standard environment: pointing
/// `AWS_ENDPOINT_URL` at the emulator is all it takes. It runs all three routes.
#[test]
fn demo_runs_every_route_to_a_verified_revocation() {
    let emulator = lapse_testkit::shared();
    let out = lapse_dev()
        .args(["demo", "--prefix", &lapse_testkit::unique_name("cli")])
        .envs(emulator.env())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(emulator.endpoint()), "{stdout}");
    for expected in [
        "approved automatically",
        "resource owner approves",
        "dual approval required",
        "every statement: DateLessThan aws:CurrentTime",
        "refused (HTTP 403",
        "HTTP 401",
        "(bearer + HMAC signed): 202",
        "EventBridge rule matched user_terminated",
        "console login false, active keys 0, groups 0",
        "jdoe's JIT grant: verified",
        "Lapse refuses: HTTP 403",
        "the same event delivered again: 200",
        "revocation.applied by hr-webhook — before: login true",
        "break-glass is capped at 2h by policy",
        "granted with no approver; security was told at once",
        "olga reviews her own use: refused (HTTP 403",
        "sam (security) finds it justified: justified",
        "justification timeline SUCCEEDED: WaitForReminder → Remind → WaitForDeadline → Escalate → Done",
        "sam (security) finds it \"unjustified\": incident breakglass-",
        "her grant's workflow SUCCEEDED long before: verified",
        "checked out: lease on lapse/prod-db-root",
        "erin's approved request for it too: cancelled",
        "dana checks it in early: IAM revoked and verified (true); the secret's rotation function rotated it from",
        "is no longer AWSCURRENT (now checkin-req-",
        "made by prod-db-root-rotation, the database's rotation function)",
        "route     vendor access: the sponsor's manager and security approve",
        "lapse:managed=true, lapse:vendor=ops@acme.example, lapse:sponsor=dana, lapse:project=PRJ-42",
        "holds inline policy lapse-vendor-base\n        deny statements only: grants nothing",
        "→ DeactivateVendor → NotifyRevoked → NeedsRetirement → WaitForRetention → RetireVendor",
        "deleted after the retention: IAM no longer knows vendor-acme-",
        "Demo complete",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert_eq!(stdout.matches("workflow SUCCEEDED").count(), 6, "{stdout}");
    assert_eq!(stdout.matches("status: verified").count(), 3, "{stdout}");
    assert_eq!(
        stdout
            .matches("verified with its public key only (head")
            .count(),
        6,
        "{stdout}"
    );
    assert!(
        stdout.contains("signed audit record for jdoe (5 events, verified")
            && stdout
                .contains("#1 person.updated by hr — the directory of people: status terminated"),
        "{stdout}"
    );
    assert!(!stdout.contains("NO time bound"), "{stdout}");
    assert!(
        !stdout.contains("CloudWatchMetrics"),
        "metrics stay out of the demo's output"
    );
    // Issue 22: what a person reads is never Rust Debug text.
    let shaped =
        lapse_testkit::debug_shaped(&format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
    assert!(shaped.is_empty(), "Debug text in the demo: {shaped:#?}");
}

/// A person's round trip with the CLI against the local stack.
#[test]
fn local_tokens_come_from_the_dev_issuer_key() {
    let dir = lapse_testkit::Scratch::new("issuer");
    let key = dir.join("dev-issuer.json");
    let out = lapse_dev()
        .args([
            "token",
            "--user",
            "rita",
            "--groups",
            "managers,security",
            "--key-file",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let issuer = lapse_local::issuer::DevIssuer::load_or_create(&key).unwrap();
    let claims = issuer.verify(token.trim()).unwrap();
    assert_eq!(claims.sub, "rita");
    assert_eq!(
        claims.groups,
        ["00gmanagers000000008", "00gsecops00000000006"]
    );
}

/// `lapse-dev serve` writes every variable people and operators need to files
/// (the operators' only their owner reads), prints how to use them, and those
/// variables alone are enough for an operator call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_every_variable_the_operator_commands_need() {
    use std::io::{BufRead, BufReader};
    // Its own emulator: serve creates its cast (dana, jdoe, ...) under fixed names,
    // which the demo on the shared one creates too.
    let emulator = &lapse_testkit::Emulator::start().unwrap();
    let dir = lapse_testkit::Scratch::new("serve");
    let key = dir.join("dev-issuer.json");
    let prefix = lapse_testkit::unique_name("serve");
    /// Stops the server however the test ends.
    struct Serving(std::process::Child);
    impl Drop for Serving {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut serving = Serving(
        lapse_dev()
            .args(["serve", "--port", "0", "--prefix", &prefix, "--key-file"])
            .arg(&key)
            .envs(emulator.env())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut printed = Vec::new();
    for line in BufReader::new(serving.0.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.starts_with("Ctrl-C stops");
        printed.push(line);
        if done {
            break;
        }
    }
    let printed = printed.join("\n");
    let sourced = |file: &str| {
        let path = dir.join(file);
        assert!(
            printed.contains(&format!("  source {}", path.display())),
            "{file} is not printed to be sourced:\n{printed}"
        );
        path
    };
    let people = std::fs::read_to_string(sourced("people.env")).unwrap();
    for name in ["PATH", "LAPSE_API_URL", "LAPSE_DEV_KEY_FILE"] {
        assert!(
            people.contains(&format!("export {name}=")),
            "{name} missing from {people}"
        );
    }
    assert!(printed.contains("lapse-dev token --user dana"), "{printed}");
    let env_file = sourced("operator.env");
    sourced("operator2.env");
    let text = std::fs::read_to_string(&env_file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&env_file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "only its owner reads the operator's secret"
        );
    }
    let vars: std::collections::BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .collect();
    for name in [
        "PATH",
        "AWS_ENDPOINT_URL",
        "LAPSE_API_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "LAPSE_AUDIT_TABLE",
        "LAPSE_AUDIT_KEY_ID",
        "LAPSE_AUDIT_ANCHOR_BUCKET",
    ] {
        assert!(vars.contains_key(name), "{name} missing from {text}");
    }
    assert!(
        !printed.contains(vars["AWS_SECRET_ACCESS_KEY"]),
        "the secret is not printed"
    );
    // With those variables only, an operator call goes through the IAM authorizer.
    let sdk = lapse_aws::sdk::load_local_as(
        emulator.endpoint(),
        lapse_aws::sdk::Credentials::new(
            vars["AWS_ACCESS_KEY_ID"],
            vars["AWS_SECRET_ACCESS_KEY"],
            None,
            None,
            "operator",
        ),
    )
    .await;
    let operator = lapse_cli::client::ApiClient::aws(vars["LAPSE_API_URL"], &sdk).unwrap();
    let checked = operator.operator_get("users/nobody-here").await.unwrap();
    assert_eq!(checked["identity"]["exists"], false, "{checked}");
}
