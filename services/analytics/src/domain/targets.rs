//! Business targets (经营指标): issued by head office for an indicator and a period,
//! and decomposed down the org tree to sub-orgs and RMs. Progress against them is
//! measured in [`super::target_progress`].
//!
//! Contract:
//! - Target values are whole numbers ≥ 0 in the indicator's unit: fen for AUM growth and
//!   product sales, customers for the counts.
//! - A decomposition is valid when no value is negative, no child appears twice, child
//!   orgs lie strictly below the parent org and not inside one another (a figure is
//!   booked at one child only), an RM's target is not decomposed further, and the
//!   children add up to the parent exactly. A refusal names the gap ("children
//!   sum to X, parent is Y, short by Z").
//! - Org paths are written `/1/12/`: ids between slashes, from head office down. An org
//!   contains itself and every org whose path starts with its path.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;

/// Why a target, a decomposition or a roll-up was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not an org path.
    #[error("`{0}` is not an org path (expected ids between slashes from head office down, e.g. /1/12/)")]
    InvalidOrgPath(String),
    /// An RM without an id.
    #[error("an RM id must not be blank")]
    BlankRm,
    /// A period that ends before it starts.
    #[error("the period ends on {to}, before it starts on {from}")]
    InvalidPeriod { from: Date, to: Date },
    /// A negative parent target.
    #[error("the parent target is {0}; targets are 0 or more")]
    NegativeParent(i64),
    /// A negative target of a child or of an assignee in a roll-up.
    #[error("the target of {assignee} is {value}; targets are 0 or more")]
    NegativeTarget { assignee: Assignee, value: i64 },
    /// One child allocated twice.
    #[error("{0} is allocated twice")]
    DuplicateChild(Assignee),
    /// One assignee with two targets in a roll-up ([`super::target_progress`]).
    #[error("{0} has two targets")]
    DuplicateTarget(Assignee),
    /// A child org that is not below the parent org.
    #[error("{child} is not below {parent}, so it cannot take part of its target")]
    NotBelowParent { child: Assignee, parent: Assignee },
    /// Two child orgs of which one contains the other.
    #[error("{inner} lies inside {outer}: child orgs of one split must not contain one another")]
    NestedChildren { outer: Assignee, inner: Assignee },
    /// An RM's target decomposed further.
    #[error("the target of {0} is an RM's own and cannot be decomposed further")]
    RmCannotBeDecomposed(Assignee),
    /// Children that do not add up to the parent.
    #[error("children sum to {sum}, parent is {parent}, {}", gap_words(*.sum, *.parent))]
    SumMismatch { sum: i128, parent: i64 },
}

fn gap_words(sum: i128, parent: i64) -> String {
    let gap = i128::from(parent) - sum;
    if gap > 0 { format!("short by {gap}") } else { format!("over by {}", -gap) }
}

/// What a target measures.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Indicator {
    /// Growth of AUM over the period, in fen.
    AumGrowth,
    /// Customers at a level at the period's end.
    CustomersAtLevel {
        /// Level code.
        level: String,
    },
    /// Sales of a product over the period, in fen.
    ProductSales {
        /// Product code.
        product: String,
    },
    /// Customers won over the period.
    NewCustomers,
}

/// The unit of an indicator's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// CNY minor units.
    Fen,
    /// A count of customers.
    Customers,
}

impl Indicator {
    /// The stored kind and code (the level or product; empty for the others).
    pub fn stored(&self) -> (&'static str, &str) {
        match self {
            Indicator::AumGrowth => ("aum_growth", ""),
            Indicator::CustomersAtLevel { level } => ("customers_at_level", level),
            Indicator::ProductSales { product } => ("product_sales", product),
            Indicator::NewCustomers => ("new_customers", ""),
        }
    }

