//! `lapse`: the operator and requester CLI.
//!
//! Talks to the Lapse API (`--api-url` / `LAPSE_API_URL`): people's commands with a
//! bearer token (`--token` / `LAPSE_TOKEN`) behind the JWT authorizer; operators'
//! commands signed with their own AWS credentials (SigV4) behind the IAM
//! authorizer. The local stack and the demo are the development binary `lapse-dev`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use lapse_cli::client::ApiClient;
use lapse_cli::operator::{self, Operator};
use lapse_cli::show;
use lapse_core::policy::Catalog;
use lapse_core::revocation::operator::RevokeAsk;

#[derive(Debug, Parser)]
#[command(
    name = "lapse",
    version,
    about = "Just-in-time AWS access and automated rights revocation"
)]
struct Cli {
    /// Base URL of the Lapse API.
    #[arg(long, env = "LAPSE_API_URL", global = true)]
    api_url: Option<String>,
    /// Bearer token (a JWT from your identity provider).
    #[arg(long, env = "LAPSE_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// For auditors: verify the signed audit trail against its anchors, or export it.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Work with the policy catalog.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Ask for access.
    Request {
        #[arg(long)]
        resource: String,
        /// `4h`, `30m`, `PT2H`...; the catalog default when omitted.
        #[arg(long)]
        duration: Option<String>,
        #[arg(long)]
        justification: String,
        #[arg(long)]
        ticket: Option<String>,
        /// Print only the request's id (for scripts: `ID=$(lapse request ... --quiet)`).
        #[arg(long, short)]
        quiet: bool,
    },
    /// Emergency access, granted at once (capped by policy); justify it afterwards.
    BreakGlass {
        #[arg(long)]
        resource: String,
        /// At most the policy's cap (2h); the cap when omitted.
        #[arg(long)]
        duration: Option<String>,
        /// The emergency.
        #[arg(long)]
        reason: String,
        #[arg(long)]
        ticket: Option<String>,
    },
    /// Sponsor a vendor's access: a temporary IAM user, MFA and network limits,
    /// two approvals (your manager and security).
    Vendor {
        /// The vendor's id: lower-case letters, digits, `-`.
        #[arg(long)]
        id: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        resource: String,
        #[arg(long)]
        duration: Option<String>,
        #[arg(long)]
        justification: String,
        /// The project reference the vendor works under.
        #[arg(long)]
        project: String,
    },
    /// Justify your break-glass use (due within the policy window).
    Justify {
        id: String,
        #[arg(long)]
        justification: String,
    },
    /// Review a break-glass use afterwards: justified or unjustified.
    Review {
        id: String,
        #[arg(long, value_parser = ["justified", "unjustified"])]
        finding: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Approve a request.
    Approve {
        id: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Deny a request.
    Deny {
        id: String,
        #[arg(long)]
        comment: String,
    },
    /// One request in full, or all of yours.
    Status { id: Option<String> },
    /// Requests waiting for your decision.
    Pending,
    /// Withdraw a request that is not granted yet.
    Cancel { id: String },
    /// Your active grants; or end one early, or ask for more time.
    Grants {
        #[command(subcommand)]
        action: Option<GrantsAction>,
    },
    /// Revoke a user's rights now (verified before it returns), or schedule it.
    Revoke(RevokeArgs),
    /// Restore a user from an archived before-state (needs an approval reference).
    Restore {
        #[arg(long)]
        user: String,
        /// The latest snapshot taken at or before this time (RFC 3339).
        #[arg(long)]
        from_backup: DateTime<Utc>,
        /// The ticket that approved the restore; audited.
        #[arg(long)]
        approval: String,
    },
    /// What a user holds now: IAM, controls, revocation cases.
    CheckUser {
        #[arg(long)]
        user: String,
    },
    /// Re-verify a user's latest revocation against IAM.
    Verify {
        #[arg(long)]
        user: String,
    },
    /// Set or clear a legal hold or an override (audited).
    Hold {
        #[arg(long)]
        user: String,
        #[arg(long)]
        legal_hold: Option<bool>,
        /// Hold back automated revocation for this reason.
        #[arg(long, conflicts_with = "clear_override")]
        r#override: Option<String>,
        #[arg(long)]
        clear_override: bool,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, clap::Args)]
struct RevokeArgs {
    #[arg(long, required_unless_present = "batch")]
    user: Option<String>,
    #[arg(long, required_unless_present = "batch")]
    reason: Option<String>,
    /// Partial revocation: remove what exceeds this catalog role.
    #[arg(long, conflicts_with = "permissions")]
    role: Option<String>,
    /// Partial revocation to the person's job role of record (the directory of
    /// people, kept from HR); `--role` names another.
    #[arg(long, conflicts_with_all = ["permissions", "role"])]
    partial: bool,
    /// Remove only these groups, inline policy names or managed policy ARNs.
    #[arg(long, value_delimiter = ',')]
    permissions: Vec<String>,
    /// Print exactly what would change; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Act now, skipping any transition period; flagged in the audit trail.
    #[arg(long, conflicts_with = "schedule")]
    emergency: bool,
    /// Keep the archived before-state past its retention.
    #[arg(long)]
    preserve_data: bool,
    /// Revoke at this time (RFC 3339) through the revocation workflow.
    #[arg(long)]
    schedule: Option<DateTime<Utc>>,
    /// A CSV of `username,reason,revocation_type,preserve_data[,role]` (a header row
    /// may name them in any order): `full`, `partial` (beyond `role`) or `suspend`;
    /// `preserve_data` `true` or `false`.
    #[arg(long)]
    batch: Option<PathBuf>,
    /// Postpone this user's not-yet-effective revocations by this long (`7d`); the
    /// reason must name the approval.
    #[arg(long, conflicts_with_all = ["role", "permissions", "schedule", "batch"])]
    extend: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify every chain (or one): hash links, KMS signatures, and the newest
    /// anchored head (S3 Object Lock). Exits 1 if any chain fails.
    Verify {
        #[arg(long)]
        chain: Option<String>,
    },
    /// Write every event (or one chain's) as JSON Lines, after verifying each chain.
    Export {
        #[arg(long)]
        chain: Option<String>,
        /// Only break-glass requests' events (every chain is still verified).
        #[arg(long)]
        break_glass: bool,
        /// Where to write; standard output when omitted.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a catalog and print a summary; exits 1 with every located problem.
    Check {
        #[arg(default_value = "infra/policy/catalog.yaml")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum GrantsAction {
    /// End a grant now (revoked and verified before this returns).
    Revoke { id: String },
    /// Ask for more time on a grant; routed by risk like a new request.
    Extend {
        id: String,
        #[arg(long)]
        duration: String,
        #[arg(long)]
        justification: String,
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

fn client(cli: &Cli) -> Result<ApiClient> {
    let url = cli
        .api_url
        .clone()
        .context("set --api-url or LAPSE_API_URL")?;
    let token = cli.token.clone().context("set --token or LAPSE_TOKEN")?;
    Ok(ApiClient::new(url, token))
}

async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Policy { .. } => unreachable!("handled in main"),
        Command::Revoke(args) => revoke(&cli, args).await?,
        Command::Restore {
            user,
            from_backup,
            approval,
        } => {
            let op = operator(&cli).await?;
            match operator::restore(&op, user, *from_backup, approval).await? {
                operator::Restore::Proposed(text) => println!("{text}"),
                operator::Restore::Restored { restored, left_out } => {
                    println!(
                        "{user}: restored {} item(s) (approval {approval}), read back from IAM",
                        restored.len()
                    );
                    for item in restored {
                        println!("  {item}");
                    }
                    if !left_out.is_empty() {
                        println!("left out:");
                        for item in left_out {
                            println!("  {item}");
                        }
                    }
                }
            }
        }
        Command::Audit {
            command: AuditCommand::Verify { chain },
        } => {
            let reader = lapse_cli::audit::AuditReader::from_env().await?;
            let reports = reader.verify(chain.as_deref()).await?;
            let failed = reports.iter().filter(|r| r.problem.is_some()).count();
            for report in &reports {
                match &report.problem {
                    None => println!("ok      {} ({} events)", report.chain, report.events),
                    Some(problem) => println!("FAILED  {}: {problem}", report.chain),
                }
            }
            println!(
                "{} chain(s) verified, {failed} failed",
                reports.len() - failed
            );
            anyhow::ensure!(failed == 0, "{failed} chain(s) failed verification");
        }
        Command::Audit {
            command:
                AuditCommand::Export {
                    chain,
                    break_glass,
                    out,
                },
        } => {
            let reader = lapse_cli::audit::AuditReader::from_env().await?;
            let written = match out {
                Some(path) => {
                    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
                    reader
                        .export(chain.as_deref(), *break_glass, &mut file)
                        .await?
                }
                None => {
                    reader
                        .export(
                            chain.as_deref(),
                            *break_glass,
                            &mut std::io::stdout().lock(),
                        )
                        .await?
                }
            };
            eprintln!("{written} event(s) exported");
        }
        Command::CheckUser { user } => {
            println!(
                "{}",
                operator::check_user(&operator(&cli).await?, user).await?
            )
        }
        Command::Verify { user } => {
            println!(
                "{}",
                operator::verify_user(&operator(&cli).await?, user).await?
            )
        }
        Command::Hold {
            user,
            legal_hold,
            r#override,
            clear_override,
            reason,
        } => {
            let override_reason = if *clear_override {
                Some(None)
            } else {
                r#override.clone().map(Some)
            };
            println!(
                "{}",
                operator::hold(
                    &operator(&cli).await?,
                    user,
                    *legal_hold,
                    override_reason,
                    reason
                )
                .await?
            );
        }
        Command::Request {
            resource,
            duration,
            justification,
            ticket,
            quiet,
        } => {
            let created = client(&cli)?
                .request(
                    resource,
                    duration.as_deref(),
                    justification,
                    ticket.as_deref(),
                )
                .await?;
            if *quiet {
                println!("{}", created["id"].as_str().unwrap_or_default());
            } else {
                println!("{}", show::detail(&created));
            }
        }
        Command::BreakGlass {
            resource,
            duration,
            reason,
            ticket,
        } => {
            let created = client(&cli)?
                .break_glass(resource, duration.as_deref(), reason, ticket.as_deref())
                .await?;
            println!("{}", show::detail(&created));
        }
        Command::Vendor {
            id,
            email,
            resource,
            duration,
            justification,
            project,
        } => {
            let created = client(&cli)?
                .sponsor_vendor(
                    (id, email),
                    resource,
                    duration.as_deref(),
                    justification,
                    project,
                )
                .await?;
            println!("{}", show::detail(&created));
        }
        Command::Justify { id, justification } => {
            println!(
                "{}",
                show::line(&client(&cli)?.justify(id, justification).await?)
            )
        }
        Command::Review { id, finding, note } => {
            let out = client(&cli)?.review(id, finding, note).await?;
            println!("{id}: {}", show::review_outcome(&out["outcome"]));
        }
        Command::Approve { id, comment } => {
            let out = client(&cli)?.decide(id, true, comment).await?;
            println!(
                "{}: {}",
                id,
                out["outcome"]["outcome"].as_str().unwrap_or("-")
            );
        }
        Command::Deny { id, comment } => {
            let out = client(&cli)?.decide(id, false, comment).await?;
            println!(
                "{}: {}",
                id,
                out["outcome"]["outcome"].as_str().unwrap_or("-")
            );
        }
        Command::Status { id: Some(id) } => {
            println!("{}", show::detail(&client(&cli)?.get(id).await?))
        }
        Command::Status { id: None } => {
            for request in client(&cli)?.mine().await?["requests"]
                .as_array()
                .into_iter()
                .flatten()
            {
                println!("{}", show::line(request));
            }
        }
        Command::Pending => {
            for request in client(&cli)?.pending().await?["requests"]
                .as_array()
                .into_iter()
                .flatten()
            {
                println!("{}", show::line(request));
            }
        }
        Command::Cancel { id } => println!("{}", show::line(&client(&cli)?.cancel(id).await?)),
        Command::Grants { action: None } => {
            for grant in client(&cli)?.grants().await?["grants"]
                .as_array()
                .into_iter()
                .flatten()
            {
                println!("{}", show::line(grant));
            }
        }
        Command::Grants {
            action: Some(GrantsAction::Revoke { id }),
        } => {
            let out = client(&cli)?.revoke(id).await?;
            println!(
                "{id}: {} (IAM: {}), verified: {}",
                out["revoke"]["outcome"].as_str().unwrap_or("-"),
                out["revoke"]["iam"].as_str().unwrap_or("-"),
                out["verify"]["verified"]
            );
        }
        Command::Grants {
            action:
                Some(GrantsAction::Extend {
                    id,
                    duration,
                    justification,
                }),
        } => println!(
            "{}",
            show::detail(&client(&cli)?.extend(id, duration, justification).await?)
        ),
    }
    Ok(())
}

async fn operator(cli: &Cli) -> Result<Operator> {
    let mut op = Operator::connect(cli.api_url.as_deref()).await?;
    if let Ok(seconds) = std::env::var("LAPSE_WAIT_SECONDS") {
        op.wait = std::time::Duration::from_secs(
            seconds
                .parse()
                .context("LAPSE_WAIT_SECONDS must be a whole number of seconds")?,
        );
    }
    Ok(op)
}

async fn revoke(cli: &Cli, args: &RevokeArgs) -> Result<()> {
    if let Some(batch) = &args.batch {
        let op = operator(cli).await?;
        let failed = operator::batch(Some(&op), batch, args.dry_run, args.emergency).await?;
        anyhow::ensure!(failed == 0, "{failed} row(s) failed");
        return Ok(());
    }
    let user = args.user.clone().context("--user is required")?;
    let reason = args.reason.clone().context("--reason is required")?;
    let op = operator(cli).await?;
    if let Some(extend) = &args.extend {
        for (case, at) in operator::postpone(&op, &user, extend, &reason).await? {
            println!("{user}: case {case} now effective at {at}");
        }
        return Ok(());
    }
    let kind = match (&args.role, args.permissions.is_empty()) {
        (Some(role), _) => lapse_core::revocation::plan::RevocationKind::Partial {
            new_role: role.clone(),
        },
        // The stack fills in the role of record.
        (None, _) if args.partial => lapse_core::revocation::plan::RevocationKind::Partial {
            new_role: String::new(),
        },
        (None, false) => lapse_core::revocation::plan::RevocationKind::Specific {
            permissions: args.permissions.clone(),
        },
        (None, true) => lapse_core::revocation::plan::RevocationKind::Full,
    };
    let ask = RevokeAsk {
        request_id: operator::request_id(),
        user,
        reason,
        kind,
        preserve_data: args.preserve_data,
        emergency: args.emergency,
        schedule: args.schedule,
    };
    if args.dry_run {
        let preview = op.dry_run(&ask).await?;
        if let Some(kept) = &preview.kept_role {
            println!("{}: {}", ask.user, kept.describe());
        }
        if !preview.exists || preview.changes.is_empty() {
            println!("dry run: {}; nothing applied", preview.summary(&ask.user));
            return Ok(());
        }
        println!(
            "dry run for {}: {} change(s), nothing applied",
            ask.user,
            preview.changes.len()
        );
        for line in preview.changes {
            println!("  {line}");
        }
        return Ok(());
    }
    println!("{}", op.revoke(&ask).await?);
    Ok(())
}

/// Output piped into a reader that stopped early (`lapse status | head`): stop
/// quietly, as a Unix tool does on `SIGPIPE` (exit 141), instead of the Rust
/// runtime's panic and backtrace on the next `println!`.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        // EPIPE is 32 on Linux and macOS; the message ends with the OS's text.
        let broken_pipe = std::io::Error::from_raw_os_error(32).to_string();
        if message.starts_with("failed printing to stdout") && message.ends_with(&broken_pipe) {
            std::process::exit(141);
        }
        default(info);
    }));
}

#[tokio::main]
async fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Policy {
            command: PolicyCommand::Check { file },
        } => return policy_check(file),
        _ => run(cli).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
