//! Levels: a day's AUM upgrades at once, closed months put a customer on watch and
//! downgrade it, every change is announced, kept in the history and answers "which
//! level on date D"; rule versions are refused when bad and recompute when stored.

use crm_proto::crm::analytics::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{by_number, cny, day, spawn_app};

const GOLD: i64 = 50_000;

#[tokio::test]
async fn a_day_at_gold_upgrades_at_once_and_three_months_below_downgrade_with_events_and_history() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    let number = "100000000011";
    app.customer_created(number, ("CORE", "L1")).await;
    app.load(vec![
        cny("A1", by_number(number), "DEP", 1_000, day(2026, 1, 1)),
        cny("A1", by_number(number), "DEP", GOLD + 5_000, day(2026, 1, 10)),
        cny("A1", by_number(number), "DEP", 2_000, day(2026, 1, 11)),
    ])
    .await;
    let value = app.value(number).await;
    assert_eq!((value.level_code.as_str(), value.level_name.as_str()), ("gold", "金"));
    assert_eq!(value.level_since, day(2026, 1, 10));
    assert!(!value.on_watch);

    let upgraded = app.level_changes(1).await;
    let (subject, change) = &upgraded[0];
    assert_eq!((change.from_level.as_str(), change.to_level.as_str()), ("potential", "gold"));
    assert_eq!(change.kind, pb::LevelChangeKind::Upgrade as i32);
    assert_eq!(subject, number);

    // January's daily average: 1,000 × 9 days + 55,000 + 2,000 × 21 days, / 31.
    let january = app.close_month("2026-01").await;
    assert_eq!(january.customers_total, 1);
    let value = app.value(number).await;
    assert_eq!(value.latest_closed_month, "2026-01");
    assert_eq!(value.month_weighted_aum_minor, (1_000 * 9 + 55_000 + 2_000 * 21) * 100 / 31);
    assert!(value.on_watch && value.watch_months == 1);
    app.close_month("2026-02").await;
    let march = app.close_month("2026-03").await;
    assert_eq!(march.level_changes, 1);
    let value = app.value(number).await;
    assert_eq!(value.level_code, "potential");
    assert_eq!(value.level_since, day(2026, 4, 1), "a downgrade takes effect the next month");

    let history = app
        .client
        .list_level_history(pb::ListLevelHistoryRequest { customer_number: number.into() })
        .await
        .unwrap()
        .into_inner()
        .changes;
    let kinds: Vec<(i32, Option<_>)> = history.iter().map(|c| (c.kind, c.effective_date)).collect();
    assert_eq!(
        kinds,
        [
            (pb::LevelChangeKind::Downgrade as i32, day(2026, 4, 1)),
            (pb::LevelChangeKind::Upgrade as i32, day(2026, 1, 10))
        ]
    );
    assert!(history.iter().all(|c| c.rule_version == 0 && !c.explanation.is_empty()));
    let downgraded = app.level_changes(1).await;
    assert_eq!(downgraded[0].1.kind, pb::LevelChangeKind::Downgrade as i32, "the downgrade alone is announced");

    for (date, expected) in [(day(2026, 1, 9), "potential"), (day(2026, 2, 15), "gold"), (day(2026, 4, 1), "potential")]
    {
        let on = app
            .client
            .get_level_on(pb::GetLevelOnRequest { customer_number: number.into(), date })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(on.level_code, expected, "on {date:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn months_close_in_order_and_only_once_they_have_ended() {
    let mut app = spawn_app().await;
    app.close_month("2026-01").await;
    for (month, problem) in [("2026-03", "close 2026-02 first"), ("2999-01", "has not ended"), ("January", "a month")] {
        let refused =
            app.client.close_month(pb::CloseMonthRequest { month: month.into() }).await.map(|_| ()).unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        let details = refused.get_error_details();
        let violation = &details.bad_request().unwrap().field_violations[0];
        assert!(violation.description.contains(problem), "{month}: {}", violation.description);
    }
    app.close_month("2026-01").await;
    app.stop().await;
}

fn rule(version: i32, gold: i64, upgrade: pb::UpgradeTiming) -> pb::LevelRule {
    let level = |code: &str, name: &str, min: i64| pb::LevelDefinition {
        code: code.into(),
        name: name.into(),
        min_aum_minor: min,
    };
    pb::LevelRule {
        version,
        effective_from: day(2000, 1, 1),
        levels: vec![level("potential", "潜力", 0), level("gold", "金", gold)],
        upgrade: upgrade as i32,
        downgrade_after_months: 3,
        downgrade_to: pb::DowngradeTarget::BestMonthInWindow as i32,
    }
}

#[tokio::test]
async fn a_new_rule_version_recomputes_levels_and_a_bad_one_is_refused() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    let number = "100000000012";
    app.customer_created(number, ("CORE", "L2")).await;
    app.load(vec![cny("A1", by_number(number), "DEP", 20_000, day(2026, 5, 3))]).await;
    assert_eq!(app.value(number).await.level_code, "potential");

    let put = app
        .client
        .put_level_rule(pb::PutLevelRuleRequest { rule: Some(rule(1, 10_000 * 100, pb::UpgradeTiming::Immediate)) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(put.rule.unwrap().version, 1);
    assert_eq!(app.value(number).await.level_code, "gold", "levels follow the new thresholds at once");
    let rules = app.client.list_level_rules(pb::ListLevelRulesRequest {}).await.unwrap().into_inner().rules;
    assert_eq!(rules.iter().map(|r| r.version).collect::<Vec<_>>(), [1], "version 1 applies from the start");

    let again = app
        .client
        .put_level_rule(pb::PutLevelRuleRequest { rule: Some(rule(1, 1, pb::UpgradeTiming::Immediate)) })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    let mut bad = rule(2, -5, pb::UpgradeTiming::Unspecified);
    bad.levels[0].code = "Gold!".into();
    let refused = app.client.put_level_rule(pb::PutLevelRuleRequest { rule: Some(bad) }).await.unwrap_err();
    let fields: Vec<String> =
        refused.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["rule.levels[0].code", "rule.levels[1].min_aum_minor", "rule.upgrade"]);
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM crm_kit.audit_entry WHERE action = 'level_rule.put'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(audited, 1);
    app.stop().await;
}
