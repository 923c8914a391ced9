//! Running a service: database, broker, gRPC server, outbox relay, consumers and
//! health, started together and stopped in the right order.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
use crate::messaging::{Broker, Consumer, ConsumerConfig, EventHandler, OutboxRelay};

/// A background task of a service: a plain future, run by [`ServiceRuntime::run`].
pub type BackgroundTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

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
    /// Cancelled once the server has drained: background tasks stop on it.
    background: CancellationToken,
    /// Named background tasks, started by [`ServiceRuntime::run`].
    tasks: Vec<(String, BackgroundTask)>,
    /// The queues of the consumers, declared before the server serves.
    topologies: Vec<Consumer<()>>,
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
            background: CancellationToken::new(),
            tasks: Vec::new(),
            topologies: Vec::new(),
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
    /// describes, and what decides which calls are UNIMPLEMENTED. It reads and writes
    /// messages of at most `grpc.max_message_bytes`.
    pub fn add_service<S>(&mut self, service: S) -> &mut Self
    where
        S: crm_proto::MessageLimits
            + tower::Service<
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
        self.routes.add_service(service.with_message_limits(self.settings.grpc.max_message_bytes));
        self.served.add(S::NAME);
        self
    }

    /// The token background tasks stop on: cancelled after the server has drained.
    pub fn stop_token(&self) -> CancellationToken {
        self.background.clone()
    }

    /// Runs `task` beside the server (a group-commit writer, a poller). It should end
    /// when [`ServiceRuntime::stop_token`] is cancelled or when its last handle is
    /// dropped; if it ends or panics while the service is running, that is logged with
    /// `name` and health turns NOT_SERVING (readiness and liveness: the replica cannot
    /// do its work any more and a restart is the cure).
    pub fn task(&mut self, name: impl Into<String>, task: impl Future<Output = ()> + Send + 'static) -> &mut Self {
        self.tasks.push((name.into(), Box::pin(task)));
        self
    }

    /// Consumes the events bound by `bindings` with `handler`, from the queue
    /// `<service>.<name>` (after `messaging.queue_prefix`), with the prefetch, attempts
    /// and backoff of the `messaging` settings.
    pub fn consumer<H: EventHandler>(&mut self, name: &str, bindings: &[&str], handler: H) -> &mut Self {
        let prefetch = self.settings.messaging.prefetch;
        self.consumer_with_prefetch(name, bindings, prefetch, handler)
    }

    fn consumer_with_prefetch<H: EventHandler>(
        &mut self,
        name: &str,
        bindings: &[&str],
        prefetch: u16,
        handler: H,
    ) -> &mut Self {
        let messaging = &self.settings.messaging;
        let config = ConsumerConfig {
            name: messaging.queue(self.name, name),
            bindings: bindings.iter().map(|b| b.to_string()).collect(),
            prefetch,
            max_attempts: messaging.max_attempts,
            retry_backoff: Duration::from_millis(messaging.retry_backoff_ms),
        };
        let consumer = Consumer::new(self.pool.clone(), self.broker.clone(), config, handler);
        self.topologies.push(consumer.topology());
        let stop = self.stop_token();
        self.task(format!("consumer {name}"), consumer.run(stop))
    }

    /// Serves until `stop` resolves, then: health turns NOT_SERVING, the server stops
    /// accepting and drains in-flight calls (at most `grpc.shutdown_grace_ms`),
    /// consumers finish their current message, the relay publishes what the last calls
    /// committed, and connections close.
    pub async fn run(mut self, stop: impl Future<Output = ()> + Send + 'static) -> Result<(), PlatformError> {
        let stopping = crate::shutdown::token_from(stop);
        let background = self.background.clone();
        let task_failed = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        self.served.add_reflection(&mut self.routes)?;
        let auth = match self.auth.take() {
            Some(auth) => Some(auth.serving(self.served.methods()?)),
            None => None,
        };

        let relay = OutboxRelay::new(
            self.pool.clone(),
            crate::db::connect_options(&self.settings.database)?,
            self.broker.clone(),
            self.settings.messaging.relay_batch_size,
            Duration::from_millis(self.settings.messaging.relay_poll_ms),
        );
        self.task("outbox relay", relay.run(background.clone()));
        if let Some(auth) = &auth {
            let auth_settings = &self.settings.auth;
            let max_ttl = Duration::from_secs(auth_settings.max_token_ttl_s);
            let revocations = crate::auth::revocation::keep_current(
                self.pool.clone(),
                auth.verifier().clone(),
                Duration::from_millis(auth_settings.revocation_poll_ms),
                max_ttl,
                background.clone(),
            );
            self.task("revocation reload", revocations);
            self.consumer_with_prefetch(
                "principal-revocations",
                &[crate::auth::PRINCIPAL_REVOKED],
                16,
                RevocationHandler,
            );
        }
        let tasks = std::mem::take(&mut self.tasks);
        declare_consumer_queues(&self.broker, &self.topologies).await;
        // Health reports SERVING only from here on: the consumers' queues exist.
        handles.push(tokio::spawn(crate::grpc::health::monitor(
            self.health.clone(),
            self.served.names().to_vec(),
            self.pool.clone(),
            self.broker.clone(),
            Duration::from_millis(self.settings.grpc.health_interval_ms),
            task_failed.clone(),
            stopping.clone(),
        )));
        for (name, task) in tasks {
            handles.push(supervise(name, task, stopping.clone(), task_failed.clone()));
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

/// Declares every consumer's queues and bindings before anything is served, so that an
/// event published in answer to the first calls already has its queues to go to. With
/// the broker away this gives up after a few seconds: each consumer declares its queues
/// again whenever it connects.
async fn declare_consumer_queues(broker: &Broker, topologies: &[Consumer<()>]) {
    if topologies.is_empty() {
        return;
    }
    let declare = async {
        let channel = broker.channel().await?;
        for topology in topologies {
            topology.declare(&channel).await?;
        }
        let _ = channel.close(200, "declared".into()).await;
        Ok::<(), PlatformError>(())
    };
    match tokio::time::timeout(Duration::from_secs(5), declare).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "consumer queues not declared at start; consumers declare them on connect")
        }
        Err(_) => tracing::warn!("broker did not answer at start; consumers declare their queues on connect"),
    }
}

/// Runs `task`; if it ends or panics before the service is stopping, logs it and
/// marks the service failed (health turns NOT_SERVING).
fn supervise(
    name: String,
    task: BackgroundTask,
    stopping: CancellationToken,
    failed: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let running = tokio::spawn(task);
    tokio::spawn(async move {
        let ended = running.await;
        if stopping.is_cancelled() {
            if let Err(e) = ended
                && e.is_panic()
            {
                tracing::error!(task = %name, "background task panicked while stopping");
            }
            return;
        }
        match ended {
            Ok(()) => {
                tracing::error!(task = %name, "background task ended while the service runs; health is NOT_SERVING")
            }
            Err(e) if e.is_panic() => {
                tracing::error!(task = %name, panic = ?e, "background task panicked; health is NOT_SERVING")
            }
            Err(e) => tracing::error!(task = %name, error = %e, "background task was cancelled; health is NOT_SERVING"),
        }
        failed.store(true, Ordering::SeqCst);
    })
}

/// The `<service> migrate` command: applies migrations and exits.
pub async fn migrate_only(settings: &PlatformSettings, migrator: &Migrator) -> Result<(), PlatformError> {
    let pool = crate::db::connect(&settings.database).await?;
    crate::db::migrate(&pool, migrator).await?;
    pool.close().await;
    Ok(())
}
