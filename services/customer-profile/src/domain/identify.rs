//! The bank's identification rule for personal customers:
//! - ID type, ID number and name all equal → the same customer (merge), also within
//!   one source system;
//! - same ID type and number, different name → not merged, but a suspect pair for a
//!   data steward;
//! - different ID type or number → different customers;
//! - ID type "other" → never merged, never a suspect.
//!
//! Equality is on the matching forms (15-digit resident IDs as their 18-digit form,
//! full-width characters, spaces and case normalised), so the rule is an equivalence:
//! all records with the same [`IdentityKey`] are one customer.

use super::id::IdType;
use super::record::ValidatedRecord;

/// What identifies a customer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdentityKey {
    /// ID type.
    pub id_type: IdType,
    /// ID number, matching form.
    pub match_key: String,
    /// Name, matching form.
    pub name_key: String,
}

impl IdentityKey {
    /// The key of a record; `None` when it can never be merged (type "other").
    pub fn of(v: &ValidatedRecord) -> Option<IdentityKey> {
        let match_key = v.match_key.clone()?;
        v.record.id_type.is_mergeable().then(|| IdentityKey {
            id_type: v.record.id_type,
            match_key,
            name_key: v.name_key.clone(),
        })
    }

    /// A stable string form, used as a database key.
    pub fn digest(&self) -> String {
        format!("{}|{}|{}", self.id_type.code(), self.match_key, self.name_key)
    }
}

/// How two identities relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// One customer.
    SameParty,
    /// Same ID, another name: ask a data steward.
    Suspect,
    /// Different customers.
    Unrelated,
}

/// Applies the rule to two identities.
pub fn relate(a: &IdentityKey, b: &IdentityKey) -> Relation {
    if a.id_type != b.id_type || a.match_key != b.match_key {
        Relation::Unrelated
    } else if a.name_key == b.name_key {
        Relation::SameParty
    } else {
        Relation::Suspect
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::id::Date;
    use crate::domain::record::{PartyKind, SourceRecord, validate};

    fn key(id_type: IdType, id: &str, name: &str) -> Option<IdentityKey> {
        let r = SourceRecord {
            source_system: "CORE".into(),
            source_customer_id: "1".into(),
            source_version: 1,
            party_kind: PartyKind::Personal,
            id_type,
            id_number: id.into(),
            name: name.into(),
            gender: None,
            birth_date: None,
            nationality: None,
            mobile_phone: None,
            email: None,
            address: None,
            occupation: None,
        };
        IdentityKey::of(&validate(r, Date { year: 2026, month: 1, day: 1 }).expect("valid"))
    }

    #[test]
    fn the_rule_decides_by_type_number_and_name() {
        use IdType::*;
        let table = [
            ((ResidentId, "11010519491231002X", "张伟"), (ResidentId, "110105491231002", "张伟"), Relation::SameParty),
            ((ResidentId, "11010519491231002X", "张伟"), (ResidentId, "110105491231002", "张玮"), Relation::Suspect),
            (
                (ResidentId, "11010519491231002x", "张伟"),
                (ResidentId, "11010519491231002X", "张伟"),
                Relation::SameParty,
            ),
            (
                (ResidentId, "１１０１０５１９４９１２３１００２Ｘ", "张\u{3000}伟"),
                (ResidentId, "11010519491231002X", "张伟"),
                Relation::SameParty,
            ),
            (
                (ResidentId, "11010519491231002X", "张伟"),
                (ResidentId, "110105198001010016", "张伟"),
                Relation::Unrelated,
            ),
            ((Passport, "E1234567", "ZHANG WEI"), (HkMacaoPermit, "E1234567", "ZHANG WEI"), Relation::Unrelated),
            ((Passport, "e1234567", "Zhang Wei"), (Passport, "E1234567", "ZHANG  WEI"), Relation::SameParty),
            // A number of unusual length is not converted, so it never meets its 18-digit sibling.
            ((ResidentId, "1101054912310021", "张伟"), (ResidentId, "11010519491231002X", "张伟"), Relation::Unrelated),
        ];
        for ((ta, ia, na), (tb, ib, nb), relation) in table {
            let a = key(ta, ia, na).expect("mergeable");
            let b = key(tb, ib, nb).expect("mergeable");
            assert_eq!(relate(&a, &b), relation, "{ia}/{na} vs {ib}/{nb}");
            assert_eq!(relate(&b, &a), relation, "symmetric");
            assert_eq!(a.digest() == b.digest(), relation == Relation::SameParty, "digest equality is the rule");
        }
    }

    #[test]
    fn id_type_other_is_never_merged() {
        assert_eq!(key(IdType::Other, "A-77881", "李娜"), None);
    }
}