    /// The indicator of a stored kind and code; `None` for an unknown kind or a code
    /// that does not fit it.
    pub fn from_stored(kind: &str, code: &str) -> Option<Self> {
        let code = code.to_string();
        match (kind, code.is_empty()) {
            ("aum_growth", true) => Some(Indicator::AumGrowth),
            ("customers_at_level", false) => Some(Indicator::CustomersAtLevel { level: code }),
            ("product_sales", false) => Some(Indicator::ProductSales { product: code }),
            ("new_customers", true) => Some(Indicator::NewCustomers),
            _ => None,
        }
    }

    /// The unit its target and actual values are in.
    pub fn unit(&self) -> Unit {
        match self {
            Indicator::AumGrowth | Indicator::ProductSales { .. } => Unit::Fen,
            Indicator::CustomersAtLevel { .. } | Indicator::NewCustomers => Unit::Customers,
        }
    }
}

/// The days a target covers, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "PeriodDays")]
pub struct Period {
    #[serde(with = "super::calendar::iso_date")]
    from: Date,
    #[serde(with = "super::calendar::iso_date")]
    to: Date,
}

#[derive(Deserialize)]
struct PeriodDays {
    #[serde(with = "super::calendar::iso_date")]
    from: Date,
    #[serde(with = "super::calendar::iso_date")]
    to: Date,
}

impl TryFrom<PeriodDays> for Period {
    type Error = TargetError;

    fn try_from(p: PeriodDays) -> Result<Self, Self::Error> {
        Period::new(p.from, p.to)
    }
}

impl Period {
    /// From `from` to `to`, both included; refused when `to` is before `from`.
    pub fn new(from: Date, to: Date) -> Result<Self, TargetError> {
        if to < from {
            return Err(TargetError::InvalidPeriod { from, to });
        }
        Ok(Period { from, to })
    }

    /// The first day.
    pub fn from(&self) -> Date {
        self.from
    }

    /// The last day.
    pub fn to(&self) -> Date {
        self.to
    }

    /// Whether `date` is in the period.
    pub fn contains(&self, date: Date) -> bool {
        self.from <= date && date <= self.to
    }
}

/// An org's place in the tree, e.g. `/1/12/` (head office 1, branch 12).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgPath(String);

impl OrgPath {
    /// Parses `/id/id/…/`: at least one id, no blank id, no whitespace.
    pub fn parse(path: &str) -> Result<Self, TargetError> {
        let inner = path.strip_prefix('/').and_then(|p| p.strip_suffix('/'));
        match inner {
            Some(ids)
                if !ids.is_empty() && ids.split('/').all(|id| !id.is_empty() && !id.contains(char::is_whitespace)) =>
            {
                Ok(OrgPath(path.to_string()))
            }
            _ => Err(TargetError::InvalidOrgPath(path.to_string())),
        }
    }

    /// The path text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other` is this org or below it.
    pub fn contains(&self, other: &OrgPath) -> bool {
        other.0.starts_with(&self.0)
    }
}

impl TryFrom<String> for OrgPath {
    type Error = TargetError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        OrgPath::parse(&s)
    }
}

impl From<OrgPath> for String {
    fn from(p: OrgPath) -> Self {
        p.0
    }
}

/// A relationship manager's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RmId(String);

impl RmId {
    /// A non-blank id, trimmed.
    pub fn parse(id: &str) -> Result<Self, TargetError> {
        let id = id.trim();
        if id.is_empty() { Err(TargetError::BlankRm) } else { Ok(RmId(id.to_string())) }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RmId {
    type Error = TargetError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        RmId::parse(&s)
    }
}

impl From<RmId> for String {
    fn from(r: RmId) -> Self {
        r.0
    }
}

/// Who a target is assigned to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assignee {
    /// An org and its subtree.
    Org(OrgPath),
    /// One RM.
    Rm(RmId),
}

impl fmt::Display for Assignee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Assignee::Org(p) => write!(f, "org {}", p.as_str()),
            Assignee::Rm(r) => write!(f, "RM {}", r.as_str()),
        }
    }
}

/// A target: an indicator's value to reach over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Who must reach it.
    pub assignee: Assignee,
    /// What is measured.
    pub indicator: Indicator,
    /// Over which days.
    pub period: Period,
    /// The value to reach, in the indicator's unit.
    pub value: i64,
}

