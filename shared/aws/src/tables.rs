//! Creating Lapse's DynamoDB tables, for the local stack and tests: the same keys,
//! indexes, TTL and billing as `infra/template.yaml` declares. Re-running is
//! harmless (an existing table is left as it is).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};

/// Table names for one deployment (or one test).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    pub requests: String,
    pub audit: String,
    pub ledger: String,
}

impl Tables {
    /// `<prefix>-requests`, `<prefix>-audit`, `<prefix>-ledger`.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            requests: format!("{prefix}-requests"),
            audit: format!("{prefix}-audit"),
            ledger: format!("{prefix}-ledger"),
        }
    }
}

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot provision table {table}")]
pub struct ProvisionError {
    pub table: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, ProvisionError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| ProvisionError {
            table: name.to_owned(),
            source: Box::new(e),
        })
}

fn attr(name: &str, kind: ScalarAttributeType) -> Result<AttributeDefinition, ProvisionError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .map_err(|e| ProvisionError {
            table: name.to_owned(),
            source: Box::new(e),
        })
}

fn index(name: &str, hash: &str, range: &str) -> Result<GlobalSecondaryIndex, ProvisionError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .key_schema(key(range, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| ProvisionError {
            table: name.to_owned(),
            source: Box::new(e),
        })
}

/// `Ok` when a create succeeded or the table was already there.
fn created_or_exists<T, E, R>(
    result: Result<T, SdkError<E, R>>,
    table: &str,
) -> Result<(), ProvisionError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
        Err(e) => Err(ProvisionError {
            table: table.to_owned(),
            source: Box::new(e),
        }),
    }
}

/// Creates the tables for a local stack, the same shape `infra/template.yaml`
/// declares. An existing table is left as it is.
pub async fn provision_local(client: &Client, tables: &Tables) -> Result<(), ProvisionError> {
    let requests = client
        .create_table()
        .table_name(&tables.requests)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("id", KeyType::Hash)?)
        .attribute_definitions(attr("id", ScalarAttributeType::S)?)
        .attribute_definitions(attr("requester", ScalarAttributeType::S)?)
        .attribute_definitions(attr("status", ScalarAttributeType::S)?)
        .attribute_definitions(attr("created_at", ScalarAttributeType::S)?)
        .global_secondary_indexes(index("by-requester", "requester", "created_at")?)
        .global_secondary_indexes(index("by-status", "status", "created_at")?)
        .send()
        .await;
    created_or_exists(requests, &tables.requests)?;
    let audit = client
        .create_table()
        .table_name(&tables.audit)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("chain", KeyType::Hash)?)
        .key_schema(key("seq", KeyType::Range)?)
        .attribute_definitions(attr("chain", ScalarAttributeType::S)?)
        .attribute_definitions(attr("seq", ScalarAttributeType::N)?)
        .send()
        .await;
    created_or_exists(audit, &tables.audit)?;
    let ledger = client
        .create_table()
        .table_name(&tables.ledger)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("holder", KeyType::Hash)?)
        .key_schema(key("grant_id", KeyType::Range)?)
        .attribute_definitions(attr("holder", ScalarAttributeType::S)?)
        .attribute_definitions(attr("grant_id", ScalarAttributeType::S)?)
        .stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages)
                .build()
                .map_err(|e| ProvisionError {
                    table: tables.ledger.clone(),
                    source: Box::new(e),
                })?,
        )
        .send()
        .await;
    created_or_exists(ledger, &tables.ledger)?;
    let ttl = client
        .update_time_to_live()
        .table_name(&tables.ledger)
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .attribute_name("ttl")
                .enabled(true)
                .build()
                .map_err(|e| ProvisionError {
                    table: tables.ledger.clone(),
                    source: Box::new(e),
                })?,
        )
        .send()
        .await;
    match ttl {
        Ok(_) => Ok(()),
        // Already enabled (re-provisioning).
        Err(e) if e.code() == Some("ValidationException") => Ok(()),
        Err(e) => Err(ProvisionError {
            table: tables.ledger.clone(),
            source: Box::new(e),
        }),
    }
}

/// Creates the revocations table (cases, controls, archive, event claims) with its
/// open-cases index and TTL, as the template declares it.
pub async fn provision_revocations(client: &Client, table: &str) -> Result<(), ProvisionError> {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TimeToLiveSpecification,
    };
    let fail = |e: Box<dyn std::error::Error + Send + Sync>| ProvisionError {
        table: table.to_owned(),
        source: e,
    };
    let key = |n: &str, k: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(k)
            .build()
    };
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash).map_err(|e| fail(Box::new(e)))?)
        .key_schema(key("sk", KeyType::Range).map_err(|e| fail(Box::new(e)))?)
        .attribute_definitions(attr("pk").map_err(|e| fail(Box::new(e)))?)
        .attribute_definitions(attr("sk").map_err(|e| fail(Box::new(e)))?)
        .attribute_definitions(attr("open").map_err(|e| fail(Box::new(e)))?)
        .global_secondary_indexes(
            aws_sdk_dynamodb::types::GlobalSecondaryIndex::builder()
                .index_name(crate::revocations::OPEN_CASES_INDEX)
                .key_schema(key("open", KeyType::Hash).map_err(|e| fail(Box::new(e)))?)
                .projection(
                    aws_sdk_dynamodb::types::Projection::builder()
                        .projection_type(aws_sdk_dynamodb::types::ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .map_err(|e| fail(Box::new(e)))?,
        )
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceInUseException") => return Ok(()),
        Err(e) => return Err(fail(Box::new(e))),
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("ttl")
                .enabled(true)
                .build()
                .map_err(|e| fail(Box::new(e)))?,
        )
        .send()
        .await
        .map_err(|e| fail(Box::new(e)))?;
    Ok(())
}

/// Creates the directory of people's table (`username` hash key) as the template
/// declares it; an existing table is left as it is.
pub async fn provision_people(client: &Client, table: &str) -> Result<(), ProvisionError> {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let fail = |e: Box<dyn std::error::Error + Send + Sync>| ProvisionError {
        table: table.to_owned(),
        source: e,
    };
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("username")
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| fail(Box::new(e)))?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("username")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| fail(Box::new(e)))?,
        )
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
        Err(e) => Err(fail(Box::new(e))),
    }
}
