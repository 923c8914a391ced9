//! Scorecards, as configured: each metric has bands, a band gives points, the points add
//! up to a total, and the total maps to a grade through cut-offs. Scoring a customer and
//! explaining the score live in `super::score`.
//!
//! A scorecard is identified by its code and version; a new version is a new scorecard.
//!
//! Promises of a scorecard that passes [`Scorecard::validate`]:
//! - every value of every metric falls in exactly one band (bands are half-open,
//!   `from` included, `to` excluded, in ascending order, covering −∞ to +∞);
//! - every total a customer can reach gets a grade (a missing value counts 0 points);
//! - metric names are attribute names as written in conditions (`super::expr`), each once;
//! - grades are named, each once, with cut-offs strictly descending.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::expr::is_attribute_name;

/// One version of a scorecard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scorecard {
    /// The scorecard's code, e.g. `SALES`.
    pub code: String,
    /// Its version.
    pub version: u32,
    /// The bands of each metric.
    pub metrics: Vec<MetricBands>,
    /// Grade cut-offs, highest first.
    pub grades: Vec<GradeCut>,
}

/// The bands of one metric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricBands {
    /// Attribute name, e.g. `sales.amount_year`.
    pub metric: String,
    /// Bands in ascending order.
    pub bands: Vec<Band>,
}

/// A range of values of a metric and the points it gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Band {
    /// Lowest value in the band (included); `None` for −∞.
    pub from: Option<i64>,
    /// First value above the band (excluded); `None` for +∞.
    pub to: Option<i64>,
    /// Points for a value in the band.
    pub points: i32,
}

impl Band {
    /// Whether `value` is in the band.
    pub fn contains(&self, value: i64) -> bool {
        self.from.is_none_or(|from| from <= value) && self.to.is_none_or(|to| value < to)
    }
}

/// `[from, to)`, with −∞ and +∞ for open ends.
impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_range(f, self.from, self.to)
    }
}

pub(crate) fn write_range(f: &mut fmt::Formatter<'_>, from: Option<i64>, to: Option<i64>) -> fmt::Result {
    match from {
        Some(from) => write!(f, "[{from}, ")?,
        None => f.write_str("(−∞, ")?,
    }
    match to {
        Some(to) => write!(f, "{to})"),
        None => f.write_str("+∞)"),
    }
}

/// Totals of at least `min_total` (and below the cut-off above) get `grade`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GradeCut {
    /// Lowest total for the grade.
    pub min_total: i32,
    /// The grade, e.g. `A`.
    pub grade: String,
}

/// Why a scorecard cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScorecardError {
    /// The code is blank.
    #[error("the scorecard code is blank")]
    BlankCode,
    /// No metric to score.
    #[error("scorecard {code} has no metrics")]
    NoMetrics {
        /// Scorecard code.
        code: String,
    },
    /// The metric cannot be written in a condition.
    #[error("'{metric}' is not an attribute name (parts of letters, digits and '_', separated by '.')")]
    BadMetricName {
        /// The metric as configured.
        metric: String,
    },
    /// The same metric twice.
    #[error("metric '{metric}' appears twice")]
    DuplicateMetric {
        /// The metric.
        metric: String,
    },
    /// A metric without bands.
    #[error("metric '{metric}' has no bands")]
    NoBands {
        /// The metric.
        metric: String,
    },
    /// A band with no value in it (bands are numbered from 1).
    #[error("metric '{metric}': band {band} is empty (from {from} up to {to})")]
    EmptyBand {
        /// The metric.
        metric: String,
        /// Band number, from 1.
        band: usize,
        /// Its lower end.
        from: i64,
        /// Its upper end.
        to: i64,
    },
    /// The first band does not start at −∞.
    #[error("metric '{metric}': values below {from} have no band")]
    GapBelow {
        /// The metric.
        metric: String,
        /// Where the first band starts.
        from: i64,
    },
    /// The last band does not run to +∞.
    #[error("metric '{metric}': values from {to} up have no band")]
    GapAbove {
        /// The metric.
        metric: String,
        /// Where the last band ends.
        to: i64,
    },
    /// Two bands do not meet.
    #[error("metric '{metric}': values from {from} up to {to} (excluded) have no band")]
    Gap {
        /// The metric.
        metric: String,
        /// First value without a band.
        from: i64,
        /// First value with a band again.
        to: i64,
    },
    /// A band starts before the previous one ends (or is out of order).
    #[error(
        "metric '{metric}': band {band} starts before band {previous} ends; bands go in ascending order, \
         each starting where the one before ends"
    )]
    Overlap {
        /// The metric.
        metric: String,
        /// Band number, from 1.
        band: usize,
        /// The band before it, from 1.
        previous: usize,
    },
    /// No grade at all.
    #[error("scorecard {code} has no grades")]
    NoGrades {
        /// Scorecard code.
        code: String,
    },
    /// A grade without a name.
    #[error("a grade name is blank")]
    BlankGrade,
    /// The same grade twice.
    #[error("grade '{grade}' appears twice")]
    DuplicateGrade {
        /// The grade.
        grade: String,
    },
    /// Cut-offs not strictly descending.
    #[error("grade cut-offs go from the highest down: '{grade}' at {min_total} follows '{previous}' at {previous_min}")]
    GradesNotDescending {
        /// The grade out of place.
        grade: String,
        /// Its cut-off.
        min_total: i32,
        /// The grade before it.
        previous: String,
        /// That grade's cut-off.
        previous_min: i32,
    },
    /// Some reachable totals would get no grade.
    #[error(
        "totals below {lowest_cut} get no grade, but a customer can score as low as {lowest_total}; \
         lower the last cut-off"
    )]
    UngradedTotals {
        /// The last cut-off.
        lowest_cut: i32,
        /// The lowest total a customer can reach.
        lowest_total: i64,
    },
}

