//! The use cases end to end over the in-memory ports.

use chrono::TimeDelta;

use super::decide::{Decision, decide};
use super::intake::{ExtensionAsk, cancel, pending_for, submit, view};
use super::lifecycle::{
    Grants, IamEffect, RevokeOutcome, WorkflowFailure, WorkflowInput, grant, record_failure,
    revoke, revoke_now, tell_holder, verify,
};
use super::sweep::sweep;
use super::{AuditTrail, Custody, Outbox, request_chain};
use crate::access::grant::document_expiry;
use crate::access::ledger::Artifact;
use crate::access::request::{
    AccessRequest, DecisionOutcome, NewRequest, RequestId, RevokeCause, Status, Verdict,
};
use crate::audit::{AuditSigner, AuditVerifier, verify_chain};
use crate::error::{Error, ErrorKind};
use crate::identity::Principal;
use crate::memory::*;
use crate::policy::Catalog;
use crate::ports::{AccessInspector, AccessProvisioner, Audience, AuditLog, RequestStore};
use crate::testing::{block_on, catalog, monday_at, person};

struct World {
    catalog: Catalog,
    store: MemoryRequestStore,
    log: MemoryAuditLog,
    ledger: MemoryLedger,
    iam: MemoryDirectory,
    notifier: MemoryNotifier,
    workflows: MemoryWorkflows,
    controls: crate::memory::MemoryControls,
    custody: (MemoryLeases, MemoryVault, MemoryCredentialDrop),
    signer: AuditSigner,
}

