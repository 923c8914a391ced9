//! One customer's value replayed from its facts: AUM per asset class (point in time
//! and per closed month), and every level decision from its first balance on.
//!
//! The replay is the one definition of a customer's value: the incremental path (a
//! fact arrives, a merge moves facts) and the full recompute both call [`replay`] on
//! the customer's facts as stored, so they cannot disagree. Observations are taken in
//! date order: each day with a balance (its weighted AUM), and after the last day of
//! each closed month, the month's weighted daily average. Closed months before the
//! customer's first balance are skipped. Product weights apply to each balance
//! (rounded per balance, half away from zero), then the rule's class weights.

use std::collections::BTreeSet;

use time::Date;

use super::aum::{AssetClass, ClassAmounts};
use super::balances::{BalanceHistory, class_balances_on, class_daily_averages};
use super::calendar::Month;
use super::level_decision::{LevelState, Observation, decide};
use super::levels::{LevelChange, LevelChangeKind, LevelError, RuleSet, level_on};

/// One account's balances in CNY fen, with what its product is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// The product's asset class.
    pub class: AssetClass,
    /// The product's AUM weight, basis points.
    pub weight_bp: i32,
    /// Day-end balances in CNY fen.
    pub balances: Vec<(Date, i64)>,
}

/// A level change with the decision's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainedChange {
    /// The change.
    pub change: LevelChange,
    /// Why, in plain words.
    pub explanation: String,
}

/// A closed month's averages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthValue {
    /// The month.
    pub month: Month,
    /// Daily average per class, unweighted.
    pub by_class: ClassAmounts,
    /// Weighted daily-average AUM, as levelled.
    pub weighted: i64,
    /// The level on the month's last day, as [`level_on`] answers from the replayed
    /// changes (a downgrade decided at the month end takes effect the day after).
    pub level_at_end: String,
}

/// What a customer is worth, replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valuation {
    /// Level state after the last observation.
    pub state: LevelState,
    /// Every level change, in decision order.
    pub changes: Vec<ExplainedChange>,
    /// The latest day with a balance.
    pub as_of: Option<Date>,
    /// Balances per class at `as_of`, unweighted.
    pub by_class: ClassAmounts,
    /// Weighted AUM at `as_of`.
    pub weighted: i64,
    /// The latest closed month from the first balance on.
    pub latest_month: Option<MonthValue>,
    /// Every closed month from the one of the first balance on, oldest first (the
    /// last is `latest_month`).
    pub months: Vec<MonthValue>,
}

/// Why a replay failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The rules cannot decide (no rule in force on a day, a level the rule lacks).
    #[error(transparent)]
    Level(#[from] LevelError),
    /// One holding with two balances on one day.
    #[error("two balances of one holding on {0}")]
    DuplicateDay(Date),
}

/// `balance × weight_bp / 10000`, rounded half away from zero.
fn weighted(amount: i64, weight_bp: i32) -> i64 {
    let scaled = i128::from(amount) * i128::from(weight_bp);
    let half = 5_000 * scaled.signum();
    i64::try_from((scaled + half) / 10_000).unwrap_or(if scaled < 0 { i64::MIN } else { i64::MAX })
}

/// Replays `holdings` under `rules`, with `closed` months (ascending, consecutive).
/// `None` when the customer has no balance at all.
pub fn replay(rules: &RuleSet, holdings: &[Holding], closed: &[Month]) -> Result<Option<Valuation>, ReplayError> {
    let days: BTreeSet<Date> = holdings.iter().flat_map(|h| h.balances.iter().map(|(d, _)| *d)).collect();
    let (Some(&first), Some(&last)) = (days.first(), days.last()) else {
        return Ok(None);
    };
    let plain = histories(holdings, |amount, _| amount)?;
    let weighted_histories = histories(holdings, weighted)?;
    let plain: Vec<(AssetClass, &BalanceHistory)> = plain.iter().map(|(c, h)| (*c, h)).collect();
    let weighted_refs: Vec<(AssetClass, &BalanceHistory)> = weighted_histories.iter().map(|(c, h)| (*c, h)).collect();
    let levelled = |amounts: ClassAmounts, on: Date| -> Result<i64, ReplayError> {
        let rule = rules.rule_on(on).ok_or(ReplayError::Level(LevelError::NoRuleOn { date: on }))?;
        Ok(amounts.weighted_total(&rule.weights))
    };

    let first_month = Month::of(first);
    let months: Vec<Month> = closed.iter().copied().filter(|m| *m >= first_month).collect();
    let mut state = LevelState::initial(rules, first)?;
    let mut changes = Vec::new();
    let mut observe = |obs: Observation, state: &mut LevelState| -> Result<(), ReplayError> {
        if let Some(change) = reseat(rules, state, &obs) {
            changes.push(change);
        }
        let decision = decide(rules, state, &obs)?;
        if let Some(change) = &decision.change {
            changes.push(ExplainedChange { change: change.clone(), explanation: decision.explain() });
        }
        *state = decision.state;
        Ok(())
    };
    let mut month_averages = Vec::with_capacity(months.len());
    let mut pending_months = months.iter().peekable();
    for &day in &days {
        while let Some(month) = pending_months.next_if(|m| m.last_day() < day) {
            let average = levelled(class_daily_averages(*month, &weighted_refs), month.last_day())?;
            month_averages.push(average);
            observe(Observation::MonthEnd { month: *month, daily_average: average }, &mut state)?;
        }
        let aum = levelled(class_balances_on(day, &weighted_refs), day)?;
        observe(Observation::Day { date: day, aum }, &mut state)?;
    }
    for month in pending_months {
        let average = levelled(class_daily_averages(*month, &weighted_refs), month.last_day())?;
        month_averages.push(average);
        observe(Observation::MonthEnd { month: *month, daily_average: average }, &mut state)?;
    }

    let history: Vec<LevelChange> = changes.iter().map(|c| c.change.clone()).collect();
    let initial = history.first().map_or(state.level.as_str(), |c| c.from.as_str());
    let month_values: Vec<MonthValue> = months
        .iter()
        .zip(month_averages)
        .map(|(&month, weighted)| MonthValue {
            month,
            by_class: class_daily_averages(month, &plain),
            weighted,
            level_at_end: level_on(&history, initial, month.last_day()).to_string(),
        })
        .collect();
    Ok(Some(Valuation {
        state,
        changes,
        as_of: Some(last),
        by_class: class_balances_on(last, &plain),
        weighted: levelled(class_balances_on(last, &weighted_refs), last)?,
        latest_month: month_values.last().cloned(),
        months: month_values,
    }))
}

