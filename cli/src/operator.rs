//! The operator's revocation tools: `lapse revoke`, `restore`, `check-user`,
//! `verify`, `hold`. Each is a call to the stack's operator API
//! (`/v1/operator/*`), signed with the operator's own AWS credentials (SigV4):
//! API Gateway's IAM authorizer checks the signature and the caller's
//! `execute-api:Invoke` permission, and the stack's own roles do the work, so the
//! audited executor is the principal AWS authenticated. Operators need no IAM,
//! DynamoDB or KMS permissions of their own.

use lapse_core::revocation::operator::KeptRole;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use lapse_core::revocation::case::{CaseStatus, RevocationCase};
use lapse_core::revocation::operator::RevokeAsk;
use lapse_core::revocation::plan::{IdentitySnapshot, ServiceCredentials};
use lapse_core::revocation::ports::Controls;
use lapse_core::revocation::usecase::{Reverification, Reverified};
use serde_json::{Value, json};

use crate::client::ApiClient;

/// How long `lapse revoke` waits for a verified result before it stops waiting
/// (the workflow goes on; `lapse check-user` follows it).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// A new idempotency key for one ask: a retried call with it opens and starts
/// nothing twice.
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The operator API, signed with the operator's AWS credentials.
#[derive(Debug)]
pub struct Operator {
    api: ApiClient,
    /// How long to wait for a started revocation to be verified.
    pub wait: Duration,
}

/// What the stack did with an ask (with a partial revocation's role and where
/// it came from).
#[derive(Debug)]
pub enum Submitted {
    /// The workflow was started now.
    Started(RevocationCase, Option<KeptRole>),
    /// A schedule starts it at `at`.
    Scheduled {
        case: RevocationCase,
        at: DateTime<Utc>,
        schedule: String,
        kept_role: Option<KeptRole>,
    },
}

fn case_of(value: &Value) -> Result<RevocationCase> {
    serde_json::from_value(value["case"].clone()).context("the API answered without a case")
}

impl Operator {
    /// The API at `api_url` (`--api-url` / `LAPSE_API_URL`, a stack output), with
    /// the AWS credentials and region of the default chain (profile, SSO, role,
    /// environment).
    pub async fn connect(api_url: Option<&str>) -> Result<Self> {
        let url = api_url.context("set --api-url or LAPSE_API_URL (the stack's ApiUrl output)")?;
        let sdk = lapse_aws::sdk::load().await;
        Ok(Self {
            api: ApiClient::aws(url, &sdk)?,
            wait: DEFAULT_WAIT,
        })
    }

    /// An operator over an API client already made (a local stack's, say).
    pub fn with_api(api: ApiClient) -> Self {
        Self {
            api,
            wait: DEFAULT_WAIT,
        }
    }

    /// Exactly what would change, changing nothing.
    pub async fn dry_run(&self, ask: &RevokeAsk) -> Result<DryRun> {
        let out = self
            .api
            .operator_post("revocations/plan", serde_json::to_value(ask)?)
            .await?;
        Ok(DryRun {
            kept_role: serde_json::from_value(out["kept_role"].clone())
                .context("the stack's kept role is not a role")?,
            exists: out["exists"].as_bool().unwrap_or(true),
            changes: out["summary"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|a| format!("would {a}"))
                .collect(),
        })
    }

