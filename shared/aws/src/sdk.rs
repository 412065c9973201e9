//! SDK configuration.

use aws_config::{BehaviorVersion, SdkConfig};
pub use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::config::Region;

/// Loads SDK configuration from the standard environment and credential chain.
/// `AWS_ENDPOINT_URL` is honoured, which is how the same binary talks to the local
/// emulator and to AWS.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Configuration for a local emulator at `endpoint`, with dummy credentials and
/// `us-east-1`, for tests that must not depend on the process environment.
pub async fn load_local(endpoint: &str) -> SdkConfig {
    load_local_as(
        endpoint,
        Credentials::new("testing", "testing", None, None, "lapse-local"),
    )
    .await
}

/// Configuration for a local emulator at `endpoint` acting as `credentials` (a role
/// session, an operator's key), for tests where the emulator enforces IAM.
pub async fn load_local_as(endpoint: &str, credentials: Credentials) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .load()
        .await
}
