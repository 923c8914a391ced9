//! Clients for calling other services: trace context propagation, deadlines, and
//! retries only where repeating a call is safe.

use std::future::Future;
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

/// A channel to another service, with propagation and deadlines. Connects lazily so
/// that a service starts even when a dependency is momentarily down.
pub type TracedChannel = InterceptedService<Channel, TracePropagation>;

/// Builds a [`TracedChannel`]; wrap it in the generated client, e.g.
/// `CustomerServiceClient::new(channel(&settings)?)`.
pub fn channel(settings: &ClientSettings) -> Result<TracedChannel, PlatformError> {
    let channel = Endpoint::from_shared(settings.endpoint.clone())?
        .timeout(settings.timeout)
        .connect_timeout(settings.connect_timeout)
        .connect_lazy();
    Ok(InterceptedService::new(channel, TracePropagation))
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