    /// Opens the case and starts (or schedules) its workflow.
    pub async fn submit(&self, ask: &RevokeAsk) -> Result<Submitted> {
        let out = self
            .api
            .operator_post("revocations", serde_json::to_value(ask)?)
            .await?;
        let case = case_of(&out)?;
        let kept_role: Option<KeptRole> = serde_json::from_value(out["kept_role"].clone())
            .context("the stack's kept role is not a role")?;
        Ok(match out.get("scheduled") {
            Some(scheduled) => Submitted::Scheduled {
                at: serde_json::from_value(scheduled["at"].clone())?,
                schedule: scheduled["schedule"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                case,
                kept_role,
            },
            None => Submitted::Started(case, kept_role),
        })
    }

    /// One case, as the stack holds it now.
    pub async fn case(&self, id: &str) -> Result<RevocationCase> {
        case_of(&self.api.operator_get(&format!("cases/{id}")).await?)
    }

    /// Waits until the case is settled (verified, failed, held, nothing to
    /// revoke), or `self.wait` passes.
    pub async fn settled(&self, id: &str) -> Result<RevocationCase> {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let case = self.case(id).await?;
            if settled(case.status()) {
                return Ok(case);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "case {id} is still {} after {} s; the workflow goes on (follow it with `lapse check-user --user {}`)",
                    case.status().label(),
                    self.wait.as_secs(),
                    case.user()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Revokes now (verified before it returns), or schedules it.
    pub async fn revoke(&self, ask: &RevokeAsk) -> Result<String> {
        let (said, kept_role) = match self.submit(ask).await? {
            Submitted::Scheduled {
                case,
                at,
                schedule,
                kept_role,
            } => (scheduled(&case, at, &schedule), kept_role),
            Submitted::Started(case, kept_role) => {
                (outcome(&self.settled(case.id()).await?)?, kept_role)
            }
        };
        Ok(match kept_role {
            Some(kept) => format!("{said}; {}", kept.describe()),
            None => said,
        })
    }
}

/// `users/<user>/<rest>`, for a valid IAM user name only: a name is checked before
/// it becomes part of a path.
fn user_path(user: &str, rest: &str) -> Result<String> {
    let user = lapse_core::revocation::operator::user(user)?;
    if matches!(user.as_str(), "." | "..") {
        bail!("`user` `{user}` cannot be addressed in a URL path");
    }
    Ok(if rest.is_empty() {
        format!("users/{user}")
    } else {
        format!("users/{user}/{rest}")
    })
}

fn settled(status: CaseStatus) -> bool {
    matches!(
        status,
        CaseStatus::Verified | CaseStatus::Failed | CaseStatus::Held | CaseStatus::NothingToRevoke
    )
}

fn scheduled(case: &RevocationCase, at: DateTime<Utc>, schedule: &str) -> String {
    format!(
        "{}: scheduled for {at} as case {} ({schedule})",
        case.user(),
        case.id()
    )
}

/// What a settled case means for the operator; a failed verification is an error.
fn outcome(done: &RevocationCase) -> Result<String> {
    Ok(match done.status() {
        CaseStatus::Verified => format!(
            "{}: {} revocation verified ({} action(s), case {})",
            done.user(),
            done.kind().label(),
            done.applied().len(),
            done.id()
        ),
        CaseStatus::Held => format!(
            "{}: held back: {}",
            done.user(),
            done.held_reason().clone().unwrap_or_default()
        ),
        CaseStatus::NothingToRevoke => format!(
            "{}: NOTHING TO REVOKE: IAM has no such user; security was alerted (case {})",
            done.user(),
            done.id()
        ),
        CaseStatus::Failed => bail!(
            "{}: revocation NOT verified: IAM still holds {} (case {}; security was alerted)",
            done.user(),
            done.residue().join(", "),
            done.id()
        ),
        other => bail!("{}: {} (case {})", done.user(), other.label(), done.id()),
    })
}

/// What a dry run found: whether IAM has the person, and each change it would make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DryRun {
    pub exists: bool,
    pub changes: Vec<String>,
    /// A partial revocation's role, and where it came from.
    pub kept_role: Option<KeptRole>,
}

impl DryRun {
    /// One line for a person: the changes, or why there are none.
    pub fn summary(&self, user: &str) -> String {
        match (self.exists, self.changes.is_empty()) {
            (false, _) => format!("{user}: nothing to revoke: IAM has no such user"),
            (true, true) => format!("{user}: nothing to revoke: IAM holds nothing this removes"),
            (true, false) => format!(
                "{user}: {} change(s): {}",
                self.changes.len(),
                self.changes.join("; ")
            ),
        }
    }
}

/// A line, with a partial revocation's kept role after it.
fn with_role(line: String, kept: Option<&KeptRole>) -> String {
    match kept {
        Some(kept) => format!("{line}; {}", kept.describe()),
        None => line,
    }
}

/// How a batch row ended, for the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ended {
    Verified,
    NothingToRevoke,
    Scheduled,
    Held,
    Previewed,
    Duplicate,
    Failed,
}

/// A row's outcome in words, and how it ended.
fn ended(done: &RevocationCase) -> (Ended, Result<String>) {
    let how = match done.status() {
        CaseStatus::Verified => Ended::Verified,
        CaseStatus::NothingToRevoke => Ended::NothingToRevoke,
        CaseStatus::Held => Ended::Held,
        _ => Ended::Failed,
    };
    (how, outcome(done))
}

pub use lapse_core::revocation::batch::{BATCH_COLUMNS, BatchRow, parse_batch};

/// Runs a batch file; a bad row is reported and never stops the good ones. A row
/// for a person an earlier row already names is skipped with a warning (the
/// person is revoked once, as the earlier row asks). Every row is submitted first,
/// then each started case is waited for, so the rows' workflows run side by side.
/// Prints a line for every row and a summary; returns the number of failed rows.
pub async fn batch(
    operator: Option<&Operator>,
    path: &Path,
    dry_run: bool,
    emergency: bool,
) -> Result<usize> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let rows = parse_batch(&text)?;
    let total = rows.len();
    // The first line naming each person (IAM names have no case).
    let mut first_line: std::collections::BTreeMap<String, (u64, RevokeAsk)> =
        std::collections::BTreeMap::new();
    // What each row came to: a final message, or a case still to wait for.
    type Pending = Result<Result<(Ended, String), (RevocationCase, Option<KeptRole>)>>;
    let mut results: Vec<(u64, Pending)> = Vec::new();
    for (done, row) in rows.into_iter().enumerate() {
        let line = row.line;
        let result = async {
            let ask = RevokeAsk {
                emergency,
                ..row.ask.map_err(|e| anyhow!(e))?
            };
            let person = ask.user.to_lowercase();
            if let Some((earlier, first)) = first_line.get(&person) {
                let same = first.kind == ask.kind && first.preserve_data == ask.preserve_data;
                return Ok(Ok((
                    Ended::Duplicate,
                    format!(
                        "{}: WARNING duplicate of line {earlier}{}: skipped, revoked once as line {earlier} asks",
                        ask.user,
                        if same { "" } else { " (and it asks for something else)" }
                    ),
                )));
            }
            first_line.insert(person, (line, ask.clone()));
            match operator {
                Some(op) if dry_run => {
                    let preview = op.dry_run(&ask).await?;
                    Ok(Ok((Ended::Previewed, with_role(preview.summary(&ask.user), preview.kept_role.as_ref()))))
                }
                Some(op) => Ok(match op.submit(&ask).await? {
                    Submitted::Scheduled { case, at, schedule, kept_role } => {
                        Ok((Ended::Scheduled, with_role(scheduled(&case, at, &schedule), kept_role.as_ref())))
                    }
                    Submitted::Started(case, kept_role) => Err((case, kept_role)),
                }),
                None => Ok(Ok((Ended::Previewed, format!("{}: valid row", ask.user)))),
            }
        }
        .await;
        eprint!(
            "\r[{}/{}] submitted {}",
            done + 1,
            total,
            progress_bar(done + 1, total)
        );
        results.push((line, result));
    }
    eprintln!();
    let mut counts: std::collections::BTreeMap<Ended, usize> = std::collections::BTreeMap::new();
    for (line, result) in results {
        let (how, message) = match result {
            Ok(Ok((how, message))) => (how, Ok(message)),
            Ok(Err((started, kept_role))) => match operator {
                Some(op) => match op.settled(started.id()).await {
                    Ok(case) => {
                        let (how, message) = ended(&case);
                        (how, message.map(|m| with_role(m, kept_role.as_ref())))
                    }
                    Err(err) => (Ended::Failed, Err(err)),
                },
                None => (Ended::Failed, Err(anyhow!("no stack to wait on"))),
            },
            Err(err) => (Ended::Failed, Err(err)),
        };
        match message {
            Ok(message) => {
                *counts.entry(how).or_default() += 1;
                println!("line {line}: {message}");
            }
            Err(err) => {
                *counts.entry(Ended::Failed).or_default() += 1;
                println!("line {line}: ERROR {err:#}");
            }
        }
    }
    let count = |how| counts.get(&how).copied().unwrap_or(0);
    let mut parts = Vec::new();
    for (how, words) in [
        (Ended::Verified, "revoked and verified"),
        (Ended::NothingToRevoke, "nothing to revoke"),
        (Ended::Scheduled, "scheduled"),
        (Ended::Held, "held back"),
        (
            Ended::Previewed,
            if dry_run { "previewed" } else { "checked" },
        ),
        (Ended::Duplicate, "duplicate(s) skipped"),
        (Ended::Failed, "failed"),
    ] {
        if count(how) > 0 || how == Ended::Failed {
            parts.push(format!("{} {words}", count(how)));
        }
    }
    println!("{} row(s): {}", total, parts.join(", "));
    Ok(count(Ended::Failed))
}

