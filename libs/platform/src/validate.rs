//! Checks of text fields at the edge, before anything reaches a database: a maximum
//! length in characters (what the contract documents), and no NUL or other control
//! characters (tab and line breaks only in fields that allow several lines).
//! PostgreSQL refuses NUL in text and index rows beyond ~2.7 kB; both used to surface
//! as INTERNAL. A refused field becomes one field violation (INVALID_ARGUMENT).

use crate::error::FieldViolations;

/// Whether a field may hold several lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// One line: no control character at all.
    Single,
    /// Several lines: tab, line feed and carriage return allowed.
    Multi,
}

/// What is wrong with `value` for a field of at most `max_chars` characters, if
/// anything.
pub fn text_problem(value: &str, max_chars: usize, lines: Lines) -> Option<String> {
    // Counting stops just past the limit: an absurdly long value costs no more.
    if value.chars().take(max_chars + 1).count() > max_chars {
        return Some(format!("must be at most {max_chars} characters"));
    }
    let allowed = |c: char| lines == Lines::Multi && matches!(c, '\t' | '\n' | '\r');
    match value.chars().find(|c| c.is_control() && !allowed(*c)) {
        Some('\0') => Some("must not contain a NUL character".into()),
        Some(c) => Some(format!("must not contain the control character U+{:04X}", u32::from(c))),
        None => None,
    }
}

/// Checks `value` of `field`, adding a violation to `v` when it is refused; returns
/// whether it was accepted.
pub fn text(v: &mut FieldViolations, field: &str, value: &str, max_chars: usize, lines: Lines) -> bool {
    match text_problem(value, max_chars, lines) {
        Some(problem) => {
            v.add(field, problem);
            false
        }
        None => true,
    }
}

/// The longest page token a request may carry (the kit's are far shorter).
pub const MAX_PAGE_TOKEN_CHARS: usize = 256;

/// The documented limits of one request, checked field by field: every bad field adds
/// one violation, [`Check::done`] answers them all at once.
#[derive(Debug, Default)]
pub struct Check(FieldViolations);

impl Check {
    /// No violation yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A one-line text field of at most `max` characters.
    pub fn line(&mut self, field: &str, value: &str, max: usize) -> &mut Self {
        text(&mut self.0, field, value, max, Lines::Single);
        self
    }

    /// A text field that may hold tabs and line breaks, at most `max` characters.
    pub fn lines(&mut self, field: &str, value: &str, max: usize) -> &mut Self {
        text(&mut self.0, field, value, max, Lines::Multi);
        self
    }

    /// A secret (a password): any character but NUL, at most `max` characters.
    pub fn secret(&mut self, field: &str, value: &str, max: usize) -> &mut Self {
        if value.chars().take(max + 1).count() > max {
            self.0.add(field, format!("must be at most {max} characters"));
        } else if value.contains('\0') {
            self.0.add(field, "must not contain a NUL character");
        }
        self
    }

    /// A repeated text field: at most `max_count` entries of one line and `max_chars`
    /// characters each.
    pub fn list(&mut self, field: &str, values: &[String], max_count: usize, max_chars: usize) -> &mut Self {
        if values.len() > max_count {
            self.0.add(field, format!("must hold at most {max_count} entries"));
        } else {
            for (i, value) in values.iter().enumerate() {
                self.line(&format!("{field}[{i}]"), value, max_chars);
            }
        }
        self
    }

    /// The request's `page_token`.
    pub fn page_token(&mut self, value: &str) -> &mut Self {
        self.line("page_token", value, MAX_PAGE_TOKEN_CHARS)
    }

    /// A violation the checks above do not express.
    pub fn add(&mut self, field: &str, description: impl Into<String>) -> &mut Self {
        self.0.add(field, description);
        self
    }

    /// Every violation found, or `Ok` when there is none.
    pub fn done(&mut self) -> Result<(), FieldViolations> {
        std::mem::take(&mut self.0).into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_counted_in_characters_and_control_characters_refused() {
        let cases: &[(&str, usize, Lines, Option<&str>)] = &[
            ("王客户", 3, Lines::Single, None),
            ("王客户王", 3, Lines::Single, Some("must be at most 3 characters")),
            ("", 0, Lines::Single, None),
            ("a\0b", 10, Lines::Single, Some("must not contain a NUL character")),
            ("a\0b", 10, Lines::Multi, Some("must not contain a NUL character")),
            ("a\tb", 10, Lines::Single, Some("must not contain the control character U+0009")),
            ("a\tb\r\nc", 10, Lines::Multi, None),
            ("a\u{1b}[31m", 10, Lines::Multi, Some("must not contain the control character U+001B")),
            ("a\u{85}b", 10, Lines::Single, Some("must not contain the control character U+0085")),
            ("zero\u{200b}width", 20, Lines::Single, None),
        ];
        for (value, max, lines, expected) in cases {
            assert_eq!(text_problem(value, *max, *lines).as_deref(), *expected, "{value:?}");
        }
        let huge = "x".repeat(1_000_000);
        assert_eq!(text_problem(&huge, 200, Lines::Single).as_deref(), Some("must be at most 200 characters"));
    }

    #[test]
    fn a_refused_field_adds_one_violation_naming_it() {
        let mut v = FieldViolations::new();
        assert!(text(&mut v, "record.name", "ok", 10, Lines::Single));
        assert!(!text(&mut v, "record.name", "bad\0", 10, Lines::Single));
        let fields: Vec<&str> = v.iter().map(|(f, _)| f).collect();
        assert_eq!(fields, vec!["record.name"]);
    }

    #[test]
    fn a_check_collects_one_violation_per_bad_field() {
        let many: Vec<String> = (0..3).map(|i| i.to_string()).collect();
        let result = Check::new()
            .line("name", "a\0b", 10)
            .lines("note", "two\nlines", 20)
            .secret("password", &"x".repeat(9), 8)
            .list("roles", &many, 2, 5)
            .list("tags", &["ok".to_string(), "x".repeat(6)], 5, 5)
            .page_token(&"t".repeat(MAX_PAGE_TOKEN_CHARS + 1))
            .add("set", "too many")
            .done();
        let fields: Vec<String> = result.unwrap_err().iter().map(|(f, _)| f.to_string()).collect();
        assert_eq!(fields, ["name", "password", "roles", "tags[1]", "page_token", "set"]);
        assert!(Check::new().line("name", "张伟", 2).secret("password", "tab\tok", 8).done().is_ok());
    }
}
