//! Maintained details of a customer (contacts, addresses, family, assets and
//! liabilities, major events, key persons, corporate profile, extended attributes):
//! what makes one acceptable. Pure; the proto types are the vocabulary.

use crm_platform::FieldViolations;
use crm_proto::crm::common::v1 as common;
use crm_proto::crm::customer::v1 as pb;
use pb::party_detail::Detail;

use super::id::{Date, inspect_resident_id, normalize_id_number};
use super::is_valid_customer_number;
use super::record::{PartyKind, email_ok, normalize_mobile_phone};

/// The stored kind of a detail.
pub fn kind_code(detail: &Detail) -> &'static str {
    match detail {
        Detail::Contact(_) => "CONTACT",
        Detail::Address(_) => "ADDRESS",
        Detail::FamilyMember(_) => "FAMILY_MEMBER",
        Detail::FamilyAsset(_) => "FAMILY_ASSET",
        Detail::MajorEvent(_) => "MAJOR_EVENT",
        Detail::KeyPerson(_) => "KEY_PERSON",
        Detail::CorporateProfile(_) => "CORPORATE_PROFILE",
    }
}

/// Family details belong to people, key persons and profiles to companies.
pub fn fits_party_kind(detail: &Detail, party: PartyKind) -> bool {
    match detail {
        Detail::FamilyMember(_) | Detail::FamilyAsset(_) => party == PartyKind::Personal,
        Detail::KeyPerson(_) | Detail::CorporateProfile(_) => party == PartyKind::Corporate,
        _ => true,
    }
}

/// Whether an asset kind is a liability (its value must not be positive).
pub fn is_liability(kind: pb::AssetKind) -> bool {
    matches!(
        kind,
        pb::AssetKind::Mortgage | pb::AssetKind::Loan | pb::AssetKind::CreditCardDebt | pb::AssetKind::OtherLiability
    )
}

fn valid_detail_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Upper-case codes such as `SPOUSE`, `LAWSUIT`, `CHAIRMAN`.
fn valid_code(code: &str) -> bool {
    let mut chars = code.chars();
    (1..=32).contains(&code.len())
        && chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn text(v: &mut FieldViolations, field: &str, value: &str, required: bool, max: usize) {
    if required && value.trim().is_empty() {
        v.add(field, "is required");
    }
    if value.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    }
}

fn date(v: &mut FieldViolations, field: &str, d: Option<&common::Date>, required: bool, today: Date) {
    match d {
        None if required => {
            v.add(field, "is required");
        }
        None => {}
        Some(d) => match (u8::try_from(d.month), u8::try_from(d.day)) {
            (Ok(m), Ok(day)) => match Date::new(d.year, m, day) {
                Some(date) if date > today => {
                    v.add(field, "must not be in the future");
                }
                Some(_) => {}
                None => {
                    v.add(field, "is not a calendar date");
                }
            },
            _ => {
                v.add(field, "is not a calendar date");
            }
        },
    }
}

fn phone(v: &mut FieldViolations, field: &str, value: &str) {
    if !value.trim().is_empty() && normalize_mobile_phone(value).is_none() {
        v.add(field, "is not a mobile phone number");
    }
}

fn customer_ref(v: &mut FieldViolations, field: &str, value: &str) {
    if !value.trim().is_empty() && !is_valid_customer_number(value.trim()) {
        v.add(field, "is not a valid customer number");
    }
}

fn money(v: &mut FieldViolations, field: &str, m: Option<&common::Money>, required: bool) {
    match m {
        None if required => {
            v.add(field, "is required");
        }
        None => {}
        Some(m) => {
            if let Err(e) = crm_platform::convert::Money::try_from(m) {
                v.add(format!("{field}.currency_code"), e.to_string());
            }
        }
    }
}

