//! The daily balance file: one account's closing balance per line, delimited text in
//! UTF-8 or GB18030, loaded by `analytics load-balances <path>`. Each line becomes the
//! `LoadBalances` message it stands for, is checked by the same [`convert::balance`]
//! and stored by the same [`crate::store::facts::ingest`] as the stream's; each chunk
//! of lines commits in one transaction with the customers it touched and the file's
//! checkpoint, so a killed load resumes after the last committed line and stores
//! nothing twice, and a file loaded again changes nothing (a snapshot is kept by
//! account and day). Bad lines are rejected with their line number and reason while
//! the rest loads. Reading lines, encodings and the checkpoint are the kit's
//! ([`crm_platform::file_load`]); the layout is documented in
//! `docs/balance-file-format.md`.

use std::path::Path;

use crm_platform::FieldViolations;
use crm_platform::file_load::{DailyFile, FileEncoding, LoadReport, commit_chunk, split_fields};
use crm_proto::crm::analytics::v1 as pb;
use crm_proto::crm::common::v1 as common;
use crm_proto::crm::customer::v1 as cpb;
use sqlx::PgPool;

use crate::convert;
use crate::domain::facts::BalanceSnapshot;
use crate::error::Result;

/// Columns a file may have. `account_id`, `product_code`, `balance_minor`, `currency`
/// and `balance_date` are required, and a way to name the customer: `customer_number`,
/// or `source_system` with `source_customer_id`, or all three.
pub const COLUMNS: [&str; 8] = [
    "account_id",
    "customer_number",
    "source_system",
    "source_customer_id",
    "product_code",
    "balance_minor",
    "currency",
    "balance_date",
];
const REQUIRED: [&str; 5] = ["account_id", "product_code", "balance_minor", "currency", "balance_date"];

/// What a load did: the kit's report (lines read, accepted, rejected by line) and
/// what became of the accepted lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BalanceFileReport {
    /// Lines read, accepted (stored or found stored as sent) and rejected in this run.
    pub file: LoadReport,
    /// Of the accepted, new or corrected snapshots.
    pub changed: i64,
    /// Of the accepted, snapshots stored before exactly as sent.
    pub unchanged: i64,
    /// Of the changed, those whose customer (or FX rate) is not known yet: kept, and
    /// counted when it appears.
    pub pending: i64,
}

impl BalanceFileReport {
    /// One line for the operator: where the run started and what it did.
    pub fn summary(&self) -> String {
        let f = &self.file;
        format!(
            "resumed after line {}, {} lines read, {} loaded ({} new or corrected, {} unchanged, {} waiting for \
             their customer or FX rate), {} rejected",
            f.resumed_after_line,
            f.lines_read,
            f.accepted,
            self.changed,
            self.unchanged,
            self.pending,
            f.rejected.len()
        )
    }
}

/// Column positions from the header line.
pub fn header(line: &str) -> std::result::Result<Vec<&'static str>, String> {
    let columns = crm_platform::file_load::columns(line, &COLUMNS, &REQUIRED)?;
    let has = |c: &str| columns.contains(&c);
    if has("source_system") != has("source_customer_id") {
        return Err("`source_system` and `source_customer_id` come together".into());
    }
    if !has("customer_number") && !has("source_system") {
        return Err("the customer is named by no column: `customer_number`, or `source_system` with \
                    `source_customer_id`, is required"
            .into());
    }
    Ok(columns)
}

/// The header line of files written by [`to_line`].
pub fn header_line() -> String {
    COLUMNS.join("|")
}

/// A snapshot as one line in the file layout (all columns, in [`COLUMNS`] order).
pub fn to_line(s: &pb::BalanceSnapshot) -> String {
    use crm_platform::file_load::escape;
    use pb::customer_ref::Customer;
    let (number, system, id) = match s.customer.as_ref().and_then(|c| c.customer.as_ref()) {
        Some(Customer::CustomerNumber(n)) => (n.as_str(), "", ""),
        Some(Customer::SourceKey(k)) => ("", k.source_system.as_str(), k.source_customer_id.as_str()),
        None => ("", "", ""),
    };
    let balance = s.balance.clone().unwrap_or_default();
    let date = s.balance_date.map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)).unwrap_or_default();
    let mut line = [
        escape(&s.account_id),
        escape(number),
        escape(system),
        escape(id),
        escape(&s.product_code),
        balance.amount_minor.to_string(),
        escape(&balance.currency_code),
        date,
    ]
    .join("|");
    // A line starting `#` or with a byte-order mark would read as a comment or lose it.
    if line.starts_with(['#', '\u{feff}']) {
        line.insert(0, '\\');
    }
    line
}

