//! Architecture invariants that the compiler cannot check.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

/// `lapse-core` must not depend, even transitively, on any AWS or Lambda crate.
#[test]
fn core_has_no_aws_or_lambda_dependency() {
    let root = lapse_testkit::workspace_root();
    let out = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "tree",
            "-p",
            "lapse-core",
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--offline",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        tree.lines().any(|l| l.starts_with("lapse-core")),
        "unexpected output: {tree}"
    );
    let offenders: Vec<_> = tree
        .lines()
        .filter(|l| {
            l.starts_with("aws-")
                || l.starts_with("aws_")
                || l.starts_with("lambda_")
                || l.starts_with("lambda-")
        })
        .collect();
    assert!(offenders.is_empty(), "lapse-core depends on {offenders:?}");
}