impl World {
    fn new() -> Self {
        let iam = MemoryDirectory::default();
        for user in ["rita", "carl"] {
            iam.add_user(&crate::identity::PrincipalId::new(user).unwrap());
        }
        Self {
            catalog: catalog(),
            store: MemoryRequestStore::default(),
            log: MemoryAuditLog::default(),
            ledger: MemoryLedger::default(),
            iam,
            notifier: MemoryNotifier::default(),
            workflows: MemoryWorkflows::default(),
            controls: Default::default(),
            custody: Default::default(),
            signer: AuditSigner::from_seed_hex("k", &"44".repeat(32)).unwrap(),
        }
    }
    fn custody(&self) -> Custody<'_, MemoryLeases, MemoryVault, MemoryCredentialDrop> {
        Custody {
            leases: &self.custody.0,
            vault: &self.custody.1,
            drops: &self.custody.2,
        }
    }
    fn trail(&self) -> AuditTrail<'_, MemoryAuditLog> {
        AuditTrail {
            log: &self.log,
            signer: &self.signer,
            policy_hash: self.catalog.hash(),
        }
    }
    fn outbox(&self) -> Outbox<'_, MemoryNotifier, MemoryWorkflows> {
        Outbox {
            notifier: &self.notifier,
            workflows: &self.workflows,
        }
    }
    fn grants(&self) -> Grants<'_, MemoryRequestStore, MemoryLedger> {
        Grants {
            store: &self.store,
            ledger: &self.ledger,
        }
    }
    fn submit(&self, who: &Principal, resource: &str, duration: &str) -> AccessRequest {
        let input = NewRequest {
            resource: resource.into(),
            duration: Some(duration.parse().unwrap()),
            justification: "work".into(),
            ticket: None,
        };
        block_on(submit(
            &self.store,
            &self.trail(),
            &self.outbox(),
            &self.catalog,
            who,
            input,
            monday_at(10),
        ))
        .unwrap()
    }
    fn decide(
        &self,
        who: &Principal,
        id: &RequestId,
        verdict: Verdict,
    ) -> Result<DecisionOutcome, Error> {
        let decision = Decision {
            request_id: id.clone(),
            verdict,
            comment: "ok".into(),
        };
        block_on(decide(
            &self.store,
            &self.controls,
            &self.trail(),
            &self.outbox(),
            who,
            &decision,
            monday_at(11),
        ))
        .map(|(_, o)| o)
    }
    fn grant(
        &self,
        id: &RequestId,
        extension: Option<&RequestId>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> super::lifecycle::GrantReport {
        self.try_grant(id, extension, at).unwrap()
    }
    /// The grant step, which may refuse.
    fn try_grant(
        &self,
        id: &RequestId,
        extension: Option<&RequestId>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<super::lifecycle::GrantReport, Error> {
        let input = WorkflowInput {
            request_id: id.clone(),
            extension_id: extension.cloned(),
        };
        block_on(grant(
            &self.grants(),
            &self.iam,
            &self.controls,
            &self.trail(),
            &self.catalog,
            &input,
            at,
        ))
    }
    fn ask_extension(&self, who: &Principal, grant: &RequestId, extra: &str) -> AccessRequest {
        let ask = ExtensionAsk {
            grant_id: grant.clone(),
            extra: extra.parse().unwrap(),
            justification: "need longer".into(),
        };
        block_on(super::intake::extend(
            &self.store,
            &self.trail(),
            &self.outbox(),
            &self.catalog,
            who,
            ask,
            monday_at(10),
        ))
        .unwrap()
    }
    fn get(&self, id: &RequestId) -> AccessRequest {
        block_on(self.store.get(id)).unwrap().unwrap()
    }
    fn snapshot(&self, who: &str) -> crate::access::grant::IamSnapshot {
        block_on(
            self.iam
                .snapshot(&crate::identity::PrincipalId::new(who).unwrap()),
        )
        .unwrap()
    }
    fn sweep(
        &self,
        trail: &AuditTrail<'_, impl AuditLog>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> super::sweep::SweepReport {
        block_on(sweep(
            &self.grants(),
            &self.iam,
            &self.custody(),
            trail,
            &self.outbox(),
            &MemoryWorkflows::default(),
            self.pending_timeout(),
            at,
        ))
        .unwrap()
    }

    fn pending_timeout(&self) -> TimeDelta {
        self.catalog.tunables().pending_timeout.delta()
    }

    /// Each event on a request's chain as (action, actor), the chain verified.
    fn audit_actors(&self, id: &RequestId) -> Vec<(String, String)> {
        self.verify_audit(id);
        let chain = block_on(self.log.chain(&request_chain(id))).unwrap();
        chain.into_iter().map(|e| (e.action, e.actor)).collect()
    }

    fn verify_audit(&self, id: &RequestId) -> Vec<String> {
        let chain = block_on(self.log.chain(&request_chain(id))).unwrap();
        let verifier = AuditVerifier::new()
            .trust("k", &self.signer.public_key_hex())
            .unwrap();
        verify_chain(&request_chain(id), &chain, &verifier, None).unwrap();
        chain.into_iter().map(|e| e.action).collect()
    }
}

#[test]
fn auto_approved_grant_runs_to_a_verified_revocation() {
    let w = World::new();
    let rita = person("rita", &[]);
    let req = w.submit(&rita, "billing-reports-read", "30m");
    assert_eq!(req.status(), Status::Approved);
    assert_eq!(
        w.workflows.started().len(),
        1,
        "auto-approval starts the workflow"
    );

    let report = w.grant(req.id(), None, monday_at(10));
    let snapshot = w.snapshot("rita");
    let Artifact::InlinePolicy { name } = &report.artifact else {
        panic!("policy grant")
    };
    assert_eq!(
        document_expiry(&snapshot.inline_policies[name]),
        Some(report.expires_at)
    );
    // Granting twice (at-least-once delivery) changes nothing.
    assert_eq!(
        w.grant(req.id(), None, monday_at(10) + TimeDelta::minutes(1)),
        report
    );

    let early = block_on(revoke(
        &w.grants(),
        &w.iam,
        &w.trail(),
        req.id(),
        RevokeCause::Expiry,
        "lapse",
        monday_at(10),
    ));
    assert_eq!(early.unwrap().outcome, RevokeOutcome::NotYetDue);
    assert!(!w.snapshot("rita").inline_policies.is_empty());

    let at = report.expires_at;
    let revoked = block_on(revoke(
        &w.grants(),
        &w.iam,
        &w.trail(),
        req.id(),
        RevokeCause::Expiry,
        "lapse",
        at,
    ))
    .unwrap();
    assert_eq!(
        (revoked.outcome, revoked.iam),
        (RevokeOutcome::Revoked, IamEffect::Removed)
    );
    assert!(w.snapshot("rita").inline_policies.is_empty());
    assert_eq!(
        w.get(req.id()).status(),
        Status::Revoked,
        "not done before verification"
    );
    let told = block_on(tell_holder(&w.store, &w.notifier, req.id())).unwrap();
    assert!(
        !told.body.contains("verified") && told.body.contains("has not run yet"),
        "a holder is not told of a verification that has not happened: {}",
        told.body
    );
    let again = block_on(revoke(
        &w.grants(),
        &w.iam,
        &w.trail(),
        req.id(),
        RevokeCause::Expiry,
        "lapse",
        at,
    ))
    .unwrap();
    assert_eq!(
        (again.outcome, again.iam),
        (RevokeOutcome::AlreadyRevoked, IamEffect::AlreadyAbsent)
    );

    block_on(verify(&w.grants(), &w.iam, &w.trail(), req.id(), at)).unwrap();
    block_on(verify(&w.grants(), &w.iam, &w.trail(), req.id(), at)).unwrap();
    assert_eq!(w.get(req.id()).status(), Status::Verified);
    let told = block_on(tell_holder(&w.store, &w.notifier, req.id())).unwrap();
    assert!(
        told.body.contains("revoked and the revocation verified"),
        "{}",
        told.body
    );
    assert_eq!(
        w.verify_audit(req.id()),
        [
            "request.submitted",
            "workflow.started",
            "grant.activated",
            "grant.provisioned",
            "grant.revoked",
            "grant.verified"
        ],
        "each fact audited exactly once despite retries"
    );
}

#[test]
fn dual_approval_starts_the_workflow_exactly_once() {
    let w = World::new();
    let rita = person("rita", &[]);
    let req = w.submit(&rita, "prod-db-admin", "2h");
    assert!(
        matches!(&w.notifier.sent()[0].audience, Audience::Approvers { groups } if groups.len() == 2)
    );
    let mia = person("mia", &["managers"]);
    let sam = person("sam", &["security"]);
    assert_eq!(pending_for(&w.store, &mia).len_ok(), 1);
    assert_eq!(
        pending_for(&w.store, &rita).len_ok(),
        0,
        "nobody approves their own request"
    );
    assert!(matches!(
        w.decide(&mia, req.id(), Verdict::Approve).unwrap(),
        DecisionOutcome::Recorded { .. }
    ));
    assert!(w.workflows.started().is_empty());
    assert_eq!(
        w.decide(&sam, req.id(), Verdict::Approve).unwrap(),
        DecisionOutcome::Approved
    );
    assert_eq!(
        w.decide(&sam, req.id(), Verdict::Approve).unwrap(),
        DecisionOutcome::AlreadyRecorded
    );
    assert_eq!(w.workflows.started().len(), 1);
    let err = w.decide(&rita, req.id(), Verdict::Approve).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
}

trait LenOk {
    fn len_ok(self) -> usize;
}
impl<F: std::future::Future<Output = Result<Vec<AccessRequest>, Error>>> LenOk for F {
    fn len_ok(self) -> usize {
        block_on(self).unwrap().len()
    }
}

#[test]
fn deny_and_cancel_end_requests() {
    let w = World::new();
    let rita = person("rita", &[]);
    let owner = person("olga", &["platform-owners"]);
    let denied = w.submit(&rita, "staging-logs-read", "4h");
    assert_eq!(
        w.decide(&owner, denied.id(), Verdict::Deny).unwrap(),
        DecisionOutcome::Denied
    );
    assert_eq!(w.get(denied.id()).status(), Status::Denied);
    assert!(w.workflows.started().is_empty());
    let cancelled = w.submit(&rita, "staging-logs-read", "4h");
    let after = block_on(cancel(
        &w.store,
        &w.trail(),
        &w.catalog,
        &rita,
        cancelled.id(),
        monday_at(10),
    ))
    .unwrap();
    assert_eq!(after.status(), Status::Cancelled);
    assert_eq!(
        w.decide(&owner, cancelled.id(), Verdict::Approve)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidState
    );
    // Strangers cannot see or cancel.
    let stranger = person("otto", &["billing-owners"]);
    assert_eq!(
        block_on(view(&w.store, &w.catalog, &stranger, denied.id()))
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

/// A hold in the ledger keeps a membership only for a grant the request store
/// says is live: a row written by a compromised function (for no request, or for
/// someone else's request) neither keeps the group at revocation nor lets a
/// membership put back behind the revocation pass as "kept for another grant".
#[test]
fn a_planted_ledger_hold_keeps_no_group_membership() {
    use crate::access::ledger::Hold;
    use crate::ports::LedgerStore;
    let w = World::new();
    let rita = person("rita", &[]);
    let (mia, sam) = (person("mia", &["managers"]), person("sam", &["security"]));
    let req = w.submit(&rita, "prod-readonly", "1h");
    w.decide(&mia, req.id(), Verdict::Approve).unwrap();
    w.decide(&sam, req.id(), Verdict::Approve).unwrap();
    let granted = w.grant(req.id(), None, monday_at(12));
    let others = w.submit(&person("otto", &[]), "prod-readonly", "1h");
    let group = Artifact::GroupMembership {
        group: "lapse-prod-readonly".into(),
    };
    let rita_id = crate::identity::PrincipalId::new("rita").unwrap();
    let plant = || {
        for grant_id in ["req-planted".to_string(), others.id().to_string()] {
            block_on(w.ledger.hold(&Hold {
                grant_id,
                principal: rita_id.clone(),
                artifact: group.clone(),
                expires_at: monday_at(12) + TimeDelta::days(3650),
            }))
            .unwrap();
        }
    };
    plant();

    let revoked = block_on(revoke(
        &w.grants(),
        &w.iam,
        &w.trail(),
        req.id(),
        RevokeCause::Expiry,
        "lapse",
        granted.expires_at,
    ))
    .unwrap();
    assert_eq!(revoked.iam, IamEffect::Removed);
    assert!(w.snapshot("rita").groups.is_empty());

    // Someone puts the membership back and plants the holds again: verification
    // finds residue, not a membership kept for a grant.
    block_on(w.iam.add_to_group(&rita_id, "lapse-prod-readonly")).unwrap();
    plant();
    let err = block_on(verify(
        &w.grants(),
        &w.iam,
        &w.trail(),
        req.id(),
        granted.expires_at,
    ))
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("membership of group lapse-prod-readonly"),
        "{err}"
    );
}

/// Issue 21, item 11 (the grant part): the request table is writable by many roles.
/// A request written there as approved (with no signed trail, with an approval
/// nobody signed, or for another resource than the one approved) is not granted:
/// the grant step refuses before anything touches IAM.
#[test]
fn the_grant_step_grants_only_what_the_signed_trail_approved() {
    let w = World::new();
    let try_grant = |id: &RequestId| w.try_grant(id, None, monday_at(12));
    let refused = |id: &RequestId, why: &str| {
        let err = try_grant(id).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
        assert!(err.to_string().contains(why), "{err}");
    };
    // One approval of the two prod-readonly needs, and a second written straight
    // into the table.
    let (rita, mia, sam) = (
        person("rita", &[]),
        person("mia", &["managers"]),
        person("sam", &["security"]),
    );
    let half = w.submit(&rita, "prod-readonly", "1h");
    w.decide(&mia, half.id(), Verdict::Approve).unwrap();
    let mut forged = block_on(w.store.get(half.id())).unwrap().unwrap();
    forged
        .decide(&sam, Verdict::Approve, "forged", monday_at(11))
        .unwrap();
    assert_eq!(forged.status(), Status::Approved);
    block_on(w.store.update(&mut forged)).unwrap();
    refused(half.id(), "no signed decision approves it");
    // The sweeper restarts the "approved" request's workflow and signs the state
    // it finds: that is no approval either.
    w.sweep(&w.trail(), monday_at(12));
    assert!(
        block_on(w.log.chain(&request_chain(half.id())))
            .unwrap()
            .iter()
            .any(|e| e.action == "workflow.started" && e.after["status"] == "approved"),
        "the sweeper signed the forged state"
    );
    refused(half.id(), "no signed decision approves it");

    // A whole request written into the table, approved, with no trail at all.
    let mut made_up = serde_json::to_value(&forged).unwrap();
    made_up["id"] = serde_json::json!("req-00000000-0000-4000-8000-00000000f04e");
    made_up["version"] = serde_json::json!(0);
    let mut made_up: AccessRequest = serde_json::from_value(made_up).unwrap();
    block_on(w.store.create(&mut made_up)).unwrap();
    refused(made_up.id(), "holds no signed submission");

    // An auto-approved read of billing reports, turned into production access.
    let low = w.submit(&rita, "billing-reports-read", "30m");
    let mut swapped =
        serde_json::to_value(block_on(w.store.get(low.id())).unwrap().unwrap()).unwrap();
    swapped["resource"] = serde_json::json!("prod-readonly");
    let mut swapped: AccessRequest = serde_json::from_value(swapped).unwrap();
    block_on(w.store.update(&mut swapped)).unwrap();
    refused(
        low.id(),
        "what the table holds differs from its signed submission (resource)",
    );

    assert!(
        w.snapshot("rita").groups.is_empty() && w.snapshot("rita").inline_policies.is_empty(),
        "nothing reached IAM"
    );
    // The honest path still grants.
    let honest = w.submit(&rita, "prod-readonly", "1h");
    w.decide(&mia, honest.id(), Verdict::Approve).unwrap();
    w.decide(&sam, honest.id(), Verdict::Approve).unwrap();
    try_grant(honest.id()).unwrap();
}

#[test]
fn overlapping_group_grants_keep_access_until_the_last_ends() {
    let w = World::new();
    let rita = person("rita", &[]);
    let (mia, sam) = (person("mia", &["managers"]), person("sam", &["security"]));
    let mut ids = Vec::new();
    for _ in 0..2 {
        let req = w.submit(&rita, "prod-readonly", "1h");
        w.decide(&mia, req.id(), Verdict::Approve).unwrap();
        w.decide(&sam, req.id(), Verdict::Approve).unwrap();
        ids.push(req.id().clone());
    }
    let first = w.grant(&ids[0], None, monday_at(12));
    let second = w.grant(&ids[1], None, monday_at(12) + TimeDelta::minutes(30));
    assert!(w.snapshot("rita").groups.contains("lapse-prod-readonly"));

    let r1 = block_on(revoke(
        &w.grants(),
        &w.iam,
        &w.trail(),
        &ids[0],
        RevokeCause::Expiry,
        "lapse",
        first.expires_at,
    ))
    .unwrap();
    assert_eq!(r1.iam, IamEffect::KeptForOtherGrants);
    assert!(
        w.snapshot("rita").groups.contains("lapse-prod-readonly"),
        "second grant still live"
    );
    let v1 = block_on(verify(
        &w.grants(),
        &w.iam,
        &w.trail(),
        &ids[0],
        first.expires_at,
    ))
    .unwrap();
    assert_eq!(v1.kept_for, [ids[1].to_string()]);

    let r2 = block_on(revoke(
        &w.grants(),
        &w.iam,
        &w.trail(),
        &ids[1],
        RevokeCause::Expiry,
        "lapse",
        second.expires_at,
    ))
    .unwrap();
    assert_eq!(r2.iam, IamEffect::Removed);
    assert!(w.snapshot("rita").groups.is_empty());
    block_on(verify(
        &w.grants(),
        &w.iam,
        &w.trail(),
        &ids[1],
        second.expires_at,
    ))
    .unwrap();
}

#[test]
fn extension_is_routed_then_merged_into_the_running_grant() {
    let w = World::new();
    let rita = person("rita", &[]);
    let req = w.submit(&rita, "billing-reports-read", "30m");
    let granted = w.grant(req.id(), None, monday_at(10));
    let ext = w.ask_extension(&rita, req.id(), "2h");
    assert_eq!(ext.status(), Status::Pending, "2h goes to the owner");
    w.decide(
        &person("bill", &["billing-owners"]),
        ext.id(),
        Verdict::Approve,
    )
    .unwrap();
    assert_eq!(
        w.workflows.started()[ext.id().as_str()]["extension_id"],
        ext.id().as_str(),
        "the approval starts an extension execution"
    );
    let merged = w.grant(req.id(), Some(ext.id()), monday_at(10));
    assert_eq!(merged.expires_at, granted.expires_at + TimeDelta::hours(2));
    assert_eq!(
        w.grant(req.id(), Some(ext.id()), monday_at(10)).expires_at,
        merged.expires_at
    );
    let name = match &merged.artifact {
        Artifact::InlinePolicy { name } => name.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        document_expiry(&w.snapshot("rita").inline_policies[&name]),
        Some(merged.expires_at)
    );

    // The running execution wakes at the old expiry and is told to wait again.
    let woke = block_on(revoke(
        &w.grants(),
        &w.iam,
        &w.trail(),
        req.id(),
        RevokeCause::Expiry,
        "lapse",
        granted.expires_at,
    ))
    .unwrap();
    assert_eq!(woke.outcome, RevokeOutcome::NotYetDue);
    assert_eq!(woke.expires_at, Some(merged.expires_at));
    block_on(revoke(
        &w.grants(),
        &w.iam,
        &w.trail(),
        req.id(),
        RevokeCause::Expiry,
        "lapse",
        merged.expires_at,
    ))
    .unwrap();
    block_on(verify(
        &w.grants(),
        &w.iam,
        &w.trail(),
        req.id(),
        merged.expires_at,
    ))
    .unwrap();
    assert_eq!(
        w.get(ext.id()).status(),
        Status::Verified,
        "extensions end with their grant"
    );
}

#[test]
fn early_revocation_by_holder_or_security_only() {
    let w = World::new();
    let rita = person("rita", &[]);
    let req = w.submit(&rita, "billing-reports-read", "30m");
    w.grant(req.id(), None, monday_at(10));
    let stranger = person("otto", &["platform-owners"]);
    let err = block_on(revoke_now(
        &w.grants(),
        &w.iam,
        &w.trail(),
        &w.catalog,
        &stranger,
        req.id(),
        monday_at(10),
    ));
    assert_eq!(err.unwrap_err().kind(), ErrorKind::NotFound);
    let (revoked, verified) = block_on(revoke_now(
        &w.grants(),
        &w.iam,
        &w.trail(),
        &w.catalog,
        &rita,
        req.id(),
        monday_at(10),
    ))
    .unwrap();
    assert_eq!(revoked.outcome, RevokeOutcome::Revoked);
    assert!(verified.verified);
    assert_eq!(
        w.get(req.id()).revoke_cause(),
        Some(RevokeCause::EarlyRevoke)
    );
    assert!(w.snapshot("rita").inline_policies.is_empty());
}

#[test]
fn an_extension_is_never_revoked_or_verified_apart_from_its_grant() {
    let w = World::new();
    let rita = person("rita", &[]);
    let req = w.submit(&rita, "billing-reports-read", "30m");
    w.grant(req.id(), None, monday_at(10));
    let ext = w.ask_extension(&rita, req.id(), "30m");
    let revoke_ext = || {
        block_on(revoke_now(
            &w.grants(),
            &w.iam,
            &w.trail(),
            &w.catalog,
            &rita,
            ext.id(),
            monday_at(10),
        ))
    };
    let err = revoke_ext().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert!(
        err.to_string()
            .contains(&format!("is an extension of grant {}", req.id())),
        "{err}"
    );
    assert_eq!(w.get(req.id()).status(), Status::Active, "the grant stands");
    assert!(!w.snapshot("rita").inline_policies.is_empty());
    let err = block_on(verify(
        &w.grants(),
        &w.iam,
        &w.trail(),
        ext.id(),
        monday_at(10),
    ))
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation, "{err}");
}

#[test]
fn nothing_is_granted_to_a_user_lapse_does_not_manage() {
    let w = World::new();
    let uma = crate::identity::PrincipalId::new("uma").unwrap();
    let mut unmanaged =
        crate::revocation::plan::IdentitySnapshot::absent(uma.clone(), monday_at(9));
    unmanaged.exists = true;
    w.iam.put_user(unmanaged);
    let who = person("uma", &[]);
    // A group grant: IAM's conditions never see the user on AddUserToGroup.
    let req = w.submit(&who, "prod-readonly", "1h");
    for (approver, group) in [("mia", "managers"), ("sam", "security")] {
        w.decide(&person(approver, &[group]), req.id(), Verdict::Approve)
            .unwrap();
    }
    let err = w.try_grant(req.id(), None, monday_at(12)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
    assert!(
        err.to_string().contains("not a user Lapse manages"),
        "{err}"
    );
    assert!(w.snapshot("uma").groups.is_empty(), "no membership");
    assert_eq!(
        w.get(req.id()).status(),
        Status::Approved,
        "nothing activated"
    );
}

/// Issue 21, item 16 (the boundary half): a tagged user whose permissions boundary
/// is not Lapse's (another one, or none) gets no group membership, whose policies
/// no IAM condition would hold off Lapse. (An IAM that reports no user boundaries,
/// a declared emulator gap, is covered on the emulator: tests/workflows.rs.)
#[test]
fn nothing_is_granted_to_a_user_without_lapses_boundary() {
    let w = World::new();
    let (mia, sam) = (person("mia", &["managers"]), person("sam", &["security"]));
    let ask = |who: &str| {
        let req = w.submit(&person(who, &[]), "prod-readonly", "1h");
        w.decide(&mia, req.id(), Verdict::Approve).unwrap();
        w.decide(&sam, req.id(), Verdict::Approve).unwrap();
        req
    };
    let try_grant = |req: &AccessRequest| w.try_grant(req.id(), None, monday_at(12));
    for (who, boundary, theirs) in [
        (
            "vic",
            Some("arn:aws:iam::1:policy/AdministratorAccessBoundary"),
            "arn:aws:iam::1:policy/AdministratorAccessBoundary",
        ),
        ("val", None, "none"),
    ] {
        let req = ask(who);
        let id = crate::identity::PrincipalId::new(who).unwrap();
        w.iam.add_user(&id);
        w.iam.set_foreign_boundary(&id, boundary);
        let err = try_grant(&req).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
        assert!(
            err.to_string().contains(&format!(
                "does not carry Lapse's permissions boundary (theirs: {theirs})"
            )),
            "{err}"
        );
        assert!(w.snapshot(who).groups.is_empty(), "no membership");
        assert_eq!(
            w.get(req.id()).status(),
            Status::Approved,
            "nothing activated"
        );
    }
    // Under Lapse's boundary: granted.
    let req = ask("rita");
    try_grant(&req).unwrap();
    assert!(w.snapshot("rita").groups.contains("lapse-prod-readonly"));
}

#[test]
fn a_grant_window_without_a_recorded_artifact_never_verifies() {
    let w = World::new();
    let rita = person("rita", &[]);
    let mut req = w.submit(&rita, "billing-reports-read", "30m");
    // A stored request that claims a window but not what it put in IAM (written
    // by an older version, or tampered with).
    let mut stored: serde_json::Value = serde_json::to_value(&req).unwrap();
    stored["status"] = "revoked".into();
    stored["window"] = serde_json::json!({
        "starts_at": monday_at(10), "expires_at": monday_at(11)
    });
    stored["artifact"] = serde_json::Value::Null;
    req = serde_json::from_value(stored).unwrap();
    block_on(w.store.update(&mut req)).unwrap();
    let err = block_on(verify(
        &w.grants(),
        &w.iam,
        &w.trail(),
        req.id(),
        monday_at(12),
    ))
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::VerificationFailed, "{err}");
    assert!(err.to_string().contains("no recorded artifact"), "{err}");
}

#[test]
fn a_residue_in_iam_fails_verification_and_is_audited() {
    let w = World::new();
    let rita = person("rita", &[]);
    let req = w.submit(&rita, "billing-reports-read", "30m");
    let report = w.grant(req.id(), None, monday_at(10));
    block_on(revoke(
        &w.grants(),
        &w.iam,
        &w.trail(),
        req.id(),
        RevokeCause::Expiry,
        "lapse",
        report.expires_at,
    ))
    .unwrap();
    // Something puts the policy back behind Lapse's back.
    let Artifact::InlinePolicy { name } = &report.artifact else {
        panic!()
    };
    block_on(
        w.iam
            .put_inline_policy(req.requester(), name, &serde_json::json!({})),
    )
    .unwrap();
    let err = block_on(verify(
        &w.grants(),
        &w.iam,
        &w.trail(),
        req.id(),
        report.expires_at,
    ))
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::VerificationFailed);
    assert_eq!(
        w.get(req.id()).status(),
        Status::Revoked,
        "never reported verified"
    );
    assert!(
        w.verify_audit(req.id())
            .contains(&"grant.verification_failed".to_owned())
    );

    let failure = WorkflowFailure {
        request_id: req.id().clone(),
        error: "Lapse.VerificationFailed".into(),
        cause: err.to_string(),
    };
    let notice = block_on(record_failure(
        &w.store,
        &w.trail(),
        &w.notifier,
        &failure,
        report.expires_at,
    ))
    .unwrap();
    assert_eq!(notice.audience, Audience::Security);
    assert!(
        w.verify_audit(req.id())
            .contains(&"workflow.failed".to_owned())
    );
    // The cause as Step Functions gives it (the function's JSON) and as the local
    // runner does (`<name>: <message>`): the message alone, once.
    for cause in [
        serde_json::json!({"errorType": "Lapse.VerificationFailed", "errorMessage": err.to_string()})
            .to_string(),
        format!("Lapse.VerificationFailed: {err}"),
    ] {
        let failure = WorkflowFailure {
            request_id: req.id().clone(),
            error: "Lapse.VerificationFailed".into(),
            cause,
        };
        assert_eq!(failure.readable_cause(), err.to_string());
    }
    let failed = block_on(w.log.chain(&request_chain(req.id())))
        .unwrap()
        .into_iter()
        .rfind(|e| e.action == "workflow.failed")
        .unwrap();
    assert_eq!(failed.reason, format!("Lapse.VerificationFailed: {err}"));
}

