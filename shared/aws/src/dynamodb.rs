//! DynamoDB adapters.
//!
//! **Requests table** (`id` hash key): one item per request with the lookup
//! attributes `status`, `requester`, `resource`, `created_at` (for the GSIs the
//! template defines), a `version` number for optimistic concurrency, and `doc`, the
//! request as JSON. Writes are conditional: a create never overwrites, an update
//! only lands on the version it read.
//!
//! **Audit table** (`chain` hash key, `seq` range key): one item per event, `event`
//! holding the sealed event as JSON. An append is conditional on the (chain, seq)
//! slot being free, which is what lets many writers share a chain without a lock.
//!
//! IAM actions: `RequestStore` needs `dynamodb:GetItem` and `dynamodb:PutItem` on the
//! requests table; `AuditLog` needs `dynamodb:Query` and `dynamodb:PutItem` on the
//! audit table.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use lapse_core::access::ledger::{Artifact, Hold, Release};
use lapse_core::access::request::{AccessRequest, RequestId, Status};
use lapse_core::audit::{AuditEvent, ChainHead};
use lapse_core::identity::PrincipalId;
use lapse_core::ports::{AuditLog, LedgerStore, RequestQueries, RequestStore, StoreError};

use crate::errors::store_error;

type Item = HashMap<String, AttributeValue>;

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn corrupt(id: &str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        id: id.to_owned(),
        detail: detail.into(),
    }
}

fn string_attr<'a>(item: &'a Item, name: &str, id: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(corrupt(
            id,
            format!("attribute `{name}` is missing or not a string"),
        )),
    }
}

fn number_attr(item: &Item, name: &str, id: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value
            .parse()
            .map_err(|_| corrupt(id, format!("attribute `{name}` is not a whole number"))),
        _ => Err(corrupt(
            id,
            format!("attribute `{name}` is missing or not a number"),
        )),
    }
}

/// Access requests in DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoDbRequestStore {
    client: crate::sdk::Lazy<Client>,
    table: String,
}

impl DynamoDbRequestStore {
    pub fn new(client: impl Into<crate::sdk::Lazy<Client>>, table: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            table: table.into(),
        }
    }

    fn item(request: &AccessRequest, version: u64) -> Result<Item, StoreError> {
        let doc = serde_json::to_string(request)
            .map_err(|e| corrupt(request.id().as_str(), e.to_string()))?;
        Ok(HashMap::from([
            ("id".to_owned(), s(request.id().as_str())),
            ("status".to_owned(), s(request.status().as_str())),
            ("requester".to_owned(), s(request.requester().as_str())),
            ("resource".to_owned(), s(request.resource())),
            (
                "created_at".to_owned(),
                s(request.created_at().to_rfc3339()),
            ),
            ("version".to_owned(), n(version)),
            ("doc".to_owned(), s(doc)),
        ]))
    }

    fn parse(item: &Item, id: &str) -> Result<AccessRequest, StoreError> {
        let doc = string_attr(item, "doc", id)?;
        let version = number_attr(item, "version", id)?;
        let mut request: AccessRequest = serde_json::from_str(doc)
            .map_err(|e| corrupt(id, format!("`doc` does not parse: {e}")))?;
        request.committed_at_version(version);
        Ok(request)
    }
}

impl RequestStore for DynamoDbRequestStore {
    async fn create(&self, request: &mut AccessRequest) -> Result<(), StoreError> {
        let id = request.id().to_string();
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::item(request, 1)?))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await
            .map_err(|e| store_error(e, || StoreError::AlreadyExists(id.clone())))?;
        request.committed_at_version(1);
        Ok(())
    }

    async fn get(&self, id: &RequestId) -> Result<Option<AccessRequest>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                store_error(e, || {
                    corrupt(id.as_str(), "unexpected condition failure on read")
                })
            })?;
        out.item()
            .map(|item| Self::parse(item, id.as_str()))
            .transpose()
    }

    async fn update(&self, request: &mut AccessRequest) -> Result<(), StoreError> {
        let id = request.id().to_string();
        let next = request.version() + 1;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::item(request, next)?))
            .condition_expression("attribute_exists(id) AND version = :expected")
            .expression_attribute_values(":expected", n(request.version()))
            .send()
            .await
            .map_err(|e| store_error(e, || StoreError::Conflict { what: id.clone() }))?;
        request.committed_at_version(next);
        Ok(())
    }
}

