//! RFM scoring: recency, frequency and monetary value over a look-back window, each cut
//! into quintiles scored 1–5, and the code R·100 + F·10 + M (111–555).
//!
//! Promises:
//! - The population is the customers with at least one transaction in the window.
//!   A customer without one gets no RFM at all (not 111) and does not move anyone
//!   else's score.
//! - Score of a value among n population values: 1 + ⌊5 · k / n⌋, where k is the number
//!   of values strictly worse (for frequency and monetary: strictly smaller; for recency:
//!   strictly more days, so the most recent customers score 5). Equal values therefore
//!   always share a score, and when ties are large the best value may score below 5:
//!   everybody equal scores 1, and a population of one scores 111.
//! - [`Quintiles::score`] (one customer against the current population, O(log n)) and
//!   [`score_all`] (full recompute) give identical scores.
//! - Money is in minor units (fen); no floating point anywhere.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{Date, Duration};

/// What can go wrong when preparing RFM input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RfmError {
    /// The last transaction is dated after the scoring date: the input was cut wrongly.
    #[error("the last transaction ({last_transaction}) is after the scoring date ({as_of})")]
    TransactionAfterAsOf {
        /// Date of the last transaction.
        last_transaction: Date,
        /// The scoring date.
        as_of: Date,
    },
    /// Population values handed over as sorted were not.
    #[error("population values are not in ascending order at position {position}")]
    NotSorted {
        /// Index of the first value smaller than the one before it.
        position: usize,
    },
}

/// The look-back window: the `days` days ending on (and including) the scoring date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RfmWindow {
    /// Length of the window in days.
    pub days: u32,
}

impl RfmWindow {
    /// The first day of the window ending on `as_of`; `None` for a window of 0 days.
    pub fn first_day(self, as_of: Date) -> Option<Date> {
        let back = self.days.checked_sub(1)?;
        as_of.checked_sub(Duration::days(i64::from(back)))
    }

    /// Days from the last transaction to `as_of` (0 = today), or `None` when the
    /// customer has no transaction in the window.
    pub fn recency(self, as_of: Date, last_transaction: Option<Date>) -> Result<Option<u32>, RfmError> {
        let Some(last) = last_transaction else { return Ok(None) };
        let days = (as_of - last).whole_days();
        if days < 0 {
            return Err(RfmError::TransactionAfterAsOf { last_transaction: last, as_of });
        }
        Ok(u32::try_from(days).ok().filter(|d| *d < self.days))
    }
}

/// One customer's activity in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// Days since the last transaction; `None` when there is none in the window (the
    /// customer is then outside the population and frequency and monetary are ignored).
    pub recency_days: Option<u32>,
    /// Number of transactions in the window.
    pub frequency: u32,
    /// Sum of the transactions in the window, in minor units.
    pub monetary: i64,
}

/// Which way is better for a measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Larger values score higher (frequency, monetary).
    Higher,
    /// Smaller values score higher (recency in days).
    Lower,
}

/// The population's values of one measure, ready to score any value in O(log n).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quintiles {
    sorted: Vec<i64>,
    better: Better,
}

impl Quintiles {
    /// Quintiles of the population `values` (any order).
    pub fn new(values: impl IntoIterator<Item = i64>, better: Better) -> Self {
        let mut sorted: Vec<i64> = values.into_iter().collect();
        sorted.sort_unstable();
        Self { sorted, better }
    }

    /// Quintiles of population values already in ascending order (as read from a
    /// store with `ORDER BY`); refuses values that are not.
    pub fn from_sorted(sorted: Vec<i64>, better: Better) -> Result<Self, RfmError> {
        if let Some(i) = sorted.windows(2).position(|w| w[0] > w[1]) {
            return Err(RfmError::NotSorted { position: i + 1 });
        }
        Ok(Self { sorted, better })
    }

    /// Size of the population.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether the population is empty.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The score 1–5 of `value`; `None` when the population is empty. A value not in the
    /// population scores by the same rule, at most 5.
    pub fn score(&self, value: i64) -> Option<u8> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let worse = match self.better {
            Better::Higher => self.sorted.partition_point(|&x| x < value),
            Better::Lower => n - self.sorted.partition_point(|&x| x <= value),
        };
        // 5·k/n < 5 for a member of the population; the cap only serves outsiders.
        let quintile = (5 * worse as u128 / n as u128).min(4);
        Some(1 + quintile as u8)
    }
}

