//! What an SRE sees of one call (docs/deploy.md, "What an SRE looks at first"): the
//! spans of a flow across identity, customer-profile and analytics, captured in memory,
//! form one trace in which every hop is the child of the hop that caused it.
//!
//! Its own process: the test installs the global subscriber, exporting every span.

#![allow(clippy::unwrap_used)] // tests fail loudly

use std::sync::OnceLock;
use std::time::Duration;

use crm_platform::grpc::client::{BearerToken, ClientSettings, channel_with};
use crm_platform::testing::eventually;
use crm_proto::crm::identity::v1 as ipb;
use crm_system_tests::{ADMIN_PASSWORD, TestPlatform};
use opentelemetry::trace::{SpanId, SpanKind};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use tracing::Instrument;

const CREATE_ORG: &str = "crm.identity.v1.IdentityAdminService/CreateOrg";
const ORG_CHANGED: &str = "crm.identity.v1.OrgChanged";

/// Every span of this process.
fn exported() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let telemetry = crm_platform::telemetry::init_with_exporter(
            "crm-system-tests",
            "test",
            "warn,crm_platform=info,traces=info",
            exporter.clone(),
        )
        .expect("telemetry");
        std::mem::forget(telemetry);
        exporter
    })
}

fn spans_of(trace_id: &str) -> Vec<SpanData> {
    let finished = exported().get_finished_spans().unwrap_or_default();
    finished.into_iter().filter(|s| s.span_context.trace_id().to_string() == trace_id).collect()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
}

/// The one span of the trace that `is` describes.
fn the<'a>(trace: &'a [SpanData], what: &str, is: impl Fn(&SpanData) -> bool) -> &'a SpanData {
    let found: Vec<&SpanData> = trace.iter().filter(|s| is(s)).collect();
    assert_eq!(found.len(), 1, "one {what} in the trace: {:#?}", names(trace));
    found[0]
}

fn names(trace: &[SpanData]) -> Vec<String> {
    trace
        .iter()
        .map(|s| format!("{} ({:?}) {} <- {}", s.name, s.span_kind, s.span_context.span_id(), s.parent_span_id))
        .collect()
}

fn id(span: &SpanData) -> SpanId {
    span.span_context.span_id()
}

/// Whether `span` sits below `ancestor` in `trace`.
fn is_below(trace: &[SpanData], span: &SpanData, ancestor: &SpanData) -> bool {
    let mut parent = span.parent_span_id;
    while parent != SpanId::INVALID {
        if parent == id(ancestor) {
            return true;
        }
        match trace.iter().find(|s| id(s) == parent) {
            Some(next) => parent = next.parent_span_id,
            None => return false,
        }
    }
    false
}

fn is_statement(span: &SpanData) -> bool {
    attribute(span, "db.system").as_deref() == Some("postgresql")
}

type Admin = ipb::identity_admin_service_client::IdentityAdminServiceClient<
    crm_platform::grpc::client::TracedChannel<BearerToken>,
>;

/// Waits until customer-profile and analytics consume identity's `OrgChanged` events,
/// by creating orgs until both have processed one: `TestPlatform::start` returns before its consumer has
/// declared its queue, and an event published before that reaches no queue.
async fn until_customer_profile_follows_org_changes(admin: &mut Admin) {
    for n in 0..60 {
        let org = format!("WARM-UP-{n}");
        admin
            .create_org(ipb::CreateOrgRequest { org_id: org.clone(), name: org, parent_org_id: "HO".into() })
            .await
            .unwrap();
        // Both followers (customer-profile and analytics) have processed one.
        let processed = eventually(Duration::from_secs(1), || async {
            let queues: std::collections::BTreeSet<String> = exported()
                .get_finished_spans()
                .unwrap_or_default()
                .iter()
                .filter(|s| s.name == format!("{ORG_CHANGED} process"))
                .filter_map(|s| attribute(s, "messaging.destination.name"))
                .collect();
            queues.len() == 2
        })
        .await;
        if processed {
            return;
        }
    }
    panic!("customer-profile and analytics never both processed an OrgChanged event");
}

