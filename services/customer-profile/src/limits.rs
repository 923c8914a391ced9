//! The limits `proto/crm/customer/v1/customer.proto` documents for each request, checked
//! before a handler does anything else: text fields of at most so many characters and
//! without NUL or other control characters (tab and line breaks only in the fields the
//! contract allows them), and repeated fields of at most so many entries. A request
//! over a limit is refused with INVALID_ARGUMENT, one violation per bad field, and
//! nothing is read or written. Checks of meaning (formats, required fields, known
//! enum values) stay with the handler and the domain; [`crate::grpc::validate_record`]
//! checks source records.

use crm_platform::FieldViolations;
use crm_platform::validate::{self, Check, Lines};
use crm_proto::crm::customer::v1 as pb;
use pb::party_detail::Detail;

/// A customer number as looked up (12 digits when well-formed).
const CUSTOMER_NUMBER: usize = 32;
/// An org id (identity's org codes).
const ORG_ID: usize = 32;
/// A subject: a user id or a service account's client id.
const SUBJECT: usize = 128;
/// A free-text reason kept in the history.
const REASON: usize = 500;
/// Customers of one assignment or recall.
pub const MAX_CUSTOMERS: usize = 1000;
/// Related RMs of one assignment.
pub const MAX_RELATED_RMS: usize = 20;
/// Records of one import stream.
pub const MAX_IMPORT_RECORDS: i64 = 10_000;

/// GetCustomer.
pub fn get_customer(r: &pb::GetCustomerRequest) -> Result<(), FieldViolations> {
    let mut c = Check::new();
    match &r.lookup {
        Some(pb::get_customer_request::Lookup::CustomerNumber(n)) => c.line("customer_number", n, CUSTOMER_NUMBER),
        Some(pb::get_customer_request::Lookup::SourceKey(k)) => c
            .line("source_key.source_system", &k.source_system, 32)
            .line("source_key.source_customer_id", &k.source_customer_id, 64),
        None => &mut c,
    }
    .done()
}

/// ListSuspectPairs.
pub fn list_suspect_pairs(r: &pb::ListSuspectPairsRequest) -> Result<(), FieldViolations> {
    Check::new().page_token(&r.page_token).done()
}

/// ResolveSuspectPair.
pub fn resolve_suspect_pair(r: &pb::ResolveSuspectPairRequest) -> Result<(), FieldViolations> {
    Check::new().line("suspect_pair_id", &r.suspect_pair_id, 20).done()
}

/// SearchCustomers.
pub fn search_customers(r: &pb::SearchCustomersRequest) -> Result<(), FieldViolations> {
    Check::new()
        .line("id_number", &r.id_number, 64)
        .line("mobile_phone", &r.mobile_phone, 32)
        .line("name_prefix", &r.name_prefix, 200)
        .line("name_contains", &r.name_contains, 200)
        .line("home_org_id", &r.home_org_id, ORG_ID)
        .line("rm_id", &r.rm_id, SUBJECT)
        .page_token(&r.page_token)
        .done()
}

/// AssignCustomers.
pub fn assign_customers(r: &pb::AssignCustomersRequest) -> Result<(), FieldViolations> {
    Check::new()
        .list("customer_numbers", &r.customer_numbers, MAX_CUSTOMERS, CUSTOMER_NUMBER)
        .line("home_org_id", &r.home_org_id, ORG_ID)
        .line("primary_rm_id", &r.primary_rm_id, SUBJECT)
        .list("related_rm_ids", &r.related_rm_ids, MAX_RELATED_RMS, SUBJECT)
        .line("reason", &r.reason, REASON)
        .done()
}

/// RecallCustomers.
pub fn recall_customers(r: &pb::RecallCustomersRequest) -> Result<(), FieldViolations> {
    Check::new()
        .list("customer_numbers", &r.customer_numbers, MAX_CUSTOMERS, CUSTOMER_NUMBER)
        .line("reason", &r.reason, REASON)
        .done()
}

/// ListAssignmentHistory.
pub fn list_assignment_history(r: &pb::ListAssignmentHistoryRequest) -> Result<(), FieldViolations> {
    Check::new().line("customer_number", &r.customer_number, CUSTOMER_NUMBER).page_token(&r.page_token).done()
}

/// ListCustomerHistory.
pub fn list_customer_history(r: &pb::ListCustomerHistoryRequest) -> Result<(), FieldViolations> {
    Check::new().line("customer_number", &r.customer_number, CUSTOMER_NUMBER).page_token(&r.page_token).done()
}

/// AddRelationship.
pub fn add_relationship(r: &pb::AddRelationshipRequest) -> Result<(), FieldViolations> {
    Check::new()
        .line("customer_number", &r.customer_number, CUSTOMER_NUMBER)
        .line("related_customer_number", &r.related_customer_number, CUSTOMER_NUMBER)
        .line("role", &r.role, 64)
        .done()
}

