//! Wiring only: tracing, configuration and adapters at init (each SDK client is
//! made by its first call), then the handler.

use lambda_runtime::{run, service_fn};
use lapse_lambda::config::Env;
use lapse_lambda::wiring::Revocations;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    lapse_lambda::init_tracing();
    let sdk = lapse_aws::sdk::load().await;
    let env = Env::process();
    let deps = Revocations::from_env(&env, &sdk, revocation::TOPICS).await?;
    let people = lapse_lambda::wiring::people(&env, &sdk)?;
    run(service_fn(|event| {
        revocation::handler(&deps, &people, event)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
