//! The revocations table (single-table design, `pk`/`sk`, TTL on `ttl`):
//!
//! | pk                | sk                      | what                                   |
//! |-------------------|-------------------------|----------------------------------------|
//! | `case#<id>`       | `case`                  | a revocation case (versioned `doc`); `open` = `open` until verified |
//! | `cases#<name>`    | `case#<created_at>#<id>`| a pointer from a person to a case |
//! | `user#<name>`     | `controls`              | legal hold and override (`<name>` lowercase: IAM names have no case; reads also try the name as spelled, where older items live) |
//! | `user#<name>`     | `archive#<taken_at>`    | a before-state snapshot, `ttl` = retention (none under legal hold) |
//! | `event#<id>`      | `claim`                 | an HR event id seen by the webhook, `ttl` 30 days |
//! | `lease#<secret>`  | `lease`                 | a credential checkout (`lapse_aws::leases`) |
//!
//! The partition prefix says who may write an item, since IAM can narrow a role
//! to partition keys (`dynamodb:LeadingKeys`) but not to sort keys: a role that
//! opens cases (the daily inactivity check) writes `case#*` and `cases#*`, never a
//! person's controls or archived before-state under `user#*`. Pointers written
//! before they moved (`user#<name>`, `case#…`) are still read.
//!
//! IAM actions: `dynamodb:GetItem`, `PutItem`, `UpdateItem`, `Query` on the table.
//! The sparse index `open-cases` (hash key `open`) holds only unverified cases;
//! counting it ([`DynamoDbRevocations::open_cases`]) needs `dynamodb:Query` on it.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use lapse_core::identity::PrincipalId;
use lapse_core::ports::StoreError;
use lapse_core::revocation::case::RevocationCase;
use lapse_core::revocation::plan::IdentitySnapshot;
use lapse_core::revocation::ports::{
    Archive, CaseStore, Claim, Controls, EventClaims, UserControls,
};

use crate::errors::{doc, store_error};

type Item = HashMap<String, AttributeValue>;

/// How long an HR event id is remembered for replay protection.
pub const CLAIM_RETENTION_DAYS: i64 = 30;

#[derive(Clone, Debug)]
pub struct DynamoDbRevocations {
    client: crate::sdk::Lazy<Client>,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn corrupt(id: &str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        id: id.to_owned(),
        detail: detail.into(),
    }
}

impl DynamoDbRevocations {
    pub fn new(client: impl Into<crate::sdk::Lazy<Client>>, table: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            table: table.into(),
        }
    }

    async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(e, || corrupt(pk, "unexpected condition failure on read")))?;
        Ok(out.item)
    }

    /// Creates the table for a local stack (the template declares the same).
    pub async fn provision_local(&self) -> Result<(), crate::tables::ProvisionError> {
        crate::tables::provision_revocations(&self.client, &self.table).await
    }
}

/// The sparse index of unverified cases.
pub const OPEN_CASES_INDEX: &str = "open-cases";

/// Marks a case's item `open` (indexed by [`OPEN_CASES_INDEX`]) unless it is
/// verified; a verified case's item is written without it and leaves the index.
fn mark_open(
    put: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    case: &RevocationCase,
) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
    if case.status() == lapse_core::revocation::case::CaseStatus::Verified {
        put
    } else {
        put.item("open", s("open"))
    }
}

impl DynamoDbRevocations {
    /// How many revocation cases are not yet verified (received, held, in
    /// progress, revoked or failed): a count over the sparse index.
    pub async fn open_cases(&self) -> Result<usize, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OPEN_CASES_INDEX)
            .key_condition_expression("#open = :open")
            .expression_attribute_names("#open", "open")
            .expression_attribute_values(":open", s("open"))
            .select(aws_sdk_dynamodb::types::Select::Count)
            .into_paginator()
            .send();
        let mut count = 0usize;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                store_error(e, || {
                    corrupt(OPEN_CASES_INDEX, "unexpected condition failure")
                })
            })?;
            count += usize::try_from(page.count()).unwrap_or(0);
        }
        Ok(count)
    }
}

