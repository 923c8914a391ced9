//! The golden record of a party: survivorship over all its source records, attribute
//! by attribute ([`survive`]), and what changed between two golden records
//! ([`changed_attributes`], [`history_changes`]). Pure, so that the one-by-one path
//! and bulk runs choose alike.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::survivorship::{Attribute, Candidate, TrustTable, choose};

/// The stored attribute holding the administrative division code of a resident ID
/// (its first 6 digits), kept in clear beside the encrypted number; it travels with
/// the ID number that won, like `id_type`.
pub const ID_REGION: &str = "id_region";

/// The golden record of a party's source records.
#[derive(Debug, Clone, PartialEq)]
pub struct Survived {
    /// Golden values by attribute code (plus `id_type`).
    pub golden: Map<String, Value>,
    /// Where each golden value came from.
    pub lineage: Map<String, Value>,
    /// Union of the records' quality flags, sorted.
    pub flags: Vec<String>,
}

/// Survivorship over `records` (system, id, attributes, flags, updated at µs): each
/// attribute's golden value is chosen by [`choose`]; the ID type travels with the ID
/// number that won; the flags are the union of the records' flags.
pub fn survive<'a>(
    trust: &TrustTable,
    records: impl Iterator<Item = (&'a str, &'a str, &'a Value, &'a [String], i64)>,
) -> Survived {
    let records: Vec<_> = records.collect();
    let flags: BTreeSet<&String> = records.iter().flat_map(|r| r.3.iter()).collect();
    let mut golden = Map::new();
    let mut lineage = Map::new();
    for attribute in Attribute::ALL {
        let candidates: Vec<Candidate<'_>> = records
            .iter()
            .map(|(sys, id, attrs, _, updated)| Candidate {
                value: attrs.get(attribute.code()).and_then(Value::as_str),
                source_system: sys,
                source_customer_id: id,
                updated_at: *updated,
            })
            .collect();
        if let Some(w) = choose(trust, attribute, &candidates) {
            if attribute == Attribute::IdNumber {
                // The ID type travels with the ID number that won.
                if let Some((_, _, attrs, _, _)) =
                    records.iter().find(|(s, i, _, _, _)| *s == w.source_system && *i == w.source_customer_id)
                {
                    for travelling in ["id_type", ID_REGION] {
                        if let Some(t) = attrs.get(travelling) {
                            golden.insert(travelling.into(), t.clone());
                        }
                    }
                }
            }
            golden.insert(attribute.code().into(), json!(w.value));
            lineage.insert(
                attribute.code().into(),
                json!({
                    "source_system": w.source_system,
                    "source_customer_id": w.source_customer_id,
                    "trust": w.trust,
                    "updated_at": w.updated_at,
                }),
            );
        }
    }
    Survived { golden, lineage, flags: flags.into_iter().cloned().collect() }
}

/// The golden attributes (and `id_type`) whose value differs between two golden
/// records, in [`Attribute::ALL`] order, `id_type` last.
pub fn changed_attributes(before: &Value, after: &Map<String, Value>) -> Vec<String> {
    Attribute::ALL
        .iter()
        .map(|a| a.code())
        .chain(std::iter::once("id_type"))
        .filter(|code| before.get(*code) != after.get(*code))
        .map(str::to_string)
        .collect()
}

