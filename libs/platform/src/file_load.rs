//! The daily file, as every service that takes one loads it: delimited text in UTF-8 or
//! GB18030, read line by line with its line numbers, in chunks that each commit with a
//! checkpoint, so that a killed load resumes after the last committed line and loads
//! nothing twice; bad lines are rejected with their line number and reason while the
//! rest loads. What a line means (its columns, its checks, where it is stored) is the
//! service's; this module owns everything around it.
//!
//! # Contract
//! - **Encoding**: UTF-8 (a byte-order mark is ignored) unless the caller names another
//!   ([`FileEncoding`], the command's `--encoding`) or the file's first line does
//!   (`# encoding: gb18030`). The two must agree; a first line naming something else,
//!   or lines up to the header that do not decode, refuse the file before anything
//!   loads ([`FileError::Refused`], saying how to name the encoding).
//! - **Lines**: split at `\n`, a trailing `\r` dropped, numbered from 1 as an editor
//!   numbers them. Blank lines, lines starting `#` (after any byte-order mark) are
//!   skipped. The first other line is the header, which the service reads
//!   ([`columns`] reads the usual one: column names in any order). A data line that
//!   does not decode in the file's encoding is handed over as its rejection reason
//!   (naming the first bad byte), never as text.
//! - **Fields**: separated by `|`; `\|` is a literal pipe and `\\` a backslash; a
//!   backslash before any other character stands for that character ([`split_fields`],
//!   [`escape`]).
//! - **Checkpoint**: a file is known by the SHA-256 of its bytes. [`DailyFile::open`]
//!   starts or resumes its `file_load` row; [`DailyFile::next_chunk`] hands over the
//!   data lines after the last committed one, `chunk` at a time; the service stores a
//!   chunk and calls [`commit_chunk`] **in the same transaction**, so the chunk and its
//!   progress commit together (or the service makes storing a chunk again harmless);
//!   [`finish`] marks the file done. A finished file loads nothing more; a file with
//!   one changed byte is another file.
//! - **Rejections**: kept by line in `file_load_rejection` and returned in the
//!   [`LoadReport`] of the run.
//!
//! The service's migrations create the two tables:
//!
//! ```sql
//! CREATE TABLE file_load (
//!     load_id     BIGSERIAL   PRIMARY KEY,
//!     file_name   TEXT        NOT NULL,
//!     file_sha256 TEXT        NOT NULL UNIQUE,
//!     lines_done  BIGINT      NOT NULL DEFAULT 0,
//!     accepted    BIGINT      NOT NULL DEFAULT 0,
//!     rejected    BIGINT      NOT NULL DEFAULT 0,
//!     status      TEXT        NOT NULL DEFAULT 'LOADING' CHECK (status IN ('LOADING', 'DONE')),
//!     started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
//!     finished_at TIMESTAMPTZ
//! );
//! CREATE TABLE file_load_rejection (
//!     load_id BIGINT NOT NULL REFERENCES file_load (load_id),
//!     line_no BIGINT NOT NULL,
//!     reason  TEXT   NOT NULL,
//!     PRIMARY KEY (load_id, line_no)
//! );
//! ```

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Split};
use std::path::Path;

use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

