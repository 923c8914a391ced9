//! ID numbers as a source system sends them: normalisation for matching, the match
//! key, the resident-ID check (GB 11643) and masking, on any text with any ID type.
//!
//! Input: the first byte picks the ID type, the rest is the number (not UTF-8 bytes
//! become U+FFFD, as they could not arrive over gRPC anyway).
#![no_main]

use customer_profile::domain::id::{
    Gender, IdType, ResidentIdProblem, inspect_resident_id, resident_id_15_to_18, resident_id_check_char,
};
use customer_profile::domain::{Date, mask_id_number, match_key, normalize_id_number};
use libfuzzer_sys::fuzz_target;

const TYPES: [IdType; 10] = [
    IdType::ResidentId,
    IdType::Passport,
    IdType::HkMacaoPermit,
    IdType::TaiwanPermit,
    IdType::ForeignPermanentResidentId,
    IdType::MilitaryId,
    IdType::UnifiedSocialCreditCode,
    IdType::OrganizationCode,
    IdType::BusinessLicense,
    IdType::Other,
];

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let id_type = TYPES[usize::from(selector) % TYPES.len()];
    let raw = String::from_utf8_lossy(rest);

    // Normalisation: idempotent, no whitespace, no lower-case ASCII, no full-width ASCII.
    let normalized = normalize_id_number(&raw);
    assert_eq!(normalize_id_number(&normalized), normalized, "normalising twice changes {raw:?}");
    assert!(
        !normalized
            .chars()
            .any(|c| c.is_whitespace() || c.is_ascii_lowercase() || ('\u{FF01}'..='\u{FF5E}').contains(&c)),
        "{normalized:?} is not in normal form"
    );

    // The match key: none for "other" or an empty number; otherwise a fixed point.
    let key = match_key(id_type, &raw);
    assert_eq!(key.is_none(), id_type == IdType::Other || normalized.is_empty(), "{id_type:?} {raw:?}");
    if let Some(key) = &key {
        assert_eq!(match_key(id_type, key).as_ref(), Some(key), "the key of a key differs: {raw:?}");
        if id_type == IdType::ResidentId && normalized.len() == 15 && all_digits(&normalized) {
            assert_eq!(key.len(), 18, "{raw:?}");
            assert_eq!(resident_id_check_char(&key[..17]), key.chars().last(), "{key}");
        } else {
            assert_eq!(key, &normalized);
        }
    }

    // The resident-ID check, as validation calls it on every normalised number.
    let chars = normalized.chars().count();
    match inspect_resident_id(&normalized) {
        Ok(info) => {
            assert!(normalized.is_ascii() && matches!(normalized.len(), 15 | 18), "{normalized:?} accepted");
            let d = info.birth_date;
            assert_eq!(Date::new(d.year, d.month, d.day), Some(d));
            assert!((1900..=2100).contains(&d.year), "{d:?}");
            assert!(matches!(info.gender, Gender::Male | Gender::Female));
            if normalized.len() == 18 {
                assert!(all_digits(&normalized[..17]), "{normalized}");
                assert_eq!(resident_id_check_char(&normalized[..17]), normalized.chars().last());
            } else {
                let id18 = resident_id_15_to_18(&normalized).expect("a valid 15-digit ID converts");
                assert_eq!(inspect_resident_id(&id18), Ok(info), "{normalized} and {id18} differ");
            }
        }
        Err(ResidentIdProblem::BadLength(n)) => assert!(n == chars && n != 15 && n != 18, "{n} for {chars}"),
        Err(ResidentIdProblem::BadCheckChar { expected, found }) => {
            assert_ne!(expected, found);
            assert_eq!(chars, 18);
        }
        Err(ResidentIdProblem::NotDigits | ResidentIdProblem::BadBirthDate) => assert!(chars == 15 || chars == 18),
    }

    // Masking keeps the length in characters and never more than 10 of them.
    let masked = mask_id_number(&raw);
    let raw_chars = raw.chars().count();
    assert_eq!(masked.chars().count(), raw_chars);
    assert!(masked.chars().filter(|c| *c != '*').count() <= raw_chars.min(10));

    // Codes read back.
    if let Some(t) = IdType::from_code(&raw) {
        assert_eq!(IdType::from_code(t.code()), Some(t));
    }
    if let Some(g) = Gender::from_code(&raw) {
        assert_eq!(Gender::from_code(g.code()), Some(g));
    }
    if let Some(d) = Date::parse_iso(&raw) {
        assert_eq!(Date::parse_iso(&d.to_iso()), Some(d), "{raw:?}");
    }
});
