//! The outbox relay: publishes committed outbox rows to the exchange, in commit order,
//! with publisher confirms, and marks them sent only once the broker has confirmed.
//!
//! Guarantees: at least once (a crash between publish and mark publishes the rows
//! again; consumers de-duplicate by event id), no loss across broker restarts (rows stay
//! pending until confirmed), and commit order per subject, because exactly one relay
//! per database publishes at a time (a PostgreSQL advisory lock elects it) and it
//! publishes in `seq` order, stopping at the first unconfirmed row.
//!
//! While spans are exported, each publish is a producer span, a child of the trace
//! context stored with the row (the outbox `create` span), and the message carries the
//! publish span's context, so that consumers' `process` spans are its children.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use lapin::Channel;
use lapin::options::BasicPublishOptions;
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::{Connection, PgConnection, PgPool, Row};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::broker::Broker;
use super::envelope::OutgoingEvent;
use crate::error::PlatformError;

/// Advisory lock key electing the one publishing relay per database.
const LEADER_LOCK: i64 = 0x6372_6d5f_6f75_7462; // "crm_outb"
const NOTIFY_CHANNEL: &str = "crm_kit_outbox";

/// Published events awaiting the broker's confirmation: (seq, event id, confirmation).
type InFlight = Vec<(i64, Uuid, lapin::PublisherConfirm)>;

/// One pending outbox row.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// Commit order.
    pub seq: i64,
    /// The event itself.
    pub event: OutgoingEvent,
}

/// Publishes the outbox of one service database.
#[derive(Debug, Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    connect: PgConnectOptions,
    broker: Broker,
    batch_size: i64,
    poll: Duration,
}

impl OutboxRelay {
    /// A relay for the outbox in `pool`'s database. `connect` opens the relay's own
    /// connection that holds the leader lock.
    pub fn new(pool: PgPool, connect: PgConnectOptions, broker: Broker, batch_size: i64, poll: Duration) -> Self {
        Self { pool, connect, broker, batch_size, poll }
    }

    /// Oldest unpublished rows, at most one batch.
    pub async fn fetch_pending(&self, conn: &mut PgConnection) -> Result<Vec<PendingEvent>, PlatformError> {
        self.fetch_excluding(conn, &HashSet::new()).await
    }