/// GetCustomer360.
pub fn get_customer360(r: &pb::GetCustomer360Request) -> Result<(), FieldViolations> {
    Check::new().line("customer_number", &r.customer_number, CUSTOMER_NUMBER).done()
}

/// ListAccessAudit.
pub fn list_access_audit(r: &pb::ListAccessAuditRequest) -> Result<(), FieldViolations> {
    Check::new()
        .line("customer_number", &r.customer_number, CUSTOMER_NUMBER)
        .line("actor", &r.actor, SUBJECT)
        .line("action", &r.action, 64)
        .page_token(&r.page_token)
        .done()
}

/// PutPartyDetail: the text of every kind of detail (lengths as the domain checks
/// them; descriptions may hold several lines).
pub fn put_party_detail(r: &pb::PutPartyDetailRequest) -> Result<(), FieldViolations> {
    let mut c = Check::new();
    c.line("customer_number", &r.customer_number, CUSTOMER_NUMBER);
    let Some(detail) = &r.detail else { return c.done() };
    c.line("detail.detail_id", &detail.detail_id, 64);
    match &detail.detail {
        Some(Detail::Contact(d)) => {
            c.line("detail.contact.value", &d.value, 128).line("detail.contact.purpose", &d.purpose, 32);
        }
        Some(Detail::Address(d)) => {
            c.line("detail.address.country_code", &d.country_code, 3)
                .line("detail.address.province", &d.province, 64)
                .line("detail.address.city", &d.city, 64)
                .line("detail.address.district", &d.district, 64)
                .line("detail.address.line", &d.line, 200)
                .line("detail.address.postal_code", &d.postal_code, 12);
        }
        Some(Detail::FamilyMember(d)) => {
            c.line("detail.family_member.name", &d.name, 100)
                .line("detail.family_member.relation", &d.relation, 32)
                .line("detail.family_member.id_number", &d.id_number, 40)
                .line("detail.family_member.mobile_phone", &d.mobile_phone, 32)
                .line("detail.family_member.occupation", &d.occupation, 64)
                .line("detail.family_member.customer_number", &d.customer_number, CUSTOMER_NUMBER);
        }
        Some(Detail::FamilyAsset(d)) => {
            c.line("detail.family_asset.description", &d.description, 200);
            if let Some(m) = &d.value {
                c.line("detail.family_asset.value.currency_code", &m.currency_code, 3);
            }
        }
        Some(Detail::MajorEvent(d)) => {
            c.line("detail.major_event.kind", &d.kind, 32).lines(
                "detail.major_event.description",
                &d.description,
                1000,
            );
        }
        Some(Detail::KeyPerson(d)) => {
            c.line("detail.key_person.role", &d.role, 32)
                .line("detail.key_person.name", &d.name, 100)
                .line("detail.key_person.customer_number", &d.customer_number, CUSTOMER_NUMBER)
                .line("detail.key_person.mobile_phone", &d.mobile_phone, 32);
        }
        Some(Detail::CorporateProfile(d)) => {
            c.line("detail.corporate_profile.industry", &d.industry, 64)
                .line("detail.corporate_profile.legal_representative", &d.legal_representative, 100)
                .lines("detail.corporate_profile.business_scope", &d.business_scope, 2000)
                .line("detail.corporate_profile.nature", &d.nature, 32);
            if let Some(m) = &d.registered_capital {
                c.line("detail.corporate_profile.registered_capital.currency_code", &m.currency_code, 3);
            }
        }
        None => {}
    }
    c.done()
}

/// RemovePartyDetail.
pub fn remove_party_detail(r: &pb::RemovePartyDetailRequest) -> Result<(), FieldViolations> {
    Check::new().line("customer_number", &r.customer_number, CUSTOMER_NUMBER).line("detail_id", &r.detail_id, 64).done()
}

/// SetExtendedAttributes: keys as the domain checks them, values of at most 1000
/// characters that may hold several lines, at most 100 changes.
pub fn set_extended_attributes(r: &pb::SetExtendedAttributesRequest) -> Result<(), FieldViolations> {
    let mut c = Check::new();
    c.line("customer_number", &r.customer_number, CUSTOMER_NUMBER);
    if r.set.len() + r.remove.len() > 100 {
        c.add("set", "at most 100 changes per call");
        return c.done();
    }
    for (key, value) in &r.set {
        if validate::text_problem(key, 64, Lines::Single).is_some() {
            // Not echoed in the field path: it may be huge or unprintable.
            c.add("set", "keys must be at most 64 characters without control characters");
        } else if crate::domain::details::valid_extended_key(key) {
            c.lines(&format!("set[{key}]"), value, 1000);
        }
        // Other keys are reported by the domain.
    }
    c.list("remove", &r.remove, 100, 64).done()
}

