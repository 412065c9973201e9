//! Benchmarks of the built functions: cold-start proxy and peak memory of one
//! invocation (release binaries for this machine, each under a local stand-in for
//! the Lambda Runtime API), and the size of each arm64 deployment package.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::report::{Figure, ms};

/// Each function and the sample event of its one measured invocation.
pub const FUNCTIONS: &[(&str, &str)] = &[
    ("approval", "approval/approve.json"),
    ("credentials", "credentials/checkout.json"),
    ("grant", "grant/grant.json"),
    ("grants-api", "grants-api/revoke-early.json"),
    ("hr-webhook", "hr-webhook/termination-request.json"),
    ("inactivity-check", "inactivity-check/daily.json"),
    ("intake", "intake/submit-request.json"),
    ("notify", "notify/granted.json"),
    ("operator", "operator/check-user.json"),
    ("revocation", "revocation/step-validate.json"),
    ("revoke", "revoke/at-expiry.json"),
    ("sweeper", "sweeper/scheduled.json"),
    ("ttl-backstop", "ttl-backstop/ttl-remove.json"),
    ("vendors", "vendors/provision.json"),
    ("verify", "verify/verify.json"),
];

/// The baseline binary: the smallest `lambda_runtime` function, same profile.
pub const BASELINE: &str = "lapse-bench-hello";

/// What one start of a binary showed.
#[derive(Clone, Debug)]
pub struct Probe {
    /// From spawning the process to its first poll of `/runtime/invocation/next`.
    pub to_first_poll: Duration,
    /// Peak resident set (VmHWM) after one invocation, in KiB.
    pub peak_rss_kib: u64,
    /// `ok`, or the error the function reported (a sample event may name a request
    /// the emulator does not hold; the invocation still ran).
    pub outcome: String,
}

