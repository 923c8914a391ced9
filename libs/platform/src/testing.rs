//! Helpers for integration tests: every test gets its own freshly created database and
//! its own exchange on the real local PostgreSQL and RabbitMQ, so tests run in
//! parallel without seeing each other's rows or events.
//!
//! `CRM_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432`) and
//! `CRM_TEST_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`) point them
//! elsewhere.

use sqlx::{Connection, PgConnection};

use crate::config::PlatformSettings;

/// Server URL without a database name.
pub fn database_server_url() -> String {
    std::env::var("CRM_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Broker URL.
pub fn amqp_url() -> String {
    std::env::var("CRM_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A name unique to this test run, e.g. `crm_test_0f3a…`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// An isolated environment: database name and exchange for one test.
#[derive(Debug, Clone)]
pub struct TestEnv {
    /// Service the settings are for.
    pub service: String,
    /// Freshly created database.
    pub database: String,
    /// Exchange used only by this test.
    pub exchange: String,
}

impl TestEnv {
    /// Creates a new empty database; the exchange is declared on first use.
    pub async fn new(service: &str) -> Self {
        let database = unique("crm_test");
        on_server(&[&format!("CREATE DATABASE \"{database}\"")]).await;
        Self { service: service.to_string(), database, exchange: unique("crm.test") }
    }

    /// URL of this test's database.
    pub fn database_url(&self) -> String {
        format!("{}/{}", database_server_url(), self.database)
    }

    /// Environment variables configuring a service for this test: its database and
    /// exchange, port 0, a fast health interval. `extra` pairs are added (use short keys
    /// such as `grpc.port`).
    pub fn vars(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut vars = vec![
            ("database.url".to_string(), self.database_url()),
            ("messaging.url".to_string(), amqp_url()),
            ("messaging.exchange".to_string(), self.exchange.clone()),
            ("messaging.queue_prefix".to_string(), format!("{}.", self.exchange)),
            ("grpc.host".to_string(), "127.0.0.1".to_string()),
            ("grpc.port".to_string(), "0".to_string()),
            ("grpc.health_interval_ms".to_string(), "100".to_string()),
            ("messaging.relay_poll_ms".to_string(), "100".to_string()),
            ("telemetry.log_filter".to_string(), "warn".to_string()),
            // Each test declares its own queues and leaves them behind: hundreds per
            // run. Quorum queues are Raft groups, not made for that churn (on a 2-core
            // machine the broker stopped answering); the kit's consumer tests ask for
            // quorum queues explicitly, the production default.
            ("messaging.queue_type".to_string(), "classic".to_string()),
        ];
        for (k, v) in extra {
            vars.retain(|(key, _)| key != k);
            vars.push((k.to_string(), v.to_string()));
        }
        vars.into_iter().map(|(k, v)| (crate::config::env_var_for(&self.service, &k), v)).collect()
    }

    /// Platform settings for this test.
    pub fn platform_settings(&self, extra: &[(&str, &str)]) -> PlatformSettings {
        crate::config::load_from(&self.service, "", self.vars(extra)).expect("test settings load")
    }

    /// Makes the database refuse new connections and drops existing ones, as when the
    /// database server becomes unreachable.
    pub async fn cut_database(&self) {
        on_server(&[
            &format!("ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS false", self.database),
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
                self.database
            ),
        ])
        .await;
    }

    /// Undoes [`TestEnv::cut_database`].
    pub async fn restore_database(&self) {
        on_server(&[&format!("ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS true", self.database)]).await;
    }

    /// Publishes `message` on this test's exchange the way another service's relay
    /// would (CloudEvents properties, routing key the message's type), and waits for
    /// the broker's confirmation. Consumers bound before it receive it. Answers the
    /// event's id (the `message_id` a consumer's inbox records).
    pub async fn publish<M: prost::Name>(&self, source: &str, subject: &str, message: &M) -> String {
        use lapin::options::BasicPublishOptions;
        let settings = self.platform_settings(&[]);
        let broker = crate::messaging::Broker::new(&settings.messaging, "test-publisher");
        let channel = broker.channel().await.expect("broker channel");
        let event = crate::messaging::envelope::OutgoingEvent {
            id: uuid::Uuid::now_v7(),
            event_type: M::full_name(),
            source: source.into(),
            subject: subject.into(),
            payload: message.encode_to_vec(),
            traceparent: None,
            tracestate: None,
            actor: None,
            time: time::OffsetDateTime::now_utc(),
        };
        channel
            .basic_publish(
                self.exchange.clone().into(),
                event.event_type.clone().into(),
                BasicPublishOptions::default(),
                &event.payload,
                event.properties(),
            )
            .await
            .expect("publish")
            .await
            .expect("broker confirmation");
        event.id.to_string()
    }

    /// Drops the database, closing whatever is still connected to it. Tests leave theirs
    /// to `cargo xtask test` (a failed test's rows can be looked at); benchmarks drop
    /// theirs, gigabytes each.
    pub async fn drop_database(&self) {
        on_server(&[&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database)]).await;
    }
}

/// Runs administrative `statements` (names made by [`unique`], never input) on the
/// server's `postgres` database.
async fn on_server(statements: &[&str]) {
    let mut conn = PgConnection::connect(&format!("{}/postgres", database_server_url()))
        .await
        .expect("the local PostgreSQL must be running (see README)");
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_string())).execute(&mut conn).await.expect(statement);
    }
    let _ = conn.close().await;
}

