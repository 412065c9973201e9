//! The cold-start baseline: the smallest `lambda_runtime` function, built with the
//! same profile as Lapse's functions, so the ratio measures what Lapse adds.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
