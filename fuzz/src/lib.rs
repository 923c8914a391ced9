//! What the fuzz targets share: the fixed "today" they validate against, and the
//! properties every accepted source record has, whichever entry point it came through.

use crm_platform::FieldViolations;
use customer_profile::domain::id::inspect_resident_id;
use customer_profile::domain::record::{email_ok, normalize_mobile_phone};
use customer_profile::domain::{Date, IdType, PartyKind, ValidatedRecord, match_key, normalize_id_number};

/// The day validation runs on: fixed, so that a finding replays the same way later.
pub const TODAY: Date = Date { year: 2026, month: 12, day: 1 };

/// The text limits `customer.proto` documents for a source record, in characters.
const LIMITS: [(&str, usize); 9] = [
    ("source_system", 32),
    ("source_customer_id", 64),
    ("id_number", 64),
    ("name", 200),
    ("nationality", 16),
    ("mobile_phone", 32),
    ("email", 254),
    ("address", 500),
    ("occupation", 100),
];

fn within(field: &str, value: &str) {
    let max = LIMITS.iter().find(|(f, _)| *f == field).map_or(0, |(_, max)| *max);
    let chars = value.chars().count();
    assert!(chars <= max, "{field}: {chars} characters accepted, the limit is {max}");
    assert!(!value.chars().any(char::is_control), "{field}: control character accepted in {value:?}");
    assert_eq!(value, value.trim(), "{field}: accepted untrimmed");
}

/// Asserts what an accepted record promises: required values present and trimmed,
/// every text within its documented limit and free of control characters, optional
/// values in their normal form, the keys derived by the domain's own rules, and
/// validation a fixed point (the accepted record validates to itself).
pub fn check_accepted(v: &ValidatedRecord) {
    let r = &v.record;
    for (field, value) in [
        ("source_system", Some(&r.source_system)),
        ("source_customer_id", Some(&r.source_customer_id)),
        ("id_number", Some(&r.id_number)),
        ("name", Some(&r.name)),
        ("nationality", r.nationality.as_ref()),
        ("mobile_phone", r.mobile_phone.as_ref()),
        ("email", r.email.as_ref()),
        ("address", r.address.as_ref()),
        ("occupation", r.occupation.as_ref()),
    ] {
        if let Some(value) = value {
            within(field, value);
        }
    }
    for required in [&r.source_system, &r.source_customer_id, &r.id_number, &r.name] {
        assert!(!required.is_empty(), "a required value is empty: {r:?}");
    }
    assert!(r.source_version >= 0, "negative version accepted");
    match r.party_kind {
        PartyKind::Personal => assert!(!r.id_type.is_corporate(), "a person with {:?}", r.id_type),
        PartyKind::Corporate => assert_ne!(r.id_type, IdType::ResidentId, "a company with a resident ID"),
    }
    if let Some(birth) = r.birth_date {
        assert!(birth <= TODAY, "birth date {birth:?} in the future accepted");
    }
    if let Some(phone) = &r.mobile_phone {
        assert_eq!(normalize_mobile_phone(phone).as_ref(), Some(phone), "phone not in normal form");
    }
    if let Some(email) = &r.email {
        assert!(email_ok(email), "malformed email {email:?} kept");
    }
    if let Some(n) = &r.nationality {
        assert!(n.len() == 3 && n.bytes().all(|b| b.is_ascii_uppercase()), "nationality {n:?} kept");
    }
    let normalized = normalize_id_number(&r.id_number);
    if r.id_type == IdType::ResidentId && matches!(normalized.chars().count(), 15 | 18) {
        let info = inspect_resident_id(&normalized).expect("an accepted resident ID inspects");
        assert_eq!(r.birth_date, Some(info.birth_date), "birth date differs from the resident ID's");
        assert_eq!(r.gender, Some(info.gender), "gender differs from the resident ID's");
    }
    assert_eq!(v.match_key, match_key(r.id_type, &r.id_number));
    assert_eq!(v.match_key.is_none(), r.id_type == IdType::Other, "match key {:?}", v.match_key);
    assert_eq!(v.name_key, customer_profile::domain::normalize_name(&r.name));

    let again = customer_profile::domain::validate(r.clone(), TODAY).expect("an accepted record validates again");
    assert_eq!(&again.record, r, "validation is not a fixed point");
    assert_eq!((&again.match_key, &again.name_key), (&v.match_key, &v.name_key));
}

/// Asserts what a refusal promises: at least one violation, each naming a field of
/// the request and saying why.
pub fn check_refused(v: &FieldViolations) {
    assert!(!v.is_empty(), "refused without a violation");
    for (field, description) in v.iter() {
        assert!(field.starts_with("record"), "violation of {field:?}");
        assert!(!description.is_empty(), "violation of {field} without a reason");
    }
}
