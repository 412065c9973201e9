//! Wiring only: tracing, configuration and adapters at init (each SDK client is
//! made by its first call), then the handler.

use lambda_http::{Request, run, service_fn};
use lapse_lambda::config::Env;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    lapse_lambda::init_tracing();
    let sdk = lapse_aws::sdk::load().await;
    let deps = approval::Deps::from_env(&Env::process(), &sdk).await?;
    run(service_fn(|request: Request| {
        approval::handler(&deps, request)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
