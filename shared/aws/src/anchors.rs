//! S3 under Object Lock: where audit chain heads are anchored. Writers need
//! `s3:PutObject` on `heads/*` only; the bucket's default retention (COMPLIANCE mode)
//! locks every object, so nobody, the root user included, can delete or overwrite an
//! anchored head before its retention ends. Verifiers need `s3:ListBucket` and
//! `s3:GetObject`.
//!
//! Layout: `heads/<chain>/<seq, 20 digits>.json` holding `{"chain", "seq", "hash"}`.
//! A verifier holds each chain to every one of its anchors (an event that no
//! longer matches its anchor was rewritten; an anchor past the chain's end means
//! deleted events or a planted anchor), and reads every version of every key: a
//! second version or a delete marker is tampering.

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use lapse_core::audit::ChainHead;
use lapse_core::ports::StoreError;
use serde::{Deserialize, Serialize};

const PREFIX: &str = "heads/";

/// The anchor bucket.
#[derive(Clone, Debug)]
pub struct S3Anchors {
    client: crate::sdk::Lazy<Client>,
    bucket: String,
}

#[derive(Serialize, Deserialize)]
struct Anchor {
    chain: String,
    seq: u64,
    hash: String,
}

fn unavailable<E>(err: E) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    StoreError::Unavailable(Box::new(err))
}

fn key_of(chain: &str, seq: u64) -> String {
    format!("{PREFIX}{chain}/{seq:020}.json")
}

/// The chain and position an anchor's key names.
fn parse_key(key: &str) -> Option<(&str, u64)> {
    let (chain, file) = key.strip_prefix(PREFIX)?.rsplit_once('/')?;
    let seq = file.strip_suffix(".json")?.parse().ok()?;
    Some((chain, seq))
}

/// Every anchor, as an auditor reads the bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnchorListing {
    /// Each chain's anchored hashes, by position.
    pub chains: BTreeMap<String, BTreeMap<u64, String>>,
    /// Per chain, the anchor keys whose history shows tampering.
    pub tampered: BTreeMap<String, Vec<String>>,
}

impl AnchorListing {
    /// A chain's newest anchored head.
    pub fn newest(&self, chain: &str) -> Option<ChainHead> {
        self.chains
            .get(chain)?
            .last_key_value()
            .map(|(seq, hash)| ChainHead {
                seq: *seq,
                hash: hash.clone(),
            })
    }
}

impl S3Anchors {
    pub fn new(client: impl Into<crate::sdk::Lazy<Client>>, bucket: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Writes the anchor of `head`. Anchors are immutable: one that exists already is
    /// left alone (S3 refuses to overwrite it anyway under Object Lock with
    /// `If-None-Match`).
    pub async fn anchor(&self, chain: &str, head: &ChainHead) -> Result<(), StoreError> {
        let body = serde_json::to_vec(&Anchor {
            chain: chain.to_owned(),
            seq: head.seq,
            hash: head.hash.clone(),
        })
        .map_err(|e| StoreError::Corrupt {
            id: chain.to_owned(),
            detail: e.to_string(),
        })?;
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key_of(chain, head.seq))
            .content_type("application/json")
            .if_none_match("*")
            .body(ByteStream::from(body))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already anchored (a retry).
            Err(e) if e.code() == Some("PreconditionFailed") => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Every anchor in the bucket, every version of every key listed: an anchor is
    /// written once (`If-None-Match`, which the bucket policy requires), so a key
    /// with a second version or a delete marker is tampering, reported with its
    /// chain. A tampered key is read at its first version, the one written in
    /// order.
    pub async fn list(&self) -> Result<AnchorListing, StoreError> {
        use futures_util::{StreamExt, TryStreamExt};
        // key -> (chain, seq, version ids newest first, as S3 lists them; delete
        // markers)
        type Versions = (String, u64, Vec<String>, usize);
        let mut keys: BTreeMap<String, Versions> = BTreeMap::new();
        let mut listing = AnchorListing::default();
        // ListObjectVersions has no paginator: follow its markers.
        let mut markers: (Option<String>, Option<String>) = (None, None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(PREFIX)
                .set_key_marker(markers.0.take())
                .set_version_id_marker(markers.1.take())
                .send()
                .await
                .map_err(unavailable)?;
            let versions = page
                .versions()
                .iter()
                .map(|v| (v.key(), v.version_id(), false));
            let deleted = page
                .delete_markers()
                .iter()
                .map(|m| (m.key(), m.version_id(), true));
            for (key, version, marker) in versions.chain(deleted) {
                let Some(key) = key else { continue };
                let Some((chain, seq)) = parse_key(key) else {
                    continue;
                };
                let entry = keys
                    .entry(key.to_owned())
                    .or_insert_with(|| (chain.to_owned(), seq, Vec::new(), 0));
                if marker {
                    entry.3 += 1;
                } else {
                    entry.2.push(version.unwrap_or("null").to_owned());
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            markers = (
                page.next_key_marker().map(str::to_owned),
                page.next_version_id_marker().map(str::to_owned),
            );
        }
        let mut reads = Vec::new();
        for (key, (chain, seq, mut versions, markers)) in keys {
            if versions.len() > 1 || markers > 0 {
                listing.tampered.entry(chain.clone()).or_default().push(format!(
                    "anchor {key} has {} versions and {markers} delete markers: anchors are written once",
                    versions.len()
                ));
            }
            // The first written: S3 lists a key's versions newest first.
            if let Some(version) = versions.pop() {
                reads.push((key, chain, seq, version));
            }
        }
        let read: Vec<(String, u64, String)> = futures_util::stream::iter(reads)
            .map(|(key, chain, seq, version)| async move {
                let hash = self.read(&key, &version, &chain, seq).await?;
                Ok::<_, StoreError>((chain, seq, hash))
            })
            .buffer_unordered(16)
            .try_collect()
            .await?;
        for (chain, seq, hash) in read {
            listing.chains.entry(chain).or_default().insert(seq, hash);
        }
        Ok(listing)
    }

    async fn read(
        &self,
        key: &str,
        version: &str,
        chain: &str,
        seq: u64,
    ) -> Result<String, StoreError> {
        let mut get = self.client.get_object().bucket(&self.bucket).key(key);
        if version != "null" {
            get = get.version_id(version);
        }
        let object = get.send().await.map_err(unavailable)?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(unavailable)?
            .into_bytes();
        let anchor: Anchor = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            id: key.to_owned(),
            detail: format!("anchor does not parse: {e}"),
        })?;
        if anchor.chain != chain || anchor.seq != seq {
            return Err(StoreError::Corrupt {
                id: key.to_owned(),
                detail: "anchor names another chain or position than its key".into(),
            });
        }
        Ok(anchor.hash)
    }

    /// Creates an anchor bucket under Object Lock (local stack and tests; the
    /// template creates it on AWS). Default retention in COMPLIANCE mode.
    pub async fn provision(&self, retention_days: i32) -> Result<(), StoreError> {
        use aws_sdk_s3::types::{
            DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
            ObjectLockRule,
        };
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => return Ok(()),
            Err(e) => return Err(unavailable(e)),
        }
        self.client
            .put_object_lock_configuration()
            .bucket(&self.bucket)
            .object_lock_configuration(
                ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .rule(
                        ObjectLockRule::builder()
                            .default_retention(
                                DefaultRetention::builder()
                                    .mode(ObjectLockRetentionMode::Compliance)
                                    .days(retention_days)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
