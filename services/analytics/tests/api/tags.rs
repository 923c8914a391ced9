//! Tags: a rule tag follows the customer's balances and transactions as they arrive, a
//! bad rule is refused with its position, ExplainTag says why (not), staff set and
//! remove manual tags.

use crm_proto::crm::analytics::v1 as pb;
use crm_proto::crm::common::v1 as common;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{by_number, cny, day, spawn_app};

/// A transaction of `yuan` posted on 2026-03-05 (UTC noon).
fn transaction(id: &str, number: &str, yuan: i64) -> pb::Transaction {
    pb::Transaction {
        transaction_id: id.into(),
        customer: by_number(number),
        account_id: "A1".into(),
        product_code: "DEP".into(),
        amount: Some(common::Money { amount_minor: yuan * 100, currency_code: "CNY".into() }),
        channel: pb::Channel::Mobile as i32,
        posted_time: Some(prost_types::Timestamp { seconds: 1_772_712_000, nanos: 0 }),
        region_code: "110105".into(),
    }
}

#[tokio::test]
async fn a_rule_tag_appears_when_a_balance_crosses_its_threshold_and_goes_when_it_falls_back() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    let number = "100000000101";
    app.customer_created(number, ("CORE", "T1")).await;
    let tag = app.define_tag("rich", "aum.total>=5000000").await;
    assert_eq!((tag.version, tag.rule.as_str()), (1, "aum.total >= 5000000"), "stored in canonical form");

    app.load(vec![cny("A1", by_number(number), "DEP", 10_000, day(2026, 3, 1))]).await;
    assert!(app.tags_of(number).await.is_empty(), "10,000 yuan is below the threshold");
    app.load(vec![cny("A1", by_number(number), "DEP", 60_000, day(2026, 3, 2))]).await;
    assert_eq!(app.tags_of(number).await, [("rich".to_string(), pb::TagKind::Rule)]);
    app.load(vec![cny("A1", by_number(number), "DEP", 20_000, day(2026, 3, 3))]).await;
    assert!(app.tags_of(number).await.is_empty(), "the tag goes when the balance falls back");

    let redefined = app.define_tag("rich", "aum.total >= 1000000").await;
    assert_eq!(redefined.version, 2);
    assert_eq!(app.tags_of(number).await, [("rich".to_string(), pb::TagKind::Rule)], "a redefinition re-evaluates");
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM crm_kit.audit_entry WHERE action = 'tag.defined'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(audited, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_bad_rule_is_refused_with_its_column_and_changes_nothing() {
    let mut app = spawn_app().await;
    let cases = [
        ("aum.total >= 1 and aum.wealth > 5", "column 20: unknown attribute 'aum.wealth'"),
        ("aum.total >= ", "column 14: expected a value after '>='"),
        ("level >= 3", "column 1: 'level' is a level; it cannot be compared with the number 3"),
        ("aum.total > 1 or tag('vip')", "column 18: a tag rule cannot read tags"),
    ];
    for (rule, problem) in cases {
        let tag = pb::Tag {
            code: "bad".into(),
            name: "坏".into(),
            kind: pb::TagKind::Rule as i32,
            rule: rule.into(),
            version: 0,
        };
        let refused = app.client.define_tag(pb::DefineTagRequest { tag: Some(tag) }).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{rule}");
        let violations = refused.get_error_details().bad_request().unwrap().field_violations.clone();
        assert_eq!(violations.len(), 1, "{rule}: {violations:?}");
        assert_eq!(violations[0].field, "tag.rule");
        assert!(violations[0].description.starts_with(problem), "{rule}: {}", violations[0].description);
    }
    let tag = pb::Tag { code: "Bad-Code".into(), name: " ".into(), kind: 0, rule: String::new(), version: 0 };
    let refused = app.client.define_tag(pb::DefineTagRequest { tag: Some(tag) }).await.unwrap_err();
    let fields: Vec<String> =
        refused.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["tag.code", "tag.name", "tag.kind"]);
    let tags = app.client.list_tags(pb::ListTagsRequest {}).await.unwrap().into_inner().tags;
    assert!(tags.is_empty(), "a refused definition stores nothing");
    app.stop().await;
}

