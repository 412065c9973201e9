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

mod over_fakes {
    //! The revocation use cases over the in-memory fakes of every port.

    use super::*;
    use crate::audit::AuditSigner;
    use crate::ports::AuditLog;
    use crate::revocation::case::{CaseStatus, RevocationCase, Trigger, TriggerSource};
    use crate::revocation::memory::{MemoryBus, MemoryClaims, MemoryRevocations};
    use crate::revocation::plan::{
        Credential, Lane, RevocationKind, SESSION_DENY_POLICY, TrustingRole,
    };
    use crate::revocation::ports::{CaseStore, Claim, UserControls};
    use crate::testing::block_on;

    fn ports() -> MemoryRevocations {
        MemoryRevocations::new(
            catalog(),
            AuditSigner::from_seed_hex("k", &"45".repeat(32)).unwrap(),
            monday_at(10),
        )
    }

    fn credential(id: &str) -> Credential {
        Credential {
            id: id.into(),
            active: true,
        }
    }

    /// A managed person holding one of everything.
    fn person(p: &MemoryRevocations, name: &str) -> PrincipalId {
        let user = PrincipalId::new(name).unwrap();
        let mut s = IdentitySnapshot::absent(user.clone(), monday_at(9));
        s.exists = true;
        s.managed = true;
        s.login_profile = true;
        s.access_keys = vec![credential("AKIA1"), credential("AKIA2")];
        s.ssh_keys = vec![credential("APKA1")];
        s.signing_certificates = vec![credential("CERT1")];
        s.mfa_devices = vec!["arn:aws:iam::1:mfa/jdoe".into()];
        s.trusting_roles = vec![TrustingRole {
            name: "deploy".into(),
            managed: true,
            session_deny: None,
        }];
        s.groups.insert("engineers".into());
        s.inline_policies.insert(
            "team-read".into(),
            serde_json::json!({"Version": "2012-10-17"}),
        );
        s.attached_policies
            .insert("arn:aws:iam::aws:policy/ReadOnlyAccess".into());
        p.directory.put_user(s);
        user
    }

    fn termination(p: &MemoryRevocations, user: &PrincipalId, event: &str) -> RevocationCase {
        let case = RevocationCase::new(
            user.clone(),
            RevocationKind::Full,
            Trigger {
                source: TriggerSource::Hr,
                event_id: event.into(),
                event_type: None,
                reason: "terminated".into(),
                executor: "hr-webhook".into(),
                manager: Some("msmith".into()),
            },
            monday_at(10),
            false,
            monday_at(10),
        );
        block_on(open(p, case, monday_at(10))).unwrap()
    }

    fn actions(p: &MemoryRevocations, user: &PrincipalId) -> Vec<String> {
        block_on(p.log.chain(&format!("user#{user}")))
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect()
    }

    /// Issue 21, item 22: a shared role keeps one deny for everyone Lapse revoked,
    /// a restore takes only its person out, and someone the trust policy no
    /// longer names leaves the deny once their sessions have long expired.
    #[test]
    fn a_shared_role_keeps_one_deny_that_is_pruned_as_people_leave_it() {
        use crate::access::role_denies::{ROLE_DENY_POLICY, RoleDenies};
        let p = ports();
        let people: Vec<PrincipalId> = ["ann", "ben", "cid"]
            .iter()
            .map(|name| person(&p, name))
            .collect();
        let denies = || {
            let role = p.directory.role("deploy").unwrap();
            assert_eq!(
                role.policies.keys().collect::<Vec<_>>(),
                [ROLE_DENY_POLICY],
                "one deny on the role, not one per person"
            );
            RoleDenies::parse(&role.policies[ROLE_DENY_POLICY]).expect("exactly Lapse's")
        };
        for (i, user) in people.iter().take(2).enumerate() {
            let case = termination(&p, user, &format!("evt-shared-{i}"));
            let done = block_on(run(&p, case.id(), monday_at(10))).unwrap();
            assert_eq!(done.status(), CaseStatus::Verified, "{:?}", done.residue());
        }
        assert!(denies().denies_all_of(&people[0]) && denies().denies_all_of(&people[1]));

        block_on(restore(
            &p,
            &people[1],
            monday_at(11),
            "CHG-22",
            "operator:arn:aws:iam::1:user/ops",
            monday_at(11),
        ))
        .unwrap();
        assert!(denies().denies_all_of(&people[0]) && !denies().denies_all_of(&people[1]));

        // ann leaves the role's trust; a week on, cid's termination writes the deny
        // again and ann, whose sessions expired long ago, is pruned from it.
        crate::memory::lock(&p.directory.users)
            .get_mut(&people[0])
            .unwrap()
            .trusting_roles
            .clear();
        let week_on = monday_at(10) + chrono::TimeDelta::days(7);
        let case = termination(&p, &people[2], "evt-shared-2");
        let done = block_on(run(&p, case.id(), week_on)).unwrap();
        assert_eq!(done.status(), CaseStatus::Verified, "{:?}", done.residue());
        assert_eq!(
            denies().people(),
            std::collections::BTreeSet::from(["cid"]),
            "ann left the trust and was pruned; ben was restored"
        );
    }

