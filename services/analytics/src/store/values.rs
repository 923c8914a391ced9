//! Reading customer value back: the value card, the level history, the level on a
//! date. Absorbed customer numbers answer with their survivor.

use serde_json::Value;
use sqlx::PgPool;
use time::Date;

use super::valuation::LevelChangeRow;
use crate::domain::aum::AssetClass;
use crate::error::{Error, Result};

/// A stored value card.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ValueRow {
    /// The customer (the survivor).
    pub customer_number: String,
    /// Level code.
    pub level_code: String,
    /// First day at it.
    pub level_since: Option<Date>,
    /// Months on watch, 0 when not.
    pub watch_months: i32,
    /// Latest day with balances.
    pub as_of: Option<Date>,
    aum: Value,
    month_aum: Value,
    /// Weighted AUM at `as_of`.
    pub weighted_aum: i64,
    /// Weighted daily average of the latest closed month.
    pub month_weighted_aum: i64,
    /// The latest closed month.
    pub latest_closed_month: Option<String>,
}

impl ValueRow {
    /// Per class: (point in time, latest closed month's daily average).
    pub fn by_class(&self) -> Vec<(AssetClass, i64, i64)> {
        let get = |v: &Value, c: AssetClass| v.get(c.as_str()).and_then(Value::as_i64).unwrap_or(0);
        AssetClass::ALL.into_iter().map(|c| (c, get(&self.aum, c), get(&self.month_aum, c))).collect()
    }
}

/// The survivor of `number`, or NOT_FOUND.
pub async fn survivor(pool: &PgPool, number: &str) -> Result<String> {
    sqlx::query_scalar::<_, Option<String>>("SELECT surviving_customer($1)")
        .bind(number)
        .fetch_one(pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("customer {number}")))
}

/// The value card of `number`.
pub async fn value(pool: &PgPool, number: &str) -> Result<ValueRow> {
    let survivor = survivor(pool, number).await?;
    sqlx::query_as(
        "SELECT customer_number, level_code, level_since, watch_months, as_of, aum, month_aum, weighted_aum,
                month_weighted_aum, latest_closed_month
         FROM customer_value WHERE customer_number = $1",
    )
    .bind(&survivor)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| Error::NotFound(format!("value of customer {number}: no balances yet")))
}

/// The level changes of `number`, in decision order, and the survivor's number.
pub async fn history(pool: &PgPool, number: &str) -> Result<(String, Vec<LevelChangeRow>)> {
    let survivor = survivor(pool, number).await?;
    let changes = super::valuation::history(pool, &survivor).await?;
    Ok((survivor, changes))
}
