//! Tag and segment conditions: the small language in which the bank writes "which
//! customers get this tag / belong to this segment", e.g.
//! `aum.wealth >= 50000000 and rfm.r >= 4 and age between 30 and 55`.
//!
//! This module owns the language: its grammar ([`parse()`]), the checks made when a rule
//! is defined ([`Expr::check`]), evaluation against one customer's facts ([`Expr::eval`]),
//! the answer to "why does this customer have / not have this tag" ([`Expr::explain`]),
//! and the attributes and tags a rule reads ([`Expr::names`], [`Expr::tags`]) so that
//! a change to one of them re-evaluates exactly the rules that depend on it.
//!
//! Grammar (EBNF; keywords are case-insensitive, attribute names are not):
//!
//! ```text
//! condition  = or_expr ;
//! or_expr    = and_expr , { "or" , and_expr } ;
//! and_expr   = not_expr , { "and" , not_expr } ;
//! not_expr   = "not" , not_expr | primary ;
//! primary    = "(" , condition , ")"
//!            | "tag" , "(" , text , ")"                    (* the customer has this tag *)
//!            | name , test ;
//! test       = compare_op , value
//!            | "between" , value , "and" , value           (* inclusive at both ends *)
//!            | "in" , "(" , value , { "," , value } , ")"
//!            | "starts" , "with" , text
//!            | "is" , [ "not" ] , "null" ;
//! compare_op = "=" | "!=" | "<" | "<=" | ">" | ">=" ;
//! value      = number | text ;
//! number     = [ "-" ] , digit , { digit } ;                (* i64; money in fen *)
//! text       = "'" , { any char but "'" | "''" } , "'" ;   (* '' is one quote *)
//! name       = part , { "." , part } ;                      (* e.g. aum.wealth *)
//! part       = ( letter | "_" ) , { letter | digit | "_" } ; (* ASCII *)
//! ```
//!
//! `and`, `or`, `not`, `between`, `in`, `starts`, `with`, `is`, `null` and `tag` are
//! reserved and cannot be attribute names. There are no boolean values: a flag is a
//! number compared with `= 1`.
//!
//! Promises:
//! - Errors give the position of the problem in characters (not bytes), so a column is
//!   right for Chinese text too.
//! - The `Display` of an [`Expr`] is its canonical source: it parses back to an equal
//!   `Expr`, and it is the text shown in explanations.
//! - Evaluation is two-valued: any test of a missing value (null) is false, `!=` and
//!   `in` included, except `is null`; `not` turns that false into true. A customer with
//!   no gender is neither `gender = 'F'` nor `gender != 'F'`, and is `not (gender = 'F')`.
//! - Customer levels compare by rank: `level >= 'gold'` uses the ordered level codes
//!   given to the evaluator (lowest first); `=`, `!=` and `in` compare the codes.

mod check;
mod eval;
mod lex;
mod parse;

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use eval::{Explanation, Facts, NodeKind, Value};
pub use parse::parse;

/// A parsed condition.
///
/// `Or` and `And` hold two or more conditions (the parser never builds fewer); a chain
/// `a and b and c` is one `And` of three, while parentheses keep their own node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// True when any of the conditions is true.
    Or(Vec<Expr>),
    /// True when all of the conditions are true.
    And(Vec<Expr>),
    /// True when the condition is false.
    Not(Box<Expr>),
    /// A test of one attribute of the customer.
    Predicate {
        /// The attribute read.
        attribute: Attribute,
        /// What is tested.
        test: Test,
    },
    /// `tag('code')`: the customer has this tag.
    HasTag(String),
}

/// An attribute named in a condition, with where it was written.
#[derive(Debug, Clone, Eq)]
pub struct Attribute {
    /// The attribute name, e.g. `aum.wealth`.
    pub name: String,
    /// Where the name starts in the source (for errors found by [`Expr::check`]).
    pub at: Location,
}

