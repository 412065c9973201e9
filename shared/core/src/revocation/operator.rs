//! Operator tools as the stack runs them: an operator's ask, checked and turned
//! into a case. The executor is whoever AWS authenticated for the call (the
//! operator function reads it from API Gateway's IAM authorizer); nothing in an
//! ask names who acts.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::case::{RevocationCase, Trigger, TriggerSource};
use super::plan::RevocationKind;
use crate::Error;
use crate::identity::PrincipalId;
use crate::policy::Catalog;
use crate::ports::{WorkflowError, WorkflowStarter};

/// The longest reason an operator may give (it is audited and notified).
pub const MAX_REASON_CHARS: usize = 1000;

/// Why an operator's ask is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    #[error("`{field}` {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
}

impl AskError {
    fn invalid(field: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            problem: problem.into(),
        }
    }
}

/// One revocation an operator asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeAsk {
    /// Chosen by the client, once per ask: a retried call names the same case, so
    /// it opens and starts nothing twice. 8 to 64 letters, digits or `-`.
    pub request_id: String,
    pub user: String,
    pub reason: String,
    pub kind: RevocationKind,
    #[serde(default)]
    pub preserve_data: bool,
    /// Now, skipping a role change's transition period; flagged in the audit trail.
    #[serde(default)]
    pub emergency: bool,
    /// When to revoke; now (or after the transition) when absent.
    #[serde(default)]
    pub schedule: Option<DateTime<Utc>>,
}

/// Checks a client-chosen idempotency key.
pub fn check_request_id(id: &str) -> Result<(), AskError> {
    let ok =
        (8..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(AskError::invalid(
            "request_id",
            "must be 8 to 64 letters, digits or `-`",
        ))
    }
}

/// A person named by an operator.
pub fn user(raw: &str) -> Result<PrincipalId, AskError> {
    PrincipalId::new(raw).map_err(|e| AskError::invalid("user", e.to_string()))
}

/// The person behind an operator's authenticated ARN (`operator:` and the ARN, as
/// the operator API records it): an IAM user's name, or an assumed role's session
/// name (IAM Identity Center and most federations name the session for the person).
/// `None` for anything else (the account root, a service).
pub fn caller_name(executor: &str) -> Option<&str> {
    let arn = executor.strip_prefix("operator:").unwrap_or(executor);
    let resource = arn.splitn(6, ':').nth(5)?;
    if let Some(path) = resource.strip_prefix("user/") {
        return path.rsplit('/').next().filter(|n| !n.is_empty());
    }
    let rest = resource.strip_prefix("assumed-role/")?;
    let (_role, session) = rest.split_once('/')?;
    (!session.is_empty()).then_some(session)
}

/// An operator never acts on themselves: a hold, an override, a postponement, a
/// restore or a revocation of one's own access is another operator's to make. IAM
/// compares user names without case, and so does this.
pub fn ensure_not_self(executor: &str, user: &PrincipalId) -> Result<(), crate::Error> {
    match caller_name(executor) {
        Some(name) if name.eq_ignore_ascii_case(user.as_str()) => {
            Err(crate::access::request::RequestError::OperatorOnSelf(user.clone()).into())
        }
        _ => Ok(()),
    }
}

/// Who may act as an operator: the stack's explicit list of IAM users and roles
/// (the `OperatorArns` parameter), not whoever an IAM policy happens to allow
/// `execute-api:Invoke` (`PowerUserAccess` does). A role admits its sessions
/// (`arn:aws:sts::<account>:assumed-role/<role name>/<session>`); a user admits
/// itself. No wildcards: each entry names one principal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Operators {
    entries: Vec<OperatorEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct OperatorEntry {
    partition: String,
    account: String,
    /// `user/<name>` or `role/<name>` (paths dropped: sessions do not carry them).
    kind: &'static str,
    name: String,
}