/// A customer's RFM scores, each 1–5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rfm {
    /// Recency score (5 = most recent).
    pub r: u8,
    /// Frequency score (5 = most transactions).
    pub f: u8,
    /// Monetary score (5 = largest sum).
    pub m: u8,
}

impl Rfm {
    /// The RFM code R·100 + F·10 + M, 111–555.
    pub fn code(self) -> u16 {
        u16::from(self.r) * 100 + u16::from(self.f) * 10 + u16::from(self.m)
    }
}

/// The three quintiles of one population (overall or one product family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RfmPopulation {
    /// Recency quintiles (fewer days is better).
    pub recency: Quintiles,
    /// Frequency quintiles.
    pub frequency: Quintiles,
    /// Monetary quintiles.
    pub monetary: Quintiles,
}

impl RfmPopulation {
    /// The population of the customers in `activities` with a transaction in the window.
    pub fn new(activities: &[Activity]) -> Self {
        let active = || activities.iter().filter_map(|a| a.recency_days.map(|r| (r, a)));
        Self {
            recency: Quintiles::new(active().map(|(r, _)| i64::from(r)), Better::Lower),
            frequency: Quintiles::new(active().map(|(_, a)| i64::from(a.frequency)), Better::Higher),
            monetary: Quintiles::new(active().map(|(_, a)| a.monetary), Better::Higher),
        }
    }

    /// The RFM of one customer against this population; `None` when the customer has no
    /// transaction in the window (or the population is empty).
    pub fn score(&self, activity: &Activity) -> Option<Rfm> {
        let recency = activity.recency_days?;
        Some(Rfm {
            r: self.recency.score(i64::from(recency))?,
            f: self.frequency.score(i64::from(activity.frequency))?,
            m: self.monetary.score(activity.monetary)?,
        })
    }
}

/// Full recompute: the RFM of every customer, in input order (`None` for customers
/// without a transaction in the window).
pub fn score_all(activities: &[Activity]) -> Vec<Option<Rfm>> {
    let population = RfmPopulation::new(activities);
    activities.iter().map(|a| population.score(a)).collect()
}

