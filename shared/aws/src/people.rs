//! The directory of people in DynamoDB: one item per person, keyed by
//! `username` without case (as IAM compares names), the record as versioned JSON
//! (`doc`). Needs `dynamodb:GetItem` and `dynamodb:PutItem` on the table.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use lapse_core::identity::PrincipalId;
use lapse_core::people::person::Person;
use lapse_core::people::ports::PeopleStore;
use lapse_core::ports::StoreError;

use crate::errors::{doc, store_error};

#[derive(Clone, Debug)]
pub struct DynamoDbPeople {
    client: crate::sdk::Lazy<Client>,
    table: String,
}

impl DynamoDbPeople {
    pub fn new(client: impl Into<crate::sdk::Lazy<Client>>, table: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            table: table.into(),
        }
    }

    /// Creates the table for a local stack (the template declares the same).
    pub async fn provision_local(&self) -> Result<(), crate::tables::ProvisionError> {
        crate::tables::provision_people(&self.client, &self.table).await
    }
}

fn key(username: &PrincipalId) -> AttributeValue {
    AttributeValue::S(username.folded())
}

impl PeopleStore for DynamoDbPeople {
    async fn get(&self, username: &PrincipalId) -> Result<Option<Person>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("username", key(username))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                store_error(e, || StoreError::Conflict {
                    what: format!("the directory record of {username}"),
                })
            })?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let mut person: Person = doc(&item, username.as_str())?;
        person.version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Corrupt {
                id: username.to_string(),
                detail: "attribute `version` is missing".into(),
            })?;
        Ok(Some(person))
    }

    async fn put(&self, person: &mut Person) -> Result<(), StoreError> {
        let expected = person.version;
        let next = expected + 1;
        let doc = serde_json::to_string(&Person {
            version: next,
            ..person.clone()
        })
        .map_err(|e| StoreError::Corrupt {
            id: person.username.to_string(),
            detail: e.to_string(),
        })?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("username", key(&person.username))
            .item("version", AttributeValue::N(next.to_string()))
            .item("doc", AttributeValue::S(doc));
        let put = if expected == 0 {
            put.condition_expression("attribute_not_exists(username)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(expected.to_string()))
        };
        put.send().await.map_err(|e| {
            store_error(e, || StoreError::Conflict {
                what: format!("the directory record of {}", person.username),
            })
        })?;
        person.version = next;
        Ok(())
    }
}
