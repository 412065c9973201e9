//! SDK configuration.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
pub use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::config::Region;
use aws_sdk_dynamodb::config::retry::{RetryPartition, TokenBucket};
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
///
/// In a Lambda function, the runtime puts the role's credentials and the region in
/// the environment; they are taken from there, so start-up builds none of the
/// default chains' other sources (profile files, web identity with its STS client,
/// the instance metadata client). Elsewhere (the CLI, tests) the chains are used.
///
/// Every client retries as [`retry_config`] says, and abandons an attempt as
/// [`timeout_config`] says.
pub async fn load() -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .http_client(SharedHttpClient::new(LazyHttpsClient::default()));
    match lambda_region(|name| std::env::var(name).ok()) {
        Some(region) => loader
            .region(Region::new(region))
            .credentials_provider(EnvironmentVariableCredentialsProvider::new()),
        None => loader,
    }
    .load()
    .await
}

/// How Lapse's clients retry throttling, 5xx answers and dropped connections: the
/// SDK's standard mode (exponential backoff with full jitter), with 8 attempts
/// instead of 3, from 200 ms instead of 1 s, at most 4 s apart. The clients
/// [`client`] makes draw on no retry quota ([`retry_partition`]).
///
/// A revocation makes tens of IAM calls. Under throttling at 30 %, 3 attempts fail
/// one call in 37, which fails nearly every revocation's first run and leaves it to
/// the state machine's retry, tens of seconds later; 8 attempts fail one call in
/// 15,000. The waits of one call add up to at most 14.2 s, inside a function's 30 s.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(4))
}

/// How long a call may wait: 3.1 s to connect (the SDK's default) and 10 s for
/// each attempt, after which the attempt is abandoned and retried like a dropped
/// connection (the SDK classifies an attempt timeout as transient). The SDK sets no
/// attempt or read timeout by default, so an answer that never came (a connection
/// black-holed after the request was sent) held the call until the function's own
/// timeout killed the invocation. Every AWS call Lapse makes answers in well under
/// a second; 10 s leaves room for a slow one without waiting long on a stall. The
/// retries' waits are not counted in an attempt ([`retry_config`] bounds them).
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(3100))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
}

/// The longest one attempt of an AWS call may take ([`timeout_config`]).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The retry partition of every client [`client`] makes: its own, with no retry
/// quota. The SDK's default quota (a token bucket of 500, 5 a retry, 1 back per
/// first-attempt success) is one per service for the whole process, and a client's
/// concurrent calls forget each other's tokens; under sustained throttling it
/// empties, and then no call of that service retries at all, which ended a
/// revocation's every lane on its first throttle. Each call's retries stay bounded
/// by [`retry_config`]: at most 8 attempts, spaced by jittered backoff.
pub fn retry_partition(service: &'static str) -> RetryPartition {
    RetryPartition::custom(service)
        .token_bucket(TokenBucket::unlimited())
        .build()
}

/// The SDK clients Lapse's adapters use, made from an [`SdkConfig`] with their own
/// [`retry_partition`]: the makers of [`Lazy`] clients, e.g.
/// `Lazy::new(sdk, client::iam)`.
pub mod client {
    use super::{SdkConfig, retry_partition};

    macro_rules! clients {
        ($($name:ident: $krate:ident),* $(,)?) => {$(
            #[doc = concat!("A `", stringify!($krate), "::Client` for `sdk`, retrying with no shared quota.")]
            pub fn $name(sdk: &SdkConfig) -> $krate::Client {
                $krate::Client::from_conf(
                    $krate::config::Builder::from(sdk)
                        .retry_partition(retry_partition(stringify!($name)))
                        .build(),
                )
            }
        )*};
    }

    clients!(
        dynamodb: aws_sdk_dynamodb,
        eventbridge: aws_sdk_eventbridge,
        iam: aws_sdk_iam,
        kms: aws_sdk_kms,
        s3: aws_sdk_s3,
        scheduler: aws_sdk_scheduler,
        secretsmanager: aws_sdk_secretsmanager,
        sfn: aws_sdk_sfn,
        sns: aws_sdk_sns,
    );
}