/// Every problem with a detail, with field paths under `detail`.
pub fn validate(detail: &pb::PartyDetail, today: Date) -> FieldViolations {
    let mut v = FieldViolations::new();
    if !valid_detail_id(&detail.detail_id) {
        v.add("detail.detail_id", "must be 1-64 letters, digits, '-', '_' or '.'");
    }
    let Some(d) = &detail.detail else {
        v.add(
            "detail.detail",
            "give one of contact, address, family_member, family_asset, major_event, key_person, corporate_profile",
        );
        return v;
    };
    match d {
        Detail::Contact(c) => {
            let f = "detail.contact";
            match pb::ContactKind::try_from(c.kind) {
                Ok(pb::ContactKind::Unspecified) | Err(_) => {
                    v.add(format!("{f}.kind"), "must be a known contact kind");
                }
                Ok(pb::ContactKind::MobilePhone) => {
                    if normalize_mobile_phone(&c.value).is_none() {
                        v.add(format!("{f}.value"), "is not a mobile phone number");
                    }
                }
                Ok(pb::ContactKind::Email) => {
                    if !email_ok(c.value.trim()) {
                        v.add(format!("{f}.value"), "is not an email address");
                    }
                }
                Ok(pb::ContactKind::Landline | pb::ContactKind::Fax) => {
                    let digits = c.value.chars().filter(char::is_ascii_digit).count();
                    if !(7..=20).contains(&digits)
                        || !c.value.chars().all(|ch| ch.is_ascii_digit() || matches!(ch, '-' | ' ' | '+' | '(' | ')'))
                    {
                        v.add(format!("{f}.value"), "is not a telephone number");
                    }
                }
                Ok(_) => text(&mut v, &format!("{f}.value"), &c.value, true, 128),
            }
            text(&mut v, &format!("{f}.purpose"), &c.purpose, false, 32);
        }
        Detail::Address(a) => {
            let f = "detail.address";
            if matches!(pb::AddressKind::try_from(a.kind), Ok(pb::AddressKind::Unspecified) | Err(_)) {
                v.add(format!("{f}.kind"), "must be a known address kind");
            }
            if a.country_code.len() != 3 || !a.country_code.chars().all(|c| c.is_ascii_uppercase()) {
                v.add(format!("{f}.country_code"), "must be an ISO 3166-1 alpha-3 code such as CHN");
            }
            text(&mut v, &format!("{f}.line"), &a.line, true, 200);
            for (name, value) in [("province", &a.province), ("city", &a.city), ("district", &a.district)] {
                text(&mut v, &format!("{f}.{name}"), value, false, 64);
            }
            let postal_ok = a.postal_code.is_empty()
                || if a.country_code == "CHN" {
                    a.postal_code.len() == 6 && a.postal_code.chars().all(|c| c.is_ascii_digit())
                } else {
                    a.postal_code.len() <= 12
                };
            if !postal_ok {
                v.add(format!("{f}.postal_code"), "is not a postal code of the country");
            }
        }
        Detail::FamilyMember(m) => {
            let f = "detail.family_member";
            text(&mut v, &format!("{f}.name"), &m.name, true, 100);
            if !valid_code(&m.relation) {
                v.add(format!("{f}.relation"), "must be an upper-case code such as SPOUSE or CHILD");
            }
            if !m.id_number.trim().is_empty() {
                match pb::IdType::try_from(m.id_type) {
                    Ok(pb::IdType::ResidentId) => {
                        if inspect_resident_id(&normalize_id_number(&m.id_number)).is_err() {
                            v.add(format!("{f}.id_number"), "is not a valid resident ID");
                        }
                    }
                    Ok(pb::IdType::Unspecified) | Err(_) => {
                        v.add(format!("{f}.id_type"), "is required with an ID number");
                    }
                    Ok(_) => text(&mut v, &format!("{f}.id_number"), &m.id_number, true, 40),
                }
            }
            date(&mut v, &format!("{f}.birth_date"), m.birth_date.as_ref(), false, today);
            phone(&mut v, &format!("{f}.mobile_phone"), &m.mobile_phone);
            text(&mut v, &format!("{f}.occupation"), &m.occupation, false, 64);
            customer_ref(&mut v, &format!("{f}.customer_number"), &m.customer_number);
        }
        Detail::FamilyAsset(a) => {
            let f = "detail.family_asset";
            let kind = pb::AssetKind::try_from(a.kind).unwrap_or(pb::AssetKind::Unspecified);
            if kind == pb::AssetKind::Unspecified {
                v.add(format!("{f}.kind"), "must be a known asset or liability kind");
            }
            text(&mut v, &format!("{f}.description"), &a.description, false, 200);
            money(&mut v, &format!("{f}.value"), a.value.as_ref(), true);
            if let Some(m) = &a.value {
                if is_liability(kind) && m.amount_minor > 0 {
                    v.add(format!("{f}.value.amount_minor"), "a liability is zero or negative");
                }
                if !is_liability(kind) && m.amount_minor < 0 {
                    v.add(format!("{f}.value.amount_minor"), "an asset is zero or positive");
                }
            }
        }
        Detail::MajorEvent(e) => {
            let f = "detail.major_event";
            date(&mut v, &format!("{f}.date"), e.date.as_ref(), true, today);
            if !valid_code(&e.kind) {
                v.add(format!("{f}.kind"), "must be an upper-case code such as MARRIAGE or LAWSUIT");
            }
            text(&mut v, &format!("{f}.description"), &e.description, false, 1000);
        }
        Detail::KeyPerson(k) => {
            let f = "detail.key_person";
            if !valid_code(&k.role) {
                v.add(format!("{f}.role"), "must be an upper-case code such as LEGAL_REPRESENTATIVE");
            }
            text(&mut v, &format!("{f}.name"), &k.name, true, 100);
            customer_ref(&mut v, &format!("{f}.customer_number"), &k.customer_number);
            phone(&mut v, &format!("{f}.mobile_phone"), &k.mobile_phone);
        }
        Detail::CorporateProfile(p) => {
            let f = "detail.corporate_profile";
            text(&mut v, &format!("{f}.industry"), &p.industry, false, 64);
            text(&mut v, &format!("{f}.legal_representative"), &p.legal_representative, false, 100);
            text(&mut v, &format!("{f}.business_scope"), &p.business_scope, false, 2000);
            date(&mut v, &format!("{f}.founding_date"), p.founding_date.as_ref(), false, today);
            if !p.nature.is_empty() && !valid_code(&p.nature) {
                v.add(format!("{f}.nature"), "must be an upper-case code such as PRIVATE");
            }
            money(&mut v, &format!("{f}.registered_capital"), p.registered_capital.as_ref(), false);
        }
    }
    v
}

