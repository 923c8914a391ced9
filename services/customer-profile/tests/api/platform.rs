//! The chassis behaviours seen through a real service: one trace across a gRPC call
//! and the event it causes, and graceful shutdown completing an in-flight call.

use std::time::Duration;

use crm_platform::messaging::{Consumer, ConsumerConfig, EventHandler, HandlerError, IncomingEvent};
use crm_proto::crm::customer::v1 as pb;
use tokio_util::sync::CancellationToken;

use crate::helpers::{ID18, person, spans, spawn_app};

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
