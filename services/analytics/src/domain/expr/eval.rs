//! Evaluating a condition for one customer, and explaining the result.
//!
//! Two-valued logic: a test that cannot be made is false. That covers a missing value
//! (null; only `is null` is true of it), a number met with text or the reverse (a
//! condition that passed [`Expr::check`] never does that), and an order between texts
//! that are not both level codes. `not` turns any of these falses into true.
//! [`Expr::explain`] reads every branch (no short cut), so the explanation shows all the
//! reasons; its outcome always equals [`Expr::eval`].

use std::cmp::Ordering;
use std::fmt;

use super::{CompareOp, Expr, Literal, Test};

/// What the evaluator needs to know about one customer.
pub trait Facts {
    /// The customer's value of an attribute; [`Value::Null`] when there is none.
    fn value(&self, name: &str) -> Value;
    /// Whether the customer has the tag.
    fn has_tag(&self, code: &str) -> bool;
}

/// A customer's value of an attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A whole number (money in minor units).
    Number(i64),
    /// Text or a code (a level code too).
    Text(String),
    /// No value.
    Null,
}

/// Numbers as digits, text in quotes, `null`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Text(s) => super::write_quoted(f, s),
            Value::Null => f.write_str("null"),
        }
    }
}

/// Why a condition is true or false for a customer: a tree with the shape of the
/// condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// What kind of node this is.
    pub kind: NodeKind,
    /// The node's source text (canonical form).
    pub source: String,
    /// The attribute value the node read (attribute tests only).
    pub value: Option<Value>,
    /// What the node saw, e.g. `62000000 ≥ 50000000`, `null`, `present`; empty for
    /// `and`, `or` and `not`.
    pub detail: String,
    /// The node's truth value.
    pub outcome: bool,
    /// The explanations of the node's conditions (`and`, `or`, `not`).
    pub children: Vec<Explanation>,
}

/// The kind of an [`Explanation`] node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// All of the children.
    And,
    /// Any of the children.
    Or,
    /// The opposite of the child.
    Not,
    /// A test of an attribute.
    Attribute,
    /// `tag('code')`.
    Tag,
}

/// One clause per test, e.g. `aum.wealth >= 50000000: 62000000 ≥ 50000000 → true;
/// rfm.r >= 4: 3 ≥ 4 → false`. The clauses of a top-level `and` / `or` are listed
/// without a heading; a `not` or a nested group reads `source → outcome [clauses]`.
impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            NodeKind::And | NodeKind::Or => write_clauses(f, &self.children),
            _ => self.write_node(f),
        }
    }
}

impl Explanation {
    fn write_node(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            NodeKind::Attribute | NodeKind::Tag => write!(f, "{}: {} → {}", self.source, self.detail, self.outcome),
            NodeKind::And | NodeKind::Or | NodeKind::Not => {
                write!(f, "{} → {} [", self.source, self.outcome)?;
                write_clauses(f, &self.children)?;
                f.write_str("]")
            }
        }
    }
}

fn write_clauses(f: &mut fmt::Formatter<'_>, nodes: &[Explanation]) -> fmt::Result {
    for (i, node) in nodes.iter().enumerate() {
        if i > 0 {
            f.write_str("; ")?;
        }
        node.write_node(f)?;
    }
    Ok(())
}

/// The result of one attribute test.
enum Verdict {
    /// The test was made.
    Made(bool),
    /// The value is missing.
    Null,
    /// The value and the literal are of different kinds.
    Mismatch,
    /// Texts were ordered but this one is not a level code.
    NotALevel(String),
}

impl Verdict {
    fn holds(&self) -> bool {
        matches!(self, Verdict::Made(true))
    }
}

impl Expr {
    /// Whether the condition is true for the customer. `levels` are the customer level
    /// codes from lowest to highest, for `<`, `<=`, `>`, `>=` and `between` on levels.
    pub fn eval(&self, facts: &(impl Facts + ?Sized), levels: &[String]) -> bool {
        match self {
            Expr::Or(items) => items.iter().any(|e| e.eval(facts, levels)),
            Expr::And(items) => items.iter().all(|e| e.eval(facts, levels)),
            Expr::Not(inner) => !inner.eval(facts, levels),
            Expr::Predicate { attribute, test } => verdict(&facts.value(&attribute.name), test, levels).holds(),
            Expr::HasTag(code) => facts.has_tag(code),
        }
    }

