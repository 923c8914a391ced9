//! Consumers: manual acknowledgements, idempotent handling through the inbox table,
//! bounded retries through delay queues, then a dead-letter queue.
//!
//! Topology per consumer `name`, every queue durable and of the type
//! `messaging.queue_type` sets (`x-queue-type`; [`QueueType::Quorum`] by default):
//! - `name`: the queue bound to the exchange with the consumer's binding keys;
//! - `name.retry.<n>`: delay queues (TTL = backoff × 2^(n-1)) that dead-letter back
//!   into `name`, one per retry so that short delays never wait behind long ones;
//! - `name.dlq`: dead-letter queue holding messages that failed `max_attempts` times
//!   or failed permanently, with the last error in the `x-crm-error` header.
//!
//! # Queue types
//! Quorum queues are replicated over the nodes of a RabbitMQ cluster and keep their
//! messages when a minority of the nodes is lost; a classic queue lives on one node and
//! loses its messages with that node. Message TTL, which the delay queues rely on, works
//! on quorum queues since RabbitMQ 3.10. A quorum queue dead-letters at most once by
//! default (an expired message is dropped if `name` does not take it), so quorum delay
//! queues dead-letter at least once (`x-dead-letter-strategy: at-least-once`, which
//! needs `x-overflow: reject-publish`): an expired message leaves its delay queue only
//! once `name` has confirmed it.
//!
//! A queue keeps the type it was created with. Declaring an existing classic queue as
//! quorum (or the reverse) fails with PRECONDITION_FAILED (`inequivalent arg
//! 'x-queue-type'`); [`Consumer::declare`] reports it as an invalid
//! `messaging.queue_type` naming the queue, and [`Consumer::run`] logs that error and
//! tries again with backoff, consuming nothing meanwhile (events still reach the old
//! queue). Either set `messaging.queue_type` to the existing type, or drain the queue
//! and delete it, with its retry and dead-letter queues (move dead letters that are
//! still wanted elsewhere first), so that the next attempt declares them anew
//! (`docs/deploy.md` has a way that loses no event published meanwhile).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::broker::Broker;
use super::envelope::{ATTEMPT_HEADER, ERROR_HEADER, IncomingEvent};
use crate::config::{ConfigError, QueueType};
use crate::error::PlatformError;

/// Why a handler could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Might succeed later (a dependency is down): retried with backoff.
    #[error("transient failure: {0}")]
    Transient(String),
    /// Can never succeed (undecodable payload, impossible state): dead-lettered at once.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The handler's database work failed: retried with backoff.
    #[error("database failure: {0}")]
    Database(#[from] sqlx::Error),
}

/// Applies events. `tx` is the transaction that also records the message in the
/// inbox: the handler's writes and the de-duplication record commit together.
pub trait EventHandler: Send + Sync + 'static {
    /// Applies one event.
    fn handle(
        &self,
        event: &IncomingEvent,
        tx: &mut PgConnection,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// What a consumer listens to and how it retries.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Queue name, also the consumer's key in the inbox, e.g. `analytics.customer-events`.
    pub name: String,
    /// Routing keys (event types, `#`/`*` wildcards allowed).
    pub bindings: Vec<String>,
    /// Unacknowledged deliveries held at once.
    pub prefetch: u16,
    /// Deliveries before dead-lettering (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time.
    pub retry_backoff: Duration,
}

/// How one delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied and acknowledged.
    Applied,
    /// Already applied before (redelivery); acknowledged without applying again.
    Duplicate,
    /// Failed; sent to the next retry queue.
    Retried,
    /// Failed for good; sent to the dead-letter queue.
    DeadLettered,
    /// The database was unreachable; requeued without counting an attempt.
    Requeued,
}

/// A consumer bound to one queue.
pub struct Consumer<H> {
    pool: PgPool,
    broker: Broker,
    config: ConsumerConfig,
    handler: Arc<H>,
}

