//! Customer levels by AUM (客户等级): the level rules the bank configures, their
//! versions over time, and the level history of a customer.
//!
//! Contract:
//! - A rule version lists its levels from lowest to highest by minimum AUM (fen); the
//!   lowest starts at 0, minimums rise strictly, codes are unique and not blank, and a
//!   downgrade waits at least one month. `validate` says what is wrong, in full.
//! - The level an AUM reaches is the highest level whose minimum it meets ("at or above
//!   the minimum" qualifies); an AUM below 0 reaches the lowest level.
//! - A rule set holds validated versions; the rule in force on a day is the latest
//!   version whose `effective_from` is on or before that day. Later versions take effect
//!   later and carry higher version numbers.
//! - The level on a day is read from the change history: the latest change effective on
//!   or before that day (for changes effective the same day, the later one in the
//!   history), else the customer's initial level.
//! - How levels move (upgrades, watch, downgrades) is decided in
//!   [`super::level_decision`].

use serde::{Deserialize, Serialize};
use time::Date;

use super::aum::{Weights, YUAN};
use super::calendar::Month;

/// Why a level rule was refused or a level decision could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    /// A rule version without levels.
    #[error("rule version {version} has no levels")]
    NoLevels { version: u32 },
    /// The lowest level must take every customer.
    #[error("rule version {version}: the lowest level `{code}` must start at 0 fen, not {min_aum}")]
    LowestNotZero { version: u32, code: String, min_aum: i64 },
    /// Levels must rise strictly by minimum AUM.
    #[error(
        "rule version {version}: level `{code}` starts at {min_aum} fen, not above `{previous}`; \
         list levels from lowest to highest with rising minimums"
    )]
    NotAscending { version: u32, code: String, min_aum: i64, previous: String },
    /// A level code given twice.
    #[error("rule version {version}: level code `{code}` is used twice")]
    DuplicateCode { version: u32, code: String },
    /// A level without a code.
    #[error("rule version {version}: a level has a blank code")]
    BlankCode { version: u32 },
    /// A downgrade that would not wait for a month below the standard.
    #[error("rule version {version}: a downgrade must wait at least 1 month below the standard, not 0")]
    ZeroDowngradeMonths { version: u32 },
    /// A rule set without versions.
    #[error("a level rule set needs at least one rule version")]
    NoVersions,
    /// Two versions with one number, or later versions with lower numbers.
    #[error(
        "rule version {version} (from {effective_from}) must have a higher number than version {previous}, \
         which takes effect before it"
    )]
    VersionsOutOfOrder { version: u32, effective_from: Date, previous: u32 },
    /// Two versions taking effect the same day.
    #[error("rule versions {previous} and {version} both take effect on {effective_from}")]
    SameEffectiveDate { version: u32, previous: u32, effective_from: Date },
    /// An observation before the first version.
    #[error("no level rule is in force on {date}: the first rule version takes effect later")]
    NoRuleOn { date: Date },
    /// The customer's level is not a level of the rule in force.
    #[error(
        "the customer's level `{code}` is not a level of rule version {version}; re-level the customer under that rule"
    )]
    UnknownLevel { code: String, version: u32 },
    /// A month end seen before.
    #[error("month end {month} is already decided (the last decided month is {last}); a month end counts once")]
    MonthAlreadyDecided { month: Month, last: Month },
    /// A month end that skips a month.
    #[error("month end {month} arrived before month end {expected}; month ends are decided one month after another")]
    MonthSkipped { month: Month, expected: Month },
    /// A day in a month already closed by its month end.
    #[error("the day {date} falls in month {last} or earlier, whose month end is already decided")]
    DayInDecidedMonth { date: Date, last: Month },
    /// An observation dated before the customer's current level took effect.
    #[error("the observation of {date} is older than the customer's level, in force since {since}")]
    BeforeCurrentLevel { date: Date, since: Date },
    /// A change that would take effect after the calendar's last month.
    #[error("month {month} has no next month on the calendar")]
    EndOfCalendar { month: Month },
}

/// One level of a rule version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelDef {
    /// Stable code, e.g. `gold`.
    pub code: String,
    /// Name shown to staff, e.g. 金.
    pub name: String,
    /// Minimum weighted AUM in fen; reaching it qualifies.
    pub min_aum: i64,
    /// Months below the standard before a customer of this level is downgraded, when
    /// it differs from the rule's (private banking often waits 6 where others wait 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downgrade_after_months: Option<u32>,
}

