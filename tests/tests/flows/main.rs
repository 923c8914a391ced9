//! Flows across identity and customer-profile (docs/auth.md): tokens issued by identity
//! verified by customer-profile with keys fetched over gRPC, data scopes following
//! identity's org tree through OrgChanged events, revocations through PrincipalRevoked.

#![allow(clippy::unwrap_used)] // tests fail loudly

use std::time::Duration;

use crm_platform::testing::eventually;
use crm_proto::crm::customer::v1 as cpb;
use crm_proto::crm::identity::v1 as ipb;
use crm_system_tests::{ADMIN_PASSWORD, Admin, Customers, TestPlatform};
use customer_profile::domain::id::resident_id_check_char;
use tonic::Code;

const PASSWORD: &str = "Teller-Window-42";

fn person(id: &str, id_number: &str, name: &str, phone: &str) -> cpb::SourceRecord {
    cpb::SourceRecord {
        key: Some(cpb::SourceKey { source_system: "CORE".into(), source_customer_id: id.into() }),
        source_version: 1,
        party_kind: cpb::PartyKind::Personal as i32,
        id_type: cpb::IdType::ResidentId as i32,
        id_number: id_number.into(),
        name: name.into(),
        nationality: "CHN".into(),
        mobile_phone: phone.into(),
        ..Default::default()
    }
}

async fn names_visible(client: &mut Customers) -> Result<Vec<String>, Code> {
    let found = client
        .search_customers(cpb::SearchCustomersRequest { name_contains: "客户".into(), ..Default::default() })
        .await
        .map_err(|s| s.code())?;
    Ok(found.into_inner().customers.into_iter().map(|c| c.name).collect())
}

