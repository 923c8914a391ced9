//! A source record as `UpsertSourceRecord` and the import stream receive it, through
//! the same conversion and validation (`grpc::validate_record`): accepted records keep
//! every promise of `crm_fuzz::check_accepted`, refused ones name their fields, and
//! the outcome does not depend on anything but the record.
//!
//! Input: up to 14 fields separated by 0xFF bytes (never part of UTF-8), in this order:
//! source_system, source_customer_id, source_version, party_kind, id_type, id_number,
//! name, gender, birth_date (`year-month-day`, any integers), nationality,
//! mobile_phone, email, address, occupation. Numbers and enum values are decimal text;
//! other bytes in them make them 0. Missing fields are empty.
#![no_main]

use crm_fuzz::{TODAY, check_accepted, check_refused};
use crm_proto::crm::common::v1 as common;
use crm_proto::crm::customer::v1 as pb;
use customer_profile::grpc::validate_record;
use libfuzzer_sys::fuzz_target;

fn number<T: std::str::FromStr + Default>(field: &str) -> T {
    field.trim().parse().unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let fields: Vec<String> = data.split(|b| *b == 0xFF).map(|f| String::from_utf8_lossy(f).into_owned()).collect();
    let field = |i: usize| fields.get(i).cloned().unwrap_or_default();
    let birth_date = {
        let text = field(8);
        let mut parts = text.splitn(3, '-');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(y), Some(m), Some(d)) => Some(common::Date { year: number(y), month: number(m), day: number(d) }),
            _ => None,
        }
    };
    let record = pb::SourceRecord {
        key: Some(pb::SourceKey { source_system: field(0), source_customer_id: field(1) }),
        source_version: number(&field(2)),
        party_kind: number(&field(3)),
        id_type: number(&field(4)),
        id_number: field(5),
        name: field(6),
        gender: number(&field(7)),
        birth_date,
        nationality: field(9),
        mobile_phone: field(10),
        email: field(11),
        address: field(12),
        occupation: field(13),
    };
    let first = validate_record(Some(record.clone()), TODAY);
    match &first {
        Ok(validated) => check_accepted(validated),
        Err(violations) => check_refused(violations),
    }
    let second = validate_record(Some(record), TODAY);
    match (first, second) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert!(a.iter().eq(b.iter()), "violations differ between two runs"),
        _ => panic!("the same record was accepted once and refused once"),
    }
});