/// A workflow that fails before its grant (a checkout refused, say) leaves the
/// request approved: the requester is told it was not granted, not only security.
#[test]
fn a_failure_before_the_grant_tells_the_requester() {
    let w = World::new();
    let req = w.submit(&person("dana", &[]), "billing-reports-read", "30m");
    assert_eq!(w.get(req.id()).status(), Status::Approved);
    let failure = WorkflowFailure {
        request_id: req.id().clone(),
        error: "Lapse.Configuration".into(),
        cause: "secret lapse/x does not rotate".into(),
    };
    block_on(record_failure(
        &w.store,
        &w.trail(),
        &w.notifier,
        &failure,
        monday_at(10),
    ))
    .unwrap();
    let told: Vec<_> = w
        .notifier
        .sent()
        .into_iter()
        .filter(|n| {
            n.audience
                == Audience::Person {
                    id: crate::identity::PrincipalId::new("dana").unwrap(),
                }
                && n.subject.starts_with("Not granted")
        })
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].subject, "Not granted: billing-reports-read");
    assert!(
        told[0]
            .body
            .contains("could not be granted: secret lapse/x does not rotate"),
        "{}",
        told[0].body
    );
}

#[test]
fn the_sweeper_settles_what_workflows_missed() {
    let w = World::new();
    let rita = person("rita", &[]);
    let stale = w.submit(&rita, "staging-logs-read", "4h");
    let granted = w.submit(&rita, "billing-reports-read", "30m");
    let report = w.grant(granted.id(), None, monday_at(10));
    let lost = w.submit(&person("carl", &[]), "billing-reports-read", "15m");

    let later = monday_at(10) + TimeDelta::days(2);
    let swept = w.sweep(&w.trail(), later);
    assert_eq!(swept.expired_pending, [stale.id().clone()]);
    assert_eq!(swept.revoked, [granted.id().clone()]);
    assert_eq!(
        swept.restarted,
        [lost.id().clone()],
        "approved but never started"
    );
    assert!(swept.failures.is_empty(), "{:?}", swept.failures);
    assert_eq!(w.get(granted.id()).status(), Status::Verified);
    assert!(w.snapshot("rita").inline_policies.is_empty());
    assert!(report.expires_at < later);
    // A second sweep has nothing left to do.
    let again = w.sweep(&w.trail(), later);
    assert!(
        again.expired_pending.is_empty() && again.revoked.is_empty() && again.verified.is_empty()
    );
}

/// A directory that lets a revocation land right after the grant step wrote IAM.
struct RevokedMidGrant<'a> {
    world: &'a World,
    request: RequestId,
}

impl AccessProvisioner for RevokedMidGrant<'_> {
    async fn put_inline_policy(
        &self,
        user: &crate::identity::PrincipalId,
        name: &str,
        document: &serde_json::Value,
    ) -> Result<(), crate::ports::DirectoryError> {
        self.world
            .iam
            .put_inline_policy(user, name, document)
            .await?;
        let w = self.world;
        revoke(
            &w.grants(),
            &w.iam,
            &w.trail(),
            &self.request,
            RevokeCause::EarlyRevoke,
            "sam",
            monday_at(10),
        )
        .await
        .unwrap();
        Ok(())
    }
    async fn delete_inline_policy(
        &self,
        user: &crate::identity::PrincipalId,
        name: &str,
    ) -> Result<crate::ports::Removal, crate::ports::DirectoryError> {
        self.world.iam.delete_inline_policy(user, name).await
    }
    async fn add_to_group(
        &self,
        user: &crate::identity::PrincipalId,
        group: &str,
    ) -> Result<(), crate::ports::DirectoryError> {
        self.world.iam.add_to_group(user, group).await
    }
    async fn remove_from_group(
        &self,
        user: &crate::identity::PrincipalId,
        group: &str,
    ) -> Result<crate::ports::Removal, crate::ports::DirectoryError> {
        self.world.iam.remove_from_group(user, group).await
    }
    async fn put_role_policy(
        &self,
        role: &str,
        name: &str,
        document: &serde_json::Value,
    ) -> Result<(), crate::ports::DirectoryError> {
        self.world.iam.put_role_policy(role, name, document).await
    }
    async fn delete_role_policy(
        &self,
        role: &str,
        name: &str,
    ) -> Result<crate::ports::Removal, crate::ports::DirectoryError> {
        self.world.iam.delete_role_policy(role, name).await
    }
}

impl AccessInspector for RevokedMidGrant<'_> {
    async fn user_managed(
        &self,
        user: &crate::identity::PrincipalId,
    ) -> Result<bool, crate::ports::DirectoryError> {
        self.world.iam.user_managed(user).await
    }
    async fn snapshot(
        &self,
        user: &crate::identity::PrincipalId,
    ) -> Result<crate::access::grant::IamSnapshot, crate::ports::DirectoryError> {
        self.world.iam.snapshot(user).await
    }
    async fn user_bounded(
        &self,
        user: &crate::identity::PrincipalId,
    ) -> Result<crate::ports::Bounded, crate::ports::DirectoryError> {
        self.world.iam.user_bounded(user).await
    }
    async fn role_managed(&self, role: &str) -> Result<Option<bool>, crate::ports::DirectoryError> {
        self.world.iam.role_managed(role).await
    }
    async fn role_policy(
        &self,
        role: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, crate::ports::DirectoryError> {
        self.world.iam.role_policy(role, name).await
    }
    async fn role_trusts(
        &self,
        role: &str,
        users: &[String],
    ) -> Result<std::collections::BTreeSet<String>, crate::ports::DirectoryError> {
        self.world.iam.role_trusts(role, users).await
    }
}

