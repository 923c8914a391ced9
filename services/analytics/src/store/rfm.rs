//! RFM as stored (`customer_rfm`): every customer's scores overall and per product
//! family, rescored as a whole population by one set-based statement
//! (`sql/rfm_rescore.sql`) whenever transactions, their owners, the catalogue or the
//! window may have changed. The statement scores exactly as [`crate::domain::rfm`]
//! does (differential test in `tests/api/rfm.rs`).
//!
//! The scoring date is the data date: the latest day any owned balance or transaction
//! is dated, never "today", so a rescore follows from the stored facts alone and a full
//! recompute finds the same scores.

use sqlx::PgConnection;
use time::Date;

use crate::domain::rfm::{Rfm, RfmWindow};
use crate::error::Result;

/// One stored RFM line.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RfmRow {
    /// Product family; empty for the overall scores.
    pub family: String,
    /// The data date scored on.
    pub scored_on: Date,
    /// Days from the last transaction to the scoring date.
    pub recency_days: i32,
    /// Transactions in the window.
    pub frequency: i32,
    /// Their absolute amounts, CNY fen.
    pub monetary_minor: i64,
    /// Recency score.
    pub r: i16,
    /// Frequency score.
    pub f: i16,
    /// Monetary score.
    pub m: i16,
}

impl RfmRow {
    /// The scores.
    pub fn rfm(&self) -> Rfm {
        let score = |s: i16| u8::try_from(s).unwrap_or(0);
        Rfm { r: score(self.r), f: score(self.f), m: score(self.m) }
    }
}

/// The window in force.
pub async fn window(ex: impl sqlx::PgExecutor<'_>) -> Result<RfmWindow> {
    let days: i32 = sqlx::query_scalar("SELECT window_days FROM rfm_setting").fetch_one(ex).await?;
    Ok(RfmWindow { days: days.unsigned_abs() })
}

/// Sets the window (1–3660 days, checked by the caller); answers whether it changed.
pub async fn set_window(tx: &mut PgConnection, window: RfmWindow, changed_by: &str) -> Result<bool> {
    let days = i32::try_from(window.days).unwrap_or(i32::MAX);
    let changed = sqlx::query(
        "UPDATE rfm_setting SET window_days = $1, changed_by = $2, changed_at = now() WHERE window_days <> $1",
    )
    .bind(days)
    .bind(changed_by)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// The data date: the latest day an owned balance or transaction (UTC posting date) is
/// dated; `None` before any.
pub async fn scoring_date(ex: impl sqlx::PgExecutor<'_>) -> Result<Option<Date>> {
    Ok(sqlx::query_scalar(
        "SELECT GREATEST(
             (SELECT max(balance_date) FROM balance_snapshot WHERE customer_number IS NOT NULL),
             (SELECT max((posted_at AT TIME ZONE 'UTC')::DATE) FROM transaction_fact WHERE customer_number IS NOT NULL))",
    )
    .fetch_one(ex)
    .await?)
}

/// Rescores every customer; answers the customers whose overall scores changed (their
/// rule tags read them). Callers hold the valuation lock (see `valuation::recompute`).
pub async fn rescore(tx: &mut PgConnection) -> Result<Vec<String>> {
    let window = window(&mut *tx).await?;
    let Some(on) = scoring_date(&mut *tx).await? else {
        let gone: Vec<String> =
            sqlx::query_scalar("DELETE FROM customer_rfm WHERE family = '' RETURNING customer_number")
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM customer_rfm").execute(&mut *tx).await?;
        return Ok(gone);
    };
    Ok(sqlx::query_scalar(include_str!("sql/rfm_rescore.sql"))
        .bind(on)
        .bind(i32::try_from(window.days).unwrap_or(i32::MAX))
        .fetch_all(&mut *tx)
        .await?)
}

/// The RFM lines of customer `number` (a survivor), overall first, then by family.
pub async fn of_customer(ex: impl sqlx::PgExecutor<'_>, number: &str) -> Result<Vec<RfmRow>> {
    Ok(sqlx::query_as(
        "SELECT family, scored_on, recency_days, frequency, monetary_minor, r, f, m
         FROM customer_rfm WHERE customer_number = $1 ORDER BY family",
    )
    .bind(number)
    .fetch_all(ex)
    .await?)
}
