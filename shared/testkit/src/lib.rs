//! # lapse-testkit
//!
//! Starts moto's server (the local AWS emulator) on a free loopback port for tests.
//!
//! The server runs under `tools/moto_guard.py`, which exits as soon as the process
//! that started it is gone, so a crashed or killed test binary never leaves an
//! emulator behind; [`Emulator`] also stops it on drop. If the project's pinned
//! toolchain (`.tools/venv`) is missing, the harness installs it by running
//! `scripts/bootstrap` first: an emulator test is never skipped.
//!
//! Tests isolate themselves with [`unique_name`]s, so one emulator per test binary
//! ([`shared`]) serves tests running in parallel.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How long the emulator may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Why the emulator could not be started.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("scripts/bootstrap failed with {0}; run it by hand to see why")]
    Bootstrap(std::process::ExitStatus),
    #[error("the emulator did not report a port within {0:?}")]
    NotReady(Duration),
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The project's pinned Python, installing the toolchain if it is missing.
pub fn tools_python() -> Result<PathBuf, HarnessError> {
    if let Some(python) = std::env::var_os("LAPSE_PYTHON") {
        return Ok(PathBuf::from(python));
    }
    let root = workspace_root();
    let python = root.join(".tools/venv/bin/python");
    let moto = root.join(".tools/venv/bin/moto_server");
    if !moto.exists() {
        let script = root.join("scripts/bootstrap");
        let status = Command::new("bash")
            .arg(&script)
            .status()
            .map_err(|source| HarnessError::Spawn {
                command: script.display().to_string(),
                source,
            })?;
        if !status.success() {
            return Err(HarnessError::Bootstrap(status));
        }
    }
    Ok(python)
}

/// A running moto server.
#[derive(Debug)]
pub struct Emulator {
    child: Mutex<Option<Child>>,
    endpoint: String,
}

impl Emulator {
    /// Starts a new emulator on a free loopback port and waits until it answers.
    pub fn start() -> Result<Self, HarnessError> {
        Self::start_with(&[])
    }

    /// [`Emulator::start`] with extra environment for the server (settings of
    /// `tools/moto_guard.py` or moto's own).
    pub fn start_with(env: &[(&str, &str)]) -> Result<Self, HarnessError> {
        let python = tools_python()?;
        let guard = workspace_root().join("tools/moto_guard.py");
        // moto prints tracebacks for operations it does not implement; keep them in a
        // log file next to the build rather than in the test output.
        let log_dir = workspace_root().join("target");
        std::fs::create_dir_all(&log_dir).map_err(|source| HarnessError::Spawn {
            command: log_dir.display().to_string(),
            source,
        })?;
        let log_path = log_dir.join(format!("moto-{}.log", std::process::id()));
        let log = std::fs::File::create(&log_path).map_err(|source| HarnessError::Spawn {
            command: log_path.display().to_string(),
            source,
        })?;
        let mut child = Command::new(&python)
            .arg(&guard)
            .arg("--parent-pid")
            .arg(std::process::id().to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|source| HarnessError::Spawn {
                command: format!("{} {}", python.display(), guard.display()),
                source,
            })?;
        let stdout = child.stdout.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("LAPSE_MOTO_PORT=") {
                    let _ = tx.send(port.trim().to_owned());
                    return;
                }
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(port) => Ok(Self {
                child: Mutex::new(Some(child)),
                endpoint: format!("http://127.0.0.1:{port}"),
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(HarnessError::NotReady(START_TIMEOUT))
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The standard variables that point an AWS SDK or CLI at this emulator, for
    /// child processes.
    pub fn env(&self) -> [(&'static str, String); 5] {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ]
    }

    /// Stops the server now (also done on drop).
    pub fn stop(&self) {
        let mut slot = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut child) = slot.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One emulator for the whole test binary, started on first use. It stops when the
/// test binary exits (the guard watches the parent process).
pub fn shared() -> &'static Emulator {
    static SHARED: OnceLock<Emulator> = OnceLock::new();
    SHARED.get_or_init(|| match Emulator::start() {
        Ok(emulator) => emulator,
        Err(err) => panic!("cannot start the local AWS emulator: {err}"),
    })
}

/// Rust `Debug` formatting in text a person reads: a struct (`Name { field: `),
/// `Some(`/`Ok(`/`Err(`, a bare `None`, a tuple variant around a string
/// (`Denied("`), a `Vec<String>` (`["a", "b"]`, not after a JSON key), or an
/// escaped quote. Returns each offending line.
pub fn debug_shaped(text: &str) -> Vec<String> {
    static PATTERNS: OnceLock<Vec<regex_lite::Regex>> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        [
            r"\b[A-Z][A-Za-z0-9]*(::[A-Z][A-Za-z0-9]*)* \{ [a-z_][a-z0-9_]*: ",
            r"\b(Some|Ok|Err)\(",
            r"[(:=,\[]\s*None([),\]]|\s*$)",
            r#"\b[A-Z][A-Za-z0-9]+\(""#,
            r#"(^|[^:"\w])\["[^"]*"(, "[^"]*")*\]"#,
            r#"\\""#,
        ]
        .iter()
        .map(|p| regex_lite::Regex::new(p).expect("a valid pattern"))
        .collect()
    });
    text.lines()
        .filter(|line| patterns.iter().any(|p| p.is_match(line)))
        .map(str::to_owned)
        .collect()
}

/// A name no other test uses: `<prefix>-<12 hex digits>`.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

/// A fresh directory under the system's temporary directory, removed with
/// everything in it when dropped, so tests leave nothing behind.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod debug_shape_tests {
    use super::debug_shaped;

    #[test]
    fn debug_text_is_found_and_prose_and_json_are_not() {
        for shaped in [
            "would DeactivateAccessKey { id: \"AKIA\" }",
            "reason: GroupMembership { group: lapse-x }",
            "head Some(ChainHead { seq: 3 })",
            "error: Denied(\"no\")",
            "inline policies [\"lapse-a\", \"lapse-b\"]",
            "inline policies [\"lapse-a\"]",
            "override: None",
        ] {
            assert_eq!(debug_shaped(shaped), [shaped], "{shaped}");
        }
        for prose in [
            "review    none yet",
            "None of the requests is waiting.",
            "202 {\"event_id\":\"e1\",\"remaining\":[\"security\"]}",
            "the grant { as written } holds",
            "approved  by mia (managers) at 2026-12-07T06:28:50Z",
        ] {
            assert!(debug_shaped(prose).is_empty(), "{prose}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_is_removed_with_its_contents() {
        let scratch = Scratch::new("scratch");
        let path = scratch.path().to_owned();
        std::fs::create_dir_all(scratch.join("nested")).unwrap();
        std::fs::write(scratch.join("nested/file"), "x").unwrap();
        assert!(path.is_dir());
        drop(scratch);
        assert!(!path.exists(), "{} was left behind", path.display());
    }

    #[test]
    fn emulator_answers_and_stops() {
        let emulator = Emulator::start().unwrap();
        let endpoint = emulator.endpoint().to_owned();
        let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        drop(emulator);
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "emulator still listening after drop"
        );
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("t"), unique_name("t"));
        assert!(unique_name("lapse").starts_with("lapse-"));
    }
}
