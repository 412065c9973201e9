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
    let dir = std::env::temp_dir().join(lapse_testkit::unique_name("policy"));
    std::fs::create_dir_all(&dir).unwrap();
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

/// The demo talks to AWS only through the standard environment: pointing
/// `AWS_ENDPOINT_URL` at the emulator is all it takes.
#[test]
fn demo_runs_against_the_emulator_through_the_standard_environment() {
    let emulator = lapse_testkit::shared();
    let out = lapse()
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
    assert!(stdout.contains("approved automatically"), "{stdout}");
    assert!(stdout.contains("resource owner approves"), "{stdout}");
    assert!(stdout.contains("dual approval required"), "{stdout}");
    assert_eq!(stdout.matches("read back identical").count(), 3, "{stdout}");
    assert_eq!(
        stdout.matches("audit chain verified").count(),
        3,
        "{stdout}"
    );
    assert!(stdout.contains("Demo complete."), "{stdout}");
}
