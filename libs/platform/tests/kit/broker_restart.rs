use std::time::Duration;

use crm_platform::messaging::Consumer;
use crm_platform::testing::eventually;
use tokio_util::sync::CancellationToken;

use crate::support::{Kit, LedgerHandler};

fn rabbitmqctl(args: &[&str]) {
    let status = std::process::Command::new("rabbitmqctl").args(args).status().expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

#[tokio::test]
#[ignore = "restarts the shared broker; run alone by `cargo xtask test`"]
async fn no_event_is_lost_when_the_broker_restarts_mid_stream() {
    const EVENTS: i64 = 300;
    let kit = Kit::new().await;
    let consumer =
        Consumer::new(kit.pool.clone(), kit.broker.clone(), kit.consumer_config(5), LedgerHandler::default());
    consumer.declare(&kit.broker.channel().await.unwrap()).await.unwrap();
    let cancel = CancellationToken::new();
    let relay = tokio::spawn(kit.relay().run(cancel.clone()));
    let consuming = tokio::spawn(consumer.run(cancel.clone()));

    for amount in 1..=EVENTS {
        kit.record_movement("acct-restart", amount, true).await;
        if amount == EVENTS / 3 {
            rabbitmqctl(&["stop_app"]);
        }
        if amount == EVENTS / 2 {
            rabbitmqctl(&["start_app"]);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let all_applied = eventually(Duration::from_secs(90), || async { kit.applied_count().await >= EVENTS }).await;
    cancel.cancel();
    relay.await.unwrap();
    consuming.await.unwrap();
    assert!(all_applied, "applied {} of {EVENTS}", kit.applied_count().await);

    let distinct: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT message_id) FROM applied_events").fetch_one(&kit.pool).await.unwrap();
    assert_eq!(distinct, EVENTS, "every event applied");
    assert_eq!(kit.applied_count().await, EVENTS, "and none twice");
    let amounts: Vec<i64> = sqlx::query_scalar("SELECT amount_minor FROM applied_events ORDER BY amount_minor")
        .fetch_all(&kit.pool)
        .await
        .unwrap();
    assert_eq!(amounts, (1..=EVENTS).collect::<Vec<_>>());
}
