//! Cross-service flows: several services started in one process, each with its own
//! database, sharing one exchange on the real local RabbitMQ, talking over real gRPC.
//!
//! [`TestPlatform`] is the one harness every cross-service test starts from: identity,
//! customer-profile and analytics on free ports, wired to each other (they verify
//! identity's tokens with keys fetched over gRPC; customer-profile follows identity's
//! events, analytics customer-profile's). The flows
//! live in `tests/flows`, the checks from other languages' clients in
//! `tests/other_languages`, the trace checks in `tests/traces`, the sweep of bad input
//! over every RPC in `tests/sweep`.

use crm_platform::grpc::client::BearerToken;
use crm_platform::testing::{EventProbe, TestEnv};
use crm_proto::crm::analytics::v1 as apb;
use crm_proto::crm::customer::v1 as cpb;
use crm_proto::crm::identity::v1 as ipb;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A customer-profile client that sends a fixed token.
pub type Customers = cpb::customer_service_client::CustomerServiceClient<InterceptedService<Channel, BearerToken>>;
/// An analytics client that sends a fixed token.
pub type Analytics = apb::analytics_service_client::AnalyticsServiceClient<InterceptedService<Channel, BearerToken>>;
/// An identity administration client that sends a fixed token.
pub type Admin =
    ipb::identity_admin_service_client::IdentityAdminServiceClient<InterceptedService<Channel, BearerToken>>;

use crm_platform::testing::RunningService;
pub use crm_platform::testing::secrets::ADMIN_PASSWORD;
use crm_platform::testing::secrets::KEY_HEX;

/// identity, customer-profile and analytics, running in this process until
/// [`TestPlatform::stop`].
#[derive(Debug)]
pub struct TestPlatform {
    /// A channel to identity.
    pub identity: Channel,
    /// A channel to customer-profile.
    pub customers: Channel,
    /// A channel to analytics.
    pub analytics: Channel,
    /// identity's port.
    pub identity_port: u16,
    /// customer-profile's port.
    pub customers_port: u16,
    /// analytics' port.
    pub analytics_port: u16,
    /// The exchange both services publish to and consume from.
    pub exchange: String,
    /// `postgres://` URL of identity's database.
    pub identity_database_url: String,
    /// `postgres://` URL of customer-profile's database.
    pub customers_database_url: String,
    /// `postgres://` URL of analytics' database.
    pub analytics_database_url: String,
    /// Every event published on the exchange, bound before any service started.
    pub events: EventProbe,
    running: Vec<RunningService>,
}

/// A test failure while starting the platform: tests unwrap it.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

impl TestPlatform {
    /// Starts identity, customer-profile and analytics on free ports with their own
    /// databases and one shared exchange.
    pub async fn start() -> Result<Self, StartError> {
        Self::start_with(&[], &[]).await
    }

