//! Kinds and statuses the ECIF stores as text, each an enum with its one mapping to
//! the stored code. Party kinds, ID types and genders live with the source record
//! ([`super::record`], [`super::id`]).

/// How two customers are related, read as "customer <kind> related customer".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelationshipKind {
    /// A person holds a role in a company.
    ExecutiveOf,
    /// A company is a subsidiary of a parent company.
    SubsidiaryOf,
    /// Two companies share a legal representative.
    SharesLegalRepresentativeWith,
    /// A person is a family member of another.
    FamilyMemberOf,
}

stored_codes!(RelationshipKind {
    ExecutiveOf => "EXECUTIVE_OF",
    SubsidiaryOf => "SUBSIDIARY_OF",
    SharesLegalRepresentativeWith => "SHARES_LEGAL_REPRESENTATIVE_WITH",
    FamilyMemberOf => "FAMILY_MEMBER_OF",
});

/// What an assignment change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssignmentAction {
    /// A first home org or RM.
    Assign,
    /// A change to an existing assignment.
    Adjust,
    /// RMs taken away; the home org stays.
    Recall,
}

stored_codes!(AssignmentAction { Assign => "ASSIGN", Adjust => "ADJUST", Recall => "RECALL" });

/// What an upsert did to the golden record of its source record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpsertOutcome {
    /// A new customer.
    Created,
    /// An existing customer changed.
    Updated,
    /// Nothing changed (a replay, or a version not newer than the stored one).
    Unchanged,
}

stored_codes!(UpsertOutcome { Created => "CREATED", Updated => "UPDATED", Unchanged => "UNCHANGED" });

/// What happened to a golden record, as its history says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The customer was created by its first source record.
    Created,
    /// Golden attributes changed.
    Updated,
    /// Another customer was merged into this one.
    Merged,
    /// This customer was merged into another.
    Absorbed,
    /// A source record left this customer.
    Unmerged,
}

stored_codes!(ChangeKind {
    Created => "CREATED",
    Updated => "UPDATED",
    Merged => "MERGED",
    Absorbed => "ABSORBED",
    Unmerged => "UNMERGED",
});

/// Whether a customer still stands on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartyStatus {
    /// A customer of its own.
    Active,
    /// Merged into another customer (its number answers with the survivor).
    Merged,
}

stored_codes!(PartyStatus { Active => "ACTIVE", Merged => "MERGED" });

/// Where a suspect pair stands: waiting for a data steward, or decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SuspectStatus {
    /// Waiting for a data steward.
    Open,
    /// Decided: one real customer (the two were merged).
    SameParty,
    /// Decided: two customers (never suspected again).
    DifferentParties,
}

stored_codes!(SuspectStatus { Open => "OPEN", SameParty => "SAME_PARTY", DifferentParties => "DIFFERENT_PARTIES" });

#[cfg(test)]
mod tests {
    use super::super::{Gender, IdType, PartyKind};
    use super::*;

    fn round_trips<T: Copy + PartialEq + std::fmt::Debug>(
        codes: &[(T, &str)],
        code: fn(T) -> &'static str,
        from_code: fn(&str) -> Option<T>,
    ) {
        for &(value, text) in codes {
            assert_eq!(code(value), text);
            assert_eq!(from_code(text), Some(value), "{text}");
            assert_eq!(from_code(&format!(" {} ", text.to_lowercase())), Some(value), "{text}");
        }
        let distinct: std::collections::HashSet<&str> = codes.iter().map(|(_, c)| *c).collect();
        assert_eq!(distinct.len(), codes.len(), "codes are distinct");
        assert_eq!(from_code(""), None);
        assert_eq!(from_code("NO_SUCH_CODE"), None);
    }

    #[test]
    fn every_kind_and_status_round_trips_through_its_stored_code() {
        round_trips(PartyKind::CODES, PartyKind::code, PartyKind::from_code);
        round_trips(IdType::CODES, IdType::code, IdType::from_code);
        round_trips(RelationshipKind::CODES, RelationshipKind::code, RelationshipKind::from_code);
        round_trips(AssignmentAction::CODES, AssignmentAction::code, AssignmentAction::from_code);
        round_trips(UpsertOutcome::CODES, UpsertOutcome::code, UpsertOutcome::from_code);
        round_trips(ChangeKind::CODES, ChangeKind::code, ChangeKind::from_code);
        round_trips(PartyStatus::CODES, PartyStatus::code, PartyStatus::from_code);
        round_trips(SuspectStatus::CODES, SuspectStatus::code, SuspectStatus::from_code);
    }

    #[test]
    fn the_stored_codes_are_the_ones_the_migrations_check() {
        // CHECK constraints in migrations/0001_ecif.sql and 0003_assignment_search.sql.
        assert_eq!(PartyKind::CODES.iter().map(|(_, c)| *c).collect::<Vec<_>>(), ["PERSONAL", "CORPORATE"]);
        assert_eq!(PartyStatus::CODES.iter().map(|(_, c)| *c).collect::<Vec<_>>(), ["ACTIVE", "MERGED"]);
        assert_eq!(
            SuspectStatus::CODES.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
            ["OPEN", "SAME_PARTY", "DIFFERENT_PARTIES"]
        );
        assert_eq!(AssignmentAction::CODES.iter().map(|(_, c)| *c).collect::<Vec<_>>(), ["ASSIGN", "ADJUST", "RECALL"]);
        for g in [Gender::Male, Gender::Female, Gender::Unknown] {
            assert_eq!(Gender::from_code(g.code()), Some(g));
        }
    }
}