fn progress_bar(done: usize, total: usize) -> String {
    let width = 20;
    let filled = done * width / total.max(1);
    format!("{}{}", "#".repeat(filled), ".".repeat(width - filled))
}

fn active(on: bool) -> &'static str {
    if on { "ACTIVE" } else { "inactive" }
}

/// Current access of a user: IAM, live grants, controls, cases.
pub async fn check_user(op: &Operator, user: &str) -> Result<String> {
    let out = op.api.operator_get(&user_path(user, "")?).await?;
    let snapshot: IdentitySnapshot = serde_json::from_value(out["identity"].clone())?;
    let controls: Controls = serde_json::from_value(out["controls"].clone())?;
    let cases: Vec<RevocationCase> = serde_json::from_value(out["cases"].clone())?;
    let mut lines = vec![format!("user {user} (exists in IAM: {})", snapshot.exists)];
    lines.push(format!("  console login: {}", snapshot.login_profile));
    for key in &snapshot.access_keys {
        lines.push(format!("  access key {} {}", key.id, active(key.active)));
    }
    for key in &snapshot.ssh_keys {
        lines.push(format!("  ssh key {} {}", key.id, active(key.active)));
    }
    for certificate in &snapshot.signing_certificates {
        lines.push(format!(
            "  signing certificate {} {}",
            certificate.id,
            active(certificate.active)
        ));
    }
    lines.extend(
        snapshot
            .mfa_devices
            .iter()
            .map(|serial| format!("  MFA device {serial}")),
    );
    match &snapshot.service_credentials {
        ServiceCredentials::Listed { credentials } => {
            lines.extend(credentials.iter().map(|c| {
                format!(
                    "  service-specific credential {} {}",
                    c.id,
                    active(c.active)
                )
            }));
        }
        ServiceCredentials::Unreadable { reason } => {
            lines.push(format!(
                "  service-specific credentials: UNREADABLE ({reason})"
            ));
        }
        ServiceCredentials::NotOffered => {
            lines
                .push("  service-specific credentials: not offered (declared emulator gap)".into());
        }
    }
    lines.extend(snapshot.trusting_roles.iter().map(|r| {
        format!(
            "  trusted by role {} (managed: {}, this person's sessions denied: {})",
            r.name,
            if r.managed { "yes" } else { "no" },
            if lapse_core::access::role_denies::RoleDenies::document_denies_all_of(
                r.session_deny.as_ref(),
                &snapshot.user
            ) {
                "yes"
            } else {
                "no"
            }
        )
    }));
    lines.extend(snapshot.groups.iter().map(|g| format!("  group {g}")));
    lines.extend(
        snapshot
            .inline_policies
            .keys()
            .map(|p| format!("  inline policy {p}")),
    );
    lines.extend(
        snapshot
            .attached_policies
            .iter()
            .map(|p| format!("  attached policy {p}")),
    );
    let grants = out["grants"].as_array().cloned().unwrap_or_default();
    if grants.is_empty() {
        lines.push("  Lapse grants live: none".into());
    }
    for grant in &grants {
        lines.push(format!(
            "  Lapse grant {} on {} until {}",
            grant["id"].as_str().unwrap_or("?"),
            grant["resource"].as_str().unwrap_or("?"),
            grant["until"].as_str().unwrap_or("?")
        ));
    }
    lines.push(format!(
        "  legal hold: {}; override: {}",
        controls.legal_hold,
        controls.override_reason.as_deref().unwrap_or("none")
    ));
    let person: Option<lapse_core::people::person::Person> =
        serde_json::from_value(out["person"].clone())
            .context("the stack's directory record is not a person's record")?;
    lines.extend(hr_record(person.as_ref()));
    for case in cases {
        lines.push(format!(
            "  case {} {} {} ({})",
            case.id(),
            case.kind().label(),
            case.status().label(),
            case.trigger().reason
        ));
    }
    Ok(lines.join("\n"))
}

