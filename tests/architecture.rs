//! Architecture invariants that the compiler cannot check.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

/// `lapse-core` must not depend, even transitively, on any AWS or Lambda crate.
#[test]
fn core_has_no_aws_or_lambda_dependency() {
    let tree = tree("lapse-core");
    assert!(
        tree.iter().any(|l| l == "lapse-core"),
        "unexpected output: {tree:?}"
    );
    let offenders: Vec<_> = tree
        .iter()
        .filter(|l| {
            l.starts_with("aws-")
                || l.starts_with("aws_")
                || l.starts_with("lambda_")
                || l.starts_with("lambda-")
        })
        .collect();
    assert!(offenders.is_empty(), "lapse-core depends on {offenders:?}");
}

/// The normal dependency tree of a package, one crate name per line.
fn tree(package: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(lapse_testkit::workspace_root())
        .args([
            "tree",
            "-p",
            package,
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
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// What the production `lapse` binary must not contain: the local stack (its
/// development issuer, webhook secret and repository paths), the Lambda glue, the
/// test kit, or a server.
const NOT_IN_THE_CLI: &[&str] = &[
    "lapse-local",
    "lapse-lambda",
    "lapse-testkit",
    "lambda_runtime",
    "lambda_http",
    "axum",
    "jsonwebtoken",
];

fn cli_offenders(tree: &[String]) -> Vec<String> {
    tree.iter()
        .filter(|name| NOT_IN_THE_CLI.contains(&name.as_str()))
        .cloned()
        .collect()
}

/// The production CLI depends on the HTTP client and the AWS adapters only; the
/// demo and the local stack are the development binary `lapse-dev` in `local/`.
#[test]
fn the_production_cli_carries_no_local_stack() {
    let cli = tree("lapse-cli");
    assert!(cli.iter().any(|n| n == "lapse-cli"), "{cli:?}");
    assert!(cli.iter().any(|n| n == "lapse-aws") && cli.iter().any(|n| n == "reqwest"));
    assert_eq!(cli_offenders(&cli), Vec::<String>::new());
    // The check itself: the development binary's package has them all.
    let dev = tree("lapse-local");
    for name in ["lapse-local", "lapse-lambda", "axum", "jsonwebtoken"] {
        assert!(cli_offenders(&dev).iter().any(|n| n == name), "{name}");
    }
}

/// The core's top level is its domains side by side over a small shared kernel:
/// a new module lands in a domain's folder, or joins the kernel here on purpose.
#[test]
fn the_cores_top_level_is_its_domains_over_the_kernel() {
    fn layout_problems(dir: &std::path::Path) -> Vec<String> {
        const DOMAINS: &[&str] = &["access", "people", "revocation"];
        const KERNEL: &[&str] = &[
            "lib.rs",
            "audit.rs",
            "duration.rs",
            "error.rs",
            "identity.rs",
            "memory.rs",
            "policy",
            "ports.rs",
            "testing.rs",
        ];
        let mut problems = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !DOMAINS.contains(&name.as_str()) && !KERNEL.contains(&name.as_str()) {
                problems.push(format!("{name} is neither a domain nor the kernel"));
            }
        }
        for domain in DOMAINS {
            if !dir.join(domain).join("mod.rs").exists() {
                problems.push(format!("no {domain}/mod.rs"));
            }
        }
        problems
    }
    let src = lapse_testkit::workspace_root().join("shared/core/src");
    assert_eq!(layout_problems(&src), Vec::<String>::new());
    // A JIT module left at the root is caught.
    let copy = lapse_testkit::Scratch::new("core-layout");
    for name in ["lib.rs", "ports.rs", "request.rs"] {
        std::fs::write(copy.join(name), "").unwrap();
    }
    for domain in ["access", "people", "revocation"] {
        std::fs::create_dir_all(copy.join(domain)).unwrap();
        std::fs::write(copy.join(domain).join("mod.rs"), "").unwrap();
    }
    assert_eq!(
        layout_problems(copy.path()),
        ["request.rs is neither a domain nor the kernel"]
    );
}
