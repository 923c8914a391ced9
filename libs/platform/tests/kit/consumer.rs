use std::sync::atomic::Ordering;
use std::time::Duration;

use crm_platform::messaging::Consumer;
use crm_platform::messaging::consumer::Outcome;
use crm_platform::messaging::envelope::{ATTEMPT_HEADER, ERROR_HEADER, OutgoingEvent, header_str, header_u32};
use crm_proto::crm::common::v1::Money;
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::support::{Kit, LedgerHandler, collect, drain};

fn event(amount: i64) -> OutgoingEvent {
    OutgoingEvent {
        id: uuid::Uuid::now_v7(),
        event_type: "crm.common.v1.Money".into(),
        source: "crm/kit-test".into(),
        subject: "acct-1".into(),
        payload: prost::Message::encode_to_vec(&Money { amount_minor: amount, currency_code: "CNY".into() }),
        traceparent: None,
        tracestate: None,
        actor: None,
        time: OffsetDateTime::now_utc(),
    }
}

async fn publish(kit: &Kit, e: &OutgoingEvent) {
    let channel = kit.broker.confirm_channel().await.unwrap();
    let confirm = channel
        .basic_publish(
            kit.broker.exchange().into(),
            e.event_type.clone().into(),
            BasicPublishOptions::default(),
            &e.payload,
            e.properties(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
}

#[tokio::test]
async fn a_redelivered_message_is_applied_once() {
    let kit = Kit::new().await;
    let handler = LedgerHandler::default();
    let consumer = Consumer::new(kit.pool.clone(), kit.broker.clone(), kit.consumer_config(3), handler.clone());
    consumer.declare(&kit.broker.channel().await.unwrap()).await.unwrap();

    let e = event(100);
    publish(&kit, &e).await;
    publish(&kit, &e).await; // the same event id again, as after a relay crash or a redelivery

    let channel = kit.broker.confirm_channel().await.unwrap();
    let queue = kit.consumer_config(3).name;
    let mut outcomes = Vec::new();
    while outcomes.len() < 2 {
        if let Some(m) =
            channel.basic_get(queue.clone().into(), lapin::options::BasicGetOptions::default()).await.unwrap()
        {
            outcomes.push(consumer.process(&channel, m.delivery).await.unwrap());
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(outcomes, [Outcome::Applied, Outcome::Duplicate]);
    assert!(drain(&channel, &queue).await.is_empty(), "both deliveries were acknowledged");
    assert_eq!(kit.applied_count().await, 1);
    assert_eq!(handler.calls.load(Ordering::SeqCst), 1, "the duplicate never reached the handler");
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dead_letter_queue_after_the_configured_tries() {
    let kit = Kit::new().await;
    let handler = LedgerHandler::default();
    let config = kit.consumer_config(3);
    let consumer = Consumer::new(kit.pool.clone(), kit.broker.clone(), config.clone(), handler.clone());
    let dlq = consumer.dead_letter_queue();
    let channel = kit.broker.channel().await.unwrap();
    consumer.declare(&channel).await.unwrap();

    publish(&kit, &event(-1)).await; // the handler always refuses negative amounts
    publish(&kit, &event(42)).await; // a good message behind it still gets through

    let cancel = CancellationToken::new();
    let running = tokio::spawn(consumer.run(cancel.clone()));
    let dead = collect(&channel, &dlq, 1).await;
    assert!(!dead.is_empty(), "poison message dead-lettered");
    cancel.cancel();
    running.await.unwrap();

    assert_eq!(dead.len(), 1);
    let headers = dead[0].delivery.properties.headers().clone().unwrap();
    assert_eq!(header_u32(&headers, ATTEMPT_HEADER), Some(3));
    assert!(header_str(&headers, ERROR_HEADER).unwrap().contains("negative"));
    assert_eq!(kit.applied_count().await, 1, "the good message was applied");
    // The poison message was tried in three deliveries (a failing batch is also
    // re-applied message by message within a delivery, so count at least three).
    assert!(handler.calls.load(Ordering::SeqCst) >= 4);
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM crm_kit.inbox").fetch_one(&kit.pool).await.unwrap();
    assert_eq!(inbox, 1, "failed attempts leave no inbox record");
}

#[tokio::test]
async fn a_message_without_cloudevents_headers_is_dead_lettered_at_once() {
    let kit = Kit::new().await;
    let handler = LedgerHandler::default();
    let consumer = Consumer::new(kit.pool.clone(), kit.broker.clone(), kit.consumer_config(5), handler.clone());
    let channel = kit.broker.confirm_channel().await.unwrap();
    consumer.declare(&channel).await.unwrap();
    channel
        .basic_publish(
            kit.broker.exchange().into(),
            "crm.common.v1.Money".into(),
            BasicPublishOptions::default(),
            b"junk",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let delivery = loop {
        if let Some(m) = channel
            .basic_get(kit.consumer_config(5).name.into(), lapin::options::BasicGetOptions::default())
            .await
            .unwrap()
        {
            break m.delivery;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let outcome = consumer.process(&channel, delivery).await.unwrap();
    assert_eq!(outcome, Outcome::DeadLettered);
    assert_eq!(drain(&channel, &consumer.dead_letter_queue()).await.len(), 1);
    assert_eq!(handler.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_payload_that_does_not_decode_is_dead_lettered_without_retries() {
    let kit = Kit::new().await;
    let handler = LedgerHandler::default();
    let consumer = Consumer::new(kit.pool.clone(), kit.broker.clone(), kit.consumer_config(5), handler.clone());
    let dlq = consumer.dead_letter_queue();
    let channel = kit.broker.channel().await.unwrap();
    consumer.declare(&channel).await.unwrap();
    let mut bad = event(1);
    bad.payload = vec![0xff, 0xff, 0xff];
    publish(&kit, &bad).await;
    let cancel = CancellationToken::new();
    let running = tokio::spawn(consumer.run(cancel.clone()));
    let dead = collect(&channel, &dlq, 1).await;
    assert!(!dead.is_empty());
    cancel.cancel();
    running.await.unwrap();
    let headers = dead[0].delivery.properties.headers().clone().unwrap();
    assert_eq!(header_u32(&headers, ATTEMPT_HEADER), None, "dead-lettered on its first delivery, never retried");
    assert!(header_str(&headers, ERROR_HEADER).unwrap().contains("does not decode"));
}
