//! Break-glass: access granted at once in an emergency, answered for afterwards.
//!
//! The grant itself is an ordinary grant: the same workflow, the same IAM time
//! condition, the same revocation at expiry and verification. What differs lives
//! here, carried by the request ([`crate::access::request::AccessRequest::break_glass`]):
//! - the duration is capped by the policy (`break_glass_cap`, 2 h by design); a
//!   longer ask is refused, never silently shortened;
//! - the requester owes a justification within `break_glass_justification_window`;
//!   a reminder goes out when three quarters of the window have passed, and an
//!   escalation to the reviewers and security when it closes;
//! - a post-facto review by one person from each of the resource's dual-approval
//!   groups (a manager and security in the shipped catalog), neither of them the
//!   requester. Every group finding it `justified` closes it; one `unjustified`
//!   closes it as a security incident.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::access::request::{MAX_JUSTIFICATION_CHARS, RequestError};
use crate::identity::{Principal, PrincipalId};
use crate::policy::{Catalog, Resource};

/// Break-glass uses by one person within [`FREQUENT_USE_WINDOW_DAYS`] at which
/// security is alerted (the use that reaches it included).
pub const FREQUENT_USE_COUNT: usize = 3;
pub const FREQUENT_USE_WINDOW_DAYS: i64 = 30;

/// A reviewer's finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    Justified,
    Unjustified,
}

/// The requester's account of the emergency, given after the fact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Justification {
    pub text: String,
    pub at: DateTime<Utc>,
    /// Given after the deadline.
    pub late: bool,
}

/// One reviewer's finding, for one review group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub reviewer: PrincipalId,
    pub group: String,
    pub finding: Finding,
    pub note: String,
    pub at: DateTime<Utc>,
}

/// What a review came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewOutcome {
    /// Recorded; these groups still owe a finding.
    Recorded { remaining: Vec<String> },
    /// Every group found it justified: closed.
    Justified,
    /// A reviewer found it unjustified: closed as a security incident.
    Unjustified,
    /// This reviewer gave this finding before; nothing changed.
    AlreadyRecorded,
}

/// A step of the justification timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nudge {
    /// Before the deadline: the requester is reminded.
    Remind,
    /// At the deadline: the reviewers and security are told.
    Escalate,
}

/// The break-glass part of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlass {
    due: DateTime<Utc>,
    remind_at: DateTime<Utc>,
    justification: Option<Justification>,
    reminded: bool,
    escalated: bool,
    /// One finding per group, from distinct people.
    review_groups: Vec<String>,
    reviews: Vec<Review>,
    outcome: Option<Finding>,
}

impl BreakGlass {
    pub(crate) fn open(catalog: &Catalog, resource: &Resource, now: DateTime<Utc>) -> Self {
        let window = catalog.tunables().break_glass_justification_window.delta();
        let due = now + window;
        Self {
            due,
            remind_at: due - window / 4,
            justification: None,
            reminded: false,
            escalated: false,
            review_groups: resource.dual_approval_groups.clone(),
            reviews: Vec::new(),
            outcome: None,
        }
    }

    pub fn due(&self) -> DateTime<Utc> {
        self.due
    }
    pub fn remind_at(&self) -> DateTime<Utc> {
        self.remind_at
    }
    pub fn justification(&self) -> Option<&Justification> {
        self.justification.as_ref()
    }
    pub fn reviews(&self) -> &[Review] {
        &self.reviews
    }
    pub fn review_groups(&self) -> &[String] {
        &self.review_groups
    }
    pub fn outcome(&self) -> Option<Finding> {
        self.outcome
    }
    pub fn reminded(&self) -> bool {
        self.reminded
    }
    pub fn escalated(&self) -> bool {
        self.escalated
    }
    /// Still owed an answer: no justification and no finding yet.
    pub fn unanswered(&self) -> bool {
        self.justification.is_none() && self.outcome.is_none()
    }

    /// Groups still owing a finding.
    pub fn open_groups(&self) -> Vec<String> {
        self.review_groups
            .iter()
            .filter(|g| !self.reviews.iter().any(|r| &r.group == *g))
            .cloned()
            .collect()
    }

