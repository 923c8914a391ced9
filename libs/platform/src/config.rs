//! Layered configuration: compiled defaults → optional file → environment.
//!
//! A service named `customer-profile` reads `CRM_CUSTOMER_PROFILE__SECTION__KEY`
//! variables (double underscores separate levels, so `database.max_connections` is
//! `CRM_CUSTOMER_PROFILE__DATABASE__MAX_CONNECTIONS`) and, when
//! `CRM_CUSTOMER_PROFILE_CONFIG` names a TOML file, that file between the defaults and
//! the environment. Every error names the key and the variable that sets it.
//!
//! Longer than 600 lines with its unit tests (about 180 lines), which stay beside the
//! code they pin; the code itself is under 610.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Defaults of the sections every service shares. A service appends its own TOML.
pub const PLATFORM_DEFAULTS: &str = r#"
[grpc]
host = "0.0.0.0"
port = 50051
request_timeout_ms = 10000
concurrency_limit = 1024
shutdown_grace_ms = 20000
health_interval_ms = 2000
stream_window_bytes = 32768
connection_window_bytes = 16777216
max_concurrent_streams = 200
max_message_bytes = 4194304

[database]
max_connections = 10
acquire_timeout_ms = 5000
migrate_on_start = true
create_if_missing = false

[messaging]
exchange = "crm.events"
prefetch = 64
max_attempts = 5
retry_backoff_ms = 1000
relay_batch_size = 500
relay_poll_ms = 500
queue_prefix = ""
queue_type = "quorum"

[telemetry]
log_format = "human"
log_filter = "info"

[auth]
issuer = "crm-identity"
audience = "crm"
identity_endpoint = "http://127.0.0.1:50051"
leeway_s = 30
key_refresh_min_interval_ms = 5000
verified_cache_capacity = 10000
revocation_poll_ms = 1000
max_token_ttl_s = 3600
"#;

/// Why configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The sources could not be read or did not match the expected shape.
    #[error(
        "configuration error for service `{service}`: {message} (environment variables use the prefix {prefix}__, e.g. {prefix}__DATABASE__URL)"
    )]
    Load {
        /// The service whose configuration failed.
        service: String,
        /// The `config` crate's message, which names the offending key.
        message: String,
        /// The environment prefix of this service.
        prefix: String,
    },
    /// A value has the right type but is not acceptable.
    #[error("invalid configuration value for `{key}` (env {env}): {reason}")]
    Invalid {
        /// Dotted key, e.g. `grpc.port`.
        key: String,
        /// The environment variable that sets it.
        env: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The environment variable prefix of a service: `customer-profile` → `CRM_CUSTOMER_PROFILE`.
pub fn env_prefix(service: &str) -> String {
    format!("CRM_{}", service.replace('-', "_").to_uppercase())
}

/// The environment variable that sets a dotted key for a service.
pub fn env_var_for(service: &str, key: &str) -> String {
    format!("{}__{}", env_prefix(service), key.replace('.', "__").to_uppercase())
}

/// Loads a service's settings from the platform defaults, its own defaults, the
/// optional file and the process environment.
pub fn load<T: DeserializeOwned>(service: &str, service_defaults: &str) -> Result<T, ConfigError> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    load_from(service, service_defaults, vars)
}

/// Like [`load`] but from an explicit environment, so that tests need not mutate the
/// process environment.
pub fn load_from<T: DeserializeOwned>(
    service: &str,
    service_defaults: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    build(service, service_defaults, vars)?.try_deserialize().map_err(|e| load_failure(service, e.to_string()))
}

