//! Generated Rust types for the CRM platform's contracts.
//!
//! Every `proto/crm/<area>/v1/*.proto` file becomes the module `crm::<area>::v1`, with
//! prost messages and, for services, a tonic client (`*_client`) and server
//! (`*_server`). [`FILE_DESCRIPTOR_SET`] feeds gRPC server reflection so that tools
//! such as grpcurl can call any service without local copies of the files.
//!
//! # Layout
//! - `build.rs` compiles the contracts with `protox`; nothing here is hand written
//!   except this file.

#![allow(clippy::all, missing_docs, unreachable_pub)]

include!(concat!(env!("OUT_DIR"), "/mod.rs"));

/// The encoded `google.protobuf.FileDescriptorSet` of every contract, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/crm_descriptor.bin"));
