//! Account balances over time: day-end snapshots, the balance on a day, and the
//! monthly daily average the bank levels customers by.
//!
//! Contract:
//! - A snapshot is an account's day-end balance in fen. A day without a snapshot
//!   carries the previous snapshot's balance forward; days before the first snapshot
//!   count 0; snapshots after the month are ignored; a closed account is a snapshot
//!   of 0. Negative balances (an overdrawn settlement account) count as they are: the
//!   average nets them against the credit days.
//! - The monthly daily average is the exact sum of the month's daily balances divided
//!   by the days in the month (28–31), rounded half away from zero (四舍五入) to the
//!   fen. Per class, the exact sums of all accounts are added first and rounded once,
//!   so the class figure does not depend on how balances are split across accounts.

use std::collections::BTreeMap;

use time::Date;

use super::aum::{AssetClass, ClassAmounts, clamp, div_round_half_away};
use super::calendar::Month;

/// Two balance snapshots of one account on the same day.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("two balance snapshots for {date}: an account has one day-end balance per day")]
pub struct BalanceError {
    /// The day given twice.
    pub date: Date,
}

/// One account's day-end balance snapshots, sorted by day, at most one per day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BalanceHistory {
    snapshots: Vec<(Date, i64)>,
}

/// One account's (or one class's) balances over a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthlyBalance {
    /// The month.
    pub month: Month,
    /// Days in the month (the divisor).
    pub days: u8,
    /// Sum of the daily balances, exact.
    pub balance_sum: i128,
    /// `balance_sum / days`, rounded half away from zero.
    pub daily_average: i64,
}

impl MonthlyBalance {
    fn from_sum(month: Month, balance_sum: i128) -> Self {
        let days = month.days();
        MonthlyBalance { month, days, balance_sum, daily_average: clamp(div_round_half_away(balance_sum, days.into())) }
    }
}

impl BalanceHistory {
    /// Takes snapshots in any order; refuses two on the same day.
    pub fn new(snapshots: impl IntoIterator<Item = (Date, i64)>) -> Result<Self, BalanceError> {
        let mut snapshots: Vec<(Date, i64)> = snapshots.into_iter().collect();
        snapshots.sort_by_key(|(d, _)| *d);
        if let Some(w) = snapshots.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(BalanceError { date: w[0].0 });
        }
        Ok(BalanceHistory { snapshots })
    }

    /// The balance at the end of `date` (point in time): the latest snapshot on or
    /// before it, or 0 before the first snapshot.
    pub fn balance_on(&self, date: Date) -> i64 {
        let after = self.snapshots.partition_point(|(d, _)| *d <= date);
        after.checked_sub(1).map_or(0, |i| self.snapshots[i].1)
    }

    /// The month's daily balances summed and averaged.
    pub fn month(&self, month: Month) -> MonthlyBalance {
        let (first, last) = (month.first_day(), month.last_day());
        let mut balance = i128::from(self.balance_on(first));
        let mut from = first;
        let mut sum: i128 = 0;
        let start = self.snapshots.partition_point(|(d, _)| *d <= first);
        let end = self.snapshots.partition_point(|(d, _)| *d <= last);
        for &(day, new_balance) in self.snapshots.get(start..end).unwrap_or_default() {
            sum += balance * i128::from((day - from).whole_days());
            balance = i128::from(new_balance);
            from = day;
        }
        sum += balance * i128::from((last - from).whole_days() + 1);
        MonthlyBalance::from_sum(month, sum)
    }
}

/// Per class, the month's daily average over many accounts: each class's exact sum of
/// daily balances divided by the days in the month, rounded once.
pub fn class_daily_averages(month: Month, accounts: &[(AssetClass, &BalanceHistory)]) -> ClassAmounts {
    let mut sums: BTreeMap<AssetClass, i128> = BTreeMap::new();
    for (class, history) in accounts {
        *sums.entry(*class).or_default() += history.month(month).balance_sum;
    }
    let mut out = ClassAmounts::new();
    for (class, sum) in sums {
        out.add(class, MonthlyBalance::from_sum(month, sum).daily_average);
    }
    out
}

