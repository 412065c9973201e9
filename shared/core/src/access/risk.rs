//! Explainable risk scoring and routing.
//!
//! [`assess`] returns a 0–100 score together with every factor that contributed and
//! why, so an approver (or an auditor) can see exactly how a score came about.
//! [`route`] turns the score and the resource into an approval route:
//!
//! | rule (first match wins)                                   | route          |
//! |-----------------------------------------------------------|----------------|
//! | privileged or production resource                        | dual approval  |
//! | grant that can escalate privileges (`allows_escalation`)   | dual approval  |
//! | score ≥ `risk.thresholds.high`                             | dual approval  |
//! | low score, duration ≤ auto-approve limit, not a vendor     | auto-approve   |
//! | anything else                                              | resource owner |

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::duration::Span;
use crate::identity::EmploymentType;
use crate::policy::{Catalog, Environment, Resource, Sensitivity};

/// What is known about the requester when they ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequesterContext {
    pub employment: EmploymentType,
    /// They have never held this resource before.
    pub first_time: bool,
    /// Their requests denied in the last 30 days.
    pub recent_denials: u32,
    /// They hold a break-glass grant not yet justified.
    pub open_break_glass: bool,
}

/// One contribution to a score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Factor {
    pub name: String,
    pub points: u8,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
}

impl RiskLevel {
    /// The level in words.
    pub fn label(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
        }
    }
}

/// A score with its explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskAssessment {
    pub score: u8,
    pub level: RiskLevel,
    pub factors: Vec<Factor>,
}

/// Who must approve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Route {
    AutoApprove,
    /// One approval from the resource's owner group.
    Owner {
        group: String,
    },
    /// One approval from each group, by distinct people.
    Dual {
        groups: Vec<String>,
    },
    /// Emergency access: approved at once, reviewed afterwards
    /// ([`crate::access::breakglass`]).
    BreakGlass,
}

impl Route {
    /// The approval slots: one group name per approval needed.
    pub fn slots(&self) -> &[String] {
        match self {
            Route::AutoApprove | Route::BreakGlass => &[],
            Route::Owner { group } => std::slice::from_ref(group),
            Route::Dual { groups } => groups,
        }
    }
}

/// A route and the rule that chose it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteDecision {
    pub route: Route,
    pub reason: String,
}

fn sensitivity_points(s: Sensitivity) -> u8 {
    match s {
        Sensitivity::Low => 0,
        Sensitivity::Moderate => 10,
        Sensitivity::High => 20,
        Sensitivity::Critical => 30,
    }
}

fn environment_points(e: Environment) -> u8 {
    match e {
        Environment::Sandbox => 0,
        Environment::Development => 5,
        Environment::Staging => 10,
        Environment::Production => 20,
    }
}

/// Is `at` outside the catalog's business hours?
pub fn is_off_hours(catalog: &Catalog, at: DateTime<Utc>) -> bool {
    let hours = catalog.business_hours();
    let weekend = matches!(at.weekday(), Weekday::Sat | Weekday::Sun);
    let hour = at.hour() as u8;
    (hours.weekdays_only && weekend) || hour < hours.start_hour_utc || hour >= hours.end_hour_utc
}

