//! Integration tests of the platform kit against the real local PostgreSQL and RabbitMQ.
//!
//! Tests marked `#[ignore]` disturb the shared broker (they restart it) and run alone,
//! after the rest, through `cargo xtask test`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod audit;
mod broker_restart;
mod consumer;
mod health;
mod outbox;
mod support;