    /// Oldest unpublished rows that are not already in flight, at most one batch. No
    /// cursor: a transaction that took a lower sequence number may commit after a
    /// higher one was published, and its row must still be found.
    async fn fetch_excluding(
        &self,
        conn: &mut PgConnection,
        in_flight: &HashSet<i64>,
    ) -> Result<Vec<PendingEvent>, PlatformError> {
        let rows = sqlx::query(
            "SELECT seq, event_id, event_type, source, subject, payload, traceparent, tracestate, actor, occurred_at
             FROM crm_kit.outbox WHERE published_at IS NULL AND NOT (seq = ANY($2)) ORDER BY seq LIMIT $1",
        )
        .bind(self.batch_size)
        .bind(in_flight.iter().copied().collect::<Vec<i64>>())
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(PendingEvent {
                    seq: r.try_get("seq")?,
                    event: OutgoingEvent {
                        id: r.try_get::<Uuid, _>("event_id")?,
                        event_type: r.try_get("event_type")?,
                        source: r.try_get("source")?,
                        subject: r.try_get("subject")?,
                        payload: r.try_get("payload")?,
                        traceparent: r.try_get("traceparent")?,
                        tracestate: r.try_get("tracestate")?,
                        actor: r.try_get("actor")?,
                        time: r.try_get::<OffsetDateTime, _>("occurred_at")?,
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Publishes `events` in order on a confirm-mode channel and returns the sequence
    /// numbers the broker confirmed: a prefix of `events`, cut at the first nack.
    pub async fn publish(&self, channel: &Channel, events: &[PendingEvent]) -> Result<Vec<i64>, PlatformError> {
        let in_flight = self.send(channel, events).await?;
        Self::confirmed_prefix(in_flight).await
    }

    /// Publishes without waiting for the broker's confirmations.
    async fn send(&self, channel: &Channel, events: &[PendingEvent]) -> Result<InFlight, PlatformError> {
        let mut confirms = Vec::with_capacity(events.len());
        for pending in events {
            let e = &pending.event;
            let span = self.publish_span(e);
            let traced = if span.is_none() { (None, None) } else { crate::telemetry::trace_context_of(&span) };
            let properties = match &traced {
                (Some(traceparent), tracestate) => e.properties_in_trace(Some(traceparent), tracestate.as_deref()),
                (None, _) => e.properties(),
            };
            let confirm = channel
                .basic_publish(
                    self.broker.exchange().into(),
                    e.event_type.clone().into(),
                    BasicPublishOptions::default(),
                    &e.payload,
                    properties,
                )
                .instrument(span)
                .await?;
            confirms.push((pending.seq, e.id, confirm));
        }
        Ok(confirms)
    }

    /// The span of publishing `event`, continuing the trace stored with it (none while
    /// spans are not exported).
    fn publish_span(&self, event: &OutgoingEvent) -> tracing::Span {
        if !crate::telemetry::exporting() {
            return tracing::Span::none();
        }
        let span = tracing::info_span!(
            "event.publish",
            otel.name = %format!("{} publish", event.event_type),
            otel.kind = "producer",
            messaging.system = "rabbitmq",
            messaging.operation = "publish",
            messaging.destination.name = %self.broker.exchange(),
            messaging.rabbitmq.destination.routing_key = %event.event_type,
            messaging.message.id = %event.id,
        );
        if let Some(traceparent) = &event.traceparent {
            crate::telemetry::set_parent(
                &span,
                crate::telemetry::extract_stored(traceparent, event.tracestate.as_deref()),
            );
        }
        span
    }

    /// Waits for the confirmations of a published batch: the confirmed sequence
    /// numbers, a prefix cut at the first nack.
    async fn confirmed_prefix(confirms: InFlight) -> Result<Vec<i64>, PlatformError> {
        let mut confirmed = Vec::with_capacity(confirms.len());
        for (seq, id, confirm) in confirms {
            let confirmation = confirm.await?;
            if !confirmation.is_ack() {
                tracing::warn!(event_id = %id, seq, "broker nacked event; will retry");
                break;
            }
            confirmed.push(seq);
        }
        Ok(confirmed)
    }

    /// Removes published rows from the outbox.
    pub async fn mark_published(&self, conn: &mut PgConnection, seqs: &[i64]) -> Result<(), PlatformError> {
        if seqs.is_empty() {
            return Ok(());
        }
        // Deleting is cheaper than flagging: no new row version, no index entries; a
        // published event has nothing left to do in the outbox.
        sqlx::query("DELETE FROM crm_kit.outbox WHERE seq = ANY($1)").bind(seqs).execute(conn).await?;
        Ok(())
    }

    /// One round: fetch a batch, publish it, mark what was confirmed. Returns how many
    /// rows were published.
    pub async fn publish_batch(&self, conn: &mut PgConnection, channel: &Channel) -> Result<usize, PlatformError> {
        let pending = self.fetch_pending(conn).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let confirmed = self.publish(channel, &pending).await?;
        self.mark_published(conn, &confirmed).await?;
        if confirmed.len() < pending.len() {
            return Err(PlatformError::NotConfirmed(pending[confirmed.len()].event.id.to_string()));
        }
        Ok(confirmed.len())
    }

    /// Opens the relay's own connection and waits until it holds the leader lock.
    /// Returns `None` when cancelled first.
    async fn become_leader(&self, cancel: &CancellationToken) -> Result<Option<PgConnection>, PlatformError> {
        let mut conn = PgConnection::connect_with(&self.connect).await?;
        loop {
            let locked: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LEADER_LOCK).fetch_one(&mut conn).await?;
            if locked {
                tracing::info!("outbox relay is the leader");
                return Ok(Some(conn));
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(None),
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    /// One leadership term: publish until cancelled or until something fails.
    ///
    /// Up to two batches are in flight while the outbox holds full batches: the next
    /// batch is published while the broker still confirms the previous one, which keeps
    /// the broker busy during a backlog. A short batch means the outbox is drained for
    /// now: it is settled at once and the relay waits for the next commit's
    /// notification instead of asking again (at hundreds of small commits a second,
    /// the extra empty fetches cost PostgreSQL more than the publishing). Batches are
    /// settled (confirmed, then marked) in order. If the broker refuses a message, the
    /// term ends and the next one starts again from the oldest unmarked row; events
    /// published after the refused one are then delivered twice, and only in that case
    /// may a later event of a subject overtake its retry.
    async fn serve(&self, cancel: &CancellationToken) -> Result<(), PlatformError> {
        let Some(mut conn) = self.become_leader(cancel).await? else {
            return Ok(());
        };
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        let channel = self.broker.confirm_channel().await?;
        let mut in_flight: VecDeque<(usize, InFlight)> = VecDeque::new();
        let mut in_flight_seqs: HashSet<i64> = HashSet::new();
        loop {
            let stopping = cancel.is_cancelled();
            let fetched = self.fetch_excluding(&mut conn, &in_flight_seqs).await?;
            let full = fetched.len() as i64 >= self.batch_size;
            if !fetched.is_empty() {
                in_flight_seqs.extend(fetched.iter().map(|e| e.seq));
                in_flight.push_back((fetched.len(), self.send(&channel, &fetched).await?));
            }
            while in_flight.len() >= 2 || (!full && !in_flight.is_empty()) {
                let Some((sent, confirms)) = in_flight.pop_front() else { break };
                for (seq, _, _) in &confirms {
                    in_flight_seqs.remove(seq);
                }
                let confirmed = Self::confirmed_prefix(confirms).await?;
                self.mark_published(&mut conn, &confirmed).await?;
                if confirmed.len() < sent {
                    return Err(PlatformError::NotConfirmed(format!("outbox row after seq {:?}", confirmed.last())));
                }
            }
            if full {
                continue;
            }
            // Drained up to the fetch's snapshot: a row committed since then has
            // notified the listener, which holds the notification until received.
            if stopping {
                break;
            }
            tokio::select! {
                _ = cancel.cancelled() => {}
                n = listener.recv() => { n?; }
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
        let _ = channel.close(200, "shutdown".into()).await;
        let _ = conn.close().await;
        Ok(())
    }

    /// Runs until `cancel` fires, retrying with exponential backoff (capped at 30 s)
    /// whenever the database or the broker fails.
    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !cancel.is_cancelled() {
            match self.serve(&cancel).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "outbox relay failed");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        tracing::info!("outbox relay stopped");
    }
}
