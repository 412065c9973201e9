//! The operator's revocation tools: `lapse revoke`, `restore`, `check-user`,
//! `verify`, `hold`. They act with the operator's own AWS credentials (every
//! action is recorded in CloudTrail under that principal) on the stack named by the
//! `LAPSE_*` variables, and the operator's AWS identity is the audited executor.

use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use lapse_core::identity::PrincipalId;
use lapse_core::revocation::case::{CaseStatus, RevocationCase, Trigger, TriggerSource};
use lapse_core::revocation::plan::{RevocationKind, ServiceCredentials};
use lapse_core::revocation::ports::{CaseStore, Controls, IdentityDirectory, UserControls};
use lapse_core::revocation::usecase::{self as steps, RevocationPorts};
use lapse_lambda::config::Env;
use lapse_lambda::wiring::Revocations;

/// What `lapse revoke` was asked to do for one user.
#[derive(Clone, Debug)]
pub struct RevokeAsk {
    pub user: String,
    pub reason: String,
    pub kind: RevocationKind,
    pub preserve_data: bool,
    pub emergency: bool,
    pub schedule: Option<DateTime<Utc>>,
}

/// The stack and the operator's identity.
#[derive(Debug)]
pub struct Operator {
    pub revocations: Revocations,
    pub executor: String,
    sdk: aws_config::SdkConfig,
}

impl Operator {
    pub async fn from_env() -> Result<Self> {
        let sdk = lapse_aws::sdk::load().await;
        let revocations = Revocations::from_env(&Env::process(), &sdk)
            .await
            .context("the operator commands read the stack from LAPSE_* variables")?;
        let caller = aws_sdk_sts::Client::new(&sdk)
            .get_caller_identity()
            .send()
            .await
            .context("cannot establish the operator's AWS identity")?;
        let executor = format!("operator:{}", caller.arn().unwrap_or("unknown"));
        Ok(Self {
            revocations,
            executor,
            sdk,
        })
    }

    fn case(&self, ask: &RevokeAsk, now: DateTime<Utc>) -> Result<RevocationCase> {
        let user = PrincipalId::new(ask.user.trim()).map_err(|e| anyhow::anyhow!("{e}"))?;
        if ask.reason.trim().is_empty() {
            bail!("--reason is required");
        }
        if ask.emergency && ask.schedule.is_some() {
            bail!("--emergency revokes now; it cannot be combined with --schedule");
        }
        // A role change honours the policy's transition period unless it is an
        // emergency, as an HR role change does.
        let transition = match (&ask.kind, ask.emergency) {
            (RevocationKind::Partial { .. }, false) => self
                .revocations
                .catalog()
                .tunables()
                .role_change_transition
                .delta(),
            _ => chrono::TimeDelta::zero(),
        };
        let effective_at = ask.schedule.unwrap_or(now + transition);
        Ok(RevocationCase::new(
            user,
            ask.kind.clone(),
            Trigger {
                source: TriggerSource::Operator,
                event_id: format!(
                    "operator:{}:{}",
                    ask.user.trim(),
                    now.timestamp_nanos_opt().unwrap_or_default()
                ),
                event_type: None,
                reason: if ask.emergency {
                    format!("EMERGENCY: {}", ask.reason)
                } else {
                    ask.reason.clone()
                },
                executor: self.executor.clone(),
                manager: None,
            },
            effective_at,
            ask.preserve_data,
            now,
        ))
    }

    /// Prints exactly what would change, changing nothing.
    pub async fn dry_run(&self, ask: &RevokeAsk) -> Result<Vec<String>> {
        let now = Utc::now();
        let case = self.case(ask, now)?;
        let plan = steps::current_plan(&self.revocations, &case, now).await?;
        Ok(plan.iter().map(|a| format!("would {a:?}")).collect())
    }

    /// Revokes now (verified before it returns), or schedules it.
    pub async fn revoke(&self, ask: &RevokeAsk) -> Result<String> {
        let now = Utc::now();
        let case = steps::open(&self.revocations, self.case(ask, now)?, now).await?;
        if let Some(at) = Some(case.effective_at).filter(|at| *at > now) {
            let arn = std::env::var("LAPSE_REVOCATION_STATE_MACHINE_ARN")
                .context("scheduling needs LAPSE_REVOCATION_STATE_MACHINE_ARN (a stack output)")?;
            let role = std::env::var("LAPSE_SCHEDULER_ROLE_ARN")
                .context("scheduling needs LAPSE_SCHEDULER_ROLE_ARN (a stack output)")?;
            let scheduler = lapse_aws::scheduler::RevocationScheduler::new(
                aws_sdk_scheduler::Client::new(&self.sdk),
                arn,
                role,
            );
            let schedule = scheduler.schedule(&case.id, at).await?;
            return Ok(format!(
                "{}: scheduled for {at} as case {} ({schedule})",
                case.user, case.id
            ));
        }
        let done = steps::run(&self.revocations, &case.id, now).await?;
        Ok(match done.status {
            CaseStatus::Verified => format!(
                "{}: {} revocation verified ({} action(s), case {})",
                done.user,
                done.kind.label(),
                done.applied.len(),
                done.id
            ),
            CaseStatus::Held => format!(
                "{}: held back: {}",
                done.user,
                done.held_reason.unwrap_or_default()
            ),
            CaseStatus::NothingToRevoke => format!(
                "{}: NOTHING TO REVOKE: IAM has no such user; security was alerted (case {})",
                done.user, done.id
            ),
            other => format!("{}: {other:?} (case {})", done.user, done.id),
        })
    }
}

