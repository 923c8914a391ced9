//! Maintained details of a customer: contacts, addresses, family, assets and
//! liabilities, major events, key persons, extended attributes.

use std::collections::HashMap;

use crm_platform::auth::DataScope;
use crm_proto::crm::common::v1 as common;
use crm_proto::crm::customer::v1 as pb;
use customer_profile::domain::id::resident_id_check_char;
use pb::party_detail::Detail;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{Events, ID18, TestApp, person, spawn_app};

fn put(number: &str, id: &str, detail: Detail) -> pb::PutPartyDetailRequest {
    pb::PutPartyDetailRequest {
        customer_number: number.into(),
        detail: Some(pb::PartyDetail { detail_id: id.into(), detail: Some(detail), update_time: None }),
    }
}

fn mobile(value: &str) -> Detail {
    Detail::Contact(pb::Contact {
        kind: pb::ContactKind::MobilePhone as i32,
        value: value.into(),
        purpose: "HOME".into(),
        primary: true,
    })
}

fn cny(amount_minor: i64) -> Option<common::Money> {
    Some(common::Money { amount_minor, currency_code: "CNY".into() })
}

fn other_id() -> String {
    format!("11010519800101123{}", resident_id_check_char("11010519800101123").unwrap())
}

async fn view(app: &mut TestApp, number: &str) -> pb::GetCustomer360Response {
    app.client.get_customer360(pb::GetCustomer360Request { customer_number: number.into() }).await.unwrap().into_inner()
}

