//! Source text to tokens. Positions are character offsets (not bytes), so columns are
//! right for Chinese text. Refuses characters that cannot start a token, text without
//! its closing quote, names ending in a dot and numbers outside i64.

use super::{CompareOp, Location, ParseError};

/// Whether `word` is reserved (case-insensitive).
pub(super) fn is_keyword(word: &str) -> bool {
    keyword(word).is_some()
}

/// A reserved word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyword {
    And,
    Or,
    Not,
    Between,
    In,
    Starts,
    With,
    Is,
    Null,
    Tag,
}

fn keyword(word: &str) -> Option<Keyword> {
    const ALL: [(&str, Keyword); 10] = [
        ("and", Keyword::And),
        ("or", Keyword::Or),
        ("not", Keyword::Not),
        ("between", Keyword::Between),
        ("in", Keyword::In),
        ("starts", Keyword::Starts),
        ("with", Keyword::With),
        ("is", Keyword::Is),
        ("null", Keyword::Null),
        ("tag", Keyword::Tag),
    ];
    ALL.iter().find(|(w, _)| w.eq_ignore_ascii_case(word)).map(|&(_, k)| k)
}

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Name(String),
    Keyword(Keyword),
    Number(i64),
    Text(String),
    Op(CompareOp),
    LParen,
    RParen,
    Comma,
}

/// A token and where it starts.
#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) kind: Kind,
    /// Character offset of the first character.
    pub(super) at: usize,
    /// The source text, for messages.
    pub(super) text: String,
}

/// Line and column of a character offset.
pub(super) fn locate(chars: &[char], position: usize) -> Location {
    let before = &chars[..position.min(chars.len())];
    let line = 1 + before.iter().filter(|&&c| c == '\n').count();
    let line_start = before.iter().rposition(|&c| c == '\n').map_or(0, |i| i + 1);
    Location { position, line, column: position - line_start + 1 }
}

/// Full-width punctuation typed with a Chinese input method, and what was meant.
fn ascii_for_full_width(c: char) -> Option<char> {
    match c {
        '（' => Some('('),
        '）' => Some(')'),
        '，' => Some(','),
        '＝' => Some('='),
        '＞' => Some('>'),
        '＜' => Some('<'),
        '‘' | '’' | '＇' => Some('\''),
        _ => None,
    }
}

