//! S3 under Object Lock: where audit chain heads are anchored. Writers need
//! `s3:PutObject` on `heads/*` only; the bucket's default retention (COMPLIANCE mode)
//! locks every object, so nobody, the root user included, can delete or overwrite an
//! anchored head before its retention ends. Verifiers need `s3:ListBucket` and
//! `s3:GetObject`.
//!
//! Layout: `heads/<chain>/<seq, 20 digits>.json` holding `{"chain", "seq", "hash"}`.
//! The newest anchor of a chain is the head a verifier holds the chain to.

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

    /// The newest anchored head of every chain.
    pub async fn heads(&self) -> Result<BTreeMap<String, ChainHead>, StoreError> {
        let mut newest: BTreeMap<String, (u64, String)> = BTreeMap::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(PREFIX)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for object in page.map_err(unavailable)?.contents() {
                let Some(key) = object.key() else { continue };
                let Some((chain, file)) = key
                    .strip_prefix(PREFIX)
                    .and_then(|rest| rest.rsplit_once('/'))
                else {
                    continue;
                };
                let Some(seq) = file
                    .strip_suffix(".json")
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                let entry = newest
                    .entry(chain.to_owned())
                    .or_insert((seq, key.to_owned()));
                if seq >= entry.0 {
                    *entry = (seq, key.to_owned());
                }
            }
        }
        let mut heads = BTreeMap::new();
        for (chain, (seq, key)) in newest {
            let object = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(unavailable)?;
            let bytes = object
                .body
                .collect()
                .await
                .map_err(unavailable)?
                .into_bytes();
            let anchor: Anchor =
                serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                    id: key.clone(),
                    detail: format!("anchor does not parse: {e}"),
                })?;
            if anchor.chain != chain || anchor.seq != seq {
                return Err(StoreError::Corrupt {
                    id: key,
                    detail: "anchor names another chain or position than its key".into(),
                });
            }
            heads.insert(
                chain,
                ChainHead {
                    seq,
                    hash: anchor.hash,
                },
            );
        }
        Ok(heads)
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
