//! The CloudEvents 1.0 AMQP binding, binary mode: attributes as `cloudEvents:*`
//! application properties, the protobuf payload as the body.

use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable, LongString};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// Content type of every payload.
pub const CONTENT_TYPE: &str = "application/protobuf";
/// Header counting deliveries of a message through the retry queues (1 = first).
pub const ATTEMPT_HEADER: &str = "x-crm-attempt";
/// Header carrying the actor (user or service account) who caused the event.
pub const ACTOR_HEADER: &str = "x-crm-actor";
/// Header with the last failure of a dead-lettered message.
pub const ERROR_HEADER: &str = "x-crm-error";

/// An event as stored in the outbox, ready to publish.
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    /// CloudEvents `id`.
    pub id: Uuid,
    /// CloudEvents `type`, also the routing key.
    pub event_type: String,
    /// CloudEvents `source`.
    pub source: String,
    /// CloudEvents `subject`.
    pub subject: String,
    /// Protobuf payload.
    pub payload: Vec<u8>,
    /// Trace context of the operation that caused it.
    pub traceparent: Option<String>,
    /// Vendor trace state.
    pub tracestate: Option<String>,
    /// Who caused it.
    pub actor: Option<String>,
    /// When it was committed.
    pub time: OffsetDateTime,
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

impl OutgoingEvent {
    /// The AMQP properties: CloudEvents headers, the stored trace context, persistence.
    pub fn properties(&self) -> BasicProperties {
        self.properties_in_trace(self.traceparent.as_deref(), self.tracestate.as_deref())
    }

    /// [`OutgoingEvent::properties`] carrying another trace context: the relay's
    /// publish span's.
    pub fn properties_in_trace(&self, traceparent: Option<&str>, tracestate: Option<&str>) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert("cloudEvents:specversion".into(), long("1.0"));
        headers.insert("cloudEvents:id".into(), long(&self.id.to_string()));
        headers.insert("cloudEvents:source".into(), long(&self.source));
        headers.insert("cloudEvents:type".into(), long(&self.event_type));
        headers.insert("cloudEvents:subject".into(), long(&self.subject));
        let time = self.time.format(&Rfc3339).unwrap_or_default();
        headers.insert("cloudEvents:time".into(), long(&time));
        if let Some(actor) = &self.actor {
            headers.insert(ACTOR_HEADER.into(), long(actor));
        }
        crate::telemetry::trace_headers(traceparent, tracestate, &mut headers);
        BasicProperties::default()
            .with_content_type(CONTENT_TYPE.into())
            .with_message_id(self.id.to_string().into())
            .with_type(self.event_type.clone().into())
            .with_timestamp(self.time.unix_timestamp().max(0) as u64)
            .with_delivery_mode(2)
            .with_headers(headers)
    }
}

/// An event as a consumer receives it.
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    /// CloudEvents `id`; the de-duplication key.
    pub id: String,
    /// CloudEvents `type`.
    pub event_type: String,
    /// CloudEvents `source`.
    pub source: String,
    /// CloudEvents `subject`.
    pub subject: String,
    /// CloudEvents `time`.
    pub time: Option<OffsetDateTime>,
    /// Who caused it, when known.
    pub actor: Option<String>,
    /// Which delivery this is (1 = first).
    pub attempt: u32,
    /// Protobuf payload.
    pub payload: Vec<u8>,
    /// All AMQP headers, for trace context and anything custom.
    pub headers: FieldTable,
}

/// Reads a string header.
pub fn header_str<'a>(headers: &'a FieldTable, key: &str) -> Option<&'a str> {
    match headers.inner().get(key) {
        Some(AMQPValue::LongString(s)) => std::str::from_utf8(s.as_bytes()).ok(),
        Some(AMQPValue::ShortString(s)) => Some(s.as_str()),
        _ => None,
    }
}

/// Reads an integer header.
pub fn header_u32(headers: &FieldTable, key: &str) -> Option<u32> {
    match headers.inner().get(key) {
        Some(AMQPValue::LongInt(v)) => u32::try_from(*v).ok(),
        Some(AMQPValue::LongUInt(v)) => Some(*v),
        Some(AMQPValue::LongLongInt(v)) => u32::try_from(*v).ok(),
        Some(AMQPValue::ShortInt(v)) => u32::try_from(*v).ok(),
        Some(AMQPValue::ShortUInt(v)) => Some(u32::from(*v)),
        _ => None,
    }
}

impl IncomingEvent {
    /// Reads the envelope of a delivery. Fails when the mandatory CloudEvents
    /// attributes are missing, which makes the message poison.
    pub fn from_delivery(delivery: &Delivery) -> Result<Self, String> {
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        let id = header_str(&headers, "cloudEvents:id")
            .map(str::to_string)
            .or_else(|| delivery.properties.message_id().as_ref().map(|m| m.to_string()))
            .ok_or("missing cloudEvents:id")?;
        let event_type =
            header_str(&headers, "cloudEvents:type").map(str::to_string).ok_or("missing cloudEvents:type")?;
        let source = header_str(&headers, "cloudEvents:source").unwrap_or_default().to_string();
        let subject = header_str(&headers, "cloudEvents:subject").unwrap_or_default().to_string();
        let time = header_str(&headers, "cloudEvents:time").and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        let actor = header_str(&headers, ACTOR_HEADER).map(str::to_string);
        let attempt = header_u32(&headers, ATTEMPT_HEADER).unwrap_or(1).max(1);
        Ok(Self { id, event_type, source, subject, time, actor, attempt, payload: delivery.data.clone(), headers })
    }

    /// Decodes the payload as `M`; a payload that does not decode is permanent failure.
    pub fn decode<M: prost::Message + Default>(&self) -> Result<M, super::HandlerError> {
        M::decode(self.payload.as_slice())
            .map_err(|e| super::HandlerError::Permanent(format!("payload of {} does not decode: {e}", self.event_type)))
    }
}