    #[test]
    fn a_termination_takes_everything_and_is_verified_once() {
        let p = ports();
        let user = person(&p, "jdoe");
        let case = termination(&p, &user, "evt-1");
        assert_eq!(
            termination(&p, &user, "evt-1").id(),
            case.id(),
            "a duplicated event opens the same case"
        );
        let done = block_on(run(&p, case.id(), monday_at(10))).unwrap();
        assert_eq!(done.status(), CaseStatus::Verified, "{:?}", done.residue());
        let now = p.directory.user(&user).unwrap();
        assert!(!now.login_profile);
        assert!(
            now.access_keys
                .iter()
                .chain(&now.ssh_keys)
                .chain(&now.signing_certificates)
                .all(|c| !c.active)
        );
        assert!(
            now.mfa_devices.is_empty() && now.groups.is_empty() && now.attached_policies.is_empty()
        );
        assert_eq!(
            now.inline_policies.keys().collect::<Vec<_>>(),
            [SESSION_DENY_POLICY],
            "only the session deny is left"
        );
        assert!(now.trusting_roles[0].session_deny.is_some());
        assert_eq!(
            block_on(p.controls.controls(&user))
                .unwrap()
                .revoked_by
                .as_deref(),
            Some(case.id().as_str())
        );
        // Run again (a re-driven workflow): nothing more happens, nothing is audited twice.
        let again = block_on(run(&p, case.id(), monday_at(11))).unwrap();
        assert_eq!(again.status(), CaseStatus::Verified);
        let trail = actions(&p, &user);
        for action in [
            "revocation.received",
            "revocation.applied",
            "revocation.verified",
        ] {
            assert_eq!(
                trail.iter().filter(|a| *a == action).count(),
                1,
                "{action}: {trail:?}"
            );
        }
        let told: Vec<_> = p.notifier.sent().into_iter().map(|n| n.audience).collect();
        assert_eq!(told.len(), 2, "security and the manager: {told:?}");
    }

    #[test]
    fn a_reverification_reads_iam_again_and_alerts_on_access_behind_a_verified_case() {
        let p = ports();
        let user = person(&p, "rehired");
        let case = termination(&p, &user, "evt-reverify");
        let done = block_on(run(&p, case.id(), monday_at(10))).unwrap();
        assert_eq!(done.status(), CaseStatus::Verified);
        let op = "operator:arn:aws:iam::123456789012:user/ops";

        let clean = block_on(reverify(&p, case.id(), op, monday_at(11))).unwrap();
        assert_eq!(clean.found, Reverified::Verified);
        let alerts_before = p.notifier.sent().len();

        // Someone re-grants access behind the finished revocation.
        let mut s = p.directory.user(&user).unwrap();
        s.login_profile = true;
        s.access_keys.push(credential("AKIANEW"));
        s.attached_policies
            .insert("arn:aws:iam::aws:policy/AdministratorAccess".into());
        s.inline_policies.insert(
            "lapse-backdoor2".into(),
            serde_json::json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
        );
        p.directory.put_user(s);
        let found = block_on(reverify(&p, case.id(), op, monday_at(12))).unwrap();
        let Reverified::Residue { residue } = &found.found else {
            panic!("re-granted access reported as {:?}", found.found);
        };
        for held in [
            "console login",
            "AKIANEW",
            "AdministratorAccess",
            "lapse-backdoor2",
        ] {
            assert!(
                residue.iter().any(|r| r.contains(held)),
                "{held} missing from {residue:?}"
            );
        }
        assert_eq!(
            found.case.status(),
            CaseStatus::Verified,
            "the verdict reached at the time stands"
        );
        let alerts = p.notifier.sent();
        assert_eq!(alerts.len(), alerts_before + 1, "security is alerted once");
        assert!(alerts.last().unwrap().body.contains("lapse-backdoor2"));
        let events = block_on(p.log.chain(&format!("user#{user}"))).unwrap();
        let failed: Vec<_> = events
            .iter()
            .filter(|e| e.action == "revocation.reverification_failed")
            .collect();
        assert_eq!(failed.len(), 1, "{:?}", actions(&p, &user));
        assert_eq!(failed[0].actor, op, "the operator who asked is the actor");

        // A user IAM never had: said so, not "verified".
        let ghost = PrincipalId::new("ghost").unwrap();
        let never = termination(&p, &ghost, "evt-ghost");
        let done = block_on(run(&p, never.id(), monday_at(10))).unwrap();
        assert_eq!(done.status(), CaseStatus::NothingToRevoke);
        let again = block_on(reverify(&p, never.id(), op, monday_at(11))).unwrap();
        assert_eq!(again.found, Reverified::NoSuchUser);
    }