/// A rule version without the customer's level (the bank renamed or dropped levels):
/// the customer is re-rated on the level the observed AUM reaches under it, from the
/// observation's day, its watch dropped. `None` when the level exists.
fn reseat(rules: &RuleSet, state: &mut LevelState, obs: &Observation) -> Option<ExplainedChange> {
    let on = obs.date();
    let rule = rules.rule_on(on)?;
    if rule.rank_of(&state.level).is_some() {
        return None;
    }
    let reached = rule.level_for(obs.aum())?;
    let previous_min = rules
        .versions()
        .iter()
        .rev()
        .filter(|r| r.effective_from <= on)
        .find_map(|r| r.levels.iter().find(|l| l.code == state.level))
        .map_or(0, |l| l.min_aum);
    let kind = if reached.min_aum >= previous_min { LevelChangeKind::Upgrade } else { LevelChangeKind::Downgrade };
    let change = LevelChange {
        from: state.level.clone(),
        to: reached.code.clone(),
        kind,
        effective: on,
        rule_version: rule.version,
    };
    let explanation = format!(
        "rule version {} has no level {}: re-rated on {} ({}) by the AUM of {on}",
        rule.version, state.level, reached.code, reached.name
    );
    state.level = reached.code.clone();
    state.since = on;
    state.watch = None;
    Some(ExplainedChange { change, explanation })
}