/// When a customer whose AUM reaches a higher level is upgraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpgradeTiming {
    /// At once: a day's AUM upgrades that day; a month's daily average upgrades on the
    /// month's last day.
    Immediate,
    /// Only a month's daily average counts; the upgrade takes effect the first day of
    /// the next month.
    NextMonth,
}

/// Which level a customer is downgraded to after the months below the standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DowngradeTarget {
    /// The level the latest month's AUM reaches.
    LatestMonth,
    /// The level the best month's AUM in the window reaches.
    BestMonthInWindow,
}

impl DowngradeTarget {
    /// Plain words for explanations.
    pub fn describe(self) -> &'static str {
        match self {
            DowngradeTarget::LatestMonth => "the level of the latest month",
            DowngradeTarget::BestMonthInWindow => "the level of the best month in the window",
        }
    }
}

/// One version of the level rule, stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelRule {
    /// Version number; later versions have higher numbers.
    pub version: u32,
    /// First day this version is in force.
    #[serde(with = "super::calendar::iso_date")]
    pub effective_from: Date,
    /// Levels from lowest to highest.
    pub levels: Vec<LevelDef>,
    /// Class weights applied to AUM before levelling.
    pub weights: Weights,
    /// When upgrades take effect.
    pub upgrade: UpgradeTiming,
    /// Consecutive months below the standard before a downgrade (N ≥ 1).
    pub downgrade_after_months: u32,
    /// Which level a downgrade goes to.
    pub downgrade_to: DowngradeTarget,
}

impl LevelRule {
    /// The bank's default rule: 潜力 potential 0, 金 gold 50,000, 白金 platinum 500,000,
    /// 成长 growth 2,000,000, 核心 core 6,000,000 CNY; full weights; immediate upgrade;
    /// downgrade after 3 months to the level of the latest month.
    pub fn bank_default(version: u32, effective_from: Date) -> Self {
        let level = |code: &str, name: &str, min_aum: i64| LevelDef {
            code: code.to_string(),
            name: name.to_string(),
            min_aum,
            downgrade_after_months: None,
        };
        LevelRule {
            version,
            effective_from,
            levels: vec![
                level("potential", "潜力", 0),
                level("gold", "金", 50_000 * YUAN),
                level("platinum", "白金", 500_000 * YUAN),
                level("growth", "成长", 2_000_000 * YUAN),
                level("core", "核心", 6_000_000 * YUAN),
            ],
            weights: Weights::FULL,
            upgrade: UpgradeTiming::Immediate,
            downgrade_after_months: 3,
            downgrade_to: DowngradeTarget::LatestMonth,
        }
    }

    /// Checks the levels and the downgrade wait; the first fault found is returned.
    pub fn validate(&self) -> Result<(), LevelError> {
        let version = self.version;
        let lowest = self.levels.first().ok_or(LevelError::NoLevels { version })?;
        if lowest.min_aum != 0 {
            return Err(LevelError::LowestNotZero { version, code: lowest.code.clone(), min_aum: lowest.min_aum });
        }
        if self.levels.iter().any(|l| l.code.trim().is_empty()) {
            return Err(LevelError::BlankCode { version });
        }
        for (i, level) in self.levels.iter().enumerate() {
            if self.levels[..i].iter().any(|l| l.code == level.code) {
                return Err(LevelError::DuplicateCode { version, code: level.code.clone() });
            }
        }
        if let Some(w) = self.levels.windows(2).find(|w| w[1].min_aum <= w[0].min_aum) {
            let (previous, level) = (&w[0], &w[1]);
            return Err(LevelError::NotAscending {
                version,
                code: level.code.clone(),
                min_aum: level.min_aum,
                previous: previous.code.clone(),
            });
        }
        let mut waits = std::iter::once(self.downgrade_after_months)
            .chain(self.levels.iter().filter_map(|l| l.downgrade_after_months));
        if waits.any(|n| n == 0) {
            return Err(LevelError::ZeroDowngradeMonths { version });
        }
        Ok(())
    }

    /// The level `aum` reaches (the lowest when below every minimum); `None` only for a
    /// rule without levels.
    pub fn level_for(&self, aum: i64) -> Option<&LevelDef> {
        self.levels.get(self.rank_for(aum))
    }

    /// Position (0 = lowest) of the level `aum` reaches.
    pub fn rank_for(&self, aum: i64) -> usize {
        self.levels.iter().filter(|l| l.min_aum <= aum).count().saturating_sub(1)
    }

    /// Position (0 = lowest) of the level with this code.
    pub fn rank_of(&self, code: &str) -> Option<usize> {
        self.levels.iter().position(|l| l.code == code)
    }