/// One row of a batch file: `username,reason,revocation_type,preserve_data`.
pub fn parse_batch_row(line: &str) -> Result<RevokeAsk> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [user, reason, kind, preserve] = fields[..] else {
        bail!(
            "expected 4 columns (username,reason,revocation_type,preserve_data), found {}",
            fields.len()
        );
    };
    if user.is_empty() || reason.is_empty() {
        bail!("username and reason are required");
    }
    let kind = match kind {
        "full" | "termination" => RevocationKind::Full,
        "suspend" => RevocationKind::Suspend,
        other => match other.strip_prefix("partial:") {
            Some(role) if !role.is_empty() => RevocationKind::Partial {
                new_role: role.to_owned(),
            },
            _ => bail!("revocation_type `{other}` is not full, suspend or partial:<role>"),
        },
    };
    let preserve_data = match preserve.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => true,
        "false" | "no" | "0" | "" => false,
        other => bail!("preserve_data `{other}` is not true or false"),
    };
    Ok(RevokeAsk {
        user: user.to_owned(),
        reason: reason.to_owned(),
        kind,
        preserve_data,
        emergency: false,
        schedule: None,
    })
}

/// Runs a batch file; a bad row is reported and never stops the good ones.
/// Returns (succeeded, failed).
pub async fn batch(
    operator: Option<&Operator>,
    path: &Path,
    dry_run: bool,
    emergency: bool,
) -> Result<(usize, usize)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let rows: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .filter(|(i, l)| !(*i == 0 && l.starts_with("username")))
        .collect();
    let total = rows.len();
    let (mut ok, mut failed) = (0, 0);
    for (done, (index, line)) in rows.into_iter().enumerate() {
        let result = async {
            let ask = RevokeAsk {
                emergency,
                ..parse_batch_row(line)?
            };
            match operator {
                Some(op) if dry_run => Ok(op.dry_run(&ask).await?.join("; ")),
                Some(op) => op.revoke(&ask).await,
                None => Ok(format!("{}: valid row", ask.user)),
            }
        }
        .await;
        eprint!(
            "\r[{}/{}] {}",
            done + 1,
            total,
            progress_bar(done + 1, total)
        );
        match result {
            Ok(message) => {
                ok += 1;
                eprintln!();
                println!("line {}: {message}", index + 1);
            }
            Err(err) => {
                failed += 1;
                eprintln!();
                println!("line {}: ERROR {err:#}", index + 1);
            }
        }
    }
    println!("{ok} succeeded, {failed} failed");
    Ok((ok, failed))
}

fn progress_bar(done: usize, total: usize) -> String {
    let width = 20;
    let filled = done * width / total.max(1);
    format!("{}{}", "#".repeat(filled), ".".repeat(width - filled))
}

/// Current access of a user: IAM, live grants, controls, cases.
pub async fn check_user(op: &Operator, user: &str) -> Result<String> {
    let user = PrincipalId::new(user).map_err(|e| anyhow::anyhow!("{e}"))?;
    let r = &op.revocations;
    let snapshot = r.directory().identity(&user, Utc::now()).await?;
    let controls = r.controls().controls(&user).await?;
    let cases = r.cases().cases_of(&user).await?;
    let mut out = vec![format!("user {user} (exists in IAM: {})", snapshot.exists)];
    out.push(format!("  console login: {}", snapshot.login_profile));
    for key in &snapshot.access_keys {
        out.push(format!(
            "  access key {} {}",
            key.id,
            if key.active { "ACTIVE" } else { "inactive" }
        ));
    }
    for key in &snapshot.ssh_keys {
        out.push(format!(
            "  ssh key {} {}",
            key.id,
            if key.active { "ACTIVE" } else { "inactive" }
        ));
    }
    for certificate in &snapshot.signing_certificates {
        out.push(format!(
            "  signing certificate {} {}",
            certificate.id,
            if certificate.active {
                "ACTIVE"
            } else {
                "inactive"
            }
        ));
    }
    out.extend(
        snapshot
            .mfa_devices
            .iter()
            .map(|serial| format!("  MFA device {serial}")),
    );
    match &snapshot.service_credentials {
        ServiceCredentials::Listed { credentials } => {
            out.extend(credentials.iter().map(|c| {
                format!(
                    "  service-specific credential {} {}",
                    c.id,
                    if c.active { "ACTIVE" } else { "inactive" }
                )
            }));
        }
        ServiceCredentials::Unreadable { reason } => {
            out.push(format!(
                "  service-specific credentials: UNREADABLE ({reason})"
            ));
        }
        ServiceCredentials::NotOffered => {
            out.push("  service-specific credentials: not offered (declared emulator gap)".into());
        }
    }
    out.extend(snapshot.trusting_roles.iter().map(|r| {
        format!(
            "  trusted by role {} (managed: {}, sessions denied: {})",
            r.name,
            r.managed,
            r.session_deny.is_some()
        )
    }));
    out.extend(snapshot.groups.iter().map(|g| format!("  group {g}")));
    out.extend(
        snapshot
            .inline_policies
            .keys()
            .map(|p| format!("  inline policy {p}")),
    );
    out.extend(
        snapshot
            .attached_policies
            .iter()
            .map(|p| format!("  attached policy {p}")),
    );
    out.push(format!(
        "  legal hold: {}; override: {}",
        controls.legal_hold,
        controls.override_reason.as_deref().unwrap_or("none")
    ));
    for case in cases {
        out.push(format!(
            "  case {} {} {:?} ({})",
            case.id,
            case.kind.label(),
            case.status,
            case.trigger.reason
        ));
    }
    Ok(out.join("\n"))
}

