use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crm_platform::PlatformError;
use crm_platform::config::{MessagingSettings, QueueType};
use crm_platform::messaging::consumer::Outcome;
use crm_platform::messaging::envelope::{ATTEMPT_HEADER, ERROR_HEADER, OutgoingEvent, header_str, header_u32};
use crm_platform::messaging::{Broker, Consumer, ConsumerConfig};
use crm_platform::testing::eventually;
use crm_proto::crm::common::v1::Money;
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
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
    // Quorum queues, the default.
    poison_message_goes_to_the_dead_letter_queue_after_three_tries(Kit::new().await).await;
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dead_letter_queue_after_the_configured_tries_on_classic_queues_too() {
    poison_message_goes_to_the_dead_letter_queue_after_three_tries(
        Kit::with(&[("messaging.queue_type", "classic")]).await,
    )
    .await;
}

async fn poison_message_goes_to_the_dead_letter_queue_after_three_tries(kit: Kit) {
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

/// A queue as the broker reports it: its type and its arguments.
#[derive(Debug)]
struct DeclaredQueue {
    queue_type: String,
    arguments: BTreeMap<String, serde_json::Value>,
}

/// The queues whose names start with `prefix`, by name, as `rabbitmqctl` lists them
/// (AMQP has no way to ask for a queue's type or arguments).
fn declared_queues(prefix: &str) -> BTreeMap<String, DeclaredQueue> {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_queues", "--quiet", "--formatter", "json", "name", "type", "arguments"])
        .output()
        .expect("rabbitmqctl runs");
    assert!(out.status.success(), "rabbitmqctl list_queues: {}", String::from_utf8_lossy(&out.stderr));
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("rabbitmqctl lists JSON");
    listed
        .into_iter()
        .filter(|q| q["name"].as_str().unwrap().starts_with(prefix))
        .map(|q| {
            // Each argument is [name, AMQP type, value].
            let arguments = q["arguments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| (a[0].as_str().unwrap().to_string(), a[2].clone()))
                .collect();
            let queue = DeclaredQueue { queue_type: q["type"].as_str().unwrap().to_string(), arguments };
            (q["name"].as_str().unwrap().to_string(), queue)
        })
        .collect()
}

/// The names of the queues of consumer `name` with two retries, sorted.
fn topology(name: &str) -> Vec<String> {
    ["", ".dlq", ".retry.1", ".retry.2"].iter().map(|suffix| format!("{name}{suffix}")).collect()
}

/// Declares `config`'s queues and bindings as the kit did before queue types were
/// configurable: classic queues, without `x-queue-type`.
async fn declare_as_before_queue_types(kit: &Kit, config: &ConsumerConfig) {
    let channel = kit.broker.channel().await.unwrap();
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    channel.queue_declare(config.name.clone().into(), durable, FieldTable::default()).await.unwrap();
    for key in &config.bindings {
        channel
            .queue_bind(
                config.name.clone().into(),
                kit.broker.exchange().into(),
                key.clone().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    for attempt in 1..config.max_attempts {
        let mut args = FieldTable::default();
        let ttl = i64::try_from(config.retry_backoff.as_millis()).unwrap() << (attempt - 1);
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from("")));
        args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(LongString::from(config.name.as_str())));
        channel.queue_declare(format!("{}.retry.{attempt}", config.name).into(), durable, args).await.unwrap();
    }
    channel.queue_declare(format!("{}.dlq", config.name).into(), durable, FieldTable::default()).await.unwrap();
}

/// The same broker with another queue type, as after a configuration change.
fn broker_with(kit: &Kit, queue_type: QueueType) -> Broker {
    Broker::new(&MessagingSettings { queue_type, ..kit.settings.messaging.clone() }, "kit-test")
}

/// Declares a consumer of three attempts and reads back its queues, which are exactly
/// its topology.
async fn declare_three_attempt_consumer(kit: &Kit) -> (ConsumerConfig, BTreeMap<String, DeclaredQueue>) {
    let config = kit.consumer_config(3);
    let consumer = Consumer::new(kit.pool.clone(), kit.broker.clone(), config.clone(), LedgerHandler::default());
    consumer.declare(&kit.broker.channel().await.unwrap()).await.unwrap();
    let queues = declared_queues(&config.name);
    assert_eq!(queues.keys().cloned().collect::<Vec<_>>(), topology(&config.name));
    (config, queues)
}

#[tokio::test]
async fn a_consumer_declares_quorum_queues_by_default_whose_delay_queues_dead_letter_at_least_once() {
    let kit = Kit::new().await;
    let (config, queues) = declare_three_attempt_consumer(&kit).await;
    for (name, queue) in &queues {
        assert_eq!(queue.queue_type, "quorum", "{name}");
    }
    for attempt in 1..3 {
        let retry = &queues[&format!("{}.retry.{attempt}", config.name)].arguments;
        assert_eq!(retry["x-dead-letter-strategy"], "at-least-once");
        assert_eq!(retry["x-overflow"], "reject-publish");
        assert_eq!(retry["x-message-ttl"], 50 << (attempt - 1), "message TTL on a quorum queue");
    }
}

#[tokio::test]
async fn a_consumer_declares_classic_queues_when_configured() {
    let kit = Kit::with(&[("messaging.queue_type", "classic")]).await;
    let (_, queues) = declare_three_attempt_consumer(&kit).await;
    for (name, queue) in &queues {
        assert_eq!(queue.queue_type, "classic", "{name}");
        assert!(!queue.arguments.contains_key("x-dead-letter-strategy"), "{name}: a quorum-only argument");
    }
}

#[tokio::test]
async fn a_classic_queue_is_not_redeclared_as_quorum_and_the_error_names_the_queue_the_setting_and_the_way_out() {
    let kit = Kit::with(&[("messaging.queue_type", "classic")]).await;
    let config = kit.consumer_config(3);
    declare_as_before_queue_types(&kit, &config).await;

    let broker = broker_with(&kit, QueueType::Quorum);
    let consumer = Consumer::new(kit.pool.clone(), broker.clone(), config.clone(), LedgerHandler::default());
    let err = consumer.declare(&broker.channel().await.unwrap()).await.unwrap_err();
    assert!(matches!(err, PlatformError::Config(_)), "{err:?}");
    let message = err.to_string();
    for expected in [
        format!("queue `{}` exists but is not a quorum queue", config.name),
        "CRM_KIT_TEST__MESSAGING__QUEUE_TYPE".to_string(),
        "set messaging.queue_type to classic".to_string(),
        format!("drain and delete the queues of consumer `{}`", config.name),
        format!("`{0}.retry.<n>`, `{0}.dlq`", config.name),
    ] {
        assert!(message.contains(&expected), "`{expected}` missing from: {message}");
    }
    let queues = declared_queues(&config.name);
    assert!(queues.values().all(|q| q.queue_type == "classic"), "nothing changed: {queues:?}");
}

#[tokio::test]
async fn a_quorum_queue_is_not_redeclared_as_classic_and_the_error_says_to_set_quorum() {
    let kit = Kit::new().await;
    let config = kit.consumer_config(3);
    let consumer = Consumer::new(kit.pool.clone(), kit.broker.clone(), config.clone(), LedgerHandler::default());
    consumer.declare(&kit.broker.channel().await.unwrap()).await.unwrap();

    let broker = broker_with(&kit, QueueType::Classic);
    let consumer = Consumer::new(kit.pool.clone(), broker.clone(), config.clone(), LedgerHandler::default());
    let message = consumer.declare(&broker.channel().await.unwrap()).await.unwrap_err().to_string();
    assert!(
        message.contains("is not a classic queue") && message.contains("set messaging.queue_type to quorum"),
        "{message}"
    );
}

#[tokio::test]
async fn queues_declared_before_queue_types_were_configurable_keep_working_when_configured_classic() {
    let kit = Kit::with(&[("messaging.queue_type", "classic")]).await;
    let config = kit.consumer_config(3);
    declare_as_before_queue_types(&kit, &config).await;
    let consumer = Consumer::new(kit.pool.clone(), kit.broker.clone(), config.clone(), LedgerHandler::default());
    consumer.declare(&kit.broker.channel().await.unwrap()).await.unwrap();

    let cancel = CancellationToken::new();
    let running = tokio::spawn(consumer.run(cancel.clone()));
    publish(&kit, &event(7)).await;
    let applied = eventually(Duration::from_secs(10), || async { kit.applied_count().await == 1 }).await;
    cancel.cancel();
    running.await.unwrap();
    assert!(applied, "the event went through the existing classic queue");
}

#[tokio::test]
async fn a_consumer_refused_its_queue_type_consumes_once_the_old_queues_are_deleted() {
    let kit = Kit::new().await;
    let config = kit.consumer_config(3);
    declare_as_before_queue_types(&kit, &config).await;
    let consumer = Consumer::new(kit.pool.clone(), kit.broker.clone(), config.clone(), LedgerHandler::default());
    let cancel = CancellationToken::new();
    let running = tokio::spawn(consumer.run(cancel.clone()));

    // While the classic queue is there, events wait in it and nothing is applied.
    publish(&kit, &event(1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(kit.applied_count().await, 0);
    let channel = kit.broker.channel().await.unwrap();
    let drained = drain(&channel, &config.name).await;
    assert_eq!(drained.len(), 1, "the event waited in the old queue");
    for queue in topology(&config.name) {
        channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await.unwrap();
    }

    // The consumer's next attempt declares quorum queues and consumes from them.
    let declared = eventually(Duration::from_secs(10), || async {
        declared_queues(&config.name).get(&config.name).is_some_and(|q| q.queue_type == "quorum")
    })
    .await;
    assert!(declared, "the consumer declared its queues again");
    publish(&kit, &event(2)).await;
    let applied = eventually(Duration::from_secs(10), || async { kit.applied_count().await == 1 }).await;
    cancel.cancel();
    running.await.unwrap();
    assert!(applied, "the event published after the switch was applied");
}
