//! The daily batch file: source records as delimited UTF-8 text, loaded in chunks
//! that each commit with their progress, so that an interrupted load resumes after the
//! last committed line. Bad lines are rejected with their line number and reason while
//! the rest loads. The layout is documented in `docs/customer-file-format.md`.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crm_proto::crm::common::v1 as common;
use crm_proto::crm::customer::v1 as pb;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::domain::{Date, Gender, IdType, TrustTable};
use crate::error::{Error, Result};
use crate::pii::PiiCipher;

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

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Progress row of this file.
    pub load_id: i64,
    /// Line after which this run started (0 for a fresh file).
    pub resumed_after_line: i64,
    /// Data lines read in this run.
    pub lines_read: i64,
    /// Records accepted in this run (created, updated or unchanged).
    pub accepted: i64,
    /// Lines rejected in this run: (line number, reason).
    pub rejected: Vec<(i64, String)>,
}

/// The header line of files written by [`to_line`].
pub fn header_line() -> String {
    COLUMNS.join("|")
}

fn escape(field: &str) -> String {
    field.replace('\\', "\\\\").replace('|', "\\|")
}

/// A record as one line in the file layout (all columns, in [`COLUMNS`] order).
pub fn to_line(r: &pb::SourceRecord) -> String {
    let key = r.key.clone().unwrap_or_default();
    let kind = if r.party_kind == pb::PartyKind::Corporate as i32 { "CORPORATE" } else { "PERSONAL" };
    let id_type = pb::IdType::try_from(r.id_type)
        .map(|t| t.as_str_name().trim_start_matches("ID_TYPE_").to_string())
        .unwrap_or_default();
    let gender = match pb::Gender::try_from(r.gender) {
        Ok(pb::Gender::Male) => "M",
        Ok(pb::Gender::Female) => "F",
        Ok(pb::Gender::Unknown) => "U",
        _ => "",
    };
    let birth = r.birth_date.map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)).unwrap_or_default();
    let mut line = [
        escape(&key.source_system),
        escape(&key.source_customer_id),
        r.source_version.to_string(),
        kind.to_string(),
        id_type,
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

/// Splits a line at unescaped `|`; `\|` is a literal pipe and `\\` a backslash.
pub fn split_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            '|' => fields.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    fields.push(current);
    fields
}

/// Column positions from the header line.
fn header(line: &str) -> std::result::Result<Vec<&'static str>, String> {
    let mut columns = Vec::new();
    for name in split_fields(line) {
        let name = name.trim().to_ascii_lowercase();
        let known = COLUMNS.iter().find(|c| **c == name).ok_or_else(|| format!("unknown column `{name}`"))?;
        if columns.contains(known) {
            return Err(format!("column `{name}` appears twice"));
        }
        columns.push(*known);
    }
    for required in REQUIRED {
        if !columns.contains(&required) {
            return Err(format!("required column `{required}` is missing"));
        }
    }
    Ok(columns)
}

/// A raw line's text as the loader reads it: a trailing `\r` and leading byte-order
/// marks dropped; `Ok(None)` for a blank or comment line; `Err` when it is not UTF-8.
fn line_text(raw: &[u8]) -> std::result::Result<Option<&str>, String> {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let line = std::str::from_utf8(raw).map_err(|e| format!("is not valid UTF-8 (byte {})", e.valid_up_to() + 1))?;
    let line = line.trim_start_matches('\u{feff}');
    Ok((!line.trim().is_empty() && !line.starts_with('#')).then_some(line))
}

