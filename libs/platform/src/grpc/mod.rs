//! gRPC plumbing: the server every service runs, its health reporting, and clients
//! for calling other services.
//!
//! # Layout
//! - [`server`]: tonic server with reflection, per-RPC spans, timeout, load shedding,
//!   graceful shutdown.
//! - [`message_size`]: the largest request message, refused with RESOURCE_EXHAUSTED.
//! - [`health`]: `grpc.health.v1`, SERVING only while the database and broker answer.
//! - [`client`]: channels with client spans, trace propagation, deadlines and retries for
//!   idempotent calls.

pub mod client;
pub mod health;
pub mod message_size;
pub mod server;
