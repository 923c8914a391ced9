//! Generated Rust types for the CRM platform's contracts.
//!
//! Every `proto/crm/<area>/v1/*.proto` file becomes the module `crm::<area>::v1`, with
//! prost messages and, for services, a tonic client (`*_client`) and server
//! (`*_server`). [`FILE_DESCRIPTOR_SET`] feeds gRPC server reflection so that tools
//! such as grpcurl can call any service without local copies of the files.
//!
//! Every generated server implements [`MessageLimits`], so that the platform kit sets
//! the largest message of whatever server a service adds.
//!
//! # Layout
//! - `build.rs` compiles the contracts with `protox`; nothing here is hand written
//!   except this file.

#![allow(clippy::all, missing_docs, unreachable_pub)]

include!(concat!(env!("OUT_DIR"), "/mod.rs"));

/// The encoded `google.protobuf.FileDescriptorSet` of every contract, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/crm_descriptor.bin"));

/// A generated server whose largest message can be set (tonic's
/// `max_decoding_message_size` and `max_encoding_message_size`); `build.rs` implements
/// it for the server of every service in the contracts.
pub trait MessageLimits {
    /// The server, decoding and encoding messages of at most `max_bytes` bytes.
    fn with_message_limits(self, max_bytes: usize) -> Self;
}

include!(concat!(env!("OUT_DIR"), "/message_limits.rs"));
