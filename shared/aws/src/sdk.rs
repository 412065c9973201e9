//! SDK configuration.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use aws_config::{BehaviorVersion, SdkConfig};
pub use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::config::Region;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// Loads SDK configuration from the standard environment and credential chain.
/// `AWS_ENDPOINT_URL` is honoured, which is how the same binary talks to the local
/// emulator and to AWS.
///
/// The HTTPS client is the SDK's default (rustls on aws-lc, proxies from the
/// environment), made on the first request rather than at start-up: the SDK builds
/// a connector for every client it constructs, to validate it, and the first build
/// reads the system's trusted certificates, which was most of a function's start-up.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(SharedHttpClient::new(LazyHttpsClient::default()))
        .load()
        .await
}

/// The SDK's default HTTPS client, built on its first connection. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct LazyHttpsClient {
    client: Arc<OnceLock<SharedHttpClient>>,
}

impl LazyHttpsClient {
    /// Whether the client (and so the certificate store) has been built yet.
    pub fn is_built(&self) -> bool {
        self.client.get().is_some()
    }

    fn client(&self) -> &SharedHttpClient {
        self.client.get_or_init(|| {
            aws_smithy_http_client::Builder::new().build_with_connector_fn(
                |settings, components| {
                    let mut builder = aws_smithy_http_client::ConnectorBuilder::default()
                        .tls_provider(tls::Provider::Rustls(
                            tls::rustls_provider::CryptoMode::AwsLc,
                        ));
                    builder.set_connector_settings(settings.cloned());
                    if let Some(components) = components {
                        builder.set_sleep_impl(components.sleep_impl());
                    }
                    builder.set_proxy_config(Some(ProxyConfig::from_env()));
                    builder.build()
                },
            )
        })
    }
}

impl HttpClient for LazyHttpsClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.client().http_connector(settings, components)
    }

    // validate_base_client_config keeps its default (nothing to check): checking
    // would build the connector, which is what this type puts off.

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some(Cow::Borrowed("1.x"))))
    }
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
