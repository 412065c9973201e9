//! The one inline policy Lapse keeps on a role to deny sessions of it that must not
//! live on: the sessions of people whose access was revoked, and the sessions an
//! ended grant opened.
//!
//! A role is shared: one deny per person would pile up until IAM's 10,240-character
//! limit on a role's inline policies made the next termination fail. So there is
//! one policy per role ([`ROLE_DENY_POLICY`]) listing everyone, and every write
//! prunes what no longer needs denying:
//! - a revoked person stays listed while the role's trust policy names them, and in
//!   any case for [`RECENT`] after they were added (every session they could hold
//!   then has expired by the end of it: a role session lasts at most 12 hours);
//! - an ended grant's entry stays until [`MAX_ROLE_SESSION`] after its cutoff.
//!
//! Nothing here trusts a name: [`RoleDenies::parse`] accepts a document only when
//! it is exactly what [`RoleDenies::document`] writes for the entries it lists.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::identity::PrincipalId;
use crate::ports::{AccessInspector, AccessProvisioner, DirectoryError, Removal};

/// The role's one inline policy of denied sessions.
pub const ROLE_DENY_POLICY: &str = "lapse-denied-sessions";

/// The longest a role session can live (IAM's maximum `MaxSessionDuration`).
pub const MAX_ROLE_SESSION: Duration = TimeDelta::hours(12);

/// How long a revoked person stays listed whatever the trust policy says, counted
/// from the start of the (UTC) day they were added: a day of additions plus a day,
/// well past every session they could hold when they were added.
pub const RECENT: Duration = TimeDelta::days(2);

/// Who a role's deny covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleDenies {
    /// Revoked people (all their sessions of the role), each with the day they
    /// were added; `None` once they are kept only because the trust names them.
    revoked: BTreeMap<String, Option<NaiveDate>>,
    /// Ended grants: the holder's sessions issued before the cutoff.
    ended: BTreeMap<String, DateTime<Utc>>,
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn deny(sid: String, condition: Value) -> Value {
    json!({ "Sid": sid, "Effect": "Deny", "Action": "*", "Resource": "*", "Condition": condition })
}

/// A cohort's label in its statements' `Sid`s: `Trusted`, or the day they were added.
fn cohort_label(day: Option<NaiveDate>) -> String {
    day.map_or_else(
        || "Trusted".to_owned(),
        |d| format!("Since{}", d.format("%Y%m%d")),
    )
}

impl RoleDenies {
    /// The entries of `document` if it is exactly a document [`Self::document`]
    /// writes; `None` for anything else, however it is named.
    pub fn parse(document: &Value) -> Option<Self> {
        let mut found = Self::default();
        for statement in document.get("Statement")?.as_array()? {
            let sid = statement.get("Sid")?.as_str()?;
            let condition = statement.get("Condition")?;
            if let Some(label) = sid
                .strip_prefix("LapseRevoked")
                .and_then(|s| s.strip_suffix("BySourceIdentity"))
            {
                let day = match label {
                    "Trusted" => None,
                    dated => Some(
                        NaiveDate::parse_from_str(dated.strip_prefix("Since")?, "%Y%m%d").ok()?,
                    ),
                };
                for user in condition
                    .pointer("/StringEquals/aws:SourceIdentity")?
                    .as_array()?
                {
                    found.revoked.insert(user.as_str()?.to_owned(), day);
                }
            } else if sid.starts_with("LapseEndedGrant") {
                let user = condition
                    .pointer("/StringEquals/aws:SourceIdentity")?
                    .as_str()?;
                let cutoff = condition
                    .pointer("/DateLessThan/aws:TokenIssueTime")?
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
                    .with_timezone(&Utc);
                found.ended.insert(user.to_owned(), cutoff);
            }
        }
        (found.document().as_ref() == Some(document)).then_some(found)
    }

    /// The policy document, `None` when nothing is denied (the policy is deleted).
    pub fn document(&self) -> Option<Value> {
        let mut cohorts: BTreeMap<Option<NaiveDate>, Vec<&str>> = BTreeMap::new();
        for (user, day) in &self.revoked {
            cohorts.entry(*day).or_default().push(user);
        }
        let mut statements = Vec::new();
        for (day, users) in cohorts {
            let label = cohort_label(day);
            let by_name: Vec<String> = users.iter().map(|u| format!("*:{u}")).collect();
            statements.push(deny(
                format!("LapseRevoked{label}BySourceIdentity"),
                json!({ "StringEquals": { "aws:SourceIdentity": users } }),
            ));
            statements.push(deny(
                format!("LapseRevoked{label}BySessionName"),
                json!({ "StringLike": { "aws:userid": by_name } }),
            ));
        }
        for (i, (user, cutoff)) in self.ended.iter().enumerate() {
            statements.push(deny(
                format!("LapseEndedGrant{i}"),
                json!({
                    "StringEquals": { "aws:SourceIdentity": user },
                    "DateLessThan": { "aws:TokenIssueTime": timestamp(*cutoff) }
                }),
            ));
        }
        (!statements.is_empty())
            .then(|| json!({ "Version": "2012-10-17", "Statement": statements }))
    }

