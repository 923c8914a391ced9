//! Customers due for revaluation (`revaluation_due`): marked in the transaction of any
//! change that can move their value, taken in batches by the revaluer
//! ([`crate::revaluer`]), recomputed and cleared in one transaction.
//!
//! Promises:
//! - A due customer is revalued after the change that marked it committed (the mark is
//!   part of that transaction), at least once, and a crash mid-revaluation leaves it due.
//! - Two revaluers never take the same customer at once (`FOR UPDATE SKIP LOCKED`).
//! - A customer marked while it is being revalued waits for that revaluation to commit
//!   and is then due again, so the change is never missed.

use std::collections::BTreeSet;

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::error::Result;

/// Marks `customers` due (a customer already due keeps its place).
pub async fn mark_due(tx: &mut PgConnection, customers: &BTreeSet<String>) -> Result<()> {
    if customers.is_empty() {
        return Ok(());
    }
    let numbers: Vec<&str> = customers.iter().map(String::as_str).collect();
    sqlx::query(
        "INSERT INTO revaluation_due (customer_number)
         SELECT n FROM UNNEST($1::TEXT[]) AS n ORDER BY n
         ON CONFLICT (customer_number) DO NOTHING",
    )
    .bind(&numbers)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Takes up to `batch` of the longest-due customers, recomputes their value, months,
/// rule tags and segment memberships, and clears them, in one transaction; answers how
/// many were taken.
pub async fn revalue_due(pool: &PgPool, batch: i64) -> Result<usize> {
    let mut tx = pool.begin().await?;
    let taken: Vec<String> = sqlx::query_scalar(
        "DELETE FROM revaluation_due WHERE customer_number IN (
             SELECT customer_number FROM revaluation_due ORDER BY due_since LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING customer_number",
    )
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    if taken.is_empty() {
        return Ok(0);
    }
    let customers: BTreeSet<String> = taken.into_iter().collect();
    let span = tracing::info_span!("revalue due customers", customers = customers.len());
    async {
        super::valuation::recompute_values(&mut tx, &customers).await?;
        super::segments::refresh_memberships(&mut tx, &customers).await
    }
    .instrument(span)
    .await?;
    sqlx::query("UPDATE revaluation_state SET revalued_at = clock_timestamp()").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(customers.len())
}

/// Rescores the RFM population (and the rule tags of customers whose scores moved).
pub async fn rescore(pool: &PgPool) -> Result<usize> {
    let mut tx = pool.begin().await?;
    let changed = super::valuation::rescore_rfm(&mut tx).await?;
    sqlx::query("UPDATE revaluation_state SET rescored_at = clock_timestamp()").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(changed)
}

/// How far behind the derived data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Backlog {
    /// Customers due.
    pub due: i64,
    /// Since when the longest-due customer is due.
    pub oldest: Option<OffsetDateTime>,
    /// Whether the RFM rescore is older than the last revaluation.
    pub rescore_pending: bool,
}

impl Backlog {
    /// Nothing due and RFM rescored after the last revaluation.
    pub fn settled(&self) -> bool {
        self.due == 0 && !self.rescore_pending
    }
}

/// The backlog now.
pub async fn backlog(pool: &PgPool) -> Result<Backlog> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM revaluation_due) AS due,
                (SELECT min(due_since) FROM revaluation_due) AS oldest,
                (SELECT rescored_at < revalued_at FROM revaluation_state) AS rescore_pending",
    )
    .fetch_one(pool)
    .await?)
}
