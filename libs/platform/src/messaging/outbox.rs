//! Writing events in the same transaction as the state change they announce.
//!
//! While spans are exported, each write is a producer `create` span, a child of the
//! current span; a single event stores that span's trace context, so that the relay's
//! `publish` span is its child.

use sqlx::PgConnection;
use tracing::Instrument;
use uuid::Uuid;

/// The span of writing events to the outbox (none while spans are not exported).
fn create_span(name: &str, routing_key: Option<&str>, id: Option<&Uuid>, count: usize) -> tracing::Span {
    if !crate::telemetry::exporting() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "outbox.write",
        otel.name = %format!("{name} create"),
        otel.kind = "producer",
        messaging.system = "rabbitmq",
        messaging.operation = "create",
        messaging.rabbitmq.destination.routing_key = routing_key,
        messaging.message.id = id.map(tracing::field::display),
        messaging.batch.message_count = (count > 1).then_some(count),
    )
}

/// Adds `message` to the outbox inside the caller's transaction: the event is
/// published if and only if the transaction commits. The CloudEvents type is the
/// message's fully qualified protobuf name; `subject` is the aggregate key (events of
/// one subject are published in commit order). The trace context stored with it (the
/// `create` span's, else the current span's) makes the event continue the caller's
/// trace. Without an explicit `actor`, the subject of the call being handled (if any)
/// is recorded.
pub async fn write_event<M: prost::Name>(
    tx: &mut PgConnection,
    source: &str,
    subject: &str,
    message: &M,
    actor: Option<&str>,
) -> Result<Uuid, sqlx::Error> {
    write_raw_event(tx, source, &M::full_name(), subject, &message.encode_to_vec(), actor).await
}

/// [`write_event`] for an already encoded payload.
pub async fn write_raw_event(
    tx: &mut PgConnection,
    source: &str,
    event_type: &str,
    subject: &str,
    payload: &[u8],
    actor: Option<&str>,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    let caller = crate::auth::current_caller();
    let actor = actor.or_else(|| caller.as_deref().map(|c| c.subject()));
    let span = create_span(event_type, Some(event_type), Some(&id), 1);
    let (traceparent, tracestate) = if span.is_none() {
        crate::telemetry::current_trace_context()
    } else {
        crate::telemetry::trace_context_of(&span)
    };
    sqlx::query(
        "INSERT INTO crm_kit.outbox (event_id, event_type, source, subject, payload, traceparent, tracestate, actor)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(event_type)
    .bind(source)
    .bind(subject)
    .bind(payload)
    .bind(traceparent)
    .bind(tracestate)
    .bind(actor)
    .execute(tx)
    .instrument(span)
    .await?;
    Ok(id)
}

/// An event waiting to be written by [`write_events`].
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// Fully qualified protobuf name of the payload.
    pub event_type: String,
    /// Aggregate key.
    pub subject: String,
    /// Encoded payload.
    pub payload: Vec<u8>,
    /// W3C trace context the event continues: the current one when the event was made,
    /// unless set with [`OutboxEvent::in_trace`].
    pub trace: (Option<String>, Option<String>),
}

impl OutboxEvent {
    /// `message` about `subject`, in the current trace.
    pub fn new<M: prost::Name>(subject: &str, message: &M) -> Self {
        Self {
            event_type: M::full_name(),
            subject: subject.to_string(),
            payload: message.encode_to_vec(),
            trace: crate::telemetry::current_trace_context(),
        }
    }

    /// The event continues `trace` (`traceparent`, `tracestate`), e.g. the trace of
    /// the call whose record a batch writer applies on its behalf.
    pub fn in_trace(mut self, trace: (Option<String>, Option<String>)) -> Self {
        self.trace = trace;
        self
    }
}

/// [`write_event`] for many events in one statement (bulk loads write thousands per
/// transaction, where a round trip each would cost more than the change itself). The
/// events get outbox sequence numbers in slice order, so per-subject order holds. The
/// `outbox create` span covers the batch; each event keeps its own trace context.
pub async fn write_events(
    tx: &mut PgConnection,
    source: &str,
    events: &[OutboxEvent],
    actor: Option<&str>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
    let caller = crate::auth::current_caller();
    let actor = actor.or_else(|| caller.as_deref().map(|c| c.subject()));
    let traceparent: Vec<Option<&str>> = events.iter().map(|e| e.trace.0.as_deref()).collect();
    let tracestate: Vec<Option<&str>> = events.iter().map(|e| e.trace.1.as_deref()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    let payloads: Vec<&[u8]> = events.iter().map(|e| e.payload.as_slice()).collect();
    let span = create_span("outbox", None, None, events.len());
    sqlx::query(
        "INSERT INTO crm_kit.outbox (event_id, event_type, source, subject, payload, traceparent, tracestate, actor)
         SELECT e.id, e.event_type, $4, e.subject, e.payload, e.traceparent, e.tracestate, $7
         FROM unnest($1::uuid[], $2::text[], $3::text[], $8::bytea[], $5::text[], $6::text[]) WITH ORDINALITY
              AS e(id, event_type, subject, payload, traceparent, tracestate, n)
         ORDER BY e.n",
    )
    .bind(&ids)
    .bind(&types)
    .bind(&subjects)
    .bind(source)
    .bind(traceparent)
    .bind(tracestate)
    .bind(actor)
    .bind(&payloads)
    .execute(tx)
    .instrument(span)
    .await?;
    Ok(ids)
}