impl Attribute {
    /// An attribute reference not tied to any source text.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), at: Location::default() }
    }
}

/// Two references are equal when they name the same attribute; where each was written
/// does not matter (so a condition equals its re-parsed `Display`).
impl PartialEq for Attribute {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// The test applied to an attribute's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// `= != < <= > >=` against a value.
    Compare(CompareOp, Literal),
    /// `between low and high`, both ends included.
    Between(Literal, Literal),
    /// `in (a, b, …)`: equal to one of the values.
    In(Vec<Literal>),
    /// `starts with 'prefix'` (text only).
    StartsWith(String),
    /// `is null`: the customer has no value.
    IsNull,
    /// `is not null`: the customer has a value.
    IsNotNull,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CompareOp {
    /// The operator as written in a condition.
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }

    /// The operator as shown in explanations (`≠ ≤ ≥`).
    pub fn math_symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "≠",
            CompareOp::Lt => "<",
            CompareOp::Le => "≤",
            CompareOp::Gt => ">",
            CompareOp::Ge => "≥",
        }
    }

    /// Whether `ordering` (value compared with the literal) satisfies the operator.
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self {
            CompareOp::Eq => ordering == Equal,
            CompareOp::Ne => ordering != Equal,
            CompareOp::Lt => ordering == Less,
            CompareOp::Le => ordering != Greater,
            CompareOp::Gt => ordering == Greater,
            CompareOp::Ge => ordering != Less,
        }
    }

    /// Whether the operator orders values (anything but `=` and `!=`).
    pub fn is_ordering(self) -> bool {
        !matches!(self, CompareOp::Eq | CompareOp::Ne)
    }
}

/// A value written in a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// A whole number (money in minor units).
    Number(i64),
    /// Text in single quotes (also a level code).
    Text(String),
}

/// What kind of value an attribute holds, as the attribute catalogue declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    /// A whole number (counts, ages, money in minor units, scores).
    Number,
    /// Free text or a code; only `=`, `!=`, `in`, `starts with`.
    Text,
    /// A customer level code, ordered by rank.
    Level,
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueKind::Number => "a number",
            ValueKind::Text => "text",
            ValueKind::Level => "a level",
        })
    }
}

/// A place in the source of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    /// Offset in characters from the start, 0-based.
    pub position: usize,
    /// Line, 1-based.
    pub line: usize,
    /// Column in characters, 1-based.
    pub column: usize,
}

/// A condition that cannot be accepted, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// Offset in characters from the start of the source, 0-based.
    pub position: usize,
    /// Line, 1-based.
    pub line: usize,
    /// Column in characters (not bytes), 1-based.
    pub column: usize,
    /// What is wrong, for the person who wrote the condition.
    pub message: String,
}

impl ParseError {
    /// An error at `at`.
    pub fn at(at: Location, message: impl Into<String>) -> Self {
        Self { position: at.position, line: at.line, column: at.column, message: message.into() }
    }
}

/// `column 17: …` on a one-line condition, `line 2, column 5: …` past the first line.
impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 1 {
            write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
        } else {
            write!(f, "column {}: {}", self.column, self.message)
        }
    }
}

/// Whether `name` can be written as an attribute name in a condition (for attribute
/// catalogues and scorecard metrics).
pub fn is_attribute_name(name: &str) -> bool {
    let parts_ok = name.split('.').all(|part| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    parts_ok && !lex::is_keyword(name)
}

impl Expr {
    /// The attributes the condition reads, each once, sorted: when one of them changes
    /// for a customer, the condition must be evaluated again for that customer.
    pub fn names(&self) -> BTreeSet<&str> {
        let mut names = BTreeSet::new();
        self.visit(&mut |e| {
            if let Expr::Predicate { attribute, .. } = e {
                names.insert(attribute.name.as_str());
            }
        });
        names
    }

    /// The tag codes the condition reads, each once, sorted (same purpose as [`Expr::names`]).
    pub fn tags(&self) -> BTreeSet<&str> {
        let mut tags = BTreeSet::new();
        self.visit(&mut |e| {
            if let Expr::HasTag(code) = e {
                tags.insert(code.as_str());
            }
        });
        tags
    }

    /// Calls `f` on this node and every node below it, in source order.
    fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Or(items) | Expr::And(items) => items.iter().for_each(|e| e.visit(f)),
            Expr::Not(inner) => inner.visit(f),
            Expr::Predicate { .. } | Expr::HasTag(_) => {}
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Text(s) => write_quoted(f, s),
        }
    }
}