/// The layered sources of a service, merged.
fn build(
    service: &str,
    service_defaults: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<config::Config, ConfigError> {
    let prefix = env_prefix(service);
    let load_error = |e: config::ConfigError| load_failure(service, e.to_string());
    let vars: std::collections::HashMap<String, String> = vars.into_iter().collect();
    let mut builder = config::Config::builder()
        .add_source(config::File::from_str(PLATFORM_DEFAULTS, config::FileFormat::Toml))
        .add_source(config::File::from_str(service_defaults, config::FileFormat::Toml));
    if let Some(path) = vars.get(&format!("{prefix}_CONFIG")) {
        builder = builder.add_source(config::File::new(path, config::FileFormat::Toml).required(true));
    }
    // The standard OpenTelemetry variable configures the exporter unless the service's
    // own key overrides it.
    if let Some(endpoint) = vars.get("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.is_empty()) {
        builder = builder.set_default("telemetry.otlp_endpoint", endpoint.as_str()).map_err(load_error)?;
    }
    let env = config::Environment::with_prefix(&prefix)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .source(Some(vars.clone()));
    builder.add_source(env).build().map_err(load_error)
}

/// How to report an invalid value: builds [`ConfigError::Invalid`] for a service.
#[derive(Debug, Clone)]
pub struct Validator<'a> {
    service: &'a str,
}

impl<'a> Validator<'a> {
    /// A validator for `service`'s keys.
    pub fn new(service: &'a str) -> Self {
        Self { service }
    }

    /// Fails with a message naming `key` when `ok` is false.
    pub fn check(&self, ok: bool, key: &str, reason: &str) -> Result<(), ConfigError> {
        if ok {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                key: key.to_string(),
                env: env_var_for(self.service, key),
                reason: reason.to_string(),
            })
        }
    }
}

/// The smallest `grpc.max_message_bytes` accepted.
const MIN_MESSAGE_BYTES: usize = 1024;
/// The largest `grpc.max_message_bytes` accepted.
const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// The gRPC server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcSettings {
    /// Interface to bind; `0.0.0.0` in containers.
    pub host: String,
    /// Port to bind; 0 picks a free one (tests).
    pub port: u16,
    /// Upper bound on any one call, so a stuck dependency cannot pin a worker forever.
    pub request_timeout_ms: u64,
    /// Calls served at once; beyond it calls are shed with RESOURCE_EXHAUSTED rather
    /// than queued, so that a surge fails fast instead of timing out everywhere.
    pub concurrency_limit: usize,
    /// How long in-flight calls may take to finish after SIGTERM.
    pub shutdown_grace_ms: u64,
    /// How often the health service re-checks the database and the broker.
    pub health_interval_ms: u64,
    /// HTTP/2 flow-control window of each call: what a client may send ahead of what
    /// the handler has read. Kept small so that a stalled stream of small messages
    /// holds little (see `grpc::server`'s module doc for why this, not the connection
    /// window, keeps fast clients from being cut off).
    pub stream_window_bytes: u32,
    /// HTTP/2 flow-control window of a connection, over all its calls. The server
    /// allows half of it as buffering overhead of small DATA frames.
    pub connection_window_bytes: u32,
    /// Calls a client may have open at once on one connection.
    pub max_concurrent_streams: u32,
    /// The largest message, in bytes, a server reads (a request, or one message of a
    /// client stream) or writes: a larger request is refused with RESOURCE_EXHAUSTED
    /// before it is buffered, by every server of the service, health and reflection
    /// too; an answer of a service's own server that would be larger fails with
    /// tonic's OUT_OF_RANGE.
    pub max_message_bytes: usize,
}

impl GrpcSettings {
    /// Checks value ranges.
    pub fn validate(&self, v: &Validator<'_>) -> Result<(), ConfigError> {
        v.check(!self.host.trim().is_empty(), "grpc.host", "must not be empty")?;
        v.check(self.request_timeout_ms > 0, "grpc.request_timeout_ms", "must be positive")?;
        v.check(self.concurrency_limit > 0, "grpc.concurrency_limit", "must be positive")?;
        v.check(self.health_interval_ms > 0, "grpc.health_interval_ms", "must be positive")?;
        // RFC 9113: windows are 31-bit; a stream window under 1 KiB stalls every call.
        const MAX_WINDOW: u32 = (1 << 31) - 1;
        v.check(
            (1024..=MAX_WINDOW).contains(&self.stream_window_bytes),
            "grpc.stream_window_bytes",
            "must be from 1024 to 2^31-1",
        )?;
        v.check(
            (self.stream_window_bytes..=MAX_WINDOW).contains(&self.connection_window_bytes),
            "grpc.connection_window_bytes",
            "must be at least grpc.stream_window_bytes and at most 2^31-1",
        )?;
        v.check(self.max_concurrent_streams > 0, "grpc.max_concurrent_streams", "must be positive")?;
        // A gRPC message's length prefix is 32 bits; below 1 KiB no real request fits.
        v.check(
            (MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&self.max_message_bytes),
            "grpc.max_message_bytes",
            "must be from 1024 to 1073741824 (1 GiB)",
        )
    }

