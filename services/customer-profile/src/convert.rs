//! Wire ↔ domain, written once.
//!
//! - Proto enum numbers become the domain's kinds here and back (`From<domain> for pb`,
//!   `TryFrom<pb> for domain`; UNSPECIFIED and unknown numbers have no domain value).
//! - A source record from a request or a batch-file line becomes a validated domain
//!   record here (`TryFrom<pb::SourceRecord> for ValidatedRecord`), with every problem
//!   named by its field path inside the record (`key.source_system`, `id_number`, …),
//!   exactly as the contract documents; callers nest the paths under their own field.
//! - Rows the store returns, which still hold kinds and statuses as their stored codes,
//!   become proto messages here, PII shown as the caller may see it ([`Reveal`]).
//!
//! Nothing here talks to a database.
//!
//! Longer than 600 lines with its unit tests (about 122 lines), which stay beside the
//! code they pin; the code itself is under 610.

use crm_platform::FieldViolations;
use crm_platform::convert::{timestamp, timestamp_from_micros};
use crm_platform::validate::{self, Lines};
use crm_proto::crm::common::v1 as common;
use crm_proto::crm::customer::v1 as pb;
use serde_json::Value;
use time::OffsetDateTime;

use crate::domain::golden::ID_REGION;
use crate::domain::{
    self, AssignmentAction, CustomerNumber, Date, Gender, IdType, PartyKind, RelationshipKind, SuspectStatus,
    UpsertOutcome, ValidatedRecord, mask_id_number, mask_phone,
};
use crate::pii::PiiCipher;
use crate::store;

/// A proto enum value the domain has no value for: UNSPECIFIED, or a number this build
/// does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unspecified;

/// The domain value of a proto enum field, given its number on the wire:
/// `from_wire::<pb::IdType, IdType>(r.id_type)`.
pub fn from_wire<P, D>(number: i32) -> Option<D>
where
    P: TryFrom<i32>,
    D: TryFrom<P>,
{
    P::try_from(number).ok().and_then(|p| D::try_from(p).ok())
}

/// The one mapping between a domain enum and its proto enum, whose variants carry the
/// same names (the proto's UNSPECIFIED aside).
macro_rules! wire_enum {
    ($domain:ident <=> $wire:ident { $($variant:ident),+ $(,)? }) => {
        impl From<$domain> for pb::$wire {
            fn from(v: $domain) -> Self {
                match v {
                    $($domain::$variant => pb::$wire::$variant),+
                }
            }
        }

        impl TryFrom<pb::$wire> for $domain {
            type Error = Unspecified;

            fn try_from(v: pb::$wire) -> Result<Self, Unspecified> {
                match v {
                    $(pb::$wire::$variant => Ok($domain::$variant),)+
                    pb::$wire::Unspecified => Err(Unspecified),
                }
            }
        }
    };
}

wire_enum!(PartyKind <=> PartyKind { Personal, Corporate });
wire_enum!(IdType <=> IdType {
    ResidentId,
    Passport,
    HkMacaoPermit,
    TaiwanPermit,
    ForeignPermanentResidentId,
    MilitaryId,
    UnifiedSocialCreditCode,
    OrganizationCode,
    BusinessLicense,
    Other,
});
wire_enum!(Gender <=> Gender { Male, Female, Unknown });
wire_enum!(RelationshipKind <=> RelationshipKind {
    ExecutiveOf,
    SubsidiaryOf,
    SharesLegalRepresentativeWith,
    FamilyMemberOf,
});
wire_enum!(AssignmentAction <=> AssignmentAction { Assign, Adjust, Recall });

/// A data steward's decision: a suspect pair's status once resolved.
impl TryFrom<pb::SuspectResolution> for SuspectStatus {
    type Error = Unspecified;

    fn try_from(v: pb::SuspectResolution) -> Result<Self, Unspecified> {
        match v {
            pb::SuspectResolution::SameParty => Ok(SuspectStatus::SameParty),
            pb::SuspectResolution::DifferentParties => Ok(SuspectStatus::DifferentParties),
            pb::SuspectResolution::Unspecified => Err(Unspecified),
        }
    }
}

