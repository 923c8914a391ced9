//! Events between services over RabbitMQ: a transactional outbox and its relay on the
//! publishing side, idempotent consumers with retries and a dead-letter queue on the
//! receiving side, and the CloudEvents envelope both agree on.
//!
//! # Layout
//! - [`broker`]: the connection, reconnected on demand, and the topic exchange.
//! - [`envelope`]: CloudEvents 1.0 AMQP binding (headers) for outgoing and incoming events.
//! - [`outbox`]: writing an event in the caller's transaction.
//! - [`relay`]: publishing committed outbox rows with publisher confirms.
//! - [`consumer`]: manual acks, inbox de-duplication, retry queues, dead letters.

pub mod broker;
pub mod consumer;
pub mod envelope;
pub mod outbox;
pub mod relay;

pub use broker::Broker;
pub use consumer::{Consumer, ConsumerConfig, EventHandler, HandlerError};
pub use envelope::IncomingEvent;
pub use outbox::write_event;
pub use relay::OutboxRelay;
