//! Checks made when a rule is defined: every attribute exists in the catalogue and every
//! test suits the attribute's kind. A condition that passes never compares a number
//! with text at evaluation time. Errors point at the attribute name.

use super::{Attribute, Expr, Literal, ParseError, Test, ValueKind};

impl Expr {
    /// Refuses unknown attributes and tests that do not suit an attribute's kind
    /// (a number compared with text, `<` on plain text, `starts with` on a number, a
    /// `between` whose bounds are reversed). The first problem in source order wins.
    pub fn check(&self, catalogue: &dyn Fn(&str) -> Option<ValueKind>) -> Result<(), ParseError> {
        match self {
            Expr::Or(items) | Expr::And(items) => items.iter().try_for_each(|e| e.check(catalogue)),
            Expr::Not(inner) => inner.check(catalogue),
            Expr::HasTag(_) => Ok(()),
            Expr::Predicate { attribute, test } => {
                let Some(kind) = catalogue(&attribute.name) else {
                    return Err(ParseError::at(attribute.at, format!("unknown attribute '{}'", attribute.name)));
                };
                check_test(attribute, kind, test).map_err(|message| ParseError::at(attribute.at, message))
            }
        }
    }
}

fn check_test(attribute: &Attribute, kind: ValueKind, test: &Test) -> Result<(), String> {
    let name = &attribute.name;
    let only_for = |what: &str, kinds: &str| format!("'{name}' is {kind}; '{what}' applies only to {kinds}");
    match test {
        Test::IsNull | Test::IsNotNull => Ok(()),
        Test::Compare(op, value) => {
            suits(name, kind, value)?;
            if kind == ValueKind::Text && op.is_ordering() {
                return Err(only_for(op.symbol(), "numbers and levels"));
            }
            Ok(())
        }
        Test::Between(low, high) => {
            if kind == ValueKind::Text {
                return Err(only_for("between", "numbers and levels"));
            }
            suits(name, kind, low)?;
            suits(name, kind, high)?;
            match (low, high) {
                (Literal::Number(l), Literal::Number(h)) if l > h => {
                    Err(format!("'{name} between {l} and {h}' is never true: write the lower bound first"))
                }
                _ => Ok(()),
            }
        }
        Test::In(values) => values.iter().try_for_each(|v| suits(name, kind, v)),
        Test::StartsWith(_) => match kind {
            ValueKind::Text => Ok(()),
            ValueKind::Number | ValueKind::Level => Err(only_for("starts with", "text")),
        },
    }
}

/// Whether `value` can be compared with an attribute of `kind`.
fn suits(name: &str, kind: ValueKind, value: &Literal) -> Result<(), String> {
    match (kind, value) {
        (ValueKind::Number, Literal::Number(_)) | (ValueKind::Text | ValueKind::Level, Literal::Text(_)) => Ok(()),
        (ValueKind::Number, Literal::Text(_)) => {
            Err(format!("'{name}' is a number; it cannot be compared with the text {value}"))
        }
        (ValueKind::Text, Literal::Number(_)) => {
            Err(format!("'{name}' is text; it cannot be compared with the number {value} (write it in quotes)"))
        }
        (ValueKind::Level, Literal::Number(_)) => Err(format!(
            "'{name}' is a level; it cannot be compared with the number {value} (write a level code in quotes)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn catalogue(name: &str) -> Option<ValueKind> {
        match name {
            "aum.wealth" | "age" | "rfm.r" => Some(ValueKind::Number),
            "region" | "gender" | "city" => Some(ValueKind::Text),
            "level" => Some(ValueKind::Level),
            _ => None,
        }
    }

    #[test]
    fn conditions_that_suit_the_catalogue_pass() {
        for source in [
            "aum.wealth >= 50000000 and rfm.r >= 4 and age between 30 and 55",
            "level in ('gold', 'platinum') or tag('vip')",
            "not (gender = 'F') and region starts with '11'",
            "level >= 'gold' and level between 'gold' and 'platinum'",
            "gender != 'M' and age in (30, 40) and city is null and level is not null",
            "age between 30 and 30",
            "tag('anything')",
        ] {
            let e = parse(source).unwrap();
            assert_eq!(e.check(&catalogue), Ok(()), "{source}");
        }
    }

    #[test]
    fn each_misuse_is_refused_at_the_attribute_name() {
        struct Case {
            name: &'static str,
            source: &'static str,
            column: usize,
            message: &'static str,
        }
        let cases = [
            Case {
                name: "unknown attribute",
                source: "age > 3 and aum.welth > 1",
                column: 13,
                message: "unknown attribute 'aum.welth'",
            },
            Case {
                name: "number compared with text",
                source: "age >= '30'",
                column: 1,
                message: "'age' is a number; it cannot be compared with the text '30'",
            },
            Case {
                name: "text compared with a number",
                source: "city = '北京' and region = 11",
                column: 17,
                message: "'region' is text; it cannot be compared with the number 11 (write it in quotes)",
            },
            Case {
                name: "level compared with a number",
                source: "level >= 3",
                column: 1,
                message: "'level' is a level; it cannot be compared with the number 3 (write a level code in quotes)",
            },
            Case {
                name: "text ordered",
                source: "region < '11'",
                column: 1,
                message: "'region' is text; '<' applies only to numbers and levels",
            },
            Case {
                name: "text between",
                source: "region between '11' and '12'",
                column: 1,
                message: "'region' is text; 'between' applies only to numbers and levels",
            },
            Case {
                name: "between with one text bound",
                source: "age between 30 and '55'",
                column: 1,
                message: "'age' is a number; it cannot be compared with the text '55'",
            },
            Case {
                name: "between reversed",
                source: "age between 55 and 30",
                column: 1,
                message: "'age between 55 and 30' is never true: write the lower bound first",
            },
            Case {
                name: "list with a number among levels",
                source: "level in ('gold', 2)",
                column: 1,
                message: "'level' is a level; it cannot be compared with the number 2 (write a level code in quotes)",
            },
            Case {
                name: "starts with on a number",
                source: "age starts with '3'",
                column: 1,
                message: "'age' is a number; 'starts with' applies only to text",
            },
            Case {
                name: "starts with on a level",
                source: "level starts with 'g'",
                column: 1,
                message: "'level' is a level; 'starts with' applies only to text",
            },
            Case {
                name: "the first problem wins",
                source: "age = 'a' or region = 1",
                column: 1,
                message: "'age' is a number; it cannot be compared with the text 'a'",
            },
        ];
        for case in cases {
            let error = parse(case.source).unwrap().check(&catalogue).expect_err(case.name);
            assert_eq!((error.column, error.message.as_str()), (case.column, case.message), "{}", case.name);
        }
    }

    #[test]
    fn an_unknown_attribute_is_found_below_not_and_or() {
        let e = parse("age > 3 or not (gender = 'F' and\n   rfm.x = 1)").unwrap();
        let error = e.check(&catalogue).unwrap_err();
        assert_eq!((error.line, error.column, error.message.as_str()), (2, 4, "unknown attribute 'rfm.x'"));
    }
}
