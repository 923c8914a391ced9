//! The sweep of bad input over every RPC (issue #18): `tests/python/sweep.py` walks
//! the services identity, customer-profile and analytics describe by reflection and sends each
//! RPC generated bad input and malformed tokens; it fails on any INTERNAL or UNKNOWN
//! answer. Here the services run, the script gets an administrator's token (so calls
//! reach the handlers), and every table of their databases holds as many rows after the
//! sweep as before: nothing of refused input is stored.
//!
//! Not compared: the audit trail (`crm_kit.audit_entry`, in each service's database),
//! whose purpose is to record attempts, refused logins and token refreshes among them
//! (its counts are printed). The kit's other tables (outbox, inbox, revocations) are
//! compared: a refused call publishes nothing.

#![allow(clippy::unwrap_used)] // tests fail loudly

use std::collections::BTreeMap;
use std::time::Duration;

use crm_system_tests::{ADMIN_PASSWORD, TestPlatform, run_python};
use sqlx::PgPool;

/// Whether a table records attempts (refused ones too) rather than what is stored.
fn is_audit(table: &str) -> bool {
    table == "crm_kit.audit_entry"
}

/// Rows of every table of a database, by `schema.table`.
async fn row_counts(pool: &PgPool) -> BTreeMap<String, i64> {
    let tables: Vec<(String, String)> =
        sqlx::query_as("SELECT schemaname::text, relname::text FROM pg_stat_user_tables")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut counts = BTreeMap::new();
    for (schema, table) in tables {
        // The names come from the catalogue, quoted.
        let sql = format!("SELECT count(*) FROM \"{schema}\".\"{table}\"");
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await.unwrap();
        counts.insert(format!("{schema}.{table}"), count);
    }
    counts
}

/// Row counts of the databases once they stay the same for a second (events of the
/// start and of the login have been applied).
async fn settled_counts(pools: &[PgPool]) -> Vec<BTreeMap<String, i64>> {
    let mut last = Vec::new();
    for _ in 0..30 {
        let mut now = Vec::new();
        for pool in pools {
            now.push(row_counts(pool).await);
        }
        if now == last {
            return now;
        }
        last = now;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("the databases did not settle: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rpc_answers_internal_or_unknown_to_bad_input_and_nothing_of_it_is_stored() {
    let platform = TestPlatform::start().await.unwrap();
    let token = platform.login("admin", ADMIN_PASSWORD).await.unwrap();
    let pools = [
        PgPool::connect(&platform.identity_database_url).await.unwrap(),
        PgPool::connect(&platform.customers_database_url).await.unwrap(),
        PgPool::connect(&platform.analytics_database_url).await.unwrap(),
    ];
    let before = settled_counts(&pools).await;

    let addrs = format!(
        "127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
        platform.identity_port, platform.customers_port, platform.analytics_port
    );
    let env = vec![("CRM_SWEEP_ADDRS", addrs), ("CRM_SWEEP_TOKEN", token)];
    assert!(run_python("sweep.py", env).await, "the sweep found INTERNAL or UNKNOWN answers (output above)");

    let after = settled_counts(&pools).await;
    for (service, (before, after)) in
        ["identity", "customer-profile", "analytics"].iter().zip(before.iter().zip(&after))
    {
        let (audits_before, stored_before): (BTreeMap<_, _>, BTreeMap<_, _>) =
            before.iter().partition(|(table, _)| is_audit(table));
        let (audits_after, stored_after): (BTreeMap<_, _>, BTreeMap<_, _>) =
            after.iter().partition(|(table, _)| is_audit(table));
        assert!(stored_before.len() > 5, "{service}: tables found: {stored_before:?}");
        assert_eq!(stored_before, stored_after, "rows of {service}'s tables changed");
        println!("{service}: audit rows before {audits_before:?}, after {audits_after:?}");
    }
    platform.stop().await;
}