impl Scorecard {
    /// Checks the promises of this module (see the module doc); the first problem wins.
    pub fn validate(&self) -> Result<(), ScorecardError> {
        if self.code.trim().is_empty() {
            return Err(ScorecardError::BlankCode);
        }
        if self.metrics.is_empty() {
            return Err(ScorecardError::NoMetrics { code: self.code.clone() });
        }
        for (i, m) in self.metrics.iter().enumerate() {
            if !is_attribute_name(&m.metric) {
                return Err(ScorecardError::BadMetricName { metric: m.metric.clone() });
            }
            if self.metrics[..i].iter().any(|earlier| earlier.metric == m.metric) {
                return Err(ScorecardError::DuplicateMetric { metric: m.metric.clone() });
            }
            validate_bands(m)?;
        }
        self.validate_grades()
    }

    fn validate_grades(&self) -> Result<(), ScorecardError> {
        let Some(lowest) = self.grades.last() else {
            return Err(ScorecardError::NoGrades { code: self.code.clone() });
        };
        for (i, cut) in self.grades.iter().enumerate() {
            if cut.grade.trim().is_empty() {
                return Err(ScorecardError::BlankGrade);
            }
            if self.grades[..i].iter().any(|earlier| earlier.grade == cut.grade) {
                return Err(ScorecardError::DuplicateGrade { grade: cut.grade.clone() });
            }
            if let Some(previous) = i.checked_sub(1).map(|p| &self.grades[p])
                && cut.min_total >= previous.min_total
            {
                return Err(ScorecardError::GradesNotDescending {
                    grade: cut.grade.clone(),
                    min_total: cut.min_total,
                    previous: previous.grade.clone(),
                    previous_min: previous.min_total,
                });
            }
        }
        let lowest_total = self.lowest_total();
        if i64::from(lowest.min_total) > lowest_total {
            return Err(ScorecardError::UngradedTotals { lowest_cut: lowest.min_total, lowest_total });
        }
        Ok(())
    }

    /// The lowest total a customer can reach: each metric's lowest points, or 0 when
    /// that is lower (a missing value scores 0).
    pub fn lowest_total(&self) -> i64 {
        self.metrics.iter().map(|m| m.bands.iter().map(|b| i64::from(b.points)).min().unwrap_or(0).min(0)).sum()
    }

    /// The metric names, in scorecard order (the attributes a score depends on).
    pub fn metric_names(&self) -> impl Iterator<Item = &str> {
        self.metrics.iter().map(|m| m.metric.as_str())
    }

    /// The grade of a total: the first cut-off (from the highest) it reaches.
    pub fn grade_for(&self, total: i64) -> Option<&str> {
        self.grades.iter().find(|cut| total >= i64::from(cut.min_total)).map(|cut| cut.grade.as_str())
    }
}

