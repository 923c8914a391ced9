//! Logs and traces: `tracing` for both, exported as OpenTelemetry spans over OTLP/gRPC
//! when an endpoint is configured, and W3C trace context carried across gRPC metadata
//! and AMQP headers so that one trace follows a request through every service and
//! every event it causes.
//!
//! What one trace shows (names from the OpenTelemetry semantic conventions 1.24): a
//! client span for each call made through a kit channel and a server span for each
//! RPC; a `create` span where an event enters the outbox, the relay's `publish` span
//! as its child (however much later the relay runs) and each consumer's `process` span
//! as the publish span's child; and a client span for every database statement
//! (`db.system`, `db.statement`, `db.operation`, `db.name`) under whichever of these
//! ran it. Spans that exist only for the trace (client calls, create, publish,
//! statements) are made only while spans are exported, so that a service without a
//! collector pays nothing for them.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use lapin::types::{AMQPValue, FieldTable, LongString};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanExporter};
use tracing::field::{Field, Visit};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
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
/// OTLP endpoint (batched) when one is set. `database` (the service's own) is the
/// `db.name` of its statement spans.
pub fn init(
    service: &'static str,
    version: &'static str,
    settings: &TelemetrySettings,
    database: Option<&str>,
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
    install(service, settings.log_format, &settings.log_filter, provider, database)
}

/// Installs the global subscriber with spans sent synchronously to `exporter`; tests
/// use it with an in-memory exporter to assert on the spans a flow produced. Statement
/// spans carry no `db.name` (a test process runs services with different databases).
pub fn init_with_exporter<E: SpanExporter + 'static>(
    service: &'static str,
    version: &'static str,
    log_filter: &str,
    exporter: E,
) -> Result<Telemetry, PlatformError> {
    let provider =
        SdkTracerProvider::builder().with_simple_exporter(exporter).with_resource(resource(service, version)).build();
    install(service, LogFormat::Human, log_filter, Some(provider), None)
}

/// Set once a subscriber that exports spans is installed.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported. Spans that only serve the trace (client calls, outbox
/// create, relay publish) are made only then.
pub(crate) fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

fn fmt_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    match format {
        LogFormat::Human => tracing_subscriber::fmt::layer().with_target(true).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(true).boxed(),
    }
}

fn install(
    service: &'static str,
    format: LogFormat,
    filter: &str,
    provider: Option<SdkTracerProvider>,
    database: Option<&str>,
) -> Result<Telemetry, PlatformError> {
    let filter = || EnvFilter::try_new(filter).map_err(|e| PlatformError::Telemetry(e.to_string()));
    // A second init in one process (tests) keeps the first subscriber.
    let installed = match &provider {
        // One filter for everything: logging costs what it always did.
        None => tracing_subscriber::registry().with(filter()?).with(fmt_layer(format)).try_init().is_ok(),
        // The log filter per layer, so that the statement layer alone sees sqlx's
        // per-statement events (DEBUG, slow ones WARN) whatever the log filter says.
        Some(provider) => {
            let tracer = provider.tracer(service);
            tracing_subscriber::registry()
                .with(fmt_layer(format).with_filter(filter()?))
                .with(tracing_opentelemetry::layer().with_tracer(tracer.clone()).with_filter(filter()?))
                .with(
                    StatementSpans { tracer, database: database.map(str::to_string) }
                        .with_filter(Targets::new().with_target(STATEMENT_TARGET, LevelFilter::DEBUG)),
                )
                .try_init()
                .is_ok()
        }
    };
    if installed && provider.is_some() {
        EXPORTING.store(true, Ordering::Relaxed);
    }
    Ok(Telemetry { provider })
}

/// Target of the event sqlx emits after every statement (`sqlx-core` `logger.rs`): the
/// statement's text, rows, and `elapsed_secs`, at the connection's `log_statements`
/// level (DEBUG by default and in [`crate::db::connect_options`]), or
/// `log_slow_statements` (WARN) when it ran long.
const STATEMENT_TARGET: &str = "sqlx::query";

/// Turns each statement event into a client span that started `elapsed` ago and ends
/// now, a child of the span the statement ran in. Statements outside any trace (the
/// relay's polling, health checks) make no span.
struct StatementSpans {
    tracer: SdkTracer,
    database: Option<String>,
}

impl<S: tracing::Subscriber> Layer<S> for StatementSpans {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        // The OpenTelemetry layer attaches the context of every span it enters
        // (context activation, on by default), so this is the current span's.
        let parent = Context::current();
        if !parent.span().span_context().is_valid() {
            return;
        }
        let mut fields = StatementFields::default();
        event.record(&mut fields);
        let elapsed = Duration::try_from_secs_f64(fields.elapsed_secs).unwrap_or_default();
        let Some(statement) = fields.statement() else { return };
        let end = SystemTime::now();
        let start = end.checked_sub(elapsed).unwrap_or(end);
        let operation = statement
            .split_whitespace()
            .next()
            .filter(|w| w.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(str::to_ascii_uppercase);
        let name = match (&operation, &self.database) {
            (Some(op), Some(db)) => format!("{op} {db}"),
            (Some(op), None) => op.clone(),
            (None, Some(db)) => db.clone(),
            (None, None) => "postgresql".to_string(),
        };
        let mut attributes = Vec::with_capacity(4);
        attributes.push(KeyValue::new("db.system", "postgresql"));
        if let Some(db) = &self.database {
            attributes.push(KeyValue::new("db.name", db.clone()));
        }
        if let Some(op) = operation {
            attributes.push(KeyValue::new("db.operation", op));
        }
        attributes.push(KeyValue::new("db.statement", statement));
        self.tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent)
            .end_with_timestamp(end);
    }
}