impl DynamoDbRequestStore {
    /// The items under `value` in `index`, newest first; with `since`, only those
    /// created then or later (the indexes' sort key is `created_at`, RFC 3339 in
    /// UTC, which sorts as it reads).
    async fn query_index(
        &self,
        index: &str,
        key: &str,
        value: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":v", s(value));
        let query = match since {
            None => query.key_condition_expression("#k = :v"),
            Some(since) => query
                .key_condition_expression("#k = :v AND created_at >= :since")
                .expression_attribute_values(":since", s(since.to_rfc3339())),
        };
        query
            .scan_index_forward(false)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| store_error(e, || corrupt(index, "unexpected condition failure on read")))?
            .iter()
            .map(|item| Self::parse(item, string_attr(item, "id", index)?))
            .collect()
    }
}

/// Needs `dynamodb:Query` on the table's `by-requester` and `by-status` indexes.
impl RequestQueries for DynamoDbRequestStore {
    async fn by_requester(
        &self,
        requester: &PrincipalId,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        self.query_index("by-requester", "requester", requester.as_str(), None)
            .await
    }

    async fn by_status(&self, status: Status) -> Result<Vec<AccessRequest>, StoreError> {
        self.query_index("by-status", "status", status.as_str(), None)
            .await
    }

    async fn by_status_since(
        &self,
        status: Status,
        since: DateTime<Utc>,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        self.query_index("by-status", "status", status.as_str(), Some(since))
            .await
    }
}

/// The grant ledger in DynamoDB: one item per (holder, grant), where the holder key
/// is `<principal>#<artifact>`. Items carry `ttl` a little after their expiry, so a
/// TTL delete (through the table's stream) is a last-resort revocation trigger.
///
/// IAM actions: `dynamodb:PutItem`, `dynamodb:DeleteItem`, `dynamodb:Query`.
#[derive(Clone, Debug)]
pub struct DynamoDbLedger {
    client: crate::sdk::Lazy<Client>,
    table: String,
}

/// How long after a hold's expiry its item becomes eligible for TTL deletion.
pub const LEDGER_TTL_DELAY_SECONDS: i64 = 15 * 60;

impl DynamoDbLedger {
    pub fn new(client: impl Into<crate::sdk::Lazy<Client>>, table: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            table: table.into(),
        }
    }

    /// The partition key for one principal's hold on one artifact.
    pub fn holder_key(principal: &PrincipalId, artifact: &Artifact) -> String {
        match artifact {
            Artifact::InlinePolicy { name } => format!("{principal}#policy:{name}"),
            Artifact::GroupMembership { group } => format!("{principal}#group:{group}"),
        }
    }
}

impl LedgerStore for DynamoDbLedger {
    async fn hold(&self, hold: &Hold) -> Result<(), StoreError> {
        let key = Self::holder_key(&hold.principal, &hold.artifact);
        let artifact =
            serde_json::to_string(&hold.artifact).map_err(|e| corrupt(&key, e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("holder", s(&key))
            .item("grant_id", s(&hold.grant_id))
            .item("principal", s(hold.principal.as_str()))
            .item("artifact", s(artifact))
            .item("expires_at", s(hold.expires_at.to_rfc3339()))
            .item(
                "ttl",
                AttributeValue::N(
                    (hold.expires_at.timestamp() + LEDGER_TTL_DELAY_SECONDS).to_string(),
                ),
            )
            .send()
            .await
            .map_err(|e| store_error(e, || corrupt(&key, "unexpected condition failure")))?;
        Ok(())
    }

    async fn release(
        &self,
        principal: &PrincipalId,
        artifact: &Artifact,
        grant_id: &str,
    ) -> Result<Release, StoreError> {
        let key = Self::holder_key(principal, artifact);
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("holder", s(&key))
            .key("grant_id", s(grant_id))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error(e, || corrupt(&key, "unexpected condition failure")))?;
        if out.attributes().is_none_or(HashMap::is_empty) {
            return Ok(Release::NotHeld);
        }
        // Our hold is gone before we look, so of two racing releases at least the
        // later one sees nobody left and removes the artifact.
        let held_by = self.holders(principal, artifact).await?;
        Ok(if held_by.is_empty() {
            Release::Remove {
                artifact: artifact.clone(),
            }
        } else {
            Release::Keep {
                artifact: artifact.clone(),
                held_by,
            }
        })
    }

    async fn holders(
        &self,
        principal: &PrincipalId,
        artifact: &Artifact,
    ) -> Result<Vec<String>, StoreError> {
        let key = Self::holder_key(principal, artifact);
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("holder = :h")
            .expression_attribute_values(":h", s(&key))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| store_error(e, || corrupt(&key, "unexpected condition failure")))?
            .iter()
            .map(|item| string_attr(item, "grant_id", &key).map(str::to_owned))
            .collect()
    }
}