    /// Per-call timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Drain time after a stop signal.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// The service's own PostgreSQL database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/database`; a secret because it carries the password.
    pub url: SecretString,
    /// Pool size; keep replicas × this under the server's `max_connections`.
    pub max_connections: u32,
    /// How long a call waits for a pooled connection before failing UNAVAILABLE.
    pub acquire_timeout_ms: u64,
    /// Apply migrations at start-up (off when a deployment hook runs `<service> migrate`).
    pub migrate_on_start: bool,
    /// Create the database when it does not exist (development only).
    pub create_if_missing: bool,
}

impl DatabaseSettings {
    /// Checks value ranges.
    pub fn validate(&self, v: &Validator<'_>) -> Result<(), ConfigError> {
        let url = self.url.expose_secret();
        v.check(
            url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "database.url",
            "must be a postgres:// URL",
        )?;
        v.check(self.max_connections > 0, "database.max_connections", "must be positive")
    }
}

/// The RabbitMQ broker and this service's use of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagingSettings {
    /// `amqp://user:password@host:port/vhost`; a secret because it carries the password.
    pub url: SecretString,
    /// The durable topic exchange every service publishes to.
    pub exchange: String,
    /// Unacknowledged deliveries a consumer may hold.
    pub prefetch: u16,
    /// Deliveries of one message before it goes to the dead-letter queue.
    pub max_attempts: u32,
    /// Delay before the first redelivery; doubles with each further attempt.
    pub retry_backoff_ms: u64,
    /// Outbox rows published per round trip of the relay.
    pub relay_batch_size: i64,
    /// Fallback poll interval of the relay when no notification arrives.
    pub relay_poll_ms: u64,
    /// Put before every queue name; empty in production. Lets several deployments (or
    /// parallel tests) share one broker without competing for each other's messages.
    pub queue_prefix: String,
    /// The type of every queue a consumer declares. A queue's type is fixed when it is
    /// first declared (see [`crate::messaging::consumer`] for changing it).
    pub queue_type: QueueType,
}

/// How the broker keeps a queue's messages (`messaging.queue_type`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum QueueType {
    /// Replicated over the nodes of a RabbitMQ cluster (Raft): a queue and its messages
    /// survive the loss of a minority of the nodes.
    #[default]
    Quorum,
    /// Held by one node: its messages are unavailable while that node is down and
    /// lost with its disk. For a single-node broker, or for queues declared classic
    /// before quorum became the default.
    Classic,
}

impl QueueType {
    /// The value of the `x-queue-type` queue argument.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

impl std::str::FromStr for QueueType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "quorum" => Ok(QueueType::Quorum),
            "classic" => Ok(QueueType::Classic),
            other => Err(format!("`{other}` is not a queue type: expected `quorum` or `classic`")),
        }
    }
}

impl TryFrom<String> for QueueType {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl std::fmt::Display for QueueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl MessagingSettings {
    /// The queue of consumer `name` of `service`, e.g. `customer-profile.org-directory`:
    /// shared by the service's replicas, which compete for its messages.
    pub fn queue(&self, service: &str, name: &str) -> String {
        format!("{}{service}.{name}", self.queue_prefix)
    }

