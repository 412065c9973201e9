//! The inactivity check: who has been inactive past the threshold, and their
//! suspension cases.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::identity::PrincipalId;
use crate::ports::DirectoryError;
use crate::revocation::case::{RevocationCase, Trigger, TriggerSource};
use crate::revocation::plan::RevocationKind;
use crate::revocation::ports::{IdentityDirectory, UserControls};

use super::{Context, HasCases, HasControls, HasDirectory, HasTrail, open};

/// Users whose console and access-key use are all older than `threshold`, from an
/// IAM credential report (CSV). Never-used credentials count from the user's creation.
pub fn inactive_users(
    report_csv: &str,
    threshold: TimeDelta,
    now: DateTime<Utc>,
) -> Vec<PrincipalId> {
    let mut lines = report_csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.split(',').collect();
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(user), Some(created)) = (col("user"), col("user_creation_time")) else {
        return Vec::new();
    };
    let activity = [
        "password_last_used",
        "access_key_1_last_used_date",
        "access_key_2_last_used_date",
    ]
    .map(col);
    let parse = |v: &str| {
        DateTime::parse_from_rfc3339(v)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    lines
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let name = *fields.get(user)?;
            if name == "<root_account>" {
                return None;
            }
            let last = activity
                .iter()
                .flatten()
                .filter_map(|i| fields.get(*i).and_then(|v| parse(v)))
                .max()
                .or_else(|| fields.get(created).and_then(|v| parse(v)))?;
            (now - last > threshold)
                .then(|| PrincipalId::new(name).ok())
                .flatten()
        })
        .collect()
}

/// Why the inactivity check passed over a user it found inactive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub user: PrincipalId,
    pub reason: String,
}

/// Opens a suspension case for each inactive user Lapse manages (one per user per
/// day). Passed over, with the reason: exempt users (the catalog's list), users
/// already revoked or suspended by Lapse, users restored within the threshold (the
/// credential report still shows their old activity), users IAM no longer has,
/// users Lapse does not manage, and users Lapse may not read at all.
pub async fn suspend_inactive(
    p: &(impl HasCases + HasTrail + HasControls + HasDirectory + Context),
    report_csv: &str,
    now: DateTime<Utc>,
) -> Result<(Vec<RevocationCase>, Vec<Skipped>), Error> {
    let threshold = p.catalog().tunables().inactivity_threshold.delta();
    let mut cases = Vec::new();
    let mut skipped = Vec::new();
    for user in inactive_users(report_csv, threshold, now) {
        let skip = |reason: String| Skipped {
            user: user.clone(),
            reason,
        };
        if let Some(reason) = p.catalog().inactivity_exemption(user.as_str()) {
            skipped.push(skip(format!("exempt: {reason}")));
            continue;
        }
        let controls = p.controls().controls(&user).await?;
        if let Some(case) = &controls.revoked_by {
            skipped.push(skip(format!("already revoked or suspended (case {case})")));
            continue;
        }
        if controls
            .active_since
            .is_some_and(|at| now - at <= threshold)
        {
            skipped.push(skip(
                "restored recently; activity counts from the restore".into(),
            ));
            continue;
        }
        match p.directory().managed(&user).await {
            Ok(true) => {}
            Ok(false) => {
                skipped.push(skip("not a user Lapse manages".into()));
                continue;
            }
            // Outside the managed path, Lapse's role may not even read the user's
            // tags: not one Lapse manages, and no reason to stop the daily run.
            Err(DirectoryError::Denied(_)) => {
                skipped.push(skip(
                    "Lapse may not read this user (outside its managed path): not one it manages"
                        .into(),
                ));
                continue;
            }
            Err(other) => return Err(other.into()),
        }
        let case = RevocationCase::new(
            user.clone(),
            RevocationKind::Suspend,
            Trigger {
                source: TriggerSource::Inactivity,
                event_id: format!("inactivity:{user}:{}", now.date_naive()),
                event_type: None,
                reason: format!(
                    "no console or access-key use for {} days",
                    threshold.num_days()
                ),
                executor: "inactivity-check".into(),
                manager: None,
            },
            now,
            false,
            now,
        );
        cases.push(open(p, case, now).await?);
    }
    Ok((cases, skipped))
}
