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
    /// Provision and serve the local stack until interrupted; prints the commands
    /// people, operators and the HR system use (`scripts/serve` starts the
    /// emulator and this).
    Serve {
        #[arg(long, default_value_t = 8787)]
        port: u16,
        #[arg(long, default_value = "lapse-local")]
        prefix: String,
        /// The development issuer's key; created if missing.
        #[arg(long, default_value = "target/lapse-local/dev-issuer.json")]
        key_file: PathBuf,
        /// IAM users to create so they can be granted access, beyond the cast it
        /// always creates (dana, mia, sam, bo, olga, jdoe).
        #[arg(long, value_delimiter = ',')]
        users: Vec<String>,
        /// Seconds every Task without its own timeout gets, standing in for the
        /// interpreter's 60 (tests shorten it, so a Wait that relied on the default
        /// fails in seconds).
        #[arg(long, hide = true)]
        task_timeout_default: Option<u64>,
    },
    /// Mint a token from the development issuer, valid 8 hours of the stack's
    /// clock (asked of the stack at --url; this machine's clock without one).
    Token {
        #[arg(long)]
        user: String,
        /// Approver group names (the catalog's), or identity-provider group ids.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        #[arg(long, default_value = "employee")]
        employment: String,
        #[arg(
            long,
            env = "LAPSE_DEV_KEY_FILE",
            default_value = "target/lapse-local/dev-issuer.json"
        )]
        key_file: PathBuf,
        /// The running stack whose clock the token is issued on.
        #[arg(long, env = "LAPSE_API_URL")]
        url: Option<String>,
    },
    /// Read or move the running stack's clock: waits, schedules, the sweeper,
    /// tokens and the webhook's window all follow it.
    Clock {
        #[command(subcommand)]
        action: Option<ClockAction>,
        /// The running stack (what `serve` prints as LAPSE_API_URL).
        #[arg(long, env = "LAPSE_API_URL", global = true)]
        url: Option<String>,
    },
    /// Post an HR event to the running stack's webhook, signed as the HR system
    /// signs (development token and secret, the stack clock's time).
    HrEvent {
        /// The event's JSON, or @FILE to read it from a file.
        body: String,
        /// The message id (the webhook's idempotency key); a fresh one by default.
        #[arg(long)]
        id: Option<String>,
        #[arg(long, env = "LAPSE_API_URL")]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ClockAction {
    /// Print the stack's time, RFC 3339 (the default).
    Show,
    /// Print the stack's time this long from now, RFC 3339 (for `--schedule`).
    In { after: String },
    /// Move the clock forward by a duration: 90s, 45m, 4h, 1d2h.
    Advance { by: String },
    /// Move the clock forward to a time (RFC 3339, e.g. 2026-12-24T09:00:00Z).
    Set { to: String },
}

/// The stack a command talks to: `--url`, or `LAPSE_API_URL`.
fn stack(url: Option<String>) -> Result<lapse_local::stack_client::StackClient> {
    let url = url.ok_or_else(|| {
        anyhow::anyhow!(
            "which stack? Pass --url, or export LAPSE_API_URL as `scripts/serve` prints it"
        )
    })?;
    Ok(lapse_local::stack_client::StackClient::new(&url))
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(&args).await,
        Command::Serve {
            port,
            prefix,
            key_file,
            users,
            task_timeout_default,
        } => demo::serve(port, &prefix, &key_file, &users, task_timeout_default).await,
        Command::Clock { action, url } => {
            let stack = stack(url)?;
            let time = |t: chrono::DateTime<chrono::Utc>| {
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            };
            let moved = match action.unwrap_or(ClockAction::Show) {
                ClockAction::Show => {
                    println!("{}", time(stack.now().await?));
                    return Ok(());
                }
                ClockAction::In { after } => {
                    let after: lapse_core::duration::Span =
                        after.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
                    println!("{}", time(stack.now().await? + after.delta()));
                    return Ok(());
                }
                ClockAction::Advance { by } => stack.advance(&by).await?,
                ClockAction::Set { to } => {
                    let to = chrono::DateTime::parse_from_rfc3339(&to).map_err(|e| {
                        anyhow::anyhow!("`{to}` is not a time like 2026-12-24T09:00:00Z: {e}")
                    })?;
                    stack.set(to.with_timezone(&chrono::Utc)).await?
                }
            };
            println!(
                "the stack's clock moved from {} to {}",
                time(moved.from),
                time(moved.now)
            );
            Ok(())
        }
        Command::HrEvent { body, id, url } => {
            let stack = stack(url)?;
            let body = match body.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {path}: {e}"))?,
                None => body,
            };
            serde_json::from_str::<serde_json::Value>(&body)
                .map_err(|e| anyhow::anyhow!("the event is not JSON: {e}"))?;
            let id = match id {
                Some(id) => id,
                None => format!("msg-{}", random_id()?),
            };
            let (status, answer) = stack.post_hr_event(&id, &body).await?;
            println!("HTTP {status} for message {id}: {answer}");
            if (200..300).contains(&status) {
                Ok(())
            } else {
                anyhow::bail!("the webhook refused the event")
            }
        }
        Command::Token {
            user,
            groups,
            employment,
            key_file,
            url,
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
            let at = match url {
                Some(url) => {
                    lapse_local::stack_client::StackClient::new(&url)
                        .now()
                        .await?
                }
                None => chrono::Utc::now(),
            };
            println!(
                "{}",
                issuer.mint_at(&user, &groups, &employment, chrono::TimeDelta::hours(8), at)?
            );
            Ok(())
        }
    }
}

/// A fresh random id (hex).
fn random_id() -> Result<String> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for an id: {e}"))?;
    Ok(hex::encode(bytes))
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
