//! The daily file: source records as delimited text in UTF-8 or GB18030, loaded
//! in chunks that each commit with their progress, so that an interrupted load resumes
//! after the last committed line. Bad lines (a line that does not decode in the file's
//! encoding among them) are rejected with their line number and reason while the rest
//! loads. The layout is documented in `docs/customer-file-format.md`; reading lines,
//! encodings and the checkpoint are the kit's ([`crm_platform::file_load`]).

use std::path::Path;

use crm_platform::file_load::{DailyFile, escape, read_line};
use crm_proto::crm::customer::v1 as pb;
use sqlx::PgPool;

use crate::convert::from_wire;
use crate::domain::{Date, Gender, IdType, PartyKind, TrustTable, ValidatedRecord};
use crate::error::{Error, Result};
use crate::pii::PiiCipher;

pub use crm_platform::file_load::{FileEncoding, LoadReport, split_fields};

/// Columns a file may have; `source_system`, `source_customer_id`, `source_version`,
/// `party_kind`, `id_type`, `id_number` and `name` are required.
pub const COLUMNS: [&str; 14] = [
    "source_system",
    "source_customer_id",
    "source_version",
    "party_kind",
    "id_type",
    "id_number",
    "name",
    "gender",
    "birth_date",
    "nationality",
    "mobile_phone",
    "email",
    "address",
    "occupation",
];
const REQUIRED: [&str; 7] =
    ["source_system", "source_customer_id", "source_version", "party_kind", "id_type", "id_number", "name"];

/// The header line of files written by [`to_line`].
pub fn header_line() -> String {
    COLUMNS.join("|")
}

/// A record as one line in the file layout (all columns, in [`COLUMNS`] order).
pub fn to_line(r: &pb::SourceRecord) -> String {
    let key = r.key.clone().unwrap_or_default();
    let kind = from_wire::<pb::PartyKind, PartyKind>(r.party_kind).unwrap_or(PartyKind::Personal).code();
    let id_type = from_wire::<pb::IdType, IdType>(r.id_type).map(IdType::code).unwrap_or_default();
    let gender = from_wire::<pb::Gender, Gender>(r.gender).map(Gender::code).unwrap_or_default();
    let birth = r.birth_date.map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)).unwrap_or_default();
    let mut line = [
        escape(&key.source_system),
        escape(&key.source_customer_id),
        r.source_version.to_string(),
        kind.to_string(),
        id_type.to_string(),
        escape(&r.id_number),
        escape(&r.name),
        gender.to_string(),
        birth,
        escape(&r.nationality),
        escape(&r.mobile_phone),
        escape(&r.email),
        escape(&r.address),
        escape(&r.occupation),
    ]
    .join("|");
    // A line starting `#` or with a byte-order mark would read as a comment or lose it.
    if line.starts_with(['#', '\u{feff}']) {
        line.insert(0, '\\');
    }
    line
}

/// Column positions from the header line.
fn header(line: &str) -> std::result::Result<Vec<&'static str>, String> {
    crm_platform::file_load::columns(line, &COLUMNS, &REQUIRED)
}

