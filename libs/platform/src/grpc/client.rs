//! Clients for calling other services: a client span per call (its context is the
//! `traceparent` the callee continues), deadlines, and retries only where repeating a
//! call is safe.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::error::PlatformError;

/// Settings for one downstream service.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// `http://host:port` of the service.
    pub endpoint: String,
    /// Deadline of each call, sent as `grpc-timeout` so the server stops too.
    pub timeout: Duration,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
}

/// Adds the current trace context (`traceparent`) to every outgoing call and, when
/// the call is made while handling another, that caller's token, so that the callee
/// applies the original caller's permissions and data scope.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracePropagation;

impl Interceptor for TracePropagation {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        crate::telemetry::inject_into_metadata(request.metadata_mut());
        if !request.metadata().contains_key("authorization")
            && let Some(caller) = crate::auth::current_caller()
            && let Ok(value) = format!("Bearer {}", caller.token()).parse()
        {
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// Sends a fixed bearer token with every call: for callers that hold their own token
/// (a service account's, or a test's) rather than passing on their caller's.
#[derive(Debug, Clone)]
pub struct BearerToken(tonic::metadata::AsciiMetadataValue);

impl BearerToken {
    /// The interceptor for `token`; `None` if it cannot be a header value.
    pub fn new(token: &str) -> Option<Self> {
        format!("Bearer {token}").parse().ok().map(Self)
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel to another service, with a client span per call, propagation and
/// deadlines. Connects lazily so that a service starts even when a dependency is
/// momentarily down. `I` adds the credentials: the caller's token passed on
/// ([`TracePropagation`]) or a fixed one ([`BearerToken`]).
pub type TracedChannel<I = TracePropagation> = ClientSpans<InterceptedService<Channel, I>>;

/// Builds a [`TracedChannel`]; wrap it in the generated client, e.g.
/// `CustomerServiceClient::new(channel(&settings)?)`.
pub fn channel(settings: &ClientSettings) -> Result<TracedChannel, PlatformError> {
    channel_with(settings, TracePropagation)
}

/// A [`TracedChannel`] whose calls `interceptor` prepares, e.g. with a [`BearerToken`].
pub fn channel_with<I: Interceptor>(
    settings: &ClientSettings,
    interceptor: I,
) -> Result<TracedChannel<I>, PlatformError> {
    let endpoint = Endpoint::from_shared(settings.endpoint.clone())?
        .timeout(settings.timeout)
        .connect_timeout(settings.connect_timeout);
    let server = endpoint.uri().clone();
    Ok(ClientSpans::new(InterceptedService::new(endpoint.connect_lazy(), interceptor), &server))
}

/// Makes every call through `S` a client span (`rpc.*` attributes, the status code
/// from the response headers or trailers), ended when the response body is done, and
/// sends the span's trace context with the call. Calls are made inside the span, so
/// that an interceptor reading the current span sees it. While spans are not exported
/// it only passes calls through.
#[derive(Debug, Clone)]
pub struct ClientSpans<S> {
    inner: S,
    /// `server.address` and `server.port`.
    server: Arc<(String, u16)>,
}

impl<S> ClientSpans<S> {
    /// `inner` (a channel to the service at `server`) with client spans.
    pub fn new(inner: S, server: &http::Uri) -> Self {
        let port = server.port_u16().unwrap_or(if server.scheme_str() == Some("https") { 443 } else { 80 });
        Self { inner, server: Arc::new((server.host().unwrap_or_default().to_string(), port)) }
    }

    fn span(&self, path: &str) -> tracing::Span {
        if !crate::telemetry::exporting() {
            return tracing::Span::none();
        }
        let name = path.trim_start_matches('/');
        let (service, method) = name.split_once('/').unwrap_or((name, ""));
        tracing::info_span!(
            "grpc.client",
            otel.name = %name,
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            server.address = %self.server.0,
            server.port = self.server.1,
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        )
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for ClientSpans<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = http::Response<SpannedBody<R>>;
    type Error = S::Error;
    type Future = SpannedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let span = self.span(request.uri().path());
        if !span.is_none() {
            crate::telemetry::inject_into_headers(&span, request.headers_mut());
        }
        let future = span.in_scope(|| self.inner.call(request));
        SpannedResponse { future, span }
    }
}

/// Records a gRPC status on a client span: every code but OK is an error.
fn record_status(span: &tracing::Span, headers: &http::HeaderMap) {
    let Some(code) = headers.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok())
    else {
        return;
    };
    span.record("rpc.grpc.status_code", code);
    if code != 0 {
        span.record("otel.status_code", "ERROR");
    }
}

pin_project_lite::pin_project! {
    /// The response of a call through [`ClientSpans`], polled inside its span.
    #[derive(Debug)]
    pub struct SpannedResponse<F> {
        #[pin]
        future: F,
        span: tracing::Span,
    }
}

impl<F, R, E> Future for SpannedResponse<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = Result<http::Response<SpannedBody<R>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.span.in_scope(|| this.future.poll(cx)));
        let span = std::mem::replace(this.span, tracing::Span::none());
        Poll::Ready(match result {
            Ok(response) => {
                // A trailers-only response (every refusal) has its status here.
                record_status(&span, response.headers());
                Ok(response.map(|body| SpannedBody { body, span }))
            }
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                Err(e)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds its call's span until it is done, and records the
    /// status its trailers carry.
    #[derive(Debug)]
    pub struct SpannedBody<B> {
        #[pin]
        body: B,
        span: tracing::Span,
    }
}

impl<B: http_body::Body> http_body::Body for SpannedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.body.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    record_status(this.span, trailers);
                }
            }
            Some(Err(_)) => {
                this.span.record("otel.status_code", "ERROR");
            }
            None => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Retry policy for idempotent calls.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all, including the first.
    pub max_attempts: u32,
    /// Delay before the second try; doubles each time.
    pub initial_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 3, initial_backoff: Duration::from_millis(50) }
    }
}

/// Whether a failed call may be repeated: only when the server certainly did not
/// apply it or the call is idempotent anyway and the failure is transient.
pub fn is_retryable(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::ResourceExhausted | Code::Aborted)
}

/// Runs an **idempotent** call (a read, or a write keyed so that repeating it changes
/// nothing) and repeats it on transient failures. Never use it for calls that are not
/// idempotent: a timeout does not tell whether the server applied the call.
pub async fn retry_idempotent<T, F, Fut>(policy: RetryPolicy, mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut backoff = policy.initial_backoff;
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(status) if attempt < policy.max_attempts && is_retryable(status.code()) => {
                tracing::debug!(attempt, code = ?status.code(), "retrying idempotent call");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            Err(status) => return Err(status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn idempotent_calls_are_retried_on_unavailable_until_they_succeed() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy { max_attempts: 3, initial_backoff: Duration::from_millis(1) };
        let result = retry_idempotent(policy, || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 { Err(Status::unavailable("down")) } else { Ok(7) }
        })
        .await;
        assert_eq!(result.expect("third try succeeds"), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn invalid_arguments_are_never_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry_idempotent(RetryPolicy::default(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Status::invalid_argument("bad"))
        })
        .await;
        assert_eq!(result.unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retries_stop_after_the_last_attempt() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy { max_attempts: 2, initial_backoff: Duration::from_millis(1) };
        let result: Result<(), _> = retry_idempotent(policy, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Status::unavailable("down"))
        })
        .await;
        assert_eq!(result.unwrap_err().code(), Code::Unavailable);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