/// Scores a request. Pure: the same inputs always give the same score and factors.
pub fn assess(
    catalog: &Catalog,
    resource: &Resource,
    duration: Span,
    ctx: &RequesterContext,
    at: DateTime<Utc>,
) -> RiskAssessment {
    let mut factors = Vec::new();
    let mut add = |name: &str, points: u8, reason: String| {
        if points > 0 {
            factors.push(Factor {
                name: name.to_owned(),
                points,
                reason,
            });
        }
    };
    add(
        "sensitivity",
        sensitivity_points(resource.sensitivity),
        format!("resource sensitivity is {}", resource.sensitivity.label()),
    );
    add(
        "environment",
        environment_points(resource.environment),
        format!("resource is in {}", resource.environment.label()),
    );
    if resource.privileged {
        add("privileged", 20, "resource grants privileged access".into());
    }
    if resource.escalation_reason.is_some() {
        add("escalation", 20, "grant can escalate privileges".into());
    }
    let max = catalog.tunables().max_duration.seconds().max(1);
    let duration_points = ((duration.seconds().min(max) * 10 + max / 2) / max) as u8;
    add(
        "duration",
        duration_points,
        format!(
            "{duration} requested of at most {}",
            catalog.tunables().max_duration
        ),
    );
    match ctx.employment {
        EmploymentType::Employee => {}
        EmploymentType::Contractor => add("employment", 10, "requester is a contractor".into()),
        EmploymentType::Vendor => add("employment", 15, "requester is a vendor".into()),
    }
    if ctx.first_time {
        add(
            "first_time",
            5,
            "first time this requester asks for this resource".into(),
        );
    }
    if is_off_hours(catalog, at) {
        add("off_hours", 5, "requested outside business hours".into());
    }
    if ctx.recent_denials > 0 {
        let points = (ctx.recent_denials.min(2) * 5) as u8;
        add(
            "recent_denials",
            points,
            format!(
                "{} request(s) denied in the last 30 days",
                ctx.recent_denials
            ),
        );
    }
    if ctx.open_break_glass {
        add(
            "open_break_glass",
            10,
            "requester holds an unjustified break-glass grant".into(),
        );
    }
    let total: u32 = factors.iter().map(|f| u32::from(f.points)).sum();
    let score = total.min(100) as u8;
    let thresholds = catalog.thresholds();
    let level = if score >= thresholds.high {
        RiskLevel::High
    } else if score >= thresholds.medium {
        RiskLevel::Medium
    } else {
        RiskLevel::Low
    };
    RiskAssessment {
        score,
        level,
        factors,
    }
}