/// Re-verifies the user's latest revocation against IAM.
pub async fn verify_user(op: &Operator, user: &str) -> Result<String> {
    let user = PrincipalId::new(user).map_err(|e| anyhow::anyhow!("{e}"))?;
    let r = &op.revocations;
    let latest = r
        .cases()
        .cases_of(&user)
        .await?
        .into_iter()
        .last()
        .context("no revocation case for this user")?;
    match steps::verify_case(r, &latest.id, Utc::now()).await {
        Ok(case) => Ok(format!("{user}: verified (case {})", case.id)),
        Err(err) => bail!("{user}: NOT verified: {err}"),
    }
}

/// Sets a legal hold or an override (or clears them), audited with its reason.
pub async fn hold(
    op: &Operator,
    user: &str,
    legal_hold: Option<bool>,
    override_reason: Option<Option<String>>,
    reason: &str,
) -> Result<String> {
    let user = PrincipalId::new(user).map_err(|e| anyhow::anyhow!("{e}"))?;
    let r = &op.revocations;
    let cleared = matches!(override_reason, Some(None));
    let controls = steps::set_controls(
        r,
        &user,
        |c: &mut Controls| {
            if let Some(on) = legal_hold {
                c.legal_hold = on;
            }
            if let Some(value) = &override_reason {
                c.override_reason = value.clone();
            }
        },
        reason,
        &op.executor,
        Utc::now(),
    )
    .await?;
    let mut out = format!(
        "{user}: legal hold {}, override {}",
        controls.legal_hold,
        controls.override_reason.as_deref().unwrap_or("none")
    );
    let held = r
        .cases()
        .cases_of(&user)
        .await?
        .iter()
        .any(|c| c.status == CaseStatus::Held);
    if cleared && held {
        // Held cases resume in the stack's workflow, which waits for their time.
        let arn = std::env::var("LAPSE_REVOCATION_STATE_MACHINE_ARN").context(
            "resuming held cases needs LAPSE_REVOCATION_STATE_MACHINE_ARN (a stack output)",
        )?;
        let workflows =
            lapse_aws::sfn::SfnWorkflowStarter::new(aws_sdk_sfn::Client::new(&op.sdk), arn);
        for case in steps::resume_held(r, &workflows, &user).await? {
            out.push_str(&format!("\n  resumed case {case}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_rows_are_validated_one_by_one() {
        assert_eq!(
            parse_batch_row("jdoe,left the company,full,false")
                .unwrap()
                .kind,
            RevocationKind::Full
        );
        assert_eq!(
            parse_batch_row("ana,moved to finance,partial:analyst,yes")
                .unwrap()
                .kind,
            RevocationKind::Partial {
                new_role: "analyst".into()
            }
        );
        for (row, message) in [
            ("jdoe,reason,full", "expected 4 columns"),
            (",reason,full,false", "username and reason are required"),
            ("jdoe,reason,delete,false", "revocation_type `delete`"),
            ("jdoe,reason,full,maybe", "preserve_data `maybe`"),
            ("jdoe,reason,partial:,false", "revocation_type `partial:`"),
        ] {
            let err = parse_batch_row(row).unwrap_err().to_string();
            assert!(err.contains(message), "{row}: {err}");
        }
    }

    #[test]
    fn progress_bars_fill() {
        assert_eq!(progress_bar(0, 4), "....................");
        assert_eq!(progress_bar(2, 4), "##########..........");
        assert_eq!(progress_bar(4, 4), "####################");
    }
}
