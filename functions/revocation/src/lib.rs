//! # revocation
//!
//! The revocation workflow's task steps (`infra/statemachines/revocation.asl.json`).
//! Input `{"step": …, …}`:
//! - `open` `{event}`: the event recorded in the directory of people, then the
//!   case it calls for (the rule passes `detail`);
//! - `validate`, `snapshot`, `apply` (`lane`: credentials / permissions / grants,
//!   run in parallel), `record` (`applied`: the lanes' outputs), `notify`, `verify`;
//! - `failed` `{error, cause}`: the failure path (audit, security notice, metric).
//!
//! Every step is idempotent: duplicated events and re-driven runs converge.

use lambda_runtime::LambdaEvent;
use lapse_core::ErrorKind;
use lapse_core::people::ports::PeopleStore;
use lapse_core::people::usecase::record_hr_event;
use lapse_core::ports::{Audience, Notice, Notifier};
use lapse_core::revocation::case::Applied;
use lapse_core::revocation::case::CaseId;
use lapse_core::revocation::hr::HrEvent;
use lapse_core::revocation::plan::Lane;
use lapse_core::revocation::usecase::{self as steps, RevocationPorts};
use lapse_lambda::HandlerError;
use lapse_lambda::metrics;
use lapse_lambda::wiring::Topic;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    Open {
        event: Box<HrEvent>,
    },
    Validate {
        case_id: CaseId,
    },
    Snapshot {
        case_id: CaseId,
    },
    Apply {
        case_id: CaseId,
        lane: Lane,
    },
    Record {
        case_id: CaseId,
        applied: Vec<Vec<Applied>>,
    },
    Notify {
        case_id: CaseId,
    },
    Verify {
        case_id: CaseId,
    },
    Failed {
        case_id: Option<String>,
        error: String,
        cause: String,
    },
}

/// Whom the workflow notifies: the person, and security (nothing to revoke, a
/// failed run).
pub const TOPICS: &[Topic] = &[Topic::Users, Topic::Security];

/// Every step over any [`RevocationPorts`] and the directory of people: the real
/// adapters in Lambda, the same in the local host.
#[tracing::instrument(skip_all)]
pub async fn handler(
    deps: &impl RevocationPorts,
    people: &impl PeopleStore,
    event: LambdaEvent<Step>,
) -> Result<Value, HandlerError> {
    let p = deps;
    let now = p.clock().now();
    Ok(match event.payload {
        Step::Open { event } => {
            // Only what the webhook accepted counts (refused, security told).
            steps::ensure_claimed(p, &event).await?;
            match steps::case_for(&event, p.catalog(), now) {
                Some(case) => {
                    // The case first: a revocation never waits on the directory.
                    let case = steps::open(p, case, now).await?;
                    let directory = match record_hr_event(people, &p.trail(), &event, now).await {
                        Ok(recorded) => json!(recorded),
                        // The revocation goes on; security is told the directory
                        // missed this event (a retried step records it if it can).
                        Err(err) => {
                            tracing::error!(error = %err, "directory not updated");
                            p.notifier()
                                .send(&Notice {
                                    audience: Audience::Security,
                                    subject: format!(
                                        "Directory of people not updated for HR event {}",
                                        event.event_id
                                    ),
                                    body: format!(
                                        "The {} event for {} opened its revocation, but its record in the directory of people was not updated: {err}",
                                        event.event_type.as_str(),
                                        event.user.username
                                    ),
                                    request_id: None,
                                })
                                .await
                                .map_err(lapse_core::Error::from)?;
                            json!({ "outcome": "not_recorded", "error": err.to_string() })
                        }
                    };
                    json!({ "case_id": case.id(), "proceed": true, "user": case.user(), "directory": directory })
                }
                None => {
                    // Nothing to revoke (a hire): the directory is the whole job,
                    // so a failure fails the step (retried, then alarmed).
                    let directory = record_hr_event(people, &p.trail(), &event, now).await?;
                    json!({ "proceed": false, "reason": format!("{} revokes nothing", event.event_type.as_str()), "directory": directory })
                }
            }
        }
        Step::Validate { case_id } => {
            let validation = steps::validate(p, &case_id, now).await?;
            if validation.held_closing {
                metrics::emit(
                    &[("Workflow", "revocation")],
                    &[("RevocationsHeld", 1.0, "Count")],
                );
            }
            json!(validation)
        }
        Step::Snapshot { case_id } => {
            steps::snapshot(p, &case_id, now).await?;
            metrics::emit(
                &[("Workflow", "revocation")],
                &[("RevocationsStarted", 1.0, "Count")],
            );
            json!({ "case_id": case_id })
        }
        Step::Apply { case_id, lane } => json!(steps::apply_lane(p, &case_id, lane, now).await?),
        Step::Record { case_id, applied } => {
            let case =
                steps::record(p, &case_id, applied.into_iter().flatten().collect(), now).await?;
            json!({ "case_id": case.id(), "status": case.status(), "actions": case.applied().len() })
        }
        Step::Notify { case_id } => json!({ "sent": steps::notify(p, &case_id).await? }),
        Step::Verify { case_id } => match steps::verify_case(p, &case_id, now).await {
            Ok(case) => {
                let elapsed = (now - case.created_at()).num_milliseconds().max(0) as f64;
                metrics::emit(
                    &[("Workflow", "revocation"), ("Kind", case.kind().label())],
                    &[
                        ("RevocationDuration", elapsed, "Milliseconds"),
                        ("Revocations", 1.0, "Count"),
                    ],
                );
                metrics::emit(
                    &[("Workflow", "revocation")],
                    &[
                        ("VerificationSuccesses", 1.0, "Count"),
                        // Across kinds, for the slow-revocation alarm.
                        ("RevocationDuration", elapsed, "Milliseconds"),
                    ],
                );
                json!({ "case_id": case.id(), "status": case.status() })
            }
            Err(err) => {
                if err.kind() == ErrorKind::VerificationFailed {
                    metrics::emit(
                        &[("Workflow", "revocation")],
                        &[("VerificationFailures", 1.0, "Count")],
                    );
                }
                return Err(err.into());
            }
        },
        Step::Failed {
            case_id,
            error,
            cause,
        } => {
            metrics::emit(
                &[("Workflow", "revocation")],
                &[("WorkflowFailures", 1.0, "Count")],
            );
            let notice = Notice {
                audience: Audience::Security,
                subject: format!("Lapse revocation failed: {error}"),
                body: format!(
                    "case {}: {cause}",
                    case_id.as_deref().unwrap_or("(not opened)")
                ),
                request_id: None,
            };
            p.notifier()
                .send(&notice)
                .await
                .map_err(lapse_core::Error::from)?;
            if let Some(case_id) = case_id
                && let Ok(Some(case)) =
                    lapse_core::revocation::ports::CaseStore::get(p.cases(), &case_id).await
            {
                p.trail()
                    .record(lapse_core::audit::AuditDraft {
                        chain: case.chain(),
                        key: format!("{}:failed@{}", case.id(), now.to_rfc3339()),
                        actor: "lapse-workflow".into(),
                        action: "revocation.failed".into(),
                        subject: case.user().to_string(),
                        reason: format!("{error}: {cause}"),
                        before: Value::Null,
                        after: json!({ "status": case.status() }),
                        at: now,
                    })
                    .await?;
            }
            json!({ "alerted": true })
        }
    })
}