/// The directory's record of a person, one line per field, each with the HR
/// event it came from.
fn hr_record(person: Option<&lapse_core::people::person::Person>) -> Vec<String> {
    use lapse_core::people::person::{EmploymentType, Field};
    let Some(person) = person else {
        return vec!["  HR record: none (no HR event has named them)".into()];
    };
    fn line<T>(
        name: &str,
        field: &Option<Field<T>>,
        show: impl Fn(&T) -> String,
    ) -> Option<String> {
        field.as_ref().map(|f| {
            format!(
                "    {name}: {} (from {} of {})",
                show(&f.value),
                f.from.source,
                f.from.at.to_rfc3339()
            )
        })
    }
    let mut lines = vec!["  HR record:".to_owned()];
    lines.extend(
        [
            line("status", &person.status, |s| s.as_str().to_owned()),
            line("job role", &person.job_role, Clone::clone),
            line("manager", &person.manager, Clone::clone),
            line("department", &person.department, Clone::clone),
            line("employment", &person.employment_type, |t| {
                match t {
                    EmploymentType::Employee => "employee",
                    EmploymentType::Contractor => "contractor",
                }
                .to_owned()
            }),
            line("start date", &person.start_date, ToString::to_string),
            line("contract end", &person.contract_end, ToString::to_string),
            line("employee id", &person.employee_id, Clone::clone),
            line("email", &person.email, Clone::clone),
        ]
        .into_iter()
        .flatten(),
    );
    lines
}