#[test]
fn an_early_revoke_racing_the_grant_step_wins() {
    let w = World::new();
    let rita = person("rita", &[]);
    let req = w.submit(&rita, "billing-reports-read", "30m");
    let racing = RevokedMidGrant {
        world: &w,
        request: req.id().clone(),
    };
    let input = WorkflowInput {
        request_id: req.id().clone(),
        extension_id: None,
    };
    let result = block_on(grant(
        &w.grants(),
        &racing,
        &w.controls,
        &w.trail(),
        &w.catalog,
        &input,
        monday_at(10),
    ));
    assert!(
        result.is_ok(),
        "the workflow goes on to revoke and verify: {result:?}"
    );
    assert_eq!(w.get(req.id()).status(), Status::Revoked);
    assert!(
        w.snapshot("rita").inline_policies.is_empty(),
        "the grant step's late IAM write was taken back out"
    );
    // The workflow's "granted" notice runs next, before its Verify: it tells the
    // holder the access ended, and does not claim the revocation verified.
    let told = block_on(tell_holder(&w.store, &w.notifier, req.id())).unwrap();
    assert!(
        told.subject.starts_with("Access ended") && !told.body.contains("verified"),
        "{told:?}"
    );
}

#[test]
fn a_revoked_requester_is_not_granted_and_their_request_is_withdrawn() {
    use crate::revocation::ports::{Controls, UserControls};
    let w = World::new();
    let rita = person("rita", &[]);
    let req = w.submit(&rita, "billing-reports-read", "30m");
    assert_eq!(req.status(), Status::Approved);
    block_on(w.controls.set(
        rita.id(),
        &mut Controls {
            revoked_by: Some("rev-1".into()),
            ..Controls::default()
        },
    ))
    .unwrap();
    let input = WorkflowInput {
        request_id: req.id().clone(),
        extension_id: None,
    };
    let refused = block_on(grant(
        &w.grants(),
        &w.iam,
        &w.controls,
        &w.trail(),
        &w.catalog,
        &input,
        monday_at(10),
    ));
    assert!(
        matches!(
            refused,
            Err(Error::Request(
                crate::access::request::RequestError::AccessRevoked(_)
            ))
        ),
        "{refused:?}"
    );
    assert_eq!(w.get(req.id()).status(), Status::Cancelled);
    assert!(w.snapshot("rita").inline_policies.is_empty());
    assert!(
        w.verify_audit(req.id())
            .contains(&"request.cancelled".to_owned())
    );
}

/// An audit log whose next append fails as if the handler had crashed right after
/// its state write.
struct CrashBeforeAudit<'a> {
    inner: &'a MemoryAuditLog,
    armed: std::sync::atomic::AtomicBool,
}

impl<'a> CrashBeforeAudit<'a> {
    fn new(inner: &'a MemoryAuditLog) -> Self {
        Self {
            inner,
            armed: std::sync::atomic::AtomicBool::new(true),
        }
    }
}

impl AuditLog for CrashBeforeAudit<'_> {
    async fn head(
        &self,
        chain: &str,
    ) -> Result<Option<crate::audit::ChainHead>, crate::ports::StoreError> {
        self.inner.head(chain).await
    }
    async fn append(
        &self,
        event: &crate::audit::AuditEvent,
    ) -> Result<(), crate::ports::StoreError> {
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::ports::StoreError::Unavailable("crashed".into()));
        }
        self.inner.append(event).await
    }
    async fn chain(
        &self,
        chain: &str,
    ) -> Result<Vec<crate::audit::AuditEvent>, crate::ports::StoreError> {
        self.inner.chain(chain).await
    }
}

#[test]
fn a_crash_between_a_state_write_and_its_audit_event_loses_no_event() {
    let w = World::new();
    let rita = person("rita", &[]);
    let (mia, sam) = (person("mia", &["managers"]), person("sam", &["security"]));
    let req = w.submit(&rita, "prod-db-admin", "1h");
    let decision = |who: &Principal| {
        let log = CrashBeforeAudit::new(&w.log);
        let trail = AuditTrail {
            log: &log,
            signer: &w.signer,
            policy_hash: w.catalog.hash(),
        };
        let d = Decision {
            request_id: req.id().clone(),
            verdict: Verdict::Approve,
            comment: "ok".into(),
        };
        let first = block_on(decide(
            &w.store,
            &w.controls,
            &trail,
            &w.outbox(),
            who,
            &d,
            monday_at(11),
        ));
        assert!(first.is_err(), "the crash");
        block_on(decide(
            &w.store,
            &w.controls,
            &trail,
            &w.outbox(),
            who,
            &d,
            monday_at(11),
        ))
        .unwrap()
    };
    assert_eq!(
        decision(&mia).1,
        DecisionOutcome::AlreadyRecorded,
        "the state was written before the crash"
    );
    decision(&sam);
    let input = WorkflowInput {
        request_id: req.id().clone(),
        extension_id: None,
    };
    let log = CrashBeforeAudit::new(&w.log);
    let trail = AuditTrail {
        log: &log,
        signer: &w.signer,
        policy_hash: w.catalog.hash(),
    };
    let grant_once = || {
        block_on(grant(
            &w.grants(),
            &w.iam,
            &w.controls,
            &trail,
            &w.catalog,
            &input,
            monday_at(12),
        ))
    };
    assert!(grant_once().is_err());
    grant_once().unwrap();
    let log = CrashBeforeAudit::new(&w.log);
    let trail = AuditTrail {
        log: &log,
        signer: &w.signer,
        policy_hash: w.catalog.hash(),
    };
    let revoke_once = || {
        block_on(revoke(
            &w.grants(),
            &w.iam,
            &trail,
            req.id(),
            RevokeCause::EarlyRevoke,
            "sam",
            monday_at(12),
        ))
    };
    assert!(revoke_once().is_err());
    assert_eq!(
        revoke_once().unwrap().outcome,
        RevokeOutcome::AlreadyRevoked
    );
    let actions = w.verify_audit(req.id());
    for wanted in [
        "request.approval_recorded",
        "request.approved",
        "grant.activated",
        "grant.revoked",
    ] {
        assert!(
            actions.contains(&wanted.to_owned()),
            "{wanted}: {actions:?}"
        );
    }
}

#[test]
fn a_crash_between_a_withdrawal_or_an_expiry_and_its_event_loses_no_event() {
    let w = World::new();
    let rita = person("rita", &[]);
    let log = CrashBeforeAudit::new(&w.log);
    let crashing = || {
        log.armed.store(true, std::sync::atomic::Ordering::SeqCst);
        AuditTrail {
            log: &log,
            signer: &w.signer,
            policy_hash: w.catalog.hash(),
        }
    };
    let count = |id: &RequestId, action: &str, actor: &str| {
        w.audit_actors(id)
            .iter()
            .filter(|(a, by)| a == action && by == actor)
            .count()
    };

    // The requester's cancel, retried after the crash.
    let mine = w.submit(&rita, "prod-db-admin", "1h");
    let trail = crashing();
    let cancel_once = || {
        block_on(cancel(
            &w.store,
            &trail,
            &w.catalog,
            &rita,
            mine.id(),
            monday_at(10),
        ))
    };
    assert!(cancel_once().is_err(), "the crash");
    assert_eq!(cancel_once().unwrap().status(), Status::Cancelled);
    assert_eq!(count(mine.id(), "request.cancelled", "rita"), 1);

    // A revocation's withdrawal, then the requester's own retried cancel: the event
    // names the revocation, not the requester.
    let theirs = w.submit(&rita, "prod-db-admin", "2h");
    let trail = crashing();
    assert!(
        block_on(super::withdraw_for_revocation(
            &w.store,
            &trail,
            theirs.id(),
            "lapse-revocation",
            "rev-1",
            monday_at(10),
        ))
        .is_err()
    );
    block_on(cancel(
        &w.store,
        &w.trail(),
        &w.catalog,
        &rita,
        theirs.id(),
        monday_at(10),
    ))
    .unwrap();
    assert_eq!(
        count(theirs.id(), "request.cancelled", "lapse-revocation"),
        1
    );
    assert_eq!(count(theirs.id(), "request.cancelled", "rita"), 0);

    // An expiry by the sweep: the next sweep records it.
    let swept = w.submit(&rita, "prod-db-admin", "3h");
    let late = monday_at(10) + TimeDelta::days(2);
    let first = w.sweep(&crashing(), late);
    assert_eq!(first.failures.len(), 1, "the crash: {first:?}");
    assert_eq!(w.get(swept.id()).status(), Status::Expired);
    let next = late + TimeDelta::minutes(5);
    w.sweep(&w.trail(), next);
    w.sweep(&w.trail(), next);
    assert_eq!(count(swept.id(), "request.expired", "lapse"), 1);

    // An expiry by a late decision: the retried decision records it, and is refused.
    let decided = w.submit(&rita, "prod-db-admin", "4h");
    let mia = person("mia", &["managers"]);
    let trail = crashing();
    let d = Decision {
        request_id: decided.id().clone(),
        verdict: Verdict::Approve,
        comment: "late".into(),
    };
    let decide_once = || {
        block_on(decide(
            &w.store,
            &w.controls,
            &trail,
            &w.outbox(),
            &mia,
            &d,
            late,
        ))
    };
    assert!(decide_once().is_err(), "the crash");
    assert_eq!(w.get(decided.id()).status(), Status::Expired);
    assert!(decide_once().is_err(), "timed out");
    assert_eq!(count(decided.id(), "request.expired", "lapse"), 1);
}

#[test]
fn refused_decisions_are_audited() {
    let w = World::new();
    let rita = person("rita", &["managers"]);
    let req = w.submit(&rita, "prod-db-admin", "1h");
    assert!(
        w.decide(&rita, req.id(), Verdict::Approve).is_err(),
        "self-approval"
    );
    let carl = person("carl", &[]);
    assert!(
        w.decide(&carl, req.id(), Verdict::Approve).is_err(),
        "not eligible"
    );
    let chain = block_on(w.log.chain(&request_chain(req.id()))).unwrap();
    let refused: Vec<_> = chain
        .iter()
        .filter(|e| e.action == "request.decision_refused")
        .map(|e| (e.actor.clone(), e.reason.clone()))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[0].0 == "rita" && refused[0].1.contains("their own request"),
        "{refused:?}"
    );
    assert!(refused[1].0 == "carl", "{refused:?}");
    // Once the requester's access is revoked, an eligible approver is refused too.
    block_on(crate::revocation::ports::UserControls::set(
        &w.controls,
        rita.id(),
        &mut crate::revocation::ports::Controls {
            revoked_by: Some("rev-2".into()),
            ..Default::default()
        },
    ))
    .unwrap();
    let mia = person("mia", &["managers"]);
    assert!(matches!(
        w.decide(&mia, req.id(), Verdict::Approve),
        Err(Error::Request(
            crate::access::request::RequestError::AccessRevoked(_)
        ))
    ));
    assert!(w.get(req.id()).approvals().is_empty(), "nothing recorded");
    let chain = block_on(w.log.chain(&request_chain(req.id()))).unwrap();
    assert!(
        chain
            .iter()
            .any(|e| e.action == "request.decision_refused" && e.actor == "mia")
    );
    w.verify_audit(req.id());
}

#[test]
fn an_early_revoke_racing_an_extension_merge_wins() {
    let w = World::new();
    let rita = person("rita", &[]);
    let req = w.submit(&rita, "billing-reports-read", "30m");
    w.grant(req.id(), None, monday_at(10));
    let ext = w.ask_extension(&rita, req.id(), "2h");
    w.decide(
        &person("bill", &["billing-owners"]),
        ext.id(),
        Verdict::Approve,
    )
    .unwrap();
    // The holder ends the grant right after the merge re-writes the policy.
    let racing = RevokedMidGrant {
        world: &w,
        request: req.id().clone(),
    };
    let input = WorkflowInput {
        request_id: req.id().clone(),
        extension_id: Some(ext.id().clone()),
    };
    let merged = block_on(grant(
        &w.grants(),
        &racing,
        &w.controls,
        &w.trail(),
        &w.catalog,
        &input,
        monday_at(10),
    ));
    assert!(merged.is_err(), "{merged:?}");
    assert_eq!(w.get(req.id()).status(), Status::Revoked);
    assert!(
        w.snapshot("rita").inline_policies.is_empty(),
        "the merge's late IAM write was taken back out"
    );
}