    #[test]
    fn a_case_not_yet_applied_has_nothing_to_reverify() {
        let p = ports();
        let user = person(&p, "later");
        let case = termination(&p, &user, "evt-later");
        let err = block_on(reverify(&p, case.id(), "ops", monday_at(10))).unwrap_err();
        assert!(err.to_string().contains("no before-state yet"), "{err}");
        let stored = block_on(p.cases.get(case.id().as_str())).unwrap().unwrap();
        assert_eq!(stored.status(), CaseStatus::Received, "left as it was");
    }

    #[test]
    fn a_termination_denies_the_sessions_of_every_role_the_persons_grants_could_assume() {
        use crate::access::request::{AccessRequest, NewRequest, Verdict};
        use crate::ports::RequestStore;
        let role = "arn:aws:iam::123456789012:role/reporting";
        let catalog = crate::testing::catalog_assuming_role(role);
        let p = MemoryRevocations::new(
            catalog.clone(),
            AuditSigner::from_seed_hex("k", &"45".repeat(32)).unwrap(),
            monday_at(10),
        );
        let user = person(&p, "quinn");
        // The role's trust policy does not name quinn: only the grant says she
        // could assume it (a grant that ended an hour ago: its session may live on).
        p.directory.add_role("reporting", true);
        let mut grant = AccessRequest::submit(
            NewRequest {
                resource: "billing-reports-read".into(),
                duration: Some("1h".parse().unwrap()),
                justification: "month end".into(),
                ticket: None,
            },
            &crate::testing::person("quinn", &[]),
            crate::testing::employee_context(),
            &catalog,
            monday_at(7),
        )
        .unwrap();
        for (who, group) in [("mia", "managers"), ("sam", "security")] {
            grant
                .decide(
                    &crate::testing::person(who, &[group]),
                    Verdict::Approve,
                    "ok",
                    monday_at(7),
                )
                .unwrap();
        }
        grant
            .activate(
                crate::access::ledger::Artifact::InlinePolicy {
                    name: "lapse-billing-reports-read-x".into(),
                },
                monday_at(8),
            )
            .unwrap();
        grant
            .mark_revoked(crate::access::request::RevokeCause::Expiry, monday_at(9))
            .unwrap();
        block_on(p.requests.create(&mut grant)).unwrap();

        let case = termination(&p, &user, "evt-roles");
        let done = block_on(run(&p, case.id(), monday_at(10))).unwrap();
        assert_eq!(done.status(), CaseStatus::Verified, "{:?}", done.residue());
        assert!(
            crate::access::role_denies::RoleDenies::document_denies_all_of(
                p.directory
                    .role("reporting")
                    .unwrap()
                    .policies
                    .get(crate::access::role_denies::ROLE_DENY_POLICY),
                &user
            ),
            "every session of quinn's on the role is denied"
        );
        assert!(
            done.applied().iter().any(|a| matches!(
                &a.action,
                crate::revocation::plan::Action::DenyRoleSessions { role, .. } if role == "reporting"
            )),
            "{:?}",
            done.applied()
        );

        // Verification reads the role again: the deny taken away is residue.
        crate::memory::lock(&p.directory.roles)
            .get_mut("reporting")
            .unwrap()
            .policies
            .clear();
        let found = block_on(reverify(&p, case.id(), "ops", monday_at(11))).unwrap();
        assert!(
            matches!(&found.found, Reverified::Residue { residue } if residue.iter().any(|r| r.contains("reporting"))),
            "{found:?}"
        );
    }

    /// An approved, active request of `who`'s, stored.
    fn live_request(
        p: &MemoryRevocations,
        mut request: crate::access::request::AccessRequest,
    ) -> crate::access::request::AccessRequest {
        use crate::ports::RequestStore;
        for (who, group) in [("mia", "managers"), ("sam", "security")] {
            request
                .decide(
                    &crate::testing::person(who, &[group]),
                    crate::access::request::Verdict::Approve,
                    "ok",
                    monday_at(8),
                )
                .unwrap();
        }
        request
            .activate(
                crate::access::ledger::Artifact::InlinePolicy {
                    name: format!("lapse-{}-{}", request.resource(), request.id()),
                },
                monday_at(9),
            )
            .unwrap();
        block_on(p.requests.create(&mut request)).unwrap();
        request
    }