/// Keys of extended attributes: lower-case, e.g. `wealth.risk_profile`.
pub fn valid_extended_key(key: &str) -> bool {
    let mut chars = key.chars();
    (1..=64).contains(&key.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.'))
}

/// Every problem with an extended-attribute change.
pub fn validate_extended(set: &std::collections::HashMap<String, String>, remove: &[String]) -> FieldViolations {
    let mut v = FieldViolations::new();
    if set.is_empty() && remove.is_empty() {
        v.add("set", "give attributes to set or keys to remove");
    }
    if set.len() + remove.len() > 100 {
        v.add("set", "at most 100 changes per call");
    }
    for (key, value) in set {
        if !valid_extended_key(key) {
            v.add(format!("set[{key}]"), "key must be lower-case letters, digits, '_' or '.', starting with a letter");
        }
        if value.chars().count() > 1000 {
            v.add(format!("set[{key}]"), "value must be at most 1000 characters");
        }
    }
    for (i, key) in remove.iter().enumerate() {
        if !valid_extended_key(key) {
            v.add(format!("remove[{i}]"), "is not an attribute key");
        }
    }
    v
}

/// Family assets and liabilities summed per currency, in currency order.
pub fn asset_totals<'a>(assets: impl IntoIterator<Item = &'a pb::FamilyAsset>) -> Vec<pb::AssetTotal> {
    let mut totals: std::collections::BTreeMap<String, (i64, i64)> = std::collections::BTreeMap::new();
    for a in assets {
        let Some(m) = &a.value else { continue };
        let entry = totals.entry(m.currency_code.clone()).or_default();
        if is_liability(pb::AssetKind::try_from(a.kind).unwrap_or(pb::AssetKind::Unspecified)) {
            entry.1 = entry.1.saturating_add(m.amount_minor);
        } else {
            entry.0 = entry.0.saturating_add(m.amount_minor);
        }
    }
    totals
        .into_iter()
        .map(|(currency_code, (assets_minor, liabilities_minor))| pb::AssetTotal {
            currency_code,
            assets_minor,
            liabilities_minor,
            net_minor: assets_minor.saturating_add(liabilities_minor),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::new(2026, 11, 23).unwrap()
    }

    fn with(detail: Detail) -> pb::PartyDetail {
        pb::PartyDetail { detail_id: "d-1".into(), detail: Some(detail), update_time: None }
    }

    fn fields(d: &pb::PartyDetail) -> Vec<String> {
        validate(d, today()).iter().map(|(f, _)| f.to_string()).collect()
    }

    fn cny(amount_minor: i64) -> Option<common::Money> {
        Some(common::Money { amount_minor, currency_code: "CNY".into() })
    }

    #[test]
    fn contacts_are_checked_by_kind() {
        let contact = |kind: pb::ContactKind, value: &str| {
            with(Detail::Contact(pb::Contact { kind: kind as i32, value: value.into(), ..Default::default() }))
        };
        let cases: &[(pb::ContactKind, &str, &[&str])] = &[
            (pb::ContactKind::MobilePhone, "138 0013 8000", &[]),
            (pb::ContactKind::MobilePhone, "12345", &["detail.contact.value"]),
            (pb::ContactKind::Email, "wang@example.cn", &[]),
            (pb::ContactKind::Email, "wang@", &["detail.contact.value"]),
            (pb::ContactKind::Landline, "010-6512 3456", &[]),
            (pb::ContactKind::Landline, "call me", &["detail.contact.value"]),
            (pb::ContactKind::Wechat, "wang_88", &[]),
            (pb::ContactKind::Wechat, "", &["detail.contact.value"]),
            (pb::ContactKind::Unspecified, "x", &["detail.contact.kind"]),
        ];
        for (kind, value, expected) in cases {
            assert_eq!(fields(&contact(*kind, value)), *expected, "{kind:?} {value:?}");
        }
    }

    #[test]
    fn a_detail_needs_an_id_and_a_kind() {
        let empty = pb::PartyDetail { detail_id: "bad id!".into(), detail: None, update_time: None };
        assert_eq!(fields(&empty), vec!["detail.detail_id", "detail.detail"]);
    }

    #[test]
    fn addresses_need_a_country_a_line_and_a_fitting_postal_code() {
        let address = |country: &str, line: &str, postal: &str| {
            with(Detail::Address(pb::Address {
                kind: pb::AddressKind::Residential as i32,
                country_code: country.into(),
                line: line.into(),
                postal_code: postal.into(),
                ..Default::default()
            }))
        };
        assert!(fields(&address("CHN", "朝阳区建国路 1 号", "100022")).is_empty());
        assert_eq!(fields(&address("CHN", "", "1000")), vec!["detail.address.line", "detail.address.postal_code"]);
        assert_eq!(fields(&address("cn", "1 Main St", "")), vec!["detail.address.country_code"]);
        assert!(fields(&address("GBR", "1 Main St", "SW1A 1AA")).is_empty());
    }

    #[test]
    fn family_members_are_checked_like_customers() {
        let member = |id_type: pb::IdType, id: &str, born: Option<common::Date>| {
            with(Detail::FamilyMember(pb::FamilyMember {
                name: "王小明".into(),
                relation: "CHILD".into(),
                id_type: id_type as i32,
                id_number: id.into(),
                birth_date: born,
                ..Default::default()
            }))
        };
        assert!(fields(&member(pb::IdType::ResidentId, "11010519491231002X", None)).is_empty());
        assert_eq!(
            fields(&member(pb::IdType::ResidentId, "110105194912310021", None)),
            vec!["detail.family_member.id_number"]
        );
        assert_eq!(fields(&member(pb::IdType::Unspecified, "X1", None)), vec!["detail.family_member.id_type"]);
        let future = common::Date { year: 2030, month: 1, day: 1 };
        assert_eq!(fields(&member(pb::IdType::Unspecified, "", Some(future))), vec!["detail.family_member.birth_date"]);
        let feb30 = common::Date { year: 2020, month: 2, day: 30 };
        assert_eq!(fields(&member(pb::IdType::Unspecified, "", Some(feb30))), vec!["detail.family_member.birth_date"]);
    }

    #[test]
    fn assets_are_positive_liabilities_negative_and_totals_per_currency() {
        let asset =
            |kind: pb::AssetKind, value| pb::FamilyAsset { kind: kind as i32, description: String::new(), value };
        let cases = [
            (asset(pb::AssetKind::Property, cny(50_000_000)), 0),
            (asset(pb::AssetKind::Mortgage, cny(-20_000_000)), 0),
            (asset(pb::AssetKind::Mortgage, cny(20_000_000)), 1),
            (asset(pb::AssetKind::Deposit, cny(-1)), 1),
            (asset(pb::AssetKind::Deposit, None), 1),
            (asset(pb::AssetKind::Unspecified, cny(1)), 1),
            (asset(pb::AssetKind::Vehicle, Some(common::Money { amount_minor: 1, currency_code: "rmb".into() })), 1),
        ];
        for (a, expected) in &cases {
            assert_eq!(fields(&with(Detail::FamilyAsset(a.clone()))).len(), *expected, "{a:?}");
        }
        let usd =
            asset(pb::AssetKind::Deposit, Some(common::Money { amount_minor: 10_000, currency_code: "USD".into() }));
        let list = [cases[0].0.clone(), cases[1].0.clone(), usd];
        let totals = asset_totals(&list);
        assert_eq!(totals.len(), 2);
        assert_eq!(
            (
                totals[0].currency_code.as_str(),
                totals[0].assets_minor,
                totals[0].liabilities_minor,
                totals[0].net_minor
            ),
            ("CNY", 50_000_000, -20_000_000, 30_000_000)
        );
        assert_eq!((totals[1].currency_code.as_str(), totals[1].net_minor), ("USD", 10_000));
    }

    #[test]
    fn events_key_persons_and_profiles_use_codes_and_dates() {
        let event = with(Detail::MajorEvent(pb::MajorEvent {
            date: Some(common::Date { year: 2025, month: 5, day: 20 }),
            kind: "MARRIAGE".into(),
            description: String::new(),
        }));
        assert!(fields(&event).is_empty());
        let bad_event = with(Detail::MajorEvent(pb::MajorEvent {
            date: None,
            kind: "marriage".into(),
            description: String::new(),
        }));
        assert_eq!(fields(&bad_event), vec!["detail.major_event.date", "detail.major_event.kind"]);
        let person = with(Detail::KeyPerson(pb::KeyPerson {
            role: "CHAIRMAN".into(),
            name: "李总".into(),
            customer_number: "123".into(),
            mobile_phone: String::new(),
        }));
        assert_eq!(fields(&person), vec!["detail.key_person.customer_number"]);
        let profile =
            with(Detail::CorporateProfile(pb::CorporateProfile { nature: "private".into(), ..Default::default() }));
        assert_eq!(fields(&profile), vec!["detail.corporate_profile.nature"]);
    }

    #[test]
    fn family_details_fit_people_and_key_persons_fit_companies() {
        let family = Detail::FamilyMember(pb::FamilyMember::default());
        let key = Detail::KeyPerson(pb::KeyPerson::default());
        let contact = Detail::Contact(pb::Contact::default());
        assert!(fits_party_kind(&family, PartyKind::Personal) && !fits_party_kind(&family, PartyKind::Corporate));
        assert!(fits_party_kind(&key, PartyKind::Corporate) && !fits_party_kind(&key, PartyKind::Personal));
        assert!(fits_party_kind(&contact, PartyKind::Personal) && fits_party_kind(&contact, PartyKind::Corporate));
        assert_eq!(kind_code(&family), "FAMILY_MEMBER");
    }

    #[test]
    fn extended_attribute_keys_are_lower_case_and_changes_bounded() {
        let mut set = std::collections::HashMap::new();
        set.insert("wealth.risk_profile".to_string(), "C3".to_string());
        assert!(validate_extended(&set, &[]).is_empty());
        set.insert("Bad Key".to_string(), "x".to_string());
        assert_eq!(validate_extended(&set, &["ok_key".into()]).iter().count(), 1);
        assert_eq!(validate_extended(&Default::default(), &[]).iter().count(), 1);
    }
}
