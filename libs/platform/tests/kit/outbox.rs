use std::time::Duration;

use crm_platform::messaging::Consumer;
use crm_platform::messaging::envelope::header_str;
use crm_platform::testing::eventually;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

use crate::support::{Kit, LedgerHandler, collect, drain};

#[tokio::test]
async fn a_committed_change_publishes_its_event_with_cloudevents_headers() {
    let kit = Kit::new().await;
    let (probe, queue) = kit.probe().await;
    kit.record_movement("acct-1", 500, true).await;

    let mut conn =
        sqlx::PgConnection::connect_with(&crm_platform::db::connect_options(&kit.settings.database).unwrap())
            .await
            .unwrap();
    let channel = kit.broker.confirm_channel().await.unwrap();
    let published = kit.relay().publish_batch(&mut conn, &channel).await.unwrap();
    assert_eq!(published, 1);

    let messages = drain(&probe, &queue).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0].delivery;
    let headers = m.properties.headers().clone().unwrap();
    assert_eq!(header_str(&headers, "cloudEvents:specversion"), Some("1.0"));
    assert_eq!(header_str(&headers, "cloudEvents:type"), Some("crm.common.v1.Money"));
    assert_eq!(header_str(&headers, "cloudEvents:source"), Some("crm/kit-test"));
    assert_eq!(header_str(&headers, "cloudEvents:subject"), Some("acct-1"));
    assert!(header_str(&headers, "cloudEvents:time").is_some());
    assert_eq!(m.properties.content_type().as_ref().map(|c| c.as_str()), Some("application/protobuf"));
    assert_eq!(m.routing_key.as_str(), "crm.common.v1.Money");

    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM crm_kit.outbox WHERE published_at IS NULL")
        .fetch_one(&kit.pool)
        .await
        .unwrap();
    assert_eq!(pending, 0, "published rows are marked");
}

#[tokio::test]
async fn a_rolled_back_change_publishes_nothing() {
    let kit = Kit::new().await;
    let (probe, queue) = kit.probe().await;
    kit.record_movement("acct-1", 500, false).await;

    let mut conn =
        sqlx::PgConnection::connect_with(&crm_platform::db::connect_options(&kit.settings.database).unwrap())
            .await
            .unwrap();
    let channel = kit.broker.confirm_channel().await.unwrap();
    assert_eq!(kit.relay().publish_batch(&mut conn, &channel).await.unwrap(), 0);
    assert!(drain(&probe, &queue).await.is_empty());
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM crm_kit.outbox").fetch_one(&kit.pool).await.unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn events_of_one_subject_are_published_in_commit_order() {
    let kit = Kit::new().await;
    let (probe, queue) = kit.probe().await;
    for amount in 1..=50 {
        kit.record_movement("acct-ordered", amount, true).await;
    }
    let cancel = CancellationToken::new();
    let relay = tokio::spawn(kit.relay().run(cancel.clone()));
    let amounts: Vec<i64> = collect(&probe, &queue, 50)
        .await
        .iter()
        .map(|m| {
            let money: crm_proto::crm::common::v1::Money = prost::Message::decode(m.delivery.data.as_slice()).unwrap();
            money.amount_minor
        })
        .collect();
    cancel.cancel();
    relay.await.unwrap();
    assert_eq!(amounts, (1..=50).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_relay_killed_between_publish_and_mark_publishes_again_and_the_consumer_applies_once() {
    let kit = Kit::new().await;
    let (probe, queue) = kit.probe().await;
    let consumer =
        Consumer::new(kit.pool.clone(), kit.broker.clone(), kit.consumer_config(3), LedgerHandler::default());
    let declare = kit.broker.channel().await.unwrap();
    consumer.declare(&declare).await.unwrap();
    kit.record_movement("acct-9", 900, true).await;

    // The first relay publishes and is confirmed, then dies before marking the row.
    {
        let relay = kit.relay();
        let mut conn =
            sqlx::PgConnection::connect_with(&crm_platform::db::connect_options(&kit.settings.database).unwrap())
                .await
                .unwrap();
        let channel = kit.broker.confirm_channel().await.unwrap();
        let pending = relay.fetch_pending(&mut conn).await.unwrap();
        let confirmed = relay.publish(&channel, &pending).await.unwrap();
        assert_eq!(confirmed.len(), 1);
        drop(conn); // crash: the mark never happens
    }

    // A new relay finds the row still pending and publishes it again.
    let cancel = CancellationToken::new();
    let relay = tokio::spawn(kit.relay().run(cancel.clone()));
    let consuming = tokio::spawn(consumer.run(cancel.clone()));
    assert_eq!(collect(&probe, &queue, 2).await.len(), 2, "the event was published twice");
    assert!(
        eventually(Duration::from_secs(10), || async {
            let unpublished: i64 = sqlx::query_scalar("SELECT count(*) FROM crm_kit.outbox WHERE published_at IS NULL")
                .fetch_one(&kit.pool)
                .await
                .unwrap();
            unpublished == 0
        })
        .await
    );
    // Both copies reach the consumer's queue; the inbox lets exactly one apply.
    assert!(
        eventually(Duration::from_secs(10), || async {
            let handled: i64 =
                sqlx::query_scalar("SELECT count(*) FROM crm_kit.inbox").fetch_one(&kit.pool).await.unwrap();
            handled == 1
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    relay.await.unwrap();
    consuming.await.unwrap();
    assert_eq!(kit.applied_count().await, 1);
    let remaining = drain(&declare, &kit.consumer_config(3).name).await;
    assert!(remaining.is_empty(), "both copies were consumed and acknowledged");
}

#[tokio::test]
async fn an_event_committed_after_a_later_numbered_one_is_still_published() {
    let kit = Kit::new().await;
    let (probe, queue) = kit.probe().await;
    let cancel = CancellationToken::new();
    let relay = tokio::spawn(kit.relay().run(cancel.clone()));

    // A takes the lower sequence number but commits last.
    let mut slow = kit.pool.begin().await.unwrap();
    let money = crm_proto::crm::common::v1::Money { amount_minor: 1, currency_code: "CNY".into() };
    crm_platform::messaging::write_event(&mut slow, "crm/kit-test", "acct-a", &money, None).await.unwrap();
    kit.record_movement("acct-b", 2, true).await;
    assert_eq!(collect(&probe, &queue, 1).await.len(), 1, "the committed event is published");

    slow.commit().await.unwrap();
    let late = collect(&probe, &queue, 1).await;
    cancel.cancel();
    relay.await.unwrap();
    assert_eq!(late.len(), 1, "the late committer's event is published too");
    let subject = late[0].delivery.properties.headers().clone().unwrap();
    assert_eq!(header_str(&subject, "cloudEvents:subject"), Some("acct-a"));
}
