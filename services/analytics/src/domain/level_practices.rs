//! Golden tests: the published level practices of Chinese retail banks replayed month
//! by month over a year, through [`super::level_decision::decide`]. Test-only.
//!
//! - Practice A: upgrade at once; downgrade after 3 months below to the level of the
//!   latest month (the bank's default rule).
//! - Practice B: upgrade from the next month; downgrade after 3 months below to the
//!   level of the best month in the window; and its private-banking variant, where a
//!   private-banking customer is watched 6 months.
//! - A rule version change mid-year: each decision uses, and records, the version in
//!   force on its day; a downgrade is never to the current level or above.

use time::Date;
use time::macros::date;

use super::aum::YUAN;
use super::calendar::{Month, parse_day};
use super::level_decision::{Decision, LevelState, Observation, Watch, WatchTransition, decide};
use super::levels::{
    DowngradeTarget, LevelChange, LevelChangeKind, LevelDef, LevelRule, RuleSet, UpgradeTiming, level_on,
};
use LevelChangeKind::{Downgrade, Upgrade};
use WatchTransition::{Cleared, ClosedByDowngrade, Continued, Started};

/// One step: the observation in; the level, months below, watch transition and
/// change (kind, effective day) expected out.
type Row = (Observation, &'static str, u32, Option<WatchTransition>, Option<(LevelChangeKind, Date)>);

/// A month end with its weighted daily average in yuan.
fn me(month: &str, yuan: i64) -> Observation {
    Observation::MonthEnd { month: month.parse::<Month>().unwrap(), daily_average: yuan * YUAN }
}

/// A day with its weighted AUM in yuan.
fn dy(date: &str, yuan: i64) -> Observation {
    Observation::Day { date: parse_day(date).unwrap(), aum: yuan * YUAN }
}

/// An upgrade effective on `date`.
fn up(date: &str) -> Option<(LevelChangeKind, Date)> {
    Some((Upgrade, parse_day(date).unwrap()))
}

/// A downgrade effective on `date`.
fn down(date: &str) -> Option<(LevelChangeKind, Date)> {
    Some((Downgrade, parse_day(date).unwrap()))
}

/// Replays `rows` from a new customer on 2026-01-01; returns every decision.
fn replay(practice: &str, rules: &RuleSet, rows: &[Row]) -> Vec<Decision> {
    let mut state = LevelState::initial(rules, date!(2026 - 01 - 01)).unwrap();
    let mut decisions = Vec::new();
    for (obs, level, below, watch, change) in rows {
        let d = decide(rules, &state, obs).unwrap_or_else(|e| panic!("{practice} {obs:?}: {e}"));
        let at = format!("{practice} {obs:?}: {}", d.explain());
        assert_eq!(d.state.level, *level, "{at}");
        assert_eq!(d.state.watch.as_ref().map_or(0, Watch::months_below), *below, "{at}");
        assert_eq!(d.watch, *watch, "{at}");
        assert_eq!(d.change.as_ref().map(|c| (c.kind, c.effective)), *change, "{at}");
        if let Some(c) = &d.change {
            assert_eq!((c.from.as_str(), c.to.as_str()), (state.level.as_str(), *level), "{at}");
        }
        state = d.state.clone();
        decisions.push(d);
    }
    decisions
}

fn history(decisions: &[Decision]) -> Vec<LevelChange> {
    decisions.iter().filter_map(|d| d.change.clone()).collect()
}

fn assert_levels_on(history: &[LevelChange], expected: &[(Date, &str)]) {
    for (day, level) in expected {
        assert_eq!(level_on(history, "potential", *day), *level, "level on {day}");
    }
}

#[test]
fn practice_a_upgrades_at_once_and_downgrades_to_the_latest_month_after_three() {
    let rules = RuleSet::new(vec![LevelRule::bank_default(1, date!(2026 - 01 - 01))]).unwrap();
    #[rustfmt::skip]
    let year: [Row; 14] = [
        (dy("2026-01-10", 60_000),    "gold",      0, None,                    up("2026-01-10")),
        (me("2026-01", 30_000),       "gold",      1, Some(Started),           None),
        (me("2026-02", 55_000),       "gold",      0, Some(Cleared),           None),
        (me("2026-03", 700_000),      "platinum",  0, None,                    up("2026-03-31")),
        (me("2026-04", 400_000),      "platinum",  1, Some(Started),           None),
        (me("2026-05", 450_000),      "platinum",  2, Some(Continued),         None),
        (dy("2026-06-15", 480_000),   "platinum",  2, None,                    None),
        (me("2026-06", 300_000),      "gold",      0, Some(ClosedByDowngrade), down("2026-07-01")),
        (me("2026-07", 40_000),       "gold",      1, Some(Started),           None),
        (me("2026-08", 2_500_000),    "growth",    0, Some(Cleared),           up("2026-08-31")),
        (me("2026-09", 2_000_000),    "growth",    0, None,                    None),
        (me("2026-10", 1_999_999),    "growth",    1, Some(Started),           None),
        (me("2026-11", 10_000),       "growth",    2, Some(Continued),         None),
        (me("2026-12", 0),            "potential", 0, Some(ClosedByDowngrade), down("2027-01-01")),
    ];
    let decisions = replay("practice A", &rules, &year);
    let june = &decisions[7];
    let window: Vec<String> = june.window.iter().map(|m| m.month.to_string()).collect();
    assert_eq!(window, ["2026-04", "2026-05", "2026-06"], "the three months below decided the downgrade");
    assert_levels_on(
        &history(&decisions),
        &[
            (date!(2026 - 01 - 09), "potential"),
            (date!(2026 - 01 - 10), "gold"),
            (date!(2026 - 03 - 30), "gold"),
            (date!(2026 - 03 - 31), "platinum"),
            (date!(2026 - 06 - 30), "platinum"),
            (date!(2026 - 07 - 01), "gold"),
            (date!(2026 - 08 - 31), "growth"),
            (date!(2026 - 12 - 31), "growth"),
            (date!(2027 - 01 - 01), "potential"),
        ],
    );
}

fn practice_b(version: u32) -> LevelRule {
    LevelRule {
        upgrade: UpgradeTiming::NextMonth,
        downgrade_to: DowngradeTarget::BestMonthInWindow,
        ..LevelRule::bank_default(version, date!(2026 - 01 - 01))
    }
}

#[test]
fn practice_b_upgrades_from_next_month_and_downgrades_to_the_best_month_after_three() {
    let rules = RuleSet::new(vec![practice_b(1)]).unwrap();
    #[rustfmt::skip]
    let year: [Row; 14] = [
        (dy("2026-01-10", 60_000),    "potential", 0, None,                    None),
        (me("2026-01", 30_000),       "potential", 0, None,                    None),
        (me("2026-02", 55_000),       "gold",      0, None,                    up("2026-03-01")),
        (me("2026-03", 700_000),      "platinum",  0, None,                    up("2026-04-01")),
        (dy("2026-04-20", 3_000_000), "platinum",  0, None,                    None),
        (me("2026-04", 400_000),      "platinum",  1, Some(Started),           None),
        (me("2026-05", 450_000),      "platinum",  2, Some(Continued),         None),
        (me("2026-06", 30_000),       "gold",      0, Some(ClosedByDowngrade), down("2026-07-01")),
        (me("2026-07", 40_000),       "gold",      1, Some(Started),           None),
        (me("2026-08", 600_000),      "platinum",  0, Some(Cleared),           up("2026-09-01")),
        (me("2026-09", 10_000),       "platinum",  1, Some(Started),           None),
        (me("2026-10", 60_000),       "platinum",  2, Some(Continued),         None),
        (me("2026-11", 20_000),       "gold",      0, Some(ClosedByDowngrade), down("2026-12-01")),
        (me("2026-12", 3_000_000),    "growth",    0, None,                    up("2027-01-01")),
    ];
    let decisions = replay("practice B", &rules, &year);
    // June: the latest month (30,000) reaches potential, the best (May, 450,000) gold.
    assert!(decisions[7].explain().contains("the level of the best month in the window"), "{}", decisions[7].explain());
    assert_levels_on(
        &history(&decisions),
        &[
            (date!(2026 - 02 - 28), "potential"),
            (date!(2026 - 03 - 01), "gold"),
            (date!(2026 - 04 - 01), "platinum"),
            (date!(2026 - 07 - 01), "gold"),
            (date!(2026 - 09 - 01), "platinum"),
            (date!(2026 - 12 - 01), "gold"),
            (date!(2027 - 01 - 01), "growth"),
        ],
    );
}

#[test]
fn practice_b_private_banking_waits_six_months_before_a_downgrade() {
    let mut rule = practice_b(1);
    rule.levels.push(LevelDef {
        code: "private".into(),
        name: "私人银行".into(),
        min_aum: 8_000_000 * YUAN,
        downgrade_after_months: Some(6),
    });
    let rules = RuleSet::new(vec![rule]).unwrap();
    #[rustfmt::skip]
    let year: [Row; 12] = [
        (me("2026-01", 9_000_000),    "private",   0, None,                    up("2026-02-01")),
        (me("2026-02", 7_000_000),    "private",   1, Some(Started),           None),
        (me("2026-03", 7_500_000),    "private",   2, Some(Continued),         None),
        (me("2026-04", 5_000_000),    "private",   3, Some(Continued),         None),
        (me("2026-05", 9_000_000),    "private",   0, Some(Cleared),           None),
        (me("2026-06", 3_000_000),    "private",   1, Some(Started),           None),
        (me("2026-07", 6_500_000),    "private",   2, Some(Continued),         None),
        (me("2026-08", 4_000_000),    "private",   3, Some(Continued),         None),
        (me("2026-09", 2_500_000),    "private",   4, Some(Continued),         None),
        (me("2026-10", 1_000_000),    "private",   5, Some(Continued),         None),
        (me("2026-11", 500_000),      "core",      0, Some(ClosedByDowngrade), down("2026-12-01")),
        (me("2026-12", 1_000_000),    "core",      1, Some(Started),           None),
    ];
    let decisions = replay("private banking", &rules, &year);
    assert_eq!(decisions[10].window.len(), 6, "six months decided the downgrade");
    assert_eq!(decisions[11].months_needed, 3, "a core customer is watched three months");
}

#[test]
fn a_rule_version_change_mid_year_applies_from_its_first_day_and_is_recorded() {
    let v1 = LevelRule::bank_default(1, date!(2026 - 01 - 01));
    let mut v2 = LevelRule::bank_default(2, date!(2026 - 07 - 01));
    v2.levels[1].min_aum = 100_000 * YUAN;
    v2.downgrade_after_months = 2;
    let rules = RuleSet::new(vec![v1, v2]).unwrap();
    #[rustfmt::skip]
    let year: [Row; 10] = [
        (me("2026-01", 80_000),       "gold",      0, None,                    up("2026-01-31")),
        (me("2026-02", 80_000),       "gold",      0, None,                    None),
        (me("2026-03", 80_000),       "gold",      0, None,                    None),
        (me("2026-04", 80_000),       "gold",      0, None,                    None),
        (me("2026-05", 80_000),       "gold",      0, None,                    None),
        (me("2026-06", 80_000),       "gold",      0, None,                    None),
        (dy("2026-07-15", 90_000),    "gold",      0, None,                    None),
        (me("2026-07", 80_000),       "gold",      1, Some(Started),           None),
        (me("2026-08", 80_000),       "potential", 0, Some(ClosedByDowngrade), down("2026-09-01")),
        (dy("2026-09-10", 120_000),   "gold",      0, None,                    up("2026-09-10")),
    ];
    let decisions = replay("rule change", &rules, &year);
    let versions: Vec<u32> = decisions.iter().map(|d| d.rule_version).collect();
    assert_eq!(versions, [1, 1, 1, 1, 1, 1, 2, 2, 2, 2]);
    let standards: Vec<i64> = decisions.iter().map(|d| d.standard / YUAN).collect();
    assert_eq!(standards, [0, 50_000, 50_000, 50_000, 50_000, 50_000, 100_000, 100_000, 100_000, 0]);
    assert!(history(&decisions).iter().map(|c| c.rule_version).eq([1, 2, 2]));
}

#[test]
fn a_downgrade_never_lands_at_or_above_the_current_level() {
    // Watched under v1 (gold from 50,000); v2 lowers gold to 30,000. At the third month
    // the best month (45,000) meets gold again under v2: the watch ends without a change.
    let mut v2 = practice_b(2);
    v2.effective_from = date!(2026 - 04 - 01);
    v2.levels[1].min_aum = 30_000 * YUAN;
    let rules = RuleSet::new(vec![practice_b(1), v2]).unwrap();
    #[rustfmt::skip]
    let year: [Row; 4] = [
        (me("2026-01", 60_000),      "gold",      0, None,                    up("2026-02-01")),
        (me("2026-02", 40_000),      "gold",      1, Some(Started),           None),
        (me("2026-03", 45_000),      "gold",      2, Some(Continued),         None),
        (me("2026-04", 20_000),      "gold",      0, Some(Cleared),           None),
    ];
    let decisions = replay("capped downgrade", &rules, &year);
    assert_eq!(decisions[3].rule_version, 2);
}