/// The names a history entry of kind `change_kind` reports as changed: for CREATED and
/// UPDATED (the kinds that carry golden records) every key whose value differs between
/// `before` and `after`, sorted (a missing record counts as empty); for the other kinds,
/// which carry references, none.
pub fn history_changes(change_kind: &str, before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    if change_kind != "CREATED" && change_kind != "UPDATED" {
        return vec![];
    }
    let empty = Map::new();
    let b = before.and_then(Value::as_object).unwrap_or(&empty);
    let a = after.and_then(Value::as_object).unwrap_or(&empty);
    let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    keys.into_iter().filter(|k| b.get(*k) != a.get(*k)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust() -> TrustTable {
        let mut t = TrustTable::new(10);
        t.set_source_default("CORE", 90);
        t.set_source_default("CARDS", 60);
        t.set("CARDS", Attribute::MobilePhone, 95);
        t
    }

    type Record = (&'static str, &'static str, Value, Vec<String>, i64);

    fn golden_of(records: &[Record]) -> Survived {
        survive(&trust(), records.iter().map(|(s, i, a, f, u)| (*s, *i, a, f.as_slice(), *u)))
    }

    #[test]
    fn each_golden_value_comes_from_the_source_that_wins_it() {
        let core: Record = (
            "CORE",
            "1",
            json!({"name": "张三", "id_type": "RESIDENT_ID", "id_number": "enc-core", "mobile_phone": "p-core"}),
            vec!["B".into()],
            1,
        );
        let cards: Record = (
            "CARDS",
            "9",
            json!({"name": "张三丰", "id_type": "PASSPORT", "id_number": "enc-cards", "mobile_phone": "p-cards",
                   "email": "z@example.com"}),
            vec!["A".into(), "B".into()],
            2,
        );
        // (records, attribute, expected golden value, expected source system)
        type Case = (Vec<Record>, &'static str, Option<&'static str>, Option<&'static str>);
        let cases: [Case; 7] = [
            (vec![core.clone(), cards.clone()], "name", Some("张三"), Some("CORE")),
            (vec![cards.clone(), core.clone()], "name", Some("张三"), Some("CORE")),
            (vec![core.clone(), cards.clone()], "mobile_phone", Some("p-cards"), Some("CARDS")),
            (vec![core.clone(), cards.clone()], "email", Some("z@example.com"), Some("CARDS")),
            // The ID type is the one of the record whose ID number won, and has no lineage.
            (vec![cards.clone(), core.clone()], "id_type", Some("RESIDENT_ID"), None),
            (vec![cards], "id_type", Some("PASSPORT"), None),
            (vec![core], "email", None, None),
        ];
        for (records, attribute, value, source) in cases {
            let s = golden_of(&records);
            assert_eq!(s.golden.get(attribute).and_then(Value::as_str), value, "{attribute} of {records:?}");
            assert_eq!(
                s.lineage.get(attribute).and_then(|l| l.get("source_system")).and_then(Value::as_str),
                source,
                "lineage of {attribute} of {records:?}"
            );
        }
    }

    #[test]
    fn lineage_names_the_winning_record_its_trust_and_time_and_flags_are_the_sorted_union() {
        let records: [Record; 2] = [
            ("CORE", "1", json!({"name": "a"}), vec!["Z".into(), "B".into()], 5),
            ("CARDS", "9", json!({"name": "b"}), vec!["B".into(), "A".into()], 7),
        ];
        let s = golden_of(&records);
        assert_eq!(
            s.lineage.get("name"),
            Some(&json!({"source_system": "CORE", "source_customer_id": "1", "trust": 90, "updated_at": 5}))
        );
        assert_eq!(s.flags, ["A", "B", "Z"]);
        let none = golden_of(&[]);
        assert!(none.golden.is_empty() && none.lineage.is_empty() && none.flags.is_empty());
    }

    #[test]
    fn changed_attributes_lists_the_differing_golden_values_in_attribute_order() {
        let after = |v: Value| v.as_object().cloned().unwrap_or_default();
        let cases: [(Value, Value, &[&str]); 6] = [
            (json!({}), json!({}), &[]),
            (json!({"name": "a"}), json!({"name": "a"}), &[]),
            (json!({"name": "a"}), json!({"name": "b"}), &["name"]),
            (json!({}), json!({"email": "e", "name": "n"}), &["name", "email"]),
            (json!({"id_type": "X", "id_number": "1"}), json!({"id_type": "Y", "id_number": "1"}), &["id_type"]),
            // Keys that are no golden attribute are not compared.
            (json!({"party_kind": "PERSONAL"}), json!({}), &[]),
        ];
        for (before, now, expected) in cases {
            assert_eq!(changed_attributes(&before, &after(now.clone())), expected, "{before} -> {now}");
        }
    }

    #[test]
    fn history_reports_changed_keys_only_for_entries_that_carry_golden_records() {
        type Case = (&'static str, Option<Value>, Option<Value>, &'static [&'static str]);
        let cases: [Case; 7] = [
            ("CREATED", None, Some(json!({"name": "a", "email": "e"})), &["email", "name"]),
            ("UPDATED", Some(json!({"name": "a"})), Some(json!({"name": "b"})), &["name"]),
            ("UPDATED", Some(json!({"name": "a", "email": "e"})), Some(json!({"name": "a"})), &["email"]),
            ("UPDATED", Some(json!({"name": "a"})), Some(json!({"name": "a"})), &[]),
            ("UPDATED", Some(json!("not an object")), Some(json!({"x": 1})), &["x"]),
            ("MERGED", None, Some(json!({"absorbed": 7})), &[]),
            ("DETAIL_PUT", Some(json!({"kind": "a"})), Some(json!({"kind": "b"})), &[]),
        ];
        for (kind, before, after, expected) in cases {
            assert_eq!(history_changes(kind, before.as_ref(), after.as_ref()), expected, "{kind} {before:?} {after:?}");
        }
    }
}
