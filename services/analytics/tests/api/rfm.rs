//! RFM and scorecards: the stored RFM is the domain's scoring of the same transactions
//! (differential, on generated data), follows new transactions and the window, feeds
//! rule tags; scorecards are versioned, refused with every problem named, explain each
//! score, and show on the value card with the RFM and the tags.

use std::collections::BTreeMap;

use analytics::domain::rfm::{Activity, Rfm, score_all};
use crm_proto::crm::analytics::v1 as pb;
use crm_proto::crm::common::v1 as common;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{TestApp, by_number, cny, day, spawn_app};

/// 2026-03-31 00:00 UTC, in seconds.
const MARCH_31: i64 = 1_774_915_200;
const DAY: i64 = 86_400;

/// Products in two families (and the standard test catalogue's DEP without one).
async fn families(app: &mut TestApp) {
    app.catalogue().await;
    let product = |code: &str, class: pb::AssetClass, family: &str| pb::Product {
        family: family.into(),
        ..crate::helpers::product(code, class, 10_000)
    };
    let products = vec![
        product("CARD", pb::AssetClass::Settlement, "cards"),
        product("FUND", pb::AssetClass::WealthManagement, "funds"),
    ];
    let report = app.client.upsert_products(pb::UpsertProductsRequest { products }).await.unwrap().into_inner();
    assert!(report.outcomes.iter().all(|o| o.violations.is_empty()));
}

/// A CNY transaction of `fen` posted `days_before` days before 2026-03-31 (noon UTC).
fn posted(id: &str, number: &str, product: &str, fen: i64, days_before: i64) -> pb::Transaction {
    pb::Transaction {
        transaction_id: id.into(),
        customer: by_number(number),
        account_id: format!("ACC-{number}"),
        product_code: product.into(),
        amount: Some(common::Money { amount_minor: fen, currency_code: "CNY".into() }),
        channel: pb::Channel::Online as i32,
        posted_time: Some(prost_types::Timestamp { seconds: MARCH_31 - days_before * DAY + DAY / 2, nanos: 0 }),
        region_code: String::new(),
    }
}

async fn record(app: &mut TestApp, transactions: Vec<pb::Transaction>) {
    let stream = futures::stream::iter(
        transactions.into_iter().map(|t| pb::RecordTransactionsRequest { transaction: Some(t) }).collect::<Vec<_>>(),
    );
    let report = app.client.record_transactions(stream).await.unwrap().into_inner().report.unwrap();
    assert!(report.rejections.is_empty(), "{:?}", report.rejections);
    app.settled().await;
}

async fn rfm(app: &mut TestApp, number: &str) -> pb::GetCustomerRfmResponse {
    app.client
        .get_customer_rfm(pb::GetCustomerRfmRequest { customer_number: number.into() })
        .await
        .unwrap()
        .into_inner()
}

