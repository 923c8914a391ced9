//! Tags and segments (客户标签, 客群): what a tag or a segment is, the attribute
//! catalogue their conditions are written over, and one customer's attributes as a
//! condition reads them.
//!
//! This module owns:
//! - [`CustomerAttribute`]: the attribute catalogue. [`attribute`] is the one look-up
//!   both the check at definition ([`check_tag_rule`], [`check_segment`]) and the
//!   evaluation ([`CustomerAttributes`]) go through, so a condition that passed the
//!   check never reads a name the evaluator does not know.
//! - [`Code`]: tag and segment codes (lower-case ASCII letters, digits, `_`, 1–32).
//! - [`TagKind`] / [`TagSource`]: a tag is given by its rule or set by staff.
//!
//! Promises:
//! - A tag rule reads attributes only: `tag('x')` is refused in a tag rule (a tag
//!   depending on tags would make the result depend on evaluation order); segments may
//!   read tags, and every tag they name must be defined.
//! - Every refusal carries the position of the problem ("column 17: …").
//! - Values are deterministic from stored facts: the transaction window ends at the
//!   customer's latest balance date (see [`TXN_WINDOW_DAYS`]), never at "today".

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::aum::AssetClass;
use super::demographics::{Demographics, age_on};
use super::expr::{Expr, Facts, Location, ParseError, Value, ValueKind, parse};
use super::rfm::Rfm;

/// Days in the transaction window of `txn.count_90d` and `txn.amount_90d`: the window
/// is the 90 days ending on the customer's latest balance date (that day included), so
/// the attributes follow from stored facts alone and a full recompute gives the same.
pub const TXN_WINDOW_DAYS: i64 = 90;

/// An attribute of a customer that tag and segment conditions can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CustomerAttribute {
    /// `level`: the level code, ordered by the rule in force on the latest balance date.
    Level,
    /// `watch_months`: months on watch, 0 when not.
    WatchMonths,
    /// `aum.total`: weighted AUM at the latest balance date, CNY fen.
    AumTotal,
    /// `aum.<class>`: the class's point-in-time balance (unweighted), CNY fen.
    Aum(AssetClass),
    /// `aum.month.total`: the latest closed month's weighted daily average, CNY fen;
    /// null before any month closed.
    AumMonthTotal,
    /// `txn.count_90d`: transactions in the window.
    TxnCount90d,
    /// `txn.amount_90d`: the sum of the transactions' absolute amounts in the window
    /// (turnover), CNY fen; transactions in a currency without a rate are left out.
    TxnAmount90d,
    /// `rfm.r`, `rfm.f`, `rfm.m`: the customer's overall RFM scores 1–5 (see
    /// [`super::rfm`]); null without a transaction in the RFM window.
    Rfm(RfmMeasure),
    /// `rfm.code`: R·100 + F·10 + M (111–555); null as above.
    RfmCode,
    /// `age`: whole years on the latest balance date; null without a birth date.
    Age,
    /// `gender`: `M`, `F` or `U`; null when not announced.
    Gender,
    /// `region`: the resident ID's administrative division code (6 digits, the first
    /// 2 the province); null without one.
    Region,
}

/// One of the three RFM scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RfmMeasure {
    /// Recency.
    R,
    /// Frequency.
    F,
    /// Monetary.
    M,
}

impl CustomerAttribute {
    /// Every attribute, in catalogue order.
    pub const ALL: [CustomerAttribute; 18] = [
        CustomerAttribute::Level,
        CustomerAttribute::WatchMonths,
        CustomerAttribute::AumTotal,
        CustomerAttribute::Aum(AssetClass::Deposit),
        CustomerAttribute::Aum(AssetClass::WealthManagement),
        CustomerAttribute::Aum(AssetClass::Settlement),
        CustomerAttribute::Aum(AssetClass::Loan),
        CustomerAttribute::Aum(AssetClass::ChannelProduct),
        CustomerAttribute::AumMonthTotal,
        CustomerAttribute::TxnCount90d,
        CustomerAttribute::TxnAmount90d,
        CustomerAttribute::Rfm(RfmMeasure::R),
        CustomerAttribute::Rfm(RfmMeasure::F),
        CustomerAttribute::Rfm(RfmMeasure::M),
        CustomerAttribute::RfmCode,
        CustomerAttribute::Age,
        CustomerAttribute::Gender,
        CustomerAttribute::Region,
    ];

