//! Segment membership (客群成员) over time: which entries and exits a re-evaluation
//! finds, and who was a member at a given time.
//!
//! Promises:
//! - [`membership_changes`] turns "the members found now" into the smallest set of
//!   entries and exits from "the members recorded": a customer still in is neither,
//!   so re-evaluating without a change changes nothing (and announces nothing).
//! - [`Stay::covers`] is the one as-of rule (the store's as-of SQL reads the same way):
//!   a customer is a member at `t` when it entered at or before `t` and had not left by
//!   `t` (an exit at exactly `t` is out).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

/// A customer's membership of a segment: `(segment code, customer number)`.
pub type Membership = (String, String);

/// Whether a customer entered or left a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MembershipChangeKind {
    /// The condition holds now and did not before.
    Entered,
    /// It no longer holds, or the customer is gone.
    Left,
}

impl MembershipChangeKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MembershipChangeKind::Entered => "entered",
            MembershipChangeKind::Left => "left",
        }
    }
}

impl FromStr for MembershipChangeKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "entered" => Ok(MembershipChangeKind::Entered),
            "left" => Ok(MembershipChangeKind::Left),
            other => Err(format!("membership change kind {other:?}")),
        }
    }
}

impl TryFrom<String> for MembershipChangeKind {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for MembershipChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a re-evaluation changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipChanges {
    /// Memberships to open, in order.
    pub entered: Vec<Membership>,
    /// Memberships to close, in order.
    pub left: Vec<Membership>,
}

impl MembershipChanges {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.entered.is_empty() && self.left.is_empty()
    }
}

/// The entries and exits that turn `recorded` (the open memberships of the customers
/// and segments re-evaluated) into `found` (where the conditions hold now).
pub fn membership_changes(recorded: &BTreeSet<Membership>, found: &BTreeSet<Membership>) -> MembershipChanges {
    MembershipChanges {
        entered: found.difference(recorded).cloned().collect(),
        left: recorded.difference(found).cloned().collect(),
    }
}

/// One stay of a customer in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stay {
    /// When it entered.
    pub entered_at: OffsetDateTime,
    /// When it left; `None` while a member.
    pub left_at: Option<OffsetDateTime>,
}

impl Stay {
    /// Whether the customer was a member at `t`.
    pub fn covers(&self, t: OffsetDateTime) -> bool {
        self.entered_at <= t && self.left_at.is_none_or(|left| t < left)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeSet<Membership> {
        pairs.iter().map(|(s, c)| (s.to_string(), c.to_string())).collect()
    }

    fn list(pairs: &[(&str, &str)]) -> Vec<Membership> {
        pairs.iter().map(|(s, c)| (s.to_string(), c.to_string())).collect()
    }

    #[test]
    fn a_re_evaluation_changes_only_what_differs() {
        struct Case {
            name: &'static str,
            recorded: &'static [(&'static str, &'static str)],
            found: &'static [(&'static str, &'static str)],
            entered: &'static [(&'static str, &'static str)],
            left: &'static [(&'static str, &'static str)],
        }
        let cases = [
            Case { name: "nothing recorded, nothing found", recorded: &[], found: &[], entered: &[], left: &[] },
            Case {
                name: "no change announces nothing",
                recorded: &[("vip", "1"), ("rich", "1")],
                found: &[("rich", "1"), ("vip", "1")],
                entered: &[],
                left: &[],
            },
            Case {
                name: "a first match enters",
                recorded: &[],
                found: &[("vip", "1"), ("vip", "2")],
                entered: &[("vip", "1"), ("vip", "2")],
                left: &[],
            },
            Case {
                name: "a customer gone leaves every segment",
                recorded: &[("rich", "1"), ("vip", "1")],
                found: &[],
                entered: &[],
                left: &[("rich", "1"), ("vip", "1")],
            },
            Case {
                name: "one segment for another",
                recorded: &[("rich", "1"), ("vip", "2")],
                found: &[("vip", "1"), ("vip", "2")],
                entered: &[("vip", "1")],
                left: &[("rich", "1")],
            },
        ];
        for case in cases {
            let changes = membership_changes(&set(case.recorded), &set(case.found));
            assert_eq!(changes.entered, list(case.entered), "{}", case.name);
            assert_eq!(changes.left, list(case.left), "{}", case.name);
            assert_eq!(changes.is_empty(), case.entered.is_empty() && case.left.is_empty(), "{}", case.name);
        }
    }

    #[test]
    fn a_stay_covers_from_its_entry_up_to_but_not_including_its_exit() {
        let entered = datetime!(2026-04-01 10:00 UTC);
        let left = datetime!(2026-04-03 10:00 UTC);
        let cases = [
            (None, datetime!(2026-04-01 09:59:59 UTC), false),
            (None, entered, true),
            (None, datetime!(2030-01-01 00:00 UTC), true),
            (Some(left), datetime!(2026-04-02 00:00 UTC), true),
            (Some(left), left, false),
            (Some(left), datetime!(2026-04-03 10:00:01 UTC), false),
            (Some(entered), entered, false),
        ];
        for (left_at, t, covered) in cases {
            assert_eq!(Stay { entered_at: entered, left_at }.covers(t), covered, "left {left_at:?}, at {t}");
        }
    }

    #[test]
    fn change_kinds_read_back_as_written() {
        for kind in [MembershipChangeKind::Entered, MembershipChangeKind::Left] {
            assert_eq!(kind.as_str().parse::<MembershipChangeKind>(), Ok(kind));
        }
        assert!("joined".parse::<MembershipChangeKind>().is_err());
    }
}
