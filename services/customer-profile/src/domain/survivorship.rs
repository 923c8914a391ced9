//! Survivorship: which source's value becomes the golden value of each attribute.
//!
//! Every source system has a trust level per attribute (configuration). The most
//! trusted non-blank value wins; among equally trusted values the most recently
//! updated wins. Values that failed validation never reach this point (validation
//! removes them), so good data is never replaced by bad: not by a blank, not by an
//! invalid value, not by a less trusted source however recent.

use std::collections::HashMap;

/// An attribute of the golden record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attribute {
    /// Customer name.
    Name,
    /// Gender.
    Gender,
    /// Birth date.
    BirthDate,
    /// Nationality.
    Nationality,
    /// Mobile phone.
    MobilePhone,
    /// Email.
    Email,
    /// Address.
    Address,
    /// Occupation.
    Occupation,
    /// ID number (with its type).
    IdNumber,
}

impl Attribute {
    /// Every attribute.
    pub const ALL: [Attribute; 9] = [
        Attribute::Name,
        Attribute::Gender,
        Attribute::BirthDate,
        Attribute::Nationality,
        Attribute::MobilePhone,
        Attribute::Email,
        Attribute::Address,
        Attribute::Occupation,
        Attribute::IdNumber,
    ];

    /// snake_case name, as used in configuration, lineage and events.
    pub fn code(self) -> &'static str {
        match self {
            Attribute::Name => "name",
            Attribute::Gender => "gender",
            Attribute::BirthDate => "birth_date",
            Attribute::Nationality => "nationality",
            Attribute::MobilePhone => "mobile_phone",
            Attribute::Email => "email",
            Attribute::Address => "address",
            Attribute::Occupation => "occupation",
            Attribute::IdNumber => "id_number",
        }
    }
}

/// Trust per source system and attribute.
#[derive(Debug, Clone, Default)]
pub struct TrustTable {
    default_trust: i32,
    per_source: HashMap<String, i32>,
    per_attribute: HashMap<(String, Attribute), i32>,
}

impl TrustTable {
    /// A table giving `default_trust` to unknown sources.
    pub fn new(default_trust: i32) -> Self {
        Self { default_trust, ..Self::default() }
    }

    /// Trust of one source for one attribute.
    pub fn set(&mut self, source_system: &str, attribute: Attribute, trust: i32) {
        self.per_attribute.insert((source_system.to_string(), attribute), trust);
    }

    /// Trust of one source for attributes without their own setting.
    pub fn set_source_default(&mut self, source_system: &str, trust: i32) {
        self.per_source.insert(source_system.to_string(), trust);
    }

    /// The trust that applies.
    pub fn trust(&self, source_system: &str, attribute: Attribute) -> i32 {
        self.per_attribute
            .get(&(source_system.to_string(), attribute))
            .or_else(|| self.per_source.get(source_system))
            .copied()
            .unwrap_or(self.default_trust)
    }
}

/// One source record's value for an attribute.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The value, if the record has one.
    pub value: Option<&'a str>,
    /// Its source system.
    pub source_system: &'a str,
    /// Its id in that system.
    pub source_customer_id: &'a str,
    /// When the record was last updated (unix microseconds).
    pub updated_at: i64,
}

/// The chosen value and where it came from (lineage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Winner {
    /// The golden value.
    pub value: String,
    /// Source system.
    pub source_system: String,
    /// Source record id.
    pub source_customer_id: String,
    /// Trust that won.
    pub trust: i32,
    /// When that record was updated.
    pub updated_at: i64,
}

/// The golden value of `attribute` among `candidates`, if any is non-blank.
pub fn choose(table: &TrustTable, attribute: Attribute, candidates: &[Candidate<'_>]) -> Option<Winner> {
    candidates
        .iter()
        .filter_map(|c| {
            c.value.filter(|v| !v.trim().is_empty()).map(|v| (c, v, table.trust(c.source_system, attribute)))
        })
        .max_by(|(a, _, ta), (b, _, tb)| {
            ta.cmp(tb)
                .then(a.updated_at.cmp(&b.updated_at))
                // Deterministic last resort: the smaller source key wins.
                .then((b.source_system, b.source_customer_id).cmp(&(a.source_system, a.source_customer_id)))
        })
        .map(|(c, v, trust)| Winner {
            value: v.to_string(),
            source_system: c.source_system.to_string(),
            source_customer_id: c.source_customer_id.to_string(),
            trust,
            updated_at: c.updated_at,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TrustTable {
        let mut t = TrustTable::new(10);
        t.set_source_default("CORE", 90);
        t.set_source_default("CARDS", 60);
        t.set("CARDS", Attribute::MobilePhone, 95);
        t
    }

    fn c<'a>(value: Option<&'a str>, source: &'a str, at: i64) -> Candidate<'a> {
        Candidate { value, source_system: source, source_customer_id: "1", updated_at: at }
    }

    #[test]
    fn trust_falls_back_from_attribute_to_source_to_default() {
        let t = table();
        assert_eq!(t.trust("CARDS", Attribute::MobilePhone), 95);
        assert_eq!(t.trust("CARDS", Attribute::Email), 60);
        assert_eq!(t.trust("BRANCH_X", Attribute::Email), 10);
    }

    #[test]
    fn the_most_trusted_non_blank_value_wins() {
        let t = table();
        let table: [(&[Candidate<'_>], Option<&str>); 7] = [
            // more trusted beats less trusted, whatever the order or age
            (&[c(Some("core"), "CORE", 1), c(Some("cards"), "CARDS", 9)], Some("core")),
            (&[c(Some("cards"), "CARDS", 9), c(Some("core"), "CORE", 1)], Some("core")),
            // a blank from a more trusted source never overwrites
            (&[c(Some("cards"), "CARDS", 1), c(None, "CORE", 9)], Some("cards")),
            (&[c(Some("cards"), "CARDS", 1), c(Some("  "), "CORE", 9)], Some("cards")),
            // equal trust: the most recent wins
            (&[c(Some("old"), "CORE", 1), c(Some("new"), "CORE", 2)], Some("new")),
            // unknown sources lose to configured ones
            (&[c(Some("x"), "BRANCH_X", 9), c(Some("cards"), "CARDS", 1)], Some("cards")),
            (&[c(None, "CORE", 1)], None),
        ];
        for (candidates, expected) in table {
            assert_eq!(
                choose(&t, Attribute::Email, candidates).map(|w| w.value).as_deref(),
                expected,
                "{candidates:?}"
            );
        }
    }

    #[test]
    fn attribute_trust_can_favour_another_source() {
        let t = table();
        let cs = [c(Some("13800000000"), "CORE", 9), c(Some("13900000000"), "CARDS", 1)];
        let w = choose(&t, Attribute::MobilePhone, &cs).expect("winner");
        assert_eq!((w.value.as_str(), w.source_system.as_str(), w.trust), ("13900000000", "CARDS", 95));
    }

    #[test]
    fn ties_are_broken_deterministically() {
        let t = table();
        let a = Candidate { value: Some("a"), source_system: "CORE", source_customer_id: "1", updated_at: 5 };
        let b = Candidate { value: Some("b"), source_system: "CORE", source_customer_id: "2", updated_at: 5 };
        assert_eq!(choose(&t, Attribute::Email, &[a, b]).map(|w| w.value), Some("a".into()));
        assert_eq!(choose(&t, Attribute::Email, &[b, a]).map(|w| w.value), Some("a".into()));
    }
}