/// A small deterministic generator (no dependency for a test's random numbers).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[tokio::test]
async fn stored_rfm_equals_the_domain_scoring_of_the_same_generated_transactions() {
    let mut app = spawn_app().await;
    families(&mut app).await;
    let numbers: Vec<String> = (0..40).map(|i| format!("2000000{i:05}")).collect();
    for (i, number) in numbers.iter().enumerate() {
        app.customer_created(number, ("CORE", &format!("R{i}"))).await;
    }
    // Small ranges so that ties are common; some customers only outside the window.
    let mut rng = Lcg(7);
    let mut sent = Vec::new();
    // (number, family) → (days before the scoring date, amount) of each transaction.
    let mut by_key: BTreeMap<(String, String), Vec<(i64, i64)>> = BTreeMap::new();
    for (i, number) in numbers.iter().enumerate() {
        for k in 0..(1 + rng.below(4)) {
            let product = ["DEP", "CARD", "FUND"][rng.below(3) as usize];
            let days_before = if i % 10 == 9 { 400 + rng.below(30) as i64 } else { rng.below(20) as i64 * 7 };
            let fen = (1 + rng.below(5) as i64) * 10_000 * if rng.below(2) == 0 { 1 } else { -1 };
            sent.push(posted(&format!("T-{i}-{k}"), number, product, fen, days_before));
            let family = match product {
                "DEP" => "",
                "CARD" => "cards",
                _ => "funds",
            };
            if days_before < 365 {
                by_key.entry((number.clone(), String::new())).or_default().push((days_before, fen.abs()));
                if !family.is_empty() {
                    by_key.entry((number.clone(), family.to_string())).or_default().push((days_before, fen.abs()));
                }
            }
        }
    }
    // One transaction on the scoring date itself fixes the data date at 2026-03-31.
    sent.push(posted("T-today", &numbers[0], "DEP", 100, 0));
    by_key.entry((numbers[0].clone(), String::new())).or_default().push((0, 100));
    record(&mut app, sent).await;

    for family in ["", "cards", "funds"] {
        let activities: Vec<(String, Activity)> = numbers
            .iter()
            .map(|n| {
                let activity = match by_key.get(&(n.clone(), family.to_string())) {
                    Some(t) => Activity {
                        recency_days: t.iter().map(|(d, _)| *d as u32).min(),
                        frequency: t.len() as u32,
                        monetary: t.iter().map(|(_, a)| a).sum(),
                    },
                    None => Activity { recency_days: None, frequency: 0, monetary: 0 },
                };
                (n.clone(), activity)
            })
            .collect();
        let expected = score_all(&activities.iter().map(|(_, a)| *a).collect::<Vec<_>>());
        for ((number, activity), expected) in activities.iter().zip(expected) {
            let stored = rfm(&mut app, number).await;
            assert_eq!(stored.scored_on, day(2026, 3, 31));
            assert_eq!(stored.window_days, 365);
            let line = if family.is_empty() {
                stored.overall.clone()
            } else {
                stored.by_family.iter().find(|r| r.family == family).cloned()
            };
            let got = line.as_ref().map(|l| Rfm { r: l.r as u8, f: l.f as u8, m: l.m as u8 });
            assert_eq!(got, expected, "customer {number} family {family:?}");
            if let Some(l) = line {
                assert_eq!(Some(l.recency_days as u32), activity.recency_days);
                assert_eq!((l.frequency as u32, l.monetary_minor), (activity.frequency, activity.monetary));
                assert_eq!(l.code, i32::from(expected.unwrap().code()));
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_new_transaction_rescores_everyone_and_an_rfm_rule_tag_follows() {
    let mut app = spawn_app().await;
    families(&mut app).await;
    let (a, b) = ("300000000001", "300000000002");
    for (number, source) in [(a, "A"), (b, "B")] {
        app.customer_created(number, ("CORE", source)).await;
        app.load(vec![cny(&format!("S-{number}"), by_number(number), "DEP", 1_000, day(2026, 3, 31))]).await;
    }
    app.define_tag("most_recent", "rfm.r >= 3").await;
    // A bought 30 days ago, B 10 days ago: B is the more recent of two.
    record(&mut app, vec![posted("T1", a, "DEP", 5_000, 30), posted("T2", b, "DEP", 5_000, 10)]).await;
    assert_eq!(rfm(&mut app, a).await.overall.unwrap().r, 1);
    assert_eq!(rfm(&mut app, b).await.overall.unwrap().r, 3, "1 + ⌊5·1/2⌋");
    assert!(app.tags_of(a).await.is_empty());
    assert_eq!(app.tags_of(b).await, [("most_recent".to_string(), pb::TagKind::Rule)]);

    // A buys today: now A is the more recent, and B's score falls without a fact of its own.
    record(&mut app, vec![posted("T3", a, "DEP", 5_000, 0)]).await;
    let (ra, rb) = (rfm(&mut app, a).await.overall.unwrap(), rfm(&mut app, b).await.overall.unwrap());
    assert_eq!((ra.r, ra.f, ra.recency_days, ra.frequency), (3, 3, 0, 2));
    assert_eq!((rb.r, rb.f, rb.recency_days), (1, 1, 10));
    assert_eq!(ra.code, 333);
    assert_eq!(app.tags_of(a).await, [("most_recent".to_string(), pb::TagKind::Rule)]);
    assert!(app.tags_of(b).await.is_empty(), "B's tag goes with its score, without a fact of its own");

    // A window of 5 days leaves only A's latest transaction: B drops out of RFM.
    let set = app.client.set_rfm_window(pb::SetRfmWindowRequest { window_days: 5 }).await.unwrap().into_inner();
    assert_eq!((set.window_days, set.customers_rescored), (5, 2));
    assert!(rfm(&mut app, b).await.overall.is_none(), "no transaction in the window, no RFM (not 111)");
    let ra = rfm(&mut app, a).await;
    assert_eq!((ra.window_days, ra.overall.as_ref().map(|r| (r.r, r.frequency))), (5, Some((1, 1))));
    let bad = app.client.set_rfm_window(pb::SetRfmWindowRequest { window_days: 0 }).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM crm_kit.audit_entry WHERE action = 'rfm.window_set'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(audited, 1);

    // A full recompute finds the same scores.
    let before: Vec<(String, String, i16, i16, i16)> =
        sqlx::query_as("SELECT customer_number, family, r, f, m FROM customer_rfm ORDER BY 1, 2")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let mut progress = app.client.recompute_all(pb::RecomputeAllRequest {}).await.unwrap().into_inner();
    while progress.message().await.unwrap().is_some() {}
    let after: Vec<(String, String, i16, i16, i16)> =
        sqlx::query_as("SELECT customer_number, family, r, f, m FROM customer_rfm ORDER BY 1, 2")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(before, after);
    assert!(!after.is_empty());
    app.stop().await;
}

fn band(from: Option<i64>, to: Option<i64>, points: i32) -> pb::ScorecardBand {
    pb::ScorecardBand { from, to, points }
}

fn value_card() -> pb::Scorecard {
    pb::Scorecard {
        code: "VALUE".into(),
        version: 0,
        name: "客户价值评分".into(),
        metrics: vec![
            pb::ScorecardMetric {
                metric: "aum.total".into(),
                bands: vec![band(None, Some(5_000_000), 2), band(Some(5_000_000), None, 10)],
            },
            pb::ScorecardMetric { metric: "rfm.f".into(), bands: vec![band(None, Some(3), 0), band(Some(3), None, 5)] },
        ],
        grades: vec![
            pb::ScorecardGrade { min_total: 12, grade: "A".into() },
            pb::ScorecardGrade { min_total: 0, grade: "B".into() },
        ],
    }
}

#[tokio::test]
async fn a_scorecard_scores_explains_and_shows_on_the_value_card_and_a_bad_one_is_refused() {
    let mut app = spawn_app().await;
    families(&mut app).await;
    let number = "400000000001";
    app.customer_created(number, ("CORE", "S1")).await;
    app.load(vec![cny("S1", by_number(number), "DEP", 60_000, day(2026, 3, 31))]).await;
    record(&mut app, vec![posted("T1", number, "CARD", 5_000, 3)]).await;
    app.define_tag("rich", "aum.total >= 5000000").await;

    let mut bad = value_card();
    bad.code = "bad code".into();
    bad.metrics[0].metric = "aum.wealth".into();
    bad.metrics[1].metric = "level".into();
    let refused = app.client.define_scorecard(pb::DefineScorecardRequest { scorecard: Some(bad) }).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        refused.get_details_bad_request().unwrap().field_violations.into_iter().map(|v| v.field).collect();
    assert_eq!(fields, ["scorecard.code", "scorecard.metrics[0].metric", "scorecard.metrics[1].metric"]);
    let mut gap = value_card();
    gap.metrics[0].bands[1].from = Some(6_000_000);
    let refused = app.client.define_scorecard(pb::DefineScorecardRequest { scorecard: Some(gap) }).await.unwrap_err();
    let violations = refused.get_details_bad_request().unwrap().field_violations;
    assert_eq!(
        violations[0].description,
        "metric 'aum.total': values from 5000000 up to 6000000 (excluded) have no band"
    );
    assert!(app.client.list_scorecards(pb::ListScorecardsRequest {}).await.unwrap().into_inner().scorecards.is_empty());

    let first =
        app.client.define_scorecard(pb::DefineScorecardRequest { scorecard: Some(value_card()) }).await.unwrap();
    assert_eq!(first.into_inner().scorecard.unwrap().version, 1);
    let score = |version| pb::GetCustomerScoreRequest {
        customer_number: number.into(),
        scorecard_code: "VALUE".into(),
        version,
    };
    let got = app.client.get_customer_score(score(0)).await.unwrap().into_inner().score.unwrap();
    assert_eq!((got.version, got.total, got.grade.as_str()), (1, 10, "B"));
    assert_eq!(
        got.explanation,
        "scorecard VALUE version 1: total 10 → grade B\n  aum.total = 6000000: band 2 [5000000, +∞) → 10 points\n  \
         rfm.f = 1: band 1 (−∞, 3) → 0 points"
    );
    assert_eq!((got.lines[0].band, got.lines[0].band_from, got.lines[0].band_to), (2, Some(5_000_000), None));

    let mut easier = value_card();
    easier.grades[0].min_total = 10;
    let second = app.client.define_scorecard(pb::DefineScorecardRequest { scorecard: Some(easier) }).await.unwrap();
    assert_eq!(second.into_inner().scorecard.unwrap().version, 2);
    let latest = app.client.get_customer_score(score(0)).await.unwrap().into_inner().score.unwrap();
    assert_eq!((latest.version, latest.grade.as_str()), (2, "A"));
    let old = app.client.get_customer_score(score(1)).await.unwrap().into_inner().score.unwrap();
    assert_eq!((old.version, old.grade.as_str()), (1, "B"), "an earlier version still scores as it did");
    let missing = app.client.get_customer_score(score(9)).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let card = app.value(number).await;
    assert_eq!(card.rfm.as_ref().map(|r| r.code), Some(111), "a population of one scores 111");
    assert_eq!(
        card.scores.iter().map(|s| (s.scorecard_code.as_str(), s.grade.as_str())).collect::<Vec<_>>(),
        [("VALUE", "A")]
    );
    assert_eq!(card.tags, ["rich"]);
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM crm_kit.audit_entry WHERE action = 'scorecard.defined'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(audited, 2);
    let reader = app.client_for("rm-1", &[analytics::access::READ]);
    let denied = reader.clone().define_scorecard(pb::DefineScorecardRequest { scorecard: Some(value_card()) }).await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);
    app.stop().await;
}