/// The proto value of a stored code, UNSPECIFIED for a code the domain does not know.
fn wire_of<D, P>(code: &str, from_code: fn(&str) -> Option<D>) -> i32
where
    P: From<D> + Default + Into<i32>,
{
    from_code(code).map(P::from).unwrap_or_default().into()
}

impl From<Date> for common::Date {
    fn from(d: Date) -> Self {
        common::Date { year: d.year, month: i32::from(d.month), day: i32::from(d.day) }
    }
}

/// A wire date that is not in the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotADate;

impl TryFrom<common::Date> for Date {
    type Error = NotADate;

    /// Checked by the kit's calendar ([`crm_platform::convert::date_of`]).
    fn try_from(d: common::Date) -> Result<Self, NotADate> {
        let d = crm_platform::convert::date_of(&d).ok_or(NotADate)?;
        Ok(Date { year: d.year(), month: u8::from(d.month()), day: d.day() })
    }
}

/// Today's date (UTC), for birth-date checks.
pub fn today() -> Date {
    let now = OffsetDateTime::now_utc().date();
    Date::new(now.year(), u8::from(now.month()), now.day()).unwrap_or(Date { year: 2000, month: 1, day: 1 })
}

/// A wire string with its surrounding whitespace removed; `None` when nothing is left.
pub fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The customer number in a request `field`, or a violation naming the field.
pub fn customer_number(v: &mut FieldViolations, field: impl Into<String>, value: &str) -> Option<CustomerNumber> {
    let number = CustomerNumber::parse(value);
    if number.is_none() {
        v.add(field, "is not a valid customer number");
    }
    number
}

/// Customer numbers as the store takes them.
pub fn texts(numbers: &[CustomerNumber]) -> Vec<String> {
    numbers.iter().map(|n| n.as_str().to_string()).collect()
}

/// The documented limits of a source record's text fields
/// (`proto/crm/customer/v1/customer.proto`), in characters.
const TEXT_LIMITS: [(&str, usize); 9] = [
    ("key.source_system", 32),
    ("key.source_customer_id", 64),
    ("id_number", 64),
    ("name", 200),
    ("nationality", 16),
    ("mobile_phone", 32),
    ("email", 254),
    ("address", 500),
    ("occupation", 100),
];

impl TryFrom<pb::SourceRecord> for ValidatedRecord {
    type Error = FieldViolations;

    /// The record checked by the bank's rules as of [`today`]; see [`source_record`].
    fn try_from(r: pb::SourceRecord) -> Result<Self, FieldViolations> {
        source_record(r, today())
    }
}

/// A source record from the wire checked by the bank's rules as of `today`, or every
/// problem with it, named by field path inside the record. Text that cannot be stored
/// (too long, control characters) is reported alone; otherwise wire problems (kind, ID
/// type, birth date) and the domain's violations are reported together.
pub fn source_record(r: pb::SourceRecord, today: Date) -> Result<ValidatedRecord, FieldViolations> {
    let mut v = FieldViolations::new();
    let key = r.key.unwrap_or_default();
    let texts = [
        &key.source_system,
        &key.source_customer_id,
        &r.id_number,
        &r.name,
        &r.nationality,
        &r.mobile_phone,
        &r.email,
        &r.address,
        &r.occupation,
    ];
    let mut unusable = false;
    for ((field, max), value) in TEXT_LIMITS.into_iter().zip(texts) {
        unusable |= !validate::text(&mut v, field, value, max, Lines::Single);
    }
    if unusable {
        // Values that cannot be stored are not checked further.
        return Err(v);
    }
    let party_kind = from_wire::<pb::PartyKind, PartyKind>(r.party_kind);
    if party_kind.is_none() {
        v.add("party_kind", "must be PERSONAL or CORPORATE");
    }
    let id_type = from_wire::<pb::IdType, IdType>(r.id_type);
    if id_type.is_none() {
        v.add("id_type", "must be a known ID type");
    }
    let birth_date = r.birth_date.and_then(|d| match Date::try_from(d) {
        Ok(date) => Some(date),
        Err(NotADate) => {
            v.add("birth_date", "is not a calendar date");
            None
        }
    });
    let (Some(party_kind), Some(id_type)) = (party_kind, id_type) else {
        return Err(v);
    };
    let record = domain::SourceRecord {
        source_system: key.source_system.trim().to_string(),
        source_customer_id: key.source_customer_id.trim().to_string(),
        source_version: r.source_version,
        party_kind,
        id_type,
        id_number: r.id_number,
        name: r.name,
        gender: from_wire::<pb::Gender, Gender>(r.gender),
        birth_date,
        nationality: non_empty(&r.nationality),
        mobile_phone: non_empty(&r.mobile_phone),
        email: non_empty(&r.email),
        address: non_empty(&r.address),
        occupation: non_empty(&r.occupation),
    };
    match domain::validate(record, today) {
        Ok(validated) if v.is_empty() => Ok(validated),
        Ok(_) => Err(v),
        Err(violations) => {
            for violation in violations {
                let field = match violation.field {
                    "source_system" | "source_customer_id" => format!("key.{}", violation.field),
                    other => other.to_string(),
                };
                v.add(field, violation.reason);
            }
            Err(v)
        }
    }
}