    /// The name written in conditions.
    pub fn name(self) -> String {
        match self {
            CustomerAttribute::Level => "level".into(),
            CustomerAttribute::WatchMonths => "watch_months".into(),
            CustomerAttribute::AumTotal => "aum.total".into(),
            CustomerAttribute::Aum(class) => format!("aum.{}", class.as_str()),
            CustomerAttribute::AumMonthTotal => "aum.month.total".into(),
            CustomerAttribute::TxnCount90d => "txn.count_90d".into(),
            CustomerAttribute::TxnAmount90d => "txn.amount_90d".into(),
            CustomerAttribute::Rfm(RfmMeasure::R) => "rfm.r".into(),
            CustomerAttribute::Rfm(RfmMeasure::F) => "rfm.f".into(),
            CustomerAttribute::Rfm(RfmMeasure::M) => "rfm.m".into(),
            CustomerAttribute::RfmCode => "rfm.code".into(),
            CustomerAttribute::Age => "age".into(),
            CustomerAttribute::Gender => "gender".into(),
            CustomerAttribute::Region => "region".into(),
        }
    }

    /// The kind of value it holds.
    pub fn kind(self) -> ValueKind {
        match self {
            CustomerAttribute::Level => ValueKind::Level,
            CustomerAttribute::Gender | CustomerAttribute::Region => ValueKind::Text,
            _ => ValueKind::Number,
        }
    }
}

/// The attribute catalogue: the attribute a condition names, if any.
pub fn attribute(name: &str) -> Option<CustomerAttribute> {
    CustomerAttribute::ALL.into_iter().find(|a| a.name() == name)
}

/// A tag or segment code: 1–32 lower-case ASCII letters, digits or `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Code(String);

impl Code {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Code {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok =
            (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok { Ok(Code(s.to_string())) } else { Err("must be 1–32 characters: lower-case letters, digits, '_'") }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a tag is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagKind {
    /// By its rule, to every customer for whom the condition holds.
    Rule(Expr),
    /// By staff, customer by customer.
    Manual,
}

/// A tag as defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagDefinition {
    /// Its code.
    pub code: Code,
    /// Its name, for staff.
    pub name: String,
    /// Rule or manual.
    pub kind: TagKind,
    /// 1 for the first definition of the code, one more for each redefinition (0 before
    /// it is stored).
    pub version: u32,
}

/// A segment as defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentDefinition {
    /// Its code.
    pub code: Code,
    /// Its name, for staff.
    pub name: String,
    /// Its condition.
    pub condition: Expr,
    /// As for tags.
    pub version: u32,
}

/// Where a customer's tag comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TagSource {
    /// The tag's rule holds.
    Rule,
    /// Staff set it.
    Manual,
}

impl TagSource {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TagSource::Rule => "rule",
            TagSource::Manual => "manual",
        }
    }
}

impl FromStr for TagSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rule" => Ok(TagSource::Rule),
            "manual" => Ok(TagSource::Manual),
            other => Err(format!("tag source {other:?}")),
        }
    }
}

fn catalogue(name: &str) -> Option<ValueKind> {
    attribute(name).map(CustomerAttribute::kind)
}

/// Parses and checks a tag rule: the attribute catalogue, and no `tag(…)`.
pub fn check_tag_rule(source: &str) -> Result<Expr, ParseError> {
    let expr = parse(source)?;
    expr.check(&catalogue)?;
    if let Some(code) = expr.tags().into_iter().next() {
        return Err(ParseError::at(
            tag_location(source, code),
            "a tag rule cannot read tags (tag('…')); write a segment for that",
        ));
    }
    Ok(expr)
}

/// Parses and checks a segment condition: the attribute catalogue, and every tag it
/// reads among `defined` tags.
pub fn check_segment(source: &str, defined: &BTreeSet<String>) -> Result<Expr, ParseError> {
    let expr = parse(source)?;
    expr.check(&catalogue)?;
    if let Some(code) = expr.tags().into_iter().find(|c| !defined.contains(*c)) {
        return Err(ParseError::at(tag_location(source, code), format!("unknown tag '{code}'")));
    }
    Ok(expr)
}

