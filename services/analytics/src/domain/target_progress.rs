//! Progress against business targets (指标完成率): actuals rolled up the org tree and
//! compared with each org's and RM's target.
//!
//! Contract:
//! - An RM's actual is the sum of its figures. An org's actual is the sum of the figures
//!   booked in its subtree: directly at an org (not through an RM), or by an RM working
//!   in an org of that subtree. Nothing is counted twice.
//! - Progress is actual × 10000 / target in basis points, truncated toward zero (so
//!   10000 means the target is really met); a target of 0 has no progress.
//! - Targets must be 0 or more and each assignee has one; otherwise nothing is rolled up.
//! - "Customers at or above a level" counts the levels from that one up in the order of
//!   the level rule in force on the period's last day ([`levels_at_or_above`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::levels::LevelRule;
use super::targets::{Assignee, OrgPath, RmId, TargetError};

/// One RM's actual, booked at the RM's org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RmActual {
    /// The RM.
    pub rm: RmId,
    /// The org the RM works in.
    pub org: OrgPath,
    /// The actual, in the indicator's unit.
    pub value: i64,
}

/// An assignee's target, actual and progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Whose.
    pub assignee: Assignee,
    /// The target.
    pub target: i64,
    /// The actual, rolled up.
    pub actual: i64,
    /// actual × 10000 / target, truncated toward zero; `None` for a target of 0.
    pub progress_bp: Option<i64>,
}

/// Progress in basis points: `actual × 10000 / target`, truncated toward zero; `None`
/// when the target is 0.
pub fn progress_bp(actual: i64, target: i64) -> Option<i64> {
    if target == 0 {
        return None;
    }
    let bp = i128::from(actual) * 10_000 / i128::from(target);
    Some(i64::try_from(bp).unwrap_or(if bp < 0 { i64::MIN } else { i64::MAX }))
}

/// Each target's progress, in the targets' order: RM actuals by RM, org actuals over the
/// org's subtree (`org_actuals` are booked directly at an org, not through an RM).
pub fn roll_up(
    targets: &[(Assignee, i64)],
    org_actuals: &[(OrgPath, i64)],
    rm_actuals: &[RmActual],
) -> Result<Vec<Progress>, TargetError> {
    let mut seen = HashSet::new();
    for (assignee, value) in targets {
        if *value < 0 {
            return Err(TargetError::NegativeTarget { assignee: assignee.clone(), value: *value });
        }
        if !seen.insert(assignee) {
            return Err(TargetError::DuplicateTarget(assignee.clone()));
        }
    }
    // Actuals booked at each org path, directly or by its RMs; a subtree is a
    // contiguous range of paths sharing its prefix.
    let mut by_org: BTreeMap<&str, i128> = BTreeMap::new();
    let mut by_rm: HashMap<&RmId, i128> = HashMap::new();
    for (org, value) in org_actuals {
        *by_org.entry(org.as_str()).or_default() += i128::from(*value);
    }
    for a in rm_actuals {
        *by_org.entry(a.org.as_str()).or_default() += i128::from(a.value);
        *by_rm.entry(&a.rm).or_default() += i128::from(a.value);
    }
    let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
    Ok(targets
        .iter()
        .map(|(assignee, target)| {
            let actual = match assignee {
                Assignee::Rm(rm) => by_rm.get(rm).copied().unwrap_or(0),
                Assignee::Org(org) => by_org
                    .range(org.as_str()..)
                    .take_while(|(path, _)| path.starts_with(org.as_str()))
                    .map(|(_, v)| *v)
                    .sum(),
            };
            let actual = clamp(actual);
            Progress { assignee: assignee.clone(), target: *target, actual, progress_bp: progress_bp(actual, *target) }
        })
        .collect())
}

/// The codes of `level` and every level above it in `rule`, lowest first; empty when
/// `rule` has no such level.
pub fn levels_at_or_above(rule: &LevelRule, level: &str) -> Vec<String> {
    rule.rank_of(level).map(|rank| rule.levels[rank..].iter().map(|l| l.code.clone()).collect()).unwrap_or_default()
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
    fn actuals_roll_up_the_org_tree_into_progress() {
        let org_actuals = [(org("/1/12/"), 100), (org("/1/12/120/"), 50), (org("/1/123/"), 1_000)];
        let rm_actuals = [
            RmActual { rm: rm("A"), org: org("/1/12/120/"), value: 200 },
            RmActual { rm: rm("B"), org: org("/1/12/"), value: 300 },
            RmActual { rm: rm("A"), org: org("/1/12/120/"), value: 25 },
            RmActual { rm: rm("C"), org: org("/1/123/"), value: 7 },
        ];
        #[rustfmt::skip]
        let cases = [
            ("head office sums everything", o("/1/"), 10_000, 1_682, Some(1_682)),
            ("a branch sums its own, its sub-branch and their RMs", o("/1/12/"), 1_000, 675, Some(6_750)),
            ("a sub-branch beyond its target passes 100 %", o("/1/12/120/"), 200, 275, Some(13_750)),
            ("a branch whose id starts like another's sums only its own", o("/1/123/"), 2_000, 1_007, Some(5_035)),
            ("an RM sums its figures", r("A"), 300, 225, Some(7_500)),
            ("an RM exactly at target is at 100 %", r("B"), 300, 300, Some(10_000)),
            ("an RM without figures is at 0", r("D"), 100, 0, Some(0)),
            ("an org without figures is at 0", o("/1/99/"), 500, 0, Some(0)),
            ("a target of 0 has no progress", o("/1/13/"), 0, 0, None),
        ];
        let targets: Vec<(Assignee, i64)> = cases.iter().map(|c| (c.1.clone(), c.2)).collect();
        let progress = roll_up(&targets, &org_actuals, &rm_actuals).unwrap();
        assert_eq!(progress.len(), cases.len());
        for ((name, assignee, target, actual, bp), p) in cases.into_iter().zip(progress) {
            assert_eq!(p, Progress { assignee, target, actual, progress_bp: bp }, "{name}");
        }
    }

    #[test]
    fn progress_truncates_toward_zero() {
        let cases =
            [(2, 3, Some(6_666)), (9_999, 10_000, Some(9_999)), (-1, 3, Some(-3_333)), (5, 0, None), (0, 5, Some(0))];
        for (actual, target, expected) in cases {
            assert_eq!(progress_bp(actual, target), expected, "{actual}/{target}");
        }
    }

    #[test]
    fn a_roll_up_refuses_negative_or_repeated_targets() {
        let cases = [
            (vec![(o("/1/"), -5)], TargetError::NegativeTarget { assignee: o("/1/"), value: -5 }),
            (vec![(r("A"), 5), (r("A"), 6)], TargetError::DuplicateTarget(r("A"))),
        ];
        for (targets, expected) in cases {
            assert_eq!(roll_up(&targets, &[], &[]), Err(expected));
        }
    }

    #[test]
    fn at_or_above_a_level_follows_the_order_of_the_rule() {
        let rule = LevelRule::bank_default(1, date!(2026 - 01 - 01));
        let cases = [
            ("the lowest level counts everyone", "potential", vec!["potential", "gold", "platinum", "growth", "core"]),
            ("a middle level counts itself and those above", "platinum", vec!["platinum", "growth", "core"]),
            ("the highest level counts itself", "core", vec!["core"]),
            ("a level the rule does not have counts nobody", "diamond", vec![]),
        ];
        for (name, level, expected) in cases {
            assert_eq!(levels_at_or_above(&rule, level), expected, "{name}");
        }
    }
}
