//! Who may call what: reads, ingestion and definitions need their own permissions.

use crm_proto::crm::analytics::v1 as pb;
use tonic::Code;

use crate::helpers::spawn_app;

#[tokio::test]
async fn each_rpc_family_needs_its_permission() {
    let mut app = spawn_app().await;
    let anonymous = app.anonymous_client().list_products(pb::ListProductsRequest {}).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    let mut reader = app.client_for("rm-1", &[analytics::access::READ]);
    reader.list_products(pb::ListProductsRequest {}).await.unwrap();
    let ingest = reader.upsert_products(pb::UpsertProductsRequest { products: vec![] }).await.unwrap_err();
    assert_eq!(ingest.code(), Code::PermissionDenied);
    let define = reader.close_month(pb::CloseMonthRequest { month: "2026-01".into() }).await.map(|_| ()).unwrap_err();
    assert_eq!(define.code(), Code::PermissionDenied);

    let mut feed = app.client_for("core-banking", &[analytics::access::INGEST]);
    feed.upsert_products(pb::UpsertProductsRequest { products: vec![] }).await.unwrap();
    let read = feed.get_customer_value(pb::GetCustomerValueRequest { customer_number: "1".into() }).await.unwrap_err();
    assert_eq!(read.code(), Code::PermissionDenied);
    app.stop().await;
}