/// One balance history per holding, amounts mapped by `f(amount, weight_bp)`.
fn histories(
    holdings: &[Holding],
    f: impl Fn(i64, i32) -> i64,
) -> Result<Vec<(AssetClass, BalanceHistory)>, ReplayError> {
    holdings
        .iter()
        .map(|h| {
            let history = BalanceHistory::new(h.balances.iter().map(|(d, a)| (*d, f(*a, h.weight_bp))))
                .map_err(|e| ReplayError::DuplicateDay(e.date))?;
            Ok((h.class, history))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::domain::aum::YUAN;
    use crate::domain::levels::{LevelDef, LevelRule};

    fn rules() -> RuleSet {
        RuleSet::new(vec![LevelRule::bank_default(1, date!(2000 - 01 - 01))]).unwrap()
    }

    fn month(y: i32, m: u8) -> Month {
        Month::new(y, m).unwrap()
    }

    fn deposit(balances: &[(Date, i64)]) -> Holding {
        Holding { class: AssetClass::Deposit, weight_bp: 10_000, balances: balances.to_vec() }
    }

    #[test]
    fn a_customer_without_balances_has_no_valuation() {
        assert_eq!(replay(&rules(), &[], &[]).unwrap(), None);
    }

    #[test]
    fn a_day_reaching_gold_upgrades_at_once_under_the_default_rule() {
        let holdings = [deposit(&[(date!(2026 - 03 - 01), 10_000 * YUAN), (date!(2026 - 03 - 10), 60_000 * YUAN)])];
        let v = replay(&rules(), &holdings, &[]).unwrap().unwrap();
        assert_eq!(v.state.level, "gold");
        assert_eq!(v.changes.len(), 1);
        assert_eq!(v.changes[0].change.kind, LevelChangeKind::Upgrade);
        assert_eq!(v.changes[0].change.effective, date!(2026 - 03 - 10));
        assert_eq!(v.as_of, Some(date!(2026 - 03 - 10)));
        assert_eq!(v.by_class.get(AssetClass::Deposit), 60_000 * YUAN);
        assert!(!v.changes[0].explanation.is_empty());
    }

    #[test]
    fn three_closed_months_below_gold_downgrade_from_the_next_month() {
        let holdings = [deposit(&[(date!(2026 - 01 - 01), 60_000 * YUAN), (date!(2026 - 01 - 02), 1_000 * YUAN)])];
        let closed = [month(2026, 1), month(2026, 2), month(2026, 3)];
        let v = replay(&rules(), &holdings, &closed).unwrap().unwrap();
        let kinds: Vec<_> = v.changes.iter().map(|c| (c.change.kind, c.change.effective)).collect();
        assert_eq!(
            kinds,
            [(LevelChangeKind::Upgrade, date!(2026 - 01 - 01)), (LevelChangeKind::Downgrade, date!(2026 - 04 - 01))]
        );
        assert_eq!(v.state.level, "potential");
        let latest = v.latest_month.unwrap();
        assert_eq!(latest.month, month(2026, 3));
        assert_eq!(latest.weighted, 1_000 * YUAN);
    }

    #[test]
    fn every_closed_month_keeps_its_averages_and_the_level_on_its_last_day() {
        let holdings = [deposit(&[(date!(2026 - 01 - 01), 60_000 * YUAN), (date!(2026 - 01 - 02), 1_000 * YUAN)])];
        let closed = [month(2025, 12), month(2026, 1), month(2026, 2), month(2026, 3), month(2026, 4)];
        let v = replay(&rules(), &holdings, &closed).unwrap().unwrap();
        let months: Vec<_> =
            v.months.iter().map(|m| (m.month.to_string(), m.weighted, m.level_at_end.as_str())).collect();
        assert_eq!(
            months,
            [
                ("2026-01".to_string(), (60_000 * YUAN + 30 * 1_000 * YUAN + 15) / 31, "gold"),
                ("2026-02".to_string(), 1_000 * YUAN, "gold"),
                ("2026-03".to_string(), 1_000 * YUAN, "gold"),
                ("2026-04".to_string(), 1_000 * YUAN, "potential"),
            ],
            "December is before the first balance; the downgrade decided at March's end counts from April 1"
        );
        assert_eq!(v.months[0].by_class.get(AssetClass::Deposit), v.months[0].weighted);
        assert_eq!(v.latest_month.as_ref(), v.months.last());
    }

    #[test]
    fn product_weights_and_loans_shape_the_levelled_aum() {
        let holdings = [
            Holding {
                class: AssetClass::WealthManagement,
                weight_bp: 5_000,
                balances: vec![(date!(2026 - 05 - 01), 120_000 * YUAN)],
            },
            Holding {
                class: AssetClass::Loan,
                weight_bp: 10_000,
                balances: vec![(date!(2026 - 05 - 01), -500_000 * YUAN)],
            },
        ];
        let v = replay(&rules(), &holdings, &[]).unwrap().unwrap();
        assert_eq!(v.weighted, 60_000 * YUAN, "half the wealth product; the loan never counts");
        assert_eq!(v.by_class.get(AssetClass::Loan), -500_000 * YUAN, "shown apart");
        assert_eq!(v.state.level, "gold");
    }

    #[test]
    fn closed_months_before_the_first_balance_are_skipped() {
        let holdings = [deposit(&[(date!(2026 - 03 - 15), 100 * YUAN)])];
        let v = replay(&rules(), &holdings, &[month(2026, 1), month(2026, 2), month(2026, 3)]).unwrap().unwrap();
        assert_eq!(v.latest_month.map(|m| m.month), Some(month(2026, 3)));
        assert!(v.changes.is_empty());
    }

    #[test]
    fn a_rule_version_without_the_customers_level_re_rates_it_by_its_aum() {
        let mut renamed = LevelRule::bank_default(1, date!(2026 - 02 - 01));
        renamed.levels = vec![
            LevelDef { code: "mass".into(), name: "大众".into(), min_aum: 0, downgrade_after_months: None },
            LevelDef {
                code: "vip".into(), name: "贵宾".into(), min_aum: 40_000 * YUAN, downgrade_after_months: None
            },
        ];
        let rules = RuleSet::new(vec![LevelRule::bank_default(0, date!(2000 - 01 - 01)), renamed]).unwrap();
        let holdings = [deposit(&[(date!(2026 - 01 - 05), 60_000 * YUAN), (date!(2026 - 02 - 03), 45_000 * YUAN)])];
        let v = replay(&rules, &holdings, &[]).unwrap().unwrap();
        let steps: Vec<_> =
            v.changes.iter().map(|c| (c.change.from.as_str(), c.change.to.as_str(), c.change.effective)).collect();
        assert_eq!(steps, [("potential", "gold", date!(2026 - 01 - 05)), ("gold", "vip", date!(2026 - 02 - 03))]);
        assert_eq!(v.changes[1].change.kind, LevelChangeKind::Downgrade, "vip's minimum is below gold's");
        assert!(v.changes[1].explanation.contains("has no level gold"));
    }

    #[test]
    fn weights_round_half_away_from_zero() {
        for (amount, weight, expected) in [(1, 5_000, 1), (-1, 5_000, -1), (3, 3_333, 1), (10_001, 10_000, 10_001)] {
            assert_eq!(weighted(amount, weight), expected, "{amount} × {weight}bp");
        }
    }
}
