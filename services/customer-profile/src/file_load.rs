//! The daily file: source records as delimited text in UTF-8 or GB18030, loaded
//! in chunks that each commit with their progress, so that an interrupted load resumes
//! after the last committed line. Bad lines (a line that does not decode in the file's
//! encoding among them) are rejected with their line number and reason while the rest
//! loads. The layout is documented in `docs/customer-file-format.md`.
//!
//! Longer than 600 lines with its unit tests (about 117 lines), which stay beside the
//! code they pin; the code itself is under 610.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crm_proto::crm::customer::v1 as pb;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::convert::from_wire;
use crate::domain::{Date, Gender, IdType, PartyKind, TrustTable, ValidatedRecord};
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

/// The character encoding of a file: UTF-8 unless the load command
/// (`--encoding gb18030`) or the file's first line (`# encoding: gb18030`) names
/// another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FileEncoding {
    /// UTF-8 (a byte-order mark is ignored).
    #[default]
    Utf8,
    /// GB 18030, the Chinese national standard that many core-banking systems export;
    /// it encodes every Unicode character.
    Gb18030,
}

/// The GB18030 encoding of U+FEFF, a byte-order mark some exporters write.
const GB18030_BOM: [u8; 4] = [0x84, 0x31, 0x95, 0x33];

impl FileEncoding {
    /// The encoding an operator names: `utf-8` / `utf8` or `gb18030`, in any case.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(Self::Utf8),
            "gb18030" | "gb-18030" => Some(Self::Gb18030),
            _ => None,
        }
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "UTF-8",
            Self::Gb18030 => "GB18030",
        }
    }

    /// One line's bytes as text, or why they are not text in this encoding (naming
    /// the first bad byte, from 1).
    fn decode(self, raw: Vec<u8>) -> std::result::Result<String, String> {
        match self {
            Self::Utf8 => String::from_utf8(raw)
                .map_err(|e| format!("is not valid UTF-8 (byte {})", e.utf8_error().valid_up_to() + 1)),
            Self::Gb18030 => {
                let mut decoder = encoding_rs::GB18030.new_decoder_without_bom_handling();
                let capacity = decoder.max_utf8_buffer_length_without_replacement(raw.len()).unwrap_or(0);
                let mut text = String::with_capacity(capacity);
                let (result, read) = decoder.decode_to_string_without_replacement(&raw, &mut text, true);
                match result {
                    encoding_rs::DecoderResult::InputEmpty => Ok(text),
                    encoding_rs::DecoderResult::Malformed(bad, after) => Err(format!(
                        "is not valid GB18030 (byte {})",
                        read.saturating_sub(usize::from(bad) + usize::from(after)) + 1
                    )),
                    encoding_rs::DecoderResult::OutputFull => Err("is too long to decode".into()),
                }
            }
        }
    }
}

/// The encoding the first line of a file names (`# encoding: gb18030`), if it names
/// one; an error for a name that is not an encoding.
fn declared_encoding(first_line: &[u8]) -> std::result::Result<Option<FileEncoding>, String> {
    let line = first_line.strip_prefix(&GB18030_BOM[..]).unwrap_or(first_line);
    let line = String::from_utf8_lossy(line);
    let line = line.trim_start_matches('\u{feff}').trim();
    let Some(comment) = line.strip_prefix('#') else { return Ok(None) };
    let comment = comment.trim();
    let Some(name) = comment.get(..9).filter(|p| p.eq_ignore_ascii_case("encoding:")).map(|_| &comment[9..]) else {
        return Ok(None);
    };
    FileEncoding::from_name(name).map(Some).ok_or_else(|| format!("encoding `{}` is not UTF-8 or GB18030", name.trim()))
}

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