/// [`score_all`] within each product family: a customer's RFM for a family is scored
/// only against the customers active in that family.
pub fn score_by_family<F: Ord + Clone>(by_family: &BTreeMap<F, Vec<Activity>>) -> BTreeMap<F, Vec<Option<Rfm>>> {
    by_family.iter().map(|(family, activities)| (family.clone(), score_all(activities))).collect()
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn active(recency_days: u32, frequency: u32, monetary: i64) -> Activity {
        Activity { recency_days: Some(recency_days), frequency, monetary }
    }

    const INACTIVE: Activity = Activity { recency_days: None, frequency: 0, monetary: 0 };

    #[test]
    fn quintile_scores_follow_the_counting_rule_with_ties_sharing_a_score() {
        struct Case {
            name: &'static str,
            population: &'static [i64],
            better: Better,
            expected: &'static [(i64, Option<u8>)],
        }
        use Better::{Higher, Lower};
        let cases = [
            Case { name: "an empty population scores nobody", population: &[], better: Higher, expected: &[(5, None)] },
            Case { name: "a population of one scores 1", population: &[7], better: Higher, expected: &[(7, Some(1))] },
            Case {
                name: "reversed, a population of one still scores 1",
                population: &[7],
                better: Lower,
                expected: &[(7, Some(1))],
            },
            Case {
                name: "all equal all score 1",
                population: &[5, 5, 5, 5, 5, 5],
                better: Higher,
                expected: &[(5, Some(1))],
            },
            Case {
                name: "five distinct values score 1 to 5",
                population: &[50, 10, 40, 20, 30],
                better: Higher,
                expected: &[(10, Some(1)), (20, Some(2)), (30, Some(3)), (40, Some(4)), (50, Some(5))],
            },
            Case {
                name: "ten distinct values score in pairs",
                population: &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
                better: Higher,
                expected: &[(1, Some(1)), (2, Some(1)), (3, Some(2)), (4, Some(2)), (9, Some(5)), (10, Some(5))],
            },
            Case {
                name: "fewer than five customers skip scores",
                population: &[10, 20, 30],
                better: Higher,
                expected: &[(10, Some(1)), (20, Some(2)), (30, Some(4))],
            },
            Case {
                name: "a tie at the bottom shares score 1",
                population: &[10, 10, 10, 20, 30],
                better: Higher,
                expected: &[(10, Some(1)), (20, Some(4)), (30, Some(5))],
            },
            Case {
                name: "a large tie at the top keeps the best value below 5",
                population: &[5, 10, 10, 10, 10],
                better: Higher,
                expected: &[(5, Some(1)), (10, Some(2))],
            },
            Case {
                name: "recency is reversed so the most recent scores 5",
                population: &[0, 3, 10, 30, 89],
                better: Lower,
                expected: &[(0, Some(5)), (3, Some(4)), (10, Some(3)), (30, Some(2)), (89, Some(1))],
            },
            Case {
                name: "reversed ties share a score",
                population: &[1, 1, 7, 7, 7],
                better: Lower,
                expected: &[(1, Some(4)), (7, Some(1))],
            },
            Case {
                name: "negative sums order below zero",
                population: &[-500, 0, 0, 100, 100],
                better: Higher,
                expected: &[(-500, Some(1)), (0, Some(2)), (100, Some(4))],
            },
            Case {
                name: "outsiders score by the same rule within 1 to 5",
                population: &[10, 20, 30, 40, 50],
                better: Higher,
                expected: &[(-1, Some(1)), (15, Some(2)), (99, Some(5))],
            },
            Case {
                name: "reversed outsiders too",
                population: &[10, 20, 30, 40, 50],
                better: Lower,
                expected: &[(0, Some(5)), (35, Some(3)), (99, Some(1))],
            },
        ];
        for case in cases {
            let q = Quintiles::new(case.population.iter().copied(), case.better);
            for &(value, expected) in case.expected {
                assert_eq!(q.score(value), expected, "{}: value {value}", case.name);
            }
        }
    }

    #[test]
    fn the_code_is_r_f_m_as_three_digits_from_111_to_555() {
        for r in 1..=5u8 {
            for f in 1..=5u8 {
                for m in 1..=5u8 {
                    let code = Rfm { r, f, m }.code();
                    assert_eq!(code.to_string(), format!("{r}{f}{m}"));
                    assert!((111..=555).contains(&code));
                }
            }
        }
    }

    #[test]
    fn a_full_recompute_scores_each_measure_and_skips_customers_without_transactions() {
        let activities = [
            active(0, 50, 5_000_000),
            active(89, 1, 100),
            INACTIVE,
            active(10, 20, 300_000),
            active(30, 5, 20_000),
            active(3, 40, 900_000),
        ];
        let codes: Vec<Option<u16>> = score_all(&activities).into_iter().map(|s| s.map(Rfm::code)).collect();
        assert_eq!(codes, [Some(555), Some(111), None, Some(333), Some(222), Some(444)]);
    }

    #[test]
    fn customers_without_transactions_do_not_move_anyone_elses_score() {
        let base = [active(1, 3, 10), active(5, 1, 20), active(9, 2, 30)];
        let with_inactive = [INACTIVE, base[0], INACTIVE, base[1], base[2], INACTIVE];
        let scores = score_all(&with_inactive);
        assert_eq!([scores[1], scores[3], scores[4]], score_all(&base)[..]);
        assert_eq!([scores[0], scores[2], scores[5]], [None, None, None]);
        assert_eq!(score_all(&[INACTIVE, INACTIVE]), [None, None]);
        assert_eq!(score_all(&[]), []);
    }

    /// Deterministic pseudo-random numbers (no dependency needed for test data).
    fn generated(seed: u64, n: usize) -> Vec<Activity> {
        let mut state = seed;
        let mut next = move |bound: u64| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % bound
        };
        (0..n)
            .map(|_| Activity {
                // About one in eight inactive; small ranges so that ties are frequent.
                recency_days: (next(8) != 0).then(|| next(90) as u32),
                frequency: next(12) as u32,
                monetary: next(40) as i64 * 50_000 - 100_000,
            })
            .collect()
    }

    /// The rule as written, counting by brute force.
    fn reference(activities: &[Activity]) -> Vec<Option<Rfm>> {
        let pop: Vec<&Activity> = activities.iter().filter(|a| a.recency_days.is_some()).collect();
        let n = pop.len();
        let score = |worse: usize| (1 + (5 * worse / n)) as u8;
        activities
            .iter()
            .map(|a| {
                let r = a.recency_days?;
                Some(Rfm {
                    r: score(pop.iter().filter(|p| p.recency_days > Some(r)).count()),
                    f: score(pop.iter().filter(|p| p.frequency < a.frequency).count()),
                    m: score(pop.iter().filter(|p| p.monetary < a.monetary).count()),
                })
            })
            .collect()
    }

    #[test]
    fn one_by_one_scoring_full_recompute_and_the_counting_rule_agree_on_generated_data() {
        for (seed, n) in [(1, 1), (2, 4), (3, 5), (4, 37), (5, 500), (6, 2_000)] {
            let activities = generated(seed, n);
            let full = score_all(&activities);
            assert_eq!(full, reference(&activities), "seed {seed}");

            // Incremental: the population read back sorted from a store, one customer at a time.
            let sorted = |f: fn(&Activity) -> Option<i64>| {
                let mut v: Vec<i64> = activities.iter().filter_map(f).collect();
                v.sort_unstable();
                v
            };
            let population = RfmPopulation {
                recency: Quintiles::from_sorted(sorted(|a| a.recency_days.map(i64::from)), Better::Lower).unwrap(),
                frequency: Quintiles::from_sorted(
                    sorted(|a| a.recency_days.map(|_| i64::from(a.frequency))),
                    Better::Higher,
                )
                .unwrap(),
                monetary: Quintiles::from_sorted(sorted(|a| a.recency_days.map(|_| a.monetary)), Better::Higher)
                    .unwrap(),
            };
            let one_by_one: Vec<_> = activities.iter().map(|a| population.score(a)).collect();
            assert_eq!(one_by_one, full, "seed {seed}");

            let mut reversed = activities.clone();
            reversed.reverse();
            let mut again = score_all(&reversed);
            again.reverse();
            assert_eq!(again, full, "input order does not matter, seed {seed}");
        }
    }

    #[test]
    fn values_said_to_be_sorted_must_be() {
        assert!(Quintiles::from_sorted(vec![1, 1, 2], Better::Higher).is_ok());
        assert_eq!(Quintiles::from_sorted(vec![1, 3, 2], Better::Higher), Err(RfmError::NotSorted { position: 2 }));
    }

    #[test]
    fn each_product_family_is_scored_against_its_own_population() {
        let by_family = BTreeMap::from([
            ("deposit", vec![active(1, 10, 1_000), active(2, 20, 2_000), INACTIVE]),
            ("wealth", vec![INACTIVE, active(40, 1, 9_000_000), active(5, 1, 9_000_000)]),
        ]);
        let scored = score_by_family(&by_family);
        let codes = |family| scored[family].iter().map(|s| s.map(Rfm::code)).collect::<Vec<_>>();
        assert_eq!(codes("deposit"), [Some(311), Some(133), None]);
        assert_eq!(codes("wealth"), [None, Some(111), Some(311)]);
    }

    #[test]
    fn recency_counts_days_back_from_the_scoring_date_within_the_window() {
        let as_of = date!(2024 - 03 - 31);
        let window = RfmWindow { days: 90 };
        struct Case {
            name: &'static str,
            last: Option<Date>,
            expected: Result<Option<u32>, RfmError>,
        }
        let cases = [
            Case { name: "no transaction", last: None, expected: Ok(None) },
            Case { name: "on the scoring date", last: Some(as_of), expected: Ok(Some(0)) },
            Case { name: "the first day of the window", last: Some(date!(2024 - 01 - 02)), expected: Ok(Some(89)) },
            Case { name: "the day before the window", last: Some(date!(2024 - 01 - 01)), expected: Ok(None) },
            Case {
                name: "after the scoring date",
                last: Some(date!(2024 - 04 - 01)),
                expected: Err(RfmError::TransactionAfterAsOf { last_transaction: date!(2024 - 04 - 01), as_of }),
            },
        ];
        for case in cases {
            assert_eq!(window.recency(as_of, case.last), case.expected, "{}", case.name);
        }
        assert_eq!(window.first_day(as_of), Some(date!(2024 - 01 - 02)));
        assert_eq!(RfmWindow { days: 1 }.first_day(as_of), Some(as_of));
        assert_eq!(RfmWindow { days: 0 }.first_day(as_of), None);
        assert_eq!(RfmWindow { days: 0 }.recency(as_of, Some(as_of)), Ok(None));
    }

    #[test]
    fn the_after_the_scoring_date_error_names_both_dates() {
        let e = RfmWindow { days: 30 }.recency(date!(2024 - 03 - 31), Some(date!(2024 - 04 - 02))).unwrap_err();
        assert_eq!(e.to_string(), "the last transaction (2024-04-02) is after the scoring date (2024-03-31)");
    }
}