/// One record of an ImportSourceRecords stream, at `index` from 0: a stream holds at
/// most [`MAX_IMPORT_RECORDS`] records (the record's own fields are checked like an
/// upsert's and rejected in its outcome).
pub fn import_record(index: i64) -> Result<(), FieldViolations> {
    let mut v = FieldViolations::new();
    if index >= MAX_IMPORT_RECORDS {
        v.add("record", format!("a stream holds at most {MAX_IMPORT_RECORDS} records: send the rest in another"));
    }
    v.into_result()
}

/// The key an import outcome echoes: the record's key when it is within its limits;
/// none otherwise (the outcome's index still names the record), so that an answer
/// stays far below the message limit whatever keys a stream sends.
pub fn echoed_key(r: &pb::ImportSourceRecordsRequest) -> Option<pb::SourceKey> {
    let key = r.record.as_ref()?.key.as_ref()?;
    let fits = validate::text_problem(&key.source_system, 32, Lines::Single).is_none()
        && validate::text_problem(&key.source_customer_id, 64, Lines::Single).is_none();
    fits.then(|| key.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(r: Result<(), FieldViolations>) -> Vec<String> {
        r.err().map(|v| v.iter().map(|(f, _)| f.to_string()).collect()).unwrap_or_default()
    }

    #[test]
    fn each_overlong_or_control_character_field_is_one_violation() {
        let r = pb::SearchCustomersRequest {
            name_prefix: "王".repeat(201),
            name_contains: "a\0b".into(),
            home_org_id: "HO".into(),
            rm_id: "rm\u{1b}".into(),
            page_token: "x".repeat(257),
            ..Default::default()
        };
        assert_eq!(fields(search_customers(&r)), ["name_prefix", "name_contains", "rm_id", "page_token"]);
        assert_eq!(fields(search_customers(&pb::SearchCustomersRequest::default())), Vec::<String>::new());
    }

    #[test]
    fn repeated_fields_are_bounded_in_count_and_each_entry() {
        let many = vec!["800000000001".to_string(); MAX_CUSTOMERS + 1];
        let r = pb::RecallCustomersRequest { customer_numbers: many, reason: String::new() };
        assert_eq!(fields(recall_customers(&r)), ["customer_numbers"]);
        let r = pb::AssignCustomersRequest {
            customer_numbers: vec!["1".into(), "2\0".into()],
            related_rm_ids: vec!["rm".into(); MAX_RELATED_RMS + 1],
            reason: "two\nlines".into(),
            ..Default::default()
        };
        assert_eq!(fields(assign_customers(&r)), ["customer_numbers[1]", "related_rm_ids", "reason"]);
    }

    #[test]
    fn descriptions_may_hold_several_lines_and_names_one() {
        let detail = |d: Detail| pb::PutPartyDetailRequest {
            customer_number: "800000000001".into(),
            detail: Some(pb::PartyDetail { detail_id: "e1".into(), detail: Some(d), update_time: None }),
        };
        let event = pb::MajorEvent { date: None, kind: "MARRIAGE".into(), description: "line one\nline two".into() };
        assert!(put_party_detail(&detail(Detail::MajorEvent(event))).is_ok());
        let person = pb::KeyPerson { role: "CFO".into(), name: "a\nb".into(), ..Default::default() };
        assert_eq!(fields(put_party_detail(&detail(Detail::KeyPerson(person)))), ["detail.key_person.name"]);
    }

    #[test]
    fn extended_attribute_values_refuse_nul_and_streams_end_at_their_limit() {
        let r = pb::SetExtendedAttributesRequest {
            customer_number: "800000000001".into(),
            set: [("risk".to_string(), "a\0".to_string()), ("Bad-Key".to_string(), "x".to_string())].into(),
            remove: vec![],
        };
        assert_eq!(fields(set_extended_attributes(&r)), ["set[risk]"]);
        let r = pb::SetExtendedAttributesRequest {
            customer_number: "800000000001".into(),
            set: [("k".repeat(100_000), "x".to_string())].into(),
            remove: vec![],
        };
        assert_eq!(fields(set_extended_attributes(&r)), ["set"]);
        assert!(import_record(MAX_IMPORT_RECORDS - 1).is_ok());
        let key = |id: &str| pb::SourceKey { source_system: "CORE".into(), source_customer_id: id.into() };
        let import = |id: &str| pb::ImportSourceRecordsRequest {
            record: Some(pb::SourceRecord { key: Some(key(id)), ..Default::default() }),
        };
        assert_eq!(echoed_key(&import("C-1")), Some(key("C-1")));
        assert_eq!(echoed_key(&import(&"C".repeat(65))), None);
        assert_eq!(fields(import_record(MAX_IMPORT_RECORDS)), ["record"]);
    }
}