#[tokio::test]
async fn an_admin_call_its_statements_its_event_the_relay_and_the_consumer_form_one_trace() {
    exported();
    let platform = TestPlatform::start().await.unwrap();
    let token = platform.login("admin", ADMIN_PASSWORD).await.unwrap();
    let settings = ClientSettings {
        endpoint: format!("http://127.0.0.1:{}", platform.identity_port),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
    };
    let mut admin: Admin = ipb::identity_admin_service_client::IdentityAdminServiceClient::new(
        channel_with(&settings, BearerToken::new(&token).unwrap()).unwrap(),
    );
    until_customer_profile_follows_org_changes(&mut admin).await;

    // The operation of a calling system that opens a branch.
    let operation = tracing::info_span!("open_branch");
    let trace_id = crm_platform::telemetry::trace_id(&operation);
    let request =
        ipb::CreateOrgRequest { org_id: "BJ".into(), name: "Beijing branch".into(), parent_org_id: "HO".into() };
    admin.create_org(request).instrument(operation).await.unwrap();

    let consumed = eventually(Duration::from_secs(15), || async {
        spans_of(&trace_id).iter().any(|s| s.name == format!("{ORG_CHANGED} process"))
    })
    .await;
    let trace = spans_of(&trace_id);
    assert!(consumed, "customer-profile's process span joined the trace: {:#?}", names(&trace));

    let operation = the(&trace, "calling operation", |s| s.name == "open_branch");
    let client = the(&trace, "client span", |s| s.span_kind == SpanKind::Client && s.name == CREATE_ORG);
    assert_eq!(client.parent_span_id, id(operation), "the call is made in the caller's operation");
    assert_eq!(attribute(client, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(attribute(client, "rpc.service").as_deref(), Some("crm.identity.v1.IdentityAdminService"));
    assert_eq!(attribute(client, "rpc.method").as_deref(), Some("CreateOrg"));
    assert_eq!(attribute(client, "rpc.grpc.status_code").as_deref(), Some("0"));

    let server = the(&trace, "server span", |s| s.span_kind == SpanKind::Server && s.name == CREATE_ORG);
    assert_eq!(server.parent_span_id, id(client), "identity continues the client span");
    let handled: Vec<&SpanData> = trace.iter().filter(|s| is_statement(s) && is_below(&trace, s, server)).collect();
    assert!(!handled.is_empty(), "identity's statements are below its server span: {:#?}", names(&trace));
    for statement in &handled {
        let text = attribute(statement, "db.statement").unwrap_or_default();
        assert!(!text.is_empty(), "{} has its statement text", statement.name);
        assert!(!text.contains("Beijing branch"), "bound values stay out of the statement: {text}");
    }

    let create = the(&trace, "outbox create span", |s| s.name == format!("{ORG_CHANGED} create"));
    assert_eq!(create.span_kind, SpanKind::Producer);
    assert!(is_below(&trace, create, server), "the event is written while the call is handled");
    assert!(
        trace.iter().any(|s| is_statement(s)
            && s.parent_span_id == id(create)
            && attribute(s, "db.statement").is_some_and(|t| t.contains("crm_kit.outbox"))),
        "the outbox insert is the create span's statement: {:#?}",
        names(&trace)
    );

    let publish = the(&trace, "relay publish span", |s| s.name == format!("{ORG_CHANGED} publish"));
    assert_eq!(publish.parent_span_id, id(create), "the relay publishes in the trace stored with the row");
    assert_eq!(publish.span_kind, SpanKind::Producer);
    assert_eq!(attribute(publish, "messaging.system").as_deref(), Some("rabbitmq"));
    assert_eq!(attribute(publish, "messaging.operation").as_deref(), Some("publish"));
    assert_eq!(attribute(publish, "messaging.destination.name"), Some(platform.exchange.clone()));
    assert_eq!(attribute(publish, "messaging.rabbitmq.destination.routing_key").as_deref(), Some(ORG_CHANGED));
    let event_id = attribute(publish, "messaging.message.id");
    assert!(event_id.is_some());
    assert_eq!(attribute(create, "messaging.message.id"), event_id, "create and publish name the same event");

    // Both services that follow the org tree consume the event, each in the trace.
    let consumed_by_both = eventually(Duration::from_secs(15), || async {
        spans_of(&trace_id).iter().filter(|s| s.name == format!("{ORG_CHANGED} process")).count() == 2
    })
    .await;
    let trace = spans_of(&trace_id);
    assert!(consumed_by_both, "customer-profile and analytics processed it: {:#?}", names(&trace));
    for service in ["customer-profile", "analytics"] {
        let process = the(&trace, &format!("{service}'s process span"), |s| {
            s.name == format!("{ORG_CHANGED} process")
                && attribute(s, "messaging.destination.name").is_some_and(|q| q.contains(&format!(".{service}.")))
        });
        assert_eq!(process.parent_span_id, id(publish), "{service}'s consumer continues the publish span");
        assert_eq!(process.span_kind, SpanKind::Consumer);
        assert_eq!(attribute(process, "messaging.system").as_deref(), Some("rabbitmq"));
        assert_eq!(attribute(process, "messaging.operation").as_deref(), Some("process"));
        assert_eq!(attribute(process, "messaging.message.id"), event_id);
        assert_eq!(attribute(process, "messaging.rabbitmq.destination.routing_key").as_deref(), Some(ORG_CHANGED));
        assert!(
            trace.iter().any(|s| is_statement(s) && is_below(&trace, s, process)),
            "{service}'s statements are below its process span: {:#?}",
            names(&trace)
        );
    }
    platform.stop().await;
}
