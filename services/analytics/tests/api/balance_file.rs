//! The daily balance file (`analytics load-balances`), loaded through the library
//! function the command calls, against the app's own database: lines become snapshots
//! by the same path as `LoadBalances`, bad lines are reported by number, a second load
//! changes nothing, an interrupted load resumes, GB18030 reads, and balances of
//! customers not known yet wait.

use analytics::balance_file::{BalanceFile, load_balance_file};
use crm_platform::file_load::FileEncoding;

use crate::helpers::{TestApp, spawn_app};

/// Customers the files name: one by number, one by source key.
const ALICE: &str = "100000000101";
const BOB: &str = "100000000102";

const FILE: &str = "\
# daily balances from CORE, 2026-06-01
account_id|customer_number|source_system|source_customer_id|product_code|balance_minor|currency|balance_date
A-1|100000000101|||DEP|3000000|CNY|2026-06-01
A-2||CORE|B-1|WM|2500000|CNY|2026-06-01
A-3|100000000101|||DEP|12.50|CNY|2026-06-01

A-4|100000000101|||GOLDBAR|100|CNY|2026-06-01
A-5||CORE|B-1|DEP|100|CNY|2026-06-31
A-6|100000000101|||DEP|100|CNY
A-7||CORE|B-1|WM50|2000000|CNY|2026-06-01
# end of file
";

/// A file in the system temp folder, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(contents: &[u8]) -> Self {
        let unique = format!("{:?}-{}", std::time::SystemTime::now(), next_suffix())
            .replace(|c: char| !c.is_ascii_alphanumeric(), "");
        let path = std::env::temp_dir().join(format!("crm-balances-{}-{unique}.txt", std::process::id()));
        std::fs::write(&path, contents).expect("write");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn next_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// An app with the test catalogue and both customers known.
async fn app_with_customers() -> TestApp {
    let mut app = spawn_app().await;
    app.catalogue().await;
    app.customer_created(ALICE, ("CORE", "A-1")).await;
    app.customer_created(BOB, ("CORE", "B-1")).await;
    app
}

/// Every stored snapshot, its owner, every customer's value, the file's checkpoint
/// and its rejected lines: what "the same rows" means.
#[derive(Debug, PartialEq, Eq)]
struct Rows {
    snapshots: Vec<(String, time::Date, Option<String>, String, i64, String)>,
    values: Vec<(String, String, i64)>,
    checkpoint: Vec<(i64, i64, i64, String)>,
    rejections: Vec<(i64, String)>,
}

