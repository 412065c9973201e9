//! Credential leases, kept in the revocations table as `pk = lease#<secret ARN>`,
//! `sk = lease`, so the credentials function's role reaches only those keys
//! (`dynamodb:LeadingKeys` `lease#*`). Needs `GetItem`, `PutItem` and `DeleteItem`.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use lapse_core::access::request::RequestId;
use lapse_core::ports::{Lease, Leases, StoreError};

use crate::errors::{doc, store_error};

#[derive(Clone, Debug)]
pub struct DynamoDbLeases {
    client: crate::sdk::Lazy<Client>,
    table: String,
}

impl DynamoDbLeases {
    pub fn new(client: impl Into<crate::sdk::Lazy<Client>>, table: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            table: table.into(),
        }
    }
}

fn pk(secret_arn: &str) -> AttributeValue {
    AttributeValue::S(format!("lease#{secret_arn}"))
}

fn sk() -> AttributeValue {
    AttributeValue::S("lease".into())
}

impl Leases for DynamoDbLeases {
    async fn acquire(&self, lease: &Lease) -> Result<Lease, StoreError> {
        let doc = serde_json::to_string(lease).map_err(|e| StoreError::Corrupt {
            id: lease.secret_arn.clone(),
            detail: e.to_string(),
        })?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", pk(&lease.secret_arn))
            .item("sk", sk())
            .item(
                "request_id",
                AttributeValue::S(lease.request_id.to_string()),
            )
            .item("doc", AttributeValue::S(doc))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(lease.clone()),
            Err(e) => {
                let taken = store_error(e, || StoreError::AlreadyExists(lease.secret_arn.clone()));
                if !matches!(taken, StoreError::AlreadyExists(_)) {
                    return Err(taken);
                }
                // Held: by this request before (a retry) or by another.
                self.get(&lease.secret_arn)
                    .await?
                    .ok_or_else(|| StoreError::Conflict {
                        what: format!("lease on {} (released meanwhile)", lease.secret_arn),
                    })
            }
        }
    }

    async fn get(&self, secret_arn: &str) -> Result<Option<Lease>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk(secret_arn))
            .key("sk", sk())
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                store_error(e, || StoreError::Conflict {
                    what: secret_arn.into(),
                })
            })?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        doc(&item, secret_arn).map(Some)
    }

    async fn release(&self, secret_arn: &str, request_id: &RequestId) -> Result<(), StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", pk(secret_arn))
            .key("sk", sk())
            .condition_expression("request_id = :rid")
            .expression_attribute_values(":rid", AttributeValue::S(request_id.to_string()))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) => match store_error(e, || StoreError::AlreadyExists(String::new())) {
                // Not this request's (or gone): nothing to release.
                StoreError::AlreadyExists(_) => Ok(()),
                other => Err(other),
            },
        }
    }
}