/// The region, when `var` (the environment) is a Lambda function's: it names the
/// function and holds the credentials the runtime provides.
pub fn lambda_region(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    set("AWS_LAMBDA_FUNCTION_NAME")?;
    set("AWS_ACCESS_KEY_ID")?;
    set("AWS_SECRET_ACCESS_KEY")?;
    set("AWS_REGION")
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

/// An SDK client made on its first use (by one of [`client`]'s makers). Making a client is most of what a function
/// does at start-up once the runtime is up (its service's endpoint rules are parsed
/// and compiled the first time), and an invocation uses only some of a function's
/// clients. Clones share the client; [`From`] wraps a client already made.
#[derive(Clone)]
pub struct Lazy<C>(Arc<LazyInner<C>>);

/// One pointer wide, as a client is: adapters are held in handlers' futures.
struct LazyInner<C> {
    client: OnceLock<C>,
    make: Option<(SdkConfig, MakeClient<C>)>,
}

/// How a [`Lazy`] makes its client: a service crate's `Client::new`.
pub type MakeClient<C> = fn(&SdkConfig) -> C;

impl<C> Lazy<C> {
    /// A client `make` builds from `sdk` when it is first used, e.g.
    /// `Lazy::new(sdk, client::iam)`.
    pub fn new(sdk: &SdkConfig, make: MakeClient<C>) -> Self {
        Self(Arc::new(LazyInner {
            client: OnceLock::new(),
            make: Some((sdk.clone(), make)),
        }))
    }

    /// Whether the client has been made yet.
    pub fn is_built(&self) -> bool {
        self.0.client.get().is_some()
    }
}

impl<C> From<C> for Lazy<C> {
    fn from(client: C) -> Self {
        Self(Arc::new(LazyInner {
            client: OnceLock::from(client),
            make: None,
        }))
    }
}

impl<C> std::ops::Deref for Lazy<C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.0.client.get_or_init(|| match &self.0.make {
            Some((sdk, make)) => make(sdk),
            // `From` fills the cell, and only `new` leaves it empty.
            None => unreachable!("a Lazy without a maker is built"),
        })
    }
}

impl<C: std::fmt::Debug> std::fmt::Debug for Lazy<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.client.get() {
            Some(client) => std::fmt::Debug::fmt(client, f),
            None => f.write_str("Lazy(not yet made)"),
        }
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
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{Lazy, SdkConfig, lambda_region};

    static MADE: AtomicUsize = AtomicUsize::new(0);

    fn make(_: &SdkConfig) -> String {
        MADE.fetch_add(1, Ordering::SeqCst);
        "client".to_owned()
    }

    #[test]
    fn a_lazy_client_is_made_on_first_use_once_for_all_its_clones() {
        let sdk = SdkConfig::builder().build();
        let lazy = Lazy::new(&sdk, make);
        let clone = lazy.clone();
        assert!(!lazy.is_built());
        assert_eq!(MADE.load(Ordering::SeqCst), 0, "made before use");
        assert_eq!(format!("{lazy:?}"), "Lazy(not yet made)");
        assert_eq!(clone.len(), 6);
        assert!(lazy.is_built(), "a clone's use makes it for both");
        assert_eq!(lazy.as_str(), "client");
        assert_eq!(MADE.load(Ordering::SeqCst), 1, "made once");
        // A client already made is used as it is.
        let made: Lazy<String> = "ready".to_owned().into();
        assert!(made.is_built());
        assert_eq!(&*made, "ready");
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    const LAMBDA: &[(&str, &str)] = &[
        ("AWS_LAMBDA_FUNCTION_NAME", "lapse-verify"),
        ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
        ("AWS_REGION", "eu-west-1"),
    ];

    #[test]
    fn a_lambda_environment_gives_its_region_and_its_credentials() {
        assert_eq!(lambda_region(env(LAMBDA)), Some("eu-west-1".to_owned()));
    }

    #[test]
    fn anything_short_of_a_lambda_environment_uses_the_default_chains() {
        // Each variable missing, then each one empty: the default chains decide.
        for name in [
            "AWS_LAMBDA_FUNCTION_NAME",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
        ] {
            let without: Vec<_> = LAMBDA.iter().copied().filter(|(k, _)| *k != name).collect();
            assert_eq!(lambda_region(env(&without)), None, "without {name}");
            let empty: Vec<_> = LAMBDA
                .iter()
                .map(|&(k, v)| if k == name { (k, "") } else { (k, v) })
                .collect();
            assert_eq!(lambda_region(env(&empty)), None, "{name} empty");
        }
        assert_eq!(lambda_region(env(&[])), None);
    }
}