async fn rows(pool: &sqlx::PgPool) -> Rows {
    crate::helpers::settled(pool).await;
    Rows {
        snapshots: sqlx::query_as(
            "SELECT account_id, balance_date, customer_number, product_code, amount_minor, currency_code
             FROM balance_snapshot ORDER BY 1, 2",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        values: sqlx::query_as("SELECT customer_number, level_code, weighted_aum FROM customer_value ORDER BY 1")
            .fetch_all(pool)
            .await
            .unwrap(),
        checkpoint: sqlx::query_as("SELECT lines_done, accepted, rejected, status FROM file_load ORDER BY load_id")
            .fetch_all(pool)
            .await
            .unwrap(),
        rejections: sqlx::query_as("SELECT line_no, reason FROM file_load_rejection ORDER BY 1")
            .fetch_all(pool)
            .await
            .unwrap(),
    }
}

fn lines(rejected: &[(i64, String)]) -> Vec<i64> {
    rejected.iter().map(|(l, _)| *l).collect()
}

#[tokio::test]
async fn a_file_loads_its_good_lines_and_reports_bad_ones_by_line_number_and_loading_it_again_changes_nothing() {
    let mut app = app_with_customers().await;
    let file = TempFile::new(FILE.as_bytes());
    let report = load_balance_file(&app.pool, &file.0, None, 2).await.unwrap();

    assert_eq!(report.file.resumed_after_line, 0);
    assert_eq!((report.file.lines_read, report.file.accepted, report.changed, report.pending), (7, 3, 3, 0));
    assert_eq!(lines(&report.file.rejected), [5, 7, 8, 9], "{:?}", report.file.rejected);
    let reasons: Vec<&str> = report.file.rejected.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(reasons[0], "balance_minor `12.50` is not a whole number of minor units");
    assert_eq!(reasons[1], "product_code: \"GOLDBAR\" is not in the product catalogue");
    assert_eq!(reasons[2], "balance_date: is required and must be a real calendar date");
    assert_eq!(reasons[3], "expected 8 fields, found 7");
    assert!(report.summary().contains("7 lines read, 3 loaded"), "{}", report.summary());

    // The loaded lines count as the same snapshots by stream would: 30,000 yuan of
    // deposits for Alice; 25,000 + 50 % of 20,000 yuan of wealth products for Bob.
    assert_eq!(app.value(ALICE).await.weighted_aum_minor, 3_000_000);
    assert_eq!(app.value(BOB).await.weighted_aum_minor, 3_500_000);
    let first = rows(&app.pool).await;
    assert_eq!(first.snapshots.len(), 3);
    assert_eq!(first.checkpoint, [(11, 3, 4, "DONE".to_string())]);
    assert_eq!(first.rejections.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [5, 7, 8, 9]);

    // The same file again: recognised, nothing read.
    let again = load_balance_file(&app.pool, &file.0, None, 2).await.unwrap();
    assert_eq!((again.file.resumed_after_line, again.file.lines_read, again.file.accepted), (11, 0, 0));
    assert_eq!(rows(&app.pool).await, first);

    // The same lines in another file (another first comment): every snapshot found
    // stored as sent, nothing changes but a second checkpoint.
    let copy = TempFile::new(FILE.replacen("2026-06-01\n", "2026-06-01, resent\n", 1).as_bytes());
    let resent = load_balance_file(&app.pool, &copy.0, None, 2).await.unwrap();
    assert_eq!((resent.file.accepted, resent.changed, resent.unchanged), (3, 0, 3));
    assert_eq!(lines(&resent.file.rejected), [5, 7, 8, 9]);
    let after = rows(&app.pool).await;
    assert_eq!((after.snapshots, after.values), (first.snapshots, first.values));
    app.stop().await;
}

#[tokio::test]
async fn an_interrupted_load_resumes_after_its_last_committed_line_and_ends_with_the_rows_of_an_uninterrupted_one() {
    let mut whole = app_with_customers().await;
    let mut killed = app_with_customers().await;
    let file = TempFile::new(FILE.as_bytes());
    let uninterrupted = load_balance_file(&whole.pool, &file.0, None, 2).await.unwrap();

    // A run that committed two chunks (data lines 3, 4, 5 and 7, through line 7) and
    // then died: the third chunk was never stored.
    let mut run = BalanceFile::open(&killed.pool, &file.0, None).await.unwrap();
    assert!(run.load_chunk(2).await.unwrap());
    assert!(run.load_chunk(2).await.unwrap());
    let before_kill = run.report().clone();
    drop(run);
    let partial = rows(&killed.pool).await;
    assert_eq!(partial.checkpoint, [(7, 2, 2, "LOADING".to_string())]);
    assert_eq!(partial.snapshots.len(), 2, "A-1 and A-2");

    let resumed = load_balance_file(&killed.pool, &file.0, None, 2).await.unwrap();
    assert_eq!((resumed.file.resumed_after_line, resumed.file.lines_read), (7, 3), "lines 8, 9 and 10 only");
    assert_eq!(lines(&resumed.file.rejected), [8, 9]);
    assert_eq!(before_kill.file.accepted + resumed.file.accepted, uninterrupted.file.accepted);
    assert_eq!(before_kill.changed + resumed.changed, uninterrupted.changed);
    assert_eq!(resumed.unchanged, 0, "nothing stored twice");
    assert_eq!(rows(&killed.pool).await, rows(&whole.pool).await);
    whole.stop().await;
    killed.stop().await;
}

fn gb18030(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::GB18030.encode(text);
    assert!(!unmappable, "GB18030 encodes every character");
    bytes.into_owned()
}

#[tokio::test]
async fn a_gb18030_file_loads_and_its_source_keys_in_chinese_find_their_customers() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    app.customer_created(ALICE, ("核心系统", "客户億一")).await;
    // 億 is 0x83 0x7C in GB18030: its second byte is `|`; lines decode before they split.
    let text = "# encoding: gb18030\n# 每日余额文件\n\
                account_id|source_system|source_customer_id|product_code|balance_minor|currency|balance_date\n\
                账户-1|核心系统|客户億一|DEP|4000000|CNY|2026-06-01\n\
                账户-2|核心系统|客户億一|WM|1000000|CNY|2026-06-01\n";
    let bytes = gb18030(text);
    assert!(std::str::from_utf8(&bytes).is_err(), "the file is not UTF-8");
    let file = TempFile::new(&bytes);
    let report = load_balance_file(&app.pool, &file.0, None, 500).await.unwrap();
    assert_eq!((report.file.accepted, report.file.rejected.len()), (2, 0), "{:?}", report.file.rejected);
    assert_eq!(app.value(ALICE).await.weighted_aum_minor, 5_000_000);
    let accounts: Vec<String> =
        sqlx::query_scalar("SELECT account_id FROM balance_snapshot ORDER BY 1").fetch_all(&app.pool).await.unwrap();
    assert_eq!(accounts, ["账户-1", "账户-2"]);

    // Without its first line the command names the encoding; naming another is refused.
    let plain = TempFile::new(&gb18030(text.split_once('\n').unwrap().1));
    let refused = load_balance_file(&app.pool, &plain.0, None, 500).await.unwrap_err();
    assert!(refused.to_string().contains("line 1") && refused.to_string().contains("gb18030"), "{refused}");
    let named = load_balance_file(&app.pool, &plain.0, Some(FileEncoding::Gb18030), 500).await.unwrap();
    assert_eq!((named.file.accepted, named.unchanged), (2, 2));
    let conflict = load_balance_file(&app.pool, &file.0, Some(FileEncoding::Utf8), 500).await.unwrap_err();
    assert!(conflict.to_string().contains("GB18030"), "{conflict}");
    app.stop().await;
}

