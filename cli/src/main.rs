//! `lapse`: the operator CLI.
//!
//! - `lapse policy check [FILE]`: validate a policy catalog, every problem with its line.
//! - `lapse demo`: run Lapse's workflows against the AWS endpoint in the environment
//!   (the local emulator, started by `scripts/demo`) and print what happened.

use lapse_cli::demo;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lapse_core::policy::Catalog;

#[derive(Debug, Parser)]
#[command(
    name = "lapse",
    version,
    about = "Just-in-time AWS access and automated rights revocation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with the policy catalog.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Run the end-to-end demo against the AWS endpoint in the environment.
    Demo(demo::DemoArgs),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a catalog and print a summary; exits 1 with every located problem.
    Check {
        #[arg(default_value = "infra/policy/catalog.yaml")]
        file: PathBuf,
    },
}

fn policy_check(file: &Path) -> ExitCode {
    match Catalog::load(file) {
        Ok(catalog) => {
            println!("{}: valid", file.display());
            println!("  policy hash  {}", catalog.hash());
            println!(
                "  resources    {}",
                catalog
                    .resources()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "  approvers    {}",
                catalog
                    .groups()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Policy {
            command: PolicyCommand::Check { file },
        } => policy_check(&file),
        Command::Demo(args) => match demo::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("demo failed: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}
