//! `lapse-bench`: runs the benchmarks, prints each figure against its target and
//! writes the table. Exits non-zero when a target is missed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use lapse_bench::report::Report;
use lapse_bench::{binaries, flows, reliability};

#[derive(Debug, Parser)]
#[command(about = "Lapse's benchmarks, against the local emulator and the built binaries")]
struct Args {
    /// Which suite: flows (benchmarks 4–7), binaries (1–3), startup (1 and 3,
    /// without the arm64 packages), all (1–7), one flow
    /// (termination, expiry, inactivity, batch), or reliability (faults, lost
    /// writes, duplicates, races).
    #[arg(default_value = "all")]
    suite: String,
    /// Termination runs (benchmark 4).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Users in the batch (benchmark 5).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Users in the throttled batch (benchmark 5; default: --batch).
    #[arg(long)]
    throttled_batch: Option<usize>,
    /// IAM users for the inactivity scan (benchmark 6).
    #[arg(long, default_value_t = 10_000)]
    scan: usize,
    /// Grants expired (benchmark 7).
    #[arg(long, default_value_t = 20)]
    grants: usize,
    /// Starts of each binary (benchmark 1).
    #[arg(long, default_value_t = 5)]
    starts: usize,
    /// Release binaries for this machine (benchmarks 1 and 3).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// cargo-lambda's output (benchmark 2).
    #[arg(long, default_value = "target/lambda")]
    lambda_dir: PathBuf,
    /// Reliability scenarios to run: faults, lost, duplicates, races (default all).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Terminations and expiring grants under wire faults (reliability).
    #[arg(long, default_value_t = 10)]
    flows_under_faults: usize,
    /// Share of AWS calls faulted (reliability).
    #[arg(long, default_value_t = 0.3)]
    fault_rate: f64,
    /// Decisions at once on one request (reliability).
    #[arg(long, default_value_t = 50)]
    racers: usize,
    /// Where the Markdown table goes (default: target/bench/<suite>.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

async fn run(args: &Args) -> Result<Report> {
    const SUITES: [&str; 9] = [
        "all",
        "binaries",
        "startup",
        "flows",
        "termination",
        "expiry",
        "inactivity",
        "batch",
        "reliability",
    ];
    anyhow::ensure!(
        SUITES.contains(&args.suite.as_str()),
        "no suite {:?}: one of {}",
        args.suite,
        SUITES.join(", ")
    );
    let mut report = Report::default();
    let all = args.suite == "all";
    if all || args.suite == "binaries" {
        println!("\n[bench] deployment size");
        report.extend(binaries::sizes(&args.lambda_dir)?);
    }
    if all || args.suite == "binaries" || args.suite == "startup" {
        println!("\n[bench] cold start and memory");
        report.extend(binaries::cold_start_and_memory(&args.bin_dir, args.starts).await?);
    }
    if args.suite == "reliability" {
        let wanted = |s: &str| args.scenarios.is_empty() || args.scenarios.iter().any(|x| x == s);
        if wanted("faults") {
            println!("\n[reliability] faults on the wire");
            report.extend(
                reliability::wire_faults(
                    args.flows_under_faults,
                    args.flows_under_faults,
                    args.fault_rate,
                )
                .await?,
            );
        }
        if wanted("lost") {
            println!("\n[reliability] a process lost between its IAM and state writes");
            report.extend(reliability::lost_between_writes().await?);
        }
        if wanted("duplicates") {
            println!("\n[reliability] duplicated and reordered deliveries");
            report.extend(reliability::duplicates().await?);
        }
        if wanted("races") {
            println!("\n[reliability] decisions racing on one request");
            report.extend(reliability::racing_decisions(args.racers).await?);
        }
    }
    let flow = |name: &str| all || args.suite == "flows" || args.suite == name;
    if flow("termination") {
        println!("\n[bench] termination → verified revocation");
        report.extend(flows::termination(args.runs).await?);
    }
    if flow("expiry") {
        println!("\n[bench] expiry lateness");
        report.extend(flows::expiry(args.grants).await?);
    }
    if flow("inactivity") {
        println!("\n[bench] inactivity scan");
        report.extend(flows::inactivity(args.scan).await?);
    }
    if flow("batch") {
        println!("\n[bench] batch revocation");
        let scratch = lapse_testkit::Scratch::new("bench");
        report.extend(
            flows::batch(
                args.batch,
                args.throttled_batch.unwrap_or(args.batch),
                scratch.path(),
            )
            .await?,
        );
    }
    Ok(report)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(report) => {
            let (title, make) = if args.suite == "reliability" {
                ("Lapse reliability", "make reliability")
            } else {
                ("Lapse performance", "make bench")
            };
            let command = format!("`{make}` (`lapse-bench {}`)", args.suite);
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("target/bench/{}.md", args.suite)));
            if let Err(err) = report.write(&out, title, &command) {
                eprintln!("error: writing {}: {err}", out.display());
                return ExitCode::FAILURE;
            }
            println!("\n[bench] table written to {}", out.display());
            let missed = report.missed();
            if missed.is_empty() {
                println!("[bench] every target met");
                ExitCode::SUCCESS
            } else {
                for f in &missed {
                    println!(
                        "[bench] MISSED: {} / {}: {} (target {})",
                        f.bench, f.measure, f.value, f.target
                    );
                }
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
