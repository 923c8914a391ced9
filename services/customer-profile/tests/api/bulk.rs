//! The set-based bulk path against the one-by-one path: the same mixed load applied
//! both ways, in the same transactions, must leave identical databases and answers.

use crm_platform::testing::TestEnv;
use crm_proto::crm::customer::v1 as pb;
use customer_profile::domain::{Attribute, TrustTable, ValidatedRecord};
use customer_profile::pii::PiiCipher;
use customer_profile::store::{self, PreparedRecord, UpsertResult};
use customer_profile::{Settings, sample};
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::PII_KEY;

async fn fresh_pool() -> PgPool {
    let env = TestEnv::new("customer-profile").await;
    let settings = Settings::load_from(env.vars(&[("customer.pii_key", PII_KEY)])).unwrap();
    let pool = crm_platform::db::connect(&settings.platform.database).await.unwrap();
    crm_platform::db::migrate(&pool, &customer_profile::MIGRATOR).await.unwrap();
    pool
}

fn trust() -> TrustTable {
    let mut t = TrustTable::new(10);
    t.set_source_default("CORE", 90);
    t.set_source_default("CARDS", 60);
    t.set("CARDS", Attribute::MobilePhone, 95);
    t.set_source_default("LOANS", 60);
    t
}

/// A first load, then a day of edits: newer versions with new attribute values,
/// replays and older versions, renames that make a record match another customer
/// (merge) or no longer match its own (unmerge), a record turning into ID type
/// "other", and several versions of one record in one batch.
fn workload() -> Vec<pb::SourceRecord> {
    let first = sample::generate(11, 400);
    let mut load = first.clone();
    let mut rng = sample::Rng::new(99);
    for (i, r) in first.iter().enumerate() {
        let mut edit = r.clone();
        edit.source_version += 1;
        match rng.below(12) {
            0 => {
                edit.mobile_phone = format!("139{:08}", rng.below(100_000_000));
                edit.address = format!("{} road", rng.below(1000));
            }
            1 => edit = r.clone(),
            2 => {
                edit.source_version -= 2;
                edit.email = "older@example.com".into();
            }
            3 => {
                // Takes the name of the record before it: a merge when the two share an ID.
                edit.name = first[i.saturating_sub(1)].name.clone();
            }
            4 => edit.name = format!("{}{}", r.name, "新"),
            5 => {
                edit.id_type = pb::IdType::Other as i32;
                edit.id_number = format!("P{i:08}");
            }
            6 => {
                let mut again = edit.clone();
                again.source_version += 1;
                again.occupation = "teacher".into();
                load.push(edit.clone());
                edit = again;
            }
            _ => continue,
        }
        load.push(edit);
    }
    // Interleave the edits with each other deterministically, after the first load.
    let (head, tail) = load.split_at_mut(first.len());
    let _ = head;
    let mut rng = sample::Rng::new(5);
    for k in (1..tail.len()).rev() {
        let j = rng.below(k as u64 + 1) as usize;
        // Keep several versions of one record in their order.
        if tail[k].key != tail[j].key {
            tail.swap(k, j);
        }
    }
    load
}

fn validated(load: &[pb::SourceRecord]) -> Vec<ValidatedRecord> {
    load.iter().filter_map(|r| ValidatedRecord::try_from(r.clone()).ok()).collect()
}

/// `n` generated records (seed `seed`) that pass validation, encrypted and indexed.
fn prepared_sample(pii: &PiiCipher, seed: u64, n: usize) -> Vec<PreparedRecord> {
    validated(&sample::generate(seed, n)).into_iter().map(|v| PreparedRecord::new(pii, v)).collect()
}

async fn one_by_one(pool: &PgPool, pii: &PiiCipher, batch: &[ValidatedRecord]) -> Vec<UpsertResult> {
    let mut tx = pool.begin().await.unwrap();
    let mut results = Vec::new();
    for v in batch {
        results.push(store::upsert_in(&mut tx, &trust(), pii, v, Some("loader")).await.unwrap());
    }
    tx.commit().await.unwrap();
    results
}

/// Every row of a query as JSON, in the query's order.
async fn rows(pool: &PgPool, label: &str, query: &str) -> Vec<String> {
    let sql = format!("SELECT to_jsonb(x) FROM ({query}) x");
    let rows: Vec<Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await.unwrap();
    rows.into_iter().map(|r| format!("{label} {r}")).collect()
}