impl CaseStore for DynamoDbRevocations {
    async fn create(&self, case: &mut RevocationCase) -> Result<(), StoreError> {
        let pk = format!("case#{}", case.id());
        case.committed_at_version(1);
        let text = serde_json::to_string(case).map_err(|e| corrupt(&pk, e.to_string()))?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item("sk", s("case"))
            .item("user", s(case.user().as_str()))
            .item("version", AttributeValue::N("1".into()))
            .item("doc", s(text));
        mark_open(put, case)
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| store_error(e, || StoreError::AlreadyExists(case.id().to_string())))?;
        // A pointer from the user to the case, for `cases_of`.
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(cases_pk(case.user())))
            .item(
                "sk",
                s(format!(
                    "case#{}#{}",
                    case.created_at().to_rfc3339(),
                    case.id()
                )),
            )
            .item("case_id", s(case.id().as_str()))
            .send()
            .await
            .map_err(|e| store_error(e, || corrupt(&pk, "unexpected condition failure")))?;
        Ok(())
    }

    async fn cases_of(&self, user: &PrincipalId) -> Result<Vec<RevocationCase>, StoreError> {
        let mut pointers = self.items(&cases_pk(user), "case#").await?;
        // Where pointers lived before they moved out of the person's partition.
        pointers.extend(self.user_items(user, "case#").await?);
        let mut cases: Vec<RevocationCase> = Vec::new();
        for item in &pointers {
            if let Some(AttributeValue::S(id)) = item.get("case_id")
                && !cases.iter().any(|c| c.id().as_str() == id)
                && let Some(case) = self.get(id).await?
            {
                cases.push(case);
            }
        }
        cases.sort_by_key(|c| c.created_at());
        Ok(cases)
    }

    async fn get(&self, id: &str) -> Result<Option<RevocationCase>, StoreError> {
        let pk = format!("case#{id}");
        self.get_item(&pk, "case")
            .await?
            .map(|item| doc(&item, &pk))
            .transpose()
    }

    async fn update(&self, case: &mut RevocationCase) -> Result<(), StoreError> {
        let pk = format!("case#{}", case.id());
        let expected = case.version();
        case.committed_at_version(expected + 1);
        let text = serde_json::to_string(case).map_err(|e| corrupt(&pk, e.to_string()))?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item("sk", s("case"))
            .item("user", s(case.user().as_str()))
            .item("version", AttributeValue::N(case.version().to_string()))
            .item("doc", s(text));
        let result = mark_open(put, case)
            .condition_expression("version = :v")
            .expression_attribute_values(":v", AttributeValue::N(expected.to_string()))
            .send()
            .await;
        if let Err(e) = result {
            case.committed_at_version(expected);
            return Err(store_error(e, || StoreError::Conflict { what: pk.clone() }));
        }
        Ok(())
    }
}

/// A person's partition: `user#` and the name as IAM compares names, without case.
fn user_pk(user: &PrincipalId) -> String {
    format!("user#{}", user.folded())
}

/// A person's case pointers: apart from their controls and archives, so that a
/// role may open cases without being able to write those.
fn cases_pk(user: &PrincipalId) -> String {
    format!("cases#{}", user.folded())
}

/// The partition a person had before names were folded (`user#` and the name as
/// spelled), where it differs: read too, so nothing recorded before is lost.
fn legacy_pk(user: &PrincipalId) -> Option<String> {
    (user.as_str() != user.folded()).then(|| format!("user#{user}"))
}

impl UserControls for DynamoDbRevocations {
    async fn controls(&self, user: &PrincipalId) -> Result<Controls, StoreError> {
        let pk = user_pk(user);
        let mut found = self.get_item(&pk, "controls").await?.map(|i| (i, pk));
        if found.is_none()
            && let Some(legacy) = legacy_pk(user)
        {
            found = self
                .get_item(&legacy, "controls")
                .await?
                .map(|i| (i, legacy));
        }
        Ok(found
            .map(|(item, pk)| doc(&item, &pk))
            .transpose()?
            .unwrap_or_default())
    }

    /// Writes under the folded name. Controls read from a legacy partition carry
    /// its version; the first write moves them (the folded item does not exist yet,
    /// which the condition allows; a rival that moved them first wins the race).
    async fn set(&self, user: &PrincipalId, controls: &mut Controls) -> Result<(), StoreError> {
        let pk = user_pk(user);
        let expected = controls.version;
        controls.version += 1;
        let text = serde_json::to_string(controls).map_err(|e| corrupt(&pk, e.to_string()))?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item("sk", s("controls"))
            .item("version", AttributeValue::N(controls.version.to_string()))
            .item("doc", s(text));
        let put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else if legacy_pk(user).is_some() {
            put.condition_expression("attribute_not_exists(pk) OR version = :v")
                .expression_attribute_values(":v", AttributeValue::N(expected.to_string()))
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(expected.to_string()))
        };
        if let Err(e) = put.send().await {
            controls.version = expected;
            return Err(store_error(e, || StoreError::Conflict {
                what: format!("controls of {user}"),
            }));
        }
        Ok(())
    }
}