#[test]
fn a_versioned_update_retries_lost_races_then_reports_a_conflict() {
    use super::{Attempt, WRITE_ATTEMPTS, versioned};
    use std::cell::Cell;
    // Lost twice, then done: the third attempt's answer.
    let tries = Cell::new(0);
    let out = block_on(versioned(
        || "x".to_owned(),
        || async {
            tries.set(tries.get() + 1);
            Ok(if tries.get() < 3 {
                Attempt::Lost
            } else {
                Attempt::Done(tries.get())
            })
        },
    ))
    .unwrap();
    assert_eq!(out, 3);
    // Always lost: a retryable conflict naming what was contended, after the limit.
    let tries = Cell::new(0);
    let err = block_on(versioned(
        || "controls of jdoe".to_owned(),
        || async {
            tries.set(tries.get() + 1);
            Ok::<Attempt<()>, Error>(Attempt::Lost)
        },
    ))
    .unwrap_err();
    assert_eq!(tries.get(), WRITE_ATTEMPTS);
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("controls of jdoe"), "{err}");
    // An error ends it at once.
    let tries = Cell::new(0);
    let err = block_on(versioned(
        || "x".to_owned(),
        || async {
            tries.set(tries.get() + 1);
            Err::<Attempt<()>, Error>(Error::NotFound("req-1".into()))
        },
    ))
    .unwrap_err();
    assert_eq!((tries.get(), err.kind()), (1, ErrorKind::NotFound));
}

/// A log on which another writer records the same event right after this writer
/// has read the chain: two deliveries of one event racing to audit it.
struct SameKeyMeanwhile<'a> {
    inner: &'a MemoryAuditLog,
    signer: &'a AuditSigner,
    catalog: &'a Catalog,
    pending: std::sync::Mutex<Option<crate::audit::AuditDraft>>,
}

impl AuditLog for SameKeyMeanwhile<'_> {
    async fn head(
        &self,
        chain: &str,
    ) -> Result<Option<crate::audit::ChainHead>, crate::ports::StoreError> {
        self.inner.head(chain).await
    }
    async fn append(
        &self,
        event: &crate::audit::AuditEvent,
    ) -> Result<(), crate::ports::StoreError> {
        self.inner.append(event).await
    }
    async fn chain(
        &self,
        chain: &str,
    ) -> Result<Vec<crate::audit::AuditEvent>, crate::ports::StoreError> {
        let read = self.inner.chain(chain).await;
        let other = self.pending.lock().unwrap().take();
        if let Some(draft) = other {
            let rival = AuditTrail {
                log: self.inner,
                signer: self.signer,
                policy_hash: self.catalog.hash(),
            };
            rival.record(draft).await.unwrap();
        }
        read
    }
}

#[test]
fn two_writers_of_one_keyed_event_record_it_once() {
    let w = World::new();
    let draft = crate::audit::AuditDraft {
        chain: "user#jdoe".into(),
        key: "rev-1:received".into(),
        actor: "hr-webhook".into(),
        action: "revocation.received".into(),
        subject: "jdoe".into(),
        reason: "terminated".into(),
        before: serde_json::Value::Null,
        after: serde_json::Value::Null,
        at: monday_at(10),
    };
    let log = SameKeyMeanwhile {
        inner: &w.log,
        signer: &w.signer,
        catalog: &w.catalog,
        pending: std::sync::Mutex::new(Some(draft.clone())),
    };
    let trail = AuditTrail {
        log: &log,
        signer: &w.signer,
        policy_hash: w.catalog.hash(),
    };
    let recorded = block_on(trail.record(draft)).unwrap();
    let chain = block_on(w.log.chain("user#jdoe")).unwrap();
    assert_eq!(chain.len(), 1, "recorded once: {chain:?}");
    assert_eq!(recorded.seq, chain[0].seq);
}

// ---- break-glass ----------------------------------------------------------------

mod break_glass {
    use super::*;
    use crate::access::breakglass::{Finding, Nudge, ReviewOutcome};
    use crate::access::request::RequestError;
    use crate::access::usecase::breakglass::{declare, justify, nudge, review};
    use crate::identity::{EmploymentType, PrincipalId};

    struct Glass {
        w: World,
        timelines: MemoryWorkflows,
        incidents: MemoryIncidents,
    }

    impl Glass {
        /// The sweeper, with the break-glass timelines it may start.
        fn sweep(&self, at: chrono::DateTime<chrono::Utc>) -> super::super::sweep::SweepReport {
            block_on(sweep(
                &self.w.grants(),
                &self.w.iam,
                &self.w.custody(),
                &self.w.trail(),
                &self.w.outbox(),
                &self.timelines,
                self.w.pending_timeout(),
                at,
            ))
            .unwrap()
        }
        fn new() -> Self {
            Self {
                w: World::new(),
                timelines: MemoryWorkflows::default(),
                incidents: MemoryIncidents::default(),
            }
        }
        fn declare(
            &self,
            who: &Principal,
            duration: &str,
            at: chrono::DateTime<chrono::Utc>,
        ) -> Result<AccessRequest, Error> {
            block_on(declare(
                &self.w.store,
                &self.w.trail(),
                &self.w.outbox(),
                &self.timelines,
                &self.w.catalog,
                who,
                NewRequest {
                    resource: "prod-db-admin".into(),
                    duration: Some(duration.parse().unwrap()),
                    justification: "INC-7: primary database down".into(),
                    ticket: None,
                },
                at,
            ))
        }
        fn justify(
            &self,
            who: &Principal,
            id: &RequestId,
            text: &str,
            at: chrono::DateTime<chrono::Utc>,
        ) -> Result<AccessRequest, Error> {
            block_on(justify(&self.w.store, &self.w.trail(), who, id, text, at))
        }
        fn review(
            &self,
            who: &Principal,
            id: &RequestId,
            finding: Finding,
        ) -> Result<ReviewOutcome, Error> {
            block_on(review(
                &self.w.store,
                &self.w.trail(),
                &self.w.notifier,
                &self.incidents,
                who,
                id,
                finding,
                "looked at the incident",
                monday_at(15),
            ))
            .map(|(_, outcome)| outcome)
        }
        fn nudge(&self, id: &RequestId, step: Nudge, at: chrono::DateTime<chrono::Utc>) -> bool {
            block_on(nudge(
                &self.w.store,
                &self.w.trail(),
                &self.w.notifier,
                id,
                step,
                at,
            ))
            .unwrap()
        }
        fn subjects(&self) -> Vec<String> {
            self.w
                .notifier
                .sent()
                .into_iter()
                .map(|n| n.subject)
                .collect()
        }
    }

    fn request_error(result: Result<impl std::fmt::Debug, Error>) -> RequestError {
        match result {
            Err(Error::Request(e)) => e,
            other => panic!("expected a request error, got {other:?}"),
        }
    }

    #[test]
    fn granted_at_once_with_security_told_and_the_timeline_started() {
        let g = Glass::new();
        let rita = person("rita", &["on-call"]);
        let request = g.declare(&rita, "1h", monday_at(10)).unwrap();
        assert_eq!(request.status(), Status::Approved);
        assert_eq!(
            request.routing().route,
            crate::access::risk::Route::BreakGlass
        );
        // The grant workflow and the timeline, each started once.
        assert!(g.w.workflows.started().contains_key(request.id().as_str()));
        let timeline = &g.timelines.started()[request.id().as_str()];
        assert_eq!(timeline["due"], "2026-11-24T10:00:00+00:00");
        assert_eq!(timeline["remind_at"], "2026-11-24T04:00:00+00:00");
        let sent = g.w.notifier.sent();
        assert!(sent.iter().any(|n| n.audience == Audience::Security
            && n.subject == "Break-glass: rita took prod-db-admin for 1h"));
        // An ordinary grant, time-bound in IAM.
        let report = g.w.grant(request.id(), None, monday_at(10));
        assert_eq!(report.expires_at, monday_at(11));
        assert_eq!(g.w.get(request.id()).status(), Status::Active);
        let snapshot = g.w.snapshot("rita");
        let document = snapshot.inline_policies.values().next().unwrap();
        assert_eq!(document_expiry(document), Some(monday_at(11)), "{document}");
        // Every event of it carries the break-glass flag.
        let chain = block_on(g.w.log.chain(&request_chain(request.id()))).unwrap();
        assert_eq!(chain[0].action, "breakglass.declared");
        assert!(chain.iter().all(
            |e| !e.after["break_glass"].is_null() || !e.after["state"]["break_glass"].is_null()
        ));
    }

    #[test]
    fn every_event_of_a_break_glass_request_is_flagged_and_no_other() {
        let g = Glass::new();
        let glass = g
            .declare(&person("rita", &["on-call"]), "1h", monday_at(10))
            .unwrap();
        g.w.grant(glass.id(), None, monday_at(10));
        let ordinary =
            g.w.submit(&person("carl", &[]), "billing-reports-read", "30m");
        g.w.grant(ordinary.id(), None, monday_at(10));
        let flagged = |id: &RequestId| {
            block_on(g.w.log.chain(&request_chain(id)))
                .unwrap()
                .iter()
                .map(crate::access::usecase::carries_break_glass)
                .collect::<Vec<_>>()
        };
        let glass_events = flagged(glass.id());
        assert!(glass_events.len() >= 3 && glass_events.iter().all(|f| *f));
        let other = flagged(ordinary.id());
        assert!(!other.is_empty() && other.iter().all(|f| !*f));
    }

    #[test]
    fn only_eligible_employees_break_glass_and_only_where_offered() {
        let g = Glass::new();
        // Not in the resource's eligible groups (a manager, or anyone at all).
        for who in [person("rita", &[]), person("mia", &["managers"])] {
            let err = request_error(g.declare(&who, "1h", monday_at(10)));
            assert_eq!(
                err.to_string(),
                "break-glass on `prod-db-admin` is not for you: it is for members of on-call"
            );
        }
        // In the group, but not an employee.
        for employment in [EmploymentType::Contractor, EmploymentType::Vendor] {
            let who = Principal::authenticated(
                PrincipalId::new("cora").unwrap(),
                ["on-call".to_owned()],
                employment,
            );
            let err = request_error(g.declare(&who, "1h", monday_at(10)));
            assert!(
                err.to_string().contains("only employees may break glass"),
                "{err}"
            );
        }
        // A resource that offers no break-glass: the credential checkout and the
        // billing reports, whoever asks.
        for resource in ["prod-db-root-credential", "billing-reports-read"] {
            let err = request_error(block_on(declare(
                &g.w.store,
                &g.w.trail(),
                &g.w.outbox(),
                &g.timelines,
                &g.w.catalog,
                &person("rita", &["on-call", "security", "managers"]),
                NewRequest {
                    resource: resource.into(),
                    duration: Some("1h".parse().unwrap()),
                    justification: "INC-7".into(),
                    ticket: None,
                },
                monday_at(10),
            )));
            assert!(
                err.to_string().contains("break-glass is not offered"),
                "{err}"
            );
        }
        assert!(g.w.workflows.started().is_empty(), "nothing was granted");
        assert!(g.timelines.started().is_empty());
        for who in ["rita", "mia", "cora"] {
            let stored = block_on(crate::ports::RequestQueries::by_requester(
                &g.w.store,
                &PrincipalId::new(who).unwrap(),
            ))
            .unwrap();
            assert!(stored.is_empty(), "nothing was stored for {who}");
        }
    }