    /// Why the condition is true or false for the customer (same `levels` as [`Expr::eval`]).
    pub fn explain(&self, facts: &(impl Facts + ?Sized), levels: &[String]) -> Explanation {
        let group = |kind, items: &[Expr], outcome: fn(&[Explanation]) -> bool| {
            let children: Vec<_> = items.iter().map(|e| e.explain(facts, levels)).collect();
            let outcome = outcome(&children);
            Explanation { kind, source: self.to_string(), value: None, detail: String::new(), outcome, children }
        };
        match self {
            Expr::Or(items) => group(NodeKind::Or, items, |c| c.iter().any(|e| e.outcome)),
            Expr::And(items) => group(NodeKind::And, items, |c| c.iter().all(|e| e.outcome)),
            Expr::Not(inner) => {
                group(NodeKind::Not, std::slice::from_ref(inner.as_ref()), |c| !c.iter().all(|e| e.outcome))
            }
            Expr::Predicate { attribute, test } => {
                let value = facts.value(&attribute.name);
                let verdict = verdict(&value, test, levels);
                Explanation {
                    kind: NodeKind::Attribute,
                    source: self.to_string(),
                    detail: detail(&value, test, &verdict),
                    outcome: verdict.holds(),
                    value: Some(value),
                    children: Vec::new(),
                }
            }
            Expr::HasTag(code) => {
                let outcome = facts.has_tag(code);
                Explanation {
                    kind: NodeKind::Tag,
                    source: self.to_string(),
                    value: None,
                    detail: if outcome { "present" } else { "absent" }.to_string(),
                    outcome,
                    children: Vec::new(),
                }
            }
        }
    }
}

fn verdict(value: &Value, test: &Test, levels: &[String]) -> Verdict {
    let made = |result: Result<bool, Verdict>| result.map_or_else(|v| v, Verdict::Made);
    match test {
        Test::IsNull => Verdict::Made(*value == Value::Null),
        Test::IsNotNull => Verdict::Made(*value != Value::Null),
        Test::Compare(op, literal) if op.is_ordering() => made(order(value, literal, levels).map(|o| op.holds(o))),
        Test::Compare(op, literal) => made(equal(value, literal).map(|eq| eq == (*op == CompareOp::Eq))),
        Test::Between(low, high) => made(between(value, low, high, levels)),
        Test::In(values) => match value {
            Value::Null => Verdict::Null,
            _ => Verdict::Made(values.iter().any(|v| matches!(equal(value, v), Ok(true)))),
        },
        Test::StartsWith(prefix) => match value {
            Value::Text(text) => Verdict::Made(text.starts_with(prefix.as_str())),
            Value::Number(_) => Verdict::Mismatch,
            Value::Null => Verdict::Null,
        },
    }
}

fn between(value: &Value, low: &Literal, high: &Literal, levels: &[String]) -> Result<bool, Verdict> {
    Ok(order(value, low, levels)? != Ordering::Less && order(value, high, levels)? != Ordering::Greater)
}

fn equal(value: &Value, literal: &Literal) -> Result<bool, Verdict> {
    match (value, literal) {
        (Value::Null, _) => Err(Verdict::Null),
        (Value::Number(a), Literal::Number(b)) => Ok(a == b),
        (Value::Text(a), Literal::Text(b)) => Ok(a == b),
        _ => Err(Verdict::Mismatch),
    }
}

/// The order of `value` against `literal`: numbers by value, texts by level rank.
fn order(value: &Value, literal: &Literal, levels: &[String]) -> Result<Ordering, Verdict> {
    let rank = |code: &str| levels.iter().position(|l| l == code).ok_or_else(|| Verdict::NotALevel(code.to_string()));
    match (value, literal) {
        (Value::Null, _) => Err(Verdict::Null),
        (Value::Number(a), Literal::Number(b)) => Ok(a.cmp(b)),
        (Value::Text(a), Literal::Text(b)) => Ok(rank(a)?.cmp(&rank(b)?)),
        _ => Err(Verdict::Mismatch),
    }
}

