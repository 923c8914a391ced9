//! Analysis within the caller's data scope: the names an ad-hoc aggregation may group
//! by and measure, the month windows of churn signals, and the figures reported with
//! them.
//!
//! This module owns:
//! - [`GroupBy`] and [`Measure`]: the only dimensions and measures `AggregateCustomers`
//!   accepts, parsed from the names a request gives (unknown names are refused here,
//!   before any SQL); the store maps each to a fixed SQL fragment.
//! - [`decline_window`] / [`quiet_window`]: which months and days a churn signal looks
//!   at, from a reference month and a number of months.
//! - [`decline_bp`]: how much a monthly daily average fell, in basis points.
//!
//! Promises: every name [`GroupBy`] and [`Measure`] accept comes from the attribute
//! catalogue ([`super::tags::attribute`]) or is one of `level`, `org`, `tag`, `count`;
//! windows never reach before the calendar's first month (`None` instead).

use std::fmt;
use std::str::FromStr;

use time::Date;

use super::calendar::Month;
use super::expr::ValueKind;
use super::tags::{CustomerAttribute, attribute};

/// Most months a churn signal or a period may span.
pub const MAX_MONTHS: u32 = 60;

/// What `AggregateCustomers` groups customers by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The customer's home org (a copy of customer-profile's assignment); customers
    /// without one form the group with an empty key.
    Org,
    /// Each tag the customer has (a customer with two tags is in two groups; one
    /// without any in the group with an empty key).
    Tag,
    /// An attribute of the catalogue (`level`, `watch_months`, `aum.total`, …).
    Attribute(CustomerAttribute),
}

impl GroupBy {
    /// Whether the groups are numbers (and may be cut into buckets).
    pub fn is_numeric(self) -> bool {
        matches!(self, GroupBy::Attribute(a) if a.kind() == ValueKind::Number)
    }
}

impl FromStr for GroupBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "org" => Ok(GroupBy::Org),
            "tag" => Ok(GroupBy::Tag),
            name => attribute(name).map(GroupBy::Attribute).ok_or_else(|| {
                format!("unknown dimension {name:?}: org, tag, or an attribute ({})", attribute_names(|_| true))
            }),
        }
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupBy::Org => f.write_str("org"),
            GroupBy::Tag => f.write_str("tag"),
            GroupBy::Attribute(a) => f.write_str(&a.name()),
        }
    }
}

/// What `AggregateCustomers` answers per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// `count`: how many customers.
    Count,
    /// `sum(<attribute>)`: the sum of a number attribute over the group's customers
    /// (a null, such as `aum.month.total` before a month closed, adds nothing).
    Sum(CustomerAttribute),
}

impl FromStr for Measure {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "count" {
            return Ok(Measure::Count);
        }
        let numeric = |a: &CustomerAttribute| a.kind() == ValueKind::Number;
        s.strip_prefix("sum(")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|name| attribute(name.trim()))
            .filter(numeric)
            .map(Measure::Sum)
            .ok_or_else(|| format!("unknown measure {s:?}: count, or sum(<attribute>) of {}", attribute_names(numeric)))
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Measure::Count => f.write_str("count"),
            Measure::Sum(a) => write!(f, "sum({})", a.name()),
        }
    }
}

fn attribute_names(keep: impl Fn(&CustomerAttribute) -> bool) -> String {
    CustomerAttribute::ALL.iter().filter(|a| keep(a)).map(|a| a.name()).collect::<Vec<_>>().join(", ")
}

/// An ad-hoc aggregation, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aggregation {
    /// The groups.
    pub group_by: GroupBy,
    /// The figure per group.
    pub measure: Measure,
    /// Numeric groups cut into buckets of this width (the key is the bucket's lower
    /// bound, `floor(v / width) × width`); `None`: one group per value.
    pub bucket_width: Option<i64>,
}

/// A churn signal and its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChurnSignal {
    /// The weighted monthly daily average fell by more than `percent` % (1–100).
    AumDecline {
        /// The threshold.
        percent: u32,
    },
    /// No transaction posted in the window.
    NoTransactions,
}

/// The months an AUM-decline signal compares: the month `months` before `reference`,
/// and `reference`.
pub fn decline_window(reference: Month, months: u32) -> Option<(Month, Month)> {
    let start = (0..months).try_fold(reference, |m, _| m.prev())?;
    Some((start, reference))
}

/// The days a no-transaction signal looks at: the `months` months ending with
/// `reference`, from the first day of the first to the last day of `reference`.
pub fn quiet_window(reference: Month, months: u32) -> Option<(Date, Date)> {
    let first = (1..months).try_fold(reference, |m, _| m.prev())?;
    Some((first.first_day(), reference.last_day()))
}

