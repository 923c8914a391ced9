//! The gRPC server of a service.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::auth::AuthLayer;
use crate::config::GrpcSettings;
use crate::error::PlatformError;

/// Binds the configured address (port 0 picks a free port).
pub async fn bind(settings: &GrpcSettings) -> Result<TcpListener, PlatformError> {
    let listener = TcpListener::bind((settings.host.as_str(), settings.port)).await?;
    Ok(listener)
}

/// Reflection over every CRM contract and the health service, so that grpcurl and
/// similar tools work without local copies of the `.proto` files.
pub fn reflection() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
    PlatformError,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crm_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| PlatformError::Telemetry(format!("reflection: {e}")))
}

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
        .into_inner();
    tracing::info!(addr = ?addr, "grpc server listening");
    Server::builder()
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