/// A decoded line's text as the loader reads it: leading byte-order marks dropped;
/// `None` for a blank or comment line.
fn line_text(line: &str) -> Option<&str> {
    let line = line.trim_start_matches('\u{feff}');
    (!line.trim().is_empty() && !line.starts_with('#')).then_some(line)
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
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let line = encoding.decode(raw.to_vec()).map_err(|reason| format!("line {reason}"))?;
    match line_text(&line) {
        Some(line) => parse_line(columns, line).map(Some),
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
    let mut encoding_in_use = encoding.unwrap_or_default();
    // A line that does not decode is carried as its rejection reason.
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
        let mut raw = raw.map_err(io)?;
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
        if line_no == 1 {
            let declared = declared_encoding(&raw).map_err(|e| Error::FailedPrecondition(format!("line 1: {e}")))?;
            match (encoding, declared) {
                (Some(asked), Some(named)) if asked != named => {
                    return Err(Error::FailedPrecondition(format!(
                        "line 1: the file says it is {}, the command says {}",
                        named.name(),
                        asked.name()
                    )));
                }
                (_, Some(named)) => encoding_in_use = named,
                (_, None) => {}
            }
            if encoding_in_use == FileEncoding::Gb18030 && raw.starts_with(&GB18030_BOM) {
                raw.drain(..GB18030_BOM.len());
            }
        }
        let Some(cols) = &columns else {
            // The header: in the file's encoding, like every line.
            let line = encoding_in_use.decode(raw).map_err(|reason| {
                Error::FailedPrecondition(format!(
                    "line {line_no}: {reason}; a file in another encoding names it on its first line \
                     (`# encoding: gb18030`) or in the command (`--encoding gb18030`)"
                ))
            })?;
            if let Some(line) = line_text(&line) {
                columns = Some(header(line).map_err(|e| Error::FailedPrecondition(format!("line {line_no}: {e}")))?);
            }
            last_line = line_no;
            continue;
        };
        last_line = line_no;
        if line_no <= done {
            continue;
        }
        let parsed = match parse_raw_line(cols, &raw, encoding_in_use) {
            Ok(None) => continue,
            Ok(Some(record)) => Ok(record),
            Err(reason) => Err(reason),
        };
        batch.push((line_no, parsed));
        if batch.len() >= chunk {
            let prepared = prepare_chunk(std::mem::replace(&mut batch, Vec::with_capacity(chunk)), pii, line_no);
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
    let prepared = prepare_chunk(batch, pii, last_line.max(done));
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
    pii: &PiiCipher,
    done_through: i64,
) -> Chunk {
    let (mut accepted, mut rejected) = (Vec::new(), Vec::new());
    let count = lines.len() as i64;
    for (line_no, parsed) in lines {
        let outcome = parsed.and_then(|r| {
            ValidatedRecord::try_from(r)
                .map_err(|v| v.iter().map(|(f, d)| format!("{f}: {d}")).collect::<Vec<_>>().join("; "))
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
    fn encodings_are_named_on_the_first_line_or_not_at_all() {
        type Expected = std::result::Result<Option<FileEncoding>, &'static str>;
        let cases: &[(&[u8], Expected)] = &[
            (b"# encoding: gb18030", Ok(Some(FileEncoding::Gb18030))),
            (b"#Encoding:GB18030  ", Ok(Some(FileEncoding::Gb18030))),
            (b"\xef\xbb\xbf# encoding: utf-8", Ok(Some(FileEncoding::Utf8))),
            (b"\x84\x31\x95\x33# encoding: gb18030", Ok(Some(FileEncoding::Gb18030))),
            (b"# daily file from CORE", Ok(None)),
            (b"source_system|name", Ok(None)),
            (b"# encoding: latin-1", Err("latin-1")),
        ];
        for (line, expected) in cases {
            let got = declared_encoding(line);
            match expected {
                Ok(e) => assert_eq!(got.as_ref().ok(), Some(e), "{line:?}"),
                Err(name) => assert!(got.as_ref().is_err_and(|m| m.contains(name)), "{line:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn gb18030_lines_decode_and_a_bad_sequence_names_its_byte() {
        let (encoded, _, _) = encoding_rs::GB18030.encode("CORE|张伟|𠀀");
        assert_eq!(FileEncoding::Gb18030.decode(encoded.to_vec()).as_deref(), Ok("CORE|张伟|𠀀"));
        // 0xFF starts nothing; 0x81 starts a two- or four-byte sequence that a space
        // cannot continue (though `|`, 0x7C, can: lines are decoded before they split).
        assert_eq!(FileEncoding::Gb18030.decode(b"CORE|\xff|x".to_vec()), Err("is not valid GB18030 (byte 6)".into()));
        let bad = b"CORE|\x81 x".to_vec();
        assert_eq!(FileEncoding::Gb18030.decode(bad), Err("is not valid GB18030 (byte 6)".into()));
        assert_eq!(FileEncoding::Utf8.decode(b"ab\xffc".to_vec()), Err("is not valid UTF-8 (byte 3)".into()));
        assert_eq!(FileEncoding::from_name("GB18030"), Some(FileEncoding::Gb18030));
        assert_eq!(FileEncoding::from_name("big5"), None);
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
