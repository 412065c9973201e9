//! Every function's own binary (its `main.rs`: tracing, configuration, adapters and
//! the runtime it runs on), started as Lambda starts it: under a stand-in for the
//! Runtime API, with the environment the template gives it, against a provisioned
//! local stack. Each must poll for an invocation, run its sample event, and answer
//! with a result or one of Lapse's named errors; a start that fails, a panic or an
//! unnamed error fails the test. The handlers themselves are tested in-process
//! elsewhere; this is what covers the wiring in between.
//!
//! It runs the debug binaries in this test's target directory, which
//! `cargo build --workspace --bins` makes (scripts/test runs it first).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use lapse_bench::binaries::{FUNCTIONS, function_env, probe};
use lapse_bench::local::Local;
use lapse_testkit::workspace_root;

/// The folder of the workspace's debug binaries: this test runs from its `deps/`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap()
}

/// The newest modification time of any file under `dir` that the binaries are
/// built from: a module only tests compile (`#[cfg(test)] mod tests;`, so a
/// `tests.rs`) changes no binary, and cargo rightly does not relink them for it.
fn newest(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else if entry.file_name() != "tests.rs" {
                newest = newest.max(meta.modified().unwrap());
            }
        }
    }
    newest
}

/// The newest source every function is built from: the libraries and the catalog.
fn newest_shared_source() -> SystemTime {
    let root = workspace_root();
    ["shared/core", "shared/aws", "shared/lambda", "infra/policy"]
        .iter()
        .map(|dir| newest(&root.join(dir)))
        .max()
        .unwrap()
}

/// `function`'s debug binary, refused when missing or older than its sources
/// (`shared`: [`newest_shared_source`]).
fn binary(function: &str, shared: SystemTime) -> PathBuf {
    let path = bin_dir().join(function);
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `cargo build --workspace --bins` first (scripts/test does)",
                path.display()
            )
        });
    let sources = shared.max(newest(&workspace_root().join("functions").join(function)));
    assert!(
        built >= sources,
        "{} is older than its sources; run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// The list the test below (and the cold-start benchmark) walks is every function
/// crate under `functions/`: a function left off it would go untested.
#[test]
fn the_list_of_function_binaries_is_every_function_crate() {
    let mut crates: Vec<String> = std::fs::read_dir(workspace_root().join("functions"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|dir| dir.join("Cargo.toml").is_file())
        .map(|dir| dir.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    crates.sort();
    let mut listed: Vec<String> = FUNCTIONS.iter().map(|(f, _)| (*f).to_owned()).collect();
    listed.sort();
    assert_eq!(listed, crates);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_binary_starts_polls_and_answers_its_sample_event() {
    let local = Local::start(2).await.unwrap();
    let env = function_env(&local);
    let events = workspace_root().join("events");
    let shared = newest_shared_source();
    let mut wrong = Vec::new();
    for (function, event) in FUNCTIONS {
        let event = std::fs::read(events.join(event)).unwrap();
        match probe(&binary(function, shared), &env, event).await {
            Ok(p) if p.outcome == "ok" || p.outcome.starts_with("handled error Lapse.") => {}
            Ok(p) => wrong.push(format!("{function}: {}", p.outcome)),
            Err(e) => wrong.push(format!("{function}: {e:#}")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
