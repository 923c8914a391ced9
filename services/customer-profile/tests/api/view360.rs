use crm_proto::crm::customer::v1 as pb;
use tonic::Code;

use crate::helpers::{ID18, person, spawn_app, spawn_app_with};

fn company(system: &str, id: &str, uscc: &str, name: &str) -> pb::SourceRecord {
    let mut r = person(system, id, uscc, name);
    r.party_kind = pb::PartyKind::Corporate as i32;
    r.id_type = pb::IdType::UnifiedSocialCreditCode as i32;
    r
}

#[tokio::test]
async fn the_360_view_shows_golden_record_sources_assignment_relationships_and_history() {
    let mut app = spawn_app().await;
    let mut core = person("CORE", "C-1", ID18, "张伟");
    core.mobile_phone = "13800001111".into();
    let zhang = app.upsert(core).await.unwrap();
    app.upsert(person("LOANS", "L-1", "110105491231002", "张伟")).await.unwrap();
    app.upsert(person("CARDS", "K-1", ID18, "张玮")).await.unwrap(); // a suspect
    let acme = app.upsert(company("CORP", "G-1", "91110000600037341L", "某科技有限公司")).await.unwrap();
    let parent = app.upsert(company("CORP", "G-2", "91110000600037342J", "某集团有限公司")).await.unwrap();
    app.client
        .assign_customers(pb::AssignCustomersRequest {
            customer_numbers: vec![zhang.customer_number.clone()],
            home_org_id: "BR-BJ-01".into(),
            primary_rm_id: "rm-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for (who, kind, whom, role) in [
        (&zhang.customer_number, pb::RelationshipKind::ExecutiveOf, &acme.customer_number, "legal_representative"),
        (&acme.customer_number, pb::RelationshipKind::SubsidiaryOf, &parent.customer_number, ""),
    ] {
        let request = pb::AddRelationshipRequest {
            customer_number: who.clone(),
            kind: kind as i32,
            related_customer_number: whom.clone(),
            role: role.into(),
        };
        app.client.add_relationship(request.clone()).await.unwrap();
        app.client.add_relationship(request).await.unwrap(); // idempotent
    }

    let view = app
        .client
        .get_customer360(pb::GetCustomer360Request { customer_number: zhang.customer_number.clone() })
        .await
        .unwrap()
        .into_inner();
    let c = view.customer.unwrap();
    assert_eq!(
        (c.name.as_str(), c.id_number.as_str(), c.mobile_phone.as_str()),
        ("张伟", "110105********002X", "138****1111")
    );
    assert_eq!(c.source_keys.len(), 2);
    assert!(!c.lineage.is_empty());
    let a = view.assignment.unwrap();
    assert_eq!((a.home_org_id.as_str(), a.primary_rm_id.as_str()), ("BR-BJ-01", "rm-1"));
    assert_eq!(view.relationships.len(), 1);
    let r = &view.relationships[0];
    assert_eq!(
        (r.kind, r.related_customer_number.as_str(), r.role.as_str(), r.inverse),
        (pb::RelationshipKind::ExecutiveOf as i32, acme.customer_number.as_str(), "LEGAL_REPRESENTATIVE", false)
    );
    assert_eq!(view.open_suspect_pairs, 1);
    let kinds: Vec<&str> = view.recent_changes.iter().map(|h| h.change_kind.as_str()).collect();
    assert_eq!(kinds, ["CREATED"], "joining a record that changes no golden value is not a change");
    assert!(view.recent_changes[0].changed_attributes.contains(&"name".to_string()));

    // The company sees both sides.
    let acme_view = app
        .client
        .get_customer360(pb::GetCustomer360Request { customer_number: acme.customer_number.clone() })
        .await
        .unwrap()
        .into_inner();
    let inverse: Vec<bool> = acme_view.relationships.iter().map(|r| r.inverse).collect();
    assert_eq!(acme_view.relationships.len(), 2);
    assert!(inverse.contains(&true) && inverse.contains(&false));
    app.stop().await;
}

#[tokio::test]
async fn history_is_queryable_and_relationships_follow_a_merge() {
    let mut app = spawn_app().await;
    let a = app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();
    let b = app.upsert(person("CARDS", "K-1", ID18, "张玮")).await.unwrap();
    let firm = app.upsert(company("CORP", "G-1", "91110000600037341L", "某科技有限公司")).await.unwrap();
    app.client
        .add_relationship(pb::AddRelationshipRequest {
            customer_number: b.customer_number.clone(),
            kind: pb::RelationshipKind::ExecutiveOf as i32,
            related_customer_number: firm.customer_number.clone(),
            role: "CFO".into(),
        })
        .await
        .unwrap();
    let mut fixed = person("CARDS", "K-1", ID18, "张伟");
    fixed.source_version = 2;
    app.upsert(fixed).await.unwrap(); // b is absorbed into a

    let view = app
        .client
        .get_customer360(pb::GetCustomer360Request { customer_number: a.customer_number.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(view.relationships.len(), 1, "the absorbed customer's relationship moved");
    assert_eq!(view.relationships[0].role, "CFO");

    let history = app
        .client
        .list_customer_history(pb::ListCustomerHistoryRequest {
            customer_number: a.customer_number.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.changes.len(), 1);
    assert!(!history.next_page_token.is_empty());
    let rest = app
        .client
        .list_customer_history(pb::ListCustomerHistoryRequest {
            customer_number: a.customer_number.clone(),
            page_size: 50,
            page_token: history.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    let mut kinds: Vec<String> = history.changes.into_iter().chain(rest.changes).map(|c| c.change_kind).collect();
    kinds.sort();
    assert!(kinds.contains(&"MERGED".to_string()) && kinds.contains(&"CREATED".to_string()), "{kinds:?}");

    let bad = app
        .client
        .add_relationship(pb::AddRelationshipRequest {
            customer_number: a.customer_number.clone(),
            kind: pb::RelationshipKind::Unspecified as i32,
            related_customer_number: "1".into(),
            role: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let same = app
        .client
        .add_relationship(pb::AddRelationshipRequest {
            customer_number: a.customer_number.clone(),
            kind: pb::RelationshipKind::FamilyMemberOf as i32,
            related_customer_number: b.customer_number.clone(),
            role: "SPOUSE".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(same.code(), Code::FailedPrecondition, "b is now the same customer as a");
    app.stop().await;
}

#[tokio::test]
async fn an_absorbed_number_answers_with_its_survivor_in_every_read_and_change() {
    let mut app = spawn_app().await;
    let a = app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();
    let b = app.upsert(person("CARDS", "K-1", ID18, "张玮")).await.unwrap();
    let mut fixed = person("CARDS", "K-1", ID18, "张伟");
    fixed.source_version = 2;
    app.upsert(fixed).await.unwrap(); // b is absorbed into a

    let view = app
        .client
        .get_customer360(pb::GetCustomer360Request { customer_number: b.customer_number.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(view.customer.unwrap().customer_number, a.customer_number, "the 360 view");

    let by_source = app
        .client
        .get_customer(pb::GetCustomerRequest {
            lookup: Some(pb::get_customer_request::Lookup::SourceKey(pb::SourceKey {
                source_system: "CARDS".into(),
                source_customer_id: "K-1".into(),
            })),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_source.customer.unwrap().customer_number, a.customer_number, "a source record's customer");

    let assigned = app
        .client
        .assign_customers(pb::AssignCustomersRequest {
            customer_numbers: vec![b.customer_number.clone()],
            home_org_id: "BR-SH-01".into(),
            primary_rm_id: "rm-7".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .assignments;
    assert_eq!(assigned[0].customer_number, a.customer_number, "an assignment");

    let unknown = app
        .client
        .get_customer360(pb::GetCustomer360Request { customer_number: "800000000000".into() })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn without_analytics_configured_the_view_says_so_and_answers() {
    let mut app = spawn_app().await;
    let zhang = app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();
    let view = app
        .client
        .get_customer360(pb::GetCustomer360Request { customer_number: zhang.customer_number })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(view.value_card_status, pb::ValueCardStatus::NotConfigured as i32);
    assert!(view.value_card.is_none());
    app.stop().await;
}

#[tokio::test]
async fn with_analytics_down_the_view_answers_within_the_deadline_and_marks_the_value_card_unavailable() {
    // A port nothing listens on: analytics is down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{closed}");
    let mut app =
        spawn_app_with(&[("customer.analytics.endpoint", &endpoint), ("customer.analytics.timeout_ms", "200")]).await;
    let zhang = app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();
    let started = std::time::Instant::now();
    let view = app
        .client
        .get_customer360(pb::GetCustomer360Request { customer_number: zhang.customer_number })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(view.value_card_status, pb::ValueCardStatus::Unavailable as i32);
    assert_eq!(view.customer.unwrap().name, "张伟", "the rest of the view is there");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "bounded by the deadline: {:?}", started.elapsed());
    app.stop().await;
}
