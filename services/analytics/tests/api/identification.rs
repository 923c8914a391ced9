//! Facts follow customer-profile's identification: facts for customers not known yet
//! wait and count once the customer appears; merges bring facts and levels to the
//! survivor; an unmerge takes back what came with the split-off source record.

use crm_proto::crm::customer::v1 as cpb;

use crate::helpers::{by_number, by_source, cny, day, source_key, spawn_app};

/// Every customer's weighted AUM, by customer number.
async fn values(pool: &sqlx::PgPool) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT customer_number, weighted_aum FROM customer_value ORDER BY 1").fetch_all(pool).await.unwrap()
}

#[tokio::test]
async fn facts_for_a_customer_not_known_yet_wait_and_count_when_it_appears() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    let report = app
        .load(vec![
            cny("A1", by_source(("CORE", "N1")), "DEP", 60_000, day(2026, 6, 1)),
            cny("A2", by_number("100000000021"), "WM", 1_000, day(2026, 6, 1)),
        ])
        .await;
    assert_eq!((report.accepted_count, report.pending_count), (2, 2));
    assert!(values(&app.pool).await.is_empty(), "nothing is valued for unknown customers");

    app.customer_created("100000000021", ("CORE", "N1")).await;
    let value = app.value("100000000021").await;
    assert_eq!(value.weighted_aum_minor, 61_000 * 100, "both facts count: by source key and by number");
    assert_eq!(value.level_code, "gold");
    assert_eq!(app.level_changes(1).await[0].0, "100000000021");
    app.stop().await;
}

#[tokio::test]
async fn a_merge_and_an_unmerge_in_the_middle_of_a_stream_of_facts_lose_nothing_and_count_nothing_twice() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    let (x, y, z) = ("100000000031", "100000000032", "100000000033");
    app.customer_created(x, ("CORE", "X1")).await;
    app.customer_created(y, ("CARD", "Y1")).await;
    app.load(vec![
        cny("AX", by_source(("CORE", "X1")), "DEP", 30_000, day(2026, 7, 1)),
        cny("AY", by_source(("CARD", "Y1")), "DEP", 30_000, day(2026, 7, 1)),
        cny("AN", by_number(y), "DEP", 5_000, day(2026, 7, 1)),
    ])
    .await;
    assert_eq!(values(&app.pool).await, [(x.into(), 3_000_000), (y.into(), 3_500_000)]);

    let merged = cpb::CustomerMerged {
        surviving_customer_number: x.into(),
        absorbed_customer_numbers: vec![y.into()],
        reason: "STEWARD".into(),
    };
    app.customer_event(x, &merged).await;
    assert_eq!(
        values(&app.pool).await,
        [(x.into(), 6_500_000)],
        "the survivor holds both; the absorbed has no value of its own"
    );
    let asked_for_absorbed = app.value(y).await;
    assert_eq!((asked_for_absorbed.customer_number.as_str(), asked_for_absorbed.level_code.as_str()), (x, "gold"));

    // Facts keep coming, naming the absorbed customer's record and number.
    app.load(vec![
        cny("AY", by_source(("CARD", "Y1")), "DEP", 31_000, day(2026, 7, 2)),
        cny("AN", by_number(y), "DEP", 6_000, day(2026, 7, 2)),
        cny("AX", by_source(("CORE", "X1")), "DEP", 30_000, day(2026, 7, 2)),
    ])
    .await;
    assert_eq!(values(&app.pool).await, [(x.into(), 6_700_000)]);

    let unmerged = cpb::CustomerUnmerged {
        customer_number: x.into(),
        new_customer_number: z.into(),
        source: Some(source_key(("CARD", "Y1"))),
    };
    app.customer_event(x, &unmerged).await;
    assert_eq!(
        values(&app.pool).await,
        [(x.into(), 3_600_000), (z.into(), 3_100_000)],
        "the split-off record takes its account; the number-named account stays with the survivor"
    );
    let owners: Vec<(String, String)> =
        sqlx::query_as("SELECT DISTINCT account_id, customer_number FROM balance_snapshot ORDER BY 1")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(owners, [("AN".into(), x.into()), ("AX".into(), x.into()), ("AY".into(), z.into())]);
    app.stop().await;
}

#[tokio::test]
async fn a_source_record_that_joined_a_customer_brings_its_facts() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    let number = "100000000051";
    app.customer_created(number, ("CORE", "J1")).await;
    app.load(vec![cny("CARD-1", by_source(("CARD", "J9")), "DEP", 700, day(2026, 9, 1))]).await;
    let linked = cpb::SourceRecordLinked { customer_number: number.into(), source: Some(source_key(("CARD", "J9"))) };
    app.customer_event(number, &linked).await;
    assert_eq!(app.value(number).await.weighted_aum_minor, 70_000);
    app.stop().await;
}

#[tokio::test]
async fn a_redelivered_merge_changes_nothing() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    let (x, y) = ("100000000041", "100000000042");
    app.customer_created(x, ("CORE", "X4")).await;
    app.customer_created(y, ("CORE", "Y4")).await;
    app.load(vec![
        cny("B1", by_number(x), "DEP", 100, day(2026, 8, 1)),
        cny("B2", by_number(y), "DEP", 200, day(2026, 8, 1)),
    ])
    .await;
    let merged = cpb::CustomerMerged {
        surviving_customer_number: x.into(),
        absorbed_customer_numbers: vec![y.into()],
        reason: "IDENTIFICATION".into(),
    };
    app.customer_event(x, &merged).await;
    app.customer_event(x, &merged).await;
    assert_eq!(values(&app.pool).await, [(x.into(), 30_000)]);
    app.stop().await;
}
