//! From tokens to [`Expr`]: a recursive-descent parser following the grammar in the
//! module above. Every refusal is a [`ParseError`] at the first offending token, or at
//! the `(` that is never closed.

use super::lex::{Keyword, Kind, Token, lex, locate};
use super::{Attribute, Expr, Literal, ParseError, Test};

/// Deeper nesting than this (parentheses and `not`) is refused, so that a hostile or
/// generated condition cannot exhaust the stack.
const MAX_DEPTH: usize = 100;

/// Parses a condition.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let tokens = lex(&chars)?;
    if tokens.is_empty() {
        return Err(ParseError::at(locate(&chars, 0), "the condition is empty"));
    }
    let mut parser = Parser { chars: &chars, tokens, next: 0, depth: 0 };
    let expr = parser.condition()?;
    match parser.peek() {
        None => Ok(expr),
        Some(t) if t.kind == Kind::RParen => Err(parser.error_at(t.at, "')' has no matching '('")),
        Some(t) => Err(parser
            .error_at(t.at, format!("unexpected '{}' after a complete condition; expected 'and' or 'or'", t.text))),
    }
}

struct Parser<'a> {
    chars: &'a [char],
    tokens: Vec<Token>,
    next: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn bump(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.next).cloned();
        self.next += usize::from(t.is_some());
        t
    }

    fn eat(&mut self, kind: &Kind) -> Option<Token> {
        if self.peek().is_some_and(|t| &t.kind == kind) { self.bump() } else { None }
    }

    fn error_at(&self, position: usize, message: impl Into<String>) -> ParseError {
        ParseError::at(locate(self.chars, position), message)
    }

    /// An error at the next token, or just past the end when there is none.
    fn error_here(&self, message: impl Into<String>) -> ParseError {
        let position = self.peek().map_or(self.chars.len(), |t| t.at);
        self.error_at(position, message)
    }

    fn condition(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.and_expr()?];
        while let Some(or) = self.eat(&Kind::Keyword(Keyword::Or)) {
            items.push(self.and_expr_after(&or)?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::Or(items) })
    }

    fn and_expr(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.not_expr()?];
        while let Some(and) = self.eat(&Kind::Keyword(Keyword::And)) {
            items.push(self.not_expr_after(&and)?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::And(items) })
    }

    fn and_expr_after(&mut self, operator: &Token) -> Result<Expr, ParseError> {
        self.require_condition_after(operator)?;
        self.and_expr()
    }

    fn not_expr_after(&mut self, operator: &Token) -> Result<Expr, ParseError> {
        self.require_condition_after(operator)?;
        self.not_expr()
    }

    /// A missing operand after `and`, `or` or `not` is reported against that word.
    fn require_condition_after(&self, operator: &Token) -> Result<(), ParseError> {
        match self.peek() {
            Some(t) if starts_condition(&t.kind) => Ok(()),
            _ => Err(self.error_here(format!("expected a condition after '{}'", operator.text))),
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here(format!("the condition is nested too deeply (more than {MAX_DEPTH} levels)")));
        }
        Ok(())
    }

    fn not_expr(&mut self) -> Result<Expr, ParseError> {
        if let Some(not) = self.eat(&Kind::Keyword(Keyword::Not)) {
            self.enter()?;
            let inner = self.not_expr_after(&not)?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let Some(token) = self.bump() else {
            return Err(self.error_here("expected a condition"));
        };
        match &token.kind {
            Kind::LParen => {
                self.enter()?;
                self.require_condition_after(&token)?;
                let inner = self.condition()?;
                self.close(&token, "expected ')' or 'and' / 'or'")?;
                self.depth -= 1;
                Ok(inner)
            }
            Kind::Keyword(Keyword::Tag) => {
                let open = self.eat(&Kind::LParen).ok_or_else(|| self.error_here("expected '(' after 'tag'"))?;
                let code = match self.peek().map(|t| &t.kind) {
                    Some(Kind::Text(code)) => code.clone(),
                    _ => return Err(self.error_here("expected a tag code in quotes after 'tag('")),
                };
                self.next += 1;
                self.close(&open, "expected ')' after the tag code")?;
                Ok(Expr::HasTag(code))
            }
            Kind::Name(name) => {
                let attribute = Attribute { name: name.clone(), at: locate(self.chars, token.at) };
                let test = self.test(&token)?;
                Ok(Expr::Predicate { attribute, test })
            }
            _ => {
                self.next -= 1;
                Err(self.error_here(format!("expected a condition, found '{}'", token.text)))
            }
        }
    }

    /// Consumes the `)` closing `open`; at the end of input the error points at `open`.
    fn close(&mut self, open: &Token, otherwise: &str) -> Result<(), ParseError> {
        match self.peek() {
            Some(t) if t.kind == Kind::RParen => {
                self.next += 1;
                Ok(())
            }
            Some(_) => Err(self.error_here(otherwise)),
            None => Err(self.error_at(open.at, "this '(' is never closed")),
        }
    }

    fn test(&mut self, name: &Token) -> Result<Test, ParseError> {
        let Some(token) = self.bump() else {
            return Err(self.error_here(expected_test(name)));
        };
        match token.kind {
            Kind::Op(op) => Ok(Test::Compare(op, self.value_after(&token.text)?)),
            Kind::Keyword(Keyword::Between) => {
                let low = self.value_after("between")?;
                if self.eat(&Kind::Keyword(Keyword::And)).is_none() {
                    return Err(self.error_here(format!("expected 'and' after the lower bound {low}")));
                }
                let high = self.value_after("and")?;
                Ok(Test::Between(low, high))
            }
            Kind::Keyword(Keyword::In) => {
                let open = self.eat(&Kind::LParen).ok_or_else(|| self.error_here("expected '(' after 'in'"))?;
                let mut values = vec![self.value_after("(")?];
                while self.eat(&Kind::Comma).is_some() {
                    values.push(self.value_after(",")?);
                }
                self.close(&open, "expected ',' or ')' in the list after 'in'")?;
                Ok(Test::In(values))
            }
            Kind::Keyword(Keyword::Starts) => {
                if self.eat(&Kind::Keyword(Keyword::With)).is_none() {
                    return Err(self.error_here("expected 'with' after 'starts'"));
                }
                match self.peek().map(|t| t.kind.clone()) {
                    Some(Kind::Text(prefix)) => {
                        self.next += 1;
                        Ok(Test::StartsWith(prefix))
                    }
                    _ => Err(self.error_here("expected text in quotes after 'starts with'")),
                }
            }
            Kind::Keyword(Keyword::Is) => {
                let negated = self.eat(&Kind::Keyword(Keyword::Not)).is_some();
                if self.eat(&Kind::Keyword(Keyword::Null)).is_none() {
                    let after = if negated { "is not" } else { "is" };
                    return Err(self.error_here(format!("expected 'null' after '{after}'")));
                }
                Ok(if negated { Test::IsNotNull } else { Test::IsNull })
            }
            _ => {
                self.next -= 1;
                Err(self.error_here(expected_test(name)))
            }
        }
    }

    /// A number or a text after `after`; `null` gets a hint towards `is null`.
    fn value_after(&mut self, after: &str) -> Result<Literal, ParseError> {
        let literal = match self.peek().map(|t| &t.kind) {
            Some(Kind::Number(n)) => Literal::Number(*n),
            Some(Kind::Text(s)) => Literal::Text(s.clone()),
            Some(Kind::Keyword(Keyword::Null)) => {
                return Err(self.error_here(format!(
                    "expected a value after '{after}'; to test for a missing value write 'is null'"
                )));
            }
            _ => return Err(self.error_here(format!("expected a value after '{after}'"))),
        };
        self.next += 1;
        Ok(literal)
    }
}

