//! Paging of list RPCs: one page-size rule and one opaque page token for every list of
//! every service.
//!
//! A page token is URL-safe base64 (no padding) of `<list>:<key>`, where `<list>` names
//! the list that issued it and `<key>` is the positive key of the last row of the page
//! (an id; lists are ordered by it). Clients treat it as opaque; the server refuses a
//! token another list issued, one it did not issue, and one that does not decode, with
//! INVALID_ARGUMENT on `page_token`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::FieldViolations;

/// Rows of a page when the request leaves `page_size` at 0.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// The most rows a page holds; larger requests get this many.
pub const MAX_PAGE_SIZE: i64 = 500;

/// A page a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// The list, e.g. `customer-history`: part of every token it issues.
    pub list: &'static str,
    /// Rows to return.
    pub size: i64,
    /// Key of the last row of the previous page; `None` for the first page.
    pub after: Option<i64>,
}

impl Page {
    /// Reads `page_size` (0 → the default, above the maximum → the maximum, negative →
    /// a violation) and `page_token` of a request to `list`, adding violations to `v`.
    pub fn parse(list: &'static str, page_size: i32, page_token: &str, v: &mut FieldViolations) -> Self {
        if page_size < 0 {
            v.add("page_size", "must not be negative");
        }
        let size = if page_size <= 0 { DEFAULT_PAGE_SIZE } else { i64::from(page_size).min(MAX_PAGE_SIZE) };
        let after = if page_token.is_empty() {
            None
        } else {
            let key = key_of(list, page_token);
            if key.is_none() {
                v.add("page_token", "is not a token this list issued");
            }
            key
        };
        Self { list, size, after }
    }

    /// The key the page starts after, 0 for the first page (keys are positive).
    pub fn position(&self) -> i64 {
        self.after.unwrap_or(0)
    }

    /// The token of the next page: empty when `rows` is not a full page (the last one).
    pub fn next_token<T>(&self, rows: &[T], key: impl Fn(&T) -> i64) -> String {
        match rows.last() {
            Some(last) if rows.len() as i64 == self.size => token(self.list, key(last)),
            _ => String::new(),
        }
    }
}

/// The token of the page after the row with `key` in `list`.
pub fn token(list: &str, key: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{list}:{key}"))
}

/// The key a token of `list` stands for; `None` unless `list` issued it.
fn key_of(list: &str, token: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    let (issuer, key) = text.split_once(':')?;
    (issuer == list).then_some(())?;
    // Only the spelling `token` writes: `+42` or `042` were never issued.
    key.parse::<i64>().ok().filter(|k| *k > 0 && k.to_string() == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(size: i32, token: &str) -> (Page, Vec<String>) {
        let mut v = FieldViolations::new();
        let page = Page::parse("history", size, token, &mut v);
        (page, v.iter().map(|(f, _)| f.to_string()).collect())
    }

    #[test]
    fn page_sizes_default_cap_and_refuse_negatives() {
        let cases: &[(i32, i64, &[&str])] = &[
            (0, DEFAULT_PAGE_SIZE, &[]),
            (1, 1, &[]),
            (500, 500, &[]),
            (501, MAX_PAGE_SIZE, &[]),
            (i32::MAX, MAX_PAGE_SIZE, &[]),
            (-1, DEFAULT_PAGE_SIZE, &["page_size"]),
            (i32::MIN, DEFAULT_PAGE_SIZE, &["page_size"]),
        ];
        for (requested, size, violations) in cases {
            let (page, got) = parse(*requested, "");
            assert_eq!(page.size, *size, "{requested}");
            assert_eq!(got, *violations, "{requested}");
        }
    }

    #[test]
    fn tokens_round_trip_within_their_list_and_every_other_token_is_refused() {
        let (page, violations) = parse(10, &token("history", 42));
        assert_eq!((page.after, page.position()), (Some(42), 42));
        assert!(violations.is_empty());
        assert_eq!(parse(10, "").0.position(), 0);
        let foreign = [
            token("audit", 42),
            token("history", 0),
            token("history", -3),
            "42".to_string(),
            "not base64!".to_string(),
            URL_SAFE_NO_PAD.encode("history:"),
            URL_SAFE_NO_PAD.encode("history:9999999999999999999999"),
            URL_SAFE_NO_PAD.encode("history:+42"),
            URL_SAFE_NO_PAD.encode("history:042"),
            URL_SAFE_NO_PAD.encode([0xff, 0xfe, b':', b'1']),
            "x".repeat(10_000),
        ];
        for bad in foreign {
            let (page, violations) = parse(10, &bad);
            assert_eq!(page.after, None, "{bad}");
            assert_eq!(violations, vec!["page_token"], "{bad}");
        }
    }

    #[test]
    fn only_a_full_page_has_a_next_token_naming_its_last_row() {
        let page = Page { list: "history", size: 3, after: None };
        assert_eq!(page.next_token(&[7, 5, 2], |k| *k), token("history", 2));
        assert_eq!(page.next_token(&[7, 5], |k| *k), "");
        assert_eq!(page.next_token::<i64>(&[], |k| *k), "");
    }
}