/// How much `end` fell below `start`, in basis points of `start` (rounded half away
/// from zero; negative for a rise); 0 when `start` is not positive.
pub fn decline_bp(start: i64, end: i64) -> i64 {
    if start <= 0 {
        return 0;
    }
    let drop = (i128::from(start) - i128::from(end)) * 10_000;
    let start = i128::from(start);
    let (q, r) = (drop / start, drop % start);
    let rounded = if 2 * r.abs() >= start { q + drop.signum() } else { q };
    i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::aum::AssetClass;

    fn month(s: &str) -> Month {
        s.parse().unwrap()
    }

    #[test]
    fn dimensions_are_org_tag_or_an_attribute_of_the_catalogue() {
        let cases: &[(&str, Option<GroupBy>)] = &[
            ("org", Some(GroupBy::Org)),
            ("tag", Some(GroupBy::Tag)),
            ("level", Some(GroupBy::Attribute(CustomerAttribute::Level))),
            ("watch_months", Some(GroupBy::Attribute(CustomerAttribute::WatchMonths))),
            ("aum.deposit", Some(GroupBy::Attribute(CustomerAttribute::Aum(AssetClass::Deposit)))),
            ("aum.month.total", Some(GroupBy::Attribute(CustomerAttribute::AumMonthTotal))),
            ("age", Some(GroupBy::Attribute(CustomerAttribute::Age))),
            ("gender", Some(GroupBy::Attribute(CustomerAttribute::Gender))),
            ("ages", None),
            ("Level", None),
            ("", None),
            ("level; DROP TABLE customer", None),
            ("tag('vip')", None),
        ];
        for (name, expected) in cases {
            assert_eq!(name.parse::<GroupBy>().ok(), *expected, "{name:?}");
            if let Some(g) = expected {
                assert_eq!(g.to_string(), *name, "names round-trip");
            }
        }
        let refused = "ages".parse::<GroupBy>().unwrap_err();
        assert!(refused.contains("watch_months") && refused.contains("org, tag"), "{refused}");
    }

    #[test]
    fn only_number_attributes_are_numeric_groups() {
        for (name, numeric) in [("level", false), ("org", false), ("tag", false), ("watch_months", true)] {
            assert_eq!(name.parse::<GroupBy>().unwrap().is_numeric(), numeric, "{name}");
        }
    }

    #[test]
    fn measures_are_a_count_or_the_sum_of_a_number_attribute() {
        let cases: &[(&str, Option<Measure>)] = &[
            ("count", Some(Measure::Count)),
            ("sum(aum.total)", Some(Measure::Sum(CustomerAttribute::AumTotal))),
            ("sum(aum.wealth_management)", Some(Measure::Sum(CustomerAttribute::Aum(AssetClass::WealthManagement)))),
            ("sum(txn.amount_90d)", Some(Measure::Sum(CustomerAttribute::TxnAmount90d))),
            ("sum(level)", None),
            ("sum(aum.wealth)", None),
            ("sum(aum.total", None),
            ("aum.total", None),
            ("avg(aum.total)", None),
            ("COUNT", None),
            ("", None),
        ];
        for (name, expected) in cases {
            assert_eq!(name.parse::<Measure>().ok(), *expected, "{name:?}");
        }
        assert_eq!(Measure::Sum(CustomerAttribute::AumTotal).to_string(), "sum(aum.total)");
    }

    #[test]
    fn churn_windows_count_months_back_from_the_reference() {
        let cases = [
            ("2026-04", 1, "2026-03", (2026, 4, 1)),
            ("2026-04", 3, "2026-01", (2026, 2, 1)),
            ("2026-02", 3, "2025-11", (2025, 12, 1)),
            ("2026-01", 12, "2025-01", (2025, 2, 1)),
        ];
        for (reference, months, start, (y, m, d)) in cases {
            let (from, to) = decline_window(month(reference), months).unwrap();
            assert_eq!((from, to), (month(start), month(reference)), "{reference} − {months}");
            let first = Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap();
            assert_eq!(quiet_window(month(reference), months), Some((first, month(reference).last_day())));
        }
        assert_eq!(decline_window(month("-9999-01"), 1), None);
    }

    #[test]
    fn declines_are_basis_points_of_the_start_rounded_half_away_from_zero() {
        let cases = [
            (100, 50, 5_000),
            (100, 100, 0),
            (100, 150, -5_000),
            (3, 2, 3_333),
            (3, 1, 6_667),
            (20_000, 19_999, 1),
            (40_000, 39_998, 1),
            (40_000, 39_999, 0),
            (0, 10, 0),
            (-5, 10, 0),
            (100, -100, 20_000),
        ];
        for (start, end, bp) in cases {
            assert_eq!(decline_bp(start, end), bp, "{start} → {end}");
        }
    }
}