    /// Months below the standard before a customer of `level` is downgraded.
    pub fn downgrade_after_months_for(&self, level: &LevelDef) -> u32 {
        level.downgrade_after_months.unwrap_or(self.downgrade_after_months)
    }
}

/// The rule versions over time, each validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    versions: Vec<LevelRule>,
}

impl RuleSet {
    /// Validates every version and their order in time.
    pub fn new(mut versions: Vec<LevelRule>) -> Result<Self, LevelError> {
        if versions.is_empty() {
            return Err(LevelError::NoVersions);
        }
        versions.iter().try_for_each(LevelRule::validate)?;
        versions.sort_by_key(|r| (r.effective_from, r.version));
        for w in versions.windows(2) {
            let (previous, rule) = (&w[0], &w[1]);
            if rule.effective_from == previous.effective_from {
                return Err(LevelError::SameEffectiveDate {
                    version: rule.version,
                    previous: previous.version,
                    effective_from: rule.effective_from,
                });
            }
            if rule.version <= previous.version {
                return Err(LevelError::VersionsOutOfOrder {
                    version: rule.version,
                    effective_from: rule.effective_from,
                    previous: previous.version,
                });
            }
        }
        Ok(RuleSet { versions })
    }

    /// The version in force on `date`: the latest whose `effective_from` is on or
    /// before it.
    pub fn rule_on(&self, date: Date) -> Option<&LevelRule> {
        self.versions.iter().rev().find(|r| r.effective_from <= date)
    }

    /// Every version, oldest first.
    pub fn versions(&self) -> &[LevelRule] {
        &self.versions
    }
}

/// Whether a level change went up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelChangeKind {
    /// To a higher level.
    Upgrade,
    /// To a lower level.
    Downgrade,
}

impl LevelChangeKind {
    /// Its stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            LevelChangeKind::Upgrade => "upgrade",
            LevelChangeKind::Downgrade => "downgrade",
        }
    }
}

impl TryFrom<String> for LevelChangeKind {
    type Error = String;

    /// The kind of a stored code.
    fn try_from(code: String) -> Result<Self, String> {
        match code.as_str() {
            "upgrade" => Ok(LevelChangeKind::Upgrade),
            "downgrade" => Ok(LevelChangeKind::Downgrade),
            _ => Err(format!("not a level change kind: {code:?}")),
        }
    }
}

/// One entry of a customer's level history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelChange {
    /// Level code before.
    pub from: String,
    /// Level code after.
    pub to: String,
    /// Up or down.
    pub kind: LevelChangeKind,
    /// First day at the new level.
    #[serde(with = "super::calendar::iso_date")]
    pub effective: Date,
    /// The rule version that decided it.
    pub rule_version: u32,
}

