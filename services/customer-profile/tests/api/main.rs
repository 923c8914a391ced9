//! customer-profile through its gRPC API, against the real local PostgreSQL and
//! RabbitMQ; every test has its own database and exchange.

#![allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)] // tests fail loudly; expected values read better as arrays

mod helpers;

mod access;
mod assignment;
mod bulk;
mod details;
mod file_load;
mod identification;
mod ingestion;
mod limits;
mod platform;
mod view360;