impl From<domain::SourceRecord> for pb::SourceRecord {
    fn from(r: domain::SourceRecord) -> Self {
        pb::SourceRecord {
            key: Some(pb::SourceKey { source_system: r.source_system, source_customer_id: r.source_customer_id }),
            source_version: r.source_version,
            party_kind: pb::PartyKind::from(r.party_kind).into(),
            id_type: pb::IdType::from(r.id_type).into(),
            id_number: r.id_number,
            name: r.name,
            gender: r.gender.map(pb::Gender::from).unwrap_or_default().into(),
            birth_date: r.birth_date.map(common::Date::from),
            nationality: r.nationality.unwrap_or_default(),
            mobile_phone: r.mobile_phone.unwrap_or_default(),
            email: r.email.unwrap_or_default(),
            address: r.address.unwrap_or_default(),
            occupation: r.occupation.unwrap_or_default(),
        }
    }
}

/// How stored PII is shown to one caller: in full for callers with
/// `customer.pii.read`, masked for everyone else. A value that does not decrypt (wrong
/// key) is shown fully masked rather than failing the read.
#[derive(Clone, Copy)]
pub struct Reveal<'a> {
    /// The configured PII key.
    pub pii: &'a PiiCipher,
    /// Whether the caller may see PII in full.
    pub full: bool,
}

impl Reveal<'_> {
    /// A stored (encrypted) ID number.
    pub fn id_number(&self, stored: &str) -> String {
        self.value("id_number", stored, mask_id_number)
    }

    /// A stored (encrypted) mobile phone.
    pub fn mobile_phone(&self, stored: &str) -> String {
        self.value("mobile_phone", stored, mask_phone)
    }

    fn value(&self, field: &str, stored: &str, mask: fn(&str) -> String) -> String {
        if stored.is_empty() {
            return String::new();
        }
        match self.pii.decrypt(field, stored) {
            Ok(plain) if self.full => plain,
            Ok(plain) => mask(&plain),
            Err(e) => {
                tracing::error!(field, error = %e, "stored value does not decrypt with the configured key");
                "*".repeat(8)
            }
        }
    }
}