/// Why a file does not load.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file cannot be read, or is refused as a whole (its encoding, its header).
    #[error("{0}")]
    Refused(String),
    /// The checkpoint could not be read or written.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

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
    pub fn decode(self, raw: Vec<u8>) -> Result<String, String> {
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
pub fn declared_encoding(first_line: &[u8]) -> Result<Option<FileEncoding>, String> {
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

/// A field as written in a line: `\` and `|` escaped.
pub fn escape(field: &str) -> String {
    field.replace('\\', "\\\\").replace('|', "\\|")
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

/// Column positions from a header line naming columns of `known` (in any case and
/// order, each once, all of `required` among them).
pub fn columns(line: &str, known: &[&'static str], required: &[&'static str]) -> Result<Vec<&'static str>, String> {
    let mut columns = Vec::new();
    for name in split_fields(line) {
        let name = name.trim().to_ascii_lowercase();
        let known = known.iter().find(|c| **c == name).ok_or_else(|| format!("unknown column `{name}`"))?;
        if columns.contains(known) {
            return Err(format!("column `{name}` appears twice"));
        }
        columns.push(*known);
    }
    for required in required {
        if !columns.contains(required) {
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

/// One raw data line (the bytes between two `\n`) as the loader reads it in
/// `encoding`: `Ok(None)` for a blank or comment line, else its text, or the reason it
/// is rejected when it does not decode (`line is not valid UTF-8 (byte 6)`).
pub fn read_line(raw: &[u8], encoding: FileEncoding) -> Result<Option<String>, String> {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let line = encoding.decode(raw.to_vec()).map_err(|reason| format!("line {reason}"))?;
    Ok(line_text(&line).map(str::to_string))
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Checkpoint row of this file.
    pub load_id: i64,
    /// Line after which this run started (0 for a fresh file).
    pub resumed_after_line: i64,
    /// Data lines read in this run.
    pub lines_read: i64,
    /// Lines accepted in this run (the service says what that means).
    pub accepted: i64,
    /// Lines rejected in this run: (line number, reason).
    pub rejected: Vec<(i64, String)>,
}

impl LoadReport {
    /// Counts a committed chunk of `lines` data lines.
    pub fn add(&mut self, lines: i64, accepted: i64, rejected: impl IntoIterator<Item = (i64, String)>) {
        self.lines_read += lines;
        self.accepted += accepted;
        self.rejected.extend(rejected);
    }
}

/// Data lines handed over together: each its line number and text, or the reason it
/// is rejected already (it did not decode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    /// In file order.
    pub lines: Vec<(i64, Result<String, String>)>,
    /// The line after which a load resumes once this chunk is committed (trailing blank
    /// and comment lines included in the last chunk).
    pub done_through: i64,
}

/// A file being loaded: its checkpoint, its encoding, where reading stands.
pub struct DailyFile {
    load_id: i64,
    done: i64,
    encoding: FileEncoding,
    lines: std::iter::Enumerate<Split<BufReader<File>>>,
    last_line: i64,
    finished: bool,
    path: String,
}

impl std::fmt::Debug for DailyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DailyFile")
            .field("path", &self.path)
            .field("load_id", &self.load_id)
            .field("done", &self.done)
            .field("last_line", &self.last_line)
            .finish()
    }
}

impl DailyFile {
    /// Opens `path` in `encoding` (`None`: what its first line names, else UTF-8),
    /// reads up to its header with `header`, and starts or resumes its checkpoint.
    pub async fn open<H>(
        pool: &PgPool,
        path: &Path,
        encoding: Option<FileEncoding>,
        header: impl FnOnce(&str) -> Result<H, String>,
    ) -> Result<(Self, H), FileError> {
        let shown = path.display().to_string();
        let io = |e: std::io::Error| FileError::Refused(format!("cannot read {shown}: {e}"));
        let sha = checksum(path).map_err(io)?;
        let mut lines = BufReader::new(File::open(path).map_err(io)?).split(b'\n').enumerate();
        let mut encoding_in_use = encoding.unwrap_or_default();
        let (header_line, text) = loop {
            let Some((i, raw)) = lines.next() else {
                return Err(FileError::Refused("the file has no header line".into()));
            };
            let line_no = i as i64 + 1;
            let mut raw = raw.map_err(io)?;
            if raw.last() == Some(&b'\r') {
                raw.pop();
            }
            if line_no == 1 {
                let declared = declared_encoding(&raw).map_err(|e| FileError::Refused(format!("line 1: {e}")))?;
                match (encoding, declared) {
                    (Some(asked), Some(named)) if asked != named => {
                        return Err(FileError::Refused(format!(
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
            // The header and what precedes it: in the file's encoding, like every line.
            let line = encoding_in_use.decode(raw).map_err(|reason| {
                FileError::Refused(format!(
                    "line {line_no}: {reason}; a file in another encoding names it on its first line \
                     (`# encoding: gb18030`) or in the command (`--encoding gb18030`)"
                ))
            })?;
            if let Some(text) = line_text(&line) {
                break (line_no, text.to_string());
            }
        };
        let parsed = header(&text).map_err(|e| FileError::Refused(format!("line {header_line}: {e}")))?;
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
        let file = Self {
            load_id,
            done,
            encoding: encoding_in_use,
            lines,
            last_line: header_line,
            finished: false,
            path: shown,
        };
        Ok((file, parsed))
    }

    /// The checkpoint row.
    pub fn load_id(&self) -> i64 {
        self.load_id
    }

    /// The line after which this run started.
    pub fn resumed_after_line(&self) -> i64 {
        self.done
    }

    /// The encoding the lines are read in.
    pub fn encoding(&self) -> FileEncoding {
        self.encoding
    }

    /// An empty report of this run.
    pub fn report(&self) -> LoadReport {
        LoadReport { load_id: self.load_id, resumed_after_line: self.done, ..LoadReport::default() }
    }

    /// The next `size` data lines after the checkpoint (fewer in the last chunk, which
    /// may be empty and then only carries the progress to the end of the file); `None`
    /// once the last chunk was handed over.
    pub fn next_chunk(&mut self, size: usize) -> Result<Option<Chunk>, FileError> {
        if self.finished {
            return Ok(None);
        }
        let mut chunk = Chunk { lines: Vec::with_capacity(size), done_through: 0 };
        for (i, raw) in self.lines.by_ref() {
            let line_no = i as i64 + 1;
            let raw = raw.map_err(|e| FileError::Refused(format!("cannot read {}: {e}", self.path)))?;
            self.last_line = line_no;
            if line_no <= self.done {
                continue;
            }
            let text = match read_line(&raw, self.encoding) {
                Ok(None) => continue,
                Ok(Some(text)) => Ok(text),
                Err(reason) => Err(reason),
            };
            chunk.lines.push((line_no, text));
            if chunk.lines.len() >= size.max(1) {
                chunk.done_through = line_no;
                return Ok(Some(chunk));
            }
        }
        self.finished = true;
        chunk.done_through = self.last_line.max(self.done);
        Ok(Some(chunk))
    }
}

/// Records a chunk's rejected lines and its progress (the file resumes after
/// `done_through`), in the transaction that stores the chunk's accepted lines.
pub async fn commit_chunk(
    tx: &mut PgConnection,
    load_id: i64,
    done_through: i64,
    accepted: i64,
    rejected: &[(i64, String)],
) -> Result<(), sqlx::Error> {
    if !rejected.is_empty() {
        let (lines, reasons): (Vec<i64>, Vec<&str>) = rejected.iter().map(|(l, r)| (*l, r.as_str())).unzip();
        sqlx::query(
            "INSERT INTO file_load_rejection (load_id, line_no, reason)
             SELECT $1, * FROM unnest($2::bigint[], $3::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(load_id)
        .bind(&lines)
        .bind(&reasons)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE file_load SET lines_done = GREATEST(lines_done, $2), accepted = accepted + $3, rejected = rejected + $4
         WHERE load_id = $1",
    )
    .bind(load_id)
    .bind(done_through)
    .bind(accepted)
    .bind(rejected.len() as i64)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Marks the file loaded to its end.
pub async fn finish(pool: &PgPool, load_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE file_load SET status = 'DONE', finished_at = now() WHERE load_id = $1")
        .bind(load_id)
        .execute(pool)
        .await?;
    Ok(())
}

fn checksum(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_named_on_the_first_line_or_not_at_all() {
        type Expected = Result<Option<FileEncoding>, &'static str>;
        let cases: &[(&[u8], Expected)] = &[
            (b"# encoding: gb18030", Ok(Some(FileEncoding::Gb18030))),
            (b"#Encoding:GB18030  ", Ok(Some(FileEncoding::Gb18030))),
            (b"\xef\xbb\xbf# encoding: utf-8", Ok(Some(FileEncoding::Utf8))),
            (b"\x84\x31\x95\x33# encoding: gb18030", Ok(Some(FileEncoding::Gb18030))),
            (b"# daily file from CORE", Ok(None)),
            (b"account_id|balance_minor", Ok(None)),
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
        assert_eq!(FileEncoding::Gb18030.decode(b"CORE|\xff|x".to_vec()), Err("is not valid GB18030 (byte 6)".into()));
        assert_eq!(FileEncoding::Gb18030.decode(b"CORE|\x81 x".to_vec()), Err("is not valid GB18030 (byte 6)".into()));
        assert_eq!(FileEncoding::Utf8.decode(b"ab\xffc".to_vec()), Err("is not valid UTF-8 (byte 3)".into()));
        for (name, expected) in [
            ("GB18030", Some(FileEncoding::Gb18030)),
            ("gb-18030", Some(FileEncoding::Gb18030)),
            (" utf8 ", Some(FileEncoding::Utf8)),
            ("UTF-8", Some(FileEncoding::Utf8)),
            ("big5", None),
        ] {
            assert_eq!(FileEncoding::from_name(name), expected, "{name}");
        }
    }

    #[test]
    fn fields_split_at_unescaped_pipes_and_escaped_fields_read_back() {
        assert_eq!(split_fields("a|b||c"), ["a", "b", "", "c"]);
        assert_eq!(split_fields(r"a\|b|c\\d"), [r"a|b", r"c\d"]);
        assert_eq!(split_fields(r"\#a|\x"), ["#a", "x"]);
        assert_eq!(split_fields(""), [""]);
        let fields = ["1|2", r"back\slash", "", "end\\"];
        let line = fields.iter().map(|f| escape(f)).collect::<Vec<_>>().join("|");
        assert_eq!(split_fields(&line), fields);
    }

    #[test]
    fn headers_name_known_columns_once_with_the_required_ones() {
        const KNOWN: [&str; 3] = ["a", "b", "c"];
        const REQUIRED: [&str; 2] = ["a", "b"];
        let cases: &[(&str, Result<&[&str], &str>)] = &[
            ("a|b", Ok(&["a", "b"])),
            (" B | A |c", Ok(&["b", "a", "c"])),
            ("a|c", Err("required column `b` is missing")),
            ("a|b|d", Err("unknown column `d`")),
            ("a|b|a", Err("column `a` appears twice")),
        ];
        for (line, expected) in cases {
            let got = columns(line, &KNOWN, &REQUIRED);
            assert_eq!(got.as_deref().map_err(String::as_str), *expected, "{line}");
        }
    }

    #[test]
    fn raw_lines_are_read_without_line_ends_marks_blanks_or_comments() {
        type Expected = Result<Option<&'static str>, &'static str>;
        let cases: &[(&[u8], Expected)] = &[
            (b"a|b", Ok(Some("a|b"))),
            (b"a|b\r", Ok(Some("a|b"))),
            ("\u{feff}a|b".as_bytes(), Ok(Some("a|b"))),
            (b"", Ok(None)),
            (b"\r", Ok(None)),
            (b"   ", Ok(None)),
            (b"# a comment", Ok(None)),
            ("\u{feff}# a comment".as_bytes(), Ok(None)),
            (b"a|\xff", Err("line is not valid UTF-8 (byte 3)")),
        ];
        for (raw, expected) in cases {
            let got = read_line(raw, FileEncoding::Utf8);
            assert_eq!(got.as_ref().map(Option::as_deref).map_err(String::as_str), *expected, "{raw:?}");
        }
    }

    /// A file in the system temp folder, removed on drop.
    struct TempFile(std::path::PathBuf);
    impl TempFile {
        fn new(bytes: &[u8]) -> Self {
            let unique =
                format!("{:?}", std::time::SystemTime::now()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
            let path = std::env::temp_dir().join(format!("kit-file-{}-{unique}.txt", std::process::id()));
            std::fs::write(&path, bytes).expect("write");
            Self(path)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Chunks of `file` read past its header, as if `done` lines were committed; the
    /// encoding comes from the first line.
    fn chunks(bytes: &[u8], done: i64, size: usize) -> Vec<Chunk> {
        let file = TempFile::new(bytes);
        let mut lines = BufReader::new(File::open(&file.0).expect("open")).split(b'\n').enumerate();
        let first = lines.next();
        let first = first.map(|(_, raw)| raw.expect("read")).unwrap_or_default();
        let encoding = declared_encoding(&first).expect("encoding").unwrap_or_default();
        let mut daily = DailyFile {
            load_id: 1,
            done: done.max(1),
            encoding,
            lines,
            last_line: 1,
            finished: false,
            path: String::new(),
        };
        let mut out = Vec::new();
        while let Some(chunk) = daily.next_chunk(size).expect("chunk") {
            out.push(chunk);
        }
        out
    }

    #[test]
    fn data_lines_come_in_chunks_by_number_and_the_last_chunk_reaches_the_end() {
        // Nine lines: the last, blank, ends with the file's last `\n`.
        let file = b"# encoding: utf-8\nh1|h2\na|1\n\nb|2\n# note\nc|\xff\nd|4\n\n";
        let numbers = |cs: &[Chunk]| -> Vec<(Vec<i64>, i64)> {
            cs.iter().map(|c| (c.lines.iter().map(|(n, _)| *n).collect(), c.done_through)).collect()
        };
        let all = chunks(file, 2, 2);
        assert_eq!(numbers(&all), [(vec![3, 5], 5), (vec![7, 8], 8), (vec![], 9)]);
        assert_eq!(all[0].lines[0].1, Ok("a|1".to_string()));
        assert_eq!(all[1].lines[0].1, Err("line is not valid UTF-8 (byte 3)".to_string()));
        // Resumed after line 5: line 7 on; resumed at the end: nothing but the end.
        assert_eq!(numbers(&chunks(file, 5, 2)), [(vec![7, 8], 8), (vec![], 9)]);
        assert_eq!(numbers(&chunks(file, 9, 2)), [(vec![], 9)]);
        assert_eq!(numbers(&chunks(file, 2, 10)), [(vec![3, 5, 7, 8], 9)]);
    }

    #[test]
    fn a_gb18030_file_reads_as_text_and_its_bad_line_as_a_reason() {
        let (text, _, _) = encoding_rs::GB18030.encode("# encoding: gb18030\n张|1\n");
        let mut bytes = text.into_owned();
        bytes.extend_from_slice(b"\xd5\xc5\x81 |2\n");
        let all = chunks(&bytes, 1, 10);
        assert_eq!(all[0].lines[0], (2, Ok("张|1".to_string())));
        assert_eq!(all[0].lines[1], (3, Err("line is not valid GB18030 (byte 3)".to_string())));
    }

    #[test]
    fn a_report_adds_up_its_chunks() {
        let mut report = LoadReport { load_id: 7, resumed_after_line: 4, ..LoadReport::default() };
        report.add(2, 1, [(5, "bad".to_string())]);
        report.add(3, 3, []);
        assert_eq!((report.lines_read, report.accepted, report.rejected.len()), (5, 4, 1));
    }
}