/// One raw data line (the bytes between two `\n`) after the header gave `columns`, as
/// the loader reads it: `Ok(None)` for a blank or comment line, else the record (still
/// to be validated like any `UpsertSourceRecord`) or the reason the line is rejected.
pub fn parse_raw_line(columns: &[&'static str], raw: &[u8]) -> std::result::Result<Option<pb::SourceRecord>, String> {
    match line_text(raw) {
        Ok(Some(line)) => parse_line(columns, line).map(Some),
        Ok(None) => Ok(None),
        Err(reason) => Err(format!("line {reason}")),
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
                r.party_kind = match value.to_ascii_uppercase().as_str() {
                    "PERSONAL" => pb::PartyKind::Personal as i32,
                    "CORPORATE" => pb::PartyKind::Corporate as i32,
                    _ => return Err(format!("party_kind `{value}` is not PERSONAL or CORPORATE")),
                }
            }
            "id_type" => {
                let t = IdType::from_code(&value).ok_or_else(|| format!("id_type `{value}` is not a known ID type"))?;
                r.id_type = pb_id_type(t) as i32;
            }
            "id_number" => r.id_number = value,
            "name" => r.name = value,
            "gender" if !value.is_empty() => {
                r.gender = match Gender::from_code(&value) {
                    Some(Gender::Male) => pb::Gender::Male,
                    Some(Gender::Female) => pb::Gender::Female,
                    Some(Gender::Unknown) => pb::Gender::Unknown,
                    None => return Err(format!("gender `{value}` is not M, F or U")),
                } as i32
            }
            "birth_date" if !value.is_empty() => {
                let d =
                    Date::parse_iso(&value).ok_or_else(|| format!("birth_date `{value}` is not a YYYY-MM-DD date"))?;
                r.birth_date = Some(common::Date { year: d.year, month: i32::from(d.month), day: i32::from(d.day) });
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

fn pb_id_type(t: IdType) -> pb::IdType {
    match t {
        IdType::ResidentId => pb::IdType::ResidentId,
        IdType::Passport => pb::IdType::Passport,
        IdType::HkMacaoPermit => pb::IdType::HkMacaoPermit,
        IdType::TaiwanPermit => pb::IdType::TaiwanPermit,
        IdType::ForeignPermanentResidentId => pb::IdType::ForeignPermanentResidentId,
        IdType::MilitaryId => pb::IdType::MilitaryId,
        IdType::UnifiedSocialCreditCode => pb::IdType::UnifiedSocialCreditCode,
        IdType::OrganizationCode => pb::IdType::OrganizationCode,
        IdType::BusinessLicense => pb::IdType::BusinessLicense,
        IdType::Other => pb::IdType::Other,
    }
}

fn checksum(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Loads `path`, committing every `chunk` lines together with the progress. A file
/// already (partly) loaded, recognised by its SHA-256, resumes after its last
/// committed line; a finished one loads nothing.
pub async fn load_file(
    pool: &PgPool,
    trust: &TrustTable,
    pii: &PiiCipher,
    path: &Path,
    chunk: usize,
    actor: Option<&str>,
) -> Result<LoadReport> {
    let io = |e: std::io::Error| Error::FailedPrecondition(format!("cannot read {}: {e}", path.display()));
    let sha = checksum(path).map_err(io)?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let (load_id, done): (i64, i64) = sqlx::query_as(
        "INSERT INTO file_load (file_name, file_sha256) VALUES ($1, $2)
         ON CONFLICT (file_sha256) DO UPDATE SET file_name = file_load.file_name
         RETURNING load_id, lines_done",
    )
    .bind(&name)
    .bind(&sha)
    .fetch_one(pool)
    .await?;
    let mut report = LoadReport { load_id, resumed_after_line: done, ..Default::default() };
    let reader = BufReader::new(std::fs::File::open(path).map_err(io)?);
    let mut columns: Option<Vec<&'static str>> = None;
    let today = crate::grpc::today();
    // A line that cannot be read is carried as its rejection reason.
    let mut batch: Vec<(i64, std::result::Result<pb::SourceRecord, String>)> = Vec::with_capacity(chunk);
    let mut last_line = 0i64;
    // Two stages: while one chunk is written to the database, the next is parsed,
    // validated and encrypted. Chunks still commit one after another, in file order.
    let mut writing: Option<tokio::task::JoinHandle<Result<Chunk>>> = None;
    let ctx = ChunkContext {
        pool: pool.clone(),
        trust: trust.clone(),
        pii: pii.clone(),
        load_id,
        actor: actor.map(str::to_string),
    };
    for (i, raw) in reader.split(b'\n').enumerate() {
        let line_no = i as i64 + 1;
        let raw = raw.map_err(io)?;
        last_line = line_no;
        let Some(cols) = &columns else {
            let line = line_text(&raw).map_err(|e| Error::FailedPrecondition(format!("line {line_no}: {e}")))?;
            if let Some(line) = line {
                columns = Some(header(line).map_err(|e| Error::FailedPrecondition(format!("line {line_no}: {e}")))?);
            }
            continue;
        };
        if line_no <= done {
            continue;
        }
        let parsed = match parse_raw_line(cols, &raw) {
            Ok(None) => continue,
            Ok(Some(record)) => Ok(record),
            Err(reason) => Err(reason),
        };
        batch.push((line_no, parsed));
        if batch.len() >= chunk {
            let prepared = prepare_chunk(std::mem::replace(&mut batch, Vec::with_capacity(chunk)), today, pii, line_no);
            if let Some(previous) = writing.take() {
                report.add(join(previous).await?);
            }
            writing = Some(tokio::spawn(ctx.clone().write(prepared)));
        }
    }
    if columns.is_none() {
        return Err(Error::FailedPrecondition("the file has no header line".into()));
    }
    if let Some(previous) = writing.take() {
        report.add(join(previous).await?);
    }
    let prepared = prepare_chunk(batch, today, pii, last_line.max(done));
    report.add(ctx.write(prepared).await?);
    sqlx::query("UPDATE file_load SET status = 'DONE', finished_at = now() WHERE load_id = $1")
        .bind(load_id)
        .execute(pool)
        .await?;
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

impl LoadReport {
    fn add(&mut self, chunk: Chunk) {
        self.lines_read += chunk.lines;
        self.accepted += chunk.accepted.len() as i64;
        self.rejected.extend(chunk.rejected);
    }
}

fn prepare_chunk(
    lines: Vec<(i64, std::result::Result<pb::SourceRecord, String>)>,
    today: Date,
    pii: &PiiCipher,
    done_through: i64,
) -> Chunk {
    let (mut accepted, mut rejected) = (Vec::new(), Vec::new());
    let count = lines.len() as i64;
    for (line_no, line) in lines {
        let outcome = line.and_then(|r| {
            crate::grpc::validate_record(Some(r), today).map_err(|v| {
                v.iter()
                    .map(|(f, d)| format!("{}: {d}", f.trim_start_matches("record.")))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        });
        match outcome {
            Ok(validated) => accepted.push(crate::store::PreparedRecord::new(pii, validated)),
            Err(reason) => rejected.push((line_no, reason)),
        }
    }
    Chunk { lines: count, accepted, rejected, done_through }
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
        if !chunk.rejected.is_empty() {
            let (lines, reasons): (Vec<i64>, Vec<&str>) = chunk.rejected.iter().map(|(l, r)| (*l, r.as_str())).unzip();
            sqlx::query(
                "INSERT INTO file_load_rejection (load_id, line_no, reason)
                 SELECT $1, * FROM unnest($2::bigint[], $3::text[]) ON CONFLICT DO NOTHING",
            )
            .bind(self.load_id)
            .bind(&lines)
            .bind(&reasons)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE file_load SET lines_done = GREATEST(lines_done, $2), accepted = accepted + $3, rejected = rejected + $4
             WHERE load_id = $1",
        )
        .bind(self.load_id)
        .bind(chunk.done_through)
        .bind(chunk.accepted.len() as i64)
        .bind(chunk.rejected.len() as i64)
        .execute(&mut *tx)
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
    fn a_first_value_that_looks_like_a_comment_or_a_byte_order_mark_is_written_escaped() {
        let cols = header(&header_line()).expect("header");
        let mut r = crate::sample::generate(1, 1).remove(0);
        for first in ["#X", "\u{feff}X"] {
            r.key.get_or_insert_with(Default::default).source_system = first.into();
            let line = to_line(&r);
            assert!(line.starts_with('\\'), "{line}");
            assert_eq!(parse_raw_line(&cols, line.as_bytes()), Ok(Some(r.clone())), "{line}");
        }
    }

    #[test]
    fn fields_split_at_unescaped_pipes() {
        assert_eq!(split_fields("a|b||c"), ["a", "b", "", "c"]);
        assert_eq!(split_fields(r"a\|b|c\\d"), [r"a|b", r"c\d"]);
        assert_eq!(split_fields(""), [""]);
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
            assert_eq!(parse_raw_line(&cols, raw.as_bytes()), Ok(Some(record.clone())), "{raw:?}");
        }
        for blank in ["", "\r", "   ", "# a comment", "\u{feff}# a comment"] {
            assert_eq!(parse_raw_line(&cols, blank.as_bytes()), Ok(None), "{blank:?}");
        }
        assert_eq!(parse_raw_line(&cols, b"CORE|\xff"), Err("line is not valid UTF-8 (byte 6)".to_string()));
        assert_eq!(parse_raw_line(&cols, b"CORE|C-1"), Err("expected 7 fields, found 2".to_string()));
    }
}
