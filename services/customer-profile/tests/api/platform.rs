//! The chassis behaviours seen through a real service: one trace across a gRPC call
//! and the event it causes, and graceful shutdown completing an in-flight call.

use std::time::Duration;

use crm_platform::auth::DataScope;
use crm_platform::messaging::{Consumer, ConsumerConfig, EventHandler, HandlerError, IncomingEvent};
use crm_proto::crm::customer::v1 as pb;
use tokio_util::sync::CancellationToken;

use crate::helpers::{ID18, person, spans, spawn_app, spawn_app_with};

struct Noop;

impl EventHandler for Noop {
    async fn handle(&self, _event: &IncomingEvent, _tx: &mut sqlx::PgConnection) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[tokio::test]
async fn one_trace_id_spans_the_grpc_call_and_the_event_it_causes() {
    let mut app = spawn_app().await;
    // The caller's trace: a fixed W3C traceparent sent as gRPC metadata.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request =
        tonic::Request::new(pb::UpsertSourceRecordRequest { record: Some(person("CORE", "C-1", ID18, "张伟")) });
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().unwrap());
    app.client.upsert_source_record(request).await.unwrap();

    // The published event carries the trace …
    let events = app.events.take(1).await;
    assert!(events[0].traceparent.as_deref().unwrap_or_default().contains(trace_id), "{:?}", events[0].traceparent);

    // … and a consumer's span joins it.
    let settings = app.env.platform_settings(&[]);
    let broker = crm_platform::messaging::Broker::new(&settings.messaging, "trace-test");
    let consumer = Consumer::new(
        app.pool.clone(),
        broker.clone(),
        ConsumerConfig {
            name: format!("{}.trace", app.env.exchange),
            bindings: vec!["crm.customer.v1.#".into()],
            prefetch: 4,
            max_attempts: 1,
            retry_backoff: Duration::from_millis(10),
        },
        Noop,
    );
    consumer.declare(&broker.channel().await.unwrap()).await.unwrap();
    let cancel = CancellationToken::new();
    let running = tokio::spawn(consumer.run(cancel.clone()));
    let mut upsert = pb::UpsertSourceRecordRequest { record: Some(person("CORE", "C-1", ID18, "张伟")) };
    upsert.record.as_mut().unwrap().source_version = 2;
    upsert.record.as_mut().unwrap().email = "z@example.com".into();
    let mut request = tonic::Request::new(upsert);
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().unwrap());
    app.client.upsert_source_record(request).await.unwrap();

    let found = crm_platform::testing::eventually(Duration::from_secs(10), || async {
        let finished = spans().get_finished_spans().unwrap_or_default();
        let in_trace: Vec<_> = finished.iter().filter(|s| s.span_context.trace_id().to_string() == trace_id).collect();
        let server = in_trace.iter().any(|s| s.name.contains("CustomerService/UpsertSourceRecord"));
        let consumed = in_trace.iter().any(|s| s.name.contains("crm.customer.v1.CustomerUpdated process"));
        server && consumed
    })
    .await;
    cancel.cancel();
    running.await.unwrap();
    assert!(found, "server and consumer spans share the caller's trace id");
    app.stop().await;
}

#[tokio::test]
async fn a_stop_signal_lets_an_in_flight_import_finish() {
    let mut app = spawn_app().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportSourceRecordsRequest>(8);
    let mut client = app.client.clone();
    let call =
        tokio::spawn(
            async move { client.import_source_records(tokio_stream::wrappers::ReceiverStream::new(rx)).await },
        );
    tx.send(pb::ImportSourceRecordsRequest { record: Some(person("CORE", "C-1", ID18, "张伟")) }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Stop while the stream is still open …
    let stopping = {
        let stop = app.stop_handle();
        tokio::spawn(stop)
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // … the call in flight still completes.
    tx.send(pb::ImportSourceRecordsRequest { record: Some(person("CARDS", "K-1", ID18, "张伟")) }).await.unwrap();
    drop(tx);
    let response = call.await.unwrap().expect("in-flight call completes").into_inner();
    assert_eq!(response.accepted_count, 2);
    stopping.await.unwrap();
    // The service's pool is closed now; look with a connection of our own.
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&app.env.database_url()).await.unwrap();
    let records: i64 = sqlx::query_scalar("SELECT count(*) FROM source_record").fetch_one(&mut conn).await.unwrap();
    assert_eq!(records, 2, "both records of the in-flight import were stored");
}

#[tokio::test]
async fn the_platform_client_carries_the_callers_trace_to_the_server() {
    use tracing::Instrument;
    let mut app = spawn_app().await;
    let settings = crm_platform::grpc::client::ClientSettings {
        endpoint: format!("http://127.0.0.1:{}", app.port),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
    };
    let mut client = pb::customer_service_client::CustomerServiceClient::new(
        crm_platform::grpc::client::channel(&settings).unwrap(),
    );
    // A span of the calling service (target chosen so that the test's filter keeps it).
    let caller = tracing::info_span!(target: "crm_platform", "caller.operation");
    let trace_id = crm_platform::telemetry::trace_id(&caller);
    assert_ne!(trace_id, "00000000000000000000000000000000");
    let mut request =
        tonic::Request::new(pb::UpsertSourceRecordRequest { record: Some(person("CORE", "C-9", ID18, "张伟")) });
    let token = app.tokens.token("core-banking", &["customer.write"], DataScope::All, "/HO/");
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    client.upsert_source_record(request).instrument(caller).await.unwrap();
    let joined = crm_platform::testing::eventually(Duration::from_secs(5), || async {
        spans().get_finished_spans().unwrap_or_default().iter().any(|s| {
            s.span_context.trace_id().to_string() == trace_id && s.name.contains("CustomerService/UpsertSourceRecord")
        })
    })
    .await;
    assert!(joined, "the server span continues the caller's trace");
    app.stop().await;
}

#[tokio::test]
async fn calls_beyond_the_concurrency_limit_are_shed_at_once() {
    let mut app = spawn_app_with(&[("grpc.concurrency_limit", "1")]).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportSourceRecordsRequest>(1);
    let mut importer = app.client.clone();
    let import =
        tokio::spawn(
            async move { importer.import_source_records(tokio_stream::wrappers::ReceiverStream::new(rx)).await },
        );
    tokio::time::sleep(Duration::from_millis(200)).await; // the import holds the only slot
    let shed = app
        .client
        .get_customer(pb::GetCustomerRequest {
            lookup: Some(pb::get_customer_request::Lookup::CustomerNumber("800000000011".into())),
        })
        .await
        .unwrap_err();
    assert_eq!(shed.code(), tonic::Code::ResourceExhausted);
    drop(tx);
    assert_eq!(import.await.unwrap().unwrap().into_inner().accepted_count, 0);
    // With the slot free again, calls are served.
    let served = app
        .client
        .get_customer(pb::GetCustomerRequest {
            lookup: Some(pb::get_customer_request::Lookup::CustomerNumber("800000000011".into())),
        })
        .await
        .unwrap_err();
    assert_eq!(served.code(), tonic::Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn a_call_running_past_the_request_timeout_is_cut_off() {
    let mut app = spawn_app_with(&[("grpc.request_timeout_ms", "300")]).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportSourceRecordsRequest>(1);
    let started = std::time::Instant::now();
    let status = app.client.import_source_records(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(status.code(), tonic::Code::Cancelled | tonic::Code::DeadlineExceeded), "{status:?}");
    drop(tx);
    app.stop().await;
}