    #[test]
    fn a_termination_kills_a_checked_out_credential_and_the_vendors_the_person_sponsored() {
        use crate::access::request::{AccessRequest, NewRequest, Status};
        use crate::ports::{Leases, RequestStore};
        let p = ports();
        let user = person(&p, "quinn");
        let quinn = crate::testing::person("quinn", &[]);
        let ask = |resource: &str| NewRequest {
            resource: resource.into(),
            duration: Some("2h".parse().unwrap()),
            justification: "month end".into(),
            ticket: Some("CHG-1".into()),
        };
        // quinn holds a checked-out credential...
        let checkout = live_request(
            &p,
            AccessRequest::submit(
                ask("prod-db-root-credential"),
                &quinn,
                crate::testing::employee_context(),
                &p.catalog,
                monday_at(8),
            )
            .unwrap(),
        );
        let secret = checkout.checkout().unwrap().to_owned();
        let rotation = p
            .catalog
            .resource("prod-db-root-credential")
            .and_then(|r| r.checkout.clone())
            .map(|c| c.rotation_function)
            .unwrap_or_default();
        p.vault.add(&secret, "v1", Some(&rotation));
        block_on(p.leases.acquire(&crate::ports::Lease {
            secret_arn: secret.clone(),
            request_id: checkout.id().clone(),
            holder: user.clone(),
            version_id: "v1".into(),
            at: monday_at(9),
            rotation_function: rotation,
        }))
        .unwrap();
        // ...and sponsors a vendor, whose user has a console password and a key.
        let vendor = live_request(
            &p,
            AccessRequest::vendor(
                ask("staging-logs-read"),
                &crate::access::vendor::VendorAsk {
                    id: "acme".into(),
                    email: "ops@acme.example".into(),
                },
                &quinn,
                crate::testing::employee_context(),
                &p.catalog,
                monday_at(8),
            )
            .unwrap(),
        );
        let vendor_user = vendor.vendor_of().unwrap().user().clone();
        let mut v = IdentitySnapshot::absent(vendor_user.clone(), monday_at(9));
        v.exists = true;
        v.managed = true;
        v.login_profile = true;
        v.access_keys = vec![credential("AKIAV")];
        p.directory.put_user(v);

        let case = termination(&p, &user, "evt-custody");
        let done = block_on(run(&p, case.id(), monday_at(10))).unwrap();
        assert_eq!(done.status(), CaseStatus::Verified, "{:?}", done.residue());

        // The checked-out value died when the grant ended (quinn could still read
        // the secret until the grant was verified revoked); once it was, the
        // credential was checked in: rotated again, the lease released.
        assert_eq!(
            p.vault.versions(&secret),
            [
                "v1".to_owned(),
                crate::access::usecase::checkout::contained_version(checkout.id()),
                crate::access::usecase::checkout::rotated_version(checkout.id()),
            ]
        );
        assert_eq!(
            block_on(p.requests.get(checkout.id()))
                .unwrap()
                .unwrap()
                .status(),
            Status::Verified
        );
        assert!(block_on(p.leases.get(&secret)).unwrap().is_none());
        // The vendor's user has nothing left to sign in with.
        let left = p.directory.user(&vendor_user).unwrap();
        assert!(!left.login_profile, "{left:?}");
        assert!(left.access_keys.iter().all(|c| !c.active), "{left:?}");
        for (request, action) in [
            (&checkout, "credential.rotated"),
            (&vendor, "vendor.contained"),
        ] {
            let chain = block_on(
                p.log
                    .chain(&crate::access::usecase::request_chain(request.id())),
            )
            .unwrap();
            assert!(
                chain.iter().any(|e| e.action == action),
                "{action}: {:?}",
                chain.iter().map(|e| &e.action).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn a_trigger_id_reused_for_someone_else_opens_their_own_case() {
        let p = ports();
        let first = person(&p, "jdoe");
        let second = person(&p, "asmith");
        let done = block_on(run(
            &p,
            termination(&p, &first, "evt-reused").id(),
            monday_at(10),
        ))
        .unwrap();
        assert_eq!(done.status(), CaseStatus::Verified);
        let theirs = termination(&p, &second, "evt-reused");
        assert_ne!(theirs.id(), done.id(), "not jdoe's verified case");
        assert_eq!(theirs.status(), CaseStatus::Received);
        let ran = block_on(run(&p, theirs.id(), monday_at(10))).unwrap();
        assert_eq!(ran.status(), CaseStatus::Verified);
        assert!(!p.directory.user(&second).unwrap().login_profile);

        // A stored case under the same id but about someone else is a conflict,
        // never taken for a retry.
        let mut forged = serde_json::to_value(&done).unwrap();
        forged["user"] = "mallory".into();
        let forged: RevocationCase = serde_json::from_value(forged).unwrap();
        let err = block_on(open(&p, forged, monday_at(11))).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::InvalidState, "{err}");
        assert!(
            err.to_string().contains("for another person or kind"),
            "{err}"
        );
    }

    #[test]
    fn an_inactive_user_lapse_may_not_read_is_skipped_not_a_failed_run() {
        let p = ports();
        let idle = person(&p, "idle");
        let outside = PrincipalId::new("outside").unwrap();
        p.directory.refuse_reads_of(&outside);
        let header = "user,arn,user_creation_time,password_enabled,password_last_used,access_key_1_last_used_date,access_key_2_last_used_date";
        let row = |u: &str| {
            format!(
                "{u},arn:aws:iam::1:user/{u},2026-01-01T00:00:00+00:00,true,2026-06-01T00:00:00+00:00,N/A,N/A"
            )
        };
        // The unreadable user comes first: it used to stop the run there.
        let report = [header.to_owned(), row("outside"), row("idle")].join("\n");
        let (cases, skipped) = block_on(suspend_inactive(&p, &report, monday_at(10))).unwrap();
        assert_eq!(
            cases.iter().map(|c| c.user().clone()).collect::<Vec<_>>(),
            [idle]
        );
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert_eq!(skipped[0].user, outside);
        assert!(skipped[0].reason.contains("may not read"), "{skipped:?}");
    }

    #[test]
    fn a_key_made_between_the_snapshot_and_the_lane_is_closed_before_the_verdict() {
        let p = ports();
        let user = person(&p, "lateky");
        let case = termination(&p, &user, "evt-late-key");
        let now = monday_at(10);
        block_on(snapshot(&p, case.id(), now)).unwrap();
        // A key made after the snapshot: the lanes plan from the snapshot.
        let mut s = p.directory.user(&user).unwrap();
        s.access_keys.push(credential("AKIALATE"));
        p.directory.put_user(s);
        let mut applied = Vec::new();
        for lane in [Lane::Credentials, Lane::Permissions, Lane::Grants] {
            applied.extend(block_on(apply_lane(&p, case.id(), lane, now)).unwrap());
        }
        block_on(record(&p, case.id(), applied, now)).unwrap();
        let done = block_on(verify_case(&p, case.id(), now)).unwrap();
        assert_eq!(done.status(), CaseStatus::Verified, "{:?}", done.residue());
        let key = p
            .directory
            .user(&user)
            .unwrap()
            .access_keys
            .into_iter()
            .find(|k| k.id == "AKIALATE")
            .unwrap();
        assert!(!key.active, "the late key is deactivated");
        assert!(
            done.applied()
                .iter()
                .any(|a| a.action.to_string() == "deactivate access key AKIALATE"),
            "{:?}",
            done.applied()
        );
        assert!(
            actions(&p, &user).contains(&"revocation.late_credentials_closed".to_owned()),
            "{:?}",
            actions(&p, &user)
        );
    }

    #[test]
    fn a_residue_fails_verification_and_is_audited() {
        let p = ports();
        let user = person(&p, "ana");
        let case = termination(&p, &user, "evt-2");
        let id = case.id().clone();
        block_on(snapshot(&p, &id, monday_at(10))).unwrap();
        let mut applied = Vec::new();
        for lane in [Lane::Credentials, Lane::Permissions, Lane::Grants] {
            applied.extend(block_on(apply_lane(&p, &id, lane, monday_at(10))).unwrap());
        }
        block_on(record(&p, &id, applied, monday_at(10))).unwrap();
        // Someone puts the person back in a group behind Lapse's back.
        block_on(crate::ports::AccessProvisioner::add_to_group(
            &p.directory,
            &user,
            "admins",
        ))
        .unwrap();
        let err = block_on(verify_case(&p, &id, monday_at(10))).unwrap_err();
        assert!(matches!(err, Error::VerificationFailed { .. }), "{err}");
        let failed = block_on(p.cases.get(&id)).unwrap().unwrap();
        assert_eq!(failed.status(), CaseStatus::Failed);
        assert!(
            failed.residue().iter().any(|r| r.contains("admins")),
            "{:?}",
            failed.residue()
        );
        assert!(actions(&p, &user).contains(&"revocation.verification_failed".to_owned()));
        // Once it is taken out again, the case verifies.
        block_on(crate::ports::AccessProvisioner::remove_from_group(
            &p.directory,
            &user,
            "admins",
        ))
        .unwrap();
        let verified = block_on(verify_case(&p, &id, monday_at(11))).unwrap();
        assert_eq!(verified.status(), CaseStatus::Verified);
    }

    #[test]
    fn an_override_holds_a_case_until_it_is_cleared() {
        let p = ports();
        let user = person(&p, "held");
        let case = termination(&p, &user, "evt-3");
        let set = |reason: Option<&str>| {
            block_on(set_controls(
                &p,
                &user,
                |c| c.override_reason = reason.map(str::to_owned),
                "security lead",
                "operator:arn:aws:iam::1:user/ops",
                monday_at(10),
            ))
            .unwrap()
        };
        set(Some("INC-9"));
        let held = block_on(run(&p, case.id(), monday_at(10))).unwrap();
        assert_eq!(held.status(), CaseStatus::Held);
        assert!(
            p.directory.user(&user).unwrap().login_profile,
            "nothing touched"
        );
        // A termination held back is never silent: security is told, once.
        let validation = block_on(validate(&p, case.id(), monday_at(10))).unwrap();
        assert!(validation.held_closing, "{validation:?}");
        let told: Vec<_> = p
            .notifier
            .sent()
            .into_iter()
            .filter(|n| n.audience == crate::ports::Audience::Security)
            .collect();
        assert_eq!(told.len(), 1, "{told:?}");
        assert_eq!(told[0].subject, "Revocation held: full revocation of held");
        assert!(told[0].body.contains("INC-9"), "{}", told[0].body);
        set(None);
        let done = block_on(run(&p, case.id(), monday_at(11))).unwrap();
        assert_eq!(done.status(), CaseStatus::Verified);
        let trail = actions(&p, &user);
        assert!(
            trail.contains(&"revocation.held".to_owned())
                && trail.contains(&"revocation.resumed".to_owned())
        );
    }

    #[test]
    fn a_restore_or_an_override_needs_a_second_different_operator() {
        use crate::revocation::ports::ProposedChange;
        let p = ports();
        let user = person(&p, "twoperson");
        let (ana, ben) = (
            "operator:arn:aws:sts::1:assumed-role/Ops/ana",
            "operator:arn:aws:sts::1:assumed-role/Ops/ben",
        );
        let restore = ProposedChange::Restore {
            from_backup: monday_at(10),
            approval: "CHG-1".into(),
        };
        let call = |change: &ProposedChange, who: &str, at| {
            block_on(propose_or_confirm(&p, &user, change.clone(), who, at))
        };
        // Ana proposes: stored, security told, nothing else.
        let first = call(&restore, ana, monday_at(10)).unwrap();
        assert!(matches!(&first, SecondOperator::Proposed(w) if w.proposed_by == ana));
        let told = p.notifier.sent();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(
            told[0]
                .subject
                .starts_with("Proposed for twoperson: restore")
        );
        // Ana again: refused, the proposal still waits.
        let err = call(&restore, ana, monday_at(10) + TimeDelta::minutes(1)).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Forbidden);
        assert!(
            err.to_string().contains("a second, different operator"),
            "{err}"
        );
        // Ben asks for something else: that replaces it, and is itself a proposal.
        let other = ProposedChange::Restore {
            from_backup: monday_at(9),
            approval: "CHG-1".into(),
        };
        assert!(matches!(
            call(&other, ben, monday_at(11)).unwrap(),
            SecondOperator::Proposed(w) if w.replaces.as_deref().is_some_and(|r| r.contains(ana))
        ));
        // Ana confirms Ben's: consumed, so a third call proposes anew.
        assert!(matches!(
            call(&other, ana, monday_at(11)).unwrap(),
            SecondOperator::Confirmed(w) if w.proposed_by == ben
        ));
        assert!(
            block_on(p.controls.controls(&user))
                .unwrap()
                .proposal
                .is_none()
        );
        assert!(matches!(
            call(&other, ben, monday_at(12)).unwrap(),
            SecondOperator::Proposed(_)
        ));
        // A stale proposal confirms nothing.
        let hold = ProposedChange::Override {
            reason: "INC-9".into(),
        };
        call(&hold, ana, monday_at(12)).unwrap();
        assert!(matches!(
            call(&hold, ben, monday_at(12) + PROPOSAL_LIFETIME).unwrap(),
            SecondOperator::Proposed(w) if w.proposed_by == ben
        ));
        let trail = actions(&p, &user);
        assert_eq!(
            trail
                .iter()
                .filter(|a| *a == "revocation.change_confirmed")
                .count(),
            1,
            "{trail:?}"
        );
    }

    #[test]
    fn a_restore_puts_back_the_before_state_and_reopens_the_door() {
        let p = ports();
        let user = person(&p, "back");
        // A key the person had switched off themselves.
        let mut before = p.directory.user(&user).unwrap();
        before.access_keys.push(Credential {
            id: "AKIAOFF".into(),
            active: false,
        });
        p.directory.put_user(before);
        let case = termination(&p, &user, "evt-4");
        block_on(run(&p, case.id(), monday_at(10))).unwrap();
        let restored = block_on(restore(
            &p,
            &user,
            monday_at(11),
            "CHG-88",
            "operator:arn:aws:iam::1:user/ops",
            monday_at(11),
        ))
        .unwrap();
        assert!(!restored.restored.is_empty());
        assert_eq!(
            restored.left_out,
            ["access key AKIAOFF: stays inactive (it was inactive before the revocation)"],
            "what it left out, and why"
        );
        let now = p.directory.user(&user).unwrap();
        assert!(now.login_profile && now.groups.contains("engineers"));
        assert!(
            now.access_keys
                .iter()
                .all(|c| c.active == (c.id != "AKIAOFF"))
        );
        assert!(!now.inline_policies.contains_key(SESSION_DENY_POLICY));
        assert!(now.trusting_roles[0].session_deny.is_none());
        let controls = block_on(p.controls.controls(&user)).unwrap();
        assert_eq!(
            controls.revoked_by, None,
            "the person may ask for access again"
        );
        assert!(actions(&p, &user).contains(&"revocation.restored".to_owned()));
    }

    /// Issue 21, item 11 (the restore part): the archive table is writable by more
    /// roles than the one that takes snapshots. A before-state rewritten there (an
    /// administrator policy added), or one backed only by a snapshot event signed
    /// with another key, is refused: nothing goes back into IAM, and security is told.
    #[test]
    fn a_restore_puts_back_only_the_before_state_the_trail_signed() {
        use crate::revocation::ports::Archive;
        let p = ports();
        let user = person(&p, "tampered");
        let case = termination(&p, &user, "evt-forged-archive");
        block_on(run(&p, case.id(), monday_at(10))).unwrap();
        let mut forged = block_on(p.archive.snapshots(&user)).unwrap().remove(0);
        forged
            .attached_policies
            .insert("arn:aws:iam::aws:policy/AdministratorAccess".into());
        block_on(p.archive.store(&forged, None)).unwrap();
        let restore_now = || {
            block_on(restore(
                &p,
                &user,
                monday_at(11),
                "CHG-90",
                "operator:arn:aws:iam::1:user/ops",
                monday_at(11),
            ))
        };
        let err = restore_now().unwrap_err().to_string();
        assert!(
            err.contains("is not the one the revocation signed")
                && err.contains("no signed snapshot event"),
            "{err}"
        );
        let iam = p.directory.user(&user).unwrap();
        assert!(
            iam.attached_policies.is_empty(),
            "{:?}",
            iam.attached_policies
        );
        assert!(!iam.login_profile, "nothing was restored");
        let notices = p.notifier.sent();
        let notice = notices
            .iter()
            .find(|n| n.subject.starts_with("Restore refused"))
            .expect("security is told");
        assert_eq!(notice.audience, crate::ports::Audience::Security);
        assert!(!actions(&p, &user).contains(&"revocation.restored".to_owned()));

        // The forged state sealed into the chain as a snapshot event, with a key
        // that is not the trail's: the chain does not verify up to it.
        let other = AuditSigner::from_seed_hex("k", &"46".repeat(32)).unwrap();
        let forger = crate::access::usecase::AuditTrail {
            log: &p.log,
            signer: &other,
            policy_hash: p.catalog.hash(),
        };
        block_on(forger.record(crate::audit::AuditDraft {
            chain: format!("user#{user}"),
            key: "forged:snapshot".into(),
            actor: "hr-webhook".into(),
            action: "revocation.snapshot".into(),
            subject: user.to_string(),
            reason: "before-state archived".into(),
            before: serde_json::Value::Null,
            after: serde_json::json!({ "before_state": forged, "archived_until": null }),
            at: monday_at(10),
        }))
        .unwrap();
        let err = restore_now().unwrap_err().to_string();
        assert!(
            err.contains("does not verify up to its snapshot event"),
            "{err}"
        );
        assert!(
            p.directory
                .user(&user)
                .unwrap()
                .attached_policies
                .is_empty()
        );
    }

    #[test]
    fn a_not_yet_effective_case_is_postponed_and_a_started_one_is_not() {
        let p = ports();
        let user = person(&p, "later");
        let case = RevocationCase::new(
            user.clone(),
            RevocationKind::Full,
            Trigger {
                source: TriggerSource::Operator,
                event_id: "operator:later-1".into(),
                event_type: None,
                reason: "contract ends".into(),
                executor: "operator:x".into(),
                manager: None,
            },
            monday_at(10) + TimeDelta::days(3),
            false,
            monday_at(10),
        );
        let case = block_on(open(&p, case, monday_at(10))).unwrap();
        let moved = block_on(postpone(
            &p,
            &user,
            TimeDelta::days(2),
            "CHG-1",
            "operator:x",
            monday_at(10),
        ))
        .unwrap();
        assert_eq!(moved.len(), 1);
        assert_eq!(
            moved[0].effective_at(),
            case.effective_at() + TimeDelta::days(2)
        );
        let not_due = block_on(run(&p, case.id(), monday_at(11))).unwrap();
        assert_eq!(
            not_due.status(),
            CaseStatus::Received,
            "not effective yet: untouched"
        );
        assert!(p.directory.user(&user).unwrap().login_profile);
        let later = monday_at(10) + TimeDelta::days(6);
        let done = block_on(run(&p, case.id(), later)).unwrap();
        assert_eq!(done.status(), CaseStatus::Verified);
        let moved = block_on(postpone(
            &p,
            &user,
            TimeDelta::days(1),
            "CHG-2",
            "operator:x",
            later,
        ))
        .unwrap();
        assert!(moved.is_empty(), "a started case is not postponed");
    }

    #[test]
    fn the_webhook_claims_each_event_once_and_publishes_it_even_after_a_failure() {
        let (claims, bus) = (MemoryClaims::default(), MemoryBus::default());
        let event = sample("termination-body.json");
        let body = br#"{"the": "body"}"#;
        bus.fail_next();
        assert!(block_on(receive(&claims, &bus, &event, body, monday_at(10))).is_err());
        assert!(bus.published().is_empty());
        // The sender retries: the claim exists, the publish happens now.
        assert_eq!(
            block_on(receive(&claims, &bus, &event, body, monday_at(10))).unwrap(),
            Receipt::AlreadyAccepted
        );
        assert_eq!(
            block_on(receive(&claims, &bus, &event, body, monday_at(10))).unwrap(),
            Receipt::AlreadyAccepted
        );
        assert_eq!(bus.published().len(), 1, "published once");
        let other = block_on(receive(
            &claims,
            &bus,
            &event,
            b"another body",
            monday_at(10),
        ));
        assert_eq!(
            other.unwrap_err().kind(),
            crate::error::ErrorKind::InvalidState,
            "a different body under a seen id is refused for good"
        );
        assert_eq!(
            block_on(crate::revocation::ports::EventClaims::claim(
                &claims,
                "new",
                "h",
                "c",
                monday_at(10)
            ))
            .unwrap(),
            Claim::New
        );
    }

    #[test]
    fn only_an_event_the_webhook_claimed_opens_a_case() {
        use crate::revocation::memory::MemoryBus;
        let p = ports();
        let event = sample("termination-body.json");
        // Put on the bus by something other than the webhook: refused, security told.
        let err = block_on(ensure_claimed(&p, &event)).unwrap_err();
        assert!(
            err.to_string().contains("without the webhook's claim"),
            "{err}"
        );
        let told = p.notifier.sent();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(
            told[0].subject.starts_with("Refused an HR event"),
            "{told:?}"
        );
        // Accepted by the webhook: opens.
        block_on(receive(
            &p.claims,
            &MemoryBus::default(),
            &event,
            b"{}",
            monday_at(10),
        ))
        .unwrap();
        block_on(ensure_claimed(&p, &event)).unwrap();
        // The same id with other content (a forged copy of a real event): refused.
        let mut forged = event.clone();
        forged.user.username = PrincipalId::new("someone-else").unwrap();
        assert!(block_on(ensure_claimed(&p, &forged)).is_err());
    }

    #[test]
    fn revocation_errors_are_their_own_and_say_what_is_wrong() {
        use crate::error::ErrorKind;
        let p = ports();
        let user = person(&p, "errs");
        let unknown_role = RevocationCase::new(
            user.clone(),
            RevocationKind::Partial {
                new_role: "astronaut".into(),
            },
            Trigger {
                source: TriggerSource::Operator,
                event_id: "operator:errs-1".into(),
                event_type: None,
                reason: "moved".into(),
                executor: "operator:x".into(),
                manager: None,
            },
            monday_at(10),
            false,
            monday_at(10),
        );
        let err = block_on(open(&p, unknown_role, monday_at(10))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert!(
            err.to_string()
                .contains("role `astronaut` is not in the catalog"),
            "{err}"
        );
        let err = block_on(restore(
            &p,
            &user,
            monday_at(10),
            "  ",
            "operator:x",
            monday_at(10),
        ))
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert!(
            err.to_string().contains("approval reference is required"),
            "{err}"
        );
        let case = termination(&p, &user, "evt-errs");
        let err =
            block_on(apply_lane(&p, case.id(), Lane::Credentials, monday_at(10))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
        assert!(
            err.to_string().contains("snapshot step comes first"),
            "{err}"
        );
    }
}