#[tokio::test]
async fn explain_tag_says_why_a_customer_has_a_tag_and_why_not() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    let number = "100000000102";
    app.customer_created(number, ("CORE", "T2")).await;
    app.define_tag("active_rich", "aum.total >= 5000000 and txn.count_90d >= 1").await;
    app.load(vec![cny("A1", by_number(number), "DEP", 60_000, day(2026, 3, 10))]).await;
    let explain = |app: &mut crate::helpers::TestApp| {
        let mut client = app.client.clone();
        async move {
            client
                .explain_tag(pb::ExplainTagRequest { customer_number: number.into(), tag_code: "active_rich".into() })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let why_not = explain(&mut app).await;
    assert!(!why_not.holds);
    assert_eq!(
        why_not.explanation,
        "aum.total >= 5000000: 6000000 ≥ 5000000 → true; txn.count_90d >= 1: 0 ≥ 1 → false"
    );

    let stream = futures::stream::iter(vec![pb::RecordTransactionsRequest {
        transaction: Some(transaction("TX-1", number, -300)),
    }]);
    let report = app.client.record_transactions(stream).await.unwrap().into_inner().report.unwrap();
    assert!(report.rejections.is_empty(), "{:?}", report.rejections);
    app.settled().await;
    let why = explain(&mut app).await;
    assert!(why.holds);
    assert_eq!(why.explanation, "aum.total >= 5000000: 6000000 ≥ 5000000 → true; txn.count_90d >= 1: 1 ≥ 1 → true");
    assert_eq!(app.tags_of(number).await, [("active_rich".to_string(), pb::TagKind::Rule)], "kept current too");

    let unknown = app
        .client
        .explain_tag(pb::ExplainTagRequest { customer_number: number.into(), tag_code: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn staff_set_and_remove_manual_tags_and_cannot_set_a_rule_tag() {
    let mut app = spawn_app().await;
    let number = "100000000103";
    app.customer_created(number, ("CORE", "T3")).await;
    app.define_tag("vip", "").await;
    app.define_tag("rich", "aum.total >= 1").await;
    let set = |code: &str| pb::SetManualTagRequest { customer_number: number.into(), tag_code: code.into() };

    assert!(app.client.set_manual_tag(set("vip")).await.unwrap().into_inner().changed);
    assert!(!app.client.set_manual_tag(set("vip")).await.unwrap().into_inner().changed, "again changes nothing");
    assert_eq!(app.tags_of(number).await, [("vip".to_string(), pb::TagKind::Manual)]);
    let why = app
        .client
        .explain_tag(pb::ExplainTagRequest { customer_number: number.into(), tag_code: "vip".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(why.holds && why.explanation.starts_with("set by operator-1"), "{}", why.explanation);

    let rule = app.client.set_manual_tag(set("rich")).await.unwrap_err();
    assert_eq!(rule.code(), Code::FailedPrecondition);
    let unknown = app.client.set_manual_tag(set("nope")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let stranger = pb::SetManualTagRequest { customer_number: "999999".into(), tag_code: "vip".into() };
    assert_eq!(app.client.set_manual_tag(stranger).await.unwrap_err().code(), Code::NotFound);

    let remove = pb::RemoveManualTagRequest { customer_number: number.into(), tag_code: "vip".into() };
    assert!(app.client.remove_manual_tag(remove.clone()).await.unwrap().into_inner().changed);
    assert!(!app.client.remove_manual_tag(remove).await.unwrap().into_inner().changed);
    assert!(app.tags_of(number).await.is_empty());
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM crm_kit.audit_entry WHERE action IN ('tag.set', 'tag.removed') ORDER BY action",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, ["tag.removed", "tag.set"], "only the changes are audited");

    let reader = app.client_for("reader-1", &[analytics::access::READ]);
    let mut reader = reader;
    let denied = reader
        .set_manual_tag(pb::SetManualTagRequest { customer_number: number.into(), tag_code: "vip".into() })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    app.stop().await;
}

#[tokio::test]
async fn an_absorbed_customer_keeps_no_tags_and_its_number_answers_with_the_survivor() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    let (survivor, absorbed) = ("100000000104", "100000000105");
    app.customer_created(survivor, ("CORE", "T4")).await;
    app.customer_created(absorbed, ("CORE", "T5")).await;
    app.define_tag("rich", "aum.total >= 5000000").await;
    app.define_tag("vip", "").await;
    app.load(vec![
        cny("A4", by_number(survivor), "DEP", 30_000, day(2026, 3, 1)),
        cny("A5", by_number(absorbed), "DEP", 40_000, day(2026, 3, 1)),
    ])
    .await;
    let set = pb::SetManualTagRequest { customer_number: absorbed.into(), tag_code: "vip".into() };
    app.client.set_manual_tag(set).await.unwrap();
    assert_eq!(app.tags_of(absorbed).await, [("vip".to_string(), pb::TagKind::Manual)]);
    assert!(app.tags_of(survivor).await.is_empty(), "neither alone reaches 50,000 yuan");

    let merged = crm_proto::crm::customer::v1::CustomerMerged {
        surviving_customer_number: survivor.into(),
        absorbed_customer_numbers: vec![absorbed.into()],
        reason: "STEWARD".into(),
    };
    app.customer_event(survivor, &merged).await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM customer_tag WHERE customer_number = $1")
        .bind(absorbed)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the absorbed customer's tags go with it");
    let answer = app
        .client
        .get_customer_tags(pb::GetCustomerTagsRequest { customer_number: absorbed.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.customer_number, survivor);
    let codes: Vec<&str> = answer.tags.iter().map(|t| t.tag_code.as_str()).collect();
    assert_eq!(codes, ["rich"], "together they reach the threshold");
    app.stop().await;
}

#[tokio::test]
async fn a_demographic_rule_tag_follows_what_the_golden_record_announces() {
    use crm_proto::crm::customer::v1 as cpb;

    let mut app = spawn_app().await;
    app.catalogue().await;
    let number = "100000000301";
    let demographics = |gender: cpb::Gender| cpb::CustomerDemographics {
        birth_date: day(1986, 7, 1),
        gender: gender as i32,
        region_code: "440524".into(),
    };
    let created = cpb::CustomerCreated {
        customer_number: number.into(),
        party_kind: cpb::PartyKind::Personal as i32,
        source: Some(crate::helpers::source_key(("CORE", "D1"))),
        demographics: Some(demographics(cpb::Gender::Female)),
    };
    app.customer_event(number, &created).await;
    app.define_tag("gd_women_30s", "age between 30 and 39 and gender = 'F' and region starts with '44'").await;
    app.load(vec![cny("A1", by_number(number), "DEP", 1_000, day(2026, 6, 30))]).await;
    assert_eq!(app.tags_of(number).await, [("gd_women_30s".to_string(), pb::TagKind::Rule)], "39 on 2026-06-30");
    let by = |group_by: &str| pb::AggregateCustomersRequest {
        group_by: group_by.into(),
        measure: "count".into(),
        bucket_width: 0,
    };
    for (group_by, key) in [("age", "39"), ("gender", "F"), ("region", "440524")] {
        let groups = app.client.aggregate_customers(by(group_by)).await.unwrap().into_inner().groups;
        assert_eq!(groups.iter().map(|g| (g.key.as_str(), g.customer_count)).collect::<Vec<_>>(), [(key, 1)]);
    }

    app.load(vec![cny("A1", by_number(number), "DEP", 1_000, day(2026, 7, 1))]).await;
    assert!(app.tags_of(number).await.is_empty(), "40 on her birthday, the latest balance date");

    app.define_tag("women", "gender = 'F'").await;
    let updated = cpb::CustomerUpdated {
        customer_number: number.into(),
        changed_attributes: vec!["gender".into()],
        source: None,
        demographics: Some(demographics(cpb::Gender::Male)),
    };
    assert_eq!(app.tags_of(number).await, [("women".to_string(), pb::TagKind::Rule)]);
    app.customer_event(number, &updated).await;
    assert!(app.tags_of(number).await.is_empty(), "the golden record's correction re-evaluates the tags");
    let details_only =
        cpb::CustomerUpdated { demographics: None, changed_attributes: vec!["detail".into()], ..updated };
    app.customer_event(number, &details_only).await;
    let kept: Option<String> =
        sqlx::query_scalar("SELECT gender FROM customer_demographics WHERE customer_number = $1")
            .bind(number)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(kept.as_deref(), Some("M"), "an update without demographics keeps them");
    app.stop().await;
}