/// Where `tag('code')` is written in `source` (the `tag` keyword, any case, outside
/// quoted text); the start when it cannot be found.
fn tag_location(source: &str, code: &str) -> Location {
    let chars: Vec<char> = source.chars().collect();
    let quoted = format!("'{}'", code.replace('\'', "''"));
    let mut in_text = false;
    let (mut line, mut column) = (1, 1);
    for (i, &c) in chars.iter().enumerate() {
        if c == '\'' {
            in_text = !in_text;
        } else if !in_text && starts_word(&chars, i, "tag") {
            let rest: String = chars[i + 3..].iter().collect();
            let rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('(')
                && after.trim_start().starts_with(&quoted)
            {
                return Location { position: i, line, column };
            }
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Location { position: 0, line: 1, column: 1 }
}

fn starts_word(chars: &[char], at: usize, word: &str) -> bool {
    let before_ok = at == 0 || !(chars[at - 1].is_ascii_alphanumeric() || chars[at - 1] == '_' || chars[at - 1] == '.');
    let w: Vec<char> = word.chars().collect();
    before_ok
        && chars.len() >= at + w.len()
        && chars[at..at + w.len()].iter().zip(&w).all(|(a, b)| a.eq_ignore_ascii_case(b))
        && chars.get(at + w.len()).is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
}

/// One customer's attributes and tags, as conditions read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerAttributes {
    /// Level code.
    pub level: String,
    /// Months on watch.
    pub watch_months: i64,
    /// Weighted AUM, fen.
    pub aum_total: i64,
    /// Point-in-time balance per class, fen.
    pub aum_by_class: Vec<(AssetClass, i64)>,
    /// Latest closed month's weighted daily average, when a month closed.
    pub aum_month_total: Option<i64>,
    /// Transactions in the window.
    pub txn_count_90d: i64,
    /// Their turnover, fen.
    pub txn_amount_90d: i64,
    /// Overall RFM scores, when the customer has a transaction in the RFM window.
    pub rfm: Option<Rfm>,
    /// Demographic attributes, as announced.
    pub demographics: Demographics,
    /// The latest balance date (the level order is the rule's in force on it).
    pub as_of: Option<time::Date>,
    /// The tags the customer has (segments read them).
    pub tags: BTreeSet<String>,
}

impl CustomerAttributes {
    /// The value of `a`.
    pub fn get(&self, a: CustomerAttribute) -> Value {
        match a {
            CustomerAttribute::Level => Value::Text(self.level.clone()),
            CustomerAttribute::WatchMonths => Value::Number(self.watch_months),
            CustomerAttribute::AumTotal => Value::Number(self.aum_total),
            CustomerAttribute::Aum(class) => {
                Value::Number(self.aum_by_class.iter().find(|(c, _)| *c == class).map_or(0, |(_, v)| *v))
            }
            CustomerAttribute::AumMonthTotal => self.aum_month_total.map_or(Value::Null, Value::Number),
            CustomerAttribute::TxnCount90d => Value::Number(self.txn_count_90d),
            CustomerAttribute::TxnAmount90d => Value::Number(self.txn_amount_90d),
            CustomerAttribute::Rfm(measure) => self.rfm.map_or(Value::Null, |rfm| {
                Value::Number(i64::from(match measure {
                    RfmMeasure::R => rfm.r,
                    RfmMeasure::F => rfm.f,
                    RfmMeasure::M => rfm.m,
                }))
            }),
            CustomerAttribute::RfmCode => self.rfm.map_or(Value::Null, |rfm| Value::Number(i64::from(rfm.code()))),
            CustomerAttribute::Age => match (self.demographics.birth_date, self.as_of) {
                (Some(birth), Some(on)) => age_on(birth, on).map_or(Value::Null, Value::Number),
                _ => Value::Null,
            },
            CustomerAttribute::Gender => {
                self.demographics.gender.map_or(Value::Null, |g| Value::Text(g.code().to_string()))
            }
            CustomerAttribute::Region => {
                self.demographics.region.as_ref().map_or(Value::Null, |r| Value::Text(r.as_str().to_string()))
            }
        }
    }
}

impl Facts for CustomerAttributes {
    fn value(&self, name: &str) -> Value {
        attribute(name).map_or(Value::Null, |a| self.get(a))
    }

    fn has_tag(&self, code: &str) -> bool {
        self.tags.contains(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribute_is_found_by_its_name_and_nothing_else_is() {
        for a in CustomerAttribute::ALL {
            assert_eq!(attribute(&a.name()), Some(a), "{}", a.name());
            assert!(super::super::expr::is_attribute_name(&a.name()), "{}", a.name());
        }
        for name in ["aum", "aum.wealth", "ages", "Level", "txn.count", "aum.month", "rfm", "rfm.x"] {
            assert_eq!(attribute(name), None, "{name}");
        }
    }

    #[test]
    fn codes_are_lower_case_letters_digits_and_underscores() {
        let cases = [
            ("vip", true),
            ("high_aum_2", true),
            ("a", true),
            (&"x".repeat(32) as &str, true),
            (&"x".repeat(33) as &str, false),
            ("", false),
            ("VIP", false),
            ("high-aum", false),
            ("高净值", false),
            ("a b", false),
        ];
        for (code, ok) in cases {
            assert_eq!(code.parse::<Code>().is_ok(), ok, "{code:?}");
        }
    }

    #[test]
    fn tag_rules_and_segments_are_checked_with_positions() {
        struct Case {
            name: &'static str,
            source: &'static str,
            segment: bool,
            error: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "a good tag rule",
                source: "aum.total >= 100 and level >= 'gold'",
                segment: false,
                error: None,
            },
            Case {
                name: "an unknown attribute",
                source: "aum.total >= 1 and aum.wealth > 5",
                segment: false,
                error: Some("column 20: unknown attribute 'aum.wealth'"),
            },
            Case {
                name: "a level compared with a number",
                source: "level >= 3",
                segment: false,
                error: Some(
                    "column 1: 'level' is a level; it cannot be compared with the number 3 (write a level code in quotes)",
                ),
            },
            Case {
                name: "a tag in a tag rule",
                source: "aum.total > 1 or  TAG ( 'vip')",
                segment: false,
                error: Some("column 19: a tag rule cannot read tags (tag('…')); write a segment for that"),
            },
            Case { name: "a segment over a tag", source: "tag('vip') and level = 'gold'", segment: true, error: None },
            Case {
                name: "a segment over an unknown tag",
                source: "level = 'tag(''x'')' or tag('vip') or\n tag('nope')",
                segment: true,
                error: Some("line 2, column 2: unknown tag 'nope'"),
            },
            Case {
                name: "a syntax error",
                source: "aum.total >= ",
                segment: true,
                error: Some("column 14: expected a value after '>='"),
            },
        ];
        let defined: BTreeSet<String> = ["vip".to_string()].into();
        for case in cases {
            let result = if case.segment { check_segment(case.source, &defined) } else { check_tag_rule(case.source) };
            assert_eq!(result.err().map(|e| e.to_string()).as_deref(), case.error, "{}", case.name);
        }
    }

    #[test]
    fn attributes_read_as_conditions_expect() {
        let customer = CustomerAttributes {
            level: "gold".into(),
            watch_months: 1,
            aum_total: 600,
            aum_by_class: vec![(AssetClass::Deposit, 400), (AssetClass::WealthManagement, 200)],
            aum_month_total: None,
            txn_count_90d: 3,
            txn_amount_90d: 900,
            rfm: Some(Rfm { r: 5, f: 2, m: 4 }),
            demographics: Demographics {
                birth_date: Some(time::macros::date!(1986 - 07 - 01)),
                gender: Some(super::super::demographics::Gender::Female),
                region: Some("440524".parse().unwrap()),
            },
            as_of: Some(time::macros::date!(2026 - 06 - 30)),
            tags: ["vip".to_string()].into(),
        };
        let levels: Vec<String> = ["potential", "gold", "core"].map(String::from).to_vec();
        let cases = [
            ("level >= 'gold' and aum.deposit = 400 and aum.settlement = 0", true),
            ("level > 'gold'", false),
            ("aum.month.total is null", true),
            ("aum.month.total >= 0", false),
            ("rfm.r = 5 and rfm.f = 2 and rfm.m = 4 and rfm.code = 524", true),
            ("rfm.r >= 4 and rfm.m < 4", false),
            ("age between 30 and 39 and gender = 'F' and region starts with '44'", true),
            ("age >= 40 or gender in ('M', 'U') or region = '110105'", false),
            ("txn.count_90d >= 3 and txn.amount_90d between 900 and 1000 and watch_months = 1", true),
            ("tag('vip') and not tag('other')", true),
        ];
        for (source, expected) in cases {
            assert_eq!(parse(source).unwrap().eval(&customer, &levels), expected, "{source}");
        }
    }
}
