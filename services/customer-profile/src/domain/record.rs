//! Source records and their validation: unusable records are rejected with every
//! problem at once; usable but imperfect ones are accepted with data-quality flags,
//! their bad optional values removed so that those can never win survivorship.

use super::id::{Date, Gender, IdType, inspect_resident_id, match_key, normalize_id_number};
use super::name::normalize_name;

/// Personal or corporate customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartyKind {
    /// A person.
    Personal,
    /// A company.
    Corporate,
}

stored_codes!(PartyKind { Personal => "PERSONAL", Corporate => "CORPORATE" });

/// A customer record as a source system holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// Source system code.
    pub source_system: String,
    /// The customer's id there.
    pub source_customer_id: String,
    /// Increases with every change at the source.
    pub source_version: i64,
    /// Person or company.
    pub party_kind: PartyKind,
    /// ID document type.
    pub id_type: IdType,
    /// ID number as received.
    pub id_number: String,
    /// Name as received.
    pub name: String,
    /// Gender.
    pub gender: Option<Gender>,
    /// Birth date.
    pub birth_date: Option<Date>,
    /// ISO 3166 alpha-3.
    pub nationality: Option<String>,
    /// Mobile phone.
    pub mobile_phone: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Postal address.
    pub address: Option<String>,
    /// Occupation.
    pub occupation: Option<String>,
}

/// A data-quality problem of an accepted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QualityFlag {
    /// A resident ID of neither 15 nor 18 characters: kept as received, not converted.
    IdNumberLengthUnusual,
    /// The recorded birth date differs from the ID's; the ID's is used.
    BirthDateMismatchesId,
    /// The recorded gender differs from the ID's; the ID's is used.
    GenderMismatchesId,
    /// The phone is not a mainland mobile number; dropped.
    PhoneInvalid,
    /// The email is malformed; dropped.
    EmailInvalid,
    /// Not an ISO 3166 alpha-3 code; dropped.
    NationalityInvalid,
    /// A person without a birth date.
    BirthDateMissing,
}

impl QualityFlag {
    /// SCREAMING_SNAKE code.
    pub fn code(&self) -> &'static str {
        match self {
            QualityFlag::IdNumberLengthUnusual => "ID_NUMBER_LENGTH_UNUSUAL",
            QualityFlag::BirthDateMismatchesId => "BIRTH_DATE_MISMATCHES_ID",
            QualityFlag::GenderMismatchesId => "GENDER_MISMATCHES_ID",
            QualityFlag::PhoneInvalid => "PHONE_INVALID",
            QualityFlag::EmailInvalid => "EMAIL_INVALID",
            QualityFlag::NationalityInvalid => "NATIONALITY_INVALID",
            QualityFlag::BirthDateMissing => "BIRTH_DATE_MISSING",
        }
    }
}

/// A reason to reject a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Field name (snake_case, as in [`SourceRecord`]).
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// An accepted record with its flags and identification keys.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedRecord {
    /// The record, bad optional values removed, derived values filled in.
    pub record: SourceRecord,
    /// Data-quality flags.
    pub flags: Vec<QualityFlag>,
    /// The ID number's matching form (`None`: never merged).
    pub match_key: Option<String>,
    /// The name's matching form.
    pub name_key: String,
}

/// A mainland mobile number in its plain 11-digit form: spaces and hyphens removed, a
/// leading `+86`/`86` dropped; `None` unless 11 digits starting 13–19.
pub fn normalize_mobile_phone(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    let digits = digits.strip_prefix('+').unwrap_or(&digits);
    let digits = if digits.len() == 13 { digits.strip_prefix("86").unwrap_or(digits) } else { digits };
    let b = digits.as_bytes();
    (b.len() == 11 && b.iter().all(u8::is_ascii_digit) && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]))
        .then(|| digits.to_string())
}

/// Whether an email address is well-formed enough to send to.
pub fn email_ok(email: &str) -> bool {
    let mut parts = email.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(char::is_whitespace)
        }
        _ => false,
    }
}