/// One data line as the `LoadBalances` message it stands for (still to be checked by
/// [`convert::balance`]), or why it cannot be read.
pub fn parse_line(columns: &[&'static str], line: &str) -> std::result::Result<pb::LoadBalancesRequest, String> {
    let fields = split_fields(line);
    if fields.len() != columns.len() {
        return Err(format!("expected {} fields, found {}", columns.len(), fields.len()));
    }
    let mut s = pb::BalanceSnapshot::default();
    let (mut number, mut key) = (String::new(), cpb::SourceKey::default());
    let mut balance = common::Money::default();
    for (column, value) in columns.iter().zip(fields) {
        let value = value.trim().to_string();
        match *column {
            "account_id" => s.account_id = value,
            "customer_number" => number = value,
            "source_system" => key.source_system = value,
            "source_customer_id" => key.source_customer_id = value,
            "product_code" => s.product_code = value,
            "balance_minor" => {
                balance.amount_minor = parse_minor(&value)
                    .ok_or_else(|| format!("balance_minor `{value}` is not a whole number of minor units"))?;
            }
            "currency" => balance.currency_code = value,
            "balance_date" => {
                s.balance_date =
                    Some(parse_date(&value).ok_or_else(|| format!("balance_date `{value}` is not a YYYY-MM-DD date"))?);
            }
            _ => {}
        }
    }
    use pb::customer_ref::Customer;
    let by_source = !key.source_system.is_empty() || !key.source_customer_id.is_empty();
    s.customer = match (number.is_empty(), by_source) {
        (false, true) => {
            return Err("customer_number and source_system/source_customer_id: name the customer one way".into());
        }
        (false, false) => Some(pb::CustomerRef { customer: Some(Customer::CustomerNumber(number)) }),
        (true, true) => Some(pb::CustomerRef { customer: Some(Customer::SourceKey(key)) }),
        (true, false) => None,
    };
    s.balance = Some(balance);
    Ok(pb::LoadBalancesRequest { snapshot: Some(s) })
}

/// An amount in minor units: an optional sign and digits, nothing else.
fn parse_minor(value: &str) -> Option<i64> {
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| value.parse().ok()).flatten()
}

/// `YYYY-MM-DD` as the wire's date; whether it is a real day is [`convert::balance`]'s.
fn parse_date(value: &str) -> Option<common::Date> {
    let b = value.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b[r.clone()].iter().all(u8::is_ascii_digit).then(|| value[r].parse().ok())?;
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    Some(common::Date { year: digits(0..4)?, month: digits(5..7)?, day: digits(8..10)? })
}

/// A file column for a field of the `LoadBalances` message.
fn column_of(field: &str) -> &str {
    match field.strip_prefix("snapshot.").unwrap_or(field) {
        "customer" | "customer.customer_number" => "customer_number",
        "customer.source_key.source_system" => "source_system",
        "customer.source_key.source_customer_id" => "source_customer_id",
        "balance" => "balance_minor",
        "balance.currency_code" => "currency",
        other => other,
    }
}

/// A line refused by [`convert::balance`]: each violation under its file column.
fn reason(violations: &FieldViolations) -> String {
    violations.iter().map(|(f, d)| format!("{}: {d}", column_of(f))).collect::<Vec<_>>().join("; ")
}