/// The tokens of `chars`, or the first character that cannot start one.
pub(super) fn lex(chars: &[char]) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let mut i = 0;
    let text = |from: usize, to: usize| chars[from..to].iter().collect::<String>();
    while let Some(&c) = chars.get(i) {
        let start = i;
        let next = chars.get(i + 1).copied();
        let kind = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => Kind::LParen,
            ')' => Kind::RParen,
            ',' => Kind::Comma,
            '=' => Kind::Op(CompareOp::Eq),
            '!' if next == Some('=') => Kind::Op(CompareOp::Ne),
            '<' if next == Some('=') => Kind::Op(CompareOp::Le),
            '<' => Kind::Op(CompareOp::Lt),
            '>' if next == Some('=') => Kind::Op(CompareOp::Ge),
            '>' => Kind::Op(CompareOp::Gt),
            '\'' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(ParseError::at(
                                locate(chars, start),
                                "the text starting here is not closed with a quote (')",
                            ));
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            value.push('\'');
                            i += 2;
                        }
                        Some('\'') => break,
                        Some(&other) => {
                            value.push(other);
                            i += 1;
                        }
                    }
                }
                i += 1;
                tokens.push(Token { kind: Kind::Text(value), at: start, text: text(start, i) });
                continue;
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                i += 1;
                while chars.get(i).is_some_and(char::is_ascii_digit) {
                    i += 1;
                }
                let digits = text(start, i);
                if let Some(&after) = chars.get(i).filter(|c| c.is_ascii_alphabetic() || **c == '_') {
                    return Err(ParseError::at(
                        locate(chars, i),
                        format!("unexpected '{after}' right after the number {digits}"),
                    ));
                }
                let n = digits.parse::<i64>().map_err(|_| {
                    ParseError::at(
                        locate(chars, start),
                        format!("{digits} is outside the range of whole numbers ({} to {})", i64::MIN, i64::MAX),
                    )
                })?;
                tokens.push(Token { kind: Kind::Number(n), at: start, text: digits });
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let is_part = |c: &char| c.is_ascii_alphanumeric() || *c == '_';
                loop {
                    while chars.get(i).is_some_and(is_part) {
                        i += 1;
                    }
                    if chars.get(i) != Some(&'.') {
                        break;
                    }
                    if !chars.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic() || *c == '_') {
                        return Err(ParseError::at(
                            locate(chars, i),
                            format!("expected the rest of the name after '{}'", text(start, i + 1)),
                        ));
                    }
                    i += 1;
                }
                let word = text(start, i);
                let kind = match keyword(&word) {
                    Some(k) => Kind::Keyword(k),
                    None => Kind::Name(word.clone()),
                };
                tokens.push(Token { kind, at: start, text: word });
                continue;
            }
            other => {
                let message = match ascii_for_full_width(other) {
                    Some(ascii) => format!("unexpected character '{other}' (full width); write '{ascii}'"),
                    None if other == '!' => "unexpected character '!'; write '!=' or 'not'".to_string(),
                    None => format!("unexpected character '{other}'"),
                };
                return Err(ParseError::at(locate(chars, start), message));
            }
        };
        i += match kind {
            Kind::Op(CompareOp::Ne | CompareOp::Le | CompareOp::Ge) => 2,
            _ => 1,
        };
        tokens.push(Token { kind, at: start, text: text(start, i) });
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::super::{Expr, Literal, Test, parse};

    #[test]
    fn lexical_refusals_name_the_character_and_its_column() {
        struct Case {
            name: &'static str,
            source: &'static str,
            column: usize,
            message: &'static str,
        }
        let cases = [
            Case { name: "unknown character", source: "age > 3 # x", column: 9, message: "unexpected character '#'" },
            Case {
                name: "a letter glued to a number",
                source: "txn.count >= 90d",
                column: 16,
                message: "unexpected 'd' right after the number 90",
            },
            Case {
                name: "a lone bang",
                source: "!tag('x')",
                column: 1,
                message: "unexpected character '!'; write '!=' or 'not'",
            },
            Case {
                name: "full-width parenthesis",
                source: "level in （'gold')",
                column: 10,
                message: "unexpected character '（' (full width); write '('",
            },
            Case { name: "a chinese name", source: "年龄 > 30", column: 1, message: "unexpected character '年'" },
            Case {
                name: "unterminated text",
                source: "city = '北京 and age > 3",
                column: 8,
                message: "the text starting here is not closed with a quote (')",
            },
            Case {
                name: "name ending in a dot",
                source: "aum. > 3",
                column: 4,
                message: "expected the rest of the name after 'aum.'",
            },
            Case {
                name: "integer overflow",
                source: "aum.total > 9223372036854775808",
                column: 13,
                message: "9223372036854775808 is outside the range of whole numbers \
                          (-9223372036854775808 to 9223372036854775807)",
            },
            Case {
                name: "negative overflow",
                source: "x = -9223372036854775809",
                column: 5,
                message: "-9223372036854775809 is outside the range of whole numbers \
                          (-9223372036854775808 to 9223372036854775807)",
            },
        ];
        for case in cases {
            let error = parse(case.source).expect_err(case.name);
            assert_eq!((error.column, error.message.as_str()), (case.column, case.message), "{}", case.name);
        }
    }

    #[test]
    fn positions_count_characters_and_lines() {
        let e = parse("a = 1\nand b >").unwrap_err();
        assert_eq!((e.position, e.line, e.column), (13, 2, 8));
        assert_eq!(e.to_string(), "line 2, column 8: expected a value after '>'");
        let e = parse("city = '上海' and x >").unwrap_err();
        assert_eq!((e.position, e.line, e.column), (19, 1, 20));
    }

    #[test]
    fn keywords_ignore_case_but_names_and_text_do_not() {
        assert_eq!(parse("A = 'x' AnD b Is NoT nUlL"), parse("A = 'x' and b is not null"));
        assert_ne!(parse("A = 'x'"), parse("a = 'x'"));
        assert_ne!(parse("a = 'X'"), parse("a = 'x'"));
    }

    #[test]
    fn text_keeps_quotes_spaces_and_chinese() {
        let e = parse("remark = ' 它''s 贵宾 '").unwrap();
        let Expr::Predicate { test: Test::Compare(_, Literal::Text(text)), .. } = e else { panic!("text expected") };
        assert_eq!(text, " 它's 贵宾 ");
    }
}
