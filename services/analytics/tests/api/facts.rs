//! Facts in: the catalogue, balance streams with bad rows, replays, FX rates,
//! transactions by stream and by topic.

use std::time::Duration;

use crm_platform::testing::eventually;
use crm_proto::crm::analytics::v1 as pb;
use crm_proto::crm::common::v1 as common;
use tonic_types::StatusExt;

use crate::helpers::{by_number, cny, day, product, spawn_app};

#[tokio::test]
async fn bad_products_are_refused_one_by_one_and_the_good_ones_stored() {
    let mut app = spawn_app().await;
    let mut bad = product("BAD CODE", pb::AssetClass::Deposit, 10_000);
    bad.risk_level = 9;
    let products = vec![product("DEP", pb::AssetClass::Deposit, 10_000), bad];
    let outcomes = app.client.upsert_products(pb::UpsertProductsRequest { products }).await.unwrap().into_inner();
    assert!(outcomes.outcomes[0].changed && outcomes.outcomes[0].violations.is_empty());
    let fields: Vec<&str> = outcomes.outcomes[1].violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["products[1].product_code", "products[1].risk_level"]);

    let again = vec![product("DEP", pb::AssetClass::Deposit, 10_000)];
    let outcomes =
        app.client.upsert_products(pb::UpsertProductsRequest { products: again }).await.unwrap().into_inner();
    assert!(!outcomes.outcomes[0].changed, "the same product again changes nothing");
    let listed = app.client.list_products(pb::ListProductsRequest {}).await.unwrap().into_inner().products;
    assert_eq!(listed.iter().map(|p| p.product_code.as_str()).collect::<Vec<_>>(), ["DEP"]);
    assert_eq!(listed[0].family, "deposit", "the family defaults to the asset class");
    app.stop().await;
}

#[tokio::test]
async fn a_balance_stream_reports_bad_rows_by_index_loads_the_rest_and_a_replay_changes_nothing() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    app.customer_created("100000000001", ("CORE", "C1")).await;
    let mut no_currency = cny("A2", by_number("100000000001"), "DEP", 10, day(2026, 3, 1));
    no_currency.balance.as_mut().unwrap().currency_code = "yuan".into();
    let snapshots = vec![
        cny("A1", by_number("100000000001"), "DEP", 1_000, day(2026, 3, 1)),
        no_currency,
        cny("A3", by_number("100000000001"), "NOPE", 10, day(2026, 3, 1)),
        cny("A4", by_number("100000000001"), "DEP", 10, day(2026, 2, 30)),
        cny("A5", None, "DEP", 10, day(2026, 3, 1)),
        cny("A1", by_number("100000000001"), "DEP", 2_000, day(2026, 3, 2)),
    ];
    let report = app.load(snapshots.clone()).await;
    assert_eq!(report.accepted_count, 2);
    assert_eq!(report.unchanged_count, 0);
    let rejected: Vec<(i64, Vec<&str>)> =
        report.rejections.iter().map(|r| (r.index, r.violations.iter().map(|v| v.field.as_str()).collect())).collect();
    assert_eq!(
        rejected,
        [
            (1, vec!["snapshot.balance.currency_code"]),
            (2, vec!["snapshot.product_code"]),
            (3, vec!["snapshot.balance_date"]),
            (4, vec!["snapshot.customer"]),
        ]
    );
    assert_eq!(app.value("100000000001").await.weighted_aum_minor, 200_000);

    let replay = app.load(snapshots).await;
    assert_eq!((replay.accepted_count, replay.unchanged_count), (0, 2), "a replay changes nothing");
    let corrected = app.load(vec![cny("A1", by_number("100000000001"), "DEP", 3_000, day(2026, 3, 2))]).await;
    assert_eq!(corrected.accepted_count, 1, "a different balance for the key corrects it");
    assert_eq!(app.value("100000000001").await.weighted_aum_minor, 300_000);
    app.stop().await;
}

