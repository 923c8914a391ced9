//! Consumers: manual acknowledgements, idempotent handling through the inbox table,
//! bounded retries through delay queues, then a dead-letter queue.
//!
//! Topology per consumer `name`:
//! - `name`: durable queue bound to the exchange with the consumer's binding keys;
//! - `name.retry.<n>`: durable delay queues (TTL = backoff × 2^(n-1)) that dead-letter
//!   back into `name`, one per retry so that short delays never wait behind long ones;
//! - `name.dlq`: durable dead-letter queue holding messages that failed `max_attempts`
//!   times or failed permanently, with the last error in the `x-crm-error` header.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::broker::Broker;
use super::envelope::{ATTEMPT_HEADER, ERROR_HEADER, IncomingEvent};
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
        f.debug_struct("Consumer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<H: EventHandler> Consumer<H> {
    /// A consumer applying events to the database in `pool` with `handler`.
    pub fn new(pool: PgPool, broker: Broker, config: ConsumerConfig, handler: H) -> Self {
        Self {
            pool,
            broker,
            config,
            handler: Arc::new(handler),
        }
    }

    /// Name of the dead-letter queue.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.config.name)
    }

    fn retry_queue(&self, attempt: u32) -> String {
        format!("{}.retry.{attempt}", self.config.name)
    }

    fn retry_delay(&self, attempt: u32) -> Duration {
        self.config
            .retry_backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
    }

    /// Declares the queue, its bindings, the retry queues and the dead-letter queue.
    pub async fn declare(&self, channel: &Channel) -> Result<(), PlatformError> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let name = &self.config.name;
        channel
            .queue_declare(name.clone().into(), durable, FieldTable::default())
            .await?;
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
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(LongString::from("")),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(LongString::from(name.as_str())),
            );
            channel
                .queue_declare(self.retry_queue(attempt).into(), durable, args)
                .await?;
        }
        channel
            .queue_declare(
                self.dead_letter_queue().into(),
                durable,
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    /// Consumes until `cancel` fires, reconnecting with backoff when the broker goes away.
    /// The delivery in progress when `cancel` fires is finished before returning.
    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !cancel.is_cancelled() {
            match self.serve(&cancel).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(consumer = %self.config.name, error = %e, retry_in_ms = backoff.as_millis() as u64, "consumer failed");
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
        channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
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
            let delivery = tokio::select! {
                _ = cancel.cancelled() => break,
                d = deliveries.next() => d,
            };
            match delivery {
                Some(Ok(delivery)) => {
                    self.process(&publisher, delivery).await?;
                }
                Some(Err(e)) => return Err(e.into()),
                None => {
                    return Err(PlatformError::Disconnected(format!(
                        "consumer {} cancelled by the broker",
                        self.config.name
                    )));
                }
            }
        }
        let _ = channel
            .basic_cancel(tag.into(), BasicCancelOptions::default())
            .await;
        // Closing the channel returns prefetched but unprocessed deliveries to the queue.
        let _ = channel.close(200, "shutdown".into()).await;
        let _ = publisher.close(200, "shutdown".into()).await;
        Ok(())
    }

    /// Handles one delivery and settles it (ack, retry or dead letter).
    pub async fn process(
        &self,
        publisher: &Channel,
        delivery: Delivery,
    ) -> Result<Outcome, PlatformError> {
        let event = match IncomingEvent::from_delivery(&delivery) {
            Ok(event) => event,
            Err(reason) => {
                tracing::warn!(consumer = %self.config.name, %reason, "malformed message");
                self.dead_letter(publisher, &delivery, &reason).await?;
                delivery.ack(BasicAckOptions::default()).await?;
                return Ok(Outcome::DeadLettered);
            }
        };
        let span = tracing::info_span!(
            "event.consume",
            otel.name = %format!("{} process", event.event_type),
            otel.kind = "consumer",
            messaging.system = "rabbitmq",
            messaging.destination.name = %self.config.name,
            messaging.message.id = %event.id,
            messaging.attempt = event.attempt,
        );
        crate::telemetry::set_parent(&span, crate::telemetry::extract_from_amqp(&event.headers));
        let outcome = async {
            match self.apply(&event).await {
                Ok(true) => Ok(Outcome::Applied),
                Ok(false) => Ok(Outcome::Duplicate),
                Err(Applying::Unreachable(e)) => {
                    tracing::warn!(error = %e, "database unreachable; requeueing");
                    tokio::time::sleep(self.config.retry_backoff).await;
                    Ok(Outcome::Requeued)
                }
                Err(Applying::Failed(e)) => {
                    let permanent = matches!(e, HandlerError::Permanent(_));
                    if permanent || event.attempt >= self.config.max_attempts {
                        tracing::error!(error = %e, attempt = event.attempt, "event dead-lettered");
                        self.dead_letter(publisher, &delivery, &e.to_string()).await?;
                        Ok(Outcome::DeadLettered)
                    } else {
                        tracing::warn!(error = %e, attempt = event.attempt, "event failed; will retry");
                        self.retry(publisher, &delivery, event.attempt).await?;
                        Ok(Outcome::Retried)
                    }
                }
            }
        }
        .instrument(span)
        .await;
        match outcome {
            Ok(Outcome::Requeued) => {
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await?;
            }
            Ok(_) => {
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Err(_) => {}
        }
        outcome
    }

    /// Applies the event once: true when applied now, false when it had been before.
    async fn apply(&self, event: &IncomingEvent) -> Result<bool, Applying> {
        let mut tx = self.pool.begin().await.map_err(Applying::Unreachable)?;
        let inserted = sqlx::query(
            "INSERT INTO crm_kit.inbox (consumer, message_id, event_type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&self.config.name)
        .bind(&event.id)
        .bind(&event.event_type)
        .execute(&mut *tx)
        .await
        .map_err(Applying::Unreachable)?
        .rows_affected();
        if inserted == 0 {
            tracing::debug!(message_id = %event.id, "duplicate delivery skipped");
            return Ok(false);
        }
        self.handler
            .handle(event, &mut tx)
            .await
            .map_err(Applying::Failed)?;
        tx.commit().await.map_err(Applying::Unreachable)?;
        Ok(true)
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
            .basic_publish(
                "".into(),
                queue.clone().into(),
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await?
            .await?;
        if confirm.is_ack() {
            Ok(())
        } else {
            Err(PlatformError::NotConfirmed(queue))
        }
    }

    async fn retry(
        &self,
        publisher: &Channel,
        delivery: &Delivery,
        attempt: u32,
    ) -> Result<(), PlatformError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            ATTEMPT_HEADER.into(),
            AMQPValue::LongLongInt(i64::from(attempt + 1)),
        );
        self.republish(publisher, delivery, self.retry_queue(attempt), headers)
            .await
    }

    async fn dead_letter(
        &self,
        publisher: &Channel,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<(), PlatformError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            ERROR_HEADER.into(),
            AMQPValue::LongString(LongString::from(reason)),
        );
        self.republish(publisher, delivery, self.dead_letter_queue(), headers)
            .await
    }
}

enum Applying {
    /// The kit's own database work failed: the database is likely unreachable.
    Unreachable(sqlx::Error),
    /// The handler failed.
    Failed(HandlerError),
}
