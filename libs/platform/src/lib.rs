//! The platform kit: the plumbing every CRM service shares, written once.
//!
//! A service's `main` loads its settings with [`config`], starts [`telemetry`],
//! builds a [`runtime::ServiceRuntime`] (database, migrations, broker, gRPC listener)
//! and runs it with its own gRPC servers and consumers until a stop signal from
//! [`shutdown`]. Inside, handlers write events with [`messaging::outbox::write_event`] in
//! their own transactions and map their errors to gRPC through [`error::to_status`].
//!
//! # Layout
//! - [`auth`]: token verification, the authorization layer, the current caller.
//! - [`context`]: the call context (who, from where, which trace) of every handler.
//! - [`audit`]: the audit trail every service writes and auditors page through.
//! - [`group_commit`]: group commit of writes from concurrent calls.
//! - [`file_load`]: the daily file: lines in UTF-8 or GB18030, loaded resumably in
//!   chunks with a checkpoint, bad lines rejected by number.
//! - [`cli`]: the shared command line (`serve`, `migrate`, `healthcheck`).
//! - [`config`]: layered settings (defaults → file → `CRM_<SERVICE>__…` environment).
//! - [`telemetry`]: logs, OTLP traces, W3C trace context over gRPC and AMQP.
//! - [`grpc`]: server, health, clients.
//! - [`db`]: PostgreSQL pool, database creation, migrations.
//! - [`sqlstate`]: database errors by name, their error code and whether to retry.
//! - [`paging`]: the page size rule and page token of every list RPC.
//! - [`convert`]: wire conversions written once (timestamps, to the nanosecond).
//! - [`crypto`]: configured 32-byte keys and the one AES-256-GCM sealing helper.
//! - [`validate`]: text fields checked at the edge (length in characters, control
//!   characters).
//! - [`messaging`]: outbox, relay, consumers, CloudEvents envelope.
//! - [`error`]: error codes and the one mapping to `tonic::Status`.
//! - [`runtime`]: start-up and ordered shutdown.
//! - [`shutdown`]: stop signals.
//! - `testing` (feature `testing`): fresh databases and exchanges for integration tests.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod context;
pub mod convert;
pub mod crypto;
pub mod db;
pub mod error;
pub mod file_load;
pub mod group_commit;
pub mod grpc;
pub mod messaging;
pub mod paging;
pub mod runtime;
pub mod shutdown;
pub mod sqlstate;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod validate;

pub use error::{ErrorCode, FieldViolations, PlatformError, ServiceError, to_status};