/// Writes `s` in single quotes, doubling any quote inside.
pub(crate) fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    write!(f, "'{}'", s.replace('\'', "''"))
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Test::Compare(op, value) => write!(f, "{} {value}", op.symbol()),
            Test::Between(low, high) => write!(f, "between {low} and {high}"),
            Test::In(values) => {
                f.write_str("in (")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
            Test::StartsWith(prefix) => {
                f.write_str("starts with ")?;
                write_quoted(f, prefix)
            }
            Test::IsNull => f.write_str("is null"),
            Test::IsNotNull => f.write_str("is not null"),
        }
    }
}

/// The canonical source: lower-case keywords, single spaces, parentheses only where the
/// structure needs them (and always after `not`, except before `tag(…)` and `not`).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Or(items) => write_chain(f, items, " or ", |e| matches!(e, Expr::Or(_))),
            Expr::And(items) => write_chain(f, items, " and ", |e| matches!(e, Expr::Or(_) | Expr::And(_))),
            Expr::Not(inner) => match inner.as_ref() {
                Expr::HasTag(_) | Expr::Not(_) => write!(f, "not {inner}"),
                _ => write!(f, "not ({inner})"),
            },
            Expr::Predicate { attribute, test } => write!(f, "{} {test}", attribute.name),
            Expr::HasTag(code) => {
                f.write_str("tag(")?;
                write_quoted(f, code)?;
                f.write_str(")")
            }
        }
    }
}

