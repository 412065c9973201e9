//! The end-to-end demo: what Lapse does, run against real AWS APIs (the local
//! emulator when `AWS_ENDPOINT_URL` points at it), printed for a person to read.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::Client;
use chrono::{TimeZone, Utc};
use lapse_aws::dynamodb::{DynamoDbAuditLog, DynamoDbRequestStore, Tables, provision_local};
use lapse_core::audit::AuditDraft;
use lapse_core::audit::{AuditSigner, AuditVerifier, verify_chain};
use lapse_core::identity::{EmploymentType, Principal, PrincipalId};
use lapse_core::policy::Catalog;
use lapse_core::ports::{AuditLog, RequestStore};
use lapse_core::request::{AccessRequest, NewRequest};
use lapse_core::risk::RequesterContext;
use lapse_core::usecase::{AuditTrail, request_chain, state_of};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The policy catalog to run with.
    #[arg(long, default_value = "infra/policy/catalog.yaml")]
    policy: PathBuf,
    /// Prefix for the tables the demo creates.
    #[arg(long, default_value = "lapse-demo")]
    prefix: String,
}

fn heading(text: &str) {
    println!("\n== {text}");
}

fn describe(request: &AccessRequest) {
    let risk = request.risk();
    println!(
        "   {} asks for {} for {}: \"{}\"",
        request.requester(),
        request.resource(),
        request.duration(),
        request.justification()
    );
    println!("   risk {} ({:?}):", risk.score, risk.level);
    for factor in &risk.factors {
        println!(
            "     +{:<3} {:<17} {}",
            factor.points, factor.name, factor.reason
        );
    }
    println!("   route: {}", request.routing().reason);
    println!("   status: {}", request.status());
}

pub async fn run(args: DemoArgs) -> Result<()> {
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "(default AWS endpoints)".into());
    println!("Lapse demo — AWS endpoint: {endpoint}");

    heading("1. Policy catalog");
    let catalog = Catalog::load(&args.policy)
        .with_context(|| format!("loading {}", args.policy.display()))?;
    println!(
        "   {} is valid; policy hash {}",
        args.policy.display(),
        catalog.hash()
    );
    for resource in catalog.resources() {
        println!(
            "   - {:<22} {:?}/{:?}{} max {}",
            resource.id,
            resource.environment,
            resource.sensitivity,
            if resource.privileged {
                ", privileged,"
            } else {
                ""
            },
            resource.max_duration
        );
    }

    heading("2. Local stack");
    let config = lapse_aws::sdk::load().await;
    let client = Client::new(&config);
    let suffix = Utc::now().format("%Y%m%d%H%M%S").to_string();
    let tables = Tables::with_prefix(&format!("{}-{suffix}", args.prefix));
    provision_local(&client, &tables)
        .await
        .context("creating DynamoDB tables")?;
    println!(
        "   DynamoDB tables {} and {} ready",
        tables.requests, tables.audit
    );
    let store = DynamoDbRequestStore::new(client.clone(), &tables.requests);
    let log = DynamoDbAuditLog::new(client, &tables.audit);
    let (signer, _seed) = AuditSigner::generate("demo-key").context("generating the audit key")?;
    println!(
        "   audit signing key {} (Ed25519, public {})",
        signer.key_id(),
        signer.public_key_hex()
    );

    heading("3. Requests: scored, routed, persisted, read back");
    // A fixed Monday morning keeps the off-hours factor out of the demo's scores.
    let at = Utc
        .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
        .single()
        .context("demo instant")?;
    let cases = [
        (
            "dana",
            EmploymentType::Employee,
            "billing-reports-read",
            "30m",
            "Reconcile the October invoice",
        ),
        (
            "carl",
            EmploymentType::Contractor,
            "staging-logs-read",
            "4h",
            "Debug the failing staging deploy",
        ),
        (
            "erin",
            EmploymentType::Employee,
            "prod-db-admin",
            "2h",
            "CHG-1042: rotate the replica",
        ),
    ];
    let verifier = AuditVerifier::new().trust(signer.key_id(), &signer.public_key_hex())?;
    for (n, (who, employment, resource, duration, why)) in cases.into_iter().enumerate() {
        let requester = Principal::authenticated(PrincipalId::new(who)?, Vec::new(), employment);
        let context = RequesterContext {
            employment,
            first_time: n == 1,
            recent_denials: 0,
            open_break_glass: false,
        };
        let input = NewRequest {
            resource: resource.into(),
            duration: Some(duration.parse()?),
            justification: why.into(),
            ticket: None,
        };
        let trail = AuditTrail {
            log: &log,
            signer: &signer,
            policy_hash: catalog.hash(),
        };
        let mut request = AccessRequest::submit(input, &requester, context, &catalog, at)?;
        store.create(&mut request).await?;
        trail
            .record(AuditDraft {
                chain: request_chain(request.id()),
                key: "request.submitted".into(),
                actor: requester.id().to_string(),
                action: "request.submitted".into(),
                subject: request.id().to_string(),
                reason: request.justification().to_owned(),
                before: serde_json::Value::Null,
                after: state_of(&request),
                at,
            })
            .await?;
        println!();
        describe(&request);
        let stored = store
            .get(request.id())
            .await?
            .context("request missing after write")?;
        if stored != request {
            bail!(
                "request {} read back differently from how it was written",
                request.id()
            );
        }
        println!(
            "   stored in DynamoDB as {} (version {}), read back identical",
            stored.id(),
            stored.version()
        );
        let chain = request_chain(request.id());
        let events = log.chain(&chain).await?;
        let head = verify_chain(&chain, &events, &verifier, None)?;
        for event in &events {
            println!(
                "   audit {}#{} {} by {} — signed, hash {}…",
                event.chain,
                event.seq,
                event.action,
                event.actor,
                &event.hash[..16]
            );
        }
        println!(
            "   audit chain verified (head seq {})",
            head.map_or(0, |h| h.seq)
        );
    }

    heading("4. Invalid input is refused with a reason");
    let bad = NewRequest {
        resource: "prod-db-admin".into(),
        duration: Some("6h".parse()?),
        justification: "just because".into(),
        ticket: None,
    };
    let who = Principal::authenticated(
        PrincipalId::new("erin")?,
        Vec::new(),
        EmploymentType::Employee,
    );
    match AccessRequest::submit(
        bad,
        &who,
        RequesterContext {
            employment: EmploymentType::Employee,
            first_time: false,
            recent_denials: 0,
            open_break_glass: false,
        },
        &catalog,
        at,
    ) {
        Ok(_) => bail!("an over-long request was accepted"),
        Err(err) => println!("   refused: {err}"),
    }

    println!("\nDemo complete.");
    Ok(())
}