#[tokio::test]
async fn balances_for_a_customer_not_known_yet_wait_and_count_when_the_customer_appears() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    let text = "account_id|customer_number|source_system|source_customer_id|product_code|balance_minor|currency|balance_date\n\
                N-1||CORE|N1|DEP|6000000|CNY|2026-06-01\n\
                N-2|100000000121|||WM|100000|CNY|2026-06-01\n";
    let file = TempFile::new(text.as_bytes());
    let report = load_balance_file(&app.pool, &file.0, None, 500).await.unwrap();
    assert_eq!((report.file.accepted, report.pending), (2, 2));
    assert!(rows(&app.pool).await.values.is_empty(), "nothing is valued for unknown customers");

    app.customer_created("100000000121", ("CORE", "N1")).await;
    let value = app.value("100000000121").await;
    assert_eq!(value.weighted_aum_minor, 61_000 * 100, "both lines count: by source key and by number");
    assert_eq!(value.level_code, "gold");
    assert_eq!(app.level_changes(1).await[0].0, "100000000121");
    app.stop().await;
}

#[tokio::test]
async fn a_file_whose_header_names_no_customer_is_refused_before_anything_loads() {
    let mut app = app_with_customers().await;
    let text = "account_id|product_code|balance_minor|currency|balance_date\nA-1|DEP|100|CNY|2026-06-01\n";
    let file = TempFile::new(text.as_bytes());
    let refused = load_balance_file(&app.pool, &file.0, None, 500).await.unwrap_err();
    assert!(refused.to_string().contains("line 1") && refused.to_string().contains("customer_number"), "{refused}");
    let nothing = rows(&app.pool).await;
    assert!(nothing.snapshots.is_empty() && nothing.checkpoint.is_empty(), "{nothing:?}");
    app.stop().await;
}