    #[test]
    fn security_hears_and_the_timeline_starts_before_the_grant_even_after_a_crash() {
        let g = Glass::new();
        let rita = person("rita", &["on-call"]);
        // SNS is down when rita breaks glass: the call fails before any grant.
        g.w.notifier.fail_next();
        let err = g.declare(&rita, "1h", monday_at(10)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
        assert!(g.w.workflows.started().is_empty(), "nothing granted");
        assert!(g.timelines.started().is_empty());
        let stored = block_on(crate::ports::RequestQueries::by_requester(
            &g.w.store,
            rita.id(),
        ))
        .unwrap();
        assert_eq!(stored.len(), 1, "the request was stored before the notice");
        let id = stored[0].id().clone();
        let trail = g.w.verify_audit(&id);
        assert!(
            trail.contains(&"breakglass.declared".to_owned())
                && !trail.contains(&"breakglass.announced".to_owned()),
            "declared (signed before the row was stored), not announced yet: {trail:?}"
        );

        // The sweeper finds it approved: security is told, the timeline started and
        // the declaration recorded before the grant workflow starts.
        let later = monday_at(10) + TimeDelta::minutes(6);
        let report = g.sweep(later);
        assert_eq!(report.restarted, std::slice::from_ref(&id), "{report:?}");
        assert!(g.timelines.started().contains_key(id.as_str()));
        assert!(g.w.workflows.started().contains_key(id.as_str()));
        let told: Vec<_> =
            g.w.notifier
                .sent()
                .into_iter()
                .filter(|n| n.audience == Audience::Security)
                .collect();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(
            told[0]
                .subject
                .starts_with("Break-glass: rita took prod-db-admin")
        );
        assert!(
            g.w.verify_audit(&id)
                .contains(&"breakglass.announced".to_owned())
        );
        // The crashed declaration is the requester's, signed: it is granted.
        g.w.grant(&id, None, later);
        assert_eq!(g.w.get(&id).status(), Status::Active);
        // A second sweep does not tell security again.
        g.sweep(later + TimeDelta::minutes(6));
        assert_eq!(
            g.w.notifier
                .sent()
                .into_iter()
                .filter(|n| n.audience == Audience::Security)
                .count(),
            1
        );
    }

    /// A break-glass row written straight into the table (no declaration signed in
    /// its requester's name): the sweeper tells security of it, and the grant step
    /// refuses it. The sweeper never declares on anyone's behalf.
    #[test]
    fn a_forged_break_glass_row_is_announced_but_never_granted() {
        let g = Glass::new();
        let rita = person("rita", &["on-call"]);
        let real = g.declare(&rita, "1h", monday_at(10)).unwrap();
        let mut forged = serde_json::to_value(g.w.get(real.id())).unwrap();
        forged["id"] = serde_json::json!("req-00000000-0000-4000-8000-0000000b9a55");
        forged["version"] = serde_json::json!(0);
        let mut forged: AccessRequest = serde_json::from_value(forged).unwrap();
        block_on(g.w.store.create(&mut forged)).unwrap();
        let later = monday_at(10) + TimeDelta::minutes(6);
        g.sweep(later);
        let chain = g.w.verify_audit(forged.id());
        assert!(
            chain.contains(&"breakglass.announced".to_owned())
                && !chain.contains(&"breakglass.declared".to_owned()),
            "{chain:?}"
        );
        let err = g.w.try_grant(forged.id(), None, later).unwrap_err();
        assert!(
            err.to_string().contains("holds no signed submission"),
            "{err}"
        );
    }

    #[test]
    fn a_longer_ask_than_the_cap_is_refused_not_shortened() {
        let g = Glass::new();
        let err = request_error(g.declare(&person("rita", &["on-call"]), "3h", monday_at(10)));
        assert_eq!(
            err.to_string(),
            "break-glass is capped at 2h by policy; 3h was asked for (ask for 2h or less)"
        );
        assert!(g.w.workflows.started().is_empty());
        assert!(g.w.notifier.sent().is_empty());
    }

    #[test]
    fn only_the_requester_justifies_once_and_late_is_marked() {
        let g = Glass::new();
        let rita = person("rita", &["on-call"]);
        let id = g.declare(&rita, "1h", monday_at(10)).unwrap().id().clone();
        let other = person("carl", &[]);
        assert!(matches!(
            g.justify(&other, &id, "mine", monday_at(12)),
            Err(Error::NotFound(_))
        ));
        let late = monday_at(10) + TimeDelta::hours(25);
        let justified = g.justify(&rita, &id, "restored the primary", late).unwrap();
        let given = justified
            .break_glass_state()
            .unwrap()
            .justification()
            .unwrap();
        assert!(given.late);
        // The same text again changes nothing; another is refused.
        g.justify(&rita, &id, "restored the primary", late).unwrap();
        assert_eq!(
            request_error(g.justify(&rita, &id, "something else", late)),
            RequestError::AlreadyJustified
        );
        let actions = g.w.verify_audit(&id);
        assert_eq!(
            actions
                .iter()
                .filter(|a| *a == "breakglass.justified")
                .count(),
            1
        );
    }

    #[test]
    fn the_review_takes_a_manager_and_security_never_the_requester() {
        let g = Glass::new();
        let rita = person("rita", &["managers", "on-call"]);
        let id = g.declare(&rita, "1h", monday_at(10)).unwrap().id().clone();
        let mia = person("mia", &["managers"]);
        let sam = person("sam", &["security"]);
        let dana = person("dana", &[]);
        // Nothing justified yet: a `justified` finding has nothing to stand on.
        assert_eq!(
            request_error(g.review(&mia, &id, Finding::Justified)),
            RequestError::JustificationMissing
        );
        g.justify(&rita, &id, "restored the primary", monday_at(12))
            .unwrap();
        assert!(matches!(
            request_error(g.review(&rita, &id, Finding::Justified)),
            RequestError::SelfApproval(_)
        ));
        assert!(matches!(
            request_error(g.review(&dana, &id, Finding::Justified)),
            RequestError::NotEligible { .. }
        ));
        assert_eq!(
            g.review(&mia, &id, Finding::Justified).unwrap(),
            ReviewOutcome::Recorded {
                remaining: vec!["security".into()]
            }
        );
        assert_eq!(
            g.review(&mia, &id, Finding::Justified).unwrap(),
            ReviewOutcome::AlreadyRecorded
        );
        // A second manager cannot fill security's place.
        assert!(matches!(
            request_error(g.review(&person("max", &["managers"]), &id, Finding::Justified)),
            RequestError::NotEligible { .. }
        ));
        assert_eq!(
            g.review(&sam, &id, Finding::Justified).unwrap(),
            ReviewOutcome::Justified
        );
        assert!(g.incidents.opened().is_empty());
        assert_eq!(
            request_error(g.review(&person("sue", &["security"]), &id, Finding::Unjustified)),
            RequestError::ReviewClosed
        );
    }

    #[test]
    fn an_unjustified_finding_opens_one_incident_even_across_a_bus_outage() {
        let g = Glass::new();
        let rita = person("rita", &["on-call"]);
        let id = g.declare(&rita, "1h", monday_at(10)).unwrap().id().clone();
        let sam = person("sam", &["security"]);
        g.incidents.fail_next();
        assert!(matches!(
            g.review(&sam, &id, Finding::Unjustified),
            Err(Error::Bus(_))
        ));
        // The finding was kept; the retry opens the incident.
        assert_eq!(
            g.review(&sam, &id, Finding::Unjustified).unwrap(),
            ReviewOutcome::AlreadyRecorded
        );
        let opened = g.incidents.opened();
        assert_eq!(opened.len(), 1);
        assert_eq!(opened[0].id, format!("breakglass-{id}"));
        assert_eq!(opened[0].subject.as_str(), "rita");
        assert!(
            g.subjects()
                .contains(&"Incident: unjustified break-glass by rita".to_owned())
        );
        let actions = g.w.verify_audit(&id);
        assert!(
            actions.contains(&"breakglass.incident".to_owned()),
            "{actions:?}"
        );
        // A justification after the incident is too late to change it.
        assert_eq!(
            request_error(g.justify(&rita, &id, "it was needed", monday_at(16))),
            RequestError::ReviewClosed
        );
    }

    #[test]
    fn the_timeline_reminds_then_escalates_once_each_unless_answered() {
        let g = Glass::new();
        let rita = person("rita", &["on-call"]);
        let id = g.declare(&rita, "1h", monday_at(10)).unwrap().id().clone();
        let remind_at = monday_at(10) + TimeDelta::hours(18);
        let due = monday_at(10) + TimeDelta::hours(24);
        assert!(!g.nudge(&id, Nudge::Remind, remind_at - TimeDelta::minutes(1)));
        assert!(g.nudge(&id, Nudge::Remind, remind_at));
        assert!(!g.nudge(&id, Nudge::Remind, remind_at));
        assert!(!g.nudge(&id, Nudge::Escalate, due - TimeDelta::seconds(1)));
        assert!(g.nudge(&id, Nudge::Escalate, due));
        assert!(!g.nudge(&id, Nudge::Escalate, due));
        let overdue: Vec<_> =
            g.w.notifier
                .sent()
                .into_iter()
                .filter(|n| n.subject.starts_with("Overdue: rita"))
                .map(|n| n.audience)
                .collect();
        assert_eq!(
            overdue,
            [
                Audience::Approvers {
                    groups: vec!["managers".into(), "security".into()]
                },
                Audience::Security
            ]
        );
        let reminders = g
            .subjects()
            .into_iter()
            .filter(|s| s.starts_with("Reminder:"))
            .count();
        assert_eq!(reminders, 1);
        // Answered in time: nothing more is due.
        let other = g.declare(&rita, "1h", monday_at(11)).unwrap().id().clone();
        g.justify(&rita, &other, "restored the primary", monday_at(12))
            .unwrap();
        assert!(!g.nudge(&other, Nudge::Remind, due));
        assert!(!g.nudge(&other, Nudge::Escalate, due + TimeDelta::hours(2)));
    }

    #[test]
    fn the_third_use_in_thirty_days_alerts_security() {
        let g = Glass::new();
        let rita = person("rita", &["on-call"]);
        let frequent = |g: &Glass| {
            g.subjects()
                .iter()
                .filter(|s| s.starts_with("Frequent break-glass use by rita"))
                .count()
        };
        let first = g.declare(&rita, "1h", monday_at(8)).unwrap();
        assert!(!first.context().open_break_glass);
        let second = g.declare(&rita, "1h", monday_at(9)).unwrap();
        // The first is unanswered: the second scores for it.
        assert!(second.context().open_break_glass);
        assert!(
            second
                .risk()
                .factors
                .iter()
                .any(|f| f.name == "open_break_glass")
        );
        assert_eq!(frequent(&g), 0);
        let third = g.declare(&rita, "1h", monday_at(10)).unwrap();
        assert_eq!(frequent(&g), 1);
        assert!(
            g.w.verify_audit(third.id())
                .contains(&"breakglass.frequent_use".to_owned())
        );
    }
}

// ---- credential checkout ----------------------------------------------------------

mod checkout {
    use super::*;
    use crate::access::request::RequestError;
    use crate::access::usecase::checkout::{
        CheckinOutcome, CheckoutOutcome, ContainOutcome, check_in, checkout, contain,
        contained_version, rotated_version,
    };
    use crate::access::usecase::lifecycle::revoke_now;
    use crate::ports::Leases;

    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:lapse/prod-db-root";
    /// The rotation function the shipped catalog names for [`SECRET`].
    const ROTATION: &str = "arn:aws:lambda:us-east-1:123456789012:function:prod-db-root-rotation";

    struct Vaulted {
        w: World,
        leases: MemoryLeases,
        vault: MemoryVault,
    }

    impl Vaulted {
        fn new() -> Self {
            let vault = MemoryVault::default();
            vault.add(SECRET, "v1", Some(ROTATION));
            Self {
                w: World::new(),
                leases: MemoryLeases::default(),
                vault,
            }
        }
        /// An approved checkout request (dual approval: a manager and security).
        fn approved(&self, who: &str) -> AccessRequest {
            let requester = person(who, &[]);
            let request = self.w.submit(&requester, "prod-db-root-credential", "1h");
            self.w
                .decide(
                    &person("mia", &["managers"]),
                    request.id(),
                    Verdict::Approve,
                )
                .unwrap();
            self.w
                .decide(
                    &person("sam", &["security"]),
                    request.id(),
                    Verdict::Approve,
                )
                .unwrap();
            self.w.get(request.id())
        }
        fn checkout(&self, id: &RequestId) -> Result<CheckoutOutcome, Error> {
            block_on(checkout(
                &self.w.catalog,
                &self.w.store,
                &self.leases,
                &self.vault,
                &self.w.trail(),
                &self.w.notifier,
                id,
                monday_at(10),
            ))
        }
        /// The failure path's containment of this request's credential.
        fn contain(&self, id: &RequestId) -> Result<ContainOutcome, Error> {
            block_on(contain(
                &self.w.store,
                &self.leases,
                &self.vault,
                &self.w.trail(),
                id,
                "its grant workflow failed",
            ))
        }
        fn check_in(&self, id: &RequestId) -> Result<CheckinOutcome, Error> {
            block_on(check_in(
                &self.w.store,
                &self.leases,
                &self.vault,
                &self.w.trail(),
                id,
            ))
        }
    }

