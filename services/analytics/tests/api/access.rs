//! Who may call what: reads, ingestion and definitions need their own permissions.

use crm_platform::auth::DataScope;
use crm_proto::crm::analytics::v1 as pb;
use crm_proto::crm::customer::v1 as cpb;
use crm_proto::crm::identity::v1 as ipb;
use tonic::Code;

use crate::helpers::{by_number, cny, day, spawn_app};

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

#[tokio::test]
async fn reads_of_customer_value_follow_the_callers_data_scope() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    let (a, b) = ("100000000061", "100000000062");
    for (number, org, rm) in [(a, "BJ01", "rm-a"), (b, "SH01", "rm-b")] {
        app.customer_created(number, ("CORE", number)).await;
        let assignment = cpb::Assignment {
            customer_number: number.into(),
            home_org_id: org.into(),
            primary_rm_id: rm.into(),
            related_rm_ids: vec![],
            update_time: Some(prost_types::Timestamp { seconds: 1_790_000_000, nanos: 0 }),
        };
        let assigned =
            cpb::CustomerAssigned { action: cpb::AssignmentAction::Assign as i32, assignment: Some(assignment) };
        app.customer_event(number, &assigned).await;
    }
    for (org, path) in [("BJ01", "/HO/BJ/BJ01/"), ("SH01", "/HO/SH/SH01/")] {
        let changed =
            ipb::OrgChanged { org: Some(ipb::Org { org_id: org.into(), path: path.into(), ..Default::default() }) };
        app.customer_event(org, &changed).await;
    }
    app.load(vec![
        cny("A", by_number(a), "DEP", 10, day(2026, 5, 1)),
        cny("B", by_number(b), "DEP", 10, day(2026, 5, 1)),
    ])
    .await;

    let read = [analytics::access::READ];
    let sees = |mut client: crate::helpers::Client, number: &'static str| async move {
        client
            .get_customer_value(pb::GetCustomerValueRequest { customer_number: number.into() })
            .await
            .map_err(|s| s.code())
    };
    let rm_a = || app.scoped_client("rm-a", &read, DataScope::Own, "/HO/BJ/BJ01/");
    assert!(sees(rm_a(), a).await.is_ok(), "an RM sees its own customer");
    assert_eq!(sees(rm_a(), b).await.unwrap_err(), Code::PermissionDenied, "but not another RM's");
    let beijing = || app.scoped_client("sup-bj", &read, DataScope::Subtree, "/HO/BJ/");
    assert!(sees(beijing(), a).await.is_ok(), "a supervisor sees the subtree");
    assert_eq!(sees(beijing(), b).await.unwrap_err(), Code::PermissionDenied);
    let history =
        rm_a().list_level_history(pb::ListLevelHistoryRequest { customer_number: b.into() }).await.unwrap_err();
    assert_eq!(history.code(), Code::PermissionDenied);
    let tags = rm_a().get_customer_tags(pb::GetCustomerTagsRequest { customer_number: b.into() }).await;
    assert_eq!(tags.unwrap_err().code(), Code::PermissionDenied, "tags follow the scope too");
    let explain = pb::ExplainTagRequest { customer_number: b.into(), tag_code: "any".into() };
    assert_eq!(rm_a().explain_tag(explain).await.unwrap_err().code(), Code::PermissionDenied);
    let define = [analytics::access::READ, analytics::access::DEFINE];
    let mut rm_a_defining = app.scoped_client("rm-a", &define, DataScope::Own, "/HO/BJ/BJ01/");
    let set = pb::SetManualTagRequest { customer_number: b.into(), tag_code: "any".into() };
    assert_eq!(rm_a_defining.set_manual_tag(set).await.unwrap_err().code(), Code::PermissionDenied);
    assert!(rm_a().get_customer_tags(pb::GetCustomerTagsRequest { customer_number: a.into() }).await.is_ok());
    let head_office = app.scoped_client("ho", &read, DataScope::All, "/HO/");
    assert!(sees(head_office, b).await.is_ok());
    app.stop().await;
}
