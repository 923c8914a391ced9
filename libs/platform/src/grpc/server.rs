//! The gRPC server of a service: what it serves, how it describes itself, and how
//! it slows a fast client down.
//!
//! # What a server serves
//! [`ServedServices`] holds the names of the generated servers a service adds
//! (`ServiceRuntime::add_service`). Reflection (v1 and v1alpha) lists exactly those,
//! health and reflection, and describes only their contract files and the files those
//! import; the auth layer answers UNIMPLEMENTED for any other path, before it looks at
//! a token, so a client can tell "no such method" from "not allowed" (methods the
//! server has stay deny-by-default).
//!
//! # Flow control, not GOAWAY
//! The HTTP/2 library (h2) charges every DATA frame shorter than 256 bytes that the
//! handler has not read yet against a connection budget of half the connection
//! window, and closes the connection with GOAWAY `ENHANCE_YOUR_CALM`
//! (`too_many_data_frames`) when it runs out. A client that sends each small
//! streamed message in its own frame (gRPC C-core: Python, Ruby, PHP, C#…) fills it as
//! soon as a handler stops reading for a moment, e.g. while it writes a batch: four
//! parallel import streams of 2,000 small records were cut off that way. What a
//! stalled stream can hold unread is its stream window, so the server keeps that small
//! (`grpc.stream_window_bytes`, 32 KiB) and the connection window large
//! (`grpc.connection_window_bytes`, 16 MiB, so a budget of 8 MiB): a stalled stream of
//! 20-byte messages then holds at most ~1,640 frames, ~390 KB of the budget, so about
//! twenty such streams can stall at once on one connection (several hundred for
//! records of a hundred bytes) before the budget is at risk. Beyond the window the
//! client waits for the handler, which is what flow control is for.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;

use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet, ServiceDescriptorProto};

use tokio::net::TcpListener;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::auth::AuthLayer;
use crate::config::GrpcSettings;
use crate::error::PlatformError;
use crate::grpc::message_size::MessageSizeLayer;

/// Binds the configured address (port 0 picks a free port).
pub async fn bind(settings: &GrpcSettings) -> Result<TcpListener, PlatformError> {
    let listener = TcpListener::bind((settings.host.as_str(), settings.port)).await?;
    Ok(listener)
}

/// The gRPC services one server serves, by their fully qualified names
/// (`crm.customer.v1.CustomerService`), with what reflection and authorization need to
/// know about them: the contract files that define them, and their methods.
///
/// A server describes only what it serves: reflection lists these services (plus
/// health and reflection) and resolves only symbols of their files and those files'
/// imports, and a call to any other path is answered UNIMPLEMENTED.
#[derive(Debug, Clone, Default)]
pub struct ServedServices {
    names: Vec<&'static str>,
}

/// The descriptor sets a server can describe: every CRM contract and health.
fn known_files() -> Result<Vec<FileDescriptorProto>, PlatformError> {
    let mut files = Vec::new();
    for encoded in [crm_proto::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET] {
        let set = FileDescriptorSet::decode(encoded)
            .map_err(|e| PlatformError::Startup(format!("contract descriptors do not decode: {e}")))?;
        files.extend(set.file);
    }
    Ok(files)
}

fn full_name(file: &FileDescriptorProto, service: &ServiceDescriptorProto) -> String {
    match file.package() {
        "" => service.name().to_string(),
        package => format!("{package}.{}", service.name()),
    }
}

impl ServedServices {
    /// Adds a service by name (the generated server's `NamedService::NAME`).
    pub fn add(&mut self, name: &'static str) {
        if !self.names.contains(&name) {
            self.names.push(name);
        }
    }