/// One raw data line (the bytes between two `\n`) after the header gave `columns`, as
/// the loader reads it in `encoding`: `Ok(None)` for a blank or comment line, else the
/// record (still to be validated like any `UpsertSourceRecord`) or the reason the line
/// is rejected.
pub fn parse_raw_line(
    columns: &[&'static str],
    raw: &[u8],
    encoding: FileEncoding,
) -> std::result::Result<Option<pb::SourceRecord>, String> {
    match read_line(raw, encoding)? {
        Some(line) => parse_line(columns, &line).map(Some),
        None => Ok(None),
    }
}

/// One data line as a record, or why it cannot be read.
fn parse_line(columns: &[&'static str], line: &str) -> std::result::Result<pb::SourceRecord, String> {
    let fields = split_fields(line);
    if fields.len() != columns.len() {
        return Err(format!("expected {} fields, found {}", columns.len(), fields.len()));
    }
    let mut r = pb::SourceRecord { key: Some(pb::SourceKey::default()), ..Default::default() };
    for (column, value) in columns.iter().zip(fields) {
        let value = value.trim().to_string();
        let key = r.key.get_or_insert_with(Default::default);
        match *column {
            "source_system" => key.source_system = value,
            "source_customer_id" => key.source_customer_id = value,
            "source_version" => {
                r.source_version = value.parse().map_err(|_| format!("source_version `{value}` is not a number"))?
            }
            "party_kind" => {
                let kind = PartyKind::from_code(&value)
                    .ok_or_else(|| format!("party_kind `{value}` is not PERSONAL or CORPORATE"))?;
                r.party_kind = pb::PartyKind::from(kind).into();
            }
            "id_type" => {
                let t = IdType::from_code(&value).ok_or_else(|| format!("id_type `{value}` is not a known ID type"))?;
                r.id_type = pb::IdType::from(t).into();
            }
            "id_number" => r.id_number = value,
            "name" => r.name = value,
            "gender" if !value.is_empty() => {
                let g = Gender::from_code(&value).ok_or_else(|| format!("gender `{value}` is not M, F or U"))?;
                r.gender = pb::Gender::from(g).into();
            }
            "birth_date" if !value.is_empty() => {
                let d =
                    Date::parse_iso(&value).ok_or_else(|| format!("birth_date `{value}` is not a YYYY-MM-DD date"))?;
                r.birth_date = Some(d.into());
            }
            "nationality" => r.nationality = value,
            "mobile_phone" => r.mobile_phone = value,
            "email" => r.email = value,
            "address" => r.address = value,
            "occupation" => r.occupation = value,
            _ => {}
        }
    }
    Ok(r)
}

/// Loads `path`, committing every `chunk` lines together with the progress. A file
/// already (partly) loaded, recognised by its SHA-256, resumes after its last
/// committed line; a finished one loads nothing. The file is UTF-8 unless its first
/// line names its encoding ([`load_file_encoded`]).
pub async fn load_file(
    pool: &PgPool,
    trust: &TrustTable,
    pii: &PiiCipher,
    path: &Path,
    chunk: usize,
    actor: Option<&str>,
) -> Result<LoadReport> {
    load_file_encoded(pool, trust, pii, path, chunk, actor, None).await
}

/// [`load_file`] of a file in `encoding` (the load command's `--encoding`); `None`
/// reads the encoding the file's first line names (`# encoding: gb18030`), UTF-8 when
/// it names none. A file whose first line names another encoding than `encoding` is
/// refused before anything loads.
#[allow(clippy::too_many_arguments)]
pub async fn load_file_encoded(
    pool: &PgPool,
    trust: &TrustTable,
    pii: &PiiCipher,
    path: &Path,
    chunk: usize,
    actor: Option<&str>,
    encoding: Option<FileEncoding>,
) -> Result<LoadReport> {
    let (mut file, columns) = DailyFile::open(pool, path, encoding, header).await?;
    let mut report = file.report();
    // Two stages: while one chunk is written to the database, the next is parsed,
    // validated and encrypted. Chunks still commit one after another, in file order.
    let mut writing: Option<tokio::task::JoinHandle<Result<Chunk>>> = None;
    let ctx = ChunkContext {
        pool: pool.clone(),
        trust: trust.clone(),
        pii: pii.clone(),
        load_id: file.load_id(),
        actor: actor.map(str::to_string),
    };
    while let Some(lines) = file.next_chunk(chunk)? {
        let prepared = prepare_chunk(lines, &columns, pii);
        if let Some(previous) = writing.take() {
            tally(&mut report, join(previous).await?);
        }
        writing = Some(tokio::spawn(ctx.clone().write(prepared)));
    }
    if let Some(previous) = writing.take() {
        tally(&mut report, join(previous).await?);
    }
    crm_platform::file_load::finish(pool, file.load_id()).await?;
    Ok(report)
}

async fn join(task: tokio::task::JoinHandle<Result<Chunk>>) -> Result<Chunk> {
    task.await.map_err(|e| Error::Corrupt(format!("file load chunk task failed: {e}")))?
}

/// A chunk of lines, parsed, validated and encrypted.
struct Chunk {
    lines: i64,
    accepted: Vec<crate::store::PreparedRecord>,
    rejected: Vec<(i64, String)>,
    /// The last line this chunk covers: progress after it commits.
    done_through: i64,
}

/// Counts a written chunk in the report.
fn tally(report: &mut LoadReport, chunk: Chunk) {
    report.add(chunk.lines, chunk.accepted.len() as i64, chunk.rejected);
}

fn prepare_chunk(chunk: crm_platform::file_load::Chunk, columns: &[&'static str], pii: &PiiCipher) -> Chunk {
    let (mut accepted, mut rejected) = (Vec::new(), Vec::new());
    let count = chunk.lines.len() as i64;
    for (line_no, text) in chunk.lines {
        let outcome = text.and_then(|line| parse_line(columns, &line)).and_then(|r| {
            ValidatedRecord::try_from(r)
                .map_err(|v| v.iter().map(|(f, d)| format!("{f}: {d}")).collect::<Vec<_>>().join("; "))
        });
        match outcome {
            Ok(validated) => accepted.push(crate::store::PreparedRecord::new(pii, validated)),
            Err(reason) => rejected.push((line_no, reason)),
        }
    }
    Chunk { lines: count, accepted, rejected, done_through: chunk.done_through }
}

/// What writing a chunk needs, owned so that it can run beside the parsing.
#[derive(Clone)]
struct ChunkContext {
    pool: PgPool,
    trust: TrustTable,
    pii: PiiCipher,
    load_id: i64,
    actor: Option<String>,
}

impl ChunkContext {
    /// Applies a chunk, then records its progress and rejected lines. The records may
    /// commit in several transactions ([`crate::store::upsert_batch`]); progress
    /// commits after all of them, so a load stopped in between re-applies the chunk on
    /// resume, where the records already stored come back unchanged.
    async fn write(self, chunk: Chunk) -> Result<Chunk> {
        if !chunk.accepted.is_empty() {
            crate::store::upsert_batch(&self.pool, &self.trust, &self.pii, &chunk.accepted, self.actor.as_deref(), &[])
                .await?;
        }
        let mut tx = self.pool.begin().await?;
        let accepted = chunk.accepted.len() as i64;
        crm_platform::file_load::commit_chunk(&mut tx, self.load_id, chunk.done_through, accepted, &chunk.rejected)
            .await?;
        tx.commit().await?;
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_lines_read_back_as_the_same_record() {
        let cols = header(&header_line()).expect("header");
        for r in crate::sample::generate(3, 50) {
            let mut r = r;
            r.address = "1|2 \\ road".into();
            assert_eq!(parse_line(&cols, &to_line(&r)).expect("parses"), r);
        }
    }

    #[test]
    fn headers_must_name_known_columns_once_with_the_required_ones() {
        assert!(header("source_system|source_customer_id|source_version|party_kind|id_type|id_number|name").is_ok());
        assert!(
            header("source_system|source_customer_id|source_version|party_kind|id_type|id_number")
                .unwrap_err()
                .contains("name")
        );
        assert!(
            header("source_system|source_customer_id|source_version|party_kind|id_type|id_number|name|shoe_size")
                .unwrap_err()
                .contains("shoe_size")
        );
        assert!(header("name|name").unwrap_err().contains("twice"));
    }

    #[test]
    fn lines_become_records_or_say_what_is_wrong() {
        let cols = header(
            "source_system|source_customer_id|source_version|party_kind|id_type|id_number|name|birth_date|gender",
        )
        .expect("header");
        let r =
            parse_line(&cols, "CORE|C-1|3|personal|resident_id|11010519491231002X|张伟|1949-12-31|F").expect("parses");
        assert_eq!(r.source_version, 3);
        assert_eq!(r.id_type, pb::IdType::ResidentId as i32);
        assert_eq!(r.birth_date.map(|d| (d.year, d.month, d.day)), Some((1949, 12, 31)));
        for (line, reason) in [
            ("CORE|C-1|x|PERSONAL|RESIDENT_ID|1|n||", "source_version"),
            ("CORE|C-1|1|ROBOT|RESIDENT_ID|1|n||", "party_kind"),
            ("CORE|C-1|1|PERSONAL|LIBRARY_CARD|1|n||", "id_type"),
            ("CORE|C-1|1|PERSONAL|RESIDENT_ID|1|n|31/12/1949|", "birth_date"),
            ("CORE|C-1|1|PERSONAL|RESIDENT_ID|1|n||X", "gender"),
            ("CORE|C-1|1", "expected 9 fields"),
        ] {
            assert!(parse_line(&cols, line).unwrap_err().contains(reason), "{line}");
        }
    }

    #[test]
    fn raw_lines_are_read_as_the_loader_reads_them() {
        let cols = header("source_system|source_customer_id|source_version|party_kind|id_type|id_number|name")
            .expect("header");
        let line = "CORE|C-1|3|PERSONAL|RESIDENT_ID|11010519491231002X|张伟";
        let record = parse_line(&cols, line).expect("parses");
        for raw in [line.to_string(), format!("{line}\r"), format!("\u{feff}{line}")] {
            assert_eq!(parse_raw_line(&cols, raw.as_bytes(), FileEncoding::Utf8), Ok(Some(record.clone())), "{raw:?}");
        }
        for blank in ["", "\r", "   ", "# a comment", "\u{feff}# a comment"] {
            assert_eq!(parse_raw_line(&cols, blank.as_bytes(), FileEncoding::Utf8), Ok(None), "{blank:?}");
        }
        assert_eq!(
            parse_raw_line(&cols, b"CORE|\xff", FileEncoding::Utf8),
            Err("line is not valid UTF-8 (byte 6)".to_string())
        );
        assert_eq!(
            parse_raw_line(&cols, b"CORE|C-1", FileEncoding::Utf8),
            Err("expected 7 fields, found 2".to_string())
        );
    }
}
