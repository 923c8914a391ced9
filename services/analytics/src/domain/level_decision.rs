//! Level decisions (客户升降级): how one observation of a customer's AUM moves the
//! customer's level under the rule version in force.
//!
//! Contract, per observation (a day's weighted AUM, or a month's weighted daily average
//! at the month end), under the rule in force on the observation's day (a month end's
//! day is the month's last day):
//! - Upgrade, `Immediate`: an AUM at or above a higher level's minimum upgrades to the
//!   highest level it reaches at once — on that day for a day, on the month's last day
//!   for a month end. `NextMonth`: only month ends count, and the upgrade takes effect
//!   the first day of the next month; a day's AUM then changes nothing.
//! - An upgrade clears any watch.
//! - A month end below the current level's minimum starts a watch (1 month) or adds a
//!   month to it. When the months below reach the level's N, the customer is
//!   downgraded, effective the first day of the next month, to the level of the latest
//!   month (`LatestMonth`) or of the best month among the last N (`BestMonthInWindow`),
//!   never higher than the current level. A downgrade closes the watch; the new level
//!   is watched from the next month end on.
//! - A month end at or above the current level's minimum clears the watch (recovery).
//! - A day's AUM never starts a watch, never clears one without an upgrade, and never
//!   downgrades.
//! - Months below recorded under one rule version stay recorded when a new version
//!   takes effect; the new version's minimums and N decide from then on.
//! - Month ends are decided once each, one month after another; a day in a month whose
//!   month end is decided, or older than the current level, is refused. A refused
//!   observation changes nothing.
//! - Every decision records the rule version, the observation, the level the AUM
//!   reaches and, for a downgrade, the months that decided it; `explain` says it in
//!   plain words.

use serde::{Deserialize, Serialize};
use time::Date;

use super::aum::format_cny;
use super::calendar::Month;
use super::levels::{DowngradeTarget, LevelChange, LevelChangeKind, LevelError, RuleSet, UpgradeTiming};

/// A month's weighted daily-average AUM, as recorded in a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthAum {
    /// The month.
    pub month: Month,
    /// Its weighted monthly daily-average AUM in fen.
    pub aum: i64,
}

/// A customer below the standard of its level, month after month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    /// The first month below.
    pub since_month: Month,
    /// Every month below, oldest first (consecutive).
    pub monthly: Vec<MonthAum>,
}

impl Watch {
    /// Consecutive months below the standard so far.
    pub fn months_below(&self) -> u32 {
        u32::try_from(self.monthly.len()).unwrap_or(u32::MAX)
    }
}

/// A customer's level as decided so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelState {
    /// Level code.
    pub level: String,
    /// First day at this level; the first day of the next month after a month-end
    /// decision that takes effect then.
    #[serde(with = "super::calendar::iso_date")]
    pub since: Date,
    /// The watch, while below the standard.
    pub watch: Option<Watch>,
    /// The latest month end decided, so that each counts once and none is skipped.
    pub last_month_end: Option<Month>,
}

impl LevelState {
    /// A new customer on `date`: the lowest level of the rule in force, no watch.
    pub fn initial(rules: &RuleSet, date: Date) -> Result<Self, LevelError> {
        let rule = rules.rule_on(date).ok_or(LevelError::NoRuleOn { date })?;
        let lowest = rule.levels.first().ok_or(LevelError::NoLevels { version: rule.version })?;
        Ok(LevelState { level: lowest.code.clone(), since: date, watch: None, last_month_end: None })
    }
}

/// One observation of a customer's weighted AUM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observation {
    /// A day's weighted AUM (point in time, day-end balances).
    Day {
        /// The day.
        #[serde(with = "super::calendar::iso_date")]
        date: Date,
        /// Weighted AUM in fen.
        aum: i64,
    },
    /// A month's weighted monthly daily-average AUM, at the month end.
    MonthEnd {
        /// The month.
        month: Month,
        /// Weighted daily average in fen.
        daily_average: i64,
    },
}

impl Observation {
    /// The day it describes (a month end: the month's last day).
    pub fn date(&self) -> Date {
        match self {
            Observation::Day { date, .. } => *date,
            Observation::MonthEnd { month, .. } => month.last_day(),
        }
    }

    /// The AUM it carries, in fen.
    pub fn aum(&self) -> i64 {
        match self {
            Observation::Day { aum, .. } => *aum,
            Observation::MonthEnd { daily_average, .. } => *daily_average,
        }
    }
}