/// Validates a record as of `today`.
pub fn validate(mut record: SourceRecord, today: Date) -> Result<ValidatedRecord, Vec<Violation>> {
    let mut violations = Vec::new();
    let mut flags = Vec::new();
    let mut reject = |field: &'static str, reason: String| violations.push(Violation { field, reason });

    record.source_system = record.source_system.trim().to_string();
    record.source_customer_id = record.source_customer_id.trim().to_string();
    record.id_number = record.id_number.trim().to_string();
    record.name = record.name.trim().to_string();
    if record.source_system.is_empty() {
        reject("source_system", "is required".into());
    }
    if record.source_customer_id.is_empty() {
        reject("source_customer_id", "is required".into());
    }
    if record.source_version < 0 {
        reject("source_version", "must not be negative".into());
    }
    if record.name.is_empty() {
        reject("name", "is required".into());
    }
    if record.id_number.is_empty() {
        reject("id_number", "is required".into());
    }
    match (record.party_kind, record.id_type) {
        (PartyKind::Personal, t) if t.is_corporate() => reject("id_type", format!("{} identifies a company", t.code())),
        (PartyKind::Corporate, IdType::ResidentId) => reject("id_type", "a company has no resident ID".into()),
        _ => {}
    }
    if let Some(birth) = record.birth_date
        && birth > today
    {
        reject("birth_date", "lies in the future".into());
    }

    let normalized = normalize_id_number(&record.id_number);
    if record.id_type == IdType::ResidentId && !normalized.is_empty() {
        let len = normalized.chars().count();
        if len == 15 || len == 18 {
            match inspect_resident_id(&normalized) {
                Ok(info) if info.birth_date > today => {
                    reject("id_number", "the birth date in the resident ID lies in the future".into())
                }
                Ok(info) => {
                    match record.birth_date {
                        Some(d) if d != info.birth_date => {
                            flags.push(QualityFlag::BirthDateMismatchesId);
                            record.birth_date = Some(info.birth_date);
                        }
                        None => record.birth_date = Some(info.birth_date),
                        _ => {}
                    }
                    match record.gender {
                        Some(g) if g != info.gender && g != Gender::Unknown => {
                            flags.push(QualityFlag::GenderMismatchesId);
                            record.gender = Some(info.gender);
                        }
                        None | Some(Gender::Unknown) => record.gender = Some(info.gender),
                        _ => {}
                    }
                }
                Err(problem) => reject("id_number", problem.to_string()),
            }
        } else {
            flags.push(QualityFlag::IdNumberLengthUnusual);
        }
    }
    if !violations.is_empty() {
        return Err(violations);
    }

    if record.party_kind == PartyKind::Personal && record.birth_date.is_none() {
        flags.push(QualityFlag::BirthDateMissing);
    }
    if let Some(phone) = record.mobile_phone.take() {
        match normalize_mobile_phone(&phone) {
            Some(p) => record.mobile_phone = Some(p),
            None => flags.push(QualityFlag::PhoneInvalid),
        }
    }
    if let Some(email) = record.email.take() {
        let email = email.trim().to_string();
        if email_ok(&email) {
            record.email = Some(email);
        } else {
            flags.push(QualityFlag::EmailInvalid);
        }
    }
    if let Some(n) = record.nationality.take() {
        let n = n.trim().to_ascii_uppercase();
        if n.len() == 3 && n.bytes().all(|b| b.is_ascii_uppercase()) {
            record.nationality = Some(n);
        } else {
            flags.push(QualityFlag::NationalityInvalid);
        }
    }
    let match_key = match_key(record.id_type, &record.id_number);
    let name_key = normalize_name(&record.name);
    Ok(ValidatedRecord { record, flags, match_key, name_key })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date { year: 2026, month: 11, day: 23 }
    }

    pub(crate) fn person(id_number: &str, name: &str) -> SourceRecord {
        SourceRecord {
            source_system: "CORE".into(),
            source_customer_id: "C-1".into(),
            source_version: 1,
            party_kind: PartyKind::Personal,
            id_type: IdType::ResidentId,
            id_number: id_number.into(),
            name: name.into(),
            gender: None,
            birth_date: None,
            nationality: None,
            mobile_phone: None,
            email: None,
            address: None,
            occupation: None,
        }
    }

    fn fields(r: Result<ValidatedRecord, Vec<Violation>>) -> Vec<&'static str> {
        r.err().map(|v| v.into_iter().map(|v| v.field).collect()).unwrap_or_default()
    }

    #[test]
    fn unusable_records_are_rejected_with_every_problem() {
        let mut r = person("110105194912310021", "");
        r.source_system = " ".into();
        r.source_version = -1;
        assert_eq!(fields(validate(r, today())), ["source_system", "source_version", "name", "id_number"]);

        let table: [(&str, &str); 5] = [
            ("11010519491331002X", "id_number"),  // no 13th month
            ("1101051949123100AX", "id_number"),  // letters
            ("110105194912310缐2X", "id_number"), // 18 characters, not all ASCII
            ("110105491331002", "id_number"),     // 15 digits, no 13th month
            ("", "id_number"),
        ];
        for (id, field) in table {
            assert_eq!(fields(validate(person(id, "张伟"), today())), [field], "{id}");
        }
    }

    #[test]
    fn kinds_and_id_types_must_agree() {
        let mut r = person("91110000600037341L", "某公司");
        r.id_type = IdType::UnifiedSocialCreditCode;
        assert_eq!(fields(validate(r.clone(), today())), ["id_type"]);
        r.party_kind = PartyKind::Corporate;
        assert!(validate(r, today()).is_ok());
        let mut c = person("11010519491231002X", "某公司");
        c.party_kind = PartyKind::Corporate;
        assert_eq!(fields(validate(c, today())), ["id_type"]);
    }

    #[test]
    fn a_future_birth_date_is_rejected() {
        let mut r = person("E1234567", "Zhang Wei");
        r.id_type = IdType::Passport;
        r.birth_date = Date::new(2030, 1, 1);
        assert_eq!(fields(validate(r, today())), ["birth_date"]);
        // Also when only the resident ID says so (born 2050-01-01, check character valid).
        assert_eq!(fields(validate(person("110105205001010019", "张伟"), today())), ["id_number"]);
    }

    #[test]
    fn birth_date_and_gender_come_from_the_id_and_mismatches_are_flagged() {
        let v = validate(person("11010519491231002X", "张伟"), today()).expect("valid");
        assert_eq!(v.record.birth_date, Date::new(1949, 12, 31));
        assert_eq!(v.record.gender, Some(Gender::Female));
        assert!(v.flags.is_empty(), "{:?}", v.flags);

        let mut r = person("11010519491231002X", "张伟");
        r.birth_date = Date::new(1950, 1, 1);
        r.gender = Some(Gender::Male);
        let v = validate(r, today()).expect("usable");
        assert_eq!(v.flags, [QualityFlag::BirthDateMismatchesId, QualityFlag::GenderMismatchesId]);
        assert_eq!(v.record.birth_date, Date::new(1949, 12, 31));
        assert_eq!(v.record.gender, Some(Gender::Female));
    }

    #[test]
    fn an_unusual_id_length_is_accepted_as_received_and_flagged() {
        let v = validate(person("1101051949123", "张伟"), today()).expect("usable");
        assert_eq!(v.flags, [QualityFlag::IdNumberLengthUnusual, QualityFlag::BirthDateMissing]);
        assert_eq!(v.record.id_number, "1101051949123");
        assert_eq!(v.match_key.as_deref(), Some("1101051949123"));
    }

    #[test]
    fn a_15_digit_id_is_stored_as_received_and_matched_as_18() {
        let v = validate(person("110105491231002", "张伟"), today()).expect("valid");
        assert_eq!(v.record.id_number, "110105491231002");
        assert_eq!(v.match_key.as_deref(), Some("11010519491231002X"));
    }

    #[test]
    fn bad_contact_details_are_dropped_and_flagged() {
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, Vec<QualityFlag>, Option<&'a str>);
        let table: [Case<'_>; 5] = [
            (Some("+86 138-0000-1111"), None, None, vec![], Some("13800001111")),
            (Some("12345"), None, None, vec![QualityFlag::PhoneInvalid], None),
            (Some("12800001111"), None, None, vec![QualityFlag::PhoneInvalid], None),
            (None, Some("a@b"), None, vec![QualityFlag::EmailInvalid], None),
            (None, None, Some("China"), vec![QualityFlag::NationalityInvalid], None),
        ];
        for (phone, email, nationality, flags, kept_phone) in table {
            let mut r = person("11010519491231002X", "张伟");
            r.mobile_phone = phone.map(Into::into);
            r.email = email.map(Into::into);
            r.nationality = nationality.map(Into::into);
            let v = validate(r, today()).expect("usable");
            assert_eq!(v.flags, flags, "{phone:?} {email:?} {nationality:?}");
            assert_eq!(v.record.mobile_phone.as_deref(), kept_phone);
            if email.is_some() {
                assert_eq!(v.record.email, None);
            }
        }
        let mut r = person("11010519491231002X", "张伟");
        r.email = Some(" zhang.wei@example.com ".into());
        r.nationality = Some("chn".into());
        let v = validate(r, today()).expect("valid");
        assert_eq!(v.record.email.as_deref(), Some("zhang.wei@example.com"));
        assert_eq!(v.record.nationality.as_deref(), Some("CHN"));
    }

    #[test]
    fn mobile_phones_are_normalised() {
        for (raw, normalized) in [
            ("13800001111", Some("13800001111")),
            ("138 0000 1111", Some("13800001111")),
            ("8613800001111", Some("13800001111")),
            ("+8613800001111", Some("13800001111")),
            ("1380000111", None),
            ("02161234567", None),
        ] {
            assert_eq!(normalize_mobile_phone(raw).as_deref(), normalized, "{raw}");
        }
    }
}