impl<H> std::fmt::Debug for Consumer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("config", &self.config).finish_non_exhaustive()
    }
}

impl<H: EventHandler> Consumer<H> {
    /// A consumer applying events to the database in `pool` with `handler`.
    pub fn new(pool: PgPool, broker: Broker, config: ConsumerConfig, handler: H) -> Self {
        Self { pool, broker, config, handler: Arc::new(handler) }
    }

    /// The same consumer's queues without its handler, to declare them ahead of time.
    pub fn topology(&self) -> Consumer<()> {
        Consumer {
            pool: self.pool.clone(),
            broker: self.broker.clone(),
            config: self.config.clone(),
            handler: Arc::new(()),
        }
    }
}

/// The topology of a consumer: its queues, bindings and their declaration.
impl<H> Consumer<H> {
    /// Name of the dead-letter queue.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.config.name)
    }

    fn retry_queue(&self, attempt: u32) -> String {
        format!("{}.retry.{attempt}", self.config.name)
    }

    fn retry_delay(&self, attempt: u32) -> Duration {
        self.config.retry_backoff.saturating_mul(1 << attempt.saturating_sub(1).min(16))
    }

    /// Declares the queue, its bindings, the retry queues and the dead-letter queue,
    /// all of the broker's [`QueueType`]. A queue that exists with another type fails
    /// with [`ConfigError::Invalid`] for `messaging.queue_type` (and the broker closes
    /// `channel`).
    pub async fn declare(&self, channel: &Channel) -> Result<(), PlatformError> {
        let name = &self.config.name;
        self.declare_queue(channel, name, FieldTable::default()).await?;
        for key in &self.config.bindings {
            channel
                .queue_bind(
                    name.clone().into(),
                    self.broker.exchange().into(),
                    key.clone().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        for attempt in 1..self.config.max_attempts {
            let mut args = FieldTable::default();
            let ttl = i64::try_from(self.retry_delay(attempt).as_millis()).unwrap_or(i64::MAX);
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
            args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from("")));
            args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(LongString::from(name.as_str())));
            if self.broker.queue_type() == QueueType::Quorum {
                args.insert("x-dead-letter-strategy".into(), AMQPValue::LongString(LongString::from("at-least-once")));
                args.insert("x-overflow".into(), AMQPValue::LongString(LongString::from("reject-publish")));
            }
            self.declare_queue(channel, &self.retry_queue(attempt), args).await?;
        }
        self.declare_queue(channel, &self.dead_letter_queue(), FieldTable::default()).await
    }

    /// Declares one queue of the broker's type with `args`: durable, neither exclusive
    /// nor auto-deleted, as quorum queues must be.
    async fn declare_queue(&self, channel: &Channel, queue: &str, mut args: FieldTable) -> Result<(), PlatformError> {
        let queue_type = self.broker.queue_type();
        args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from(queue_type.as_str())));
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        match channel.queue_declare(queue.into(), durable, args).await {
            Ok(_) => Ok(()),
            Err(e) => Err(match queue_type_conflict(&e) {
                Some(broker_says) => self.queue_type_error(queue, broker_says),
                None => e.into(),
            }),
        }
    }

    /// The error for a queue that exists with another type than `messaging.queue_type`.
    fn queue_type_error(&self, queue: &str, broker_says: &str) -> PlatformError {
        let wanted = self.broker.queue_type();
        let other = match wanted {
            QueueType::Quorum => QueueType::Classic,
            QueueType::Classic => QueueType::Quorum,
        };
        let key = "messaging.queue_type";
        PlatformError::Config(ConfigError::Invalid {
            key: key.to_string(),
            env: self.broker.env_var_for(key),
            reason: format!(
                "queue `{queue}` exists but is not a {wanted} queue, and a queue keeps the type it was created \
                 with. Either set {key} to {other}, or drain and delete the queues of consumer `{name}` \
                 (`{name}`, `{name}.retry.<n>`, `{name}.dlq`) so that they are declared again as {wanted} queues \
                 (broker: {broker_says})",
                name = self.config.name,
            ),
        })
    }
}

