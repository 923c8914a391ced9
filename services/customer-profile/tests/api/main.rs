//! customer-profile through its gRPC API, against the real local PostgreSQL and
//! RabbitMQ; every test has its own database and exchange.

mod helpers;

mod identification;
mod ingestion;
mod platform;