/// Lineage without its timestamps: the two databases commit at different moments.
fn without_times(mut line: Value) -> Value {
    if let Some(lineage) = line.get_mut("lineage").and_then(Value::as_object_mut) {
        for entry in lineage.values_mut() {
            if let Some(e) = entry.as_object_mut() {
                e.remove("updated_at");
            }
        }
    }
    line
}

/// The events announced, as a multiset (the two paths write them in other orders).
async fn announced(pool: &PgPool) -> Vec<String> {
    rows(pool, "event", "SELECT event_type, subject, encode(payload, 'hex') FROM crm_kit.outbox ORDER BY 1, 2, 3").await
}

async fn snapshot(pool: &PgPool) -> Vec<String> {
    let parties: Vec<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(x) FROM (
             SELECT p.customer_number, p.party_kind, p.status, m.customer_number AS merged_into, p.golden, p.lineage,
                    p.quality_flags
             FROM party p LEFT JOIN party m ON m.party_id = p.merged_into ORDER BY p.party_id) x",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut out: Vec<String> = parties.into_iter().map(|p| format!("party {}", without_times(p))).collect();
    out.extend(
        rows(
            pool,
            "record",
            "SELECT s.source_system, s.source_customer_id, s.source_version, p.customer_number, s.identity_digest,
                    s.match_key, s.attributes, s.quality_flags, s.phone_index, s.id_index
             FROM source_record s JOIN party p USING (party_id) ORDER BY 1, 2",
        )
        .await,
    );
    out.extend(
        rows(
            pool,
            "group",
            "SELECT g.identity_digest, g.name_key, p.customer_number
             FROM identity_group g JOIN party p USING (party_id) ORDER BY 1",
        )
        .await,
    );
    out.extend(rows(pool, "suspect", "SELECT digest_a, digest_b, status FROM suspect_pair ORDER BY 1, 2").await);
    out.extend(
        rows(
            pool,
            "history",
            "SELECT p.customer_number, h.change_kind, h.source_system, h.source_customer_id, h.before, h.after, h.actor
             FROM party_history h JOIN party p USING (party_id) ORDER BY h.history_id",
        )
        .await,
    );
    out.extend(
        rows(
            pool,
            "event",
            "SELECT event_type, subject, encode(payload, 'hex') AS payload, actor FROM crm_kit.outbox ORDER BY seq",
        )
        .await,
    );
    out
}

#[tokio::test]
async fn a_bulk_batch_leaves_exactly_what_applying_its_records_one_by_one_leaves() {
    let pii = PiiCipher::from_hex(PII_KEY).unwrap();
    let records = validated(&workload());
    let (reference, bulk) = (fresh_pool().await, fresh_pool().await);
    let (mut expected, mut got) = (Vec::new(), Vec::new());
    for batch in records.chunks(97) {
        expected.extend(one_by_one(&reference, &pii, batch).await);
        let prepared: Vec<PreparedRecord> = batch.iter().map(|v| PreparedRecord::new(&pii, v.clone())).collect();
        got.extend(store::upsert_batch(&bulk, &trust(), &pii, &prepared, Some("loader"), &[]).await.unwrap());
    }
    assert_eq!(got, expected);

    let (expected, got) = (snapshot(&reference).await, snapshot(&bulk).await);
    let count = |prefix: &str| expected.iter().filter(|l| l.starts_with(prefix)).count();
    // The load really exercised what the bulk path must get right.
    assert!(count("party") > 300, "{}", count("party"));
    assert!(expected.iter().any(|l| l.contains("\"MERGED\"")), "no merge happened");
    assert!(expected.iter().any(|l| l.contains("\"UNMERGED\"")), "no unmerge happened");
    assert!(count("suspect") > 5, "{}", count("suspect"));
    assert!(expected.iter().any(|l| l.contains("\"UPDATED\"")));
    for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(g, e, "line {i} differs");
    }
    assert_eq!(got.len(), expected.len());
    let (expected, got) = (announced(&reference).await, announced(&bulk).await);
    assert!(expected.iter().any(|e| e.contains("SourceRecordLinked")), "no record joined without a change");
    assert_eq!(got, expected, "the same events");
}