impl Operators {
    /// A comma-separated list of IAM user and role ARNs. Empty admits nobody.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for raw in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let parts: Vec<&str> = raw.splitn(6, ':').collect();
            let [arn, partition, service, region, account, resource] = parts[..] else {
                return Err(format!("`{raw}` is not an ARN"));
            };
            let valid_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
            if arn != "arn" || service != "iam" || !region.is_empty() || !valid_account {
                return Err(format!(
                    "`{raw}` is not an IAM user or role ARN (arn:aws:iam::<account>:user/<name> or :role/<name>)"
                ));
            }
            let (kind, path) = match resource.split_once('/') {
                Some(("user", path)) => ("user", path),
                Some(("role", path)) => ("role", path),
                _ => {
                    return Err(format!(
                        "`{raw}` names neither a user nor a role: operators are IAM users or roles"
                    ));
                }
            };
            let name = path.rsplit('/').next().unwrap_or_default();
            if name.is_empty() || raw.contains('*') || raw.contains('?') {
                return Err(format!(
                    "`{raw}`: each entry names one principal, without wildcards"
                ));
            }
            entries.push(OperatorEntry {
                partition: partition.to_owned(),
                account: account.to_owned(),
                kind,
                name: name.to_owned(),
            });
        }
        Ok(Self { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the authenticated caller (`operator:<ARN>` or the bare ARN) is on
    /// the list. IAM compares user and role names without case, and so does this.
    pub fn admits(&self, executor: &str) -> bool {
        let arn = executor.strip_prefix("operator:").unwrap_or(executor);
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [_, partition, service, _, account, resource] = parts[..] else {
            return false;
        };
        let caller = match (service, resource.split_once('/')) {
            ("iam", Some(("user", path))) => ("user", path.rsplit('/').next().unwrap_or_default()),
            ("sts", Some(("assumed-role", rest))) => match rest.split_once('/') {
                Some((role, session)) if !session.is_empty() => ("role", role),
                _ => return false,
            },
            _ => return false,
        };
        self.entries.iter().any(|e| {
            e.partition == partition
                && e.account == account
                && e.kind == caller.0
                && e.name.eq_ignore_ascii_case(caller.1)
        })
    }

    /// Refuses a caller not on the list (403).
    pub fn ensure_admitted(&self, executor: &str) -> Result<(), crate::Error> {
        if self.admits(executor) {
            Ok(())
        } else {
            Err(crate::access::request::RequestError::NotAnOperator(
                executor
                    .strip_prefix("operator:")
                    .unwrap_or(executor)
                    .to_owned(),
            )
            .into())
        }
    }
}

/// A reason or approval reference: required, bounded.
pub fn reason(field: &'static str, raw: &str) -> Result<String, AskError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(AskError::invalid(field, "is required"));
    }
    if text.chars().count() > MAX_REASON_CHARS {
        return Err(AskError::invalid(
            field,
            format!("is longer than {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(text.to_owned())
}

/// The role a partial revocation keeps, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptRole {
    pub role: String,
    /// `true`: the ask named none, so the person's job role of record was used.
    pub from_directory: bool,
    /// The directory's job role for the person, when it has one.
    pub of_record: Option<String>,
}

impl KeptRole {
    /// One line for an operator: the role kept, and a mismatch with the record.
    pub fn describe(&self) -> String {
        match (&self.of_record, self.from_directory) {
            (_, true) => format!("keeps role {} (their job role of record)", self.role),
            (Some(record), false) if *record != self.role => format!(
                "keeps role {} as asked; NOTE: the directory of people says their job role is {record}",
                self.role
            ),
            (Some(_), false) => format!(
                "keeps role {} (as asked; also their role of record)",
                self.role
            ),
            (None, false) => format!(
                "keeps role {} as asked (the directory has no role for them)",
                self.role
            ),
        }
    }
}

impl RevokeAsk {
    /// A partial revocation that names no role (`new_role` empty) keeps the
    /// person's job role of record from the directory of people; one that names a
    /// role keeps it, and the record is reported beside it so a mismatch shows.
    /// Refused when neither says which role.
    pub fn keep_role(
        &mut self,
        record: Option<&crate::people::person::Person>,
    ) -> Result<Option<KeptRole>, AskError> {
        let RevocationKind::Partial { new_role } = &mut self.kind else {
            return Ok(None);
        };
        let of_record = record.and_then(|p| p.job_role()).map(str::to_owned);
        if !new_role.is_empty() {
            return Ok(Some(KeptRole {
                role: new_role.clone(),
                from_directory: false,
                of_record,
            }));
        }
        let Some(role) = of_record.clone() else {
            return Err(AskError::invalid(
                "kind",
                format!(
                    "a partial revocation of {} needs the role they keep: the directory of people has no job role for them (HR has not named one); name it (`--role`, or the batch file's `role` column)",
                    self.user
                ),
            ));
        };
        *new_role = role.clone();
        Ok(Some(KeptRole {
            role,
            from_directory: true,
            of_record,
        }))
    }

    /// The case this ask opens. A role change honours the policy's transition
    /// period unless it is an emergency, as an HR role change does; an emergency is
    /// now, so it cannot be scheduled; a schedule in the past is refused.
    pub fn case(
        &self,
        catalog: &Catalog,
        executor: &str,
        now: DateTime<Utc>,
    ) -> Result<RevocationCase, Error> {
        check_request_id(&self.request_id)?;
        let who = user(&self.user)?;
        let reason = reason("reason", &self.reason)?;
        if self.emergency && self.schedule.is_some() {
            return Err(AskError::invalid(
                "schedule",
                "cannot be combined with emergency: an emergency revokes now",
            )
            .into());
        }
        if let Some(at) = self.schedule
            && at <= now
        {
            return Err(AskError::invalid("schedule", format!("{at} is in the past")).into());
        }
        match &self.kind {
            RevocationKind::Partial { new_role } if catalog.role(new_role).is_none() => {
                return Err(AskError::invalid(
                    "kind",
                    format!("role `{new_role}` is not in the catalog"),
                )
                .into());
            }
            RevocationKind::Specific { permissions } if permissions.is_empty() => {
                return Err(AskError::invalid("kind", "names no permissions").into());
            }
            _ => {}
        }
        let transition = match (&self.kind, self.emergency) {
            (RevocationKind::Partial { .. }, false) => {
                catalog.tunables().role_change_transition.delta()
            }
            _ => TimeDelta::zero(),
        };
        Ok(RevocationCase::new(
            who,
            self.kind.clone(),
            Trigger {
                source: TriggerSource::Operator,
                event_id: format!("operator:{}", self.request_id),
                event_type: None,
                reason: if self.emergency {
                    format!("EMERGENCY: {reason}")
                } else {
                    reason
                },
                executor: executor.to_owned(),
                manager: None,
            },
            self.schedule.unwrap_or(now + transition),
            self.preserve_data,
            now,
        ))
    }
}

/// Starts the revocation workflow for an operator's case, named for the case, so
/// a retried ask starts it once. Step Functions refuses a name whose execution
/// has finished (`ExecutionAlreadyExists`): for a retried ask that means the
/// workflow ran already, which is what was asked, so it is not an error.
pub async fn start(
    workflows: &impl WorkflowStarter,
    case: &RevocationCase,
) -> Result<String, Error> {
    match workflows
        .start(
            case.id(),
            &serde_json::json!({ "case": { "case_id": case.id() } }),
        )
        .await
    {
        Ok(execution) => Ok(execution),
        Err(WorkflowError::NameTaken(name)) => Ok(format!("{name} (started before)")),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_listed_users_and_roles_are_operators() {
        let ops = Operators::parse(
            " arn:aws:iam::123456789012:user/ops/asmith , arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Ops_0a1b",
        )
        .unwrap();
        for admitted in [
            "operator:arn:aws:iam::123456789012:user/ops/asmith",
            "operator:arn:aws:iam::123456789012:user/ASmith",
            "operator:arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Ops_0a1b/jdoe",
        ] {
            assert!(ops.admits(admitted), "{admitted}");
            ops.ensure_admitted(admitted).unwrap();
        }
        for refused in [
            // PowerUserAccess reaches execute-api:Invoke: not an operator.
            "operator:arn:aws:iam::123456789012:user/poweruser",
            // The same name in another account, or as the other kind.
            "operator:arn:aws:iam::210987654321:user/asmith",
            "operator:arn:aws:sts::123456789012:assumed-role/asmith/s",
            "operator:arn:aws:iam::123456789012:role/AWSReservedSSO_Ops_0a1b",
            "operator:arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Ops_0a1b/",
            "operator:arn:aws:iam::123456789012:root",
        ] {
            assert!(!ops.admits(refused), "{refused}");
            let err = ops.ensure_admitted(refused).unwrap_err();
            assert_eq!(err.kind(), crate::error::ErrorKind::Forbidden, "{refused}");
            assert!(err.to_string().contains("OperatorArns"), "{err}");
        }
        assert!(Operators::parse("").unwrap().is_empty());
        assert!(
            !Operators::parse("")
                .unwrap()
                .admits("arn:aws:iam::123456789012:user/a")
        );
        for bad in [
            "arn:aws:iam::123456789012:user/*",
            "arn:aws:iam::123456789012:group/ops",
            "arn:aws:sts::123456789012:assumed-role/r/s",
            "arn:aws:iam::12345:user/a",
            "asmith",
        ] {
            assert!(Operators::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_operator_never_acts_on_themselves() {
        let jdoe = PrincipalId::new("jdoe").unwrap();
        for executor in [
            "operator:arn:aws:iam::123456789012:user/jdoe",
            "operator:arn:aws:iam::123456789012:user/ops/JDoe",
            "operator:arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Ops_0a1b/jdoe",
        ] {
            let err = ensure_not_self(executor, &jdoe).unwrap_err();
            assert_eq!(err.kind(), crate::error::ErrorKind::Forbidden, "{executor}");
            assert!(err.to_string().contains("another operator must"), "{err}");
        }
        for executor in [
            "operator:arn:aws:iam::123456789012:user/asmith",
            "operator:arn:aws:sts::123456789012:assumed-role/jdoe/asmith",
            "operator:arn:aws:iam::123456789012:root",
        ] {
            ensure_not_self(executor, &jdoe).unwrap();
        }
        assert_eq!(caller_name("operator:arn:aws:iam::1:root"), None);
    }

    use super::*;
    use crate::error::ErrorKind;
    use crate::testing::{catalog, monday_at};

    fn ask(kind: RevocationKind) -> RevokeAsk {
        RevokeAsk {
            request_id: "0b6f3c2e-1".into(),
            user: "jdoe".into(),
            reason: "left the company".into(),
            kind,
            preserve_data: false,
            emergency: false,
            schedule: None,
        }
    }

    #[test]
    fn the_same_ask_names_the_same_case_and_records_the_authenticated_executor() {
        let now = monday_at(10);
        let a = ask(RevocationKind::Full)
            .case(&catalog(), "operator:arn:aws:iam::1:user/ops", now)
            .unwrap();
        let b = ask(RevocationKind::Full)
            .case(
                &catalog(),
                "operator:arn:aws:iam::1:user/ops",
                now + TimeDelta::minutes(5),
            )
            .unwrap();
        assert_eq!(a.id(), b.id(), "a retried call opens the same case");
        assert_eq!(a.trigger().executor, "operator:arn:aws:iam::1:user/ops");
        assert_eq!(a.effective_at(), now);
        let other = RevokeAsk {
            request_id: "another-id".into(),
            ..ask(RevocationKind::Full)
        };
        assert_ne!(other.case(&catalog(), "x", now).unwrap().id(), a.id());
    }

    #[test]
    fn a_role_change_waits_for_the_transition_unless_it_is_an_emergency() {
        let now = monday_at(10);
        let role = RevocationKind::Partial {
            new_role: "analyst".into(),
        };
        let transition = catalog().tunables().role_change_transition.delta();
        assert_eq!(
            ask(role.clone())
                .case(&catalog(), "x", now)
                .unwrap()
                .effective_at(),
            now + transition
        );
        let urgent = RevokeAsk {
            emergency: true,
            ..ask(role)
        };
        let case = urgent.case(&catalog(), "x", now).unwrap();
        assert_eq!(case.effective_at(), now);
        assert!(case.trigger().reason.starts_with("EMERGENCY: "));
    }

    #[test]
    fn bad_asks_are_refused_with_the_field_named() {
        let now = monday_at(10);
        let cases = [
            (
                RevokeAsk {
                    request_id: "short".into(),
                    ..ask(RevocationKind::Full)
                },
                "`request_id`",
            ),
            (
                RevokeAsk {
                    user: "j doe".into(),
                    ..ask(RevocationKind::Full)
                },
                "`user`",
            ),
            (
                RevokeAsk {
                    reason: "  ".into(),
                    ..ask(RevocationKind::Full)
                },
                "`reason` is required",
            ),
            (
                RevokeAsk {
                    reason: "x".repeat(MAX_REASON_CHARS + 1),
                    ..ask(RevocationKind::Full)
                },
                "`reason` is longer",
            ),
            (
                RevokeAsk {
                    emergency: true,
                    schedule: Some(now + TimeDelta::days(1)),
                    ..ask(RevocationKind::Full)
                },
                "cannot be combined with emergency",
            ),
            (
                RevokeAsk {
                    schedule: Some(now - TimeDelta::minutes(1)),
                    ..ask(RevocationKind::Full)
                },
                "in the past",
            ),
            (
                ask(RevocationKind::Partial {
                    new_role: "astronaut".into(),
                }),
                "role `astronaut` is not in the catalog",
            ),
            (
                ask(RevocationKind::Specific {
                    permissions: vec![],
                }),
                "names no permissions",
            ),
        ];
        for (bad, expected) in cases {
            let err = bad.case(&catalog(), "x", now).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Validation, "{err}");
            assert!(
                err.to_string().contains(expected),
                "{err} should say {expected}"
            );
        }
    }

    /// Step Functions after an execution has finished: its name is taken for good.
    struct Finished;
    impl WorkflowStarter for Finished {
        async fn start(
            &self,
            name: &str,
            _input: &serde_json::Value,
        ) -> Result<String, WorkflowError> {
            Err(WorkflowError::NameTaken(name.to_owned()))
        }
    }

    /// Step Functions refusing the start.
    struct Down;
    impl WorkflowStarter for Down {
        async fn start(
            &self,
            _name: &str,
            _input: &serde_json::Value,
        ) -> Result<String, WorkflowError> {
            Err(WorkflowError::Unavailable("down".into()))
        }
    }

    #[test]
    fn a_retried_ask_whose_workflow_finished_is_not_an_error() {
        use crate::testing::block_on;
        let case = ask(RevocationKind::Full)
            .case(&catalog(), "x", monday_at(10))
            .unwrap();
        let started = block_on(start(&crate::memory::MemoryWorkflows::default(), &case)).unwrap();
        assert!(started.contains(case.id().as_str()));
        let again = block_on(start(&Finished, &case)).unwrap();
        assert!(again.contains("started before"), "{again}");
        let err = block_on(start(&Down, &case)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient);
    }

    #[test]
    fn asks_with_unknown_fields_do_not_parse() {
        let body = r#"{"request_id":"0b6f3c2e-1","user":"jdoe","reason":"r","kind":{"kind":"full"},"executor":"someone-else"}"#;
        assert!(
            serde_json::from_str::<RevokeAsk>(body).is_err(),
            "no body names who acts"
        );
    }
}

#[cfg(test)]
mod keep_role_tests {
    use super::*;
    use crate::revocation::hr::HrEvent;

    fn ask(role: &str) -> RevokeAsk {
        RevokeAsk {
            request_id: "req-12345678".into(),
            user: "asmith".into(),
            reason: "moved".into(),
            kind: RevocationKind::Partial {
                new_role: role.into(),
            },
            preserve_data: false,
            emergency: false,
            schedule: None,
        }
    }

    fn analyst() -> crate::people::person::Person {
        let mut person = crate::people::person::Person::new(PrincipalId::new("asmith").unwrap());
        person.apply(
            &HrEvent::parse(
                br#"{"event_type":"user_role_changed","event_id":"evt-1","timestamp":"2026-11-23T09:00:00Z",
                     "user":{"username":"asmith"},"metadata":{"new_role":"analyst"}}"#,
            )
            .unwrap(),
        );
        person
    }

    #[test]
    fn a_partial_revocation_without_a_role_keeps_the_role_of_record() {
        let mut without = ask("");
        let kept = without.keep_role(Some(&analyst())).unwrap().unwrap();
        assert_eq!(
            without.kind,
            RevocationKind::Partial {
                new_role: "analyst".into()
            }
        );
        assert_eq!(
            kept.describe(),
            "keeps role analyst (their job role of record)"
        );
        // An explicit role wins, and the record is shown beside it.
        let mut named = ask("engineer");
        let kept = named.keep_role(Some(&analyst())).unwrap().unwrap();
        assert_eq!(
            named.kind,
            RevocationKind::Partial {
                new_role: "engineer".into()
            }
        );
        assert!(
            kept.describe()
                .contains("NOTE: the directory of people says their job role is analyst"),
            "{}",
            kept.describe()
        );
        // Neither the ask nor the directory says: refused, and why.
        let err = ask("").keep_role(None).unwrap_err();
        assert!(
            err.to_string()
                .contains("the directory of people has no job role for them"),
            "{err}"
        );
        // Other kinds are left alone.
        let mut full = ask("");
        full.kind = RevocationKind::Full;
        assert_eq!(full.keep_role(Some(&analyst())).unwrap(), None);
    }
}