/// [`class_daily_averages`] for every month from `from` to `to`, both included
/// (empty when `to` is before `from`).
pub fn class_daily_averages_by_month(
    from: Month,
    to: Month,
    accounts: &[(AssetClass, &BalanceHistory)],
) -> Vec<(Month, ClassAmounts)> {
    std::iter::successors(Some(from), |m| m.next())
        .take_while(|m| *m <= to)
        .map(|m| (m, class_daily_averages(m, accounts)))
        .collect()
}

/// Per class, the balances at the end of `date` (point in time).
pub fn class_balances_on(date: Date, accounts: &[(AssetClass, &BalanceHistory)]) -> ClassAmounts {
    let mut out = ClassAmounts::new();
    for (class, history) in accounts {
        out.add(*class, history.balance_on(date));
    }
    out
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn month(s: &str) -> Month {
        s.parse().unwrap()
    }

    fn history(snapshots: &[(Date, i64)]) -> BalanceHistory {
        BalanceHistory::new(snapshots.iter().copied()).unwrap()
    }

    #[test]
    fn monthly_daily_average_follows_the_carry_forward_rules() {
        struct Case {
            name: &'static str,
            month: &'static str,
            snaps: &'static [(Date, i64)],
            sum: i128,
            avg: i64,
        }
        let cases = [
            Case {
                name: "a snapshot before the month carries forward over every day",
                month: "2026-03",
                snaps: &[(date!(2026 - 02 - 10), 100_000)],
                sum: 31 * 100_000,
                avg: 100_000,
            },
            Case {
                name: "a gap carries the previous balance forward",
                month: "2026-04",
                snaps: &[(date!(2026 - 04 - 01), 100), (date!(2026 - 04 - 11), 400)],
                sum: 10 * 100 + 20 * 400,
                avg: 300,
            },
            Case {
                name: "days before the first snapshot count zero",
                month: "2026-04",
                snaps: &[(date!(2026 - 04 - 16), 3_000)],
                sum: 15 * 3_000,
                avg: 1_500,
            },
            Case {
                name: "a snapshot on the first day replaces the one carried in",
                month: "2026-04",
                snaps: &[(date!(2026 - 03 - 20), 999), (date!(2026 - 04 - 01), 300)],
                sum: 30 * 300,
                avg: 300,
            },
            Case {
                name: "a snapshot on the last day counts for that day only",
                month: "2026-04",
                snaps: &[(date!(2026 - 04 - 30), 3_000)],
                sum: 3_000,
                avg: 100,
            },
            Case {
                name: "a snapshot after the month is ignored",
                month: "2026-04",
                snaps: &[(date!(2026 - 03 - 31), 600), (date!(2026 - 05 - 01), 999_999)],
                sum: 30 * 600,
                avg: 600,
            },
            Case {
                name: "a closed account counts zero from its closing snapshot",
                month: "2026-04",
                snaps: &[(date!(2026 - 03 - 01), 3_000), (date!(2026 - 04 - 21), 0)],
                sum: 20 * 3_000,
                avg: 2_000,
            },
            Case {
                name: "february of a leap year divides by 29",
                month: "2028-02",
                snaps: &[(date!(2028 - 02 - 15), 2_900)],
                sum: 15 * 2_900,
                avg: 1_500,
            },
            Case {
                name: "february of a common year divides by 28",
                month: "2026-02",
                snaps: &[(date!(2026 - 02 - 15), 2_900)],
                sum: 14 * 2_900,
                avg: 1_450,
            },
            Case {
                name: "an overdraft on a settlement account nets against its credit days",
                month: "2026-04",
                snaps: &[(date!(2026 - 04 - 01), 1_000), (date!(2026 - 04 - 16), -500)],
                sum: 15 * 1_000 - 15 * 500,
                avg: 250,
            },
            Case {
                name: "a month wholly overdrawn averages negative",
                month: "2026-04",
                snaps: &[(date!(2026 - 01 - 01), -100)],
                sum: -3_000,
                avg: -100,
            },
            Case {
                name: "half a fen rounds up",
                month: "2026-04",
                snaps: &[(date!(2026 - 04 - 30), 15)],
                sum: 15,
                avg: 1,
            },
            Case {
                name: "less than half a fen rounds down",
                month: "2026-04",
                snaps: &[(date!(2026 - 04 - 30), 14)],
                sum: 14,
                avg: 0,
            },
            Case {
                name: "half a fen overdrawn rounds away from zero",
                month: "2026-04",
                snaps: &[(date!(2026 - 04 - 30), -15)],
                sum: -15,
                avg: -1,
            },
            Case { name: "an account without snapshots averages zero", month: "2026-04", snaps: &[], sum: 0, avg: 0 },
        ];
        for c in cases {
            let m = month(c.month);
            let got = history(c.snaps).month(m);
            assert_eq!(got.month, m, "{}", c.name);
            assert_eq!(got.days, m.days(), "{}", c.name);
            assert_eq!((got.balance_sum, got.daily_average), (c.sum, c.avg), "{}", c.name);
        }
    }

    #[test]
    fn the_balance_on_a_day_is_the_latest_snapshot_on_or_before_it() {
        let h = history(&[(date!(2026 - 04 - 11), 400), (date!(2026 - 04 - 01), 100), (date!(2026 - 04 - 20), 0)]);
        let cases = [
            ("before the first snapshot", date!(2026 - 03 - 31), 0),
            ("on the first snapshot", date!(2026 - 04 - 01), 100),
            ("between snapshots", date!(2026 - 04 - 10), 100),
            ("on a later snapshot", date!(2026 - 04 - 11), 400),
            ("after the account closed", date!(2027 - 01 - 01), 0),
        ];
        for (name, day, expected) in cases {
            assert_eq!(h.balance_on(day), expected, "{name}");
        }
    }

    #[test]
    fn two_snapshots_on_one_day_are_refused() {
        let got =
            BalanceHistory::new([(date!(2026 - 04 - 01), 1), (date!(2026 - 04 - 02), 2), (date!(2026 - 04 - 01), 3)]);
        assert_eq!(got, Err(BalanceError { date: date!(2026 - 04 - 01) }));
    }

    #[test]
    fn class_averages_add_exact_sums_before_rounding() {
        let a = history(&[(date!(2026 - 04 - 30), 15)]);
        let b = history(&[(date!(2026 - 04 - 30), 15)]);
        let settlement = history(&[(date!(2026 - 04 - 01), 600), (date!(2026 - 04 - 16), -600)]);
        let loan = history(&[(date!(2026 - 01 - 01), 90_000)]);
        let accounts = [
            (AssetClass::Deposit, &a),
            (AssetClass::Deposit, &b),
            (AssetClass::Settlement, &settlement),
            (AssetClass::Loan, &loan),
        ];
        let april = class_daily_averages(month("2026-04"), &accounts);
        // Rounded one by one the deposits would make 1 + 1; their exact sum 30 / 30 days is 1.
        assert_eq!(april.get(AssetClass::Deposit), 1);
        assert_eq!(april.get(AssetClass::Settlement), 0);
        assert_eq!(april.get(AssetClass::Loan), 90_000);
        assert_eq!(april.aum_total(), 1);

        let by_month = class_daily_averages_by_month(month("2026-03"), month("2026-05"), &accounts);
        let got: Vec<(String, i64, i64)> = by_month
            .iter()
            .map(|(m, c)| (m.to_string(), c.get(AssetClass::Deposit), c.get(AssetClass::Settlement)))
            .collect();
        assert_eq!(got, [("2026-03".into(), 0, 0), ("2026-04".into(), 1, 0), ("2026-05".into(), 30, -600)]);
        assert!(class_daily_averages_by_month(month("2026-05"), month("2026-03"), &accounts).is_empty());

        let on = class_balances_on(date!(2026 - 04 - 20), &accounts);
        assert_eq!((on.get(AssetClass::Deposit), on.get(AssetClass::Settlement), on.aum_total()), (0, -600, -600));
    }
}
