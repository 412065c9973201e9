//! README's "Try it by hand", run exactly as written against `lapse-dev serve` (the
//! binary a person runs, not the in-process demo), on an emulator of its own (the
//! stack's cast has fixed names). Each `# → text` comment is what the line must
//! print once the stack has caught up: the line is run again until it does, as a
//! person would. Lines without one must succeed.
//!
//! Two things a person meets only in real time are made to show here:
//! - the interpreter's default Task timeout is shortened to [`TASK_TIMEOUT`] and
//!   each clock move waits longer than that first, so a Wait that leaned on the
//!   default (60 s on `serve`) fails this test in seconds;
//! - the dated revocation fires only if the stack runs its schedules.
//!
//! It runs the debug binaries `cargo build --workspace --bins` makes (scripts/test
//! runs it first), like `tests/binaries.rs`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lapse_testkit::{Emulator, Scratch, workspace_root};

/// Seconds every Task without its own timeout gets on this stack.
const TASK_TIMEOUT: u64 = 10;

/// The folder of the workspace's debug binaries: this test runs from its `deps/`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap()
}

/// The README's "Try it by hand" shell block, line by line.
fn readme_block() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let section = readme
        .split_once("## Try it by hand")
        .expect("README has a Try it by hand section")
        .1;
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .expect("the section has a ```sh block")
        .0;
    block.lines().map(str::to_owned).collect()
}

/// A shell script that runs `lines` as written, retrying each line that says what
/// it prints (`# → text`) until it prints it, and pausing longer than the Task
/// timeout before each clock move.
fn script(lines: &[String]) -> String {
    let quote = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
    let mut out = String::from(
        r#"set -eu
expect() {
  want="$1"; line="$2"; out=""
  for _ in $(seq 1 120); do
    out="$(eval "$line" 2>&1 || true)"
    case "$out" in *"$want"*) printf '%s\n' "$out"; return 0 ;; esac
    sleep 0.5
  done
  printf '%s\n' "$out"
  echo "never printed: $want" >&2
  return 1
}
"#,
    );
    for line in lines {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        println!("$ {trimmed}");
        if trimmed.starts_with("lapse-dev clock advance") {
            out.push_str(&format!("sleep {}\n", TASK_TIMEOUT + 3));
        }
        match trimmed.split_once("# →") {
            Some((command, want)) => out.push_str(&format!(
                "expect {} {}\n",
                quote(want.trim()),
                quote(command.trim())
            )),
            None => {
                let command = trimmed.split_once("  #").map_or(trimmed, |(c, _)| c);
                out.push_str(command);
                out.push('\n');
            }
        }
    }
    out
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_readmes_try_it_by_hand_works_against_serve() {
    let emulator = Emulator::start().unwrap();
    let scratch = Scratch::new("try-by-hand");
    // The README runs from the repository: its paths are relative to it.
    let work = scratch.path();
    std::fs::create_dir_all(work.join("target/lapse-local")).unwrap();
    std::os::unix::fs::symlink(workspace_root().join("events"), work.join("events")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve = Command::new(bin_dir().join("lapse-dev"))
        .args(["serve", "--port", &port.to_string()])
        .args(["--task-timeout-default", &TASK_TIMEOUT.to_string()])
        .arg("--key-file")
        .arg(work.join("target/lapse-local/dev-issuer.json"))
        .current_dir(work)
        .envs(emulator.env())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(serve.stdout.take().unwrap());
    let stderr = serve.stderr.take().unwrap();
    let serve = Serve(serve);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let alarms = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains("ALARM"))
            .collect::<Vec<_>>()
    });
    let started = std::time::Instant::now();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(180).saturating_sub(started.elapsed()))
            .expect("serve printed that it is running");
        if line.starts_with("Lapse is running at") {
            break;
        }
    }

    let run = Command::new("bash")
        .arg("-c")
        .arg(script(&readme_block()))
        .current_dir(work)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", work)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&run.stdout);
    let complained = String::from_utf8_lossy(&run.stderr);
    drop(serve);
    let alarms = alarms.join().unwrap();
    assert!(
        run.status.success(),
        "the README's commands failed:\n{said}\n{complained}\nalarms: {alarms:?}"
    );
    assert!(alarms.is_empty(), "workflows failed: {alarms:?}\n{said}");
    let shaped = lapse_testkit::debug_shaped(&said);
    assert!(shaped.is_empty(), "Debug text for a person: {shaped:#?}");
}