/// What a decision did to the watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchTransition {
    /// First month below the standard.
    Started,
    /// Another month below, not yet enough to downgrade.
    Continued,
    /// Back at or above the standard, or upgraded.
    Cleared,
    /// Enough months below: the customer was downgraded and the watch closed.
    ClosedByDowngrade,
}

/// The outcome of one observation, with what it was decided from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The customer's state afterwards.
    pub state: LevelState,
    /// The level change, if any.
    pub change: Option<LevelChange>,
    /// What happened to the watch, if anything.
    pub watch: Option<WatchTransition>,
    /// The rule version applied.
    pub rule_version: u32,
    /// The observation decided on.
    pub observation: Observation,
    /// The level before.
    pub level_before: String,
    /// The minimum AUM of the level before (the standard watched against).
    pub standard: i64,
    /// The level the observed AUM reaches under the rule.
    pub reached: String,
    /// Months below the standard that downgrade the level before (N).
    pub months_needed: u32,
    /// When the rule upgrades.
    pub upgrade: UpgradeTiming,
    /// Where the rule downgrades to.
    pub downgrade_to: DowngradeTarget,
    /// The months that decided a downgrade (empty otherwise).
    pub window: Vec<MonthAum>,
}

/// Decides what `obs` does to a customer in `state` under `rules`.
pub fn decide(rules: &RuleSet, state: &LevelState, obs: &Observation) -> Result<Decision, LevelError> {
    let on = obs.date();
    if on < state.since {
        return Err(LevelError::BeforeCurrentLevel { date: on, since: state.since });
    }
    match (obs, state.last_month_end) {
        (Observation::Day { date, .. }, Some(last)) if *date <= last.last_day() => {
            return Err(LevelError::DayInDecidedMonth { date: *date, last });
        }
        (Observation::MonthEnd { month, .. }, Some(last)) if *month <= last => {
            return Err(LevelError::MonthAlreadyDecided { month: *month, last });
        }
        (Observation::MonthEnd { month, .. }, Some(last)) if last.next() != Some(*month) => {
            let expected = last.next().ok_or(LevelError::EndOfCalendar { month: last })?;
            return Err(LevelError::MonthSkipped { month: *month, expected });
        }
        _ => {}
    }
    let rule = rules.rule_on(on).ok_or(LevelError::NoRuleOn { date: on })?;
    let unknown = || LevelError::UnknownLevel { code: state.level.clone(), version: rule.version };
    let current = rule.rank_of(&state.level).ok_or_else(unknown)?;
    let current_def = rule.levels.get(current).ok_or_else(unknown)?;
    let reached = rule.rank_for(obs.aum());
    let level_code = |rank: usize| rule.levels.get(rank).map_or_else(String::new, |l| l.code.clone());

    let mut d = Decision {
        state: state.clone(),
        change: None,
        watch: None,
        rule_version: rule.version,
        observation: *obs,
        level_before: state.level.clone(),
        standard: current_def.min_aum,
        reached: level_code(reached),
        months_needed: rule.downgrade_after_months_for(current_def),
        upgrade: rule.upgrade,
        downgrade_to: rule.downgrade_to,
        window: Vec::new(),
    };
    let change_to = |d: &mut Decision, rank: usize, kind: LevelChangeKind, effective: Date| {
        let to = level_code(rank);
        d.change = Some(LevelChange {
            from: state.level.clone(),
            to: to.clone(),
            kind,
            effective,
            rule_version: rule.version,
        });
        d.state.level = to;
        d.state.since = effective;
    };
    let first_of_next = |month: Month| month.next().map(Month::first_day).ok_or(LevelError::EndOfCalendar { month });

    let month = match obs {
        Observation::Day { date, .. } => {
            if reached > current && rule.upgrade == UpgradeTiming::Immediate {
                change_to(&mut d, reached, LevelChangeKind::Upgrade, *date);
                d.watch = d.state.watch.take().map(|_| WatchTransition::Cleared);
            }
            return Ok(d);
        }
        Observation::MonthEnd { month, .. } => *month,
    };
    d.state.last_month_end = Some(month);

    if reached > current {
        let effective = match rule.upgrade {
            UpgradeTiming::Immediate => month.last_day(),
            UpgradeTiming::NextMonth => first_of_next(month)?,
        };
        change_to(&mut d, reached, LevelChangeKind::Upgrade, effective);
        d.watch = d.state.watch.take().map(|_| WatchTransition::Cleared);
        return Ok(d);
    }
    if reached == current {
        d.watch = d.state.watch.take().map(|_| WatchTransition::Cleared);
        return Ok(d);
    }

    let mut watch = d.state.watch.take().unwrap_or(Watch { since_month: month, monthly: Vec::new() });
    let started = watch.monthly.is_empty();
    watch.monthly.push(MonthAum { month, aum: obs.aum() });
    if watch.months_below() < d.months_needed {
        d.watch = Some(if started { WatchTransition::Started } else { WatchTransition::Continued });
        d.state.watch = Some(watch);
        return Ok(d);
    }
    let needed = usize::try_from(d.months_needed).unwrap_or(usize::MAX);
    let window = watch.monthly.split_off(watch.monthly.len().saturating_sub(needed));
    let target_aum = match rule.downgrade_to {
        DowngradeTarget::LatestMonth => obs.aum(),
        DowngradeTarget::BestMonthInWindow => window.iter().map(|m| m.aum).max().unwrap_or(obs.aum()),
    };
    let target = rule.rank_for(target_aum).min(current);
    if target < current {
        change_to(&mut d, target, LevelChangeKind::Downgrade, first_of_next(month)?);
        d.watch = Some(WatchTransition::ClosedByDowngrade);
        d.window = window;
    } else {
        // Only after a rule change: the window's best month meets the new standard.
        d.watch = Some(WatchTransition::Cleared);
    }
    Ok(d)
}