#[tokio::test]
async fn a_bulk_batch_that_repeats_a_replay_changes_nothing() {
    let pii = PiiCipher::from_hex(PII_KEY).unwrap();
    let pool = fresh_pool().await;
    let prepared = prepared_sample(&pii, 3, 300);
    let first = store::upsert_batch(&pool, &trust(), &pii, &prepared, None, &[]).await.unwrap();
    let before = snapshot(&pool).await;
    let again = store::upsert_batch(&pool, &trust(), &pii, &prepared, None, &[]).await.unwrap();
    assert!(again.iter().all(|r| r.outcome == customer_profile::domain::UpsertOutcome::Unchanged));
    let numbers = |rs: &[UpsertResult]| rs.iter().map(|r| r.customer_number.clone()).collect::<Vec<_>>();
    assert_eq!(numbers(&again), numbers(&first));
    assert_eq!(snapshot(&pool).await, before);
}

/// What PostgreSQL would plan with, as seen inside the caller's transaction.
async fn planner_settings(tx: &mut sqlx::PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT name || '=' || setting FROM pg_settings
         WHERE name IN ('plan_cache_mode', 'enable_seqscan', 'enable_hashjoin', 'enable_mergejoin') ORDER BY name",
    )
    .fetch_all(tx)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_batch_hands_its_transaction_back_with_the_default_planner_settings() {
    let pii = PiiCipher::from_hex(PII_KEY).unwrap();
    let pool = fresh_pool().await;
    let prepared = prepared_sample(&pii, 5, 60);
    let mut tx = pool.begin().await.unwrap();
    let defaults = planner_settings(&mut tx).await;
    assert!(defaults.contains(&"plan_cache_mode=auto".to_string()), "{defaults:?}");
    // Writing runs (new customers), then a replay of them (nothing written): statements
    // that follow in the transaction, such as the caller's audit entries, plan as usual.
    let first = store::upsert_prepared_in(&mut tx, &trust(), &pii, &prepared, None).await.unwrap();
    assert!(first.iter().any(|r| r.outcome == customer_profile::domain::UpsertOutcome::Created));
    assert_eq!(planner_settings(&mut tx).await, defaults);
    let again = store::upsert_prepared_in(&mut tx, &trust(), &pii, &prepared, None).await.unwrap();
    assert!(again.iter().all(|r| r.outcome == customer_profile::domain::UpsertOutcome::Unchanged));
    assert_eq!(planner_settings(&mut tx).await, defaults);
    tx.commit().await.unwrap();
}

/// The state by customer, named by its source keys rather than its number (partitions
/// number new customers in another order than one by one): golden record, lineage
/// without times, flags, history kinds in order; plus suspect pairs and event counts.
async fn by_customer(pool: &PgPool) -> Vec<String> {
    let mut out = rows(
        pool,
        "customer",
        "SELECT (SELECT array_agg(s.source_system || '/' || s.source_customer_id
                                  ORDER BY s.source_system, s.source_customer_id)
                 FROM source_record s WHERE s.party_id = p.party_id) AS sources,
                p.party_kind, p.status, p.golden,
                (SELECT jsonb_object_agg(k, v - 'updated_at') FROM jsonb_each(p.lineage) AS l(k, v)) AS lineage,
                p.quality_flags,
                (SELECT array_agg(h.change_kind || ' ' || h.source_system || '/' || h.source_customer_id ORDER BY h.history_id)
                 FROM party_history h WHERE h.party_id = p.party_id) AS history
         FROM party p ORDER BY 1",
    )
    .await;
    out.extend(rows(pool, "suspect", "SELECT digest_a, digest_b, status FROM suspect_pair ORDER BY 1, 2").await);
    out.extend(rows(pool, "events", "SELECT event_type, count(*) FROM crm_kit.outbox GROUP BY 1 ORDER BY 1").await);
    // Which line comes first carries no meaning here.
    out.sort();
    out
}