    /// Checks value ranges.
    pub fn validate(&self, v: &Validator<'_>) -> Result<(), ConfigError> {
        let url = self.url.expose_secret();
        v.check(url.starts_with("amqp://") || url.starts_with("amqps://"), "messaging.url", "must be an amqp:// URL")?;
        v.check(!self.exchange.is_empty(), "messaging.exchange", "must not be empty")?;
        v.check(self.prefetch > 0, "messaging.prefetch", "must be positive")?;
        v.check(self.max_attempts > 0, "messaging.max_attempts", "must be at least 1")?;
        v.check(
            (1..=10_000).contains(&self.relay_batch_size),
            "messaging.relay_batch_size",
            "must be between 1 and 10000",
        )
    }
}

/// Token verification (docs/auth.md). Every service verifies tokens locally with the
/// keys identity publishes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Required `iss` of access tokens.
    pub issuer: String,
    /// Required `aud` of access tokens.
    pub audience: String,
    /// `http://host:port` of identity, asked for verification keys on an unknown key id.
    pub identity_endpoint: String,
    /// Clock skew tolerated on token times, in seconds.
    pub leeway_s: i64,
    /// Least time between two key fetches, so that forged key ids cannot flood identity.
    pub key_refresh_min_interval_ms: u64,
    /// Verified tokens remembered (saves a signature check per repeated call).
    pub verified_cache_capacity: usize,
    /// How often every replica reloads the revocation list from its database.
    pub revocation_poll_ms: u64,
    /// Longest access-token lifetime in use; revocations older than this are moot.
    pub max_token_ttl_s: u64,
}

impl AuthSettings {
    /// Checks value ranges.
    pub fn validate(&self, v: &Validator<'_>) -> Result<(), ConfigError> {
        v.check(!self.issuer.trim().is_empty(), "auth.issuer", "must not be empty")?;
        v.check(!self.audience.trim().is_empty(), "auth.audience", "must not be empty")?;
        v.check(
            self.identity_endpoint.starts_with("http://") || self.identity_endpoint.starts_with("https://"),
            "auth.identity_endpoint",
            "must be an http:// or https:// URL",
        )?;
        v.check((0..=300).contains(&self.leeway_s), "auth.leeway_s", "must be between 0 and 300")?;
        v.check(self.verified_cache_capacity > 0, "auth.verified_cache_capacity", "must be positive")?;
        v.check(self.revocation_poll_ms > 0, "auth.revocation_poll_ms", "must be positive")?;
        v.check(self.max_token_ttl_s > 0, "auth.max_token_ttl_s", "must be positive")
    }

    /// The verifier settings these amount to.
    pub fn verifier(&self) -> crate::auth::VerifierSettings {
        crate::auth::VerifierSettings {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_s: self.leeway_s,
            key_refresh_min_interval: Duration::from_millis(self.key_refresh_min_interval_ms),
            cache_capacity: self.verified_cache_capacity,
        }
    }
}

/// Log output style.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Coloured single lines for a terminal.
    Human,
    /// One JSON object per line for log shippers.
    Json,
}

/// Logs and traces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Human or JSON log lines.
    pub log_format: LogFormat,
    /// `tracing` filter directives, e.g. `info,customer_profile=debug`.
    pub log_filter: String,
    /// OTLP/gRPC collector endpoint; traces are exported only when set. Defaults to
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
}

impl TelemetrySettings {
    /// Checks value ranges.
    pub fn validate(&self, v: &Validator<'_>) -> Result<(), ConfigError> {
        v.check(
            tracing_subscriber::EnvFilter::try_new(&self.log_filter).is_ok(),
            "telemetry.log_filter",
            "is not a valid tracing filter",
        )?;
        if let Some(endpoint) = &self.otlp_endpoint {
            v.check(
                endpoint.starts_with("http://") || endpoint.starts_with("https://"),
                "telemetry.otlp_endpoint",
                "must be an http:// or https:// URL",
            )?;
        }
        Ok(())
    }
}

/// The sections every service has, validated together.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSettings {
    /// gRPC server.
    pub grpc: GrpcSettings,
    /// Own database.
    pub database: DatabaseSettings,
    /// Broker.
    pub messaging: MessagingSettings,
    /// Logs and traces.
    pub telemetry: TelemetrySettings,
    /// Token verification.
    pub auth: AuthSettings,
}

impl PlatformSettings {
    /// Validates every section, naming the first bad key.
    pub fn validate(&self, service: &str) -> Result<(), ConfigError> {
        let v = Validator::new(service);
        self.grpc.validate(&v)?;
        self.database.validate(&v)?;
        self.messaging.validate(&v)?;
        self.telemetry.validate(&v)?;
        self.auth.validate(&v)
    }
}