fn validate_bands(m: &MetricBands) -> Result<(), ScorecardError> {
    let metric = || m.metric.clone();
    let (Some(first), Some(last)) = (m.bands.first(), m.bands.last()) else {
        return Err(ScorecardError::NoBands { metric: metric() });
    };
    if let Some(from) = first.from {
        return Err(ScorecardError::GapBelow { metric: metric(), from });
    }
    for (i, band) in m.bands.iter().enumerate() {
        if let (Some(from), Some(to)) = (band.from, band.to)
            && from >= to
        {
            return Err(ScorecardError::EmptyBand { metric: metric(), band: i + 1, from, to });
        }
        let Some(previous) = i.checked_sub(1).map(|p| m.bands[p]) else { continue };
        match (previous.to, band.from) {
            (Some(end), Some(start)) if start > end => {
                return Err(ScorecardError::Gap { metric: metric(), from: end, to: start });
            }
            (Some(end), Some(start)) if start == end => {}
            _ => return Err(ScorecardError::Overlap { metric: metric(), band: i + 1, previous: i }),
        }
    }
    if let Some(to) = last.to {
        return Err(ScorecardError::GapAbove { metric: metric(), to });
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn band(from: Option<i64>, to: Option<i64>, points: i32) -> Band {
        Band { from, to, points }
    }

    /// Five bands 2/4/6/8/10 (or 10/8/6/4/2 when `lower_is_better`) cut at `cuts`.
    fn five_bands(metric: &str, cuts: [i64; 4], lower_is_better: bool) -> MetricBands {
        let ends = [None, Some(cuts[0]), Some(cuts[1]), Some(cuts[2]), Some(cuts[3]), None];
        let bands = (0..5)
            .map(|i| {
                let points = if lower_is_better { 10 - 2 * i } else { 2 + 2 * i };
                band(ends[i], ends[i + 1], points as i32)
            })
            .collect();
        MetricBands { metric: metric.to_string(), bands }
    }

    /// The sales-policy example: sales amount, collection rate and year-end receivables,
    /// each 2/4/6/8/10 points by bands; total → A / B / C.
    pub(crate) fn sales_policy() -> Scorecard {
        Scorecard {
            code: "SALES".to_string(),
            version: 2,
            metrics: vec![
                // fen: 1, 3, 5 and 10 million CNY
                five_bands("sales.amount", [100_000_000, 300_000_000, 500_000_000, 1_000_000_000], false),
                // basis points: 60 %, 75 %, 90 %, 98 %
                five_bands("sales.collection_rate_bp", [6_000, 7_500, 9_000, 9_800], false),
                // fen, less is better: 0.2, 1, 2 and 5 million CNY
                five_bands("sales.year_end_receivables", [20_000_000, 100_000_000, 200_000_000, 500_000_000], true),
            ],
            grades: vec![
                GradeCut { min_total: 24, grade: "A".to_string() },
                GradeCut { min_total: 16, grade: "B".to_string() },
                GradeCut { min_total: 0, grade: "C".to_string() },
            ],
        }
    }

    #[test]
    fn the_sales_policy_example_is_a_valid_scorecard() {
        assert_eq!(sales_policy().validate(), Ok(()));
        assert_eq!(sales_policy().lowest_total(), 0);
    }

    #[test]
    fn every_broken_scorecard_is_refused_with_the_reason() {
        struct Case {
            name: &'static str,
            change: fn(&mut Scorecard),
            message: &'static str,
        }
        let cases: [Case; 16] = [
            Case { name: "blank code", change: |c| c.code = " ".into(), message: "the scorecard code is blank" },
            Case { name: "no metrics", change: |c| c.metrics.clear(), message: "scorecard SALES has no metrics" },
            Case {
                name: "a metric that is not an attribute name",
                change: |c| c.metrics[0].metric = "sales amount".into(),
                message: "'sales amount' is not an attribute name (parts of letters, digits and '_', separated by '.')",
            },
            Case {
                name: "a metric twice",
                change: |c| c.metrics[2].metric = "sales.amount".into(),
                message: "metric 'sales.amount' appears twice",
            },
            Case {
                name: "no bands",
                change: |c| c.metrics[1].bands.clear(),
                message: "metric 'sales.collection_rate_bp' has no bands",
            },
            Case {
                name: "nothing below the first band",
                change: |c| c.metrics[0].bands[0].from = Some(0),
                message: "metric 'sales.amount': values below 0 have no band",
            },
            Case {
                name: "nothing above the last band",
                change: |c| c.metrics[0].bands[4].to = Some(5_000_000_000),
                message: "metric 'sales.amount': values from 5000000000 up have no band",
            },
            Case {
                name: "a gap between bands",
                change: |c| c.metrics[1].bands[2].from = Some(7_600),
                message: "metric 'sales.collection_rate_bp': values from 7500 up to 7600 (excluded) have no band",
            },
            Case {
                name: "overlapping bands",
                change: |c| c.metrics[1].bands[2].from = Some(7_000),
                message: "metric 'sales.collection_rate_bp': band 3 starts before band 2 ends; \
                          bands go in ascending order, each starting where the one before ends",
            },
            Case {
                name: "a band running to +∞ before the last",
                change: |c| c.metrics[1].bands[3].to = None,
                message: "metric 'sales.collection_rate_bp': band 5 starts before band 4 ends; \
                          bands go in ascending order, each starting where the one before ends",
            },
            Case {
                name: "an empty band",
                change: |c| {
                    c.metrics[1].bands[1].to = Some(6_000);
                    c.metrics[1].bands[2].from = Some(6_000);
                },
                message: "metric 'sales.collection_rate_bp': band 2 is empty (from 6000 up to 6000)",
            },
            Case { name: "no grades", change: |c| c.grades.clear(), message: "scorecard SALES has no grades" },
            Case { name: "a blank grade", change: |c| c.grades[1].grade = "".into(), message: "a grade name is blank" },
            Case {
                name: "a grade twice",
                change: |c| c.grades[2].grade = "A".into(),
                message: "grade 'A' appears twice",
            },
            Case {
                name: "cut-offs not descending",
                change: |c| c.grades[1].min_total = 24,
                message: "grade cut-offs go from the highest down: 'B' at 24 follows 'A' at 24",
            },
            Case {
                name: "low totals without a grade",
                change: |c| c.grades[2].min_total = 6,
                message: "totals below 6 get no grade, but a customer can score as low as 0; lower the last cut-off",
            },
        ];
        for case in cases {
            let mut card = sales_policy();
            (case.change)(&mut card);
            let error = card.validate().expect_err(case.name);
            assert_eq!(error.to_string(), case.message, "{}", case.name);
        }
    }

    #[test]
    fn negative_points_lower_the_reachable_total() {
        let mut card = sales_policy();
        card.metrics[0].bands[0].points = -5;
        assert_eq!(card.lowest_total(), -5);
        assert_eq!(card.validate(), Err(ScorecardError::UngradedTotals { lowest_cut: 0, lowest_total: -5 }));
        card.grades[2].min_total = -5;
        assert_eq!(card.validate(), Ok(()));
    }

    #[test]
    fn a_scorecard_is_configured_as_json_with_null_for_open_ends() {
        let json = r#"{"code":"SALES","version":1,
            "metrics":[{"metric":"sales.amount","bands":[
                {"from":null,"to":100,"points":2},{"from":100,"to":null,"points":10}]}],
            "grades":[{"min_total":10,"grade":"A"},{"min_total":0,"grade":"B"}]}"#;
        let card: Scorecard = serde_json::from_str(json).unwrap();
        assert_eq!(card.validate(), Ok(()));
        assert_eq!(card.metric_names().collect::<Vec<_>>(), ["sales.amount"]);
        assert_eq!(card.score(|_| Some(100)).grade.as_deref(), Some("A"));
        let back: Scorecard = serde_json::from_str(&serde_json::to_string(&card).unwrap()).unwrap();
        assert_eq!(back, card);
    }

    #[test]
    fn bands_include_their_lower_end_and_exclude_their_upper_end() {
        let cases = [
            (band(None, None, 0), [true, true, true]),
            (band(Some(0), None, 0), [false, true, true]),
            (band(None, Some(0), 0), [true, false, false]),
            (band(Some(0), Some(1), 0), [false, true, false]),
        ];
        for (b, expected) in cases {
            assert_eq!([b.contains(-1), b.contains(0), b.contains(1)], expected, "{b}");
        }
        assert_eq!(band(None, Some(5), 0).to_string(), "(−∞, 5)");
        assert_eq!(band(Some(5), None, 0).to_string(), "[5, +∞)");
    }
}