    /// Are all of `user`'s sessions of the role denied?
    pub fn denies_all_of(&self, user: &PrincipalId) -> bool {
        self.revoked.contains_key(user.as_str())
    }

    /// Does `document` (a role's [`ROLE_DENY_POLICY`], if any) deny all of `user`'s
    /// sessions, by content?
    pub fn document_denies_all_of(document: Option<&Value>, user: &PrincipalId) -> bool {
        document
            .and_then(Self::parse)
            .is_some_and(|d| d.denies_all_of(user))
    }

    /// The cutoff before which `user`'s sessions are denied for their ended grants.
    pub fn ended_cutoff(&self, user: &PrincipalId) -> Option<DateTime<Utc>> {
        self.ended.get(user.as_str()).copied()
    }

    /// Everyone listed, revoked or with an ended grant.
    pub fn people(&self) -> BTreeSet<&str> {
        self.revoked
            .keys()
            .chain(self.ended.keys())
            .map(String::as_str)
            .collect()
    }

    /// Denies all of `user`'s sessions from `now` on (a revocation).
    pub fn revoke(&mut self, user: &PrincipalId, now: DateTime<Utc>) {
        let today = now.date_naive();
        self.revoked
            .entry(user.as_str().to_owned())
            .and_modify(|day| {
                if day.is_some() {
                    *day = Some(today);
                }
            })
            .or_insert(Some(today));
    }

    /// Takes `user` out of the revoked (a restore).
    pub fn lift(&mut self, user: &PrincipalId) {
        self.revoked.remove(user.as_str());
    }

    /// Denies `user`'s sessions issued before `cutoff` (an ended grant), raising an
    /// earlier cutoff, never lowering a later one.
    pub fn end_grant(&mut self, user: &PrincipalId, cutoff: DateTime<Utc>) {
        let at = self.ended.entry(user.as_str().to_owned()).or_insert(cutoff);
        *at = (*at).max(cutoff);
    }

    /// Revoked people no longer recent at `now`: they stay only if the role's trust
    /// policy still names them.
    pub fn due_for_trust_check(&self, now: DateTime<Utc>) -> Vec<String> {
        self.revoked
            .iter()
            .filter(|(_, day)| !is_recent(**day, now))
            .map(|(user, _)| user.clone())
            .collect()
    }

    /// Drops what no longer needs denying at `now`: ended grants whose sessions have
    /// all expired, and revoked people past [`RECENT`] whom the trust policy no
    /// longer names (`trusted`: of [`Self::due_for_trust_check`], those it names).
    pub fn prune(&mut self, now: DateTime<Utc>, trusted: &BTreeSet<String>) {
        self.ended
            .retain(|_, cutoff| *cutoff + MAX_ROLE_SESSION > now);
        self.revoked.retain(|user, day| {
            if is_recent(*day, now) {
                return true;
            }
            *day = None;
            trusted.contains(user)
        });
    }
}

fn is_recent(day: Option<NaiveDate>, now: DateTime<Utc>) -> bool {
    day.is_some_and(|d| d.and_time(chrono::NaiveTime::MIN).and_utc() + RECENT > now)
}

/// How many times a write is re-read and re-tried when another writer changed the
/// role's deny between the read and the write.
const ATTEMPTS: usize = 5;

