use super::*;
use crate::revocation::case::TriggerSource;
use crate::revocation::hr::HrEvent;
use crate::testing::{catalog, monday_at};
use chrono::TimeDelta;

fn sample(name: &str) -> HrEvent {
    let path = format!(
        "{}/../../events/hr-webhook/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    HrEvent::parse(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn each_hr_event_type_opens_the_right_case() {
    let c = catalog();
    let now = monday_at(10);
    let case = |name: &str| case_for(&sample(name), &c, now);
    let terminated = case("termination-body.json").unwrap();
    assert_eq!(
        (terminated.kind().clone(), terminated.effective_at()),
        (RevocationKind::Full, now)
    );
    assert_eq!(terminated.trigger().manager.as_deref(), Some("msmith"));
    let moved = case("role-change-body.json").unwrap();
    assert_eq!(
        moved.kind(),
        &RevocationKind::Partial {
            new_role: "analyst".into()
        }
    );
    assert_eq!(
        moved.effective_at() - now,
        TimeDelta::hours(4),
        "role-change transition period"
    );
    assert_eq!(
        case("suspension-body.json").unwrap().kind(),
        &RevocationKind::Suspend
    );
    let violation = case("policy-violation-body.json").unwrap();
    assert_eq!(
        (violation.kind().clone(), violation.trigger().source),
        (RevocationKind::Suspend, TriggerSource::Violation)
    );
    assert_eq!(violation.effective_at(), now, "immediate");
    let contract = case("contract-end-body.json").unwrap();
    assert_eq!(
        contract.effective_at().date_naive().to_string(),
        "2026-11-30"
    );
    assert!(case("hire-body.json").is_none(), "hires revoke nothing");
    // The same event always names the same case.
    assert_eq!(case("termination-body.json").unwrap().id(), terminated.id());
}

#[test]
fn inactivity_is_read_from_the_credential_report() {
    let report = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated
<root_account>,arn:aws:iam::123456789012:root,2020-01-01T00:00:00+00:00,not_supported,2020-01-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
idle,arn:aws:iam::123456789012:user/idle,2026-01-01T00:00:00+00:00,true,2026-06-01T00:00:00+00:00,N/A,N/A,false,true,N/A,2026-07-01T00:00:00+00:00,us-east-1,s3,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
busy,arn:aws:iam::123456789012:user/busy,2026-01-01T00:00:00+00:00,true,2026-06-01T00:00:00+00:00,N/A,N/A,false,true,N/A,2026-11-20T00:00:00+00:00,us-east-1,s3,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
never,arn:aws:iam::123456789012:user/never,2026-11-01T00:00:00+00:00,false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A";
    let inactive = inactive_users(report, TimeDelta::days(90), monday_at(10));
    assert_eq!(
        inactive.iter().map(PrincipalId::as_str).collect::<Vec<_>>(),
        ["idle"]
    );
}
