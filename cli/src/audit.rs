//! `lapse audit verify` and `lapse audit export`: for auditors. They need read access
//! only: the audit table (`dynamodb:Query`, `dynamodb:Scan`), the anchor bucket
//! (`s3:ListBucket`, `s3:GetObject`) and the signing key's public half
//! (`kms:GetPublicKey`). Nothing here can sign or change an event.
//!
//! Every chain is verified (hash links, signatures with the KMS public key) and held
//! to every one of its anchored heads (S3 under Object Lock): an event that no
//! longer matches its anchor was rewritten; an anchor past the chain's end means
//! its newest events (or all of them) were deleted, or the anchor was planted; a
//! chain with events past its last anchor fails; and an anchor key with more than
//! one version or a delete marker is tampering.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::{Context, Result};
use lapse_aws::anchors::{AnchorListing, S3Anchors};
use lapse_aws::dynamodb::DynamoDbAuditLog;
use lapse_core::audit::{AuditEvent, AuditVerifier, verify_chain};
use lapse_core::ports::AuditLog;

/// The audit trail as an auditor reads it.
#[derive(Debug)]
pub struct AuditReader {
    pub log: DynamoDbAuditLog,
    pub anchors: S3Anchors,
    pub verifier: AuditVerifier,
}

/// What verification found for one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub chain: String,
    pub events: usize,
    /// `None`: verified. Otherwise what is wrong.
    pub problem: Option<String>,
}

impl AuditReader {
    /// From `LAPSE_AUDIT_TABLE`, `LAPSE_AUDIT_ANCHOR_BUCKET` and `LAPSE_AUDIT_KEY_ID`
    /// (stack outputs), with the caller's own AWS credentials.
    pub async fn from_env() -> Result<Self> {
        let sdk = lapse_aws::sdk::load().await;
        let var = |name: &str| {
            std::env::var(name).with_context(|| format!("{name} is not set (a stack output)"))
        };
        let verifier = lapse_aws::kms::audit_verifier(
            &lapse_aws::sdk::client::kms(&sdk),
            &var("LAPSE_AUDIT_KEY_ID")?,
        )
        .await
        .context("cannot read the audit key's public half")?;
        Ok(Self {
            log: DynamoDbAuditLog::new(
                lapse_aws::sdk::client::dynamodb(&sdk),
                var("LAPSE_AUDIT_TABLE")?,
            ),
            anchors: S3Anchors::new(
                lapse_aws::sdk::client::s3(&sdk),
                var("LAPSE_AUDIT_ANCHOR_BUCKET")?,
            ),
            verifier,
        })
    }

    async fn chains_and_anchors(
        &self,
        only: Option<&str>,
    ) -> Result<(BTreeSet<String>, AnchorListing)> {
        let anchors = self.anchors.list().await?;
        let chains = match only {
            Some(chain) => BTreeSet::from([chain.to_owned()]),
            None => {
                // Chains the table holds, and chains only the anchors remember.
                let mut all = self.log.chains().await?;
                all.extend(anchors.chains.keys().cloned());
                all.extend(anchors.tampered.keys().cloned());
                all
            }
        };
        Ok((chains, anchors))
    }

    /// One chain's events, and why they fail, if they do. The anchors were listed
    /// before the chain was read, and a writer anchors each head just after it
    /// appends the event, so a chain being written can be read with an event its
    /// listed anchors do not reach yet. When the events run past the newest
    /// anchor (or the chain has none), the anchors are listed again, up to three
    /// times 250 ms apart; a tail that stays unanchored still fails.
    async fn read_chain(
        &self,
        chain: &str,
        anchors: &mut AnchorListing,
    ) -> Result<(Vec<AuditEvent>, Option<String>)> {
        let mut relisted = 0;
        loop {
            let events = self.log.chain(chain).await?;
            let problem = check(chain, &events, &self.verifier, anchors);
            let ahead = match (events.last(), anchors.newest(chain)) {
                (Some(last), Some(head)) => last.seq > head.seq,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if problem.is_none() || !ahead || relisted == 3 {
                return Ok((events, problem));
            }
            relisted += 1;
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            *anchors = self.anchors.list().await?;
        }
    }

    /// Verifies one chain (or all) against the signing key and the anchors.
    pub async fn verify(&self, only: Option<&str>) -> Result<Vec<ChainReport>> {
        let (chains, mut anchors) = self.chains_and_anchors(only).await?;
        let mut reports = Vec::new();
        for chain in chains {
            let (events, problem) = self.read_chain(&chain, &mut anchors).await?;
            reports.push(ChainReport {
                problem,
                events: events.len(),
                chain,
            });
        }
        Ok(reports)
    }

    /// Writes every event of one chain (or all) as JSON Lines, chain by chain in
    /// sequence order, after verifying each chain; refuses if any fails.
    pub async fn export(
        &self,
        only: Option<&str>,
        break_glass: bool,
        out: &mut impl Write,
    ) -> Result<usize> {
        let (chains, mut anchors) = self.chains_and_anchors(only).await?;
        let mut written = 0;
        for chain in chains {
            let (events, problem) = self.read_chain(&chain, &mut anchors).await?;
            if let Some(problem) = problem {
                anyhow::bail!("chain {chain} does not verify, nothing more exported: {problem}");
            }
            let keep = |event: &&AuditEvent| {
                !break_glass || lapse_core::access::usecase::carries_break_glass(event)
            };
            for event in events.iter().filter(keep) {
                serde_json::to_writer(&mut *out, event)?;
                out.write_all(b"\n")?;
                written += 1;
            }
        }
        Ok(written)
    }
}

/// Why a chain fails, or `None`: links and signatures first, then tampered
/// anchor keys, then every anchor against the event at its position, then events
/// past the newest anchor.
pub fn check(
    chain: &str,
    events: &[AuditEvent],
    verifier: &AuditVerifier,
    anchors: &AnchorListing,
) -> Option<String> {
    if let Err(err) = verify_chain(chain, events, verifier, None) {
        return Some(err.to_string());
    }
    if let Some(tampered) = anchors.tampered.get(chain) {
        return Some(format!(
            "tampering with its anchors: {}",
            tampered.join("; ")
        ));
    }
    let anchored = anchors.chains.get(chain);
    let end = match events.last() {
        Some(last) => format!("#{}", last.seq),
        None => "no events".to_owned(),
    };
    let mut beyond = Vec::new();
    for (seq, hash) in anchored.into_iter().flatten() {
        match events.get(*seq as usize) {
            Some(event) if &event.hash == hash => {}
            Some(_) => {
                return Some(format!(
                    "event #{seq} does not match its anchor: the chain was rewritten from #{seq} on"
                ));
            }
            None => beyond.push(*seq),
        }
    }
    if let (Some(first), Some(last)) = (beyond.first(), beyond.last()) {
        let which = if first == last {
            format!("anchor #{first} is")
        } else {
            format!("anchors #{first}..#{last} are")
        };
        return Some(format!(
            "{which} beyond the chain's end ({end}): newest events were removed, or anchors were planted"
        ));
    }
    let newest = anchored
        .and_then(|a| a.last_key_value())
        .map(|(seq, _)| *seq);
    match (events.last(), newest) {
        (Some(last), None) => Some(format!(
            "no anchored head: events up to #{} cannot be held to one",
            last.seq
        )),
        (Some(last), Some(head)) if last.seq > head => Some(format!(
            "events #{}..#{} came after the last anchored head #{}",
            head + 1,
            last.seq,
            head
        )),
        _ => None,
    }
}