/// Polls `check` every 25 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Secrets every test uses, in one place (never valid anywhere but a test).
pub mod secrets {
    /// A 32-byte key (64 hex digits): identity's key-encryption key and
    /// customer-profile's PII master key in tests.
    pub const KEY_HEX: &str = "8f2c0b5e3a7d41c69e0f1b2a3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";
    /// Password of the first administrator (`admin`) of every test identity.
    pub const ADMIN_PASSWORD: &str = "Bootstrap-Root-2026!";
}

/// The future a service runs until: resolves when the test stops it.
pub type StopSignal = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A service running in the test process on a free port, until [`RunningService::stop`].
#[derive(Debug)]
pub struct RunningService {
    /// The bound port.
    pub port: u16,
    /// A channel to it.
    pub channel: tonic::transport::Channel,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), crate::PlatformError>>>,
}

impl RunningService {
    /// Runs `run(stop)` (a service's `run_until_stopped`) on a task, waits until the
    /// service on `port` reports SERVING (its consumers' queues exist then) and connects.
    pub async fn start<F>(port: u16, run: impl FnOnce(StopSignal) -> F) -> Self
    where
        F: std::future::Future<Output = Result<(), crate::PlatformError>> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(run(Box::pin(async {
            let _ = stopped.await;
        })));
        let endpoint = format!("http://127.0.0.1:{port}");
        let serving = eventually(std::time::Duration::from_secs(20), || {
            let endpoint = endpoint.clone();
            async move {
                crate::grpc::health::check(&endpoint, "", std::time::Duration::from_secs(1)).await.unwrap_or(false)
            }
        })
        .await;
        assert!(serving, "the service on port {port} did not become SERVING within 20 s");
        let channel = tonic::transport::Channel::from_shared(endpoint)
            .expect("a loopback URI")
            .connect()
            .await
            .expect("the service accepts connections");
        Self { port, channel, stop: Some(stop), handle: Some(handle) }
    }

    /// Sends the stop signal and waits for a clean exit (panics otherwise).
    pub async fn stop(&mut self) {
        self.stop_handle().await
    }

    /// A future that sends the stop signal and waits for a clean exit, for tests that
    /// stop the service while a call is in flight.
    pub fn stop_handle(&mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let stop = self.stop.take();
        let handle = self.handle.take();
        async move {
            if let Some(stop) = stop {
                let _ = stop.send(());
            }
            if let Some(handle) = handle {
                handle.await.expect("the service task did not panic").expect("the service stopped cleanly");
            }
        }
    }
}

/// Signs access tokens for tests with a key the service under test is given through
/// [`TestTokens::key_source`], so tests exercise the real verification path without
/// running identity.
#[derive(Debug, Clone)]
pub struct TestTokens {
    key: crate::auth::SigningKey,
}

impl Default for TestTokens {
    fn default() -> Self {
        Self::new()
    }
}

impl TestTokens {
    /// A fresh signing key.
    pub fn new() -> Self {
        Self { key: crate::auth::SigningKey::generate(unique("test-key")) }
    }

    /// The key source to build the service's verifier with.
    pub fn key_source(&self) -> std::sync::Arc<dyn crate::auth::KeySource> {
        std::sync::Arc::new(crate::auth::StaticKeys(vec![self.key.verification_key()]))
    }

