//! `lapse-dev`: the development binary. It runs Lapse's stack on a local AWS
//! emulator (`AWS_ENDPOINT_URL`), mints tokens from the development issuer, and
//! plays the end-to-end demo. None of this is in the production `lapse` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use lapse_local::demo;

#[derive(Debug, Parser)]
#[command(
    name = "lapse-dev",
    version,
    about = "Lapse on a local AWS emulator: the stack, development tokens, the demo"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the end-to-end demo on the local stack.
    Demo(demo::DemoArgs),
    /// Provision and serve the local stack until interrupted; prints the variables
    /// people's and operators' commands need.
    Serve {
        #[arg(long, default_value_t = 8787)]
        port: u16,
        #[arg(long, default_value = "lapse-local")]
        prefix: String,
        /// The development issuer's key; created if missing.
        #[arg(long, default_value = "target/lapse-local/dev-issuer.json")]
        key_file: PathBuf,
        /// IAM users to create so they can be granted access.
        #[arg(long, value_delimiter = ',')]
        users: Vec<String>,
    },
    /// Mint a token from the development issuer.
    Token {
        #[arg(long)]
        user: String,
        /// Approver group names (the catalog's), or identity-provider group ids.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        #[arg(long, default_value = "employee")]
        employment: String,
        #[arg(long, default_value = "target/lapse-local/dev-issuer.json")]
        key_file: PathBuf,
    },
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(&args).await,
        Command::Serve {
            port,
            prefix,
            key_file,
            users,
        } => demo::serve(port, &prefix, &key_file, &users).await,
        Command::Token {
            user,
            groups,
            employment,
            key_file,
        } => {
            let issuer = lapse_local::issuer::DevIssuer::load_or_create(&key_file)?;
            // Approver group names become the catalog's IdP group id for them, as the
            // development IdP assigns them; anything else is sent as given.
            let catalog = lapse_lambda::bundled_catalog()?;
            let groups: Vec<String> = groups
                .iter()
                .map(|g| {
                    catalog
                        .groups()
                        .find(|a| &a.name == g)
                        .and_then(|a| a.idp_groups.first().cloned())
                        .unwrap_or_else(|| g.clone())
                })
                .collect();
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            println!(
                "{}",
                issuer.mint(&user, &groups, &employment, chrono::TimeDelta::hours(8))?
            );
            Ok(())
        }
    }
}

/// The stack of each runtime thread: the functions run in this process, polled on
/// these threads, where on Lambda each polls on its process's main thread (8 MiB).
/// Tokio's 2 MiB default was within an eighth of what the demo needs in a debug
/// build, whose async functions keep every awaited future's temporary in their
/// frames (the intake router's frame alone is over 200 KiB there).
const THREAD_STACK: usize = 8 << 20;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(Cli::parse())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