/// The fields of sqlx's statement event this layer reads. sqlx puts a statement of
/// four words or fewer in `summary` alone, and a longer one in `db.statement` (framed
/// by blank lines) with its first four words in `summary`.
#[derive(Default)]
struct StatementFields {
    summary: String,
    text: String,
    elapsed_secs: f64,
}

impl StatementFields {
    fn statement(self) -> Option<String> {
        let text = self.text.trim();
        if !text.is_empty() {
            Some(if text.len() == self.text.len() { self.text } else { text.to_string() })
        } else if !self.summary.is_empty() {
            Some(self.summary)
        } else {
            None
        }
    }
}

impl Visit for StatementFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_string(),
            "db.statement" => self.text = value.to_string(),
            _ => {}
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = value;
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
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

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) =
            (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::try_from(value.as_str()))
        {
            self.0.insert(key, value);
        }
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

/// Writes `span`'s trace context into outgoing HTTP/2 (gRPC) headers; nothing when
/// the span is not exported.
pub fn inject_into_headers(span: &tracing::Span, headers: &mut http::HeaderMap) {
    propagator().inject_context(&span.context(), &mut HeaderInjector(headers));
}

/// The current span's `traceparent` and `tracestate`, to store with an outbox row so
/// that the event, published later by the relay, continues this trace.
pub fn current_trace_context() -> (Option<String>, Option<String>) {
    trace_context_of(&tracing::Span::current())
}

/// `span`'s `traceparent` and `tracestate` (`None` when it is not exported).
pub fn trace_context_of(span: &tracing::Span) -> (Option<String>, Option<String>) {
    let cx = span.context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    propagator().inject_context(&cx, &mut carrier);
    (carrier.remove("traceparent"), carrier.remove("tracestate").filter(|s| !s.is_empty()))
}

/// The trace context a stored `traceparent`/`tracestate` (an outbox row's) names.
pub fn extract_stored(traceparent: &str, tracestate: Option<&str>) -> Context {
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(2);
    carrier.insert("traceparent".to_string(), traceparent.to_string());
    if let Some(ts) = tracestate {
        carrier.insert("tracestate".to_string(), ts.to_string());
    }
    propagator().extract(&carrier)
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
    span.context().span().span_context().trace_id().to_string()
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::SpanKind;
    use opentelemetry_sdk::trace::InMemorySpanExporter;

    use super::*;

    fn attribute(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
        span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
    }

    #[test]
    fn statements_become_client_spans_under_the_span_they_ran_in_and_nowhere_else() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let tracer = provider.tracer("test");
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer.clone())).with(
                StatementSpans { tracer, database: Some("crm_identity".into()) }
                    .with_filter(Targets::new().with_target(STATEMENT_TARGET, LevelFilter::DEBUG)),
            );
        tracing::subscriber::with_default(subscriber, || {
            // Shaped as sqlx-core's logger emits them: a long statement, a short one.
            let emit_long = || {
                tracing::debug!(
                    target: "sqlx::query",
                    summary = "SELECT org_id, name, parent …",
                    db.statement = "\n\nSELECT org_id, name, parent FROM org WHERE org_id = $1\n",
                    rows_affected = 0_u64,
                    rows_returned = 1_u64,
                    elapsed_secs = 0.25_f64,
                )
            };
            emit_long();
            let handler = tracing::info_span!("handler");
            handler.in_scope(|| {
                emit_long();
                tracing::debug!(target: "sqlx::query", summary = "COMMIT", db.statement = "", elapsed_secs = 0.001_f64);
            });
        });
        let spans = exporter.get_finished_spans().expect("spans");
        let handler = spans.iter().find(|s| s.name == "handler").expect("handler span");
        let statements: Vec<_> = spans.iter().filter(|s| s.name != "handler").collect();
        assert_eq!(statements.len(), 2, "the statement outside any span made none: {statements:#?}");
        for s in &statements {
            assert_eq!(s.parent_span_id, handler.span_context.span_id());
            assert_eq!(s.span_context.trace_id(), handler.span_context.trace_id());
            assert_eq!(s.span_kind, SpanKind::Client);
            assert_eq!(attribute(s, "db.system").as_deref(), Some("postgresql"));
            assert_eq!(attribute(s, "db.name").as_deref(), Some("crm_identity"));
        }
        let select = statements.iter().find(|s| s.name == "SELECT crm_identity").expect("select span");
        assert_eq!(
            attribute(select, "db.statement").as_deref(),
            Some("SELECT org_id, name, parent FROM org WHERE org_id = $1")
        );
        assert_eq!(attribute(select, "db.operation").as_deref(), Some("SELECT"));
        let took = select.end_time.duration_since(select.start_time).expect("ends after it starts");
        assert!(took >= Duration::from_millis(249) && took < Duration::from_millis(260), "{took:?}");
        let commit = statements.iter().find(|s| s.name == "COMMIT crm_identity").expect("commit span");
        assert_eq!(attribute(commit, "db.statement").as_deref(), Some("COMMIT"));
    }
}
