//! `grpc.health.v1` driven by real dependency checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::messaging::Broker;

/// Service name a liveness probe asks for: SERVING as long as the process runs and
/// answers, whatever its dependencies do, so that a database outage takes replicas out
/// of rotation (readiness) without restarting them all (liveness).
pub const LIVENESS: &str = "liveness";

/// Re-checks the database and the broker every `interval` and reports SERVING for the
/// whole server ("") and for each of `services` only while both answer. Kubernetes
/// readiness probes then take a replica out of rotation when it cannot do its work.
/// Once `task_failed` is set (a background task of the service stopped), everything,
/// liveness included, is NOT_SERVING for good: only a restart brings the task back.
pub async fn monitor(
    reporter: HealthReporter,
    services: Vec<&'static str>,
    pool: PgPool,
    broker: Broker,
    interval: Duration,
    task_failed: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    reporter.set_service_status(LIVENESS, ServingStatus::Serving).await;
    let mut last: Option<bool> = None;
    loop {
        if task_failed.load(Ordering::SeqCst) {
            reporter.set_service_status(LIVENESS, ServingStatus::NotServing).await;
            break;
        }
        let check_timeout = interval.clamp(Duration::from_millis(200), Duration::from_secs(3));
        let db = crate::db::is_reachable(&pool, check_timeout).await;
        let mq = tokio::time::timeout(check_timeout, broker.is_reachable()).await.unwrap_or(false);
        let healthy = db && mq;
        let status = if healthy { ServingStatus::Serving } else { ServingStatus::NotServing };
        if last != Some(healthy) {
            tracing::info!(database = db, broker = mq, serving = healthy, "health changed");
            last = Some(healthy);
        }
        reporter.set_service_status("", status).await;
        for service in &services {
            reporter.set_service_status(*service, status).await;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
    // Stopping: tell load balancers to go elsewhere while in-flight calls drain.
    reporter.set_service_status("", ServingStatus::NotServing).await;
    for service in &services {
        reporter.set_service_status(*service, ServingStatus::NotServing).await;
    }
}

/// Asks the server at `endpoint` whether `service` ("" for the whole server) is
/// SERVING. Used by the `healthcheck` command of every binary and by the dev runner.
pub async fn check(endpoint: &str, service: &str, timeout: Duration) -> Result<bool, crate::error::PlatformError> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let response = client.check(tonic_health::pb::HealthCheckRequest { service: service.to_string() }).await;
    Ok(
        matches!(response, Ok(r) if r.get_ref().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32),
    )
}