    /// Claims of a 15-minute user token for the default issuer and audience; adjust and
    /// [`sign`](Self::sign) them.
    pub fn claims(
        &self,
        subject: &str,
        perms: &[&str],
        scope: crate::auth::DataScope,
        org_path: &str,
    ) -> crate::auth::Claims {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let org = org_path.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string();
        crate::auth::Claims {
            iss: "crm-identity".into(),
            sub: subject.into(),
            aud: "crm".into(),
            iat: now,
            exp: now + 900,
            jti: uuid::Uuid::new_v4().to_string(),
            kind: crate::auth::PrincipalKind::User,
            name: subject.into(),
            org,
            org_path: org_path.into(),
            roles: vec![],
            perms: perms.iter().map(|p| p.to_string()).collect(),
            scope,
        }
    }

    /// Signs claims.
    pub fn sign(&self, claims: &crate::auth::Claims) -> String {
        crate::auth::sign(claims, &self.key)
    }

    /// A signed token for `subject` with `perms` and `scope` at `org_path`.
    pub fn token(&self, subject: &str, perms: &[&str], scope: crate::auth::DataScope, org_path: &str) -> String {
        self.sign(&self.claims(subject, perms, scope, org_path))
    }
}

/// One event caught by an [`EventProbe`].
#[derive(Debug, Clone)]
pub struct CaughtEvent {
    /// CloudEvents type (the message's protobuf name).
    pub event_type: String,
    /// CloudEvents subject.
    pub subject: String,
    /// Protobuf payload.
    pub payload: Vec<u8>,
    /// Trace context it carried.
    pub traceparent: Option<String>,
    /// Who caused it (`x-crm-actor`).
    pub actor: Option<String>,
}

impl CaughtEvent {
    /// The payload as `M` when the event is of that type.
    pub fn decode<M: prost::Message + Default + prost::Name>(&self) -> Option<M> {
        (self.event_type == M::full_name()).then(|| M::decode(self.payload.as_slice()).ok()).flatten()
    }
}

/// A queue bound to every routing key of a test's exchange, catching each event a
/// service under test publishes (bind it before the events happen).
#[derive(Debug)]
pub struct EventProbe {
    channel: lapin::Channel,
    queue: String,
}

impl EventProbe {
    /// Declares an auto-deleted queue bound with `#` to `env`'s exchange.
    pub async fn bind(env: &TestEnv) -> Self {
        use lapin::options::{QueueBindOptions, QueueDeclareOptions};
        let settings = env.platform_settings(&[]);
        let broker = crate::messaging::Broker::new(&settings.messaging, "probe");
        let channel = broker.channel().await.expect("probe channel");
        let queue = unique("events");
        let declare = QueueDeclareOptions { auto_delete: true, ..Default::default() };
        channel.queue_declare(queue.clone().into(), declare, Default::default()).await.expect("declare probe queue");
        channel
            .queue_bind(
                queue.clone().into(),
                env.exchange.clone().into(),
                "#".into(),
                QueueBindOptions::default(),
                Default::default(),
            )
            .await
            .expect("bind probe queue");
        Self { channel, queue }
    }

    /// Events caught until `n` have arrived or `wait` has passed, in arrival order.
    pub async fn take(&self, n: usize, wait: std::time::Duration) -> Vec<CaughtEvent> {
        use lapin::options::BasicGetOptions;
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < n && tokio::time::Instant::now() < deadline {
            let got = self.channel.basic_get(self.queue.clone().into(), BasicGetOptions { no_ack: true }).await;
            match got.expect("probe get") {
                Some(m) => {
                    let headers = m.delivery.properties.headers().clone().unwrap_or_default();
                    let get = |k: &str| crate::messaging::envelope::header_str(&headers, k).map(str::to_string);
                    out.push(CaughtEvent {
                        event_type: get("cloudEvents:type").unwrap_or_default(),
                        subject: get("cloudEvents:subject").unwrap_or_default(),
                        payload: m.delivery.data.clone(),
                        traceparent: get("traceparent"),
                        actor: get(crate::messaging::envelope::ACTOR_HEADER),
                    });
                }
                None => tokio::time::sleep(std::time::Duration::from_millis(25)).await,
            }
        }
        out
    }
}
