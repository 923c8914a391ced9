//! Writing events in the same transaction as the state change they announce.

use sqlx::PgConnection;
use uuid::Uuid;

/// Adds `message` to the outbox inside the caller's transaction: the event is
/// published if and only if the transaction commits. The CloudEvents type is the
/// message's fully qualified protobuf name; `subject` is the aggregate key (events of
/// one subject are published in commit order). The current trace context is stored so
/// that the event continues the caller's trace. Without an explicit `actor`, the
/// subject of the call being handled (if any) is recorded.
pub async fn enqueue<M: prost::Name>(
    tx: &mut PgConnection,
    source: &str,
    subject: &str,
    message: &M,
    actor: Option<&str>,
) -> Result<Uuid, sqlx::Error> {
    enqueue_raw(tx, source, &M::full_name(), subject, &message.encode_to_vec(), actor).await
}

/// [`enqueue`] for an already encoded payload.
pub async fn enqueue_raw(
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
    let (traceparent, tracestate) = crate::telemetry::current_trace_context();
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
    .await?;
    Ok(id)
}