fn starts_condition(kind: &Kind) -> bool {
    matches!(kind, Kind::Name(_) | Kind::LParen | Kind::Keyword(Keyword::Not | Keyword::Tag))
}

fn expected_test(name: &Token) -> String {
    format!("expected a test after '{}' (=, !=, <, <=, >, >=, between, in, starts with, is null)", name.text)
}

#[cfg(test)]
mod tests {
    use super::super::{CompareOp, Location};
    use super::*;

    fn cmp(name: &str, op: CompareOp, value: i64) -> Expr {
        Expr::Predicate { attribute: Attribute::new(name), test: Test::Compare(op, Literal::Number(value)) }
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_tighter_than_and() {
        let (a, b, c) = (cmp("a", CompareOp::Eq, 1), cmp("b", CompareOp::Eq, 2), cmp("c", CompareOp::Eq, 3));
        let not = |e: &Expr| Expr::Not(Box::new(e.clone()));
        struct Case {
            name: &'static str,
            source: &'static str,
            expected: Expr,
        }
        let cases = [
            Case {
                name: "and before or on the right",
                source: "a = 1 or b = 2 and c = 3",
                expected: Expr::Or(vec![a.clone(), Expr::And(vec![b.clone(), c.clone()])]),
            },
            Case {
                name: "and before or on the left",
                source: "a = 1 and b = 2 or c = 3",
                expected: Expr::Or(vec![Expr::And(vec![a.clone(), b.clone()]), c.clone()]),
            },
            Case {
                name: "parentheses override",
                source: "a = 1 and (b = 2 or c = 3)",
                expected: Expr::And(vec![a.clone(), Expr::Or(vec![b.clone(), c.clone()])]),
            },
            Case {
                name: "not applies to the next test only",
                source: "not a = 1 and b = 2",
                expected: Expr::And(vec![not(&a), b.clone()]),
            },
            Case {
                name: "not of a group",
                source: "NOT (a = 1 OR b = 2)",
                expected: not(&Expr::Or(vec![a.clone(), b.clone()])),
            },
            Case {
                name: "chains are flat",
                source: "a = 1 or b = 2 or c = 3",
                expected: Expr::Or(vec![a.clone(), b.clone(), c.clone()]),
            },
            Case { name: "redundant parentheses vanish", source: "((a = 1))", expected: a.clone() },
            Case {
                name: "between takes its own and",
                source: "age between 30 and 55 and a = 1",
                expected: Expr::And(vec![
                    Expr::Predicate {
                        attribute: Attribute::new("age"),
                        test: Test::Between(Literal::Number(30), Literal::Number(55)),
                    },
                    a.clone(),
                ]),
            },
        ];
        for case in cases {
            assert_eq!(parse(case.source), Ok(case.expected), "{}", case.name);
        }
    }

    #[test]
    fn the_examples_of_the_brief_parse() {
        for source in [
            "aum.wealth >= 50000000 and rfm.r >= 4 and age between 30 and 55",
            "level in ('gold', 'platinum') or tag('vip')",
            "not (gender = 'F') and region starts with '11'",
            "aum.total > 1000000 and txn.count_90d >= 3",
            "score.grade = 'A'",
        ] {
            assert!(parse(source).is_ok(), "{source}");
        }
    }

    #[test]
    fn names_remember_where_they_were_written_in_characters() {
        let e = parse("city = '北京' and\n  age > 3").unwrap();
        let Expr::And(items) = e else { panic!("and expected") };
        let Expr::Predicate { attribute, .. } = &items[1] else { panic!("predicate expected") };
        assert_eq!(attribute.at, Location { position: 18, line: 2, column: 3 });
    }

    #[test]
    fn every_refusal_names_the_problem_and_its_column() {
        struct Case {
            name: &'static str,
            source: &'static str,
            column: usize,
            message: &'static str,
        }
        let cases = [
            Case { name: "empty input", source: "", column: 1, message: "the condition is empty" },
            Case { name: "blank input", source: "  \n ", column: 1, message: "the condition is empty" },
            Case {
                name: "missing value at the end",
                source: "aum.wealth >=",
                column: 14,
                message: "expected a value after '>='",
            },
            Case {
                name: "missing value before and",
                source: "aum.wealth >= and rfm.r >= 4",
                column: 15,
                message: "expected a value after '>='",
            },
            Case {
                name: "missing value counted in characters",
                source: "city = '北京' and aum.wealth >= and x = 1",
                column: 31,
                message: "expected a value after '>='",
            },
            Case {
                name: "a name instead of a value",
                source: "gender = F",
                column: 10,
                message: "expected a value after '='",
            },
            Case {
                name: "null as a value",
                source: "gender = null",
                column: 10,
                message: "expected a value after '='; to test for a missing value write 'is null'",
            },
            Case {
                name: "missing condition after and",
                source: "a = 1 and",
                column: 10,
                message: "expected a condition after 'and'",
            },
            Case {
                name: "missing condition after or",
                source: "a = 1 or )",
                column: 10,
                message: "expected a condition after 'or'",
            },
            Case {
                name: "missing condition after not",
                source: "not",
                column: 4,
                message: "expected a condition after 'not'",
            },
            Case {
                name: "a condition cannot start with and",
                source: "and a = 1",
                column: 1,
                message: "expected a condition, found 'and'",
            },
            Case { name: "a value alone", source: "42", column: 1, message: "expected a condition, found '42'" },
            Case {
                name: "a name without a test",
                source: "vip",
                column: 4,
                message: "expected a test after 'vip' (=, !=, <, <=, >, >=, between, in, starts with, is null)",
            },
            Case {
                name: "a name followed by a name",
                source: "vip flag",
                column: 5,
                message: "expected a test after 'vip' (=, !=, <, <=, >, >=, between, in, starts with, is null)",
            },
            Case {
                name: "unclosed parenthesis",
                source: "(a = 1 or b = 2",
                column: 1,
                message: "this '(' is never closed",
            },
            Case {
                name: "unclosed inner parenthesis",
                source: "(a = 1 and (b = 2)",
                column: 1,
                message: "this '(' is never closed",
            },
            Case { name: "extra closing parenthesis", source: "a = 1)", column: 6, message: "')' has no matching '('" },
            Case { name: "empty parentheses", source: "()", column: 2, message: "expected a condition after '('" },
            Case {
                name: "something else where ) belongs",
                source: "(a = 1 b = 2)",
                column: 8,
                message: "expected ')' or 'and' / 'or'",
            },
            Case {
                name: "trailing input",
                source: "a = 1 b = 2",
                column: 7,
                message: "unexpected 'b' after a complete condition; expected 'and' or 'or'",
            },
            Case {
                name: "between without and",
                source: "age between 30 55",
                column: 16,
                message: "expected 'and' after the lower bound 30",
            },
            Case {
                name: "between without its upper bound",
                source: "age between 30 and",
                column: 19,
                message: "expected a value after 'and'",
            },
            Case {
                name: "in without a list",
                source: "level in 'gold'",
                column: 10,
                message: "expected '(' after 'in'",
            },
            Case { name: "an empty list", source: "level in ()", column: 11, message: "expected a value after '('" },
            Case {
                name: "a dangling comma",
                source: "level in ('a',)",
                column: 15,
                message: "expected a value after ','",
            },
            Case {
                name: "an unclosed list",
                source: "level in ('a', 'b'",
                column: 10,
                message: "this '(' is never closed",
            },
            Case {
                name: "a list without commas",
                source: "level in ('a' 'b')",
                column: 15,
                message: "expected ',' or ')' in the list after 'in'",
            },
            Case {
                name: "starts without with",
                source: "region starts '11'",
                column: 15,
                message: "expected 'with' after 'starts'",
            },
            Case {
                name: "starts with a number",
                source: "region starts with 11",
                column: 20,
                message: "expected text in quotes after 'starts with'",
            },
            Case {
                name: "is without null",
                source: "email is empty",
                column: 10,
                message: "expected 'null' after 'is'",
            },
            Case {
                name: "is not without null",
                source: "email is not",
                column: 13,
                message: "expected 'null' after 'is not'",
            },
            Case {
                name: "tag without parenthesis",
                source: "tag 'vip'",
                column: 5,
                message: "expected '(' after 'tag'",
            },
            Case {
                name: "tag without a quoted code",
                source: "tag(vip)",
                column: 5,
                message: "expected a tag code in quotes after 'tag('",
            },
            Case { name: "tag not closed", source: "tag('vip'", column: 4, message: "this '(' is never closed" },
            Case {
                name: "tag followed by something else",
                source: "tag('vip' 'x')",
                column: 11,
                message: "expected ')' after the tag code",
            },
            Case {
                name: "error on a later line",
                source: "a = 1\nand b >",
                column: 8,
                message: "expected a value after '>'",
            },
        ];
        for case in cases {
            let error = parse(case.source).expect_err(case.name);
            assert_eq!((error.column, error.message.as_str()), (case.column, case.message), "{}", case.name);
        }
    }

    #[test]
    fn nesting_too_deep_is_refused_and_reasonable_nesting_is_not() {
        let deep = format!("{}a = 1{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        let e = parse(&deep).unwrap_err();
        assert_eq!(e.message, "the condition is nested too deeply (more than 100 levels)");
        let ok = format!("{}a = 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let nots = format!("{}a = 1", "not ".repeat(MAX_DEPTH + 1));
        assert!(parse(&nots).is_err());
    }

    #[test]
    fn operators_may_touch_their_operands() {
        assert_eq!(parse("a>=-5"), Ok(cmp("a", CompareOp::Ge, -5)));
        assert_eq!(parse("a!=5"), Ok(cmp("a", CompareOp::Ne, 5)));
        assert_eq!(parse("a<5"), Ok(cmp("a", CompareOp::Lt, 5)));
    }
}