#[tokio::test]
async fn details_are_kept_shown_in_the_360_view_and_replays_change_nothing() {
    let mut app = spawn_app().await;
    let number = app.upsert(person("CORE", "P-1", ID18, "王伟")).await.unwrap().customer_number;
    let requests = [
        put(&number, "home-mobile", mobile("138 0013 8000")),
        put(
            &number,
            "home",
            Detail::Address(pb::Address {
                kind: pb::AddressKind::Residential as i32,
                country_code: "CHN".into(),
                city: "北京".into(),
                line: "朝阳区建国路 1 号".into(),
                postal_code: "100022".into(),
                ..Default::default()
            }),
        ),
        put(
            &number,
            "son",
            Detail::FamilyMember(pb::FamilyMember {
                name: "王小明".into(),
                relation: "CHILD".into(),
                id_type: pb::IdType::ResidentId as i32,
                id_number: other_id(),
                mobile_phone: "13900001111".into(),
                ..Default::default()
            }),
        ),
        put(
            &number,
            "flat",
            Detail::FamilyAsset(pb::FamilyAsset {
                kind: pb::AssetKind::Property as i32,
                description: "flat".into(),
                value: cny(300_000_000),
            }),
        ),
        put(
            &number,
            "mortgage",
            Detail::FamilyAsset(pb::FamilyAsset {
                kind: pb::AssetKind::Mortgage as i32,
                description: String::new(),
                value: cny(-120_000_000),
            }),
        ),
        put(
            &number,
            "wedding",
            Detail::MajorEvent(pb::MajorEvent {
                date: Some(common::Date { year: 2024, month: 10, day: 1 }),
                kind: "MARRIAGE".into(),
                description: String::new(),
            }),
        ),
    ];
    for request in &requests {
        let r = app.client.put_party_detail(request.clone()).await.unwrap().into_inner();
        assert!(r.changed);
    }
    let replay = app.client.put_party_detail(requests[0].clone()).await.unwrap().into_inner();
    assert!(!replay.changed, "the same detail again changes nothing");
    assert_eq!(replay.detail.unwrap().detail, Some(mobile("138****8000")), "phone masked, normalised");

    let mut set = HashMap::new();
    set.insert("wealth.risk_profile".to_string(), "C3".to_string());
    set.insert("rm.note".to_string(), "prefers morning calls".to_string());
    app.client
        .set_extended_attributes(pb::SetExtendedAttributesRequest {
            customer_number: number.clone(),
            set,
            remove: vec![],
        })
        .await
        .unwrap();
    let after = app
        .client
        .set_extended_attributes(pb::SetExtendedAttributesRequest {
            customer_number: number.clone(),
            set: HashMap::new(),
            remove: vec!["rm.note".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.attributes.len(), 1);

    let v = view(&mut app, &number).await;
    let ids: Vec<&str> = v.details.iter().map(|d| d.detail_id.as_str()).collect();
    assert_eq!(ids, vec!["home", "home-mobile", "flat", "mortgage", "son", "wedding"], "by kind then id");
    assert!(v.details.iter().all(|d| d.update_time.is_some()));
    let son = v.details.iter().find(|d| d.detail_id == "son").unwrap();
    let Some(Detail::FamilyMember(son)) = &son.detail else { panic!("family member") };
    assert_eq!(son.id_number, format!("110105********{}", &other_id()[14..]));
    assert_eq!(son.mobile_phone, "139****1111");
    assert_eq!(v.asset_totals.len(), 1);
    let t = &v.asset_totals[0];
    assert_eq!((t.assets_minor, t.liabilities_minor, t.net_minor), (300_000_000, -120_000_000, 180_000_000));
    assert_eq!(v.extended_attributes.get("wealth.risk_profile").map(String::as_str), Some("C3"));

    // Removal, then a second removal that finds nothing.
    let removed = app
        .client
        .remove_party_detail(pb::RemovePartyDetailRequest {
            customer_number: number.clone(),
            detail_id: "wedding".into(),
        })
        .await
        .unwrap();
    assert!(removed.into_inner().removed);
    let again = app
        .client
        .remove_party_detail(pb::RemovePartyDetailRequest {
            customer_number: number.clone(),
            detail_id: "wedding".into(),
        })
        .await
        .unwrap();
    assert!(!again.into_inner().removed);

    // Full values for a caller with customer.pii.read.
    let mut steward = app.client_for("steward", &["customer.read", "customer.pii.read"], DataScope::All, "/HO/");
    let full = steward
        .get_customer360(pb::GetCustomer360Request { customer_number: number.clone() })
        .await
        .unwrap()
        .into_inner();
    let mobile_detail = full.details.iter().find(|d| d.detail_id == "home-mobile").unwrap();
    assert_eq!(mobile_detail.detail, Some(mobile("13800138000")));
    app.stop().await;
}

#[tokio::test]
async fn bad_details_are_refused_with_field_violations_and_nothing_is_stored() {
    let mut app = spawn_app().await;
    let number = app.upsert(person("CORE", "P-1", ID18, "王伟")).await.unwrap().customer_number;
    let bad = app.client.put_party_detail(put(&number, "m", mobile("12345"))).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        bad.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, vec!["detail.contact.value"]);
    let key_person =
        Detail::KeyPerson(pb::KeyPerson { role: "CHAIRMAN".into(), name: "李总".into(), ..Default::default() });
    let misfit = app.client.put_party_detail(put(&number, "chair", key_person)).await.unwrap_err();
    assert_eq!(misfit.code(), Code::InvalidArgument, "a key person does not fit a personal customer");
    let absent = customer_profile::domain::customer_number(customer_profile::domain::PartyKind::Personal, 999).unwrap();
    let unknown = app.client.put_party_detail(put(&absent, "m", mobile("13800138000"))).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(app.count("SELECT count(*) FROM party_detail").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_detail_change_is_in_history_and_announced_as_customer_updated() {
    let mut app = spawn_app().await;
    let number = app.upsert(person("CORE", "P-1", ID18, "王伟")).await.unwrap().customer_number;
    app.events.take(1).await; // CustomerCreated
    app.client.put_party_detail(put(&number, "home-mobile", mobile("13800138000"))).await.unwrap();
    let events = app.events.take(1).await;
    let updated = Events::of::<pb::CustomerUpdated>(&events);
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].changed_attributes, vec!["detail:home-mobile"]);
    let history = app
        .client
        .list_customer_history(pb::ListCustomerHistoryRequest { customer_number: number, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.changes[0].change_kind, "DETAIL_PUT");
    assert_eq!(history.changes[0].actor, "operator-1");
    app.stop().await;
}

#[tokio::test]
async fn details_follow_the_survivor_of_a_merge() {
    let mut app = spawn_app().await;
    let a = app.upsert(person("CORE", "P-1", ID18, "王伟")).await.unwrap().customer_number;
    let b = app.upsert(person("CARDS", "K-9", &other_id(), "王伟")).await.unwrap().customer_number;
    assert_ne!(a, b);
    app.client.put_party_detail(put(&a, "home-mobile", mobile("13800138000"))).await.unwrap();
    app.client.put_party_detail(put(&b, "home-mobile", mobile("13900139000"))).await.unwrap();
    app.client.put_party_detail(put(&b, "work-mobile", mobile("13700137000"))).await.unwrap();
    // CARDS corrects its ID number: now the same person as A, so B is absorbed.
    let mut corrected = person("CARDS", "K-9", ID18, "王伟");
    corrected.source_version = 2;
    let merged = app.upsert(corrected).await.unwrap();
    assert_eq!(merged.customer_number, a);
    let v = view(&mut app, &b).await;
    assert_eq!(v.customer.unwrap().customer_number, a);
    let mut ids: Vec<String> = v.details.iter().map(|d| d.detail_id.clone()).collect();
    ids.sort();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.contains(&"home-mobile".to_string()) && ids.contains(&"work-mobile".to_string()));
    assert!(
        ids.iter().any(|id| id.starts_with("home-mobile~")),
        "the absorbed customer's clashing detail is kept aside: {ids:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_rm_maintains_details_only_of_own_customers() {
    let mut app = spawn_app().await;
    let number = app.upsert(person("CORE", "P-1", ID18, "王伟")).await.unwrap().customer_number;
    let mut rm = app.client_for("rm-x", &["customer.read", "customer.details.write"], DataScope::Own, "/HO/BJ/");
    let denied = rm.put_party_detail(put(&number, "m", mobile("13800138000"))).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "not the RM's customer");
    app.client
        .assign_customers(pb::AssignCustomersRequest {
            customer_numbers: vec![number.clone()],
            primary_rm_id: "rm-x".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    rm.put_party_detail(put(&number, "m", mobile("13800138000"))).await.expect("own customer");
    let mut reader = app.client_for("reader", &["customer.read"], DataScope::All, "/HO/");
    let denied = reader.put_party_detail(put(&number, "m", mobile("13800138000"))).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "needs customer.details.write");
    app.stop().await;
}
