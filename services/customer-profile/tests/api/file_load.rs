use std::io::Write;

use customer_profile::file_load::load_file;
use customer_profile::pii::PiiCipher;

use crate::helpers::{PII_KEY, spawn_app};

const FILE: &str = "\
# daily customer file from CORE and LOANS
source_system|source_customer_id|source_version|party_kind|id_type|id_number|name|birth_date|mobile_phone
CORE|C-1|1|PERSONAL|RESIDENT_ID|11010519491231002X|张伟|1949-12-31|13800001111
CORE|C-2|1|PERSONAL|RESIDENT_ID|110105194912310021|李娜||
LOANS|L-1|1|PERSONAL|RESIDENT_ID|110105491231002|张伟||

LOANS|L-2|1|PERSONAL|LIBRARY_CARD|42|王芳||
CORE|C-3|1|PERSONAL|PASSPORT|E1234567|Zhang \\| Wei||
CORE|C-4|1|PERSONAL
";

fn write(contents: &str) -> tempfile_path::TempPath {
    tempfile_path::TempPath::new(contents)
}

/// A file in the system temp folder, removed on drop.
mod tempfile_path {
    pub struct TempPath(pub std::path::PathBuf);
    impl TempPath {
        pub fn new(contents: &str) -> Self {
            Self::with_bytes(contents.as_bytes())
        }
        pub fn with_bytes(contents: &[u8]) -> Self {
            let path = std::env::temp_dir().join(format!("crm-file-{}.txt", uuid_like()));
            let mut f = std::fs::File::create(&path).expect("create");
            super::Write::write_all(&mut f, contents).expect("write");
            Self(path)
        }
    }
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    fn uuid_like() -> String {
        format!("{}-{:?}", std::process::id(), std::time::SystemTime::now())
            .replace(|c: char| !c.is_ascii_alphanumeric(), "")
    }
}

#[tokio::test]
async fn a_file_loads_its_good_lines_and_reports_bad_ones_by_line_number() {
    let mut app = spawn_app().await;
    let file = write(FILE);
    let pii = PiiCipher::from_hex(PII_KEY).unwrap();
    let trust = customer_profile::Settings::load_from(app.env.vars(&[("customer.pii_key", PII_KEY)]))
        .unwrap()
        .service
        .trust_table();
    let report = load_file(&app.pool, &trust, &pii, &file.0, 2, Some("batch")).await.unwrap();
    assert_eq!(report.accepted, 3);
    let lines: Vec<i64> = report.rejected.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [4, 7, 9]);
    assert!(report.rejected[0].1.contains("id_number"), "{:?}", report.rejected);
    assert!(report.rejected[1].1.contains("id_type"), "{:?}", report.rejected);
    assert!(report.rejected[2].1.contains("fields"), "{:?}", report.rejected);

    // The two records of one person (18- and 15-digit IDs) are one customer.
    let customers: i64 = app.count("SELECT count(DISTINCT party_id) FROM source_record").await;
    assert_eq!(customers, 2);
    let escaped: String =
        sqlx::query_scalar("SELECT attributes->>'name' FROM source_record WHERE source_customer_id = 'C-3'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(escaped, "Zhang | Wei");
    assert_eq!(app.count("SELECT count(*) FROM file_load_rejection").await, 3);

    // Loading the same file again loads nothing.
    let again = load_file(&app.pool, &trust, &pii, &file.0, 2, None).await.unwrap();
    assert_eq!((again.lines_read, again.resumed_after_line), (0, 9));
    assert_eq!(app.count("SELECT count(*) FROM source_record").await, 3);
    app.stop().await;
}

#[tokio::test]
async fn an_interrupted_load_resumes_after_its_last_committed_line() {
    let mut app = spawn_app().await;
    let file = write(FILE);
    let pii = PiiCipher::from_hex(PII_KEY).unwrap();
    let trust = customer_profile::domain::TrustTable::new(10);
    // A first run that committed through line 5 and then died.
    let first = load_file(&app.pool, &trust, &pii, &file.0, 2, None).await.unwrap();
    assert_eq!(first.accepted, 3);
    sqlx::query("DELETE FROM file_load_rejection").execute(&app.pool).await.unwrap();
    sqlx::query("DELETE FROM source_record WHERE source_customer_id IN ('C-3')").execute(&app.pool).await.unwrap();
    sqlx::query("UPDATE file_load SET lines_done = 5, status = 'LOADING'").execute(&app.pool).await.unwrap();

    let resumed = load_file(&app.pool, &trust, &pii, &file.0, 2, None).await.unwrap();
    assert_eq!(resumed.resumed_after_line, 5);
    assert_eq!(resumed.lines_read, 3, "lines 7, 8 and 9 only");
    assert_eq!(resumed.accepted, 1, "C-3 loaded again");
    assert_eq!(resumed.rejected.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [7, 9]);
    app.stop().await;
}

#[tokio::test]
async fn an_overlong_value_a_control_character_or_a_line_that_is_not_utf8_rejects_that_line_only() {
    let mut app = spawn_app().await;
    let mut contents = b"source_system|source_customer_id|source_version|party_kind|id_type|id_number|name\n".to_vec();
    contents.extend_from_slice(b"CORE|C-1|1|PERSONAL|PASSPORT|E1|good one\n");
    contents.extend_from_slice(format!("CORE|C-2|1|PERSONAL|PASSPORT|E2|{}\n", "王".repeat(100_000)).as_bytes());
    contents.extend_from_slice(b"CORE|C-3|1|PERSONAL|PASSPORT|E3|bad \xff\xfe bytes\r\n");
    contents.extend_from_slice(b"CORE|C-4|1|PERSONAL|PASSPORT|E4|nul\x00name\n");
    contents.extend_from_slice(b"CORE|C-5|1|PERSONAL|PASSPORT|E5|good two\n");
    let file = tempfile_path::TempPath::with_bytes(&contents);
    let pii = PiiCipher::from_hex(PII_KEY).unwrap();
    let trust = customer_profile::Settings::load_from(app.env.vars(&[("customer.pii_key", PII_KEY)]))
        .unwrap()
        .service
        .trust_table();
    let report = load_file(&app.pool, &trust, &pii, &file.0, 2, None).await.unwrap();
    assert_eq!(report.accepted, 2);
    let lines: Vec<i64> = report.rejected.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [3, 4, 5]);
    assert!(report.rejected[0].1.contains("name: must be at most 200 characters"), "{:?}", report.rejected[0]);
    assert!(report.rejected[1].1.contains("not valid UTF-8"), "{:?}", report.rejected[1]);
    assert!(report.rejected[2].1.contains("NUL"), "{:?}", report.rejected[2]);
    let loaded: Vec<String> = sqlx::query_scalar("SELECT source_customer_id FROM source_record ORDER BY 1")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(loaded, ["C-1", "C-5"]);
    app.stop().await;
}
