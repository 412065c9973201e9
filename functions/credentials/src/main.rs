//! Wiring only: tracing, configuration and adapters at init (each SDK client is
//! made by its first call), then the handler.

use lambda_runtime::{run, service_fn};
use lapse_lambda::config::Env;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    lapse_lambda::init_tracing();
    let sdk = lapse_aws::sdk::load().await;
    let deps = credentials::Deps::from_env(&Env::process(), &sdk).await?;
    run(service_fn(|event| credentials::handler(&deps, event)))
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