/// The customer's level on `date`, from its change history (in decision order) and
/// the level it started at.
pub fn level_on<'a>(history: &'a [LevelChange], initial: &'a str, date: Date) -> &'a str {
    history
        .iter()
        .enumerate()
        .filter(|(_, c)| c.effective <= date)
        .max_by_key(|(i, c)| (c.effective, *i))
        .map_or(initial, |(_, c)| c.to.as_str())
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn rule(version: u32, effective_from: Date) -> LevelRule {
        LevelRule::bank_default(version, effective_from)
    }

    #[test]
    fn the_bank_default_rule_has_the_five_published_levels() {
        let r = rule(1, date!(2026 - 01 - 01));
        assert_eq!(r.validate(), Ok(()));
        let got: Vec<(&str, &str, i64)> =
            r.levels.iter().map(|l| (l.code.as_str(), l.name.as_str(), l.min_aum)).collect();
        assert_eq!(
            got,
            [
                ("potential", "潜力", 0),
                ("gold", "金", 50_000 * YUAN),
                ("platinum", "白金", 500_000 * YUAN),
                ("growth", "成长", 2_000_000 * YUAN),
                ("core", "核心", 6_000_000 * YUAN),
            ]
        );
        assert_eq!(
            (r.upgrade, r.downgrade_after_months, r.downgrade_to, r.weights),
            (UpgradeTiming::Immediate, 3, DowngradeTarget::LatestMonth, Weights::FULL)
        );
    }

    #[test]
    fn a_rule_with_faulty_levels_is_refused_with_the_fault_named() {
        struct Case {
            name: &'static str,
            change: fn(&mut LevelRule),
            expected: LevelError,
        }
        let cases = [
            Case {
                name: "no levels at all",
                change: |r| r.levels.clear(),
                expected: LevelError::NoLevels { version: 7 },
            },
            Case {
                name: "the lowest level does not start at zero",
                change: |r| r.levels[0].min_aum = 100,
                expected: LevelError::LowestNotZero { version: 7, code: "potential".into(), min_aum: 100 },
            },
            Case {
                name: "a level below its predecessor",
                change: |r| r.levels.swap(2, 3),
                expected: LevelError::NotAscending {
                    version: 7,
                    code: "platinum".into(),
                    min_aum: 500_000 * YUAN,
                    previous: "growth".into(),
                },
            },
            Case {
                name: "two levels with one minimum",
                change: |r| r.levels[2].min_aum = r.levels[1].min_aum,
                expected: LevelError::NotAscending {
                    version: 7,
                    code: "platinum".into(),
                    min_aum: 50_000 * YUAN,
                    previous: "gold".into(),
                },
            },
            Case {
                name: "a code used twice",
                change: |r| r.levels[3].code = "gold".into(),
                expected: LevelError::DuplicateCode { version: 7, code: "gold".into() },
            },
            Case {
                name: "a blank code",
                change: |r| r.levels[1].code = " ".into(),
                expected: LevelError::BlankCode { version: 7 },
            },
            Case {
                name: "a rule downgrading without waiting",
                change: |r| r.downgrade_after_months = 0,
                expected: LevelError::ZeroDowngradeMonths { version: 7 },
            },
            Case {
                name: "a level downgrading without waiting",
                change: |r| r.levels[4].downgrade_after_months = Some(0),
                expected: LevelError::ZeroDowngradeMonths { version: 7 },
            },
        ];
        for c in cases {
            let mut r = rule(7, date!(2026 - 01 - 01));
            (c.change)(&mut r);
            assert_eq!(r.validate(), Err(c.expected), "{}", c.name);
        }
    }

    #[test]
    fn an_aum_reaches_the_highest_level_whose_minimum_it_meets() {
        let r = rule(1, date!(2026 - 01 - 01));
        let cases = [
            ("an overdrawn customer stays at the lowest level", -1, "potential"),
            ("nothing at all is the lowest level", 0, "potential"),
            ("one fen short of gold", 50_000 * YUAN - 1, "potential"),
            ("exactly at gold's minimum", 50_000 * YUAN, "gold"),
            ("exactly at platinum's minimum", 500_000 * YUAN, "platinum"),
            ("one fen short of growth", 2_000_000 * YUAN - 1, "platinum"),
            ("exactly at core's minimum", 6_000_000 * YUAN, "core"),
            ("far above the top", i64::MAX, "core"),
        ];
        for (name, aum, expected) in cases {
            assert_eq!(r.level_for(aum).map(|l| l.code.as_str()), Some(expected), "{name}");
            assert_eq!(r.rank_of(expected), Some(r.rank_for(aum)), "{name}");
        }
        assert_eq!(r.rank_of("diamond"), None);
    }

    #[test]
    fn thresholds_are_parameters_of_the_rule() {
        let mut strict = rule(2, date!(2026 - 01 - 01));
        strict.levels[1].min_aum = 100_000 * YUAN;
        strict.levels[2].min_aum = 800_000 * YUAN;
        let default = rule(1, date!(2026 - 01 - 01));
        let cases = [
            (50_000 * YUAN, "gold", "potential"),
            (100_000 * YUAN, "gold", "gold"),
            (600_000 * YUAN, "platinum", "gold"),
            (800_000 * YUAN, "platinum", "platinum"),
        ];
        for (aum, under_default, under_strict) in cases {
            assert_eq!(default.level_for(aum).map(|l| l.code.as_str()), Some(under_default), "{aum}");
            assert_eq!(strict.level_for(aum).map(|l| l.code.as_str()), Some(under_strict), "{aum}");
        }
    }

    #[test]
    fn a_level_may_wait_longer_than_its_rule_before_a_downgrade() {
        let mut r = rule(1, date!(2026 - 01 - 01));
        r.levels[4].downgrade_after_months = Some(6);
        assert_eq!(r.downgrade_after_months_for(&r.levels[4]), 6);
        assert_eq!(r.downgrade_after_months_for(&r.levels[3]), 3);
    }

    #[test]
    fn the_rule_in_force_is_the_latest_version_already_effective() {
        let rules = RuleSet::new(vec![rule(2, date!(2026 - 07 - 01)), rule(1, date!(2026 - 01 - 01))]).unwrap();
        let cases = [
            ("before the first version", date!(2025 - 12 - 31), None),
            ("the first version's first day", date!(2026 - 01 - 01), Some(1)),
            ("the day before the second version", date!(2026 - 06 - 30), Some(1)),
            ("the second version's first day", date!(2026 - 07 - 01), Some(2)),
            ("long after", date!(2030 - 01 - 01), Some(2)),
        ];
        for (name, day, expected) in cases {
            assert_eq!(rules.rule_on(day).map(|r| r.version), expected, "{name}");
        }
        let versions: Vec<u32> = rules.versions().iter().map(|r| r.version).collect();
        assert_eq!(versions, [1, 2]);
    }

    #[test]
    fn a_rule_set_refuses_versions_that_do_not_follow_each_other() {
        let mut bad = rule(3, date!(2026 - 09 - 01));
        bad.levels.clear();
        let cases = [
            ("no versions", vec![], LevelError::NoVersions),
            ("an invalid version", vec![rule(1, date!(2026 - 01 - 01)), bad], LevelError::NoLevels { version: 3 }),
            (
                "two versions on one day",
                vec![rule(1, date!(2026 - 01 - 01)), rule(2, date!(2026 - 01 - 01))],
                LevelError::SameEffectiveDate { version: 2, previous: 1, effective_from: date!(2026 - 01 - 01) },
            ),
            (
                "a later version with a lower number",
                vec![rule(2, date!(2026 - 01 - 01)), rule(1, date!(2026 - 07 - 01))],
                LevelError::VersionsOutOfOrder { version: 1, effective_from: date!(2026 - 07 - 01), previous: 2 },
            ),
            (
                "one number twice",
                vec![rule(1, date!(2026 - 01 - 01)), rule(1, date!(2026 - 07 - 01))],
                LevelError::VersionsOutOfOrder { version: 1, effective_from: date!(2026 - 07 - 01), previous: 1 },
            ),
        ];
        for (name, versions, expected) in cases {
            assert_eq!(RuleSet::new(versions), Err(expected), "{name}");
        }
    }

    #[test]
    fn a_rule_is_stored_as_json_and_read_back_unchanged() {
        let mut r = rule(4, date!(2026 - 03 - 01));
        r.levels[4].downgrade_after_months = Some(6);
        r.upgrade = UpgradeTiming::NextMonth;
        r.downgrade_to = DowngradeTarget::BestMonthInWindow;
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""effective_from":"2026-03-01""#), "{json}");
        assert!(json.contains(r#""upgrade":"next_month""#), "{json}");
        assert!(json.contains(r#""downgrade_to":"best_month_in_window""#), "{json}");
        assert_eq!(serde_json::from_str::<LevelRule>(&json).unwrap(), r);

        let written_by_hand = r#"{"version":1,"effective_from":"2026-01-01",
            "levels":[{"code":"potential","name":"潜力","min_aum":0},{"code":"gold","name":"金","min_aum":5000000}],
            "weights":{"deposit":10000,"wealth_management":10000,"settlement":10000,"channel_product":10000},
            "upgrade":"immediate","downgrade_after_months":3,"downgrade_to":"latest_month"}"#;
        let parsed: LevelRule = serde_json::from_str(written_by_hand).unwrap();
        assert_eq!((parsed.effective_from, parsed.levels[1].downgrade_after_months), (date!(2026 - 01 - 01), None));
        assert_eq!(parsed.validate(), Ok(()));
    }

    #[test]
    fn the_level_on_a_day_is_the_latest_change_already_effective() {
        let change = |from: &str, to: &str, kind, effective| LevelChange {
            from: from.into(),
            to: to.into(),
            kind,
            effective,
            rule_version: 1,
        };
        let history = [
            change("potential", "gold", LevelChangeKind::Upgrade, date!(2026 - 01 - 10)),
            change("gold", "platinum", LevelChangeKind::Upgrade, date!(2026 - 03 - 31)),
            change("platinum", "growth", LevelChangeKind::Upgrade, date!(2026 - 03 - 31)),
            change("growth", "gold", LevelChangeKind::Downgrade, date!(2026 - 07 - 01)),
        ];
        let cases = [
            ("before any change: the initial level", date!(2026 - 01 - 09), "potential"),
            ("on a change's effective day: the new level", date!(2026 - 01 - 10), "gold"),
            ("between changes: the earlier change's level", date!(2026 - 03 - 30), "gold"),
            ("two changes on one day: the later one in the history", date!(2026 - 03 - 31), "growth"),
            ("the day before a downgrade: the old level", date!(2026 - 06 - 30), "growth"),
            ("after the last change: its level", date!(2027 - 01 - 01), "gold"),
        ];
        for (name, day, expected) in cases {
            assert_eq!(level_on(&history, "potential", day), expected, "{name}");
        }
        assert_eq!(level_on(&[], "potential", date!(2026 - 05 - 01)), "potential");
    }
}