    /// The names, in the order they were added.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// The files defining the served services and health, with every file they import,
    /// as one encoded `FileDescriptorSet`.
    fn descriptor_set(&self) -> Result<Vec<u8>, PlatformError> {
        let files = known_files()?;
        let by_name: HashMap<&str, &FileDescriptorProto> = files.iter().map(|f| (f.name(), f)).collect();
        let mut wanted: Vec<&str> = files
            .iter()
            .filter(|f| {
                f.service.iter().any(|s| {
                    let name = full_name(f, s);
                    name == HEALTH_SERVICE || self.names.contains(&name.as_str())
                })
            })
            .map(|f| f.name())
            .collect();
        let mut chosen: Vec<FileDescriptorProto> = Vec::new();
        let mut seen = HashSet::new();
        while let Some(name) = wanted.pop() {
            if !seen.insert(name) {
                continue;
            }
            if let Some(file) = by_name.get(name) {
                wanted.extend(file.dependency.iter().map(String::as_str));
                chosen.push((*file).clone());
            }
        }
        Ok(FileDescriptorSet { file: chosen }.encode_to_vec())
    }

    /// Every method path (`/package.Service/Method`) of the served services.
    pub fn methods(&self) -> Result<HashSet<String>, PlatformError> {
        let mut methods = HashSet::new();
        for file in known_files()? {
            for service in &file.service {
                let name = full_name(&file, service);
                if self.names.contains(&name.as_str()) {
                    methods.extend(service.method.iter().map(|m| format!("/{name}/{}", m.name())));
                }
            }
        }
        Ok(methods)
    }

    /// Adds reflection in both versions to `routes` (v1, and v1alpha that Postman,
    /// grpcui, Evans, Kreya and older grpcurl releases ask), listing the served
    /// services, health and reflection, and describing only their contracts.
    pub fn add_reflection(&self, routes: &mut RoutesBuilder) -> Result<(), PlatformError> {
        let set = self.descriptor_set()?;
        let configure = || {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(&set)
                .with_service_name(HEALTH_SERVICE)
                .with_service_name(REFLECTION_V1)
                .with_service_name(REFLECTION_V1ALPHA);
            for name in &self.names {
                builder = builder.with_service_name(*name);
            }
            builder
        };
        let failed = |e: tonic_reflection::server::Error| PlatformError::Startup(format!("reflection: {e}"));
        routes
            .add_service(configure().build_v1().map_err(failed)?)
            .add_service(configure().build_v1alpha().map_err(failed)?);
        Ok(())
    }
}

/// Name of the health service every server has.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
/// Name of reflection v1.
pub const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
/// Name of reflection v1alpha.
pub const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

/// The span every RPC runs in: a child of the caller's trace when the call carries a
/// `traceparent`.
fn rpc_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc.request",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        enduser.id = tracing::field::Empty,
    );
    crate::telemetry::set_parent(&span, crate::telemetry::extract_from_headers(request.headers()));
    span
}

/// Serves `routes` on `listener` until `shutdown` resolves, then stops accepting
/// connections and waits for in-flight calls to finish.
///
/// Every call gets a span, the configured timeout, and a place under a global
/// concurrency limit; calls beyond the limit are refused at once with
/// RESOURCE_EXHAUSTED (load shedding) rather than queued.
///
/// With `auth`, every call is authenticated and authorised before it reaches a
/// handler (after load shedding, so that a flood is refused before any signature check).
/// A request message larger than `grpc.max_message_bytes` is refused with
/// RESOURCE_EXHAUSTED ([`crate::grpc::message_size`]).
pub async fn serve(
    settings: &GrpcSettings,
    listener: TcpListener,
    routes: Routes,
    auth: Option<AuthLayer>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PlatformError> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let limits = ServiceBuilder::new()
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(settings.concurrency_limit))
        .option_layer(auth)
        .layer(MessageSizeLayer::new(settings.max_message_bytes))
        .into_inner();
    tracing::info!(addr = ?addr, "grpc server listening");
    Server::builder()
        .initial_stream_window_size(settings.stream_window_bytes)
        .initial_connection_window_size(settings.connection_window_bytes)
        .max_concurrent_streams(settings.max_concurrent_streams)
        .timeout(settings.request_timeout())
        .trace_fn(rpc_span)
        .layer(limits)
        .add_routes(routes)
        // Without TCP_NODELAY a response written in two parts waits for the client's
        // delayed ACK (~40 ms on Linux) before its second part leaves.
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown)
        .await?;
    tracing::info!("grpc server drained");
    Ok(())
}
