//! Page tokens as any client may send them back (`paging::Page::parse`).
//!
//! Input: the first byte picks the list asking, the next four are the requested
//! page size (little-endian), the rest is the token.
//!
//! Properties: a token is accepted only as a key this list issued, and then it is
//! exactly the token the list would issue for that key (so a client cannot forge a
//! second spelling of a position); the page size follows its rule; a refused token is
//! one `page_token` violation.
#![no_main]

use crm_platform::FieldViolations;
use crm_platform::paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, token};
use libfuzzer_sys::fuzz_target;

const LISTS: [&str; 4] = ["customer-history", "suspect-pairs", "audit", "history"];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let list = LISTS[usize::from(selector) % LISTS.len()];
    let (size, raw) = match rest.split_first_chunk::<4>() {
        Some((size, raw)) => (i32::from_le_bytes(*size), raw),
        None => (0, rest),
    };
    let Ok(raw) = std::str::from_utf8(raw) else { return }; // proto strings are UTF-8
    let mut v = FieldViolations::new();
    let page = Page::parse(list, size, raw, &mut v);
    let fields: Vec<&str> = v.iter().map(|(f, _)| f).collect();

    assert_eq!(page.list, list);
    assert_eq!(fields.contains(&"page_size"), size < 0);
    let expected = if size <= 0 { DEFAULT_PAGE_SIZE } else { i64::from(size).min(MAX_PAGE_SIZE) };
    assert_eq!(page.size, expected);
    assert!((1..=MAX_PAGE_SIZE).contains(&page.size));

    match page.after {
        Some(key) => {
            assert!(key > 0, "key {key} from {raw:?}");
            assert_eq!(token(list, key), raw, "{raw:?} accepted as the key {key} of {list}");
            assert!(!fields.contains(&"page_token"));
            assert_eq!(page.position(), key);
        }
        None if raw.is_empty() => assert!(!fields.contains(&"page_token")),
        None => assert_eq!(fields.iter().filter(|f| **f == "page_token").count(), 1),
    }

    // Every token a list issues for a positive key reads back there, and nowhere else.
    let mut bytes = [0u8; 8];
    bytes.iter_mut().zip(data.iter().rev()).for_each(|(b, d)| *b = *d);
    let key = i64::from_le_bytes(bytes);
    if key > 0 {
        let issued = token(list, key);
        for other in LISTS {
            let mut v = FieldViolations::new();
            let after = Page::parse(other, 10, &issued, &mut v).after;
            assert_eq!(after, (other == list).then_some(key), "{issued} of {list} read by {other}");
            assert_eq!(v.is_empty(), other == list);
        }
    }
    // Only a full page has a next-page token, naming its last row.
    let page_of = |size| Page { list, size, after: None };
    assert_eq!(page_of(1).next_token(&[key], |k| *k), token(list, key));
    assert_eq!(page_of(2).next_token(&[key], |k| *k), "");
});