    #[test]
    fn two_checkouts_of_one_credential_never_both_succeed() {
        let v = Vaulted::new();
        let first = v.approved("rita");
        let second = v.approved("carl");
        assert_eq!(
            crate::access::usecase::workflow_input(&first).1["checkout"],
            true
        );
        assert_eq!(
            v.checkout(first.id()).unwrap(),
            CheckoutOutcome::CheckedOut {
                version_id: "v1".into()
            }
        );
        // Again for the same request: the same lease, unchanged.
        assert_eq!(
            v.checkout(first.id()).unwrap(),
            CheckoutOutcome::CheckedOut {
                version_id: "v1".into()
            }
        );
        assert_eq!(
            v.checkout(second.id()).unwrap(),
            CheckoutOutcome::InUse {
                by: first.id().clone()
            }
        );
        assert_eq!(v.w.get(second.id()).status(), Status::Cancelled);
        assert!(v.w.notifier.sent().iter().any(|n| n.audience
            == Audience::Person {
                id: crate::identity::PrincipalId::new("carl").unwrap()
            }
            && n.subject == "Not granted: prod-db-root-credential is checked out"));
    }

    #[test]
    fn check_in_rotates_proves_the_old_version_gone_and_releases() {
        let v = Vaulted::new();
        let request = v.approved("rita");
        v.checkout(request.id()).unwrap();
        v.w.grant(request.id(), None, monday_at(10));
        // Not before the grant is revoked.
        assert!(matches!(
            v.check_in(request.id()),
            Err(Error::Request(RequestError::InvalidTransition { .. }))
        ));
        block_on(revoke_now(
            &v.w.grants(),
            &v.w.iam,
            &v.w.trail(),
            &v.w.catalog,
            &person("rita", &[]),
            request.id(),
            monday_at(10) + TimeDelta::minutes(20),
        ))
        .unwrap();
        let rotated = rotated_version(request.id());
        assert_eq!(
            v.check_in(request.id()).unwrap(),
            CheckinOutcome::CheckedIn {
                rotated_from: "v1".into(),
                current: rotated.clone()
            }
        );
        assert_eq!(v.vault.versions(SECRET), ["v1".to_owned(), rotated]);
        assert_eq!(
            v.check_in(request.id()).unwrap(),
            CheckinOutcome::AlreadyCheckedIn
        );
        // Released: the next checkout gets the new version.
        let next = v.approved("carl");
        assert!(matches!(
            v.checkout(next.id()).unwrap(),
            CheckoutOutcome::CheckedOut { version_id } if version_id == rotated_version(request.id())
        ));
        let actions = v.w.verify_audit(request.id());
        for action in [
            "credential.checked_out",
            "credential.rotated",
            "credential.checked_in",
        ] {
            assert_eq!(
                actions.iter().filter(|a| *a == action).count(),
                1,
                "{action} in {actions:?}"
            );
        }
    }

    #[test]
    fn a_failed_workflow_kills_the_checked_out_value_and_the_sweep_checks_it_in() {
        let v = Vaulted::new();
        let request = v.approved("rita");
        v.checkout(request.id()).unwrap();
        v.w.grant(request.id(), None, monday_at(10));
        // The workflow failed with the grant still in IAM (its revoke step, say):
        // the value rita read dies now, but the lease stays while she may still
        // read the secret.
        let contained = v.contain(request.id()).unwrap();
        assert_eq!(
            contained,
            ContainOutcome::Rotated {
                current: contained_version(request.id()),
                released: false
            }
        );
        assert!(block_on(v.leases.get(SECRET)).unwrap().is_some());
        // Contained again (a retried task): the same version, nothing new.
        v.contain(request.id()).unwrap();
        assert_eq!(v.vault.versions(SECRET).len(), 2);

        // The sweep revokes the overdue grant, verifies it, and checks the
        // credential in: rotated once more, the lease released.
        let drops = MemoryCredentialDrop::default();
        let report = block_on(sweep(
            &v.w.grants(),
            &v.w.iam,
            &Custody {
                leases: &v.leases,
                vault: &v.vault,
                drops: &drops,
            },
            &v.w.trail(),
            &v.w.outbox(),
            &MemoryWorkflows::default(),
            v.w.pending_timeout(),
            monday_at(12),
        ))
        .unwrap();
        assert_eq!(
            report.revoked,
            std::slice::from_ref(request.id()),
            "{report:?}"
        );
        assert_eq!(
            v.vault.versions(SECRET),
            [
                "v1".to_owned(),
                contained_version(request.id()),
                rotated_version(request.id())
            ]
        );
        assert!(block_on(v.leases.get(SECRET)).unwrap().is_none());
        let actions = v.w.verify_audit(request.id());
        assert_eq!(
            actions
                .iter()
                .filter(|a| *a == "credential.rotated")
                .count(),
            2,
            "{actions:?}"
        );
    }

    #[test]
    fn a_failed_checkout_never_granted_releases_its_lease_at_once() {
        let v = Vaulted::new();
        let request = v.approved("rita");
        v.checkout(request.id()).unwrap();
        assert_eq!(
            v.contain(request.id()).unwrap(),
            ContainOutcome::Rotated {
                current: contained_version(request.id()),
                released: true
            }
        );
        assert!(block_on(v.leases.get(SECRET)).unwrap().is_none());
        // A request that holds no lease has nothing to contain.
        let other = v.approved("carl");
        assert_eq!(v.contain(other.id()).unwrap(), ContainOutcome::NotHeld);
    }

    /// A vault whose rotation function never finishes (it failed, or is still
    /// running): the new version stays pending, the old one current.
    struct StuckVault(MemoryVault, std::sync::Mutex<Option<String>>);

    impl crate::ports::CredentialVault for StuckVault {
        async fn state(
            &self,
            secret_arn: &str,
        ) -> Result<crate::ports::SecretState, crate::ports::VaultError> {
            let mut state = self.0.state(secret_arn).await?;
            state.pending = self.1.lock().unwrap().clone();
            Ok(state)
        }
        async fn rotate(
            &self,
            _: &str,
            version: &str,
            _: &str,
        ) -> Result<(), crate::ports::VaultError> {
            *self.1.lock().unwrap() = Some(version.to_owned());
            Ok(())
        }
    }

    #[test]
    fn a_rotation_that_did_not_finish_is_not_called_rotated_and_keeps_the_lease() {
        let v = Vaulted::new();
        let request = v.approved("rita");
        v.checkout(request.id()).unwrap();
        v.w.grant(request.id(), None, monday_at(10));
        block_on(revoke_now(
            &v.w.grants(),
            &v.w.iam,
            &v.w.trail(),
            &v.w.catalog,
            &person("rita", &[]),
            request.id(),
            monday_at(10) + TimeDelta::minutes(20),
        ))
        .unwrap();
        let stuck = StuckVault(MemoryVault::default(), Default::default());
        stuck.0.add(SECRET, "v1", Some(ROTATION));
        let err = block_on(check_in(
            &v.w.store,
            &v.leases,
            &stuck,
            &v.w.trail(),
            request.id(),
        ))
        .unwrap_err();
        // Retried by the workflow (the function may still be running); after the
        // retries, the failure path alarms.
        assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
        assert!(
            err.to_string()
                .contains("v1 is still current; the rotation is in flight"),
            "{err}"
        );
        assert!(block_on(v.leases.get(SECRET)).unwrap().is_some());
        let actions = v.w.verify_audit(request.id());
        assert!(
            !actions.iter().any(|a| a == "credential.rotated"),
            "{actions:?}"
        );
    }

    #[test]
    fn a_secret_that_does_not_rotate_with_the_catalogs_function_is_never_checked_out() {
        for rotation in [
            None,
            Some("arn:aws:lambda:us-east-1:123456789012:function:noop"),
        ] {
            let v = Vaulted::new();
            let vault = MemoryVault::default();
            vault.add(SECRET, "v1", rotation);
            let request = v.approved("rita");
            let err = block_on(checkout(
                &v.w.catalog,
                &v.w.store,
                &v.leases,
                &vault,
                &v.w.trail(),
                &v.w.notifier,
                request.id(),
                monday_at(10),
            ))
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
            let found = match rotation {
                None => "its rotation is off".to_owned(),
                Some(other) => format!("it rotates with {other}"),
            };
            assert!(
                err.to_string()
                    .contains(&format!("does not rotate with {ROTATION} ({found})")),
                "{err}"
            );
            // No lease taken, so no grant can follow.
            assert!(block_on(v.leases.get(SECRET)).unwrap().is_none());
        }
    }
}

// ---- vendor access ------------------------------------------------------------------

mod vendor_access {
    use super::*;
    use crate::access::usecase::vendor::{Retired, deactivate, provision, retire, sponsor};
    use crate::access::vendor::{BASE_POLICY, VendorAsk};
    use crate::revocation::ports::UserControls;

    struct Vendors {
        w: World,
        drop: MemoryCredentialDrop,
    }

    impl Vendors {
        fn sponsor(&self, duration: &str) -> Result<AccessRequest, Error> {
            block_on(sponsor(
                &self.w.store,
                &self.w.trail(),
                &self.w.outbox(),
                &self.w.catalog,
                &person("rita", &[]),
                NewRequest {
                    resource: "staging-logs-read".into(),
                    duration: Some(duration.parse().unwrap()),
                    justification: "migrate the log pipeline".into(),
                    ticket: Some("PRJ-42".into()),
                },
                &VendorAsk {
                    id: "acme".into(),
                    email: "ops@acme.example".into(),
                },
                monday_at(10),
            ))
        }
    }