fn write_chain(
    f: &mut fmt::Formatter<'_>,
    items: &[Expr],
    separator: &str,
    needs_parens: impl Fn(&Expr) -> bool,
) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        if needs_parens(item) { write!(f, "({item})")? } else { write!(f, "{item}")? }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_condition_prints_as_source_that_parses_back_to_the_same_condition() {
        struct Case {
            name: &'static str,
            source: &'static str,
            canonical: &'static str,
        }
        let cases = [
            Case {
                name: "a chain of and",
                source: "aum.wealth >= 50000000 and rfm.r >= 4 and age between 30 and 55",
                canonical: "aum.wealth >= 50000000 and rfm.r >= 4 and age between 30 and 55",
            },
            Case {
                name: "in and tag",
                source: "level IN ('gold','platinum') OR Tag('vip')",
                canonical: "level in ('gold', 'platinum') or tag('vip')",
            },
            Case {
                name: "not and starts with",
                source: "not (gender = 'F') and region starts with '11'",
                canonical: "not (gender = 'F') and region starts with '11'",
            },
            Case { name: "not without parentheses", source: "NOT gender='F'", canonical: "not (gender = 'F')" },
            Case { name: "not of a tag", source: "not tag('vip')", canonical: "not tag('vip')" },
            Case { name: "double not", source: "not not (a = 1)", canonical: "not not (a = 1)" },
            Case {
                name: "a number and a dotted name",
                source: "aum.total>1000000 and txn.count_90d>=3",
                canonical: "aum.total > 1000000 and txn.count_90d >= 3",
            },
            Case { name: "a grade", source: "score.grade = 'A'", canonical: "score.grade = 'A'" },
            Case {
                name: "and inside or needs no parentheses",
                source: "(a = 1 and b = 2) or c = 3",
                canonical: "a = 1 and b = 2 or c = 3",
            },
            Case {
                name: "or inside and keeps them",
                source: "a = 1 and (b = 2 or c = 3)",
                canonical: "a = 1 and (b = 2 or c = 3)",
            },
            Case {
                name: "grouping of the same operator is kept",
                source: "a = 1 or (b = 2 or c = 3)",
                canonical: "a = 1 or (b = 2 or c = 3)",
            },
            Case { name: "quotes are doubled", source: "name = 'O''Brien'", canonical: "name = 'O''Brien'" },
            Case {
                name: "chinese text",
                source: "city in ('北京', '上海') and remark starts with '贵宾'",
                canonical: "city in ('北京', '上海') and remark starts with '贵宾'",
            },
            Case {
                name: "negative and extreme numbers",
                source: "loan.balance between -9223372036854775808 and 9223372036854775807",
                canonical: "loan.balance between -9223372036854775808 and 9223372036854775807",
            },
            Case {
                name: "null tests",
                source: "email IS NOT NULL and phone is null",
                canonical: "email is not null and phone is null",
            },
            Case {
                name: "every comparison",
                source: "a = 1 and b != 2 and c < 3 and d <= 4 and e > 5 and f >= 6",
                canonical: "a = 1 and b != 2 and c < 3 and d <= 4 and e > 5 and f >= 6",
            },
            Case { name: "empty text", source: "remark = ''", canonical: "remark = ''" },
            Case {
                name: "several lines",
                source: "level >= 'gold'\n  and not tag('churned')",
                canonical: "level >= 'gold' and not tag('churned')",
            },
        ];
        for case in cases {
            let parsed = parse(case.source).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let printed = parsed.to_string();
            assert_eq!(printed, case.canonical, "{}", case.name);
            let reparsed = parse(&printed).unwrap_or_else(|e| panic!("{}: reparse: {e}", case.name));
            assert_eq!(reparsed, parsed, "{}", case.name);
        }
    }

    #[test]
    fn names_and_tags_list_what_a_condition_reads_once_each() {
        let e = parse("aum.total > 1 and (rfm.r >= 4 or aum.total < 0) and tag('vip') and not tag('vip')").unwrap();
        assert_eq!(e.names().into_iter().collect::<Vec<_>>(), ["aum.total", "rfm.r"]);
        assert_eq!(e.tags().into_iter().collect::<Vec<_>>(), ["vip"]);
        let only_tag = parse("tag('x')").unwrap();
        assert!(only_tag.names().is_empty());
    }

    #[test]
    fn attribute_names_follow_the_grammar() {
        let cases = [
            ("aum.wealth", true),
            ("txn.count_90d", true),
            ("_private", true),
            ("level", true),
            ("", false),
            ("aum.", false),
            (".aum", false),
            ("9lives", false),
            ("aum.9d", false),
            ("年龄", false),
            ("and", false),
            ("TAG", false),
            ("aum total", false),
        ];
        for (name, expected) in cases {
            assert_eq!(is_attribute_name(name), expected, "{name:?}");
        }
    }

    #[test]
    fn an_error_shows_the_line_only_past_the_first_line() {
        let one = ParseError { position: 16, line: 1, column: 17, message: "expected a value after '>='".into() };
        assert_eq!(one.to_string(), "column 17: expected a value after '>='");
        let two = ParseError { position: 20, line: 2, column: 5, message: "x".into() };
        assert_eq!(two.to_string(), "line 2, column 5: x");
    }

    #[test]
    fn operators_hold_for_the_right_orderings() {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let cases = [
            (CompareOp::Eq, [false, true, false]),
            (CompareOp::Ne, [true, false, true]),
            (CompareOp::Lt, [true, false, false]),
            (CompareOp::Le, [true, true, false]),
            (CompareOp::Gt, [false, false, true]),
            (CompareOp::Ge, [false, true, true]),
        ];
        for (op, expected) in cases {
            assert_eq!([op.holds(Less), op.holds(Equal), op.holds(Greater)], expected, "{op:?}");
        }
    }
}