/// One data line as a checked snapshot, or why it is rejected.
pub fn read_snapshot(columns: &[&'static str], line: &str) -> std::result::Result<BalanceSnapshot, String> {
    let request = parse_line(columns, line)?;
    convert::balance(&request).map_err(|v| reason(&v))
}

/// A balance file being loaded, a chunk of lines at a time.
#[derive(Debug)]
pub struct BalanceFile {
    pool: PgPool,
    file: DailyFile,
    columns: Vec<&'static str>,
    report: BalanceFileReport,
}

impl BalanceFile {
    /// Opens `path` in `encoding` (`None`: what its first line names, else UTF-8) and
    /// starts or resumes its checkpoint; a file whose encoding or header is wrong is
    /// refused before anything loads.
    pub async fn open(pool: &PgPool, path: &Path, encoding: Option<FileEncoding>) -> Result<Self> {
        let (file, columns) = DailyFile::open(pool, path, encoding, header).await?;
        let report = BalanceFileReport { file: file.report(), ..BalanceFileReport::default() };
        Ok(Self { pool: pool.clone(), file, columns, report })
    }

    /// Loads the next `size` data lines in one transaction: the snapshots, their
    /// customers marked due, the rejected lines and the checkpoint. `false`
    /// once the file is loaded to its end (and marked done).
    pub async fn load_chunk(&mut self, size: usize) -> Result<bool> {
        let Some(chunk) = self.file.next_chunk(size)? else {
            crm_platform::file_load::finish(&self.pool, self.file.load_id()).await?;
            return Ok(false);
        };
        let lines = chunk.lines.len() as i64;
        let (mut batch, mut rejected) = (Vec::new(), Vec::new());
        for (line_no, text) in chunk.lines {
            match text.and_then(|line| read_snapshot(&self.columns, &line)) {
                Ok(snapshot) => batch.push((line_no, snapshot)),
                Err(reason) => rejected.push((line_no, reason)),
            }
        }
        let mut tx = self.pool.begin().await?;
        let ingested = crate::store::facts::ingest(&mut tx, &batch).await?;
        for (line_no, code) in ingested.unknown_product {
            rejected.push((line_no, format!("product_code: {code:?} is not in the product catalogue")));
        }
        rejected.sort_by_key(|(line_no, _)| *line_no);
        let accepted = lines - rejected.len() as i64;
        commit_chunk(&mut tx, self.file.load_id(), chunk.done_through, accepted, &rejected).await?;
        tx.commit().await?;
        self.report.file.add(lines, accepted, rejected);
        self.report.changed += ingested.accepted;
        self.report.unchanged += ingested.unchanged;
        self.report.pending += ingested.pending;
        Ok(true)
    }

    /// What this run did so far.
    pub fn report(&self) -> &BalanceFileReport {
        &self.report
    }
}

/// Loads `path` to its end, `chunk` lines per transaction; a file already (partly)
/// loaded, recognised by its SHA-256, resumes after its last committed line, and a
/// finished one loads nothing.
pub async fn load_balance_file(
    pool: &PgPool,
    path: &Path,
    encoding: Option<FileEncoding>,
    chunk: usize,
) -> Result<BalanceFileReport> {
    let mut file = BalanceFile::open(pool, path, encoding).await?;
    while file.load_chunk(chunk).await? {}
    Ok(file.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<&'static str> {
        header(&header_line()).expect("header")
    }

    #[test]
    fn headers_name_the_customer_one_way_or_both() {
        let base = "account_id|product_code|balance_minor|currency|balance_date";
        let cases: &[(&str, Option<&str>)] = &[
            ("customer_number", None),
            ("source_system|source_customer_id", None),
            ("customer_number|source_system|source_customer_id", None),
            ("", Some("named by no column")),
            ("source_system", Some("come together")),
            ("customer_number|source_customer_id", Some("come together")),
            ("customer_number|balance", Some("unknown column `balance`")),
        ];
        for (extra, error) in cases {
            let line = format!("{base}|{extra}");
            let got = header(line.trim_end_matches('|'));
            match error {
                None => assert!(got.is_ok(), "{line}: {got:?}"),
                Some(e) => assert!(got.as_ref().is_err_and(|m| m.contains(e)), "{line}: {got:?}"),
            }
        }
        assert!(
            header("account_id|customer_number|product_code|balance_minor|currency")
                .unwrap_err()
                .contains("balance_date")
        );
    }

    #[test]
    fn written_lines_read_back_as_the_same_message() {
        use pb::customer_ref::Customer;
        let by_number = pb::CustomerRef { customer: Some(Customer::CustomerNumber("100001".into())) };
        let key = cpb::SourceKey { source_system: "CO|RE".into(), source_customer_id: r"C\1".into() };
        let by_source = pb::CustomerRef { customer: Some(Customer::SourceKey(key)) };
        for (account, customer, amount) in [("#A-1", by_number, -1_250), ("A|2", by_source, 123_456_789_012)] {
            let s = pb::BalanceSnapshot {
                account_id: account.into(),
                customer: Some(customer),
                product_code: "DEP".into(),
                balance: Some(common::Money { amount_minor: amount, currency_code: "CNY".into() }),
                balance_date: Some(common::Date { year: 2026, month: 1, day: 31 }),
            };
            let line = to_line(&s);
            let read = crm_platform::file_load::read_line(line.as_bytes(), FileEncoding::Utf8).expect("reads");
            let read = parse_line(&cols(), &read.expect("a data line")).expect("parses");
            assert_eq!(read.snapshot, Some(s), "{line}");
        }
    }

    #[test]
    fn lines_become_snapshots_or_say_what_is_wrong_by_column() {
        let ok = read_snapshot(&cols(), "A-1|100001|||DEP|150000|CNY|2026-01-31").expect("reads");
        assert_eq!((ok.account_id.as_str(), ok.balance.amount_minor, ok.date.day()), ("A-1", 150_000, 31));
        let by_source = read_snapshot(&cols(), "A-1||CORE|C-9|DEP|-5|USD|2026-01-31").expect("reads");
        assert_eq!(by_source.customer.columns(), (None, Some("CORE"), Some("C-9")));
        for (line, reason) in [
            ("A-1|100001|||DEP|12.50|CNY|2026-01-31", "balance_minor `12.50` is not a whole number"),
            ("A-1|100001|||DEP||CNY|2026-01-31", "balance_minor `` is not a whole number"),
            ("A-1|100001|||DEP|99999999999999999999|CNY|2026-01-31", "balance_minor"),
            ("A-1|100001|||DEP|1|CNY|31/01/2026", "balance_date `31/01/2026` is not a YYYY-MM-DD date"),
            ("A-1|100001|||DEP|1|CNY|2026-02-30", "balance_date: is required and must be a real calendar date"),
            ("A-1|100001|||DEP|1|CNY|1999-12-31", "balance_date: must be"),
            ("A-1|100001|||DEP|1|yuan|2026-01-31", "currency:"),
            ("A-1|10000A|||DEP|1|CNY|2026-01-31", "customer_number: must be 1–32 digits"),
            ("A-1|||||DEP|1|CNY|2026-01-31", "expected 8 fields, found 9"),
            ("A-1|||C-1|DEP|1|CNY|2026-01-31", "source_system:"),
            ("A-1||||DEP|1|CNY|2026-01-31", "customer_number: is required"),
            ("A-1|100001|CORE|C-1|DEP|1|CNY|2026-01-31", "name the customer one way"),
            ("|100001|||DEP|1|CNY|2026-01-31", "account_id:"),
            ("A-1|100001|||DEP|1|CNY", "expected 8 fields, found 7"),
        ] {
            let got = read_snapshot(&cols(), line);
            assert!(got.as_ref().is_err_and(|r| r.contains(reason)), "{line}: {got:?}");
        }
    }

    #[test]
    fn amounts_and_dates_are_read_strictly() {
        for (value, expected) in
            [("0", Some(0)), ("-12", Some(-12)), ("+7", Some(7)), ("1e3", None), (" 1", None), ("-", None), ("", None)]
        {
            assert_eq!(parse_minor(value), expected, "{value:?}");
        }
        for (value, expected) in [
            ("2026-01-31", Some((2026, 1, 31))),
            ("2026-1-31", None),
            ("2026/01/31", None),
            ("+026-01-31", None),
            ("2026-01-31x", None),
            ("２０２６-01-31", None),
        ] {
            assert_eq!(parse_date(value).map(|d| (d.year, d.month, d.day)), expected, "{value:?}");
        }
    }
}