/// Changes a role's deny: reads it, prunes it, applies `change`, writes it (or
/// deletes it when nothing is left), and reads it back. Another writer's change in
/// between is not lost: if the read-back is not what was written, it starts again
/// from what is there. Returns the deny as written.
///
/// A document under the policy's name that is not exactly Lapse's is replaced:
/// whoever it listed is found again by their own revocation's verification.
pub async fn update(
    iam: &(impl AccessInspector + AccessProvisioner),
    role: &str,
    now: DateTime<Utc>,
    change: impl Fn(&mut RoleDenies),
) -> Result<RoleDenies, DirectoryError> {
    for _ in 0..ATTEMPTS {
        let current = iam.role_policy(role, ROLE_DENY_POLICY).await?;
        let mut denies = current
            .as_ref()
            .and_then(RoleDenies::parse)
            .unwrap_or_default();
        let due = denies.due_for_trust_check(now);
        let trusted = if due.is_empty() {
            BTreeSet::new()
        } else {
            iam.role_trusts(role, &due).await?
        };
        denies.prune(now, &trusted);
        change(&mut denies);
        let wanted = denies.document();
        if wanted == current {
            return Ok(denies);
        }
        match &wanted {
            Some(document) => {
                iam.put_role_policy(role, ROLE_DENY_POLICY, document)
                    .await?
            }
            None => {
                let _: Removal = iam.delete_role_policy(role, ROLE_DENY_POLICY).await?;
            }
        }
        if iam.role_policy(role, ROLE_DENY_POLICY).await? == wanted {
            return Ok(denies);
        }
    }
    Err(DirectoryError::Unavailable(
        format!("the session deny on role {role} kept changing under concurrent writers").into(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::testing::monday_at;

    fn user(name: &str) -> PrincipalId {
        PrincipalId::new(name).unwrap()
    }

    #[test]
    fn the_document_round_trips_and_nothing_else_parses() {
        let mut d = RoleDenies::default();
        assert_eq!(d.document(), None, "nothing denied: no policy");
        d.revoke(&user("ann"), monday_at(9));
        d.revoke(&user("ben"), monday_at(10));
        d.end_grant(&user("cid"), monday_at(11));
        let document = d.document().unwrap();
        assert_eq!(RoleDenies::parse(&document), Some(d.clone()));
        assert!(d.denies_all_of(&user("ann")) && d.denies_all_of(&user("ben")));
        assert!(!d.denies_all_of(&user("cid")));
        assert_eq!(d.ended_cutoff(&user("cid")), Some(monday_at(11)));
        assert_eq!(
            document["Statement"].as_array().unwrap().len(),
            3,
            "one cohort (two statements) and one ended grant: {document}"
        );

        // Widened by a hand edit: not Lapse's any more.
        let mut widened = document.clone();
        widened["Statement"][0]["Condition"]["StringEquals"]["aws:SourceIdentity"] =
            json!(["ann", "ben", "zed"]);
        widened["Statement"][1]["Effect"] = json!("Allow");
        assert_eq!(RoleDenies::parse(&widened), None);
        let mut narrowed = document;
        narrowed["Statement"][2]["Condition"]["DateLessThan"]["aws:TokenIssueTime"] =
            json!("2000-01-01T00:00:00Z");
        narrowed["Statement"][2]["Action"] = json!("s3:GetObject");
        assert_eq!(RoleDenies::parse(&narrowed), None);
        assert_eq!(RoleDenies::parse(&json!({"Statement": []})), None);
    }

    #[test]
    fn pruning_keeps_the_recent_and_the_trusted_and_drops_the_rest() {
        let mut d = RoleDenies::default();
        d.revoke(&user("ann"), monday_at(9));
        d.revoke(&user("ben"), monday_at(9));
        d.end_grant(&user("cid"), monday_at(9));
        // Within the sessions' life: nothing is due, nothing goes.
        assert!(d.due_for_trust_check(monday_at(20)).is_empty());
        d.prune(monday_at(20), &BTreeSet::new());
        assert!(d.denies_all_of(&user("ann")) && d.ended_cutoff(&user("cid")).is_some());
        // Twelve hours after its cutoff, the ended grant's sessions are all gone;
        // the revoked stay, whatever the trust says, for two days from their day.
        d.prune(monday_at(21), &BTreeSet::new());
        assert_eq!(d.ended_cutoff(&user("cid")), None);
        assert!(d.denies_all_of(&user("ben")));
        d.end_grant(&user("cid"), monday_at(9));

        // Three days on: the ended grant's sessions are gone; ann is still trusted.
        let later = monday_at(9) + TimeDelta::days(3);
        assert_eq!(d.due_for_trust_check(later), ["ann", "ben"]);
        d.prune(later, &BTreeSet::from(["ann".to_owned()]));
        assert!(d.denies_all_of(&user("ann")));
        assert!(!d.denies_all_of(&user("ben")));
        assert_eq!(d.ended_cutoff(&user("cid")), None);
        // ann is now kept for the trust alone, and leaves with it.
        assert!(
            d.document().unwrap()["Statement"][0]["Sid"]
                .as_str()
                .unwrap()
                .contains("Trusted")
        );
        d.prune(later + TimeDelta::days(1), &BTreeSet::new());
        assert_eq!(d.document(), None);
    }

    #[test]
    fn a_later_grant_end_raises_the_cutoff_and_an_earlier_one_does_not_lower_it() {
        let mut d = RoleDenies::default();
        d.end_grant(&user("ann"), monday_at(12));
        d.end_grant(&user("ann"), monday_at(10));
        assert_eq!(d.ended_cutoff(&user("ann")), Some(monday_at(12)));
        d.end_grant(&user("ann"), monday_at(14));
        assert_eq!(d.ended_cutoff(&user("ann")), Some(monday_at(14)));
    }

    #[test]
    fn a_hundred_and_fifty_people_fit_in_one_role_policy() {
        let mut d = RoleDenies::default();
        for i in 0..150 {
            d.revoke(&user(&format!("person.number{i:03}")), monday_at(9));
        }
        let size = d.document().unwrap().to_string().len();
        assert!(size < 10_240, "{size} characters");
    }
}