impl Decision {
    /// The decision in plain words, for staff and audit.
    pub fn explain(&self) -> String {
        let seen = match self.observation {
            Observation::Day { date, aum } => format!("on {date} the day's AUM was {}", format_cny(aum)),
            Observation::MonthEnd { month, daily_average } => {
                format!("for {month} the daily-average AUM was {}", format_cny(daily_average))
            }
        };
        let mut out = format!(
            "Rule version {}: {seen}, which reaches {}; the customer was {} (standard {}).",
            self.rule_version,
            self.reached,
            self.level_before,
            format_cny(self.standard)
        );
        let months = |list: &[MonthAum]| {
            list.iter().map(|m| format!("{} {}", m.month, format_cny(m.aum))).collect::<Vec<_>>().join(", ")
        };
        let below = self.state.watch.as_ref().map_or(0, Watch::months_below);
        let outcome = match (&self.change, self.watch) {
            (Some(c), _) if c.kind == LevelChangeKind::Downgrade => format!(
                " Below the standard for {} consecutive months ({}): downgraded {} -> {}, {}, effective {}.",
                self.window.len(),
                months(&self.window),
                c.from,
                c.to,
                self.downgrade_to.describe(),
                c.effective
            ),
            (Some(c), watch) => {
                let cleared = if watch.is_some() { " The watch is cleared." } else { "" };
                format!(" Upgraded {} -> {}, effective {}.{cleared}", c.from, c.to, c.effective)
            }
            (None, Some(WatchTransition::Started | WatchTransition::Continued)) => format!(
                " Below the standard: on watch, {below} of {} months ({}). No change.",
                self.months_needed,
                months(self.state.watch.as_ref().map_or(&[][..], |w| &w.monthly[..]))
            ),
            (None, Some(_)) => " At or above the standard again: the watch is cleared. No change.".to_string(),
            (None, None) => {
                let reached_higher = self.observation.aum() >= self.standard && self.reached != self.level_before;
                match self.observation {
                    Observation::Day { .. } if reached_higher => {
                        " Upgrades under this rule wait for the month end. No change.".to_string()
                    }
                    Observation::Day { aum, .. } if aum < self.standard => {
                        " A day's AUM never starts a watch nor downgrades. No change.".to_string()
                    }
                    _ => " No change.".to_string(),
                }
            }
        };
        out.push_str(&outcome);
        out
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::super::aum::YUAN;
    use super::super::calendar::parse_day;
    use super::super::levels::LevelRule;
    use super::*;

    fn m(s: &str) -> Month {
        s.parse().unwrap()
    }

    fn rules(change: fn(&mut LevelRule)) -> RuleSet {
        let mut r = LevelRule::bank_default(1, date!(2026 - 01 - 01));
        change(&mut r);
        RuleSet::new(vec![r]).unwrap()
    }

    fn state(level: &str, since: Date, below: &[(&str, i64)], last: Option<&str>) -> LevelState {
        let monthly: Vec<MonthAum> = below.iter().map(|(month, aum)| MonthAum { month: m(month), aum: *aum }).collect();
        LevelState {
            level: level.into(),
            since,
            watch: monthly.first().map(|first| Watch { since_month: first.month, monthly: monthly.clone() }),
            last_month_end: last.map(m),
        }
    }

    fn d(text: &str) -> Date {
        parse_day(text).unwrap()
    }

    fn day(date: &str, yuan: i64) -> Observation {
        Observation::Day { date: d(date), aum: yuan * YUAN }
    }

    fn up(date: &str) -> Option<(LevelChangeKind, Date)> {
        Some((LevelChangeKind::Upgrade, d(date)))
    }

    fn down(date: &str) -> Option<(LevelChangeKind, Date)> {
        Some((LevelChangeKind::Downgrade, d(date)))
    }

    fn month_end(month: &str, yuan: i64) -> Observation {
        Observation::MonthEnd { month: m(month), daily_average: yuan * YUAN }
    }

    #[test]
    fn a_new_customer_starts_at_the_lowest_level_without_watch() {
        let s = LevelState::initial(&rules(|_| {}), date!(2026 - 02 - 10)).unwrap();
        assert_eq!(s, state("potential", date!(2026 - 02 - 10), &[], None));
        assert_eq!(
            LevelState::initial(&rules(|_| {}), date!(2025 - 12 - 31)),
            Err(LevelError::NoRuleOn { date: date!(2025 - 12 - 31) })
        );
    }

    #[test]
    fn one_observation_moves_the_level_by_the_rules() {
        use WatchTransition::*;
        struct Case {
            name: &'static str,
            rule: fn(&mut LevelRule),
            before: LevelState,
            obs: Observation,
            level: &'static str,
            change: Option<(LevelChangeKind, Date)>,
            watch: Option<WatchTransition>,
            months_below: u32,
        }
        let immediate: fn(&mut LevelRule) = |_| {};
        let next_month: fn(&mut LevelRule) = |r| r.upgrade = UpgradeTiming::NextMonth;
        let n1: fn(&mut LevelRule) = |r| r.downgrade_after_months = 1;
        let jan = date!(2026 - 01 - 01);
        let on_watch = |n: usize| &[("2026-01", 10_000 * YUAN), ("2026-02", 20_000 * YUAN)][..n];
        #[rustfmt::skip]
        let cases = [
            Case { name: "a day exactly at gold's minimum upgrades that day", rule: immediate,
                before: state("potential", jan, &[], None), obs: day("2026-03-05", 50_000),
                level: "gold", change: up("2026-03-05"), watch: None, months_below: 0 },
            Case { name: "a day one fen short of gold changes nothing", rule: immediate,
                before: state("potential", jan, &[], None),
                obs: Observation::Day { date: d("2026-03-05"), aum: 50_000 * YUAN - 1 },
                level: "potential", change: None, watch: None, months_below: 0 },
            Case { name: "a day may jump two levels at once", rule: immediate,
                before: state("potential", jan, &[], None), obs: day("2026-03-05", 2_500_000),
                level: "growth", change: up("2026-03-05"), watch: None, months_below: 0 },
            Case { name: "a day upgrading a customer on watch clears the watch", rule: immediate,
                before: state("gold", jan, on_watch(2), Some("2026-02")), obs: day("2026-03-05", 600_000),
                level: "platinum", change: up("2026-03-05"), watch: Some(Cleared), months_below: 0 },
            Case { name: "a day below the standard never starts a watch", rule: immediate,
                before: state("gold", jan, &[], None), obs: day("2026-03-05", 0),
                level: "gold", change: None, watch: None, months_below: 0 },
            Case { name: "a day back at the standard does not clear a watch", rule: immediate,
                before: state("gold", jan, on_watch(2), Some("2026-02")), obs: day("2026-03-05", 60_000),
                level: "gold", change: None, watch: None, months_below: 2 },
            Case { name: "under next-month upgrades a day changes nothing", rule: next_month,
                before: state("potential", jan, &[], None), obs: day("2026-03-05", 9_000_000),
                level: "potential", change: None, watch: None, months_below: 0 },
            Case { name: "under next-month upgrades a month end upgrades from next month", rule: next_month,
                before: state("potential", jan, &[], None), obs: month_end("2026-03", 50_000),
                level: "gold", change: up("2026-04-01"), watch: None, months_below: 0 },
            Case { name: "a december upgrade under next-month timing takes effect on new year's day", rule: next_month,
                before: state("potential", jan, &[], None), obs: month_end("2026-12", 500_000),
                level: "platinum", change: up("2027-01-01"), watch: None, months_below: 0 },
            Case { name: "under immediate upgrades a month end upgrades on the month's last day", rule: immediate,
                before: state("potential", jan, &[], None), obs: month_end("2026-02", 50_000),
                level: "gold", change: up("2026-02-28"), watch: None, months_below: 0 },
            Case { name: "a month end upgrading a customer on watch clears the watch", rule: next_month,
                before: state("gold", jan, on_watch(2), Some("2026-02")), obs: month_end("2026-03", 500_000),
                level: "platinum", change: up("2026-04-01"), watch: Some(Cleared), months_below: 0 },
            Case { name: "a first month end below the standard starts a watch", rule: immediate,
                before: state("gold", jan, &[], None), obs: month_end("2026-01", 49_999),
                level: "gold", change: None, watch: Some(Started), months_below: 1 },
            Case { name: "a second month end below continues the watch", rule: immediate,
                before: state("gold", jan, on_watch(1), Some("2026-01")), obs: month_end("2026-02", 0),
                level: "gold", change: None, watch: Some(Continued), months_below: 2 },
            Case { name: "a month end exactly at the standard clears the watch", rule: immediate,
                before: state("gold", jan, on_watch(2), Some("2026-02")), obs: month_end("2026-03", 50_000),
                level: "gold", change: None, watch: Some(Cleared), months_below: 0 },
            Case { name: "a month end at the standard without watch changes nothing", rule: immediate,
                before: state("gold", jan, &[], None), obs: month_end("2026-03", 400_000),
                level: "gold", change: None, watch: None, months_below: 0 },
            Case { name: "the third month end below downgrades from the next month's first day", rule: immediate,
                before: state("gold", jan, on_watch(2), Some("2026-02")), obs: month_end("2026-03", 0),
                level: "potential", change: down("2026-04-01"), watch: Some(ClosedByDowngrade), months_below: 0 },
            Case { name: "with N = 1 the first month end below downgrades at once", rule: n1,
                before: state("platinum", jan, &[], None), obs: month_end("2026-12", 60_000),
                level: "gold", change: down("2027-01-01"), watch: Some(ClosedByDowngrade), months_below: 0 },
            Case { name: "a customer at the lowest level is never on watch", rule: immediate,
                before: state("potential", jan, &[], None), obs: month_end("2026-03", -5_000),
                level: "potential", change: None, watch: None, months_below: 0 },
        ];
        for c in cases {
            let d = decide(&rules(c.rule), &c.before, &c.obs).unwrap();
            assert_eq!(d.state.level, c.level, "{}", c.name);
            assert_eq!(d.change.as_ref().map(|ch| (ch.kind, ch.effective)), c.change, "{}", c.name);
            assert_eq!(d.watch, c.watch, "{}", c.name);
            assert_eq!(d.state.watch.as_ref().map_or(0, Watch::months_below), c.months_below, "{}", c.name);
            let since = d.change.as_ref().map_or(c.before.since, |ch| ch.effective);
            assert_eq!(d.state.since, since, "{}", c.name);
            if let Some(ch) = &d.change {
                assert_eq!(
                    (ch.from.as_str(), ch.to.as_str(), ch.rule_version),
                    (c.before.level.as_str(), c.level, 1),
                    "{}",
                    c.name
                );
            }
        }
    }

    #[test]
    fn observations_out_of_order_are_refused() {
        let r = rules(|_| {});
        let march = state("gold", date!(2026 - 01 - 01), &[], Some("2026-03"));
        let since = |level: &str, since: Date| state(level, since, &[], None);
        #[rustfmt::skip]
        let cases = [
            ("a month end decided twice", march.clone(), month_end("2026-03", 0),
                LevelError::MonthAlreadyDecided { month: m("2026-03"), last: m("2026-03") }),
            ("an earlier month end", march.clone(), month_end("2026-02", 0),
                LevelError::MonthAlreadyDecided { month: m("2026-02"), last: m("2026-03") }),
            ("a skipped month", march.clone(), month_end("2026-05", 0),
                LevelError::MonthSkipped { month: m("2026-05"), expected: m("2026-04") }),
            ("a day of a decided month", march.clone(), day("2026-03-31", 0),
                LevelError::DayInDecidedMonth { date: d("2026-03-31"), last: m("2026-03") }),
            ("a day older than the level", since("gold", d("2026-03-10")), day("2026-03-09", 0),
                LevelError::BeforeCurrentLevel { date: d("2026-03-09"), since: d("2026-03-10") }),
            ("a day before any rule", since("gold", d("2025-01-01")), day("2025-06-01", 0),
                LevelError::NoRuleOn { date: d("2025-06-01") }),
            ("a level the rule does not know", since("diamond", d("2026-01-01")), day("2026-06-01", 0),
                LevelError::UnknownLevel { code: "diamond".into(), version: 1 }),
        ];
        for (name, before, obs, expected) in cases {
            assert_eq!(decide(&r, &before, &obs), Err(expected), "{name}");
        }
        let next = decide(&r, &march, &month_end("2026-04", 60_000)).unwrap();
        assert_eq!(next.state.last_month_end, Some(m("2026-04")), "the following month is accepted");
    }

    fn potential_on(since: Date) -> LevelState {
        state("potential", since, &[], None)
    }

    #[test]
    fn a_decision_explains_itself_in_plain_words() {
        let immediate = rules(|_| {});
        let next_month = rules(|r| r.upgrade = UpgradeTiming::NextMonth);
        let jan = date!(2026 - 01 - 01);
        let watched = state("gold", jan, &[("2026-01", 10_000 * YUAN), ("2026-02", 20_000 * YUAN)], Some("2026-02"));
        let cases = [
            (
                "an upgrade",
                &immediate,
                potential_on(jan),
                day("2026-03-05", 50_000),
                "Rule version 1: on 2026-03-05 the day's AUM was CNY 50,000.00, which reaches gold; \
                 the customer was potential (standard CNY 0.00). \
                 Upgraded potential -> gold, effective 2026-03-05.",
            ),
            (
                "a watch",
                &immediate,
                state("gold", jan, &[("2026-01", 10_000 * YUAN)], Some("2026-01")),
                month_end("2026-02", 20_000),
                "Rule version 1: for 2026-02 the daily-average AUM was CNY 20,000.00, which reaches potential; \
                 the customer was gold (standard CNY 50,000.00). Below the standard: \
                 on watch, 2 of 3 months (2026-01 CNY 10,000.00, 2026-02 CNY 20,000.00). No change.",
            ),
            (
                "a downgrade",
                &immediate,
                watched.clone(),
                month_end("2026-03", 0),
                "Rule version 1: for 2026-03 the daily-average AUM was CNY 0.00, which reaches potential; \
                 the customer was gold (standard CNY 50,000.00). \
                 Below the standard for 3 consecutive months \
                 (2026-01 CNY 10,000.00, 2026-02 CNY 20,000.00, 2026-03 CNY 0.00): \
                 downgraded gold -> potential, the level of the latest month, effective 2026-04-01.",
            ),
            (
                "a recovery",
                &immediate,
                watched.clone(),
                month_end("2026-03", 50_000),
                "Rule version 1: for 2026-03 the daily-average AUM was CNY 50,000.00, which reaches gold; \
                 the customer was gold (standard CNY 50,000.00). At or above the standard again: \
                 the watch is cleared. No change.",
            ),
            (
                "a day waiting for the month end",
                &next_month,
                potential_on(jan),
                day("2026-03-05", 50_000),
                "Rule version 1: on 2026-03-05 the day's AUM was CNY 50,000.00, which reaches gold; \
                 the customer was potential (standard CNY 0.00). Upgrades under this rule wait for the month end. \
                 No change.",
            ),
            (
                "a day below the standard",
                &immediate,
                watched,
                day("2026-03-05", 1_000),
                "Rule version 1: on 2026-03-05 the day's AUM was CNY 1,000.00, which reaches potential; \
                 the customer was gold (standard CNY 50,000.00). A day's AUM never starts a watch nor downgrades. \
                 No change.",
            ),
        ];
        for (name, rules, before, obs, expected) in cases {
            assert_eq!(decide(rules, &before, &obs).unwrap().explain(), expected, "{name}");
        }
    }

    #[test]
    fn a_state_and_a_decision_are_stored_as_json_and_read_back_unchanged() {
        let before = state("gold", date!(2026 - 01 - 01), &[("2026-01", 10_000 * YUAN)], Some("2026-01"));
        let d = decide(&rules(|_| {}), &before, &month_end("2026-02", 20_000)).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert!(
            json.contains(r#""observation":{"kind":"month_end","month":"2026-02","daily_average":2000000}"#),
            "{json}"
        );
        assert!(json.contains(r#""since":"2026-01-01""#), "{json}");
        assert_eq!(serde_json::from_str::<Decision>(&json).unwrap(), d);
    }
}