    /// Records the requester's justification. The same text again changes nothing
    /// (`Ok(false)`); a different one, or one after the review closed, is refused.
    pub(crate) fn justify(&mut self, text: &str, now: DateTime<Utc>) -> Result<bool, RequestError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(RequestError::JustificationMissing);
        }
        if text.chars().count() > MAX_JUSTIFICATION_CHARS {
            return Err(RequestError::JustificationTooLong);
        }
        match &self.justification {
            Some(given) if given.text == text => return Ok(false),
            Some(_) => return Err(RequestError::AlreadyJustified),
            None => {}
        }
        if self.outcome.is_some() {
            return Err(RequestError::ReviewClosed);
        }
        self.justification = Some(Justification {
            text: text.to_owned(),
            at: now,
            late: now > self.due,
        });
        Ok(true)
    }

    /// Records a reviewer's finding.
    pub(crate) fn review(
        &mut self,
        reviewer: &Principal,
        requester: &PrincipalId,
        finding: Finding,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<ReviewOutcome, RequestError> {
        let who = reviewer.id();
        if who == requester {
            return Err(RequestError::SelfApproval(who.clone()));
        }
        if let Some(mine) = self.reviews.iter().find(|r| &r.reviewer == who) {
            return if mine.finding == finding {
                Ok(ReviewOutcome::AlreadyRecorded)
            } else {
                Err(RequestError::AlreadyReviewed(who.clone()))
            };
        }
        if self.outcome.is_some() {
            return Err(RequestError::ReviewClosed);
        }
        if finding == Finding::Justified && self.justification.is_none() {
            return Err(RequestError::JustificationMissing);
        }
        let open = self.open_groups();
        let Some(group) = open.iter().find(|g| reviewer.is_member(g)) else {
            return Err(RequestError::NotEligible {
                approver: who.clone(),
                needed: open,
            });
        };
        self.reviews.push(Review {
            reviewer: who.clone(),
            group: group.clone(),
            finding,
            note: note.trim().to_owned(),
            at: now,
        });
        if finding == Finding::Unjustified {
            self.outcome = Some(Finding::Unjustified);
            return Ok(ReviewOutcome::Unjustified);
        }
        let remaining = self.open_groups();
        if remaining.is_empty() {
            self.outcome = Some(Finding::Justified);
            Ok(ReviewOutcome::Justified)
        } else {
            Ok(ReviewOutcome::Recorded { remaining })
        }
    }

    /// The timeline step due at `now`, if any: nothing once answered, each step once.
    pub fn nudge_due(&self, now: DateTime<Utc>) -> Option<Nudge> {
        if !self.unanswered() {
            return None;
        }
        if now >= self.due && !self.escalated {
            return Some(Nudge::Escalate);
        }
        if now >= self.remind_at && !self.reminded && !self.escalated {
            return Some(Nudge::Remind);
        }
        None
    }

    pub(crate) fn mark(&mut self, nudge: Nudge) {
        match nudge {
            Nudge::Remind => self.reminded = true,
            Nudge::Escalate => self.escalated = true,
        }
    }
}

/// How many of `uses` (break-glass start times) fall within the frequent-use window
/// ending at `now`.
pub fn recent_uses(uses: impl IntoIterator<Item = DateTime<Utc>>, now: DateTime<Utc>) -> usize {
    let window = TimeDelta::days(FREQUENT_USE_WINDOW_DAYS);
    uses.into_iter()
        .filter(|at| *at <= now && now - *at < window)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{catalog, monday_at};

    #[test]
    fn each_nudge_is_due_once_and_escalation_supersedes_the_reminder() {
        let catalog = catalog();
        let resource = catalog.resource("prod-db-admin").unwrap();
        let mut state = BreakGlass::open(&catalog, resource, monday_at(10));
        let remind_at = state.remind_at();
        assert_eq!(state.nudge_due(remind_at - TimeDelta::seconds(1)), None);
        assert_eq!(state.nudge_due(remind_at), Some(Nudge::Remind));
        state.mark(Nudge::Remind);
        assert_eq!(state.nudge_due(remind_at), None);
        assert_eq!(state.nudge_due(state.due()), Some(Nudge::Escalate));
        // Never reminded, and already past due: only the escalation goes out.
        let mut late = BreakGlass::open(&catalog, resource, monday_at(10));
        let due = late.due();
        assert_eq!(late.nudge_due(due), Some(Nudge::Escalate));
        late.mark(Nudge::Escalate);
        assert_eq!(late.nudge_due(due), None);
    }

    #[test]
    fn recent_uses_count_only_the_window() {
        let now = monday_at(10);
        let uses = [
            now,
            now - TimeDelta::days(29),
            now - TimeDelta::days(30),
            now + TimeDelta::hours(1),
        ];
        assert_eq!(recent_uses(uses, now), 2);
    }
}