fn detail(value: &Value, test: &Test, verdict: &Verdict) -> String {
    match (verdict, test) {
        (Verdict::Null, _) => "null".to_string(),
        (Verdict::NotALevel(code), _) => format!("'{}' is not a level", code.replace('\'', "''")),
        (Verdict::Mismatch, Test::Compare(_, literal)) => format!("{value} cannot be compared with {literal}"),
        (Verdict::Mismatch, Test::Between(low, high)) => {
            format!("{value} cannot be compared with {low} and {high}")
        }
        (Verdict::Mismatch, Test::StartsWith(_)) => format!("{value} is not text"),
        (Verdict::Made(_), Test::Compare(op, literal)) => format!("{value} {} {literal}", op.math_symbol()),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::super::parse;
    use super::*;

    /// A customer as a map of attribute values and a set of tags.
    struct Customer {
        values: BTreeMap<&'static str, Value>,
        tags: BTreeSet<&'static str>,
    }

    impl Facts for Customer {
        fn value(&self, name: &str) -> Value {
            self.values.get(name).cloned().unwrap_or(Value::Null)
        }
        fn has_tag(&self, code: &str) -> bool {
            self.tags.contains(code)
        }
    }

    fn levels() -> Vec<String> {
        ["potential", "gold", "platinum"].map(String::from).to_vec()
    }

    /// Wealth 62 000 000 fen, R = 3, age 45, platinum, Beijing, no gender, tag vip.
    fn customer() -> Customer {
        let text = |s: &str| Value::Text(s.to_string());
        Customer {
            values: BTreeMap::from([
                ("aum.wealth", Value::Number(62_000_000)),
                ("rfm.r", Value::Number(3)),
                ("age", Value::Number(45)),
                ("level", text("platinum")),
                ("old_level", text("silver")),
                ("region", text("110105")),
                ("city", text("北京")),
                ("name", text("O'Brien")),
                ("flag", Value::Number(1)),
                ("other", Value::Number(0)),
            ]),
            tags: BTreeSet::from(["vip"]),
        }
    }

    fn holds(source: &str) -> bool {
        parse(source).unwrap().eval(&customer(), &levels())
    }

    #[test]
    fn numbers_compare_by_value_with_every_operator() {
        // (source, expected): each operator against a smaller, equal and larger literal.
        let cases = [
            ("age = 44", false),
            ("age = 45", true),
            ("age = 46", false),
            ("age != 44", true),
            ("age != 45", false),
            ("age != 46", true),
            ("age < 44", false),
            ("age < 45", false),
            ("age < 46", true),
            ("age <= 44", false),
            ("age <= 45", true),
            ("age <= 46", true),
            ("age > 44", true),
            ("age > 45", false),
            ("age > 46", false),
            ("age >= 44", true),
            ("age >= 45", true),
            ("age >= 46", false),
        ];
        for (source, expected) in cases {
            assert_eq!(holds(source), expected, "{source}");
        }
    }

    #[test]
    fn every_test_of_a_missing_value_is_false_except_is_null() {
        let cases = [
            ("gender = 'F'", false),
            ("gender != 'F'", false),
            ("gender < 'F'", false),
            ("gender >= 'F'", false),
            ("gender between 1 and 2", false),
            ("gender in ('F', 'M')", false),
            ("gender starts with 'F'", false),
            ("gender is null", true),
            ("gender is not null", false),
            ("not (gender = 'F')", true),
            ("not (gender != 'F')", true),
            ("age is null", false),
            ("age is not null", true),
        ];
        for (source, expected) in cases {
            assert_eq!(holds(source), expected, "{source}");
        }
    }

    #[test]
    fn texts_compare_for_equality_and_levels_by_rank() {
        let cases = [
            ("city = '北京'", true),
            ("city != '北京'", false),
            ("city = '上海'", false),
            ("name = 'O''Brien'", true),
            ("region starts with '11'", true),
            ("region starts with '31'", false),
            ("region starts with ''", true),
            ("city in ('上海', '北京')", true),
            ("city in ('上海')", false),
            ("level = 'platinum'", true),
            ("level >= 'gold'", true),
            ("level > 'platinum'", false),
            ("level >= 'platinum'", true),
            ("level < 'gold'", false),
            ("level between 'gold' and 'platinum'", true),
            ("level between 'potential' and 'gold'", false),
            ("level in ('gold', 'platinum')", true),
            // ordering needs both sides to be level codes
            ("level >= 'diamond'", false),
            ("old_level <= 'platinum'", false),
            ("city < '上海'", false),
            ("city > '上海'", false),
        ];
        for (source, expected) in cases {
            assert_eq!(holds(source), expected, "{source}");
        }
    }

    #[test]
    fn between_includes_both_bounds() {
        let cases = [
            ("age between 30 and 55", true),
            ("age between 45 and 55", true),
            ("age between 30 and 45", true),
            ("age between 45 and 45", true),
            ("age between 46 and 55", false),
            ("age between 30 and 44", false),
            ("age between 55 and 30", false),
        ];
        for (source, expected) in cases {
            assert_eq!(holds(source), expected, "{source}");
        }
    }

    #[test]
    fn a_number_met_with_text_is_false_whatever_the_operator() {
        let cases = [
            ("age = '45'", false),
            ("age != '45'", false),
            ("age >= '45'", false),
            ("age between 30 and '55'", false),
            ("age in ('45')", false),
            ("age starts with '4'", false),
            ("city = 1", false),
            ("city != 1", false),
            ("not (age = '45')", true),
        ];
        for (source, expected) in cases {
            assert_eq!(holds(source), expected, "{source}");
        }
    }

    #[test]
    fn and_or_not_follow_their_truth_tables() {
        // flag = 1 is true, other = 1 is false.
        let cases = [
            ("flag = 1 and flag = 1", true),
            ("flag = 1 and other = 1", false),
            ("other = 1 and flag = 1", false),
            ("other = 1 and other = 1", false),
            ("flag = 1 or flag = 1", true),
            ("flag = 1 or other = 1", true),
            ("other = 1 or flag = 1", true),
            ("other = 1 or other = 1", false),
            ("not flag = 1", false),
            ("not other = 1", true),
            ("not not flag = 1", true),
            ("other = 1 and flag = 1 or flag = 1", true),
            ("other = 1 and (flag = 1 or flag = 1)", false),
            ("tag('vip')", true),
            ("tag('VIP')", false),
            ("not tag('churned')", true),
        ];
        for (source, expected) in cases {
            assert_eq!(holds(source), expected, "{source}");
        }
    }

    #[test]
    fn an_explanation_says_what_each_test_saw() {
        struct Case {
            name: &'static str,
            source: &'static str,
            expected: &'static str,
        }
        let cases = [
            Case {
                name: "a failed and lists every clause",
                source: "aum.wealth >= 50000000 and rfm.r >= 4",
                expected: "aum.wealth >= 50000000: 62000000 ≥ 50000000 → true; rfm.r >= 4: 3 ≥ 4 → false",
            },
            Case {
                name: "a single test",
                source: "age between 30 and 55",
                expected: "age between 30 and 55: 45 → true",
            },
            Case {
                name: "a nested or and a tag",
                source: "level in ('gold', 'platinum') and (tag('private') or aum.wealth > 80000000)",
                expected: "level in ('gold', 'platinum'): 'platinum' → true; \
                           tag('private') or aum.wealth > 80000000 → false \
                           [tag('private'): absent → false; aum.wealth > 80000000: 62000000 > 80000000 → false]",
            },
            Case {
                name: "not of a missing value",
                source: "not (gender = 'F') and region starts with '11'",
                expected: "not (gender = 'F') → true [gender = 'F': null → false]; \
                           region starts with '11': '110105' → true",
            },
            Case {
                name: "a level that is not a level",
                source: "old_level >= 'gold'",
                expected: "old_level >= 'gold': 'silver' is not a level → false",
            },
            Case {
                name: "a comparison that cannot be made",
                source: "age = '45' or city starts with 'x'",
                expected: "age = '45': 45 cannot be compared with '45' → false; city starts with 'x': '北京' → false",
            },
            Case {
                name: "null tests",
                source: "gender is null and city is not null",
                expected: "gender is null: null → true; city is not null: '北京' → true",
            },
            Case { name: "a tag alone", source: "tag('vip')", expected: "tag('vip'): present → true" },
        ];
        for case in cases {
            let e = parse(case.source).unwrap();
            assert_eq!(e.explain(&customer(), &levels()).to_string(), case.expected, "{}", case.name);
        }
    }

    #[test]
    fn an_explanation_always_agrees_with_evaluation() {
        let sources = [
            "aum.wealth >= 50000000 and rfm.r >= 4 and age between 30 and 55",
            "level in ('gold', 'platinum') or tag('vip')",
            "not (gender = 'F') and region starts with '11'",
            "not (level >= 'gold' or city = '北京') or age is null",
            "other = 1 or (flag = 1 and not tag('vip'))",
            "age = '45' or old_level > 'potential'",
        ];
        let people = [customer(), Customer { values: BTreeMap::new(), tags: BTreeSet::new() }];
        for source in sources {
            let e = parse(source).unwrap();
            for person in &people {
                assert_eq!(e.explain(person, &levels()).outcome, e.eval(person, &levels()), "{source}");
            }
        }
    }

    #[test]
    fn an_explanation_has_the_shape_of_the_condition() {
        let e = parse("rfm.r >= 4 or not tag('vip')").unwrap();
        let x = e.explain(&customer(), &levels());
        assert_eq!((x.kind, x.outcome, x.children.len()), (NodeKind::Or, false, 2));
        let test = &x.children[0];
        assert_eq!(
            (test.kind, test.value.clone(), test.detail.as_str()),
            (NodeKind::Attribute, Some(Value::Number(3)), "3 ≥ 4")
        );
        let not = &x.children[1];
        assert_eq!(
            (not.kind, not.source.as_str(), not.children[0].kind),
            (NodeKind::Not, "not tag('vip')", NodeKind::Tag)
        );
    }

    #[test]
    fn values_print_as_they_would_be_written() {
        assert_eq!(Value::Number(-5).to_string(), "-5");
        assert_eq!(Value::Text("O'Brien 北京".into()).to_string(), "'O''Brien 北京'");
        assert_eq!(Value::Null.to_string(), "null");
    }
}
