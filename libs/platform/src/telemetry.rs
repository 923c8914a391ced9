//! Logs and traces: `tracing` for both, exported as OpenTelemetry spans over OTLP/gRPC
//! when an endpoint is configured, and W3C trace context carried across gRPC metadata
//! and AMQP headers so that one trace follows a request through every service and
//! every event it causes.

use std::collections::HashMap;
use std::sync::OnceLock;

use lapin::types::{AMQPValue, FieldTable, LongString};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetrySettings};
use crate::error::PlatformError;

/// Keeps the trace pipeline alive; [`Telemetry::shutdown`] flushes buffered spans.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the span exporter. Called last on shutdown so that the spans
    /// of the final calls reach the collector.
    pub fn shutdown(&self) {
        if let Some(provider) = &self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("failed to flush spans on shutdown: {e}");
        }
    }
}

fn propagator() -> &'static TraceContextPropagator {
    static PROPAGATOR: OnceLock<TraceContextPropagator> = OnceLock::new();
    PROPAGATOR.get_or_init(TraceContextPropagator::new)
}

fn resource(service: &'static str, version: &'static str) -> Resource {
    Resource::builder().with_service_name(service).with_attribute(KeyValue::new("service.version", version)).build()
}

/// Installs the global subscriber: log lines per `settings`, and spans exported to the
/// OTLP endpoint (batched) when one is set.
pub fn init(
    service: &'static str,
    version: &'static str,
    settings: &TelemetrySettings,
) -> Result<Telemetry, PlatformError> {
    let provider = match &settings.otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|e| PlatformError::Telemetry(e.to_string()))?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource(service, version))
                    .build(),
            )
        }
        None => None,
    };
    install(service, settings.log_format, &settings.log_filter, provider)
}

/// Installs the global subscriber with spans sent synchronously to `exporter`; tests
/// use it with an in-memory exporter to assert on the spans a flow produced.
pub fn init_with_exporter<E: SpanExporter + 'static>(
    service: &'static str,
    version: &'static str,
    log_filter: &str,
    exporter: E,
) -> Result<Telemetry, PlatformError> {
    let provider =
        SdkTracerProvider::builder().with_simple_exporter(exporter).with_resource(resource(service, version)).build();
    install(service, LogFormat::Human, log_filter, Some(provider))
}

fn install(
    service: &'static str,
    format: LogFormat,
    filter: &str,
    provider: Option<SdkTracerProvider>,
) -> Result<Telemetry, PlatformError> {
    let filter = EnvFilter::try_new(filter).map_err(|e| PlatformError::Telemetry(e.to_string()))?;
    let fmt = match format {
        LogFormat::Human => tracing_subscriber::fmt::layer().with_target(true).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(true).boxed(),
    };
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));
    // A second init in one process (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init();
    Ok(Telemetry { provider })
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct FieldTableExtractor<'a>(&'a FieldTable);

impl Extractor for FieldTableExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0.inner().get(key) {
            Some(AMQPValue::LongString(s)) => std::str::from_utf8(s.as_bytes()).ok(),
            Some(AMQPValue::ShortString(s)) => Some(s.as_str()),
            _ => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(|k| k.as_str()).collect()
    }
}

/// The trace context carried by incoming HTTP/2 (gRPC) headers.
pub fn extract_from_headers(headers: &http::HeaderMap) -> Context {
    propagator().extract(&HeaderExtractor(headers))
}

/// The trace context carried by an AMQP message's headers.
pub fn extract_from_amqp(headers: &FieldTable) -> Context {
    propagator().extract(&FieldTableExtractor(headers))
}

/// Writes the current span's trace context into outgoing gRPC metadata.
pub fn inject_into_metadata(metadata: &mut tonic::metadata::MetadataMap) {
    let cx = tracing::Span::current().context();
    propagator().inject_context(&cx, &mut MetadataInjector(metadata));
}

/// The current span's `traceparent` and `tracestate`, to store with an outbox row so
/// that the event, published later by the relay, continues this trace.
pub fn current_trace_context() -> (Option<String>, Option<String>) {
    let cx = tracing::Span::current().context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    propagator().inject_context(&cx, &mut carrier);
    (carrier.remove("traceparent"), carrier.remove("tracestate").filter(|s| !s.is_empty()))
}

/// Writes a stored `traceparent`/`tracestate` into AMQP headers.
pub fn trace_headers(traceparent: Option<&str>, tracestate: Option<&str>, headers: &mut FieldTable) {
    if let Some(tp) = traceparent {
        headers.insert("traceparent".into(), AMQPValue::LongString(LongString::from(tp)));
    }
    if let Some(ts) = tracestate {
        headers.insert("tracestate".into(), AMQPValue::LongString(LongString::from(ts)));
    }
}

/// Makes `span` a child of the trace carried in `cx`.
pub fn set_parent(span: &tracing::Span, cx: Context) {
    // Fails only when no OpenTelemetry layer is installed, in which case there is no
    // trace to join.
    let _ = span.set_parent(cx);
}

/// The trace id of `span` as 32 hex digits (zero when spans are not exported).
pub fn trace_id(span: &tracing::Span) -> String {
    use opentelemetry::trace::TraceContextExt;
    span.context().span().span_context().trace_id().to_string()
}