impl DynamoDbRevocations {
    /// A person's items whose sort key starts with `prefix`, under the folded name
    /// and, where it differs, the name as spelled before names were folded.
    async fn user_items(&self, user: &PrincipalId, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        for pk in std::iter::once(user_pk(user)).chain(legacy_pk(user)) {
            items.extend(self.items(&pk, prefix).await?);
        }
        Ok(items)
    }

    /// The items of partition `pk` whose sort key starts with `prefix`.
    async fn items(&self, pk: &str, prefix: &str) -> Result<Vec<Item>, StoreError> {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| store_error(e, || corrupt(pk, "unexpected condition failure")))
    }

    async fn archive_items(&self, user: &PrincipalId) -> Result<Vec<Item>, StoreError> {
        self.user_items(user, "archive#").await
    }
}

impl Archive for DynamoDbRevocations {
    async fn store(
        &self,
        snapshot: &IdentitySnapshot,
        retain_until: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let pk = user_pk(&snapshot.user);
        let text = serde_json::to_string(snapshot).map_err(|e| corrupt(&pk, e.to_string()))?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item(
                "sk",
                s(format!("archive#{}", snapshot.taken_at.to_rfc3339())),
            )
            .item("doc", s(text));
        if let Some(until) = retain_until {
            put = put.item("ttl", AttributeValue::N(until.timestamp().to_string()));
        }
        put.send()
            .await
            .map_err(|e| store_error(e, || corrupt(&pk, "unexpected condition failure")))?;
        Ok(())
    }

    async fn snapshots(&self, user: &PrincipalId) -> Result<Vec<IdentitySnapshot>, StoreError> {
        let pk = user_pk(user);
        let mut found: Vec<IdentitySnapshot> = self
            .archive_items(user)
            .await?
            .iter()
            .map(|item| doc(item, &pk))
            .collect::<Result<_, _>>()?;
        found.sort_by_key(|s| s.taken_at);
        Ok(found)
    }

    async fn retain_forever(&self, user: &PrincipalId) -> Result<(), StoreError> {
        for item in self.archive_items(user).await? {
            let (Some(pk), Some(sk)) = (item.get("pk"), item.get("sk")) else {
                continue;
            };
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", pk.clone())
                .key("sk", sk.clone())
                .update_expression("REMOVE #ttl")
                .expression_attribute_names("#ttl", "ttl")
                .send()
                .await
                .map_err(|e| {
                    store_error(e, || corrupt(user.as_str(), "unexpected condition failure"))
                })?;
        }
        Ok(())
    }
}

impl EventClaims for DynamoDbRevocations {
    async fn claim(
        &self,
        event_id: &str,
        body_hash: &str,
        content_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let pk = format!("event#{event_id}");
        let ttl = now.timestamp() + CLAIM_RETENTION_DAYS * 86_400;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item("sk", s("claim"))
            .item("body_hash", s(body_hash))
            .item("content_hash", s(content_hash))
            .item("published", AttributeValue::Bool(false))
            .item("ttl", AttributeValue::N(ttl.to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .return_values(ReturnValue::None)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::New),
            Err(e) => match store_error(e, || StoreError::AlreadyExists(pk.clone())) {
                StoreError::AlreadyExists(_) => {
                    let item = self
                        .get_item(&pk, "claim")
                        .await?
                        .ok_or_else(|| corrupt(&pk, "claim vanished"))?;
                    let same = matches!(item.get("body_hash"), Some(AttributeValue::S(h)) if h == body_hash);
                    let published =
                        matches!(item.get("published"), Some(AttributeValue::Bool(true)));
                    Ok(if same {
                        Claim::Duplicate { published }
                    } else {
                        Claim::Mismatch
                    })
                }
                other => Err(other),
            },
        }
    }

    async fn claimed_content(&self, event_id: &str) -> Result<Option<String>, StoreError> {
        let pk = format!("event#{event_id}");
        Ok(self
            .get_item(&pk, "claim")
            .await?
            .and_then(|item| match item.get("content_hash") {
                Some(AttributeValue::S(hash)) => Some(hash.clone()),
                _ => None,
            }))
    }

    async fn mark_published(&self, event_id: &str) -> Result<(), StoreError> {
        let pk = format!("event#{event_id}");
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s("claim"))
            .update_expression("SET published = :t")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| store_error(e, || corrupt(&pk, "unexpected condition failure")))?;
        Ok(())
    }
}