#[tokio::test]
async fn a_foreign_currency_balance_waits_for_its_rate_and_counts_at_it() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    app.customer_created("100000000002", ("CORE", "C2")).await;
    let mut usd = cny("U1", by_number("100000000002"), "DEP", 0, day(2026, 4, 10));
    usd.balance = Some(common::Money { amount_minor: 1_000_000, currency_code: "USD".into() });
    let report = app.load(vec![usd, cny("C1", by_number("100000000002"), "DEP", 100, day(2026, 4, 10))]).await;
    assert_eq!((report.accepted_count, report.pending_count), (2, 1));
    assert_eq!(app.value("100000000002").await.weighted_aum_minor, 10_000, "USD not counted without a rate");

    let rates =
        vec![pb::FxRate { currency_code: "USD".into(), rate_date: day(2026, 4, 1), cny_per_unit_micros: 7_100_000 }];
    let set = app.client.set_fx_rates(pb::SetFxRatesRequest { rates }).await.unwrap().into_inner();
    assert_eq!(set.released_count, 1);
    app.settled().await;
    assert_eq!(app.value("100000000002").await.weighted_aum_minor, 10_000 + 7_100_000);

    let bad = vec![pb::FxRate { currency_code: "CNY".into(), rate_date: day(2026, 4, 1), cny_per_unit_micros: 0 }];
    let refused = app.client.set_fx_rates(pb::SetFxRatesRequest { rates: bad }).await.unwrap_err();
    let fields: Vec<String> =
        refused.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["rates[0].currency_code", "rates[0].cny_per_unit_micros"]);
    app.stop().await;
}

fn transaction(id: &str, number: &str) -> pb::Transaction {
    pb::Transaction {
        transaction_id: id.into(),
        customer: by_number(number),
        account_id: "A1".into(),
        product_code: "WM".into(),
        amount: Some(common::Money { amount_minor: 5_000_000, currency_code: "CNY".into() }),
        channel: pb::Channel::Mobile as i32,
        posted_time: Some(prost_types::Timestamp { seconds: 1_775_000_000, nanos: 0 }),
        region_code: "110105".into(),
    }
}

#[tokio::test]
async fn transactions_by_stream_and_by_topic_are_kept_once_by_id() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    let mut no_channel = transaction("T3", "100000000003");
    no_channel.channel = 0;
    let sent = vec![transaction("T1", "100000000003"), transaction("T2", "100000000003"), no_channel];
    let requests = |ts: Vec<pb::Transaction>| {
        futures::stream::iter(
            ts.into_iter().map(|t| pb::RecordTransactionsRequest { transaction: Some(t) }).collect::<Vec<_>>(),
        )
    };
    let report = app.client.record_transactions(requests(sent.clone())).await.unwrap().into_inner().report.unwrap();
    assert_eq!((report.accepted_count, report.pending_count), (2, 2), "the customer is not known yet: kept, waiting");
    assert_eq!(report.rejections.len(), 1);
    assert_eq!(report.rejections[0].violations[0].field, "transaction.channel");
    let replay = app.client.record_transactions(requests(sent)).await.unwrap().into_inner().report.unwrap();
    assert_eq!((replay.accepted_count, replay.unchanged_count), (0, 2));

    for id in ["T2", "T4", "T4"] {
        let posted = pb::TransactionPosted { transaction: Some(transaction(id, "100000000003")) };
        app.env.publish("core-banking", id, &posted).await;
    }
    let stored = eventually(Duration::from_secs(15), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM transaction_fact").fetch_one(&app.pool).await.unwrap() == 3
    })
    .await;
    assert!(stored, "T4 from the topic is stored once; T2 again changes nothing");
    app.customer_created("100000000003", ("CORE", "C3")).await;
    let owned: i64 = sqlx::query_scalar("SELECT count(*) FROM transaction_fact WHERE customer_number = '100000000003'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(owned, 3, "waiting transactions belong to the customer once it is known");
    app.stop().await;
}
