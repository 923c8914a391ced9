//! Authentication, permissions, data scopes, PII visibility and the access audit
//! trail (docs/auth.md), through the gRPC API with tokens the app verifies.

use std::time::Duration;

use crm_platform::auth::DataScope;
use crm_proto::crm::customer::v1 as pb;
use crm_proto::crm::identity::v1 as idpb;
use customer_profile::domain::id::resident_id_check_char;
use tonic::Code;

use crate::helpers::{Client, TestApp, person, spawn_app};

/// A valid 18-digit resident ID born on 1980-01-`day`.
fn resident_id(day: u32) -> String {
    let first17 = format!("110105198001{day:02}123");
    let check = resident_id_check_char(&first17).unwrap();
    format!("{first17}{check}")
}

/// Publishes an event on the app's exchange the way identity's relay would.
async fn publish<M: prost::Name>(app: &TestApp, subject: &str, message: &M) {
    app.env.publish("crm/identity", subject, message).await;
}

async fn org_changed(app: &TestApp, org_id: &str, path: &str) {
    let org = idpb::Org { org_id: org_id.into(), path: path.into(), ..Default::default() };
    publish(app, org_id, &idpb::OrgChanged { org: Some(org) }).await;
}

/// Three customers: A at BJ01 with RM rm-a, B at BJ02 with RM rm-b, C at SH01 with
/// RM rm-c. The org tree is /HO/BJ/{BJ01,BJ02}/ and /HO/SH/SH01/.
async fn three_customers(app: &mut TestApp) -> [String; 3] {
    let mut numbers = Vec::new();
    for (i, (name, org, rm)) in
        [("甲客户", "BJ01", "rm-a"), ("乙客户", "BJ02", "rm-b"), ("丙客户", "SH01", "rm-c")].into_iter().enumerate()
    {
        let mut record = person("CORE", &format!("S-{i}"), &resident_id(i as u32 + 1), name);
        record.mobile_phone = format!("1380000{:04}", i + 1);
        let number = app.upsert(record).await.unwrap().customer_number;
        app.client
            .assign_customers(pb::AssignCustomersRequest {
                customer_numbers: vec![number.clone()],
                home_org_id: org.into(),
                primary_rm_id: rm.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        numbers.push(number);
    }
    // Published until the app's consumer has bound its queue and applied them (events
    // published before the binding exists are dropped by the exchange, as in production
    // before a service's first start). Re-applying an org change is harmless.
    let directory_filled = crm_platform::testing::eventually(Duration::from_secs(10), || async {
        for (org, path) in [
            ("BJ01", "/HO/BJ/BJ01/"),
            ("BJ02", "/HO/BJ/BJ02/"),
            ("SH01", "/HO/SH/SH01/"),
            ("BJ", "/HO/BJ/"),
            ("SH", "/HO/SH/"),
        ] {
            org_changed(app, org, path).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.count("SELECT count(*) FROM org_directory").await == 5
    })
    .await;
    assert!(directory_filled, "OrgChanged events reach the org directory");
    numbers.try_into().unwrap()
}

async fn visible_numbers(client: &mut Client) -> Vec<String> {
    let found = client
        .search_customers(pb::SearchCustomersRequest { name_contains: "客户".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    found.customers.into_iter().map(|c| c.customer_number).collect()
}

async fn get_code(client: &mut Client, number: &str) -> Option<Code> {
    client
        .get_customer(pb::GetCustomerRequest {
            lookup: Some(pb::get_customer_request::Lookup::CustomerNumber(number.into())),
        })
        .await
        .err()
        .map(|s| s.code())
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated_and_health_stays_open() {
    let mut app = spawn_app().await;
    let request = || pb::GetCustomerRequest {
        lookup: Some(pb::get_customer_request::Lookup::CustomerNumber("800000000011".into())),
    };
    let status = app.anonymous_client().get_customer(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = app.client_as("not-a-token").get_customer(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut expired = app.tokens.claims("rm-a", &["customer.read"], DataScope::Own, "/HO/BJ/BJ01/");
    expired.exp -= 3_600;
    expired.iat -= 3_600;
    let status = app.client_as(&app.tokens.sign(&expired)).get_customer(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{status:?}");
    let mut other_audience = app.tokens.claims("rm-a", &["customer.read"], DataScope::Own, "/HO/BJ/BJ01/");
    other_audience.aud = "payments".into();
    let status = app.client_as(&app.tokens.sign(&other_audience)).get_customer(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let foreign = crm_platform::testing::TestTokens::new().token("rm-a", &["customer.read"], DataScope::All, "/HO/");
    let status = app.client_as(&foreign).get_customer(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "a token signed by an unknown key");

    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", app.port))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await;
    assert!(health.is_ok(), "health needs no token: {health:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_caller_without_the_rpcs_permission_is_denied() {
    let mut app = spawn_app().await;
    let [a, _, _] = three_customers(&mut app).await;
    let mut rm = app.client_for("rm-a", &["customer.read"], DataScope::Own, "/HO/BJ/BJ01/");
    let denied = rm
        .assign_customers(pb::AssignCustomersRequest {
            customer_numbers: vec![a.clone()],
            primary_rm_id: "rm-a".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("customer.assign"), "{denied:?}");
    let denied = rm
        .upsert_source_record(pb::UpsertSourceRecordRequest {
            record: Some(person("CORE", "X", &resident_id(9), "某人")),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    app.stop().await;
}

#[tokio::test]
async fn an_rm_sees_own_customers_a_supervisor_the_subtree_and_head_office_all() {
    let mut app = spawn_app().await;
    let [a, b, c] = three_customers(&mut app).await;
    let read = &["customer.read"];
    let mut rm = app.client_for("rm-a", read, DataScope::Own, "/HO/BJ/BJ01/");
    let mut outlet = app.client_for("agent-bj02", read, DataScope::Org, "/HO/BJ/BJ02/");
    let mut supervisor = app.client_for("sup-bj", read, DataScope::Subtree, "/HO/BJ/");
    let mut head_office = app.client_for("ho-1", read, DataScope::All, "/HO/");

    assert_eq!(visible_numbers(&mut rm).await, vec![a.clone()]);
    assert_eq!(visible_numbers(&mut outlet).await, vec![b.clone()]);
    assert_eq!(visible_numbers(&mut supervisor).await, vec![a.clone(), b.clone()]);
    assert_eq!(visible_numbers(&mut head_office).await, vec![a.clone(), b.clone(), c.clone()]);

    assert_eq!(get_code(&mut rm, &a).await, None);
    assert_eq!(get_code(&mut rm, &b).await, Some(Code::PermissionDenied));
    assert_eq!(get_code(&mut supervisor, &c).await, Some(Code::PermissionDenied));
    assert_eq!(get_code(&mut head_office, &c).await, None);
    let view = rm.get_customer360(pb::GetCustomer360Request { customer_number: b.clone() }).await.unwrap_err();
    assert_eq!(view.code(), Code::PermissionDenied);
    let history = rm
        .list_customer_history(pb::ListCustomerHistoryRequest { customer_number: c.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(history.code(), Code::PermissionDenied);

    // An org moving between branches moves its customers between supervisors' scopes.
    org_changed(&app, "BJ02", "/HO/SH/BJ02/").await;
    let moved = crm_platform::testing::eventually(Duration::from_secs(10), || {
        let mut supervisor = supervisor.clone();
        let a = a.clone();
        async move { visible_numbers(&mut supervisor).await == vec![a] }
    })
    .await;
    assert!(moved, "after BJ02 moved under SH the BJ supervisor no longer sees its customer");
    app.stop().await;
}

#[tokio::test]
async fn a_supervisor_cannot_assign_outside_the_subtree() {
    let mut app = spawn_app().await;
    let [a, _, c] = three_customers(&mut app).await;
    let mut supervisor = app.client_for("sup-bj", &["customer.read", "customer.assign"], DataScope::Subtree, "/HO/BJ/");
    let assign = |number: &str, org: &str| pb::AssignCustomersRequest {
        customer_numbers: vec![number.into()],
        home_org_id: org.into(),
        ..Default::default()
    };
    supervisor.assign_customers(assign(&a, "BJ02")).await.expect("inside the subtree");
    let outside_org = supervisor.assign_customers(assign(&a, "SH01")).await.unwrap_err();
    assert_eq!(outside_org.code(), Code::PermissionDenied);
    let outside_customer = supervisor.assign_customers(assign(&c, "BJ01")).await.unwrap_err();
    assert_eq!(outside_customer.code(), Code::PermissionDenied);
    app.stop().await;
}

#[tokio::test]
async fn full_id_and_phone_numbers_need_the_pii_permission() {
    let mut app = spawn_app().await;
    let [a, _, _] = three_customers(&mut app).await;
    let mut masked = app.client_for("ho-1", &["customer.read"], DataScope::All, "/HO/");
    let mut full = app.client_for("steward-1", &["customer.read", "customer.pii.read"], DataScope::All, "/HO/");
    let get = |number: &str| pb::GetCustomer360Request { customer_number: number.into() };
    let masked_view = masked.get_customer360(get(&a)).await.unwrap().into_inner().customer.unwrap();
    assert_eq!(masked_view.id_number, format!("110105********{}", &resident_id(1)[14..]));
    assert_eq!(masked_view.mobile_phone, "138****0001");
    let full_view = full.get_customer360(get(&a)).await.unwrap().into_inner().customer.unwrap();
    assert_eq!(full_view.id_number, resident_id(1));
    assert_eq!(full_view.mobile_phone, "13800000001");
    let found = full
        .search_customers(pb::SearchCustomersRequest { id_number: resident_id(1), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.customers[0].mobile_phone, "13800000001");
    app.stop().await;
}

#[tokio::test]
async fn full_views_and_changes_are_in_the_audit_trail_for_auditors() {
    let mut app = spawn_app().await;
    let [a, _, _] = three_customers(&mut app).await;
    let mut rm = app.client_for("rm-a", &["customer.read"], DataScope::Own, "/HO/BJ/BJ01/");
    rm.get_customer360(pb::GetCustomer360Request { customer_number: a.clone() }).await.unwrap();

    let denied = rm.list_access_audit(pb::ListAccessAuditRequest::default()).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut auditor = app.client_for("auditor-1", &["customer.audit.read"], DataScope::All, "/HO/");
    let trail = auditor
        .list_access_audit(pb::ListAccessAuditRequest { customer_number: a.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<(&str, &str)> = trail.iter().map(|e| (e.actor.as_str(), e.action.as_str())).collect();
    assert_eq!(
        actions,
        vec![
            ("rm-a", "customer.view_360"),
            ("operator-1", "customer.assign"),
            ("operator-1", "customer.upsert_source_record"),
        ],
        "newest first"
    );
    let view = &trail[0];
    assert!(view.source_address.starts_with("127.0.0.1:"), "{view:?}");
    assert_eq!(view.trace_id.len(), 32);
    assert!(view.occurred_at.is_some());

    // Filters combine: action, actor, customer and time.
    let list = |request: pb::ListAccessAuditRequest| {
        let mut auditor = auditor.clone();
        async move { auditor.list_access_audit(request).await.map(|r| r.into_inner().entries) }
    };
    let views = list(pb::ListAccessAuditRequest { action: "customer.view_360".into(), ..Default::default() });
    let views = views.await.unwrap();
    assert!(!views.is_empty() && views.iter().all(|e| e.action == "customer.view_360" && e.actor == "rm-a"));
    let by_operator = list(pb::ListAccessAuditRequest {
        customer_number: a.clone(),
        actor: "operator-1".into(),
        ..Default::default()
    });
    assert_eq!(by_operator.await.unwrap().len(), 2);
    let viewed_at = view.occurred_at.unwrap();
    let before_view = list(pb::ListAccessAuditRequest {
        customer_number: a.clone(),
        occurred_before: Some(viewed_at),
        ..Default::default()
    });
    assert!(before_view.await.unwrap().iter().all(|e| e.action != "customer.view_360"));
    let from_view = list(pb::ListAccessAuditRequest {
        customer_number: a.clone(),
        occurred_from: Some(viewed_at),
        ..Default::default()
    });
    assert_eq!(from_view.await.unwrap()[0].action, "customer.view_360");
    let malformed = prost_types::Timestamp { seconds: 1, nanos: 2_000_000_000 };
    let refused = list(pb::ListAccessAuditRequest { occurred_before: Some(malformed), ..Default::default() });
    assert_eq!(refused.await.unwrap_err().code(), Code::InvalidArgument);
    app.stop().await;
}

#[tokio::test]
async fn the_callers_subject_is_the_actor_of_history() {
    let mut app = spawn_app().await;
    let [a, _, _] = three_customers(&mut app).await;
    let history = app
        .client
        .list_customer_history(pb::ListCustomerHistoryRequest { customer_number: a, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(history.changes.iter().all(|c| c.actor == "operator-1"), "{:?}", history.changes);
    // And the events announcing the changes carry the caller as their actor.
    let mut source = app.client_for("core-banking", &["customer.write"], DataScope::All, "/HO/");
    source
        .upsert_source_record(pb::UpsertSourceRecordRequest {
            record: Some(person("LOANS", "L-1", &resident_id(7), "丁客户")),
        })
        .await
        .unwrap();
    let mut created = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while created.len() < 4 && std::time::Instant::now() < deadline {
        let batch = app.events.take(1).await;
        created.extend(batch.into_iter().filter(|e| e.event_type == "crm.customer.v1.CustomerCreated"));
    }
    let mut actors: Vec<_> = created.iter().map(|e| e.actor.clone().unwrap_or_default()).collect();
    actors.sort();
    assert_eq!(actors, vec!["core-banking", "operator-1", "operator-1", "operator-1"]);
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_principals_earlier_tokens_are_refused() {
    let mut app = spawn_app().await;
    let [a, _, _] = three_customers(&mut app).await;
    let mut claims = app.tokens.claims("rm-a", &["customer.read"], DataScope::Own, "/HO/BJ/BJ01/");
    claims.iat -= 60;
    let mut rm = app.client_as(&app.tokens.sign(&claims));
    assert_eq!(get_code(&mut rm, &a).await, None);
    let revoked = idpb::PrincipalRevoked {
        subject: "rm-a".into(),
        not_before: Some(prost_types::Timestamp {
            seconds: time::OffsetDateTime::now_utc().unix_timestamp() - 30,
            nanos: 0,
        }),
        reason: "user disabled".into(),
    };
    let app_ref = &app;
    let refused = crm_platform::testing::eventually(Duration::from_secs(10), || {
        let mut rm = rm.clone();
        let a = a.clone();
        let revoked = revoked.clone();
        async move {
            publish(app_ref, "rm-a", &revoked).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            get_code(&mut rm, &a).await == Some(Code::Unauthenticated)
        }
    })
    .await;
    assert!(refused, "the token issued before the revocation is refused");
    let mut fresh = app.client_for("rm-a", &["customer.read"], DataScope::Own, "/HO/BJ/BJ01/");
    assert_eq!(get_code(&mut fresh, &a).await, None, "a token issued after it is accepted");
    app.stop().await;
}