/// Audit chains in DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoDbAuditLog {
    client: crate::sdk::Lazy<Client>,
    table: String,
    anchors: Option<crate::anchors::S3Anchors>,
}

impl DynamoDbAuditLog {
    pub fn new(client: impl Into<crate::sdk::Lazy<Client>>, table: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            table: table.into(),
            anchors: None,
        }
    }

    /// Anchors every head this log appends in `anchors` (S3 under Object Lock).
    pub fn with_anchors(mut self, anchors: crate::anchors::S3Anchors) -> Self {
        self.anchors = Some(anchors);
        self
    }

    /// The name of every chain in the table (a scan: for auditors, not handlers).
    /// Needs `dynamodb:Scan`.
    pub async fn chains(&self) -> Result<std::collections::BTreeSet<String>, StoreError> {
        let mut chains = std::collections::BTreeSet::new();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .projection_expression("#c")
            .expression_attribute_names("#c", "chain")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                store_error(e, || {
                    corrupt(&self.table, "unexpected condition failure on scan")
                })
            })?;
            for item in page.items() {
                if let Some(AttributeValue::S(chain)) = item.get("chain") {
                    chains.insert(chain.clone());
                }
            }
        }
        Ok(chains)
    }

    fn parse(item: &Item, chain: &str) -> Result<AuditEvent, StoreError> {
        let json = string_attr(item, "event", chain)?;
        serde_json::from_str(json)
            .map_err(|e| corrupt(chain, format!("audit event does not parse: {e}")))
    }
}

impl AuditLog for DynamoDbAuditLog {
    async fn head(&self, chain: &str) -> Result<Option<ChainHead>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#c = :c")
            .expression_attribute_names("#c", "chain")
            .expression_attribute_values(":c", s(chain))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                store_error(e, || corrupt(chain, "unexpected condition failure on read"))
            })?;
        out.items()
            .first()
            .map(|item| Self::parse(item, chain).map(|e| e.head()))
            .transpose()
    }

    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let json =
            serde_json::to_string(event).map_err(|e| corrupt(&event.chain, e.to_string()))?;
        let what = format!("{}#{}", event.chain, event.seq);
        self.client
            .put_item()
            .table_name(&self.table)
            .item("chain", s(&event.chain))
            .item("seq", n(event.seq))
            .item("at", s(event.at.to_rfc3339()))
            .item("action", s(&event.action))
            .item("event", s(json))
            .condition_expression("attribute_not_exists(#c)")
            .expression_attribute_names("#c", "chain")
            .send()
            .await
            .map_err(|e| store_error(e, || StoreError::Conflict { what }))?;
        Ok(())
    }

    async fn chain(&self, chain: &str) -> Result<Vec<AuditEvent>, StoreError> {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#c = :c")
            .expression_attribute_names("#c", "chain")
            .expression_attribute_values(":c", s(chain))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| store_error(e, || corrupt(chain, "unexpected condition failure on read")))?
            .iter()
            .map(|item| Self::parse(item, chain))
            .collect()
    }

    async fn anchor(&self, head: &ChainHead, chain: &str) -> Result<(), StoreError> {
        match &self.anchors {
            Some(anchors) => anchors.anchor(chain, head).await,
            None => Ok(()),
        }
    }
}