/// A golden attribute as stored (text), empty when absent.
fn golden_text(golden: &serde_json::Map<String, Value>, attribute: &str) -> String {
    golden.get(attribute).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn source_key((source_system, source_customer_id): (String, String)) -> pb::SourceKey {
    pb::SourceKey { source_system, source_customer_id }
}

/// A stored golden record.
pub fn customer(c: store::StoredCustomer, reveal: Reveal<'_>) -> pb::Customer {
    let get = |k: &str| golden_text(&c.golden, k);
    let birth_date =
        c.golden.get("birth_date").and_then(Value::as_str).and_then(Date::parse_iso).map(common::Date::from);
    let lineage = c
        .lineage
        .iter()
        .map(|(attribute, l)| pb::AttributeLineage {
            attribute: attribute.clone(),
            source: Some(pb::SourceKey {
                source_system: l.get("source_system").and_then(Value::as_str).unwrap_or_default().into(),
                source_customer_id: l.get("source_customer_id").and_then(Value::as_str).unwrap_or_default().into(),
            }),
            trust: l.get("trust").and_then(Value::as_i64).unwrap_or_default() as i32,
            update_time: l.get("updated_at").and_then(Value::as_i64).map(timestamp_from_micros),
        })
        .collect();
    pb::Customer {
        customer_number: c.customer_number.clone(),
        party_kind: pb::PartyKind::from(party_kind_of(&c.party_kind)).into(),
        name: get("name"),
        id_type: wire_of::<IdType, pb::IdType>(&get("id_type"), IdType::from_code),
        id_number: reveal.id_number(&get("id_number")),
        gender: wire_of::<Gender, pb::Gender>(&get("gender"), Gender::from_code),
        birth_date,
        nationality: get("nationality"),
        mobile_phone: reveal.mobile_phone(&get("mobile_phone")),
        email: get("email"),
        address: get("address"),
        occupation: get("occupation"),
        lineage,
        source_keys: c.sources.into_iter().map(source_key).collect(),
        quality_flags: c.quality_flags,
        create_time: Some(timestamp(c.created_at)),
        update_time: Some(timestamp(c.updated_at)),
    }
}

/// The demographic attributes of a golden record, as events carry them.
pub fn demographics(golden: &Value) -> pb::CustomerDemographics {
    let get = |k: &str| golden.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    pb::CustomerDemographics {
        birth_date: golden.get("birth_date").and_then(Value::as_str).and_then(Date::parse_iso).map(common::Date::from),
        gender: wire_of::<Gender, pb::Gender>(&get("gender"), Gender::from_code),
        region_code: get(ID_REGION),
    }
}

/// The kind of a stored party; the party table only holds the two codes.
pub fn party_kind_of(code: &str) -> PartyKind {
    PartyKind::from_code(code).unwrap_or(PartyKind::Personal)
}

/// A customer of a result list.
pub fn customer_summary(c: store::CustomerRow, reveal: Reveal<'_>) -> pb::CustomerSummary {
    let get = |k: &str| golden_text(&c.golden, k);
    pb::CustomerSummary {
        customer_number: c.customer_number.clone(),
        party_kind: pb::PartyKind::from(party_kind_of(&c.party_kind)).into(),
        name: get("name"),
        id_type: wire_of::<IdType, pb::IdType>(&get("id_type"), IdType::from_code),
        id_number: reveal.id_number(&get("id_number")),
        mobile_phone: reveal.mobile_phone(&get("mobile_phone")),
        home_org_id: c.home_org_id.unwrap_or_default(),
        primary_rm_id: c.primary_rm_id.unwrap_or_default(),
    }
}

/// An open suspect pair.
pub fn suspect_pair(s: store::StoredSuspect, reveal: Reveal<'_>) -> pb::SuspectPair {
    pb::SuspectPair {
        suspect_pair_id: s.id.to_string(),
        customer_number_a: s.customer_a,
        customer_number_b: s.customer_b,
        id_type: wire_of::<IdType, pb::IdType>(&s.id_type, IdType::from_code),
        id_number: reveal.id_number(&s.id_number),
        name_a: s.name_a,
        name_b: s.name_b,
        create_time: Some(timestamp(s.created_at)),
    }
}

impl From<store::RelationshipRow> for pb::Relationship {
    fn from(r: store::RelationshipRow) -> Self {
        pb::Relationship {
            kind: wire_of::<RelationshipKind, pb::RelationshipKind>(&r.kind, RelationshipKind::from_code),
            related_customer_number: r.related_customer_number,
            related_name: r.related_name,
            role: r.role,
            inverse: r.inverse,
        }
    }
}

impl From<store::HistoryRow> for pb::CustomerChange {
    fn from(h: store::HistoryRow) -> Self {
        pb::CustomerChange {
            change_kind: h.change_kind,
            change_time: Some(timestamp(h.changed_at)),
            actor: h.actor.unwrap_or_default(),
            source: h.source.map(source_key),
            changed_attributes: h.changed_attributes,
        }
    }
}

impl From<store::AssignmentHistoryRow> for pb::AssignmentChange {
    fn from(h: store::AssignmentHistoryRow) -> Self {
        pb::AssignmentChange {
            action: wire_of::<AssignmentAction, pb::AssignmentAction>(&h.action, AssignmentAction::from_code),
            change_time: h.assignment.updated_at.map(timestamp),
            assignment: Some(pb::Assignment::from(&h.assignment)),
            actor: h.actor.unwrap_or_default(),
            reason: h.reason.unwrap_or_default(),
        }
    }
}

/// An entry of the kit's audit trail as an access audit entry (its subject is the
/// customer number).
pub fn access_audit_entry(a: crm_platform::audit::StoredEntry) -> pb::AccessAuditEntry {
    pb::AccessAuditEntry {
        occurred_at: Some(timestamp(a.occurred_at)),
        actor: a.entry.actor,
        actor_name: a.entry.actor_name,
        action: a.entry.action,
        customer_number: a.entry.subject.unwrap_or_default(),
        source_address: a.entry.source_address.unwrap_or_default(),
        trace_id: a.entry.trace_id.unwrap_or_default(),
        details: a.entry.details.to_string(),
    }
}

impl From<UpsertOutcome> for pb::UpsertOutcome {
    fn from(o: UpsertOutcome) -> Self {
        match o {
            UpsertOutcome::Created => pb::UpsertOutcome::Created,
            UpsertOutcome::Updated => pb::UpsertOutcome::Updated,
            UpsertOutcome::Unchanged => pb::UpsertOutcome::Unchanged,
        }
    }
}

impl From<&store::AssignmentRow> for pb::Assignment {
    fn from(a: &store::AssignmentRow) -> Self {
        pb::Assignment {
            customer_number: a.customer_number.clone(),
            home_org_id: a.home_org_id.clone().unwrap_or_default(),
            primary_rm_id: a.primary_rm_id.clone().unwrap_or_default(),
            related_rm_ids: a.related_rm_ids.clone(),
            update_time: a.updated_at.map(crm_platform::convert::timestamp),
        }
    }
}

impl From<store::UpsertResult> for pb::UpsertSourceRecordResponse {
    fn from(r: store::UpsertResult) -> Self {
        pb::UpsertSourceRecordResponse {
            customer_number: r.customer_number,
            outcome: pb::UpsertOutcome::from(r.outcome) as i32,
            quality_flags: r.quality_flags,
            absorbed_customer_numbers: r.absorbed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_kind_has_a_proto_value_that_maps_back() {
        for &(t, _) in IdType::CODES {
            assert_eq!(from_wire::<pb::IdType, IdType>(pb::IdType::from(t).into()), Some(t));
        }
        for &(k, _) in PartyKind::CODES {
            assert_eq!(from_wire::<pb::PartyKind, PartyKind>(pb::PartyKind::from(k).into()), Some(k));
        }
        for g in [Gender::Male, Gender::Female, Gender::Unknown] {
            assert_eq!(from_wire::<pb::Gender, Gender>(pb::Gender::from(g).into()), Some(g));
        }
        for &(k, _) in RelationshipKind::CODES {
            let wire = pb::RelationshipKind::from(k);
            assert_eq!(from_wire::<pb::RelationshipKind, RelationshipKind>(wire.into()), Some(k));
            // The stored code is the proto name without its prefix.
            assert_eq!(wire.as_str_name(), format!("RELATIONSHIP_KIND_{}", k.code()));
        }
        for &(a, _) in AssignmentAction::CODES {
            let wire = pb::AssignmentAction::from(a);
            assert_eq!(from_wire::<pb::AssignmentAction, AssignmentAction>(wire.into()), Some(a));
            assert_eq!(wire.as_str_name(), format!("ASSIGNMENT_ACTION_{}", a.code()));
        }
        for &(t, _) in IdType::CODES {
            assert_eq!(pb::IdType::from(t).as_str_name(), format!("ID_TYPE_{}", t.code()));
        }
    }

    #[test]
    fn unspecified_and_unknown_numbers_have_no_domain_value() {
        for n in [0, -1, 99] {
            assert_eq!(from_wire::<pb::IdType, IdType>(n), None);
            assert_eq!(from_wire::<pb::PartyKind, PartyKind>(n), None);
            assert_eq!(from_wire::<pb::Gender, Gender>(n), None);
            assert_eq!(from_wire::<pb::RelationshipKind, RelationshipKind>(n), None);
            assert_eq!(from_wire::<pb::SuspectResolution, SuspectStatus>(n), None);
        }
        assert_eq!(wire_of::<IdType, pb::IdType>("LIBRARY_CARD", IdType::from_code), 0);
    }

    #[test]
    fn dates_convert_only_when_in_the_calendar() {
        let d = Date::new(1949, 12, 31).expect("date");
        assert_eq!(Date::try_from(common::Date::from(d)), Ok(d));
        for (year, month, day) in [(2023, 2, 29), (2000, 13, 1), (2000, 1, 0), (2000, 1, 300), (0, 1, 1)] {
            assert_eq!(Date::try_from(common::Date { year, month, day }), Err(NotADate), "{year}-{month}-{day}");
        }
    }

    fn wire_person() -> pb::SourceRecord {
        pb::SourceRecord {
            key: Some(pb::SourceKey { source_system: "CORE".into(), source_customer_id: "C-1".into() }),
            source_version: 1,
            party_kind: pb::PartyKind::Personal.into(),
            id_type: pb::IdType::ResidentId.into(),
            id_number: "11010519491231002X".into(),
            name: "张伟".into(),
            // The ID's sequence (002) is even: a woman.
            gender: pb::Gender::Female.into(),
            birth_date: Some(common::Date { year: 1949, month: 12, day: 31 }),
            nationality: "CHN".into(),
            mobile_phone: "13800001111".into(),
            ..Default::default()
        }
    }

    fn fields(r: pb::SourceRecord) -> Vec<String> {
        let today = Date::new(2026, 1, 1).expect("date");
        source_record(r, today).map(|_| vec![]).unwrap_or_else(|v| v.iter().map(|(f, _)| f.to_string()).collect())
    }

    #[test]
    fn a_clean_record_survives_the_trip_to_the_domain_and_back() {
        let today = Date::new(2026, 1, 1).expect("date");
        let validated = source_record(wire_person(), today).expect("valid");
        assert_eq!(pb::SourceRecord::from(validated.record), wire_person());
    }

    #[test]
    fn bad_records_name_every_bad_field_inside_the_record() {
        // What is changed in a clean record, and the fields then named.
        type Case = (&'static str, fn(&mut pb::SourceRecord), &'static [&'static str]);
        let cases: [Case; 7] = [
            ("no key", |r| r.key = None, &["key.source_system", "key.source_customer_id"]),
            ("long name", |r| r.name = "x".repeat(201), &["name"]),
            (
                "text that cannot be stored is reported alone",
                |r| {
                    r.email = "a\u{0}b".into();
                    r.party_kind = 0;
                },
                &["email"],
            ),
            ("no kind", |r| r.party_kind = 0, &["party_kind"]),
            (
                "no kind nor type",
                |r| {
                    r.party_kind = 7;
                    r.id_type = 0;
                },
                &["party_kind", "id_type"],
            ),
            (
                "wire and domain problems together",
                |r| {
                    r.birth_date = Some(common::Date { year: 1949, month: 2, day: 30 });
                    r.id_number = "11010519491231002Y".into();
                },
                &["birth_date", "id_number"],
            ),
            ("an unknown gender is no gender", |r| r.gender = 42, &[]),
        ];
        for (case, change, expected) in cases {
            let mut r = wire_person();
            change(&mut r);
            assert_eq!(fields(r), expected, "{case}");
        }
    }
}