    /// Like [`TestPlatform::start`], with extra settings (short keys such as
    /// `telemetry.log_filter`) for identity and for customer-profile.
    pub async fn start_with(
        identity_extra: &[(&str, &str)],
        customers_extra: &[(&str, &str)],
    ) -> Result<Self, StartError> {
        let id_env = TestEnv::new("identity").await;
        let events = EventProbe::bind(&id_env).await;
        let mut vars = vec![
            ("identity.key_encryption_key", KEY_HEX),
            ("identity.bootstrap.admin_password", ADMIN_PASSWORD),
            ("identity.argon2.memory_kib", "256"),
            ("identity.argon2.iterations", "1"),
            ("auth.revocation_poll_ms", "200"),
        ];
        vars.extend_from_slice(identity_extra);
        let settings = identity::Settings::load_from(id_env.vars(&vars))?;
        let id_app = identity::Application::build(settings).await?;
        let identity_port = id_app.port();
        // Serving: its consumers' queues exist, so no event of the test's first calls is
        // published before it can receive it.
        let identity = RunningService::start(identity_port, |stop| id_app.run_until_stopped(stop)).await;

        let endpoint = format!("http://127.0.0.1:{identity_port}");
        let an_env = TestEnv::new("analytics").await;
        let vars = [
            ("messaging.exchange", id_env.exchange.as_str()),
            ("auth.identity_endpoint", endpoint.as_str()),
            ("auth.revocation_poll_ms", "200"),
            ("auth.key_refresh_min_interval_ms", "0"),
        ];
        let settings = analytics::Settings::load_from(an_env.vars(&vars))?;
        let an_app = analytics::Application::build(settings).await?;
        let analytics_port = an_app.port();
        let analytics = RunningService::start(analytics_port, |stop| an_app.run_until_stopped(stop)).await;

        let cp_env = TestEnv::new("customer-profile").await;
        let analytics_endpoint = format!("http://127.0.0.1:{analytics_port}");
        let mut vars = vec![
            ("customer.pii_key", KEY_HEX),
            ("messaging.exchange", id_env.exchange.as_str()),
            ("auth.identity_endpoint", endpoint.as_str()),
            ("auth.revocation_poll_ms", "200"),
            ("auth.key_refresh_min_interval_ms", "0"),
            ("customer.analytics.endpoint", analytics_endpoint.as_str()),
            ("customer.analytics.timeout_ms", "2000"),
        ];
        vars.extend_from_slice(customers_extra);
        let settings = customer_profile::Settings::load_from(cp_env.vars(&vars))?;
        let cp_app = customer_profile::Application::build(settings).await?;
        let customers_port = cp_app.port();
        let customers = RunningService::start(customers_port, |stop| cp_app.run_until_stopped(stop)).await;

        Ok(Self {
            identity: identity.channel.clone(),
            customers: customers.channel.clone(),
            analytics: analytics.channel.clone(),
            identity_port,
            customers_port,
            analytics_port,
            identity_database_url: id_env.database_url(),
            customers_database_url: cp_env.database_url(),
            analytics_database_url: an_env.database_url(),
            exchange: id_env.exchange,
            events,
            running: vec![identity, analytics, customers],
        })
    }

    /// Logs in through identity and returns the access token.
    pub async fn login(&self, login: &str, password: &str) -> Result<String, tonic::Status> {
        let mut auth = ipb::auth_service_client::AuthServiceClient::new(self.identity.clone());
        let tokens = auth.login(ipb::LoginRequest { login: login.into(), password: password.into() }).await?;
        tokens.into_inner().tokens.map(|t| t.access_token).ok_or_else(|| tonic::Status::internal("no tokens"))
    }

    /// identity's administration API as the holder of `token`.
    pub fn admin(&self, token: &str) -> Admin {
        ipb::identity_admin_service_client::IdentityAdminServiceClient::with_interceptor(
            self.identity.clone(),
            bearer(token),
        )
    }

    /// customer-profile's API as the holder of `token`.
    pub fn customers(&self, token: &str) -> Customers {
        cpb::customer_service_client::CustomerServiceClient::with_interceptor(self.customers.clone(), bearer(token))
    }

    /// analytics' API as the holder of `token`.
    pub fn analytics(&self, token: &str) -> Analytics {
        apb::analytics_service_client::AnalyticsServiceClient::with_interceptor(self.analytics.clone(), bearer(token))
    }

    /// Stops the services and waits until they have drained and exited cleanly.
    pub async fn stop(mut self) {
        // The callers of identity first.
        for running in self.running.iter_mut().rev() {
            running.stop().await;
        }
    }
}

fn bearer(token: &str) -> BearerToken {
    BearerToken::new(token).expect("a token issued by identity is a header value")
}

/// Runs `tests/python/<script>` with `env` under `$PYTHON` (default `python3`), prints
/// its output, and answers whether it succeeded; fails the test when the Python
/// packages of `tests/python/requirements.txt` are missing.
pub async fn run_python(script: &str, env: Vec<(&'static str, String)>) -> bool {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join(script);
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let output =
        tokio::task::spawn_blocking(move || std::process::Command::new(python).arg(&script).envs(env).output())
            .await
            .expect("the Python runner did not panic")
            .expect("python3 runs (set PYTHON to choose another interpreter)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{}{stderr}", String::from_utf8_lossy(&output.stdout));
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "the Python packages are missing: pip install -r tests/python/requirements.txt"
    );
    output.status.success()
}
