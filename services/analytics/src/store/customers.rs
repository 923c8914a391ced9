//! The copy of customer-profile's identification: which customers exist, which
//! absorbed which, which source record belongs to whom. Every change re-keys the facts
//! it moves and answers the customers whose value must be recomputed.

use std::collections::BTreeSet;

use sqlx::PgConnection;

use crate::domain::demographics::Demographics;
use crate::error::Result;

/// The tables holding facts with an owner.
const FACT_TABLES: [&str; 2] = ["balance_snapshot", "transaction_fact"];

/// Customers whose value a change touched.
pub type Touched = BTreeSet<String>;

/// Makes `number` known (no-op when it is).
async fn ensure(tx: &mut PgConnection, number: &str) -> Result<()> {
    sqlx::query("INSERT INTO customer (customer_number) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(number)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Records that customer-profile created `number` at `at` (the earliest time wins, so a
/// redelivery changes nothing).
pub async fn created(tx: &mut PgConnection, number: &str, at: time::OffsetDateTime) -> Result<()> {
    sqlx::query("UPDATE customer SET created_at = LEAST(COALESCE(created_at, $2), $2) WHERE customer_number = $1")
        .bind(number)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Gives waiting facts that name `number` or one of its source keys their owner.
async fn release_waiting(tx: &mut PgConnection, number: &str) -> Result<u64> {
    let mut released = 0;
    // The two fact tables, named by the code (never by input).
    for table in FACT_TABLES {
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} f SET customer_number = fact_owner(f.ref_customer_number, f.ref_source_system, f.ref_source_id)
             WHERE f.customer_number IS NULL
               AND (f.ref_customer_number = $1
                    OR (f.ref_source_system, f.ref_source_id) IN
                       (SELECT source_system, source_customer_id FROM source_key WHERE customer_number = $1))"
        )))
        .bind(number)
        .execute(&mut *tx)
        .await?;
        released += done.rows_affected();
    }
    Ok(released)
}

/// Re-keys every fact named by source key `(system, id)` to its owner now.
async fn rekey_source(tx: &mut PgConnection, system: &str, id: &str) -> Result<Touched> {
    let mut touched = Touched::new();
    // The two fact tables, named by the code (never by input).
    for table in FACT_TABLES {
        let moved: Vec<(Option<String>, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "WITH moving AS (
                 SELECT f.ctid, f.customer_number AS before FROM {table} f
                 WHERE f.ref_source_system = $1 AND f.ref_source_id = $2 FOR UPDATE)
             UPDATE {table} f SET customer_number = fact_owner(NULL, $1, $2)
             FROM moving m WHERE f.ctid = m.ctid
               AND f.customer_number IS DISTINCT FROM fact_owner(NULL, $1, $2)
             RETURNING m.before, f.customer_number"
        )))
        .bind(system)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        touched.extend(moved.into_iter().flat_map(|(a, b)| [a, b]).flatten());
    }
    Ok(touched)
}

/// A customer was created or changed from source record `(system, id)`: the customer
/// becomes known, the record is its, and facts waiting for either count now.
pub async fn source_linked(tx: &mut PgConnection, number: &str, source: Option<(&str, &str)>) -> Result<Touched> {
    ensure(tx, number).await?;
    let mut touched = Touched::new();
    if let Some((system, id)) = source {
        sqlx::query(
            "INSERT INTO source_key (source_system, source_customer_id, customer_number) VALUES ($1, $2, $3)
             ON CONFLICT (source_system, source_customer_id) DO UPDATE SET customer_number = EXCLUDED.customer_number",
        )
        .bind(system)
        .bind(id)
        .bind(number)
        .execute(&mut *tx)
        .await?;
        touched.extend(rekey_source(tx, system, id).await?);
    }
    if release_waiting(tx, number).await? > 0 {
        touched.insert(number.to_string());
    }
    Ok(touched)
}

/// customer-profile announced customer `number`'s demographic attributes at `at`: kept
/// unless a later announcement is already (events may arrive out of order); the
/// customer is touched when they changed, so its rule tags are re-evaluated.
pub async fn demographics(
    tx: &mut PgConnection,
    number: &str,
    d: &Demographics,
    at: time::OffsetDateTime,
) -> Result<Touched> {
    ensure(tx, number).await?;
    let changed = sqlx::query(
        "INSERT INTO customer_demographics AS o (customer_number, birth_date, gender, region_code, announced_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (customer_number) DO UPDATE
             SET birth_date = EXCLUDED.birth_date, gender = EXCLUDED.gender, region_code = EXCLUDED.region_code,
                 announced_at = EXCLUDED.announced_at
             WHERE o.announced_at <= EXCLUDED.announced_at
               AND (o.birth_date, o.gender, o.region_code)
                   IS DISTINCT FROM (EXCLUDED.birth_date, EXCLUDED.gender, EXCLUDED.region_code)",
    )
    .bind(number)
    .bind(d.birth_date)
    .bind(d.gender.map(|g| g.code()))
    .bind(d.region.as_ref().map(|r| r.as_str()))
    .bind(at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(if changed > 0 { Touched::from([number.to_string()]) } else { Touched::new() })
}

/// `absorbed` customers became part of `survivor`: their numbers follow it, their
/// source records and facts are its. Their own derived value is dropped (touched too,
/// so that a recompute takes them out of their segments).
pub async fn merged(tx: &mut PgConnection, survivor: &str, absorbed: &[String]) -> Result<Touched> {
    ensure(tx, survivor).await?;
    let mut touched = Touched::from([survivor.to_string()]);
    for number in absorbed.iter().filter(|n| n.as_str() != survivor) {
        ensure(tx, number).await?;
        sqlx::query("UPDATE customer SET merged_into = $2 WHERE customer_number = $1")
            .bind(number)
            .bind(survivor)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE source_key SET customer_number = $2 WHERE customer_number = $1")
            .bind(number)
            .bind(survivor)
            .execute(&mut *tx)
            .await?;
        // The two fact tables, named by the code (never by input).
        for table in FACT_TABLES {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET customer_number = $2 WHERE customer_number = $1"
            )))
            .bind(number)
            .bind(survivor)
            .execute(&mut *tx)
            .await?;
        }
        super::valuation::forget(tx, number).await?;
        release_waiting(tx, survivor).await?;
        touched.insert(number.clone());
    }
    Ok(touched)
}

/// Source record `(system, id)` left `from` and belongs to `to` now: the facts it
/// named move with it.
pub async fn unmerged(tx: &mut PgConnection, from: &str, to: &str, system: &str, id: &str) -> Result<Touched> {
    ensure(tx, from).await?;
    let mut touched = source_linked(tx, to, Some((system, id))).await?;
    touched.insert(from.to_string());
    touched.insert(to.to_string());
    Ok(touched)
}

/// The survivor of `number`, if analytics knows it.
pub async fn survivor(tx: &mut PgConnection, number: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT surviving_customer($1)").bind(number).fetch_one(&mut *tx).await?)
}
