//! analytics through its gRPC API, against the real local PostgreSQL and RabbitMQ;
//! every test has its own database and exchange.

#![allow(clippy::unwrap_used)] // tests fail loudly

mod helpers;

mod access;
mod analysis;
mod balance_file;
mod facts;
mod identification;
mod levels;
mod recompute;
mod rfm;
mod segments;
mod tags;
mod targets;
