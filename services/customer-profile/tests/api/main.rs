//! customer-profile through its gRPC API, against the real local PostgreSQL and
//! RabbitMQ; every test has its own database and exchange.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod helpers;

mod assignment;
mod identification;
mod ingestion;
mod platform;
