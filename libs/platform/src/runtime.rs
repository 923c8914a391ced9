//! Running a service: database, broker, gRPC server, outbox relay, consumers and
//! health, started together and stopped in the right order.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic_health::server::HealthReporter;

use crate::auth::revocation::RevocationHandler;
use crate::auth::{AuthLayer, IdentityKeys, KeySource, Policy, Verifier};
use crate::config::PlatformSettings;
use crate::error::PlatformError;
use crate::grpc::client::ClientSettings;
use crate::grpc::server::ServedServices;
use crate::messaging::{Broker, Consumer, ConsumerConfig, OutboxRelay};

/// A background task of a service (a consumer), started with the token that stops it.
pub type BackgroundTask = Box<dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Everything a service needs from the platform, built once at start-up.
pub struct ServiceRuntime {
    /// Service name, e.g. `customer-profile`.
    pub name: &'static str,
    /// The shared settings sections.
    pub settings: PlatformSettings,
    /// Pool for the service's own database.
    pub pool: PgPool,
    /// Broker handle (connects lazily).
    pub broker: Broker,
    listener: TcpListener,
    health: HealthReporter,
    /// Health, then the service's own servers as they are added.
    routes: RoutesBuilder,
    served: ServedServices,
    /// Set by [`ServiceRuntime::protect`]; every service but a test fixture sets it.
    auth: Option<AuthLayer>,
}

impl std::fmt::Debug for ServiceRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceRuntime").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ServiceRuntime {
    /// Connects the database (creating it in development), applies migrations when
    /// configured, and binds the gRPC port.
    pub async fn build(
        name: &'static str,
        settings: PlatformSettings,
        migrator: &Migrator,
    ) -> Result<Self, PlatformError> {
        let pool = crate::db::connect(&settings.database).await?;
        if settings.database.migrate_on_start {
            crate::db::migrate(&pool, migrator).await?;
        }
        let broker = Broker::new(&settings.messaging, name);
        let listener = crate::grpc::server::bind(&settings.grpc).await?;
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
        let mut routes = RoutesBuilder::default();
        routes.add_service(health_service);
        Ok(Self {
            name,
            settings,
            pool,
            broker,
            listener,
            health,
            routes,
            served: ServedServices::default(),
            auth: None,
        })
    }

    /// A verifier with keys from identity (`auth.identity_endpoint`).
    pub fn identity_verifier(&self) -> Result<Arc<Verifier>, PlatformError> {
        let channel = crate::grpc::client::channel(&ClientSettings {
            endpoint: self.settings.auth.identity_endpoint.clone(),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
        })?;
        Ok(self.verifier(Arc::new(IdentityKeys::new(channel))))
    }

    /// A verifier with keys from `source` (identity's own store; fixed keys in tests).
    pub fn verifier(&self, source: Arc<dyn KeySource>) -> Arc<Verifier> {
        Arc::new(Verifier::new(self.settings.auth.verifier(), source))
    }

    /// Authenticates and authorises every call against `policy`. Also keeps the
    /// verifier's revocations current: a consumer records identity's
    /// `PrincipalRevoked` events, and every replica reloads them.
    pub fn protect(&mut self, verifier: Arc<Verifier>, policy: Policy) {
        self.auth = Some(AuthLayer::new(verifier, policy));
    }

    /// The bound port (useful when the configuration asked for port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// Serves a generated tonic server (`CustomerServiceServer::new(api)`). Its name,
    /// taken from the type, is what health reports on, what reflection lists and
    /// describes, and what decides which calls are UNIMPLEMENTED.
    pub fn add_service<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes.add_service(service);
        self.served.add(S::NAME);
        self
    }

    /// Serves until `stop` resolves, then: health turns NOT_SERVING, the server stops
    /// accepting and drains in-flight calls (at most `grpc.shutdown_grace_ms`),
    /// consumers finish their current message, the relay publishes what the last calls
    /// committed, and connections close.
    pub async fn run(
        mut self,
        tasks: Vec<BackgroundTask>,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), PlatformError> {
        let stopping = crate::shutdown::token_from(stop);
        let background = CancellationToken::new();
        let mut handles = Vec::new();
        self.served.add_reflection(&mut self.routes)?;
        let auth = match self.auth.take() {
            Some(auth) => Some(auth.serving(self.served.methods()?)),
            None => None,
        };

        handles.push(tokio::spawn(crate::grpc::health::monitor(
            self.health.clone(),
            self.served.names().to_vec(),
            self.pool.clone(),
            self.broker.clone(),
            Duration::from_millis(self.settings.grpc.health_interval_ms),
            stopping.clone(),
        )));
        let relay = OutboxRelay::new(
            self.pool.clone(),
            crate::db::connect_options(&self.settings.database)?,
            self.broker.clone(),
            self.settings.messaging.relay_batch_size,
            Duration::from_millis(self.settings.messaging.relay_poll_ms),
        );
        handles.push(tokio::spawn(relay.run(background.clone())));
        for task in tasks {
            handles.push(tokio::spawn(task(background.clone())));
        }
        if let Some(auth) = &auth {
            let auth_settings = &self.settings.auth;
            let max_ttl = Duration::from_secs(auth_settings.max_token_ttl_s);
            handles.push(tokio::spawn(crate::auth::revocation::keep_current(
                self.pool.clone(),
                auth.verifier().clone(),
                Duration::from_millis(auth_settings.revocation_poll_ms),
                max_ttl,
                background.clone(),
            )));
            let consumer = Consumer::new(
                self.pool.clone(),
                self.broker.clone(),
                ConsumerConfig {
                    name: self.settings.messaging.queue(self.name, "principal-revocations"),
                    bindings: vec![crate::auth::PRINCIPAL_REVOKED.to_string()],
                    prefetch: 16,
                    max_attempts: self.settings.messaging.max_attempts,
                    retry_backoff: Duration::from_millis(self.settings.messaging.retry_backoff_ms),
                },
                RevocationHandler,
            );
            handles.push(tokio::spawn(consumer.run(background.clone())));
        }

        let grace = self.settings.grpc.shutdown_grace();
        let server = crate::grpc::server::serve(
            &self.settings.grpc,
            self.listener,
            self.routes.routes(),
            auth,
            stopping.clone().cancelled_owned(),
        );
        let served = tokio::select! {
            r = server => r,
            _ = async { stopping.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "shutdown grace expired; abandoning in-flight calls");
                Ok(())
            }
        };
        background.cancel();
        for handle in handles {
            let _ = handle.await;
        }
        self.broker.close().await;
        self.pool.close().await;
        tracing::info!(service = self.name, "stopped");
        served
    }
}

/// The `<service> migrate` command: applies migrations and exits.
pub async fn migrate_only(settings: &PlatformSettings, migrator: &Migrator) -> Result<(), PlatformError> {
    let pool = crate::db::connect(&settings.database).await?;
    crate::db::migrate(&pool, migrator).await?;
    pool.close().await;
    Ok(())
}