/// What a service adds to the platform's configuration: its own section, nothing else.
///
/// The kit loads the platform sections (`grpc`, `database`, `messaging`, `telemetry`,
/// `auth`) and this section from the defaults, the optional file and the environment,
/// refuses any other top-level section, and validates both ([`Settings::load`]).
pub trait ServiceSection: DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Service name, e.g. `customer-profile`: environment prefix `CRM_CUSTOMER_PROFILE__`.
    const SERVICE: &'static str;
    /// Name of the section, e.g. `customer`.
    const SECTION: &'static str;
    /// Defaults of the section, as TOML under `[<SECTION>]`.
    const DEFAULTS: &'static str;

    /// Checks values that have the right type but may not be acceptable, naming the
    /// first bad key; `platform` is there for checks across sections.
    fn validate(&self, platform: &PlatformSettings, v: &Validator<'_>) -> Result<(), ConfigError> {
        let _ = (platform, v);
        Ok(())
    }
}

/// A service's settings: the platform sections and its own.
#[derive(Debug, Clone)]
pub struct Settings<S> {
    /// The sections every service has.
    pub platform: PlatformSettings,
    /// The service's own section.
    pub service: S,
}

impl<S: ServiceSection> Settings<S> {
    /// Loads from the defaults, the optional file and the process environment, then
    /// validates.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(std::env::vars().collect())
    }

    /// Like [`Settings::load`] from explicit variables (tests).
    pub fn load_from(vars: Vec<(String, String)>) -> Result<Self, ConfigError> {
        let whole: Whole<S> = build(S::SERVICE, S::DEFAULTS, vars)?
            .try_deserialize()
            .map_err(|e| load_failure(S::SERVICE, e.to_string()))?;
        let (platform, service) = whole.0;
        let settings = Self { platform, service };
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every section, naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.platform.validate(S::SERVICE)?;
        self.service.validate(&self.platform, &Validator::new(S::SERVICE))
    }

    /// The environment variable that sets a dotted key of this service.
    pub fn env_var(key: &str) -> String {
        env_var_for(S::SERVICE, key)
    }
}

/// The platform sections and the service's, read as one table so that errors name the
/// full key (`grpc.port`); any other top-level section is refused by name.
struct Whole<S>((PlatformSettings, S));

impl<'de, S: ServiceSection> Deserialize<'de> for Whole<S> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Sections<S>(std::marker::PhantomData<S>);

        impl<'de, S: ServiceSection> serde::de::Visitor<'de> for Sections<S> {
            type Value = Whole<S>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "the platform sections and [{}]", S::SECTION)
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Whole<S>, A::Error> {
                use serde::de::Error;
                let (mut grpc, mut database, mut messaging, mut telemetry, mut auth, mut service) =
                    (None, None, None, None, None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "grpc" => grpc = Some(map.next_value()?),
                        "database" => database = Some(map.next_value()?),
                        "messaging" => messaging = Some(map.next_value()?),
                        "telemetry" => telemetry = Some(map.next_value()?),
                        "auth" => auth = Some(map.next_value()?),
                        other if other == S::SECTION => service = Some(map.next_value::<S>()?),
                        other => return Err(A::Error::custom(format!("unknown section `{other}`"))),
                    }
                }
                let platform = PlatformSettings {
                    grpc: grpc.ok_or_else(|| A::Error::missing_field("grpc"))?,
                    database: database.ok_or_else(|| A::Error::missing_field("database"))?,
                    messaging: messaging.ok_or_else(|| A::Error::missing_field("messaging"))?,
                    telemetry: telemetry.ok_or_else(|| A::Error::missing_field("telemetry"))?,
                    auth: auth.ok_or_else(|| A::Error::missing_field("auth"))?,
                };
                let service = service.ok_or_else(|| A::Error::custom(format!("missing section `{}`", S::SECTION)))?;
                Ok(Whole((platform, service)))
            }
        }

        deserializer.deserialize_map(Sections(std::marker::PhantomData))
    }
}

