use std::time::Duration;

use crm_platform::grpc::health::check;
use crm_platform::runtime::ServiceRuntime;
use crm_platform::testing::eventually;

use crate::support::{Kit, TEST_MIGRATOR};

#[tokio::test]
async fn health_turns_not_serving_while_the_database_is_unreachable_and_back_when_it_returns() {
    let kit = Kit::new().await;
    let runtime = ServiceRuntime::build("kit-test", kit.settings.clone(), &TEST_MIGRATOR).await.unwrap();
    let endpoint = format!("http://127.0.0.1:{}", runtime.port());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(runtime.run(vec![], async {
        let _ = stop_rx.await;
    }));
    let serving = |service: &'static str| {
        let endpoint = endpoint.clone();
        async move { check(&endpoint, service, Duration::from_secs(1)).await.unwrap_or(false) }
    };

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
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(runtime.run(vec![], async {
        let _ = stop_rx.await;
    }));
    // Give the monitor a few rounds; it must never report SERVING.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!check(&endpoint, "", Duration::from_secs(1)).await.unwrap_or(false));
    }
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