/// Checks that `children` split `parent_value` exactly: no negative value, no child
/// twice, and a sum equal to the parent.
pub fn validate_decomposition(parent_value: i64, children: &[(Assignee, i64)]) -> Result<(), TargetError> {
    if parent_value < 0 {
        return Err(TargetError::NegativeParent(parent_value));
    }
    let mut seen = HashSet::new();
    for (child, value) in children {
        if *value < 0 {
            return Err(TargetError::NegativeTarget { assignee: child.clone(), value: *value });
        }
        if !seen.insert(child) {
            return Err(TargetError::DuplicateChild(child.clone()));
        }
    }
    let sum: i128 = children.iter().map(|(_, v)| i128::from(*v)).sum();
    if sum != i128::from(parent_value) {
        return Err(TargetError::SumMismatch { sum, parent: parent_value });
    }
    Ok(())
}

/// A target split among the parent's sub-orgs and RMs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decomposition {
    /// The target being split.
    pub parent: Target,
    /// Each child's share, in the parent's indicator, period and unit.
    pub children: Vec<(Assignee, i64)>,
}

impl Decomposition {
    /// [`validate_decomposition`], plus: child orgs lie strictly below the parent org,
    /// and an RM's target has no children (alone it is valid when ≥ 0). Whether a child
    /// RM works in the parent's subtree is checked where RMs are known.
    pub fn validate(&self) -> Result<(), TargetError> {
        let parent = match &self.parent.assignee {
            Assignee::Org(p) => p,
            rm @ Assignee::Rm(_) if !self.children.is_empty() => {
                return Err(TargetError::RmCannotBeDecomposed(rm.clone()));
            }
            Assignee::Rm(_) if self.parent.value < 0 => return Err(TargetError::NegativeParent(self.parent.value)),
            Assignee::Rm(_) => return Ok(()),
        };
        for (child, _) in &self.children {
            if let Assignee::Org(c) = child
                && (c == parent || !parent.contains(c))
            {
                return Err(TargetError::NotBelowParent { child: child.clone(), parent: self.parent.assignee.clone() });
            }
        }
        for (outer, _) in &self.children {
            for (inner, _) in &self.children {
                if let (Assignee::Org(o), Assignee::Org(i)) = (outer, inner)
                    && o != i
                    && o.contains(i)
                {
                    return Err(TargetError::NestedChildren { outer: outer.clone(), inner: inner.clone() });
                }
            }
        }
        validate_decomposition(self.parent.value, &self.children)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn org(path: &str) -> OrgPath {
        OrgPath::parse(path).unwrap()
    }

    fn rm(id: &str) -> RmId {
        RmId::parse(id).unwrap()
    }

    fn o(path: &str) -> Assignee {
        Assignee::Org(org(path))
    }

    fn r(id: &str) -> Assignee {
        Assignee::Rm(rm(id))
    }

    #[test]
    fn org_paths_are_ids_between_slashes() {
        let cases = [
            ("/1/", true),
            ("/1/12/120/", true),
            ("/HO/BJ01/", true),
            ("/", false),
            ("", false),
            ("1/12/", false),
            ("/1/12", false),
            ("/1//12/", false),
            ("/1/ 12/", false),
        ];
        for (path, valid) in cases {
            assert_eq!(OrgPath::parse(path).is_ok(), valid, "{path:?}");
        }
        assert_eq!(OrgPath::parse("/1/12"), Err(TargetError::InvalidOrgPath("/1/12".into())));
        assert_eq!(serde_json::to_string(&org("/1/12/")).unwrap(), r#""/1/12/""#);
        assert!(serde_json::from_str::<OrgPath>(r#""/1/12""#).is_err());
    }

    #[test]
    fn an_org_contains_itself_and_its_subtree_only() {
        let cases = [
            ("itself", "/1/12/", "/1/12/", true),
            ("a child", "/1/12/", "/1/12/120/", true),
            ("a grandchild", "/1/", "/1/12/120/", true),
            ("its parent", "/1/12/", "/1/", false),
            ("a sibling", "/1/12/", "/1/13/", false),
            ("a sibling whose id starts with its id", "/1/12/", "/1/123/", false),
        ];
        for (name, parent, other, expected) in cases {
            assert_eq!(org(parent).contains(&org(other)), expected, "{name}");
        }
    }

    #[test]
    fn rm_ids_periods_and_indicators_are_checked_types() {
        assert_eq!(RmId::parse("  "), Err(TargetError::BlankRm));
        assert_eq!(rm(" 10023 ").as_str(), "10023");

        let q1 = Period::new(date!(2026 - 01 - 01), date!(2026 - 03 - 31)).unwrap();
        let days = [(date!(2025 - 12 - 31), false), (date!(2026 - 01 - 01), true), (date!(2026 - 03 - 31), true)];
        for (day, inside) in days {
            assert_eq!(q1.contains(day), inside, "{day}");
        }
        assert_eq!((q1.from(), q1.to()), (date!(2026 - 01 - 01), date!(2026 - 03 - 31)));
        assert_eq!(
            Period::new(date!(2026 - 03 - 31), date!(2026 - 01 - 01)),
            Err(TargetError::InvalidPeriod { from: date!(2026 - 03 - 31), to: date!(2026 - 01 - 01) })
        );
        let json = serde_json::to_string(&q1).unwrap();
        assert_eq!(json, r#"{"from":"2026-01-01","to":"2026-03-31"}"#);
        assert_eq!(serde_json::from_str::<Period>(&json).unwrap(), q1);
        assert!(serde_json::from_str::<Period>(r#"{"from":"2026-03-31","to":"2026-01-01"}"#).is_err());

        let units = [
            (Indicator::AumGrowth, Unit::Fen, r#"{"kind":"aum_growth"}"#),
            (
                Indicator::CustomersAtLevel { level: "gold".into() },
                Unit::Customers,
                r#"{"kind":"customers_at_level","level":"gold"}"#,
            ),
            (
                Indicator::ProductSales { product: "WM01".into() },
                Unit::Fen,
                r#"{"kind":"product_sales","product":"WM01"}"#,
            ),
            (Indicator::NewCustomers, Unit::Customers, r#"{"kind":"new_customers"}"#),
        ];
        for (indicator, unit, json) in units {
            assert_eq!(indicator.unit(), unit, "{json}");
            assert_eq!(serde_json::to_string(&indicator).unwrap(), json);
            let (kind, code) = indicator.stored();
            assert_eq!(Indicator::from_stored(kind, code).as_ref(), Some(&indicator), "{json}");
        }
        let unusable = [("aum_growth", "gold"), ("customers_at_level", ""), ("product_sales", ""), ("profit", "")];
        for (kind, code) in unusable {
            assert_eq!(Indicator::from_stored(kind, code), None, "{kind} {code:?}");
        }
    }

    #[test]
    fn children_must_split_the_parent_exactly() {
        struct Case {
            name: &'static str,
            parent: i64,
            children: Vec<(Assignee, i64)>,
            expected: Result<(), TargetError>,
        }
        let cases = [
            Case {
                name: "children adding up to the parent are accepted",
                parent: 1_000,
                children: vec![(o("/1/12/"), 600), (o("/1/13/"), 400)],
                expected: Ok(()),
            },
            Case {
                name: "a child may take nothing",
                parent: 1_000,
                children: vec![(o("/1/12/"), 1_000), (r("10023"), 0)],
                expected: Ok(()),
            },
            Case { name: "a zero parent needs no children", parent: 0, children: vec![], expected: Ok(()) },
            Case {
                name: "children short of the parent are refused",
                parent: 1_000,
                children: vec![(o("/1/12/"), 600), (o("/1/13/"), 300)],
                expected: Err(TargetError::SumMismatch { sum: 900, parent: 1_000 }),
            },
            Case {
                name: "children over the parent are refused",
                parent: 1_000,
                children: vec![(o("/1/12/"), 600), (o("/1/13/"), 500)],
                expected: Err(TargetError::SumMismatch { sum: 1_100, parent: 1_000 }),
            },
            Case {
                name: "a negative parent is refused",
                parent: -1,
                children: vec![],
                expected: Err(TargetError::NegativeParent(-1)),
            },
            Case {
                name: "a negative child is refused even when the sum matches",
                parent: 1_000,
                children: vec![(o("/1/12/"), 1_100), (o("/1/13/"), -100)],
                expected: Err(TargetError::NegativeTarget { assignee: o("/1/13/"), value: -100 }),
            },
            Case {
                name: "a child allocated twice is refused even when the sum matches",
                parent: 1_000,
                children: vec![(r("10023"), 500), (r("10023"), 500)],
                expected: Err(TargetError::DuplicateChild(r("10023"))),
            },
        ];
        for c in cases {
            assert_eq!(validate_decomposition(c.parent, &c.children), c.expected, "{}", c.name);
        }
    }

    #[test]
    fn a_refused_split_says_the_sum_and_the_gap() {
        let cases = [
            (TargetError::SumMismatch { sum: 900, parent: 1_000 }, "children sum to 900, parent is 1000, short by 100"),
            (
                TargetError::SumMismatch { sum: 1_100, parent: 1_000 },
                "children sum to 1100, parent is 1000, over by 100",
            ),
            (TargetError::DuplicateChild(r("10023")), "RM 10023 is allocated twice"),
            (
                TargetError::NotBelowParent { child: o("/1/13/"), parent: o("/1/12/") },
                "org /1/13/ is not below org /1/12/, so it cannot take part of its target",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn a_decomposition_goes_only_down_the_tree() {
        let target = |assignee: Assignee, value: i64| Target {
            assignee,
            indicator: Indicator::NewCustomers,
            period: Period::new(date!(2026 - 01 - 01), date!(2026 - 12 - 31)).unwrap(),
            value,
        };
        let cases = [
            (
                "sub-orgs and RMs of the org",
                target(o("/1/12/"), 100),
                vec![(o("/1/12/120/"), 60), (r("7"), 40)],
                Ok(()),
            ),
            (
                "a sibling org",
                target(o("/1/12/"), 100),
                vec![(o("/1/123/"), 100)],
                Err(TargetError::NotBelowParent { child: o("/1/123/"), parent: o("/1/12/") }),
            ),
            (
                "the org itself",
                target(o("/1/12/"), 100),
                vec![(o("/1/12/"), 100)],
                Err(TargetError::NotBelowParent { child: o("/1/12/"), parent: o("/1/12/") }),
            ),
            (
                "the split must still add up",
                target(o("/1/"), 100),
                vec![(o("/1/12/"), 60)],
                Err(TargetError::SumMismatch { sum: 60, parent: 100 }),
            ),
            (
                "a sub-branch beside the branch that contains it",
                target(o("/1/"), 100),
                vec![(o("/1/12/"), 60), (o("/1/12/120/"), 40)],
                Err(TargetError::NestedChildren { outer: o("/1/12/"), inner: o("/1/12/120/") }),
            ),
            (
                "sibling orgs whose ids start alike",
                target(o("/1/"), 100),
                vec![(o("/1/12/"), 60), (o("/1/123/"), 40)],
                Ok(()),
            ),
            ("an RM's own target alone", target(r("7"), 40), vec![], Ok(())),
            ("an RM's negative target", target(r("7"), -1), vec![], Err(TargetError::NegativeParent(-1))),
            (
                "an RM's target split further",
                target(r("7"), 40),
                vec![(r("8"), 40)],
                Err(TargetError::RmCannotBeDecomposed(r("7"))),
            ),
        ];
        for (name, parent, children, expected) in cases {
            assert_eq!(Decomposition { parent, children }.validate(), expected, "{name}");
        }
    }
}