#[derive(Default)]
struct Runtime {
    event: Bytes,
    first_poll: Mutex<Option<Instant>>,
    polls: Mutex<usize>,
    outcome: Mutex<Option<String>>,
    done: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn next(State(rt): State<Arc<Runtime>>) -> axum::response::Response {
    let poll = {
        let mut polls = lock(&rt.polls);
        *polls += 1;
        *polls
    };
    if poll == 1 {
        *lock(&rt.first_poll) = Some(Instant::now());
        let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
        return (
            StatusCode::OK,
            [
                (
                    "lambda-runtime-aws-request-id",
                    "bench-request-1".to_owned(),
                ),
                ("lambda-runtime-deadline-ms", deadline.to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned(),
                ),
                ("lambda-runtime-trace-id", "Root=1-bench".to_owned()),
                ("content-type", "application/json".to_owned()),
            ],
            rt.event.clone(),
        )
            .into_response();
    }
    // The invocation is over; hold this poll until the process is killed.
    rt.done.notify_one();
    std::future::pending::<()>().await;
    StatusCode::OK.into_response()
}

async fn response(State(rt): State<Arc<Runtime>>) -> StatusCode {
    lock(&rt.outcome).get_or_insert_with(|| "ok".to_owned());
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<Arc<Runtime>>, body: Bytes) -> StatusCode {
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    lock(&rt.outcome).get_or_insert_with(|| {
        format!(
            "handled error {}",
            body["errorType"].as_str().unwrap_or("(unnamed)")
        )
    });
    StatusCode::ACCEPTED
}

async fn init_error(State(rt): State<Arc<Runtime>>, body: Bytes) -> StatusCode {
    *lock(&rt.outcome) = Some(format!(
        "INIT FAILED: {}",
        String::from_utf8_lossy(&body)
            .chars()
            .take(200)
            .collect::<String>()
    ));
    rt.done.notify_one();
    StatusCode::ACCEPTED
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Starts `binary` once under a fresh Runtime API stand-in, hands it `event`, and
/// measures it.
pub async fn probe(binary: &Path, env: &[(String, String)], event: Vec<u8>) -> Result<Probe> {
    let rt = Arc::new(Runtime {
        event: Bytes::from(event),
        ..Runtime::default()
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(rt.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?.to_string();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let pid = child.id().context("no pid")?;
    let finished = tokio::select! {
        () = rt.done.notified() => true,
        _ = child.wait() => false,
        () = tokio::time::sleep(Duration::from_secs(60)) => false,
    };
    let peak = peak_rss_kib(pid).unwrap_or(0);
    let _ = child.kill().await;
    server.abort();
    let outcome = lock(&rt.outcome).clone();
    let first_poll = *lock(&rt.first_poll);
    match (finished, first_poll, outcome) {
        (true, Some(at), Some(outcome)) => Ok(Probe {
            to_first_poll: at - started,
            peak_rss_kib: peak,
            outcome,
        }),
        (_, _, outcome) => bail!(
            "{} never finished an invocation ({})",
            binary.display(),
            outcome.unwrap_or_else(|| "no answer".into())
        ),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The environment a function binary gets under `local`: the stack's settings as
/// the template sets them, the emulator's endpoint and credentials, and
/// `RUST_LOG=info`, the template's level.
pub fn function_env(local: &crate::local::Local) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = local
        .stack
        .config
        .env_pairs()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.extend(
        local
            .emulator
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
    );
    env.push(("RUST_LOG".into(), "info".into()));
    env
}

/// Benchmarks 1 and 3: every function binary in `bin_dir`, `starts` times each,
/// against the baseline started the same way in the same run, interleaved.
pub async fn cold_start_and_memory(bin_dir: &Path, starts: usize) -> Result<Vec<Figure>> {
    let local = crate::local::Local::start(2).await?;
    let env = function_env(&local);
    let events = lapse_testkit::workspace_root().join("events");
    let baseline = bin_dir.join(BASELINE);
    let mut figures = Vec::new();
    let mut baseline_starts = Vec::new();
    let mut measured = Vec::new();
    for (function, event) in FUNCTIONS {
        let binary = bin_dir.join(function);
        let event = std::fs::read(events.join(event))?;
        let mut starts_of = Vec::new();
        let mut paired = Vec::new();
        let mut last = None;
        for _ in 0..starts {
            // Interleaved, so both see the same machine.
            let b = probe(&baseline, &env, b"{}".to_vec()).await?.to_first_poll;
            paired.push(b);
            baseline_starts.push(b);
            let p = probe(&binary, &env, event.clone()).await?;
            starts_of.push(p.to_first_poll);
            last = Some(p);
        }
        measured.push((
            function,
            median(starts_of),
            median(paired),
            last.context("no start")?,
        ));
    }
    let base = median(baseline_starts.clone());
    let base_rss = probe(&baseline, &env, b"{}".to_vec()).await?.peak_rss_kib;
    figures.push(Figure::info(
        "1. cold start (proxy)",
        &format!("baseline {BASELINE}: median of {}", baseline_starts.len()),
        ms(base),
    ));
    for (function, start, paired, probe) in &measured {
        // Against the baseline's starts interleaved with this function's: the
        // machine drifts over a run, more than the figures differ.
        let ratio = start.as_secs_f64() / paired.as_secs_f64().max(1e-9);
        figures.push(Figure::checked(
            "1. cold start (proxy)",
            &format!(
                "{function}: {} against {} (medians of {starts}), ratio",
                ms(*start),
                ms(*paired)
            ),
            format!("{ratio:.2}×"),
            "≤ 1.5× baseline",
            ratio <= 1.5,
        ));
        let mib = probe.peak_rss_kib as f64 / 1024.0;
        figures.push(Figure::checked(
            "3. memory",
            &format!("{function}: peak RSS, one invocation ({})", probe.outcome),
            format!("{mib:.1} MiB"),
            "≤ 64 MiB",
            mib <= 64.0,
        ));
    }
    figures.push(Figure::info(
        "3. memory",
        &format!("baseline {BASELINE}: peak RSS"),
        format!("{:.1} MiB", base_rss as f64 / 1024.0),
    ));
    Ok(figures)
}

/// Benchmark 2: the zipped arm64 package of each function, as cargo-lambda builds
/// it (`scripts/bench` runs `cargo lambda build --release --arm64 --output-format zip`).
pub fn sizes(lambda_dir: &Path) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for (function, _) in FUNCTIONS {
        let zip: PathBuf = lambda_dir.join(function).join("bootstrap.zip");
        let zipped = std::fs::metadata(&zip)
            .with_context(|| format!("{}: build it first (scripts/bench does)", zip.display()))?
            .len();
        let mb = zipped as f64 / 1_000_000.0;
        figures.push(Figure::checked(
            "2. deployment size (arm64)",
            &format!("{function}: bootstrap.zip"),
            format!("{mb:.2} MB"),
            "≤ 5 MB",
            mb <= 5.0,
        ));
    }
    Ok(figures)
}
