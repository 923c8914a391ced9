//! Which party a new or changed source record belongs to: the rule of [`super::identify`]
//! applied to what is stored.
//!
//! A record joins the party of its identity group when its identity is known; otherwise
//! it stays in its party when it kept its identity or is that party's only record;
//! otherwise (a new identity of a record sharing its party, a new record with a new
//! identity, or one that can never be merged) it founds a new party. When the record
//! leaves a party that then has no records, the two parties were one customer (merge);
//! when records remain, the record was split off (unmerge).

/// Where a record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement<P> {
    /// The party of the record's identity group.
    Join(P),
    /// The party the record was in.
    Stay(P),
    /// A party founded for it.
    Found,
}

/// What is stored about a record before its change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Before<P> {
    /// The party of the record's identity group, if its (new) identity has one.
    pub group_party: Option<P>,
    /// The party the record was in, if it was stored.
    pub old_party: Option<P>,
    /// The record was stored under the same (mergeable) identity.
    pub same_identity: bool,
    /// The record was its party's only record.
    pub alone: bool,
}

/// Applies the rule (see the module docs).
pub fn place<P: Copy>(b: Before<P>) -> Placement<P> {
    match (b.group_party, b.old_party) {
        (Some(g), _) => Placement::Join(g),
        (None, Some(p)) if b.same_identity || b.alone => Placement::Stay(p),
        _ => Placement::Found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_joins_its_identity_stays_or_founds_a_party() {
        let b = |group_party, old_party, same_identity, alone| Before { group_party, old_party, same_identity, alone };
        let cases = [
            // a known identity wins over everything else
            (b(Some(1), None, false, false), Placement::Join(1)),
            (b(Some(1), Some(2), false, false), Placement::Join(1)),
            (b(Some(1), Some(1), true, true), Placement::Join(1)),
            // an unknown identity: stay when nothing else changed or alone
            (b(None, Some(2), true, false), Placement::Stay(2)),
            (b(None, Some(2), false, true), Placement::Stay(2)),
            (b(None, Some(2), true, true), Placement::Stay(2)),
            // the record's new identity splits it off its party
            (b(None, Some(2), false, false), Placement::Found),
            // a record never stored, with an unknown or no identity
            (b(None, None, false, false), Placement::Found),
            (b(None, None, true, true), Placement::Found),
        ];
        for (before, expected) in cases {
            assert_eq!(place(before), expected, "{before:?}");
        }
    }
}