/// Re-verifies the user's latest revocation: the stack reads IAM again, whatever
/// the case's stored verdict. Residue is an error (a non-zero exit).
pub async fn verify_user(op: &Operator, user: &str) -> Result<String> {
    let out = op
        .api
        .operator_post(&user_path(user, "verify")?, json!({}))
        .await?;
    let report: Reverification = serde_json::from_value(out)
        .context("the stack's answer to verify is not a re-verification report")?;
    let case = &report.case;
    let about = format!(
        "case {}, {} revocation, {}",
        case.id(),
        case.kind().label(),
        case.status().label()
    );
    match report.found {
        Reverified::Verified => Ok(format!(
            "{user}: verified: IAM, read now, holds nothing the revocation removes ({about})"
        )),
        Reverified::NoSuchUser => Ok(format!(
            "{user}: IAM has no such user: nothing was revoked, and nothing is held ({about})"
        )),
        Reverified::Residue { residue } => {
            let alerted = if case.status().is_final() {
                "; security has been alerted"
            } else {
                ""
            };
            bail!(
                "{user}: NOT verified: IAM holds {} ({about}){alerted}",
                residue.join("; ")
            )
        }
    }
}

/// Sets a legal hold or an override (or clears them), audited with its reason; a
/// cleared override resumes the user's held cases in the stack's workflow.
pub async fn hold(
    op: &Operator,
    user: &str,
    legal_hold: Option<bool>,
    override_reason: Option<Option<String>>,
    reason: &str,
) -> Result<String> {
    let mut body = json!({ "reason": reason });
    if let Some(on) = legal_hold {
        body["legal_hold"] = json!(on);
    }
    match override_reason {
        Some(Some(text)) => body["override"] = json!(text),
        Some(None) => body["clear_override"] = json!(true),
        None => {}
    }
    let out = op
        .api
        .operator_post(&user_path(user, "controls")?, body)
        .await?;
    if let Some(text) = waiting_for_second_operator(user, &out) {
        return Ok(text);
    }
    let controls: Controls = serde_json::from_value(out["controls"].clone())?;
    let mut text = format!(
        "{user}: legal hold {}, override {}",
        controls.legal_hold,
        controls.override_reason.as_deref().unwrap_or("none")
    );
    for case in out["resumed"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "\n  resumed case {}",
            case.as_str().unwrap_or("?")
        ));
    }
    Ok(text)
}

