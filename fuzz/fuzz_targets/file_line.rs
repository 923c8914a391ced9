//! The daily file, line by line, through the loader's own reading
//! (`file_load::parse_raw_line`) and then the validation every record gets.
//!
//! Input: a small file. Its first line is the header (column names separated by `|`,
//! as in docs/customer-file-format.md; a header the loader would refuse ends the run);
//! every further `\n`-separated line is a data line, raw bytes as read from disk.
//!
//! Properties: a data line that parses was UTF-8 with as many fields as columns, and
//! its enum values are ones the proto knows; the record the loader would write back
//! with `file_load::to_line` reads as the same record; a line that is then accepted
//! holds only values within the documented limits (`crm_fuzz::check_accepted`).
#![no_main]

use crm_fuzz::{TODAY, check_accepted, check_refused};
use crm_proto::crm::customer::v1 as pb;
use customer_profile::file_load::{COLUMNS, FileEncoding, parse_raw_line, split_fields, to_line};
use customer_profile::grpc::validate_record;
use libfuzzer_sys::fuzz_target;

const REQUIRED: usize = 7; // the first seven of COLUMNS

/// The columns a header names, if the loader would accept it.
fn columns(header: &str) -> Option<Vec<&'static str>> {
    let mut columns = Vec::new();
    for name in split_fields(header.trim_start_matches('\u{feff}')) {
        let name = name.trim().to_ascii_lowercase();
        let known = *COLUMNS.iter().find(|c| **c == name)?;
        if columns.contains(&known) {
            return None;
        }
        columns.push(known);
    }
    COLUMNS[..REQUIRED].iter().all(|c| columns.contains(c)).then_some(columns)
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|b| *b == b'\n');
    let Some(header) = lines.next() else { return };
    let Some(cols) = std::str::from_utf8(header).ok().and_then(columns) else { return };
    for raw in lines {
        let parsed = parse_raw_line(&cols, raw, FileEncoding::Utf8);
        assert_eq!(parse_raw_line(&cols, raw, FileEncoding::Utf8), parsed, "the same line read twice differs");
        let record = match parsed {
            Ok(Some(record)) => record,
            Ok(None) => continue,
            Err(reason) => {
                assert!(!reason.is_empty());
                let text = raw.strip_suffix(b"\r").unwrap_or(raw);
                assert_eq!(
                    std::str::from_utf8(text).is_err(),
                    reason.starts_with("line is not valid UTF-8"),
                    "{reason}"
                );
                continue;
            }
        };
        let text = std::str::from_utf8(raw.strip_suffix(b"\r").unwrap_or(raw)).expect("a parsed line is UTF-8");
        assert_eq!(split_fields(text.trim_start_matches('\u{feff}')).len(), cols.len());
        assert!(record.key.is_some());
        assert!(pb::PartyKind::try_from(record.party_kind).is_ok_and(|k| k != pb::PartyKind::Unspecified));
        assert!(pb::IdType::try_from(record.id_type).is_ok_and(|t| t != pb::IdType::Unspecified));
        assert!(pb::Gender::try_from(record.gender).is_ok());

        // What the loader would write for this record reads back as the same record.
        let all: Vec<&'static str> = COLUMNS.to_vec();
        let written = to_line(&record);
        assert_eq!(parse_raw_line(&all, written.as_bytes(), FileEncoding::Utf8), Ok(Some(record.clone())), "written as {written:?}");

        match validate_record(Some(record), TODAY) {
            Ok(validated) => check_accepted(&validated),
            Err(violations) => check_refused(&violations),
        }
    }
});