async fn user(admin: &mut Admin, login: &str, org: &str, role: &str) -> String {
    admin
        .create_user(ipb::CreateUserRequest {
            login: login.into(),
            display_name: login.into(),
            org_id: org.into(),
            role_codes: vec![role.into()],
            password: PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap()
        .user_id
}

/// The bank's day: a source system loads customers with its service account, the
/// head office assigns them, RMs and supervisors see what their data scope allows,
/// the org tree changes in identity and customer-profile follows, a disabled RM is
/// shut out everywhere.
#[tokio::test]
async fn identity_tokens_scopes_org_moves_and_revocations_govern_customer_profile() {
    let platform = TestPlatform::start().await.unwrap();
    let mut admin = platform.admin(&platform.login("admin", ADMIN_PASSWORD).await.unwrap());
    for (org, parent) in [("BJ", "HO"), ("BJ01", "BJ"), ("SH", "HO")] {
        admin
            .create_org(ipb::CreateOrgRequest { org_id: org.into(), name: org.into(), parent_org_id: parent.into() })
            .await
            .unwrap();
    }
    let rm = user(&mut admin, "rm.wang", "BJ01", "RM").await;
    user(&mut admin, "sup.li", "BJ", "RM_SUPERVISOR").await;
    user(&mut admin, "steward.zhao", "HO", "DATA_STEWARD").await;

    // A source system with its own service account loads two customers.
    let account = admin
        .create_service_account(ipb::CreateServiceAccountRequest {
            client_id: "core-banking".into(),
            display_name: "Core banking".into(),
            org_id: "HO".into(),
            role_codes: vec!["SOURCE_SYSTEM".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let mut auth = ipb::auth_service_client::AuthServiceClient::new(platform.identity.clone());
    let core_token = auth
        .authenticate_client(ipb::AuthenticateClientRequest {
            client_id: account.client_id,
            client_secret: account.client_secret,
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap()
        .access_token;
    let mut core = platform.customers(&core_token);
    let mut numbers = Vec::new();
    let second_id = format!("{}{}", "11010519800101123", resident_id_check_char("11010519800101123").unwrap());
    for (id, id_number, name, phone) in
        [("C-1", "11010519491231002X", "王客户", "13800000001"), ("C-2", second_id.as_str(), "李客户", "13800000002")]
    {
        let r = core
            .upsert_source_record(cpb::UpsertSourceRecordRequest { record: Some(person(id, id_number, name, phone)) })
            .await;
        numbers.push(r.unwrap().into_inner().customer_number);
    }
    let history = core
        .list_customer_history(cpb::ListCustomerHistoryRequest {
            customer_number: numbers[0].clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.changes[0].actor, "core-banking", "the service account is the actor of the load");

    // Head office (the bootstrap admin, scope all) assigns them.
    let mut ho = platform.customers(&platform.login("admin", ADMIN_PASSWORD).await.unwrap());
    for (number, org, rm_id) in [(&numbers[0], "BJ01", rm.as_str()), (&numbers[1], "SH", "")] {
        ho.assign_customers(cpb::AssignCustomersRequest {
            customer_numbers: vec![number.clone()],
            home_org_id: org.into(),
            primary_rm_id: rm_id.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }

    let mut rm_client = platform.customers(&platform.login("rm.wang", PASSWORD).await.unwrap());
    let supervisor = platform.customers(&platform.login("sup.li", PASSWORD).await.unwrap());
    let mut steward = platform.customers(&platform.login("steward.zhao", PASSWORD).await.unwrap());
    assert_eq!(names_visible(&mut rm_client).await.unwrap(), vec!["王客户"]);
    assert_eq!(names_visible(&mut steward).await.unwrap(), vec!["王客户", "李客户"]);
    // The supervisor of BJ sees BJ01's customer once customer-profile's org directory
    // has BJ01 (from identity's OrgChanged events).
    let mut probe = 0;
    let sees_subtree = eventually(Duration::from_secs(15), || {
        probe += 1;
        let (mut admin, mut supervisor) = (admin.clone(), supervisor.clone());
        async move {
            // Announce BJ01 again in case customer-profile's queue was not bound yet
            // when it was created.
            let name = format!("Outlet 01 ({probe})");
            admin
                .update_org(ipb::UpdateOrgRequest { org_id: "BJ01".into(), name, ..Default::default() })
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            names_visible(&mut supervisor).await == Ok(vec!["王客户".to_string()])
        }
    })
    .await;
    assert!(sees_subtree, "the BJ supervisor sees the customer of BJ01");

    // PII: masked for the RM, in full for the data steward.
    let view = |client: &mut Customers| {
        let mut client = client.clone();
        let number = numbers[0].clone();
        async move {
            client
                .get_customer360(cpb::GetCustomer360Request { customer_number: number })
                .await
                .unwrap()
                .into_inner()
                .customer
                .unwrap()
        }
    };
    assert_eq!(view(&mut rm_client).await.mobile_phone, "138****0001");
    assert_eq!(view(&mut steward).await.mobile_phone, "13800000001");
    let denied = rm_client
        .get_customer(cpb::GetCustomerRequest {
            lookup: Some(cpb::get_customer_request::Lookup::CustomerNumber(numbers[1].clone())),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // BJ01 moves under SH: the BJ supervisor loses its customer.
    admin
        .update_org(ipb::UpdateOrgRequest { org_id: "BJ01".into(), parent_org_id: "SH".into(), ..Default::default() })
        .await
        .unwrap();
    let moved = eventually(Duration::from_secs(15), || {
        let mut supervisor = supervisor.clone();
        async move { names_visible(&mut supervisor).await == Ok(vec![]) }
    })
    .await;
    assert!(moved, "after the move the BJ supervisor sees nothing");

    // The RM is disabled in identity: customer-profile refuses the RM's token.
    tokio::time::sleep(Duration::from_millis(1_100)).await; // the token's iat lies before the revocation
    admin.disable_user(ipb::DisableUserRequest { user_id: rm, reason: "left the bank".into() }).await.unwrap();
    let shut_out = eventually(Duration::from_secs(15), || {
        let mut rm_client = rm_client.clone();
        async move { names_visible(&mut rm_client).await == Err(Code::Unauthenticated) }
    })
    .await;
    assert!(shut_out, "the disabled RM's token is refused by customer-profile");

    // Auditors find the steward's full view in customer-profile's trail.
    let mut auditor = platform.customers(&platform.login("admin", ADMIN_PASSWORD).await.unwrap());
    let trail = auditor
        .list_access_audit(cpb::ListAccessAuditRequest { customer_number: numbers[0].clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(trail.iter().any(|e| e.action == "customer.view_360" && e.actor_name == "steward.zhao"), "{trail:?}");
    platform.stop().await;
}

/// customer-profile identifies customers; analytics learns them from its events, values
/// the balances core banking sends under the customers' source keys, and levels them;
/// the 360° view shows the value card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_levels_customers_from_facts_named_by_source_key_and_the_360_view_shows_the_value_card() {
    use crm_proto::crm::analytics::v1 as apb;
    use crm_proto::crm::common::v1 as common;

    let platform = TestPlatform::start().await.unwrap();
    let token = platform.login("admin", ADMIN_PASSWORD).await.unwrap();
    let id_number = format!("{}{}", "11010519800101123", resident_id_check_char("11010519800101123").unwrap());
    let number = platform
        .customers(&token)
        .upsert_source_record(cpb::UpsertSourceRecordRequest {
            record: Some(person("F-1", &id_number, "客户甲", "13800138000")),
        })
        .await
        .unwrap()
        .into_inner()
        .customer_number;

    let mut analytics = platform.analytics(&token);
    let product = apb::Product {
        product_code: "TD-1Y".into(),
        name: "一年定期".into(),
        asset_class: apb::AssetClass::Deposit as i32,
        risk_level: 1,
        aum_weight_bp: 10_000,
        family: String::new(),
    };
    analytics.upsert_products(apb::UpsertProductsRequest { products: vec![product] }).await.unwrap();
    let tag = apb::Tag {
        code: "gold_or_better".into(),
        name: "金卡及以上".into(),
        kind: apb::TagKind::Rule as i32,
        rule: "level >= 'gold'".into(),
        version: 0,
    };
    analytics.define_tag(apb::DefineTagRequest { tag: Some(tag) }).await.unwrap();
    let snapshot = apb::BalanceSnapshot {
        account_id: "6222-0001".into(),
        customer: Some(apb::CustomerRef {
            customer: Some(apb::customer_ref::Customer::SourceKey(cpb::SourceKey {
                source_system: "CORE".into(),
                source_customer_id: "F-1".into(),
            })),
        }),
        product_code: "TD-1Y".into(),
        balance: Some(common::Money { amount_minor: 80_000 * 100, currency_code: "CNY".into() }),
        balance_date: Some(common::Date { year: 2026, month: 11, day: 30 }),
    };
    let stream = futures::stream::iter(vec![apb::LoadBalancesRequest { snapshot: Some(snapshot) }]);
    let loaded = analytics.load_balances(stream).await.unwrap().into_inner().report.unwrap();
    assert_eq!(loaded.accepted_count, 1);

    // Whether the balance arrived before or after analytics learnt the customer, it
    // counts for it.
    let levelled = eventually(Duration::from_secs(30), || {
        let mut analytics = analytics.clone();
        let number = number.clone();
        async move {
            analytics
                .get_customer_value(apb::GetCustomerValueRequest { customer_number: number })
                .await
                .is_ok_and(|v| v.into_inner().level_code == "gold")
        }
    })
    .await;
    assert!(levelled, "the customer is levelled gold from its balance");
    let history = analytics
        .list_level_history(apb::ListLevelHistoryRequest { customer_number: number.clone() })
        .await
        .unwrap()
        .into_inner()
        .changes;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].to_level, "gold");
    // The level change is announced on the exchange.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut announced = None;
    while announced.is_none() && tokio::time::Instant::now() < deadline {
        for event in platform.events.take(1, Duration::from_secs(1)).await {
            let change = event.decode::<apb::LevelChanged>().and_then(|e| e.change);
            announced = announced.or(change.filter(|c| c.customer_number == number));
        }
    }
    let announced = announced.expect("LevelChanged for the customer was published");
    assert_eq!(announced.to_level, "gold");

    // The 360° view shows the value card from analytics.
    let view = platform
        .customers(&token)
        .get_customer360(cpb::GetCustomer360Request { customer_number: number.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(view.value_card_status, cpb::ValueCardStatus::Shown as i32);
    let card = view.value_card.unwrap();
    assert_eq!((card.level_code.as_str(), card.level_name.as_str()), ("gold", "金"));
    assert_eq!(card.weighted_aum_minor, 80_000 * 100);
    let deposit = card.aum.iter().find(|c| c.asset_class == "deposit").unwrap();
    assert_eq!(deposit.point_in_time_minor, 80_000 * 100);
    assert_eq!(card.tags, ["gold_or_better"], "the card carries the customer's tags");
    assert_eq!(card.rfm_code, 0, "no transaction, no RFM");
    platform.stop().await;
}