/// What a restore call came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restore {
    /// Proposed: a second, different operator must make the same call (the text
    /// says so, and until when).
    Proposed(String),
    /// Restored and read back: what came back, and what was left out and why.
    Restored {
        restored: Vec<String>,
        left_out: Vec<String>,
    },
}

/// The 202 answer of a call that only proposed a change, as a sentence.
fn waiting_for_second_operator(user: &str, out: &serde_json::Value) -> Option<String> {
    let proposal = out.get("proposed")?;
    let by = proposal["proposed_by"].as_str().unwrap_or("?");
    let text = |key: &str| proposal[key].as_str().unwrap_or("?").to_owned();
    let (what, command) = match proposal["change"].as_str() {
        Some("restore") => (
            format!(
                "restore from the backup at or before {}",
                text("from_backup")
            ),
            format!(
                "lapse restore --user {user} --from-backup {} --approval {:?}",
                text("from_backup"),
                text("approval")
            ),
        ),
        Some("override") => (
            format!(
                "override holding back every revocation ({})",
                text("reason")
            ),
            format!(
                "lapse hold --user {user} --override {:?} --reason \"<why you confirm>\"",
                text("reason")
            ),
        ),
        _ => ("a change".to_owned(), "the same command".to_owned()),
    };
    let mut answer = format!(
        "{user}: {what} proposed by {by}. Nothing changes until a second, different \
         operator runs, before {}:\n  {command}",
        out["until"].as_str().unwrap_or("the proposal goes stale")
    );
    if let Some(replaced) = proposal["replaces"].as_str() {
        answer.push_str(&format!(
            "\n(This replaces a different proposal: {replaced}.)"
        ));
    }
    Some(answer)
}

/// Restores a user from the archived before-state at or before `from_backup`,
/// once two operators have asked for it.
pub async fn restore(
    op: &Operator,
    user: &str,
    from_backup: DateTime<Utc>,
    approval: &str,
) -> Result<Restore> {
    let out = op
        .api
        .operator_post(
            &user_path(user, "restores")?,
            json!({ "from_backup": from_backup, "approval": approval }),
        )
        .await?;
    if let Some(text) = waiting_for_second_operator(user, &out) {
        return Ok(Restore::Proposed(text));
    }
    Ok(Restore::Restored {
        restored: serde_json::from_value(out["restored"].clone())?,
        left_out: serde_json::from_value(out["left_out"].clone()).unwrap_or_default(),
    })
}

/// Postpones the user's not-yet-effective revocations; returns each case's new time.
pub async fn postpone(
    op: &Operator,
    user: &str,
    by: &str,
    reason: &str,
) -> Result<Vec<(String, DateTime<Utc>)>> {
    let out = op
        .api
        .operator_post(
            &user_path(user, "postponements")?,
            json!({ "by": by, "reason": reason }),
        )
        .await?;
    let moved: Vec<RevocationCase> = serde_json::from_value(out["postponed"].clone())?;
    Ok(moved
        .into_iter()
        .map(|c| (c.id().to_string(), c.effective_at()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_checked_before_they_become_paths() {
        assert_eq!(
            user_path("j.doe+ops@x", "verify").unwrap(),
            "users/j.doe+ops@x/verify"
        );
        for bad in ["../cases/x", "a/b", "", "a b", ".."] {
            let err = user_path(bad, "verify").unwrap_err().to_string();
            assert!(err.contains("`user`"), "{bad}: {err}");
        }
    }

    #[test]
    fn progress_bars_fill() {
        assert_eq!(progress_bar(0, 4), "....................");
        assert_eq!(progress_bar(2, 4), "##########..........");
        assert_eq!(progress_bar(4, 4), "####################");
    }
}
