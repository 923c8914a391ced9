//! Scoring one customer under one scorecard version (`super::scorecard`), and the score's
//! explanation: which band of which metric gave how many points, the total and the grade.
//!
//! Promises: a metric the customer has no value for scores 0 points and its line says
//! "no value"; the score records the scorecard code and version it used; under a
//! scorecard that passes validation every value falls in exactly one band and every
//! total gets a grade.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::scorecard::{Scorecard, write_range};

impl Scorecard {
    /// Scores one customer; `value_of` gives the customer's value of a metric, `None`
    /// when there is none (0 points). Meant for a validated scorecard; on another, a
    /// value in no band scores 0 and overlapping bands give the first band's points.
    pub fn score(&self, value_of: impl Fn(&str) -> Option<i64>) -> Score {
        let lines: Vec<ScoreLine> = self
            .metrics
            .iter()
            .map(|m| {
                let value = value_of(&m.metric);
                let band =
                    value.and_then(|v| m.bands.iter().position(|b| b.contains(v)).map(|index| (index, m.bands[index])));
                ScoreLine {
                    metric: m.metric.clone(),
                    value,
                    band: band.map(|(index, b)| BandHit { index, from: b.from, to: b.to }),
                    points: band.map_or(0, |(_, b)| b.points),
                }
            })
            .collect();
        let total = lines.iter().map(|l| i64::from(l.points)).sum();
        Score {
            scorecard: self.code.clone(),
            version: self.version,
            total,
            grade: self.grade_for(total).map(str::to_string),
            lines,
        }
    }
}

/// One customer's score under one scorecard version, with its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    /// Scorecard code.
    pub scorecard: String,
    /// Scorecard version used.
    pub version: u32,
    /// Sum of the points.
    pub total: i64,
    /// The grade; `None` only under a scorecard that fails validation.
    pub grade: Option<String>,
    /// One line per metric, in scorecard order.
    pub lines: Vec<ScoreLine>,
}

/// The points one metric gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreLine {
    /// The metric.
    pub metric: String,
    /// The customer's value; `None` when missing.
    pub value: Option<i64>,
    /// The band the value fell in; `None` when the value is missing (or, under an
    /// invalid scorecard, in no band).
    pub band: Option<BandHit>,
    /// Points given.
    pub points: i32,
}

/// The band a value fell in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandHit {
    /// Position of the band in the metric's list, 0-based (shown 1-based).
    pub index: usize,
    /// Its lower end (included).
    pub from: Option<i64>,
    /// Its upper end (excluded).
    pub to: Option<i64>,
}

/// A heading with total and grade, then one line per metric.
impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scorecard {} version {}: total {} → ", self.scorecard, self.version, self.total)?;
        match &self.grade {
            Some(grade) => write!(f, "grade {grade}")?,
            None => f.write_str("no grade")?,
        }
        for line in &self.lines {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

/// `metric = value: band n [from, to) → p points`.
impl fmt::Display for ScoreLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.value, self.band) {
            (None, _) => write!(f, "{}: no value", self.metric)?,
            (Some(v), None) => write!(f, "{} = {v}: in no band", self.metric)?,
            (Some(v), Some(band)) => {
                write!(f, "{} = {v}: band {} ", self.metric, band.index + 1)?;
                write_range(f, band.from, band.to)?;
            }
        }
        write!(f, " → {} points", self.points)
    }
}

#[cfg(test)]
mod tests {
    use super::super::scorecard::tests::sales_policy;
    use super::*;

    #[test]
    fn customers_of_the_sales_policy_get_their_points_and_grades() {
        struct Case {
            name: &'static str,
            amount: Option<i64>,
            rate_bp: Option<i64>,
            receivables: Option<i64>,
            points: [i32; 3],
            total: i64,
            grade: &'static str,
        }
        let cases = [
            Case {
                name: "a star scores the top band everywhere",
                amount: Some(1_200_000_000),
                rate_bp: Some(9_850),
                receivables: Some(15_000_000),
                points: [10, 10, 10],
                total: 30,
                grade: "A",
            },
            Case {
                name: "exactly on the A cut-off is A",
                amount: Some(500_000_000),
                rate_bp: Some(9_000),
                receivables: Some(20_000_000),
                points: [8, 8, 8],
                total: 24,
                grade: "A",
            },
            Case {
                name: "a band's lower end is included and its upper end is not",
                amount: Some(1_000_000_000),
                rate_bp: Some(9_799),
                receivables: Some(500_000_000),
                points: [10, 8, 2],
                total: 20,
                grade: "B",
            },
            Case {
                name: "the middle of the road is B",
                amount: Some(400_000_000),
                rate_bp: Some(8_000),
                receivables: Some(150_000_000),
                points: [6, 6, 6],
                total: 18,
                grade: "B",
            },
            Case {
                name: "a missing collection rate scores 0",
                amount: Some(300_000_000),
                rate_bp: None,
                receivables: Some(0),
                points: [6, 0, 10],
                total: 16,
                grade: "B",
            },
            Case {
                name: "weak everywhere is C",
                amount: Some(50_000_000),
                rate_bp: Some(5_000),
                receivables: Some(800_000_000),
                points: [2, 2, 2],
                total: 6,
                grade: "C",
            },
            Case {
                name: "nothing known scores 0 and is still graded",
                amount: None,
                rate_bp: None,
                receivables: None,
                points: [0, 0, 0],
                total: 0,
                grade: "C",
            },
        ];
        let card = sales_policy();
        for case in cases {
            let score = card.score(|metric| match metric {
                "sales.amount" => case.amount,
                "sales.collection_rate_bp" => case.rate_bp,
                "sales.year_end_receivables" => case.receivables,
                _ => None,
            });
            let points: Vec<i32> = score.lines.iter().map(|l| l.points).collect();
            assert_eq!(points, case.points, "{}", case.name);
            assert_eq!((score.total, score.grade.as_deref()), (case.total, Some(case.grade)), "{}", case.name);
            assert_eq!(score.version, 2, "{}", case.name);
        }
    }

    #[test]
    fn a_score_explains_each_metric_band_and_the_version() {
        let score = sales_policy().score(|metric| match metric {
            "sales.amount" => Some(300_000_000),
            "sales.year_end_receivables" => Some(0),
            _ => None,
        });
        assert_eq!(
            score.to_string(),
            "scorecard SALES version 2: total 16 → grade B\n  \
             sales.amount = 300000000: band 3 [300000000, 500000000) → 6 points\n  \
             sales.collection_rate_bp: no value → 0 points\n  \
             sales.year_end_receivables = 0: band 1 (−∞, 20000000) → 10 points"
        );
        assert_eq!(score.lines[0].band, Some(BandHit { index: 2, from: Some(300_000_000), to: Some(500_000_000) }));
        assert_eq!((score.lines[1].value, score.lines[1].band), (None, None));
    }

    #[test]
    fn an_invalid_scorecard_still_scores_and_says_what_it_could_not_place() {
        let mut card = sales_policy();
        card.metrics[0].bands[0].from = Some(0);
        card.grades[2].min_total = 7;
        let score = card.score(|_| Some(-1));
        assert_eq!(score.lines[0].to_string(), "sales.amount = -1: in no band → 0 points");
        assert_eq!((score.total, score.grade), (12, Some("C".to_string())));
        let low = card.score(|_| None);
        assert_eq!(low.grade, None);
        assert!(low.to_string().starts_with("scorecard SALES version 2: total 0 → no grade"));
    }
}