#[tokio::test]
async fn a_large_load_applied_in_partitions_side_by_side_ends_as_one_by_one() {
    let pii = PiiCipher::from_hex(PII_KEY).unwrap();
    // A first load, then same-identity edits and replays: every batch is simple, so
    // every batch runs partitioned.
    let first = sample::generate(17, 1200);
    let mut load = first.clone();
    for (i, r) in first.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        let mut edit = r.clone();
        edit.source_version += 1;
        edit.mobile_phone = format!("137{i:08}");
        load.push(edit);
        load.push(r.clone());
    }
    let records = validated(&load);
    let (reference, partitioned) = (fresh_pool().await, fresh_pool().await);
    let batches: Vec<&[ValidatedRecord]> = records.chunks(400).collect();
    for (n, batch) in batches.into_iter().enumerate() {
        let expected = one_by_one(&reference, &pii, batch).await;
        let prepared: Vec<PreparedRecord> = batch.iter().map(|v| PreparedRecord::new(&pii, v.clone())).collect();
        let got = if n == 0 {
            let (mut applied, handed_back) =
                store::bulk::upsert_partitioned(&partitioned, &trust(), &prepared, Some("loader"), &[])
                    .await
                    .unwrap()
                    .expect("a first load is all simple records");
            assert!(handed_back.is_empty());
            applied.sort_by_key(|(i, _)| *i);
            applied.into_iter().map(|(_, r)| r).collect::<Vec<_>>()
        } else {
            store::upsert_batch(&partitioned, &trust(), &pii, &prepared, Some("loader"), &[]).await.unwrap()
        };
        let outcomes =
            |rs: &[UpsertResult]| rs.iter().map(|r| (r.outcome, r.quality_flags.clone())).collect::<Vec<_>>();
        assert_eq!(outcomes(&got), outcomes(&expected), "batch {n}");
    }
    let (expected, got) = (by_customer(&reference).await, by_customer(&partitioned).await);
    if expected != got {
        let _ = std::fs::write("/tmp/partitioned-expected.txt", expected.join("\n"));
        let _ = std::fs::write("/tmp/partitioned-got.txt", got.join("\n"));
    }
    assert!(expected.len() > 900, "{}", expected.len());
    assert!(expected.iter().any(|l| l.contains("UPDATED")));
    for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(g, e, "line {i} differs");
    }
    assert_eq!(got.len(), expected.len());
}

/// Customers as the sets of source records they hold, open suspect pairs, and how many
/// customers were created: what identification decides, whatever order concurrent
/// calls are applied in.
async fn identification(pool: &PgPool) -> Vec<String> {
    let mut out = rows(
        pool,
        "customer",
        "SELECT array_agg(s.source_system || '/' || s.source_customer_id ORDER BY s.source_system, s.source_customer_id)
         FROM source_record s GROUP BY s.party_id ORDER BY 1",
    )
    .await;
    out.extend(rows(pool, "suspect", "SELECT digest_a, digest_b, status FROM suspect_pair ORDER BY 1, 2").await);
    out.extend(
        rows(
            pool,
            "created",
            "SELECT count(*) FROM crm_kit.outbox WHERE event_type = 'crm.customer.v1.CustomerCreated'",
        )
        .await,
    );
    out.sort();
    out
}

#[tokio::test]
async fn concurrent_single_upserts_identify_customers_as_one_by_one_does() {
    let pii = PiiCipher::from_hex(PII_KEY).unwrap();
    // A first load (cross-system duplicates, name conflicts, "other" IDs), then a wave
    // of edits: same-identity edits (set-based groups) and renames to a name of their
    // own (identity changed: the one-by-one path splits them off).
    let first = validated(&sample::generate(23, 400));
    let edits: Vec<ValidatedRecord> = validated(
        &sample::generate(23, 400)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % 4 == 0)
            .map(|(i, mut r)| {
                r.source_version += 1;
                r.mobile_phone = format!("137{i:08}");
                if i % 20 == 0 {
                    r.name = format!("改名{i}");
                }
                r
            })
            .collect::<Vec<_>>(),
    );
    let (reference, concurrent) = (fresh_pool().await, fresh_pool().await);
    let (queue, writer) =
        store::UpsertWriter::new(concurrent.clone(), std::sync::Arc::new(trust()), std::sync::Arc::new(pii.clone()));
    tokio::spawn(writer);
    for wave in [&first, &edits] {
        one_by_one(&reference, &pii, wave).await;
        let calls: Vec<_> = wave
            .iter()
            .map(|v| {
                let (queue, record) = (queue.clone(), PreparedRecord::new(&pii, v.clone()));
                tokio::spawn(async move { queue.upsert(record, Some("loader"), None).await })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
    }
    let (expected, got) = (identification(&reference).await, identification(&concurrent).await);
    assert!(expected.len() > 300, "{}", expected.len());
    assert!(expected.iter().any(|l| l.starts_with("suspect")), "the load has name conflicts");
    assert_eq!(got, expected);
}
