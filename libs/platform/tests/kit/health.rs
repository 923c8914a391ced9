use std::time::Duration;

use crm_platform::PlatformError;
use futures::future::BoxFuture;

use crm_platform::grpc::health::check;
use crm_platform::runtime::ServiceRuntime;
use crm_platform::testing::eventually;

use crate::support::{Kit, TEST_MIGRATOR};

type Served = tokio::task::JoinHandle<Result<(), PlatformError>>;

/// Runs `runtime` until the returned sender is used (or dropped).
fn start(runtime: ServiceRuntime) -> (tokio::sync::oneshot::Sender<()>, Served) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(runtime.run(async {
        let _ = stop_rx.await;
    }));
    (stop_tx, server)
}

/// Asks the server at `endpoint` whether a service ("" for all) is SERVING.
fn probe(endpoint: String) -> impl Fn(&'static str) -> BoxFuture<'static, bool> {
    move |service| {
        let endpoint = endpoint.clone();
        Box::pin(async move { check(&endpoint, service, Duration::from_secs(1)).await.unwrap_or(false) })
    }
}

#[tokio::test]
async fn health_turns_not_serving_while_the_database_is_unreachable_and_back_when_it_returns() {
    let kit = Kit::new().await;
    let runtime = ServiceRuntime::build("kit-test", kit.settings.clone(), &TEST_MIGRATOR).await.unwrap();
    let endpoint = format!("http://127.0.0.1:{}", runtime.port());
    let (stop_tx, server) = start(runtime);
    let serving = probe(endpoint);

    assert!(eventually(Duration::from_secs(10), || serving("")).await, "serving at start");

    kit.env.cut_database().await;
    assert!(
        eventually(Duration::from_secs(10), || async { !serving("").await }).await,
        "not serving without a database"
    );
    assert!(serving(crm_platform::grpc::health::LIVENESS).await, "but alive: no restart for a database outage");

    kit.env.restore_database().await;
    assert!(eventually(Duration::from_secs(10), || serving("")).await, "serving again");

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn health_is_not_serving_while_the_broker_is_unreachable() {
    let kit = Kit::with(&[("messaging.url", "amqp://guest:guest@127.0.0.1:1/%2f")]).await;
    let runtime = ServiceRuntime::build("kit-test", kit.settings.clone(), &TEST_MIGRATOR).await.unwrap();
    let endpoint = format!("http://127.0.0.1:{}", runtime.port());
    let (stop_tx, server) = start(runtime);
    // Give the monitor a few rounds; it must never report SERVING.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!check(&endpoint, "", Duration::from_secs(1)).await.unwrap_or(false));
    }
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_background_task_that_ends_or_panics_while_the_service_runs_turns_health_not_serving() {
    for panics in [false, true] {
        let kit = Kit::new().await;
        let mut runtime = ServiceRuntime::build("kit-test", kit.settings.clone(), &TEST_MIGRATOR).await.unwrap();
        let endpoint = format!("http://127.0.0.1:{}", runtime.port());
        let (end_tx, end_rx) = tokio::sync::oneshot::channel::<()>();
        runtime.task("short-lived", async move {
            let _ = end_rx.await;
            assert!(!panics, "the task fails");
        });
        let (stop_tx, server) = start(runtime);
        let serving = probe(endpoint);
        assert!(eventually(Duration::from_secs(10), || serving("")).await, "serving while the task runs");
        assert!(serving(crm_platform::grpc::health::LIVENESS).await);

        let _ = end_tx.send(());
        assert!(
            eventually(Duration::from_secs(10), || async { !serving("").await }).await,
            "not serving once the task has stopped (panicked: {panics})"
        );
        assert!(!serving(crm_platform::grpc::health::LIVENESS).await, "and not alive: a restart brings the task back");

        let _ = stop_tx.send(());
        server.await.unwrap().unwrap();
    }
}
