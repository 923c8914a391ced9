//! The incremental path and the full recompute agree: generated facts arrive in
//! several streams, partly before their customers are known, with merges, an unmerge,
//! a rule version and month closings in between; then RecomputeAll from the stored
//! facts (derived values dropped, every fact's owner forgotten) must find exactly the
//! values, closed months, level histories and rule tags the incremental path kept (a
//! rule tag is defined before the facts arrive).

use crm_proto::crm::analytics::v1 as pb;
use crm_proto::crm::customer::v1 as cpb;

use crate::helpers::{TestApp, by_number, by_source, cny, day, source_key, spawn_app_with};

/// A small deterministic generator (numbers differ run to run only if this code does).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

type Snapshot = (String, i64, String, String);

type Derived = (
    Vec<Snapshot>,
    Vec<(String, i32, String, String, String)>,
    Vec<(String, String, String)>,
    Vec<(String, String, String)>,
);

async fn derived(app: &TestApp) -> Derived {
    let values = sqlx::query_as(
        "SELECT customer_number, weighted_aum, level_code, aum::text || month_aum::text || watch_months::text
         FROM customer_value ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let history = sqlx::query_as(
        "SELECT customer_number, seq, from_level || '>' || to_level, effective_date::text, explanation
         FROM level_change ORDER BY 1, 2",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    // `since` is when analytics found the tag, so it is left out.
    let tags = sqlx::query_as("SELECT customer_number, tag_code, source FROM customer_tag ORDER BY 1, 2, 3")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let months = sqlx::query_as(
        "SELECT customer_number, month,
                concat_ws(' ', deposit, wealth_management, settlement, loan, channel_product, aum_total, weighted_aum,
                          level_code)
         FROM customer_month_value ORDER BY 1, 2",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    (values, history, tags, months)
}

#[tokio::test]
async fn a_full_recompute_finds_exactly_what_the_incremental_path_kept() {
    let mut app = spawn_app_with(&[("analytics.facts_per_transaction", "37")]).await;
    app.catalogue().await;
    app.define_tag("wealthy", "aum.wealth_management >= 3000000 or level >= 'gold' and watch_months = 0").await;
    let mut rng = Lcg(20_261_202);
    let customers: Vec<String> = (0..24).map(|i| format!("1000000005{i:02}")).collect();
    let products = ["DEP", "WM", "WM50", "LOAN"];
    let mut snapshots = Vec::new();
    for (i, number) in customers.iter().enumerate() {
        for account in 0..3 {
            let product = products[rng.next(4) as usize];
            let mut balance = rng.next(80_000) as i64;
            for d in 1..=28 {
                for month in [1, 2] {
                    if rng.next(3) == 0 {
                        continue;
                    }
                    balance = (balance + rng.next(20_000) as i64 - 9_000).max(0);
                    let customer = if account == 0 { by_source(("CORE", &format!("S{i}"))) } else { by_number(number) };
                    snapshots.push(cny(
                        &format!("{number}-{account}"),
                        customer,
                        product,
                        balance,
                        day(2026, month, d),
                    ));
                }
            }
        }
    }
    // Shuffle, so facts arrive out of date order across streams.
    for i in (1..snapshots.len()).rev() {
        snapshots.swap(i, rng.next(i as u64 + 1) as usize);
    }
    let quarter = snapshots.len() / 4;
    let mut rest = snapshots.split_off(quarter);
    // The first quarter arrives before anyone is known.
    app.load(snapshots).await;
    for (i, number) in customers.iter().enumerate() {
        app.customer_created(number, ("CORE", &format!("S{i}"))).await;
    }
    let second = rest.split_off(rest.len() / 3);
    app.load(rest).await;
    app.close_month("2026-01").await;
    for pair in customers.chunks(6) {
        let merged = cpb::CustomerMerged {
            surviving_customer_number: pair[0].clone(),
            absorbed_customer_numbers: vec![pair[1].clone()],
            reason: "STEWARD".into(),
        };
        app.customer_event(&pair[0], &merged).await;
    }
    let unmerged = cpb::CustomerUnmerged {
        customer_number: customers[0].clone(),
        new_customer_number: "100000000599".into(),
        source: Some(source_key(("CORE", "S1"))),
    };
    app.customer_event(&customers[0], &unmerged).await;
    app.load(second).await;
    let rule = pb::LevelRule {
        version: 1,
        effective_from: day(2026, 2, 1),
        levels: vec![
            pb::LevelDefinition { code: "potential".into(), name: "潜力".into(), min_aum_minor: 0 },
            pb::LevelDefinition { code: "gold".into(), name: "金".into(), min_aum_minor: 60_000 * 100 },
            pb::LevelDefinition { code: "core".into(), name: "核心".into(), min_aum_minor: 150_000 * 100 },
        ],
        upgrade: pb::UpgradeTiming::NextMonth as i32,
        downgrade_after_months: 1,
        downgrade_to: pb::DowngradeTarget::BestMonthInWindow as i32,
    };
    app.client.put_level_rule(pb::PutLevelRuleRequest { rule: Some(rule) }).await.unwrap();
    app.close_month("2026-02").await;

    let incremental = derived(&app).await;
    assert!(incremental.0.len() >= 20, "most customers are valued: {}", incremental.0.len());
    assert!(incremental.1.len() >= 10, "levels changed along the way: {}", incremental.1.len());
    assert!(incremental.3.len() >= 2 * 20, "two closed months per valued customer: {}", incremental.3.len());
    let tagged = incremental.2.len();
    assert!(tagged >= 3 && tagged < incremental.0.len(), "some customers are tagged, not all: {tagged}");
    sqlx::query("DELETE FROM customer_value").execute(&app.pool).await.unwrap();
    sqlx::query("DELETE FROM level_change").execute(&app.pool).await.unwrap();
    sqlx::query("DELETE FROM customer_tag").execute(&app.pool).await.unwrap();
    sqlx::query("DELETE FROM customer_month_value").execute(&app.pool).await.unwrap();
    sqlx::query("UPDATE balance_snapshot SET customer_number = NULL").execute(&app.pool).await.unwrap();
    let mut stream = app.client.recompute_all(pb::RecomputeAllRequest {}).await.unwrap().into_inner();
    let mut last = None;
    while let Some(step) = stream.message().await.unwrap() {
        last = step.progress;
    }
    assert!(last.unwrap().finished);
    assert_eq!(derived(&app).await, incremental);
    app.stop().await;
}

#[tokio::test]
async fn the_recompute_all_command_rebuilds_derived_data_lost_from_the_database() {
    let mut app = spawn_app_with(&[]).await;
    app.catalogue().await;
    let number = "100000000701";
    app.customer_created(number, ("CORE", "RC-1")).await;
    app.load(vec![cny("A1", by_number(number), "DEP", 80_000, day(2026, 3, 2))]).await;
    let kept = derived(&app).await;
    sqlx::query("DELETE FROM customer_value").execute(&app.pool).await.unwrap();
    sqlx::query("DELETE FROM level_change").execute(&app.pool).await.unwrap();

    // What `analytics recompute-all` runs.
    let mut steps = analytics::grpc::recompute_all(app.pool.clone()).await.unwrap();
    let mut last = None;
    while let Some(step) = futures::StreamExt::next(&mut steps).await {
        last = Some(step.unwrap());
    }
    let last = last.unwrap();
    assert_eq!((last.customers_done, last.customers_total, last.finished), (1, 1, true));
    assert_eq!(derived(&app).await, kept);
    app.stop().await;
}