    #[test]
    fn a_vendor_is_made_granted_deactivated_and_deleted_after_the_retention() {
        let v = Vendors {
            w: World::new(),
            drop: MemoryCredentialDrop::default(),
        };
        let request = v.sponsor("4h").unwrap();
        // Two approvals whatever the score; never the sponsor's own.
        assert_eq!(request.status(), Status::Pending);
        assert_eq!(request.open_slots(), ["managers", "security"]);
        assert!(matches!(
            v.w.decide(
                &person("rita", &["managers"]),
                request.id(),
                Verdict::Approve
            ),
            Err(Error::Request(
                crate::access::request::RequestError::SelfApproval(_)
            ))
        ));
        v.w.decide(
            &person("mia", &["managers"]),
            request.id(),
            Verdict::Approve,
        )
        .unwrap();
        v.w.decide(
            &person("sam", &["security"]),
            request.id(),
            Verdict::Approve,
        )
        .unwrap();
        let user = request.grantee().clone();
        assert!(user.as_str().starts_with("vendor-acme-"), "{user}");

        let made = block_on(provision(
            &v.w.store,
            &v.w.iam,
            &v.w.iam,
            &v.drop,
            &v.w.trail(),
            &v.w.notifier,
            &v.w.catalog,
            request.id(),
            monday_at(10),
        ))
        .unwrap();
        assert!(made.password_set);
        let snapshot = v.w.snapshot(user.as_str());
        assert!(snapshot.inline_policies.contains_key(BASE_POLICY));
        let tags = v.w.iam.tags(&user);
        assert!(
            tags.contains(&("lapse:sponsor".into(), "rita".into())),
            "{tags:?}"
        );
        assert!(
            tags.contains(&("lapse:project".into(), "PRJ-42".into())),
            "{tags:?}"
        );
        let (reader, until) = v.drop.reader(&made.secret).unwrap();
        assert_eq!((reader.as_str(), until), ("rita", monday_at(14)));
        // Again: nothing new, the same secret.
        let again = block_on(provision(
            &v.w.store,
            &v.w.iam,
            &v.w.iam,
            &v.drop,
            &v.w.trail(),
            &v.w.notifier,
            &v.w.catalog,
            request.id(),
            monday_at(10),
        ))
        .unwrap();
        assert!(!again.password_set);

        // The grant goes to the vendor's user, not the sponsor.
        v.w.grant(request.id(), None, monday_at(10));
        assert!(v.w.snapshot(user.as_str()).inline_policies.len() == 2);
        assert!(v.w.snapshot("rita").inline_policies.is_empty());

        // Not deactivated while the grant runs.
        let early = block_on(deactivate(
            &v.w.store,
            &v.w.iam,
            &v.drop,
            &v.w.trail(),
            &v.w.catalog,
            request.id(),
            monday_at(12),
        ));
        assert!(early.is_err());
        block_on(revoke(
            &v.w.grants(),
            &v.w.iam,
            &v.w.trail(),
            request.id(),
            RevokeCause::Expiry,
            "lapse",
            monday_at(14),
        ))
        .unwrap();
        let done = block_on(deactivate(
            &v.w.store,
            &v.w.iam,
            &v.drop,
            &v.w.trail(),
            &v.w.catalog,
            request.id(),
            monday_at(14),
        ))
        .unwrap();
        let after = v.w.iam.user(&user).unwrap();
        assert!(!after.login_profile, "{after:?}");
        // Only the deny of sessions issued before the deactivation is left.
        assert_eq!(
            after.inline_policies.keys().collect::<Vec<_>>(),
            [crate::revocation::plan::SESSION_DENY_POLICY],
            "{after:?}"
        );
        assert!(v.drop.reader(&made.secret).is_none(), "the secret is gone");
        assert_eq!(done.retire_at, monday_at(14) + TimeDelta::days(30));

        // Not before the retention; held by a legal hold; then deleted.
        let retire_at = |at| {
            block_on(retire(
                &v.w.store,
                &v.w.iam,
                &v.w.controls,
                &v.w.trail(),
                &v.w.catalog,
                request.id(),
                at,
            ))
        };
        assert!(matches!(
            retire_at(done.retire_at - TimeDelta::seconds(1)),
            Err(Error::NotDue { .. })
        ));
        let mut hold = block_on(v.w.controls.controls(&user)).unwrap();
        hold.legal_hold = true;
        block_on(v.w.controls.set(&user, &mut hold)).unwrap();
        assert_eq!(
            retire_at(done.retire_at).unwrap(),
            Retired::Held { user: user.clone() }
        );
        assert!(v.w.iam.user(&user).is_some());
        hold.legal_hold = false;
        block_on(v.w.controls.set(&user, &mut hold)).unwrap();
        assert_eq!(
            retire_at(done.retire_at).unwrap(),
            Retired::Deleted { user: user.clone() }
        );
        assert!(v.w.iam.user(&user).is_none());
        let actions = v.w.verify_audit(request.id());
        for action in [
            "vendor.provisioned",
            "vendor.deactivated",
            "vendor.retained",
            "vendor.deleted",
        ] {
            assert_eq!(
                actions.iter().filter(|a| *a == action).count(),
                1,
                "{action} in {actions:?}"
            );
        }
    }

    #[test]
    fn vendor_asks_are_checked() {
        let v = Vendors {
            w: World::new(),
            drop: MemoryCredentialDrop::default(),
        };
        let no_project = block_on(sponsor(
            &v.w.store,
            &v.w.trail(),
            &v.w.outbox(),
            &v.w.catalog,
            &person("rita", &[]),
            NewRequest {
                resource: "staging-logs-read".into(),
                duration: None,
                justification: "x".into(),
                ticket: None,
            },
            &VendorAsk {
                id: "acme".into(),
                email: "ops@acme.example".into(),
            },
            monday_at(10),
        ));
        assert!(
            matches!(&no_project, Err(Error::Request(crate::access::request::RequestError::InvalidVendor(why))) if why.contains("project")),
            "{no_project:?}"
        );
        let too_long = v.sponsor("12h");
        assert!(
            matches!(
                too_long,
                Err(Error::Request(
                    crate::access::request::RequestError::DurationTooLong { .. }
                ))
            ),
            "{too_long:?}"
        );
    }
}

mod assume_role {
    //! A grant that lets its holder assume a role: only roles Lapse manages, every
    //! session marked with the holder's name, and at the grant's end a deny of
    //! those sessions on the role, verified by its content.

    use super::*;
    use crate::access::role_denies::{ROLE_DENY_POLICY, RoleDenies};
    use chrono::{DateTime, Utc};

    /// The role's deny listing only `user`'s ended grants before `cutoff`.
    fn ended_deny(user: &PrincipalId, cutoff: DateTime<Utc>) -> serde_json::Value {
        let mut denies = RoleDenies::default();
        denies.end_grant(user, cutoff);
        denies.document().unwrap()
    }

    fn ended_cutoff(document: &serde_json::Value, user: &PrincipalId) -> Option<DateTime<Utc>> {
        RoleDenies::parse(document).and_then(|d| d.ended_cutoff(user))
    }
    use crate::identity::PrincipalId;

    const ROLE: &str = "arn:aws:iam::123456789012:role/team/reporting";

    fn world() -> World {
        let mut w = World::new();
        w.catalog = crate::testing::catalog_assuming_role(ROLE);
        w
    }

    /// Rita's approved (two approvers: it escalates) request for the role.
    fn approved(w: &World) -> RequestId {
        let rita = person("rita", &[]);
        let req = w.submit(&rita, "billing-reports-read", "1h");
        assert_eq!(req.assumable_roles(), [ROLE]);
        w.decide(&person("mia", &["managers"]), req.id(), Verdict::Approve)
            .unwrap();
        w.decide(&person("sam", &["security"]), req.id(), Verdict::Approve)
            .unwrap();
        assert_eq!(w.get(req.id()).status(), Status::Approved);
        req.id().clone()
    }

    fn grant_err(w: &World, id: &RequestId) -> Error {
        block_on(grant(
            &w.grants(),
            &w.iam,
            &w.controls,
            &w.trail(),
            &w.catalog,
            &WorkflowInput {
                request_id: id.clone(),
                extension_id: None,
            },
            monday_at(12),
        ))
        .unwrap_err()
    }

    #[test]
    fn a_role_lapse_does_not_manage_is_never_granted() {
        let w = world();
        let id = approved(&w);
        let absent = grant_err(&w, &id);
        assert!(
            absent.to_string().contains("IAM has no such role"),
            "{absent}"
        );
        w.iam.add_role("reporting", false);
        let untagged = grant_err(&w, &id);
        assert!(
            untagged
                .to_string()
                .contains("not tagged lapse:managed=true"),
            "{untagged}"
        );
        assert_eq!(untagged.kind(), ErrorKind::Configuration);
        assert_eq!(w.get(&id).status(), Status::Approved, "nothing activated");
        assert!(
            w.snapshot("rita").inline_policies.is_empty(),
            "IAM untouched"
        );
    }

    #[test]
    fn an_ended_grants_sessions_are_denied_on_the_role_and_verified_by_content() {
        let w = world();
        w.iam.add_role("reporting", true);
        let id = approved(&w);
        w.grant(&id, None, monday_at(12));
        let policy =
            &w.snapshot("rita").inline_policies[&format!("lapse-billing-reports-read-{id}")];
        let statement = &policy["Statement"][0];
        assert_eq!(
            statement["Condition"]["StringEquals"]["sts:SourceIdentity"], "${aws:username}",
            "every session carries the holder's name: {policy}"
        );
        assert!(
            statement["Action"]
                .as_array()
                .unwrap()
                .contains(&"sts:SetSourceIdentity".into())
        );
        assert!(document_expiry(policy).is_some(), "still time-bound");

        let rita = PrincipalId::new("rita").unwrap();
        let revoked_at = monday_at(12) + TimeDelta::minutes(20);
        block_on(revoke(
            &w.grants(),
            &w.iam,
            &w.trail(),
            &id,
            RevokeCause::EarlyRevoke,
            "rita",
            revoked_at,
        ))
        .unwrap();
        let role = w.iam.role("reporting").unwrap();
        let deny = &role.policies[ROLE_DENY_POLICY];
        let cutoff = revoked_at + TimeDelta::seconds(1);
        assert_eq!(*deny, ended_deny(&rita, cutoff));
        assert_eq!(ended_cutoff(deny, &rita), Some(cutoff));
        let verify_at = |at| block_on(verify(&w.grants(), &w.iam, &w.trail(), &id, at));
        verify_at(revoked_at).unwrap();

        // The deny is judged by content: an earlier cutoff, another user's deny
        // under this name, or none at all fails the re-verification.
        let tamper = |doc: Option<serde_json::Value>| {
            let mut roles = crate::memory::lock(&w.iam.roles);
            let policies = &mut roles.get_mut("reporting").unwrap().policies;
            match doc {
                Some(doc) => policies.insert(ROLE_DENY_POLICY.to_owned(), doc),
                None => policies.remove(ROLE_DENY_POLICY),
            };
        };
        for forged in [
            Some(ended_deny(&rita, monday_at(12))),
            Some(ended_deny(&PrincipalId::new("carl").unwrap(), cutoff)),
            None,
        ] {
            tamper(forged.clone());
            let err = verify_at(revoked_at).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::VerificationFailed, "{forged:?}");
            assert!(err.to_string().contains("role reporting"), "{err}");
        }
        // A retried revoke puts it back, and never lowers a later cutoff.
        block_on(revoke(
            &w.grants(),
            &w.iam,
            &w.trail(),
            &id,
            RevokeCause::EarlyRevoke,
            "rita",
            revoked_at + TimeDelta::hours(1),
        ))
        .unwrap();
        verify_at(revoked_at).unwrap();
        tamper(Some(ended_deny(&rita, monday_at(20))));
        block_on(revoke(
            &w.grants(),
            &w.iam,
            &w.trail(),
            &id,
            RevokeCause::EarlyRevoke,
            "rita",
            revoked_at + TimeDelta::hours(2),
        ))
        .unwrap();
        assert_eq!(
            ended_cutoff(
                &w.iam.role("reporting").unwrap().policies[ROLE_DENY_POLICY],
                &rita
            ),
            Some(monday_at(20))
        );

        // Issue 21, item 22: the role keeps one deny for everyone, pruned as it is
        // written. A day on, another holder's grant ends: rita's entry, whose
        // sessions have all expired, goes, and her grant still verifies (nothing
        // issued before its cutoff can be live).
        let carl = PrincipalId::new("carl").unwrap();
        let day_on = monday_at(20) + TimeDelta::days(1);
        block_on(crate::access::role_denies::update(
            &w.iam,
            "reporting",
            day_on,
            |d| d.end_grant(&carl, day_on),
        ))
        .unwrap();
        let role = w.iam.role("reporting").unwrap();
        assert_eq!(role.policies.len(), 1, "{:?}", role.policies);
        assert_eq!(role.policies[ROLE_DENY_POLICY], ended_deny(&carl, day_on));
        verify_at(day_on).unwrap();
    }

    #[test]
    fn vendors_are_not_given_grants_that_assume_roles() {
        let w = world();
        let err = AccessRequest::vendor(
            NewRequest {
                resource: "billing-reports-read".into(),
                duration: Some("1h".parse().unwrap()),
                justification: "audit".into(),
                ticket: Some("PRJ-1".into()),
            },
            &crate::access::vendor::VendorAsk {
                id: "acme-ann".into(),
                email: "ann@acme.example".into(),
            },
            &person("rita", &[]),
            crate::testing::employee_context(),
            &w.catalog,
            monday_at(10),
        )
        .unwrap_err();
        assert!(err.to_string().contains("role session escapes"), "{err}");
    }
}
