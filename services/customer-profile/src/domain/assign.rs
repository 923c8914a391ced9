//! Who looks after a customer: how an assignment change applies to the current
//! assignment, and what it is called in the assignment history.

use super::codes::AssignmentAction;

/// A change to apply to assignments.
#[derive(Debug, Clone)]
pub enum AssignmentChange {
    /// Set the given fields (None keeps the current value).
    Assign {
        /// New home org.
        home_org_id: Option<String>,
        /// New primary RM.
        primary_rm_id: Option<String>,
        /// New related RMs.
        related_rm_ids: Option<Vec<String>>,
    },
    /// Remove primary and related RMs.
    Recall,
}

/// A customer's home org and RMs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assigned {
    /// Home org.
    pub home_org_id: Option<String>,
    /// Primary RM.
    pub primary_rm_id: Option<String>,
    /// Related RMs.
    pub related_rm_ids: Vec<String>,
}

/// Applies `change` to the current assignment (`None`: never assigned). Answers the
/// history action and the assignment after the change:
/// - assign: ASSIGN when the customer had neither home org nor primary RM, else
///   ADJUST; fields the change leaves out keep their value;
/// - recall: RECALL; the home org stays, primary and related RMs go.
pub fn apply_change(before: Option<&Assigned>, change: &AssignmentChange) -> (AssignmentAction, Assigned) {
    let current = before.cloned().unwrap_or_default();
    match change {
        AssignmentChange::Assign { home_org_id, primary_rm_id, related_rm_ids } => (
            if before.is_some_and(|b| b.primary_rm_id.is_some() || b.home_org_id.is_some()) {
                AssignmentAction::Adjust
            } else {
                AssignmentAction::Assign
            },
            Assigned {
                home_org_id: home_org_id.clone().or(current.home_org_id),
                primary_rm_id: primary_rm_id.clone().or(current.primary_rm_id),
                related_rm_ids: related_rm_ids.clone().unwrap_or(current.related_rm_ids),
            },
        ),
        AssignmentChange::Recall => (
            AssignmentAction::Recall,
            Assigned { home_org_id: current.home_org_id, primary_rm_id: None, related_rm_ids: vec![] },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assigned(org: Option<&str>, primary: Option<&str>, related: &[&str]) -> Assigned {
        Assigned {
            home_org_id: org.map(str::to_string),
            primary_rm_id: primary.map(str::to_string),
            related_rm_ids: related.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn assign(org: Option<&str>, primary: Option<&str>, related: Option<&[&str]>) -> AssignmentChange {
        AssignmentChange::Assign {
            home_org_id: org.map(str::to_string),
            primary_rm_id: primary.map(str::to_string),
            related_rm_ids: related.map(|r| r.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn a_change_applies_to_the_current_assignment() {
        let full = assigned(Some("ORG1"), Some("rm1"), &["rm2"]);
        let related_only = assigned(None, None, &["rm2"]);
        use AssignmentAction::{Adjust, Assign, Recall};
        let cases: [(Option<&Assigned>, AssignmentChange, AssignmentAction, Assigned); 9] = [
            // never assigned
            (None, assign(Some("ORG1"), Some("rm1"), None), Assign, assigned(Some("ORG1"), Some("rm1"), &[])),
            (None, assign(None, None, None), Assign, assigned(None, None, &[])),
            // assigned before: left-out fields keep their value
            (Some(&full), assign(None, Some("rm9"), None), Adjust, assigned(Some("ORG1"), Some("rm9"), &["rm2"])),
            (Some(&full), assign(Some("ORG2"), None, Some(&[])), Adjust, assigned(Some("ORG2"), Some("rm1"), &[])),
            (Some(&full), assign(None, None, None), Adjust, full.clone()),
            // a row with neither home org nor primary RM counts as unassigned
            (Some(&related_only), assign(None, Some("rm1"), None), Assign, assigned(None, Some("rm1"), &["rm2"])),
            // recall keeps the home org only
            (Some(&full), AssignmentChange::Recall, Recall, assigned(Some("ORG1"), None, &[])),
            (Some(&related_only), AssignmentChange::Recall, Recall, assigned(None, None, &[])),
            (None, AssignmentChange::Recall, Recall, assigned(None, None, &[])),
        ];
        for (before, change, action, after) in cases {
            assert_eq!(apply_change(before, &change), (action, after), "{before:?} {change:?}");
        }
    }
}
