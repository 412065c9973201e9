//! Fixtures shared by the core's tests and the integration tests: the shipped
//! catalog, people with groups, fixed instants.

use chrono::{DateTime, TimeZone, Utc};

use crate::access::risk::RequesterContext;
use crate::identity::{EmploymentType, Principal, PrincipalId};
use crate::policy::Catalog;

/// The catalog shipped in `infra/policy/catalog.yaml`.
pub const CATALOG_YAML: &str = include_str!("../../../infra/policy/catalog.yaml");

/// The shipped catalog, parsed.
pub fn catalog() -> Catalog {
    Catalog::parse(CATALOG_YAML, "infra/policy/catalog.yaml").expect("shipped catalog is valid")
}

/// The shipped catalog with `billing-reports-read` granting `sts:AssumeRole` on
/// `role_arn` (declared as escalating).
pub fn catalog_assuming_role(role_arn: &str) -> Catalog {
    let old = "          actions:\n            - s3:GetObject\n            - s3:ListBucket\n          resources:\n            - arn:aws:s3:::lapse-billing-reports\n            - arn:aws:s3:::lapse-billing-reports/*";
    let text = CATALOG_YAML
        .replacen(
            old,
            &format!("          actions:\n            - sts:AssumeRole\n          resources:\n            - {role_arn}"),
            1,
        )
        .replacen(
            "    max_duration: 8h\n    grant:",
            "    max_duration: 8h\n    allows_escalation:\n      reason: reporting runs as its own role\n    grant:",
            1,
        );
    Catalog::parse(&text, "catalog-assuming-role.yaml").expect("fixture catalog is valid")
}

/// Monday 2026-11-23 at `hour`:00 UTC.
pub fn monday_at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, hour, 0, 0)
        .single()
        .expect("valid fixture instant")
}

/// An authenticated employee with these groups.
pub fn person(id: &str, groups: &[&str]) -> Principal {
    Principal::authenticated(
        PrincipalId::new(id).expect("fixture id is valid"),
        groups.iter().map(|g| (*g).to_owned()),
        EmploymentType::Employee,
    )
}

/// An employee with a clean history.
pub fn employee_context() -> RequesterContext {
    RequesterContext {
        employment: EmploymentType::Employee,
        first_time: false,
        recent_denials: 0,
        open_break_glass: false,
    }
}

/// Runs a future that never suspends (the in-memory ports) to completion.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("an in-memory future suspended"),
    }
}
