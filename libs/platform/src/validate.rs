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
}