fn load_failure(service: &str, message: String) -> ConfigError {
    ConfigError::Load { service: service.to_string(), message, prefix: env_prefix(service) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const REQUIRED: &[(&str, &str)] = &[
        ("CRM_DEMO__DATABASE__URL", "postgres://postgres@127.0.0.1/demo"),
        ("CRM_DEMO__MESSAGING__URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
    ];

    #[test]
    fn environment_overrides_defaults() {
        let mut vars = env(REQUIRED);
        vars.extend(env(&[("CRM_DEMO__GRPC__PORT", "6000"), ("CRM_DEMO__TELEMETRY__LOG_FORMAT", "json")]));
        let s: PlatformSettings = load_from("demo", "", vars).expect("loads");
        assert_eq!(s.grpc.port, 6000);
        assert_eq!(s.telemetry.log_format, LogFormat::Json);
        assert_eq!(s.database.max_connections, 10);
        s.validate("demo").expect("valid");
    }

    #[test]
    fn a_missing_secret_names_its_key() {
        let err = load_from::<PlatformSettings>("demo", "", env(&REQUIRED[1..])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("url") && msg.contains("database"), "{msg}");
    }

    #[test]
    fn a_malformed_number_names_its_key() {
        let mut vars = env(REQUIRED);
        vars.extend(env(&[("CRM_DEMO__GRPC__PORT", "fifty")]));
        let err = load_from::<PlatformSettings>("demo", "", vars).unwrap_err();
        assert!(err.to_string().contains("grpc.port"), "{err}");
    }

    #[test]
    fn an_unacceptable_value_names_its_key_and_variable() {
        let mut vars = env(REQUIRED);
        vars.extend(env(&[("CRM_DEMO__MESSAGING__PREFETCH", "0")]));
        let s: PlatformSettings = load_from("demo", "", vars).expect("loads");
        let err = s.validate("demo").unwrap_err().to_string();
        assert!(err.contains("messaging.prefetch") && err.contains("CRM_DEMO__MESSAGING__PREFETCH"), "{err}");
    }

    #[test]
    fn the_largest_message_is_4_mib_unless_configured_within_bounds() {
        let s: PlatformSettings = load_from("demo", "", env(REQUIRED)).expect("loads");
        assert_eq!(s.grpc.max_message_bytes, 4 * 1024 * 1024);
        for (value, ok) in [("1024", true), ("16777216", true), ("1023", false), ("1073741825", false)] {
            let mut vars = env(REQUIRED);
            vars.extend(env(&[("CRM_DEMO__GRPC__MAX_MESSAGE_BYTES", value)]));
            let s: PlatformSettings = load_from("demo", "", vars).expect("loads");
            match s.validate("demo") {
                Ok(()) => assert!(ok, "{value} accepted"),
                Err(e) => {
                    assert!(!ok, "{value} refused: {e}");
                    assert!(e.to_string().contains("CRM_DEMO__GRPC__MAX_MESSAGE_BYTES"), "{e}");
                }
            }
        }
    }

    #[test]
    fn queues_are_quorum_queues_unless_configured_classic() {
        let s: PlatformSettings = load_from("demo", "", env(REQUIRED)).expect("loads");
        assert_eq!(s.messaging.queue_type, QueueType::Quorum);
        let mut vars = env(REQUIRED);
        vars.extend(env(&[("CRM_DEMO__MESSAGING__QUEUE_TYPE", "classic")]));
        let s: PlatformSettings = load_from("demo", "", vars).expect("loads");
        assert_eq!(s.messaging.queue_type, QueueType::Classic);
        s.validate("demo").expect("valid");
    }

    #[test]
    fn an_unknown_queue_type_names_its_key_and_the_accepted_values() {
        let mut vars = env(REQUIRED);
        vars.extend(env(&[("CRM_DEMO__MESSAGING__QUEUE_TYPE", "mirrored")]));
        let err = load_from::<PlatformSettings>("demo", "", vars).unwrap_err().to_string();
        assert!(err.contains("messaging.queue_type") && err.contains("quorum") && err.contains("classic"), "{err}");
    }

    #[test]
    fn a_non_postgres_url_is_rejected() {
        let vars = env(&[
            ("CRM_DEMO__DATABASE__URL", "mysql://x"),
            ("CRM_DEMO__MESSAGING__URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        ]);
        let s: PlatformSettings = load_from("demo", "", vars).expect("loads");
        assert!(s.validate("demo").unwrap_err().to_string().contains("database.url"));
    }

    #[test]
    fn a_variable_the_service_does_not_read_is_an_error_naming_it() {
        let mut vars = env(REQUIRED);
        vars.extend(env(&[("CRM_DEMO__GRPC__PROT", "6000")]));
        let err = load_from::<PlatformSettings>("demo", "", vars).unwrap_err().to_string();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn the_otel_variable_sets_the_exporter_endpoint() {
        let mut vars = env(REQUIRED);
        vars.extend(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]));
        let s: PlatformSettings = load_from("demo", "", vars).expect("loads");
        assert_eq!(s.telemetry.otlp_endpoint.as_deref(), Some("http://collector:4317"));
    }

    #[test]
    fn service_names_map_to_environment_prefixes() {
        assert_eq!(env_prefix("customer-profile"), "CRM_CUSTOMER_PROFILE");
        assert_eq!(env_var_for("customer-profile", "grpc.port"), "CRM_CUSTOMER_PROFILE__GRPC__PORT");
    }
    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct DemoSection {
        greeting: String,
        repeat: u32,
    }

    impl ServiceSection for DemoSection {
        const SERVICE: &'static str = "demo";
        const SECTION: &'static str = "demo";
        const DEFAULTS: &'static str = "[demo]\ngreeting = \"hello\"\nrepeat = 1\n";

        fn validate(&self, platform: &PlatformSettings, v: &Validator<'_>) -> Result<(), ConfigError> {
            v.check(self.repeat >= 1, "demo.repeat", "must be at least 1")?;
            v.check(
                u64::from(self.repeat) <= platform.auth.max_token_ttl_s,
                "demo.repeat",
                "must not exceed auth.max_token_ttl_s",
            )
        }
    }

    #[test]
    fn a_service_declares_only_its_section_and_gets_the_platform_ones_too() {
        let mut vars = env(REQUIRED);
        vars.extend(env(&[("CRM_DEMO__DEMO__REPEAT", "3"), ("CRM_DEMO__GRPC__PORT", "6001")]));
        let s = Settings::<DemoSection>::load_from(vars).expect("loads");
        assert_eq!((s.service.greeting.as_str(), s.service.repeat), ("hello", 3));
        assert_eq!(s.platform.grpc.port, 6001);
        assert_eq!(Settings::<DemoSection>::env_var("demo.repeat"), "CRM_DEMO__DEMO__REPEAT");
    }

    #[test]
    fn the_sections_own_rules_run_and_name_the_key_and_variable() {
        let mut vars = env(REQUIRED);
        vars.extend(env(&[("CRM_DEMO__DEMO__REPEAT", "0")]));
        let err = Settings::<DemoSection>::load_from(vars).unwrap_err().to_string();
        assert!(err.contains("demo.repeat") && err.contains("CRM_DEMO__DEMO__REPEAT"), "{err}");
    }

    #[test]
    fn a_platform_rule_still_runs_for_a_service_section() {
        let mut vars = env(REQUIRED);
        vars.extend(env(&[("CRM_DEMO__MESSAGING__PREFETCH", "0")]));
        let err = Settings::<DemoSection>::load_from(vars).unwrap_err().to_string();
        assert!(err.contains("messaging.prefetch"), "{err}");
    }

    #[test]
    fn an_unknown_section_or_key_is_refused_by_name() {
        let mut vars = env(REQUIRED);
        vars.extend(env(&[("CRM_DEMO__CUSTOMER__TRUST", "3")]));
        let err = Settings::<DemoSection>::load_from(vars).unwrap_err().to_string();
        assert!(err.contains("unknown section `customer`"), "{err}");
        let mut vars = env(REQUIRED);
        vars.extend(env(&[("CRM_DEMO__DEMO__GREETNG", "hi")]));
        let err = Settings::<DemoSection>::load_from(vars).unwrap_err().to_string();
        assert!(err.contains("greetng"), "{err}");
        let mut vars = env(REQUIRED);
        vars.extend(env(&[("CRM_DEMO__GRPC__PORT", "fifty")]));
        let err = Settings::<DemoSection>::load_from(vars).unwrap_err().to_string();
        assert!(err.contains("grpc.port"), "{err}");
    }
}