impl<H: EventHandler> Consumer<H> {
    /// Consumes until `cancel` fires, reconnecting with backoff when the broker goes away.
    /// The delivery in progress when `cancel` fires is finished before returning.
    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !cancel.is_cancelled() {
            match self.serve(&cancel).await {
                Ok(()) => break,
                Err(e) => {
                    let retry_in_ms = backoff.as_millis() as u64;
                    if matches!(e, PlatformError::Config(_)) {
                        // Trying again helps only once an operator has acted (module doc).
                        tracing::error!(consumer = %self.config.name, error = %e, retry_in_ms, "consumer cannot declare its queues");
                    } else {
                        tracing::warn!(consumer = %self.config.name, error = %e, retry_in_ms, "consumer failed");
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        tracing::info!(consumer = %self.config.name, "consumer stopped");
    }

    async fn serve(&self, cancel: &CancellationToken) -> Result<(), PlatformError> {
        let channel = self.broker.channel().await?;
        self.declare(&channel).await?;
        channel.basic_qos(self.config.prefetch, BasicQosOptions::default()).await?;
        let publisher = self.broker.confirm_channel().await?;
        let tag = format!("{}-{}", self.config.name, uuid::Uuid::new_v4());
        let mut deliveries = channel
            .basic_consume(
                self.config.name.clone().into(),
                tag.clone().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(consumer = %self.config.name, "consuming");
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => break,
                d = deliveries.next() => d,
            };
            let mut batch = vec![Self::delivered(first, &self.config.name)?];
            // Whatever else has already arrived is applied in the same transaction, so
            // that one commit covers many messages when the queue is busy.
            while batch.len() < usize::from(self.config.prefetch) {
                match deliveries.next().now_or_never() {
                    Some(next) => batch.push(Self::delivered(next, &self.config.name)?),
                    None => break,
                }
            }
            self.process_batch(&publisher, batch).await?;
        }
        let _ = channel.basic_cancel(tag.into(), BasicCancelOptions::default()).await;
        // Closing the channel returns prefetched but unprocessed deliveries to the queue.
        let _ = channel.close(200, "shutdown".into()).await;
        let _ = publisher.close(200, "shutdown".into()).await;
        Ok(())
    }

    fn delivered(next: Option<lapin::Result<Delivery>>, name: &str) -> Result<Delivery, PlatformError> {
        match next {
            Some(Ok(delivery)) => Ok(delivery),
            Some(Err(e)) => Err(e.into()),
            None => Err(PlatformError::Disconnected(format!("consumer {name} cancelled by the broker"))),
        }
    }

    /// Handles one delivery and settles it (ack, retry or dead letter).
    pub async fn process(&self, publisher: &Channel, delivery: Delivery) -> Result<Outcome, PlatformError> {
        let outcomes = self.process_batch(publisher, vec![delivery]).await?;
        Ok(outcomes.into_iter().next().unwrap_or(Outcome::Requeued))
    }

    /// Applies a batch of deliveries in one transaction and settles each: applied or
    /// duplicate → acknowledged; failed → retry queue or dead letter, then
    /// acknowledged. When the database itself fails, the whole batch is requeued.
    ///
    /// The common case (every handler succeeds) costs one inbox statement for the
    /// batch plus the handlers' own statements and one commit. When a handler fails,
    /// the batch is rolled back and applied again with a savepoint per message, so
    /// that one failing message neither blocks nor undoes the others.
    pub async fn process_batch(
        &self,
        publisher: &Channel,
        deliveries: Vec<Delivery>,
    ) -> Result<Vec<Outcome>, PlatformError> {
        let Some(last) = deliveries.last() else {
            return Ok(vec![]);
        };
        let events: Vec<Result<IncomingEvent, String>> = deliveries.iter().map(IncomingEvent::from_delivery).collect();
        let settled = match self.apply_all(&events).await {
            Ok(Some(settled)) => Ok(settled),
            Ok(None) => self.apply_each(&events).await,
            Err(e) => Err(e),
        };
        let settled = match settled {
            Ok(settled) => settled,
            Err(e) => {
                tracing::warn!(consumer = %self.config.name, error = %e, "database unavailable; requeueing batch");
                tokio::time::sleep(self.config.retry_backoff).await;
                last.nack(BasicNackOptions { requeue: true, multiple: true }).await?;
                return Ok(vec![Outcome::Requeued; deliveries.len()]);
            }
        };
        let mut outcomes = Vec::with_capacity(deliveries.len());
        for (delivery, settle) in deliveries.iter().zip(settled) {
            let outcome = match settle {
                Settle::Applied => Outcome::Applied,
                Settle::Duplicate => Outcome::Duplicate,
                Settle::DeadLetter(reason) => {
                    tracing::warn!(consumer = %self.config.name, %reason, "malformed message dead-lettered");
                    self.dead_letter(publisher, delivery, &reason).await?;
                    Outcome::DeadLettered
                }
                Settle::Failed { error, permanent, attempt } => {
                    if permanent || attempt >= self.config.max_attempts {
                        tracing::error!(consumer = %self.config.name, %error, attempt, "event dead-lettered");
                        self.dead_letter(publisher, delivery, &error).await?;
                        Outcome::DeadLettered
                    } else {
                        tracing::warn!(consumer = %self.config.name, %error, attempt, "event failed; will retry");
                        self.retry(publisher, delivery, attempt).await?;
                        Outcome::Retried
                    }
                }
            };
            outcomes.push(outcome);
        }
        // Every delivery of the batch is settled: one acknowledgement covers them all.
        last.ack(BasicAckOptions { multiple: true }).await?;
        Ok(outcomes)
    }

    fn span(&self, event: &IncomingEvent) -> tracing::Span {
        let span = tracing::info_span!(
            "event.consume",
            otel.name = %format!("{} process", event.event_type),
            otel.kind = "consumer",
            messaging.system = "rabbitmq",
            messaging.operation = "process",
            messaging.destination.name = %self.config.name,
            messaging.destination_publish.name = %self.broker.exchange(),
            messaging.rabbitmq.destination.routing_key = %event.event_type,
            messaging.message.id = %event.id,
            messaging.attempt = event.attempt,
        );
        crate::telemetry::set_parent(&span, crate::telemetry::extract_from_amqp(&event.headers));
        span
    }

    /// The fast path: one transaction, no savepoints. `None` when a handler failed
    /// (nothing was kept).
    async fn apply_all(&self, events: &[Result<IncomingEvent, String>]) -> Result<Option<Vec<Settle>>, sqlx::Error> {
        let ok: Vec<&IncomingEvent> = events.iter().filter_map(|e| e.as_ref().ok()).collect();
        let ids: Vec<&str> = ok.iter().map(|e| e.id.as_str()).collect();
        let types: Vec<&str> = ok.iter().map(|e| e.event_type.as_str()).collect();
        let mut tx = self.pool.begin().await?;
        let fresh: Vec<String> = sqlx::query_scalar(
            "INSERT INTO crm_kit.inbox (consumer, message_id, event_type)
             SELECT $1, m, t FROM unnest($2::text[], $3::text[]) AS u(m, t)
             ON CONFLICT DO NOTHING RETURNING message_id",
        )
        .bind(&self.config.name)
        .bind(&ids)
        .bind(&types)
        .fetch_all(&mut *tx)
        .await?;
        let mut fresh: std::collections::HashSet<String> = fresh.into_iter().collect();
        let mut settled = Vec::with_capacity(events.len());
        for event in events {
            let event = match event {
                Ok(event) => event,
                Err(reason) => {
                    settled.push(Settle::DeadLetter(reason.clone()));
                    continue;
                }
            };
            // `remove` also makes a second copy within the batch a duplicate.
            if !fresh.remove(&event.id) {
                tracing::debug!(message_id = %event.id, "duplicate delivery skipped");
                settled.push(Settle::Duplicate);
                continue;
            }
            if self.handler.handle(event, &mut tx).instrument(self.span(event)).await.is_err() {
                tx.rollback().await?;
                return Ok(None);
            }
            settled.push(Settle::Applied);
        }
        tx.commit().await?;
        Ok(Some(settled))
    }

    /// The careful path: a savepoint per message.
    async fn apply_each(&self, events: &[Result<IncomingEvent, String>]) -> Result<Vec<Settle>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut settled = Vec::with_capacity(events.len());
        for event in events {
            match event {
                Ok(event) => settled.push(self.apply_one(&mut tx, event).instrument(self.span(event)).await?),
                Err(reason) => settled.push(Settle::DeadLetter(reason.clone())),
            }
        }
        tx.commit().await?;
        Ok(settled)
    }

    /// Applies one event under a savepoint. Errors are the database's own (the batch
    /// is then requeued); a handler failure is an outcome.
    async fn apply_one(&self, tx: &mut sqlx::PgConnection, event: &IncomingEvent) -> Result<Settle, sqlx::Error> {
        use sqlx::Connection;
        let mut savepoint = tx.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO crm_kit.inbox (consumer, message_id, event_type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&self.config.name)
        .bind(&event.id)
        .bind(&event.event_type)
        .execute(&mut *savepoint)
        .await?
        .rows_affected();
        if inserted == 0 {
            tracing::debug!(message_id = %event.id, "duplicate delivery skipped");
            savepoint.rollback().await?;
            return Ok(Settle::Duplicate);
        }
        match self.handler.handle(event, &mut savepoint).await {
            Ok(()) => {
                savepoint.commit().await?;
                Ok(Settle::Applied)
            }
            Err(e) => {
                savepoint.rollback().await?;
                Ok(Settle::Failed {
                    permanent: matches!(e, HandlerError::Permanent(_)),
                    error: e.to_string(),
                    attempt: event.attempt,
                })
            }
        }
    }

    async fn republish(
        &self,
        publisher: &Channel,
        delivery: &Delivery,
        queue: String,
        headers: FieldTable,
    ) -> Result<(), PlatformError> {
        let properties: BasicProperties = delivery.properties.clone().with_headers(headers);
        let confirm = publisher
            .basic_publish("".into(), queue.clone().into(), BasicPublishOptions::default(), &delivery.data, properties)
            .await?
            .await?;
        if confirm.is_ack() { Ok(()) } else { Err(PlatformError::NotConfirmed(queue)) }
    }

    async fn retry(&self, publisher: &Channel, delivery: &Delivery, attempt: u32) -> Result<(), PlatformError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongLongInt(i64::from(attempt + 1)));
        self.republish(publisher, delivery, self.retry_queue(attempt), headers).await
    }

    async fn dead_letter(&self, publisher: &Channel, delivery: &Delivery, reason: &str) -> Result<(), PlatformError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(ERROR_HEADER.into(), AMQPValue::LongString(LongString::from(reason)));
        self.republish(publisher, delivery, self.dead_letter_queue(), headers).await
    }
}
/// How one message of a batch is to be settled once the batch has committed.
enum Settle {
    Applied,
    Duplicate,
    DeadLetter(String),
    Failed { error: String, permanent: bool, attempt: u32 },
}

/// The broker's message when a queue declaration failed because the queue exists with
/// another `x-queue-type`.
fn queue_type_conflict(e: &lapin::Error) -> Option<&str> {
    let lapin::ErrorKind::ProtocolError(amqp) = e.kind() else { return None };
    let message = amqp.get_message().as_str();
    let precondition = matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED));
    (precondition && message.contains("'x-queue-type'")).then_some(message)
}