/// Chooses who must approve (see the module table).
pub fn route(
    catalog: &Catalog,
    resource: &Resource,
    duration: Span,
    employment: EmploymentType,
    risk: &RiskAssessment,
) -> RouteDecision {
    let dual = || Route::Dual {
        groups: resource.dual_approval_groups.clone(),
    };
    let (route, reason) = if resource.privileged {
        (
            dual(),
            "privileged resource: dual approval required".to_owned(),
        )
    } else if resource.environment == Environment::Production {
        (
            dual(),
            "production resource: dual approval required".to_owned(),
        )
    } else if let Some(reason) = &resource.escalation_reason {
        (
            dual(),
            format!("grant can escalate privileges ({reason}): dual approval required"),
        )
    } else if risk.level == RiskLevel::High {
        (
            dual(),
            format!("high risk score {}: dual approval required", risk.score),
        )
    } else if risk.level == RiskLevel::Low
        && duration <= catalog.tunables().auto_approve_max_duration
        && employment != EmploymentType::Vendor
    {
        (
            Route::AutoApprove,
            format!(
                "low risk score {} and at most {}: approved automatically",
                risk.score,
                catalog.tunables().auto_approve_max_duration
            ),
        )
    } else {
        let why = if risk.level == RiskLevel::Medium {
            format!("medium risk score {}", risk.score)
        } else if employment == EmploymentType::Vendor {
            "vendor requests are never auto-approved".to_owned()
        } else {
            format!(
                "longer than the {} auto-approve limit",
                catalog.tunables().auto_approve_max_duration
            )
        };
        (
            Route::Owner {
                group: resource.owner_group.clone(),
            },
            format!("{why}: resource owner approves"),
        )
    };
    RouteDecision { route, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{catalog, monday_at};

    fn ctx(employment: EmploymentType) -> RequesterContext {
        RequesterContext {
            employment,
            first_time: false,
            recent_denials: 0,
            open_break_glass: false,
        }
    }

    fn span(text: &str) -> Span {
        text.parse().unwrap()
    }

    #[test]
    fn short_low_sensitivity_request_is_auto_approved() {
        let c = catalog();
        let res = c.resource("billing-reports-read").unwrap();
        let risk = assess(
            &c,
            res,
            span("30m"),
            &ctx(EmploymentType::Employee),
            monday_at(10),
        );
        assert_eq!(risk.level, RiskLevel::Low);
        let decision = route(&c, res, span("30m"), EmploymentType::Employee, &risk);
        assert_eq!(decision.route, Route::AutoApprove);
        assert!(decision.reason.contains("approved automatically"));
    }

    #[test]
    fn longer_request_goes_to_owner() {
        let c = catalog();
        let res = c.resource("staging-logs-read").unwrap();
        let risk = assess(
            &c,
            res,
            span("4h"),
            &ctx(EmploymentType::Employee),
            monday_at(10),
        );
        let decision = route(&c, res, span("4h"), EmploymentType::Employee, &risk);
        assert_eq!(
            decision.route,
            Route::Owner {
                group: "platform-owners".into()
            }
        );
    }

    #[test]
    fn an_escalating_grant_needs_two_groups_even_when_the_score_is_low() {
        let text = include_str!("../../../../infra/policy/catalog.yaml").replacen(
            "            - s3:GetObject\n            - s3:ListBucket\n",
            "            - s3:GetObject\n            - iam:PassRole\n",
            1,
        );
        let text = text.replacen(
            "    max_duration: 8h\n    grant:",
            "    max_duration: 8h\n    allows_escalation:\n      reason: \"passes the report role to Glue\"\n    grant:",
            1,
        );
        let c = Catalog::parse(&text, "t.yaml").unwrap();
        let res = c.resource("billing-reports-read").unwrap();
        let risk = assess(
            &c,
            res,
            span("30m"),
            &ctx(EmploymentType::Employee),
            monday_at(10),
        );
        assert!(
            risk.factors.iter().any(|f| f.name == "escalation"),
            "{risk:?}"
        );
        let decision = route(&c, res, span("30m"), EmploymentType::Employee, &risk);
        assert!(matches!(decision.route, Route::Dual { .. }), "{decision:?}");
        assert!(
            decision.reason.contains("passes the report role to Glue"),
            "{decision:?}"
        );
    }

    #[test]
    fn privileged_production_needs_two_groups() {
        let c = catalog();
        let res = c.resource("prod-db-admin").unwrap();
        let risk = assess(
            &c,
            res,
            span("2h"),
            &ctx(EmploymentType::Employee),
            monday_at(10),
        );
        assert_eq!(risk.level, RiskLevel::High);
        let decision = route(&c, res, span("2h"), EmploymentType::Employee, &risk);
        assert_eq!(
            decision.route,
            Route::Dual {
                groups: vec!["managers".into(), "security".into()]
            }
        );
        assert_eq!(decision.route.slots().len(), 2);
    }

    #[test]
    fn every_factor_is_explained_and_sums_to_the_score() {
        let c = catalog();
        let res = c.resource("staging-logs-read").unwrap();
        let context = RequesterContext {
            employment: EmploymentType::Contractor,
            first_time: true,
            recent_denials: 1,
            open_break_glass: true,
        };
        let risk = assess(&c, res, span("8h"), &context, monday_at(22));
        let names: Vec<_> = risk.factors.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "sensitivity",
                "environment",
                "duration",
                "employment",
                "first_time",
                "off_hours",
                "recent_denials",
                "open_break_glass"
            ]
        );
        let sum: u32 = risk.factors.iter().map(|f| u32::from(f.points)).sum();
        assert_eq!(u32::from(risk.score), sum);
        assert!(risk.factors.iter().all(|f| !f.reason.is_empty()));
        assert_eq!(risk.level, RiskLevel::High);
    }

    #[test]
    fn vendors_are_never_auto_approved() {
        let c = catalog();
        let res = c.resource("billing-reports-read").unwrap();
        let risk = assess(
            &c,
            res,
            span("15m"),
            &ctx(EmploymentType::Vendor),
            monday_at(10),
        );
        let decision = route(&c, res, span("15m"), EmploymentType::Vendor, &risk);
        assert!(
            matches!(decision.route, Route::Owner { .. }),
            "{decision:?}"
        );
    }

    #[test]
    fn weekends_are_off_hours() {
        let c = catalog();
        let saturday = monday_at(10) + chrono::TimeDelta::days(5);
        assert!(is_off_hours(&c, saturday));
        assert!(!is_off_hours(&c, monday_at(10)));
        assert!(is_off_hours(&c, monday_at(6)));
        assert!(is_off_hours(&c, monday_at(19)));
    }
}
